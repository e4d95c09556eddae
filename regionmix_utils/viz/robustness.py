"""Accuracy against the attack budget ε: FGSM and PGD on one panel per method (the ε
sweep of notebook 04 and ``regionmix attack --eps ...``), and adversarial examples with
their true classes."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import Tensor

from regionmix_utils.evaluation.robustness import attack_label
from regionmix_utils.viz.mixing import split_labels

SWEPT = ("fgsm", "pgd")  # the attacks whose ε sweep is drawn


def eps_curves(evaluations: pd.DataFrame, kinds: tuple[str, ...] = SWEPT) -> Figure:
    """One panel per method (column label), accuracy (%) against ε (in 1/255, symlog
    axis), one line per attack setting ("FGSM", "PGD-10", "PGD-50"), one colour per
    setting in every panel and one legend below them: the mean over seeds, with a band
    of ± one standard deviation where there are several. Panel titles name only what
    differs between the runs; the recipe they all share is said once, above the panels
    (``viz.mixing.split_labels``).

    Args:
        evaluations: ``results.collect_evaluations`` rows (other kinds are ignored). Where
            one run has a setting at several image counts, the largest count is drawn;
            where a setting's ε were attacked on different image sets, each set is a
            series of its own, its legend naming the image count.
        kinds: the registry names of the attacks drawn.
    Raises:
        ValueError: no record of ``kinds``.
    """
    rows = evaluations[evaluations["kind"].isin(kinds)] if len(evaluations) else evaluations
    if rows.empty:
        raise ValueError(f"evaluations has no records of the attacks {kinds}; run them first")
    rows = rows.assign(
        attack=[attack_label(r) for r in rows.to_dict("records")], eps255=rows["eps"] * 255
    )
    # One run's setting at several image counts: the largest is drawn. A setting whose ε
    # were attacked on different image sets (all test images at one ε, a sample at
    # others) is drawn as one series per set, named by its count: they are not one curve.
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
    fig, axes = plt.subplots(1, len(labels), figsize=(panel * len(labels), 3.6), squeeze=False,
                             sharey=True, layout="constrained")  # fmt: skip
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
    if shared:
        fig.suptitle(textwrap.fill(f"Every run: {shared}", 160), fontsize=8)
    return fig


def attack_examples(
    images: Tensor,
    adversarial: Tensor,
    labels: Tensor,
    predictions: tuple[Tensor, Tensor],
    classes: Sequence[str],
    eps: float | None = None,
) -> Figure:
    """Clean images, their adversarial versions and the (amplified) perturbation, one
    column per image: over each clean image its true class, under it and under its
    adversarial version what the model predicts; a right prediction is green, a wrong
    one red.

    Args:
        images, adversarial: [B, 3, H, W] in [0, 1].
        labels: [B] true classes.
        predictions: (clean predictions [B], adversarial predictions [B]).
        eps: the attack's budget, named in the row title when given.
    """
    from regionmix_utils.runs import eps_text
    from regionmix_utils.viz.mixing import _show

    n = images.shape[0]
    fig, axes = plt.subplots(3, n, figsize=(min(2.0 * n, 13.0), 6.6), squeeze=False)
    delta = (adversarial - images).detach().cpu()
    scale = float(delta.abs().max()) or 1.0
    for col in range(n):
        truth = int(labels[col])
        clean, attacked = int(predictions[0][col]), int(predictions[1][col])
        _show(axes[0, col], images[col])
        axes[0, col].set_title(f"true: {classes[truth]}", fontsize=9)
        axes[0, col].set_xlabel(f"predicted: {classes[clean]}", fontsize=8,
                                color=_right(clean == truth))  # fmt: skip
        _show(axes[1, col], adversarial[col])
        axes[1, col].set_xlabel(f"predicted: {classes[attacked]}", fontsize=8,
                                color=_right(attacked == truth))  # fmt: skip
        _show(axes[2, col], delta[col] / (2 * scale) + 0.5)
    attacked_name = f"adversarial (ε = {eps_text(eps)})" if eps is not None else "adversarial"
    for row, name in enumerate(["clean", attacked_name, "perturbation\n(scaled)"]):
        axes[row, 0].set_ylabel(name, fontsize=9)
    fig.tight_layout()
    return fig


def _right(correct: bool) -> str:
    return "tab:green" if correct else "tab:red"
