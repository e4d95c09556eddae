"""The k x alpha ablation: overview figure and explorer (notebook 06), and λ per
(tile, sample) against λ per tile."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from regionmix_utils.progress import headless
from regionmix_utils.viz.mixing import figure_image, figure_png


def _metric_against_k(ax, frame, metric: str, how: str, by: str, alpha: float) -> None:
    """``metric`` against k, one line per value of ``by``; random grids as a point of
    their own at the end (they have no k)."""
    from regionmix_utils.ablations import METRICS, RANDOM, aggregate, k_order

    rows = frame[frame["alpha"] == alpha]
    order = k_order(rows["k"])
    names = {
        "clean_ce": {True: "with clean CE", False: "w/o clean CE"},
        "lam_mode": {"batch": "λ per tile (Algorithm 1)", "sample": "λ per tile and sample"},
    }.get(by, {})
    for key, part in rows.groupby(by, sort=True):
        stats = aggregate(part, ["k"], metric, how).set_index("k").reindex(order)
        xs = [i + (0.5 if k == RANDOM else 0) for i, k in enumerate(order)]
        fixed = [i for i, k in enumerate(order) if k != RANDOM]
        line = ax.errorbar([xs[i] for i in fixed], stats["value"].iloc[fixed],
                           yerr=stats["std"].iloc[fixed].fillna(0), marker="o", capsize=3,
                           label=names.get(key, f"{key}"))  # fmt: skip
        if RANDOM in order:
            ax.errorbar(xs[-1], stats["value"].iloc[-1], yerr=np.nan_to_num(stats["std"].iloc[-1]),
                        marker="D", capsize=3, color=line[0].get_color())  # fmt: skip
    ax.set_xticks([i + (0.5 if k == RANDOM else 0) for i, k in enumerate(order)], order)
    ax.set(xlabel="k (tiles per side)", ylabel=METRICS[metric])
    ax.legend(fontsize=8)


def _per_tile(frame):
    """The rows with λ per tile (Algorithm 1): the k x α grid and the clean CE question
    are asked of those (rows from before ``lam_mode`` existed have no such column)."""
    return frame[frame["lam_mode"] == "batch"] if "lam_mode" in frame else frame


class AblationExplorer:
    """The ablation grid of one dataset: a heatmap of the metric over k x α (clean CE
    term on) and the metric against k with and without the clean CE term, random grids
    last. Callbacks (``set_dataset``, ``set_metric``, ``set_aggregation``) are plain
    methods; ``widget()`` wires them to dropdowns and shows the figure as an
    ``ipywidgets.Image``, redrawn in place (see ``viz.mixing.figure_image``).

    Args:
        frame: ``ablations.ablation_frame`` rows.
        metric: "test_acc" or "fgsm"; how: "mean", "median", "min" or "max" over seeds.
    """

    def __init__(self, frame, dataset: str | None = None, metric: str = "test_acc",
                 how: str = "mean") -> None:  # fmt: skip
        self.frame = _per_tile(frame)
        self.datasets = sorted(set(frame["dataset"])) if len(frame) else []
        self.dataset = dataset or (self.datasets[0] if self.datasets else None)
        self.metric, self.how = metric, how
        self.figure, (self.ax_heat, self.ax_k) = plt.subplots(
            1, 2, figsize=(12.8, 4.2), width_ratios=[1, 1.2]
        )
        plt.close(self.figure)
        self._colorbar, self._image = None, None
        self.redraw()

    def redraw(self) -> None:
        from regionmix_utils.ablations import METRICS, aggregate, k_order

        self.ax_heat.clear()
        self.ax_heat.set_axis_on()
        self.ax_k.clear()
        rows = self.frame[self.frame["dataset"] == self.dataset] if self.dataset else self.frame
        if rows.empty or rows[self.metric].isna().all():
            self.ax_heat.text(0.5, 0.5, "no finished runs with this metric", ha="center")
        else:
            grid = rows[rows["clean_ce"] & (rows["method"] == "region")]
            stats = aggregate(grid, ["k", "alpha"], self.metric, self.how)
            ks = k_order(stats["k"])
            alphas = sorted(set(stats["alpha"]))
            value = stats.pivot(index="k", columns="alpha", values="value").reindex(ks)
            spread = stats.pivot(index="k", columns="alpha", values="std").reindex(ks)
            if len(ks) < 2 or len(alphas) < 2:  # one row or column: no grid to read
                self._one_cell(value, spread, ks, alphas)
                default_alpha = 1.0 if 1.0 in alphas else alphas[-1]
                self._against_k(rows, default_alpha)
                self._finish()
                return
            image = self.ax_heat.imshow(value.to_numpy(dtype=float), cmap="viridis",
                                        aspect="auto")  # fmt: skip
            for (i, j), v in np.ndenumerate(value.to_numpy(dtype=float)):
                if not np.isnan(v):
                    s = spread.iloc[i, j]
                    text = f"{v:.1f}" + ("" if np.isnan(s) else f"\n±{s:.1f}")
                    light = image.norm(v) > 0.6  # viridis is light at the top: dark text
                    self.ax_heat.text(j, i, text, ha="center", va="center", fontsize=9,
                                      color="black" if light else "white")  # fmt: skip
            self.ax_heat.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
            self.ax_heat.set_yticks(range(len(ks)), ks)
            self.ax_heat.set(xlabel="α", ylabel="k (tiles per side)")
            if self._colorbar is None:
                self._colorbar = self.figure.colorbar(image, ax=self.ax_heat)
            else:
                self._colorbar.update_normal(image)
            default_alpha = 1.0 if 1.0 in alphas else alphas[-1]
            self._against_k(rows, default_alpha)
        self.ax_heat.set_title(
            f"{self.dataset}: {METRICS[self.metric]}, {self.how} over seeds", fontsize=10
        )
        self._finish()

    def _against_k(self, rows, alpha: float) -> None:
        """The right panel: the metric against k with and without the clean CE term,
        its title naming what the runs hold (random grids only where there are some)."""
        from regionmix_utils.ablations import RANDOM

        _metric_against_k(self.ax_k, rows, self.metric, self.how, "clean_ce", alpha)
        random = " ('random': a random grid per batch)" if (rows["k"] == RANDOM).any() else ""
        self.ax_k.set_title(f"against k at α = {alpha:g}{random}", fontsize=10)

    def _one_cell(self, value, spread, ks, alphas) -> None:
        """No heatmap for a single row or column of the grid: its values as text, and
        what a heatmap would need."""
        from regionmix_utils.ablations import METRICS

        if self._colorbar is not None:
            self._colorbar.remove()
            self._colorbar = None
        cells = [f"k = {k}, α = {a:g}: {value.loc[k, a]:.1f}"
                 + ("" if np.isnan(spread.loc[k, a]) else f" ± {spread.loc[k, a]:.1f}")
                 for k in ks for a in alphas]  # fmt: skip
        self.ax_heat.text(0.5, 0.5, "\n".join([*cells, "", "a k x α heatmap needs runs at",
                                               "several k and several α"]),
                          ha="center", va="center", fontsize=10,
                          transform=self.ax_heat.transAxes)  # fmt: skip
        self.ax_heat.set_axis_off()
        self.ax_heat.set_title(f"{self.dataset}: {METRICS[self.metric]}, {self.how} over seeds",
                               fontsize=10)  # fmt: skip

    def _finish(self) -> None:
        self.figure.tight_layout()
        if self._image is not None:
            self._image.value = figure_png(self.figure)

    def set_dataset(self, dataset: str) -> None:
        self.dataset = dataset
        self.redraw()

    def set_metric(self, metric: str) -> None:
        self.metric = metric
        self.redraw()

    def set_aggregation(self, how: str) -> None:
        self.how = how
        self.redraw()

    def widget(self):
        """Dropdowns for dataset, metric and seed aggregation, and the figure as an
        ``ipywidgets.Image`` (the figure alone when headless, as ``MixingExplorer.widget``).

        Returns:
            ipywidgets.VBox([HBox([dataset, metric]), seeds toggle, Image])."""
        if headless():
            return self.figure
        import ipywidgets as widgets

        from regionmix_utils.ablations import AGGREGATIONS, METRICS

        dataset = widgets.Dropdown(options=self.datasets, value=self.dataset,
                                   description="dataset")  # fmt: skip
        metric = widgets.Dropdown(options=[(v, k) for k, v in METRICS.items()],
                                  value=self.metric, description="metric")  # fmt: skip
        how = widgets.ToggleButtons(options=AGGREGATIONS, value=self.how,
                                    description="seeds")  # fmt: skip
        dataset.observe(lambda change: self.set_dataset(change["new"]), names="value")
        metric.observe(lambda change: self.set_metric(change["new"]), names="value")
        how.observe(lambda change: self.set_aggregation(change["new"]), names="value")
        self._image = figure_image()
        self.redraw()
        return widgets.VBox([widgets.HBox([dataset, metric]), how, self._image])


def ablation_overview(frame, alpha: float = 1.0) -> Figure:
    """Every dataset at once, clean CE term on: test accuracy and FGSM accuracy against
    k (1, 2, ..., random), mean ± std over seeds, one line per dataset."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    frame = _per_tile(frame)
    clean = frame[frame["clean_ce"]]
    for ax, metric in zip(axes, ("test_acc", "fgsm"), strict=True):
        if clean[metric].notna().any():
            _metric_against_k(ax, clean, metric, "mean", "dataset", alpha)
            ax.set_title(f"α = {alpha:g}, clean CE term on, mean ± std over seeds", fontsize=10)
        else:
            ax.text(0.5, 0.5, f"no {metric} results", ha="center")
    fig.tight_layout()
    return fig


def lam_mode_figure(frame, metric: str = "test_acc", how: str = "mean", alpha: float = 1.0):
    """Region Mixup with λ per tile (Algorithm 1) against λ per tile and sample: the
    metric against k, one panel per dataset, clean CE term on, at ``alpha``.

    Args:
        frame: ``ablations.ablation_frame`` rows (with the ``lam_mode`` column).
        metric: "test_acc" or "fgsm"; how: seed aggregation.
    """
    rows = frame[(frame["method"] == "region") & frame["clean_ce"]]
    datasets = sorted(set(rows["dataset"]))
    fig, axes = plt.subplots(1, max(len(datasets), 1), figsize=(6 * max(len(datasets), 1), 3.8),
                             squeeze=False)  # fmt: skip
    for ax, dataset in zip(axes[0], datasets, strict=False):
        part = rows[rows["dataset"] == dataset]
        if part[metric].notna().any():
            _metric_against_k(ax, part, metric, how, "lam_mode", alpha)
        ax.set_title(f"{dataset}: α = {alpha:g}, {how} over seeds", fontsize=10)
    if not datasets:
        axes[0, 0].text(0.5, 0.5, "no finished Region Mixup runs", ha="center")
    fig.tight_layout()
    return fig


def parameter_figure(frame, parameter: str, metric: str = "test_acc", how: str = "mean"):
    """``metric`` against any setting a method declares (a shared one such as alpha,
    or a method's own such as FMix's decay_power): one line per dataset and method
    (with and without the clean CE term), ``how`` over seeds, ± the std over seeds
    for the mean.

    Args:
        frame: ``ablations.ablation_frame`` rows; the runs that have ``parameter``.
        parameter: a column of ``frame`` named after a setting (``methods.declaration``
            gives its symbol for the axis).
        metric: "test_acc" or "fgsm".
    Raises:
        ValueError: no run has ``parameter``.
    """
    from regionmix_utils.ablations import METRICS, aggregate
    from regionmix_utils.methods import declaration, get_method

    if parameter not in frame or frame[parameter].isna().all():
        names = [c for c in frame.columns if c not in ("dataset", "method", "clean_ce",
                                                       "seed", "test_acc", "fgsm")]  # fmt: skip
        raise ValueError(f"no run has parameter {parameter!r}; the runs' parameters: {names}")
    rows = frame.dropna(subset=[parameter])
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for (dataset, method, clean_ce), part in rows.groupby(["dataset", "method", "clean_ce"]):
        stats = aggregate(part, [parameter], metric, how).sort_values(parameter)
        label = f"{dataset}: {get_method(method).label}" + ("" if clean_ce else " w/o clean CE")
        ax.errorbar(stats[parameter], stats["value"], yerr=stats["std"].fillna(0), marker="o",
                    capsize=3, label=label)  # fmt: skip
    symbol = declaration(parameter).symbol
    ax.set(xlabel=f"{symbol} ({parameter})", ylabel=METRICS[metric])
    ax.set_title(f"{how} over seeds" + (" ± std" if how == "mean" else ""), fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


CE_ARMS = {  # (clean_ce, matched_compute) -> how a bar of ``ce_figure`` is named
    (True, False): "with the clean CE term",
    (False, False): "without the clean CE term",
    (False, True): "without it, a second mixed pass instead",
}


def ablated_from(path) -> str:
    """The column label of the configuration a run ablates the clean CE term from: its
    own with the term and one mixed pass ("Region Mixup (k=2, ...)")."""
    import dataclasses
    from pathlib import Path

    from regionmix_utils.records import column_label
    from regionmix_utils.runs import Run

    config = Run(Path(path)).config
    return column_label(dataclasses.replace(config, clean_ce=True, matched_compute=False))


def ce_figure(runs) -> Figure:
    """Test accuracy with and without the clean CE term, one group of bars per
    configuration (``CE_ARMS``: with it, without it, without it and a second mixed pass
    in its place): the mean over seeds with ± one standard deviation, each seed a dot.
    Group names say only what differs between the configurations; the recipe they all
    share is said once, above the plot.

    Args:
        runs: ``results.collect_runs`` rows (one dataset).
    Raises:
        ValueError: no runs.
    """
    import textwrap

    from regionmix_utils.viz.mixing import split_labels

    if runs.empty:
        raise ValueError("runs is empty: no test accuracy to plot")
    rows = runs.assign(base=[ablated_from(p) for p in runs["path"]])
    bases = list(dict.fromkeys(rows["base"]))
    names, shared = split_labels(bases)
    arms = [arm for arm in CE_ARMS if ((rows["clean_ce"] == arm[0])
                                       & (rows["matched_compute"] == arm[1])).any()]  # fmt: skip
    width = 0.8 / len(arms)
    fig, ax = plt.subplots(figsize=(9, 4.4), layout="constrained")
    gen = np.random.default_rng(0)  # the dots' sideways jitter, the same on every redraw
    for j, arm in enumerate(arms):
        part = rows[(rows["clean_ce"] == arm[0]) & (rows["matched_compute"] == arm[1])]
        stats = part.groupby("base")["test_acc"].agg(["mean", "std"]).reindex(bases)
        xs = np.arange(len(bases)) + (j - (len(arms) - 1) / 2) * width
        ax.bar(xs, stats["mean"], width * 0.9, yerr=stats["std"].fillna(0), capsize=4,
               color=f"C{j}", alpha=0.75, label=CE_ARMS[arm])  # fmt: skip
        for x, base in zip(xs, bases, strict=True):
            seeds = part.loc[part["base"] == base, "test_acc"]
            ax.plot(x + gen.uniform(-width / 5, width / 5, len(seeds)), seeds, "o", ms=3,
                    color="black")  # fmt: skip
    ax.set_xticks(range(len(bases)), [textwrap.fill(n, 22) for n in names])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, min(100.0, rows["test_acc"].max() + 8))  # bars start at zero
    seeds = rows.groupby("base")["seed"].nunique()
    count = f"{seeds.max()} seeds" if seeds.min() == seeds.max() else "seeds"
    ax.set_title(f"{', '.join(sorted(set(rows['dataset'])))}: test accuracy, mean ± std over "
                 f"{count} (dots: seeds)", fontsize=10)  # fmt: skip
    fig.legend(loc="outside lower center", ncols=len(arms), fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if shared:
        fig.suptitle(textwrap.fill(f"Every run: {shared}", 120), fontsize=8)
    return fig
