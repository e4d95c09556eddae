"""Ablation figures (notebooks 03 and 06): the k x α grid, λ per tile or sample, the CE term."""

import dataclasses
import textwrap
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from regionmix_utils.ablations import AGGREGATIONS, METRICS, RANDOM, aggregate, k_order
from regionmix_utils.data import get_dataset
from regionmix_utils.methods import declaration, get_method, setting_names
from regionmix_utils.records import column_label
from regionmix_utils.runs import Run
from regionmix_utils.viz.base import Explorer, panels, say_shared, split_labels

LINE_NAMES = {  # column -> value -> legend entry of ``_metric_against_k``
    "clean_ce": {True: "with clean CE", False: "w/o clean CE"},
    "lam_mode": {"batch": "λ per tile (Algorithm 1)", "sample": "λ per tile and sample"},
}
# (clean_ce, matched_compute) -> a bar of ``ce_figure``
CE_ARMS = {(True, False): "with the clean CE term", (False, False): "without the clean CE term",
           (False, True): "without it, a second mixed pass instead"}  # fmt: skip


def _metric_against_k(ax, frame, metric: str, how: str, by: str, alpha: float) -> None:
    """``metric`` against k at ``alpha``, a line per ``by`` ± std over seeds; random grids last."""
    rows = frame[frame["alpha"] == alpha]
    order = k_order(rows["k"])
    xs = [i + (0.5 if k == RANDOM else 0) for i, k in enumerate(order)]
    fixed = [i for i, k in enumerate(order) if k != RANDOM]
    for key, part in rows.groupby(by, sort=True):
        stats = aggregate(part, ["k"], metric, how).set_index("k").reindex(order)
        line = ax.errorbar([xs[i] for i in fixed], stats["value"].iloc[fixed],
                           yerr=stats["std"].iloc[fixed].fillna(0), marker="o", capsize=3,
                           label=LINE_NAMES.get(by, {}).get(key, f"{key}"))  # fmt: skip
        if RANDOM in order:
            ax.errorbar(xs[-1], stats["value"].iloc[-1], yerr=np.nan_to_num(stats["std"].iloc[-1]),
                        marker="D", capsize=3, color=line[0].get_color())  # fmt: skip
    ax.set_xticks(xs, order)
    ax.set(xlabel="k (tiles per side)", ylabel=METRICS[metric])
    ax.legend(fontsize=8)


def _plus_minus(value: float, spread: float, sep: str = " ± ") -> str:
    return f"{value:.1f}" + ("" if np.isnan(spread) else f"{sep}{spread:.1f}")


def _per_tile(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with λ per tile (Algorithm 1; frames from before ``lam_mode`` are all)."""
    return frame[frame["lam_mode"] == "batch"] if "lam_mode" in frame else frame


class AblationExplorer(Explorer):
    """One dataset's metric over k x α (clean CE on), and against k with and without CE."""

    def __init__(self, frame, dataset: str | None = None, metric: str = "test_acc",
                 how: str = "mean") -> None:  # fmt: skip
        self.frame = _per_tile(frame)
        self.datasets = sorted(set(frame["dataset"])) if len(frame) else []
        self.dataset = dataset or (self.datasets[0] if self.datasets else None)
        self.metric, self.how = metric, how
        self.ax_heat, self.ax_k = self.start((12.8, 4.2), [1, 1.2])
        self.redraw()

    def draw(self) -> None:
        self.ax_heat.set_title(f"{self.dataset}: {METRICS[self.metric]}, {self.how} over seeds",
                               fontsize=10)  # fmt: skip
        rows = self.frame[self.frame["dataset"] == self.dataset] if self.dataset else self.frame
        if rows.empty or rows[self.metric].isna().all():
            self.ax_heat.text(0.5, 0.5, "no finished runs with this metric", ha="center")
            return
        grid = rows[rows["clean_ce"] & (rows["method"] == "region")]
        stats = aggregate(grid, ["k", "alpha"], self.metric, self.how)
        ks, alphas = k_order(stats["k"]), sorted(set(stats["alpha"]))
        value, spread = (stats.pivot(index="k", columns="alpha", values=column).reindex(ks)
                         for column in ("value", "std"))  # fmt: skip
        if len(ks) > 1 and len(alphas) > 1:
            image = self.ax_heat.imshow(value.to_numpy(float), cmap="viridis", aspect="auto")
            for (i, j), v in np.ndenumerate(value.to_numpy(float)):
                if not np.isnan(v):  # viridis is light at the top: dark text there
                    colour = "black" if image.norm(v) > 0.6 else "white"
                    self.ax_heat.text(j, i, _plus_minus(v, spread.iloc[i, j], "\n±"), ha="center",
                                      va="center", fontsize=9, color=colour)  # fmt: skip
            self.ax_heat.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
            self.ax_heat.set_yticks(range(len(ks)), ks)
            self.ax_heat.set(xlabel="α", ylabel="k (tiles per side)")
            if self._colorbar is None:
                self._colorbar = self.figure.colorbar(image, ax=self.ax_heat)
            self._colorbar.update_normal(image)
        else:
            if self._colorbar is not None:
                self._colorbar.remove()
                self._colorbar = None
            cells = [f"k = {k}, α = {a:g}: " + _plus_minus(value.loc[k, a], spread.loc[k, a])
                     for k in ks for a in alphas]  # fmt: skip
            text = [*cells, "", "a k x α heatmap needs runs at", "several k and several α"]
            self.ax_heat.text(0.5, 0.5, "\n".join(text), ha="center", va="center", fontsize=10,
                              transform=self.ax_heat.transAxes)  # fmt: skip
            self.ax_heat.set_axis_off()
        alpha = 1.0 if 1.0 in alphas else alphas[-1]
        _metric_against_k(self.ax_k, rows, self.metric, self.how, "clean_ce", alpha)
        random = " ('random': a random grid per batch)" if (rows["k"] == RANDOM).any() else ""
        self.ax_k.set_title(f"against k at α = {alpha:g}{random}", fontsize=10)

    def controls(self) -> list:
        dataset = widgets.Dropdown(options=self.datasets, value=self.dataset, description="dataset")
        metric = widgets.Dropdown(options=[(v, k) for k, v in METRICS.items()],
                                  value=self.metric, description="metric")  # fmt: skip
        how = widgets.ToggleButtons(options=AGGREGATIONS, value=self.how, description="seeds")
        self.bind(dataset=dataset, metric=metric, how=how)
        return [widgets.HBox([dataset, metric]), how]


def ablation_overview(frame, alpha: float = 1.0) -> plt.Figure:
    """Test and FGSM accuracy against k, clean CE term on, mean ± std, a line per dataset."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), layout="tight")
    clean = _per_tile(frame[frame["clean_ce"]])
    for ax, metric in zip(axes, ("test_acc", "fgsm"), strict=True):
        if clean[metric].notna().any():
            _metric_against_k(ax, clean, metric, "mean", "dataset", alpha)
            ax.set_title(f"α = {alpha:g}, clean CE term on, mean ± std over seeds", fontsize=10)
        else:
            ax.text(0.5, 0.5, f"no {metric} results", ha="center")
    return fig


def lam_mode_figure(frame, metric: str = "test_acc", how: str = "mean", alpha: float = 1.0):
    """``metric`` against k with λ per tile (Algorithm 1) and per tile and sample, per dataset."""
    rows = frame[(frame["method"] == "region") & frame["clean_ce"]]
    datasets = list(rows.groupby("dataset"))
    fig, axes = panels(1, max(len(datasets), 1), 6, 3.8)
    for ax, (dataset, part) in zip(axes[0], datasets, strict=False):
        if part[metric].notna().any():
            _metric_against_k(ax, part, metric, how, "lam_mode", alpha)
        ax.set_title(f"{get_dataset(dataset).title}: α = {alpha:g}, {how} over seeds", fontsize=10)
    if not datasets:
        axes[0, 0].text(0.5, 0.5, "no finished Region Mixup runs", ha="center")
    return fig


def parameter_figure(frame, parameter: str, metric: str = "test_acc", how: str = "mean"):
    """``metric`` against ``parameter`` per dataset, method and CE term. ValueError: none has it."""
    if parameter not in frame or frame[parameter].isna().all():
        names = [c for c in frame.columns if c in setting_names()]
        raise ValueError(f"no run has parameter {parameter!r}; the runs' parameters: {names}")
    fig, ax = plt.subplots(figsize=(6, 3.8), layout="tight")
    rows = frame.dropna(subset=[parameter])
    for (dataset, method, clean_ce), part in rows.groupby(["dataset", "method", "clean_ce"]):
        stats = aggregate(part, [parameter], metric, how).sort_values(parameter)
        label = f"{get_dataset(dataset).title}: {get_method(method).label}"
        ax.errorbar(stats[parameter], stats["value"], yerr=stats["std"].fillna(0), marker="o",
                    capsize=3, label=label + ("" if clean_ce else " w/o clean CE"))  # fmt: skip
    ax.set(xlabel=f"{declaration(parameter).symbol} ({parameter})", ylabel=METRICS[metric])
    ax.set_title(f"{how} over seeds" + (" ± std" if how == "mean" else ""), fontsize=10)
    ax.legend(fontsize=8)
    return fig


def ablated_from(path) -> str:
    """The column label of the run's configuration with the clean CE term and one mixed pass."""
    config = Run(Path(path)).config
    return column_label(dataclasses.replace(config, clean_ce=True, matched_compute=False))


def ce_figure(runs) -> plt.Figure:
    """Test accuracy of ``results.collect_runs`` rows: per configuration a bar (mean ± std) per
    arm of ``CE_ARMS``, each seed a dot. ValueError: no runs."""
    if runs.empty:
        raise ValueError("runs is empty: no test accuracy to plot")
    rows = runs.assign(base=[ablated_from(p) for p in runs["path"]])
    bases = list(dict.fromkeys(rows["base"]))
    names, shared = split_labels(bases)
    arm_of = list(zip(rows["clean_ce"], rows["matched_compute"], strict=True))
    arms = [arm for arm in CE_ARMS if arm in arm_of]
    width = 0.8 / len(arms)
    fig, ax = plt.subplots(figsize=(9, 4.4), layout="constrained")
    gen = np.random.default_rng(0)  # the dots' sideways jitter, the same on every redraw
    for j, arm in enumerate(arms):
        part = rows[[a == arm for a in arm_of]]
        stats = part.groupby("base")["test_acc"].agg(["mean", "std"]).reindex(bases)
        xs = np.arange(len(bases)) + (j - (len(arms) - 1) / 2) * width
        ax.bar(xs, stats["mean"], width * 0.9, yerr=stats["std"].fillna(0), capsize=4,
               color=f"C{j}", alpha=0.75, label=CE_ARMS[arm])  # fmt: skip
        for x, base in zip(xs, bases, strict=True):
            seeds = part.loc[part["base"] == base, "test_acc"]
            ax.plot(x + gen.uniform(-width / 5, width / 5, len(seeds)), seeds, "ko", ms=3)
    ax.set_xticks(range(len(bases)), [textwrap.fill(n, 22) for n in names])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, min(100.0, rows["test_acc"].max() + 8))  # bars start at zero
    seeds = rows.groupby("base")["seed"].nunique()
    count = f"{seeds.max()} seeds" if seeds.min() == seeds.max() else "seeds"
    datasets = ", ".join(get_dataset(d).title for d in sorted(set(rows["dataset"])))
    ax.set_title(f"{datasets}: test accuracy, mean ± std over {count} (dots: seeds)", fontsize=10)
    fig.legend(loc="outside lower center", ncols=len(arms), fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    say_shared(fig, shared, "Every run", 120)
    return fig
