"""Figures of the paper's claims (notebook 08): paired differences and the seeds they need."""

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from regionmix_utils.data import get_dataset
from regionmix_utils.evaluation.statistics import plan_seeds, seeds_needed
from regionmix_utils.viz.base import split_labels

VERDICT_COLOURS = {"supported": "tab:green", "contradicted": "tab:red", "not resolved": "grey"}


def claims_forest(cells: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Our Δ = A − B (95% t-interval, by verdict), the paper's Δ, per row. ValueError: none."""
    rows = cells.dropna(subset=["delta"]).reset_index(drop=True)
    if rows.empty:
        raise ValueError("no comparison has paired numbers to plot (see the table's verdicts)")
    sides, shared = split_labels([*rows["a"], *rows["b"]])
    datasets = [get_dataset(d).title for d in dict.fromkeys(rows["dataset"])]
    labels = []
    for r, a, b in zip(rows.itertuples(), sides[: len(rows)], sides[len(rows) :], strict=True):
        where = ["" if pd.isna(r.table) else f"Table {int(r.table)}",
                 get_dataset(r.dataset).title if len(datasets) > 1 else "", r.metric,
                 getattr(r, "status", "")]  # fmt: skip
        labels.append(", ".join(filter(None, where)) + "\n" + textwrap.fill(f"{a} vs {b}", 48))
    # each row as tall as its label (inches), so that no label overlaps the next
    heights = np.array([0.16 * (label.count("\n") + 1) + 0.3 for label in labels])
    y = heights.sum() - np.cumsum(heights) + heights / 2  # each row's centre, the first on top
    fig, ax = plt.subplots(figsize=(10, heights.sum() + 1.5), layout="tight")
    for row, height in zip(rows.itertuples(), y, strict=True):
        colour = VERDICT_COLOURS.get(row.verdict, "grey")
        ax.plot([row.low, row.high], [height, height], color=colour, lw=2)
        ax.plot(row.delta, height, "o", color=colour)
        if not np.isnan(row.paper_delta):
            ax.plot(row.paper_delta, height, "D", mfc="none", mec="black", ms=6)
    ax.axvline(0, color="black", ls="--", lw=0.8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(0, heights.sum())
    ax.set_xlabel("Δ = A − B (points); ● ours with its 95% interval over seeds"
                  + (", ◇ the paper's Δ" if rows["paper_delta"].notna().any() else ""))  # fmt: skip
    handles = [plt.Line2D([], [], color=c, marker="o", label=v)
               for v, c in VERDICT_COLOURS.items() if (rows["verdict"] == v).any()]  # fmt: skip
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="best", title="verdict", title_fontsize=8)
    said = [*(datasets if len(datasets) == 1 else []), *([shared] if shared else [])]
    heading = title or "Declared claims: paired differences over seeds"
    if said:
        heading += "\n" + textwrap.fill("Every configuration: " + ", ".join(said), 110)
    ax.set_title(heading, fontsize=9)
    return fig


def seed_planner_figure(seed_sd: float | dict[str, float],
                        deltas: Sequence[float] = (0.1, 0.2, 0.3, 0.5, 1.0), level: float = 0.05,
                        power: float = 0.8, marks: dict[str, float] | None = None,
                        n_seeds: int | None = None) -> plt.Figure:  # fmt: skip
    """Seeds needed against Δ, a curve per std of the paired Δ (``seed_sd``: one or label -> std),
    ``marks`` (name -> Δ); with ``n_seeds`` a band over the std's 95% interval (``plan_seeds``)."""
    spreads = seed_sd if isinstance(seed_sd, dict) else {f"σ = {seed_sd:.2f}": seed_sd}
    grid = np.linspace(min(deltas), max(deltas), 60)
    fig, ax = plt.subplots(figsize=(7, 4), layout="tight")
    for label, sd in spreads.items():
        line = ax.plot(grid, [seeds_needed(d, sd, level, power) for d in grid], label=label)[0]
        plans = [plan_seeds(d, sd, n_seeds, level, power) for d in grid] if n_seeds else []
        if plans and plans[0].low is not None:
            ax.fill_between(grid, [p.low for p in plans], [p.high for p in plans],
                            color=line.get_color(), alpha=0.2,
                            label=f"range at σ's 95% interval ({n_seeds} seeds)")  # fmt: skip
    for name, value in (marks or {}).items():
        ax.axvline(value, color="grey", ls=":", lw=1)
        ax.text(value, ax.get_ylim()[1], f" {name}", rotation=90, va="top", fontsize=8)
    ax.set(yscale="log", xlabel="difference to resolve, Δ (points)", ylabel="seeds needed")
    ax.set_title(f"Seeds for a two-sided test at {level:g} with {power:.0%} power", fontsize=10)
    ax.legend(fontsize=8)
    return fig
