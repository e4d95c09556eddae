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
            _metric_against_k(self.ax_k, rows, self.metric, self.how, "clean_ce", default_alpha)
            self.ax_k.set_title(f"α = {default_alpha:g}; random grid: sides 1, 2, 4", fontsize=10)
        self.ax_heat.set_title(
            f"{self.dataset}: {METRICS[self.metric]}, {self.how} over seeds", fontsize=10
        )
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
