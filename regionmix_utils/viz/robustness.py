"""Accuracy against the attack budget ε: FGSM and PGD on one panel per method (the ε
sweep of notebook 04 and ``regionmix attack --eps ...``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from regionmix_utils.evaluation.robustness import attack_label

SWEPT = ("fgsm", "pgd")  # the attacks whose ε sweep is drawn


def eps_curves(evaluations: pd.DataFrame, kinds: tuple[str, ...] = SWEPT) -> Figure:
    """One panel per method (column label), accuracy (%) against ε (in 1/255, symlog
    axis), one line per attack setting ("FGSM", "PGD-10", "PGD-50"): the mean over seeds,
    with a band of ± one standard deviation where there are several.

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
    labels = list(dict.fromkeys(rows["label_ce"] if "label_ce" in rows else rows["label"]))
    key = "label_ce" if "label_ce" in rows else "label"
    ticks = sorted(set(rows["eps255"].round(6)))
    fig, axes = plt.subplots(1, len(labels), figsize=(4 * len(labels), 3.4), squeeze=False,
                             sharey=True)  # fmt: skip
    for ax, label in zip(axes[0], labels, strict=True):
        for series, part in rows[rows[key] == label].groupby("series", sort=True):
            stats = part.groupby("eps255")["accuracy"].agg(["mean", "std", "count"])
            line = ax.plot(stats.index, stats["mean"], marker="o", label=series)[0]
            spread = np.nan_to_num(stats["std"].to_numpy())
            if (stats["count"] > 1).any():
                ax.fill_between(stats.index, stats["mean"] - spread, stats["mean"] + spread,
                                color=line.get_color(), alpha=0.2)  # fmt: skip
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set(xlabel="ε (/255)", title=label, ylim=(-2, 102))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("accuracy (%)")
    fig.tight_layout()
    return fig
