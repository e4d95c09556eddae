"""Figures of evaluations (notebooks 04, 05, 07, the report) and the paper's tables."""

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from regionmix_utils.evaluation.corruptions import FAMILIES, SEVERITIES
from regionmix_utils.evaluation.ood import OUTSETS, risk_coverage, roc_curve, stored_scores
from regionmix_utils.evaluation.robustness import attack_label
from regionmix_utils.runs import eps_text
from regionmix_utils.viz.base import box, panels, say_shared, show, split_labels


def cam_figure(images: Tensor, maps: dict[str, Tensor], boxes: Tensor | None = None,
               alpha: float = 0.5) -> plt.Figure:  # fmt: skip
    """Figure 2: images [B, 3, H, W], each CAM (name -> [B, H, W]), boxes [B, 4] (x0, y0, x1, y1)"""
    columns = [("image", None), *maps.items()]
    fig, axes = panels(images.shape[0], len(columns), 2, 2)
    for (row, col), ax in np.ndenumerate(axes):
        title, method_maps = columns[col]
        show(ax, images[row])
        if method_maps is not None:
            ax.imshow(method_maps[row].cpu().numpy(), cmap="jet", alpha=alpha, vmin=0, vmax=1)
        if boxes is not None:
            box(ax, *boxes[row][[1, 0, 3, 2]].tolist(), lw=1)  # (x0, y0, x1, y1) as rows, cols
        ax.set_title(title if row == 0 else "", fontsize=9)
    return fig


def reliability_figure(curves: dict) -> plt.Figure:
    """Reliability diagrams (label -> ``calibration.reliability``), the images per bin below."""
    titles, shared = split_labels(list(curves))
    columns = min(max(len(curves), 1), 5)  # more diagrams wrap onto further rows
    rows = -(-max(len(curves), 1) // columns)  # each a row of diagrams and one of counts
    fig, axes = panels(2 * rows, columns, 3.4, 2.6, height_ratios=[2.2, 1] * rows)
    for ax in axes[-2:, len(curves) - (rows - 1) * columns :].flat:  # the last row's gaps
        ax.set_visible(False)
    for i, (title, curve) in enumerate(zip(titles, curves.values(), strict=True)):
        row, col = divmod(i, columns)
        top, bottom = axes[2 * row, col], axes[2 * row + 1, col]
        width = 1.0 / len(curve["lower"])
        centres = (curve["lower"] + width / 2).numpy()
        accuracy, confidence = curve["accuracy"].numpy(), curve["confidence"].numpy()
        top.bar(centres, np.nan_to_num(accuracy), width=width, edgecolor="black", lw=0.5,
                color="tab:blue", alpha=0.8, label="accuracy")  # fmt: skip
        low, high = np.fmin(accuracy, confidence), np.fmax(accuracy, confidence)
        top.bar(centres, np.nan_to_num(high - low), bottom=np.nan_to_num(low), width=width,
                facecolor="none", edgecolor="tab:red", hatch="///", lw=0.8,
                label="gap to confidence")  # fmt: skip
        top.plot([0, 1], [0, 1], "k--", lw=1)
        top.set(xlim=(0, 1), ylim=(0, 1), xticklabels=[])
        top.set_title(textwrap.fill(title, 30), fontsize=10)
        bottom.bar(centres, curve["count"].numpy(), width=width, color="grey")
        bottom.set(xlim=(0, 1), xlabel="confidence")
        bottom.yaxis.set_major_locator(plt.MaxNLocator(integer=True, nbins=4))
    for ax, name in zip(axes[:, 0], ["accuracy", "test images"] * rows, strict=True):
        ax.set_ylabel(name)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    say_shared(fig, shared, "All runs", 40 * columns, fontsize=9)
    return fig


def corruption_figure(records: list[list[dict]], labels: list[str]) -> plt.Figure:
    """Mean accuracy against severity, a panel per corruption family, a line per ``labels[i]``."""
    families = [f for f, members in FAMILIES.items()
                if any(r["corruption"] in members for rs in records for r in rs)]  # fmt: skip
    fig, axes = panels(1, max(len(families), 1), 4, 3.4)
    for ax, family in zip(axes[0], families, strict=False):
        for label, rs in zip(labels, records, strict=True):
            means = [np.mean([r["accuracy"] for r in rs if r["severity"] == s
                              and r["corruption"] in FAMILIES[family]] or [np.nan])
                     for s in SEVERITIES]  # fmt: skip
            ax.plot(SEVERITIES, means, marker="o", label=label)
        ax.set(xlabel="severity", ylabel="accuracy (%)", title=family, xticks=SEVERITIES)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    return fig


def comparison_figure(tables: Sequence) -> plt.Figure:
    """Ours (filled) vs the paper (hollow): a row per ``results.Table``, a panel per dataset."""
    grouped = [list(t.cells.groupby(["dataset", "ce_row"] if t.number == 2 else ["dataset"],
                                    sort=False)) for t in tables]  # fmt: skip
    width = max(len(groups) for groups in grouped)
    fig = plt.figure(figsize=(4.2 * width, 3.6 * len(tables)), layout="constrained")
    for subfig, table, groups in zip(np.atleast_1d(fig.subfigures(len(tables), 1)), tables,
                                     grouped, strict=True):  # fmt: skip
        subfig.suptitle("\n".join(textwrap.wrap(table.caption.split(". ")[0], 110)), fontsize=9)
        axes = subfig.subplots(1, width, squeeze=False)[0]
        labels = list(dict.fromkeys(table.frame.columns.get_level_values(0)))
        crowded = {"rotation": 30, "ha": "right"} if len(labels) > 3 else {}
        ticks = labels if crowded else ["\n".join(textwrap.wrap(lb, 14)) for lb in labels]
        for ax, (row, cells) in zip(axes, groups, strict=False):
            for x, label in enumerate(labels):
                for r in cells[cells["label"] == label].itertuples():
                    if r.n > 0:
                        ax.errorbar(x - 0.12, r.mean, yerr=np.nan_to_num(r.std), fmt="o",
                                    color="C0", capsize=3)  # fmt: skip
                    if not np.isnan(r.paper_mean):
                        ax.errorbar(x + 0.12, r.paper_mean, yerr=r.paper_std, fmt="s",
                                    mfc="white", color="C1", capsize=3)  # fmt: skip
            ax.set_xticks(range(len(labels)), ticks, fontsize=7, **crowded)
            ax.set_xlim(-0.5, len(labels) - 0.5)
            ax.set_title(" · ".join(row), fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("accuracy (%)")
        for ax in axes[len(groups) :]:
            ax.set_visible(False)
    ours = plt.Line2D([], [], marker="o", ls="", color="C0", label="ours (mean ± std over seeds)")
    paper = plt.Line2D([], [], marker="s", ls="", mfc="white", color="C1", label="paper (3 runs)")
    fig.legend(handles=[ours, paper], loc="outside lower center", ncols=2, fontsize=8)
    return fig


def eps_curves(evaluations: pd.DataFrame, kinds: tuple[str, ...] = ("fgsm", "pgd")) -> plt.Figure:
    """Accuracy against ε (/255, symlog) of ``results.collect_evaluations`` rows: a panel per
    configuration, a line (mean ± std over seeds) per attack and image set. ValueError: none."""
    rows = evaluations[evaluations["kind"].isin(kinds)] if len(evaluations) else evaluations
    if rows.empty:
        raise ValueError(f"evaluations has no records of the attacks {kinds}; run them first")
    rows = rows.assign(attack=[attack_label(r) for r in rows.to_dict("records")],
                       eps255=rows["eps"] * 255)  # fmt: skip
    rows = rows.sort_values("n_images").drop_duplicates(["path", "attack", "eps"], keep="last")
    counts = rows.groupby("attack")["n_images"].transform("nunique")
    named = zip(rows["attack"], counts, rows["n_images"], strict=True)
    rows = rows.assign(series=[a if c == 1 else f"{a}, {n:,} images" for a, c, n in named])
    key = "label_ce" if "label_ce" in rows else "label"
    labels = list(dict.fromkeys(rows[key]))
    titles, shared = split_labels(labels)
    ticks = sorted(set(rows["eps255"].round(6)))
    colours = {s: f"C{i}" for i, s in enumerate(sorted(set(rows["series"])))}
    panel = min(4.0, 13.0 / len(labels))  # the whole figure fits a 1400-px window
    fig, axes = panels(1, len(labels), panel, 3.6, sharey=True, layout="constrained")
    for ax, label, title in zip(axes[0], labels, titles, strict=True):
        for series, part in rows[rows[key] == label].groupby("series", sort=True):
            stats = part.groupby("eps255")["accuracy"].agg(["mean", "std", "count"])
            ax.plot(stats.index, stats["mean"], marker="o", label=series, color=colours[series])
            spread = np.nan_to_num(stats["std"].to_numpy())
            if (stats["count"] > 1).any():
                ax.fill_between(stats.index, stats["mean"] - spread, stats["mean"] + spread,
                                color=colours[series], alpha=0.2)  # fmt: skip
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=8)
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set(xlabel="ε (/255)", ylim=(-2, 102))
        ax.set_title(textwrap.fill(title, 28), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("accuracy (%)")
    handles = [plt.Line2D([], [], color=c, marker="o", label=s) for s, c in colours.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    say_shared(fig, shared, "Every run", 160)
    return fig


def attack_examples(images: Tensor, adversarial: Tensor, labels: Tensor,
                    predictions: tuple[Tensor, Tensor], classes: Sequence[str],
                    eps: float | None = None) -> plt.Figure:  # fmt: skip
    """A column per image [B, 3, H, W]: clean, adversarial, perturbation; predictions ([B], [B])."""
    n = images.shape[0]
    fig, axes = panels(3, n, min(2.0, 13.0 / n), 2.2)
    delta = (adversarial - images).detach().cpu()
    scale = float(delta.abs().max()) or 1.0
    for col in range(n):
        truth = int(labels[col])
        show(axes[2, col], delta[col] / (2 * scale) + 0.5)
        for ax, shown, said in zip(axes[:2, col], (images, adversarial), predictions, strict=True):
            show(ax, shown[col])
            ax.set_xlabel(f"predicted: {classes[int(said[col])]}", fontsize=8,
                          color="tab:green" if int(said[col]) == truth else "tab:red")  # fmt: skip
        axes[0, col].set_title(f"true: {classes[truth]}", fontsize=9)
    attacked = f"adversarial (ε = {eps_text(eps)})" if eps is not None else "adversarial"
    for row, name in enumerate(["clean", attacked, "perturbation\n(scaled)"]):
        axes[row, 0].set_ylabel(name, fontsize=9)
    return fig


def ood_figure(results: dict[str, list[tuple]], score: str = "msp") -> plt.Figure:
    """ROC curves per out-set, then risk-coverage; label -> [(record, predictions)] per out-set."""
    outsets = [record["outset"] for record, _ in next(iter(results.values()))]
    fig, (axes,) = panels(1, len(outsets) + 1, 3.6, 3.8)
    for label, found in results.items():
        for ax, (record, predictions) in zip(axes, found, strict=False):
            values = stored_scores(predictions, score)
            fpr, tpr = roc_curve(torch.from_numpy(values["in"]), torch.from_numpy(values["out"]))
            ax.plot(fpr, tpr, lw=1.2, label=f"{label}: {record[f'auroc_{score}']:.1f}")
        values = {k: torch.from_numpy(v) for k, v in stored_scores(found[0][1], score).items()}
        coverage, risk = risk_coverage(values["in"], values["correct"])
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
    return fig
