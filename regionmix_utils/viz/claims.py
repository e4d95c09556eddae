"""Figures of the paper's claims: a forest plot of the paired differences with their
intervals, and the seed planner's curve (notebook 08)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

VERDICT_COLOURS = {"supported": "tab:green", "contradicted": "tab:red"}


def claims_forest(cells: pd.DataFrame, title: str | None = None) -> Figure:
    """One row per comparison (``results.compare(...).cells``): our Δ = A − B with its
    95% t-interval over seeds (coloured by verdict: green supported, red contradicted, grey not
    resolved), the paper's Δ as an open diamond, and zero as a dashed line. Rows without
    paired numbers (not evaluated, no predictions) are left out.

    Raises:
        ValueError: no row has paired numbers.
    """
    rows = cells.dropna(subset=["delta"]).reset_index(drop=True)
    if rows.empty:
        raise ValueError("no comparison has paired numbers to plot (see the table's verdicts)")
    labels = [
        f"{'Table ' + str(int(r.table)) + ', ' if not pd.isna(r.table) else ''}{r.dataset}, "
        f"{r.metric}\n{textwrap.shorten(r.a, 40)} vs\n{textwrap.shorten(r.b, 40)}"
        for r in rows.itertuples()
    ]
    y = np.arange(len(rows))[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.8 * len(rows) + 1.4))
    for row, height in zip(rows.itertuples(), y, strict=True):
        colour = next((c for v, c in VERDICT_COLOURS.items() if row.verdict == v), "grey")
        ax.plot([row.low, row.high], [height, height], color=colour, lw=2)
        ax.plot(row.delta, height, "o", color=colour)
        if not math.isnan(row.paper_delta):
            ax.plot(row.paper_delta, height, "D", mfc="none", mec="black", ms=6)
    ax.axvline(0, color="black", ls="--", lw=0.8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("Δ = A − B (points); ○ ours with its 95% interval over seeds, ◇ paper")
    ax.set_title(title or "Declared claims: paired differences over seeds", fontsize=10)
    fig.tight_layout()
    return fig


def seed_planner_figure(
    seed_sd: float | dict[str, float],
    deltas: Sequence[float] = (0.1, 0.2, 0.3, 0.5, 1.0),
    level: float = 0.05,
    power: float = 0.8,
    marks: dict[str, float] | None = None,
) -> Figure:
    """Seeds needed (log scale) against the difference to resolve, one curve per
    between-seed standard deviation of the paired Δ (``statistics.seeds_needed``, exact
    t-test power); ``marks`` puts a labelled vertical line at given differences (e.g.
    the paper's 0.30 points).

    Args:
        seed_sd: one standard deviation (points), or label -> standard deviation.
        deltas: the differences (points) on the x axis.
    """
    from regionmix_utils.evaluation.statistics import seeds_needed

    spreads = seed_sd if isinstance(seed_sd, dict) else {f"σ = {seed_sd:.2f}": seed_sd}
    grid = np.linspace(min(deltas), max(deltas), 60)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, sd in spreads.items():
        ax.plot(grid, [seeds_needed(d, sd, level, power) for d in grid], label=label)
    for name, value in (marks or {}).items():
        ax.axvline(value, color="grey", ls=":", lw=1)
        ax.text(value, ax.get_ylim()[1], f" {name}", rotation=90, va="top", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("difference to resolve, Δ (points)")
    ax.set_ylabel("seeds needed")
    ax.set_title(f"Seeds for a two-sided test at {level:g} with {power:.0%} power", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
