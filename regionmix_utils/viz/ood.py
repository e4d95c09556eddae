"""Figures of out-of-distribution detection and selective classification."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure


def ood_figure(results: dict[str, list[tuple]], score: str = "msp") -> Figure:
    """One panel per out-set with each method's ROC curve (out-images accepted against
    test images accepted, by ``score``), then each method's risk-coverage curve on its
    test images.

    Args:
        results: label (a method) -> its ``(record, predictions)`` per out-set, as
            ``evaluation.ood.evaluate_ood`` returns them; every label with the same
            out-sets, in the same order.
        score: "msp", "maxlogit" or "energy".
    """
    from regionmix_utils.evaluation.ood import OUTSETS, risk_coverage, roc_curve, stored_scores

    outsets = [record["outset"] for record, _ in next(iter(results.values()))]
    fig, axes = plt.subplots(1, len(outsets) + 1, figsize=(3.6 * (len(outsets) + 1), 3.8))
    for label, found in results.items():
        for ax, (record, predictions) in zip(axes, found, strict=False):
            values = stored_scores(predictions, score)
            fpr, tpr = roc_curve(torch.from_numpy(values["in"]), torch.from_numpy(values["out"]))
            ax.plot(fpr, tpr, lw=1.2, label=f"{label}: {record[f'auroc_{score}']:.1f}")
        values = stored_scores(found[0][1], score)
        coverage, risk = risk_coverage(torch.from_numpy(values["in"]),
                                       torch.from_numpy(values["correct"]))  # fmt: skip
        axes[-1].plot(coverage, 100 * risk, lw=1.2, label=label)
    for ax, name in zip(axes, outsets, strict=False):
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.axhline(0.95, color="grey", lw=0.6, ls="--")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="out-images accepted (FPR)",
               title=f"vs {OUTSETS[name].title}")  # fmt: skip
        ax.legend(fontsize=7, loc="lower right", title="AUROC %", title_fontsize=7)
    axes[0].set_ylabel("test images accepted (TPR)")
    axes[-1].set(xlim=(0, 1), xlabel="coverage", ylabel="error among accepted (%)",
                 title="risk-coverage, test images")  # fmt: skip
    axes[-1].legend(fontsize=7)
    fig.suptitle(f"Score: {score}", fontsize=9)
    fig.tight_layout()
    return fig
