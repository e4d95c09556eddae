"""Figures for the notebooks and the demo (matplotlib; no side effects on import)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import stats
from torch import Tensor

from regionmix_utils.mixing import MixedBatch, region_mixup, sample_beta, tile_bounds

__all__ = [
    "LiveCurves",
    "MixingExplorer",
    "adversarial_examples",
    "beta_figure",
    "cam_figure",
    "comparison_figure",
    "mixing_figure",
    "soft_label_bars",
    "tile_table",
    "training_curves",
]


def _show(ax, image: Tensor) -> None:
    ax.imshow(image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_grid(ax, mixed: MixedBatch, sample: int, height: int, width: int) -> None:
    """Tile borders, and each tile's lambda and partner, on an axes showing one sample."""
    gh, gw = mixed.lam.shape
    rows, cols = tile_bounds(height, gh), tile_bounds(width, gw)
    for r in rows[1:-1]:
        ax.axhline(r - 0.5, color="white", lw=1)
    for c in cols[1:-1]:
        ax.axvline(c - 0.5, color="white", lw=1)
    if gh * gw > 16:  # labels would not fit
        return
    for i in range(gh):
        for j in range(gw):
            ax.text(
                (cols[j] + cols[j + 1]) / 2 - 0.5,
                (rows[i] + rows[i + 1]) / 2 - 0.5,
                f"λ={float(mixed.lam[i, j]):.2f}\n#{int(mixed.partners[i, j, sample])}",
                ha="center",
                va="center",
                fontsize=7,
                color="white",
                bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0},
            )


def mixing_figure(
    images: Tensor,
    results: dict[str, MixedBatch],
    classes: Sequence[str],
    n_show: int = 4,
) -> Figure:
    """Originals in the first row, then one row per mixing result.

    Args:
        images: [B, 3, H, W] the original batch, in [0, 1].
        results: row title -> MixedBatch of that batch (e.g. {"Region k=2": ...}).
        classes: class names for the soft-label captions.
        n_show: how many samples (columns) to show.
    Returns:
        The figure; Region Mixup rows show each tile's lambda and partner index.
    """
    n_show = min(n_show, images.shape[0])
    fig, axes = plt.subplots(
        1 + len(results), n_show, figsize=(2.3 * n_show, 2.5 * (1 + len(results))), squeeze=False
    )
    height, width = images.shape[2:]
    for col in range(n_show):
        _show(axes[0, col], images[col])
        axes[0, col].set_title(f"#{col}", fontsize=9)
    axes[0, 0].set_ylabel("original")
    for row, (title, mixed) in enumerate(results.items(), start=1):
        for col in range(n_show):
            ax = axes[row, col]
            _show(ax, mixed.images[col])
            if mixed.box is not None:
                top, left, bottom, right = mixed.box
                ax.add_patch(
                    plt.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                                  fill=False, ec="white", lw=1)
                )  # fmt: skip
            else:
                _draw_grid(ax, mixed, col, height, width)
            top2 = torch.topk(mixed.targets[col], min(2, mixed.targets.shape[1]))
            caption = ", ".join(
                f"{classes[int(c)]} {float(w):.2f}"
                for w, c in zip(top2.values, top2.indices, strict=True)
            )
            ax.set_xlabel(caption, fontsize=7)
        axes[row, 0].set_ylabel(title)
    fig.tight_layout()
    return fig


def training_curves(metrics: dict[str, list[dict]]) -> Figure:
    """Train loss and test accuracy per epoch, one line per run (label -> metrics rows)."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    for label, rows in metrics.items():
        ax_loss.plot([r["epoch"] for r in rows], [r["train_loss"] for r in rows], label=label)
        evaluated = [r for r in rows if "test_acc" in r]
        ax_acc.plot([r["epoch"] for r in evaluated], [r["test_acc"] for r in evaluated],
                    marker="o", label=label)  # fmt: skip
    ax_loss.set(xlabel="epoch", ylabel="train loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)")
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    return fig


def cam_figure(
    images: Tensor,
    maps: dict[str, Tensor],
    boxes: Tensor | None = None,
    alpha: float = 0.5,
) -> Figure:
    """Images in the first column, then each method's CAM over them (like Figure 2).

    Args:
        images: [B, 3, H, W] in [0, 1].
        maps: method -> [B, H, W] maps in [0, 1] for the same images.
        boxes: optional [B, 4] object boxes (x0, y0, x1, y1) drawn on every panel.
        alpha: opacity of the heat map.
    """
    n = images.shape[0]
    fig, axes = plt.subplots(n, 1 + len(maps), figsize=(2 * (1 + len(maps)), 2 * n), squeeze=False)
    for row in range(n):
        panels = [("image", None), *maps.items()]
        for col, (title, method_maps) in enumerate(panels):
            ax = axes[row, col]
            _show(ax, images[row])
            if method_maps is not None:
                ax.imshow(method_maps[row].cpu().numpy(), cmap="jet", alpha=alpha, vmin=0, vmax=1)
            if boxes is not None:
                x0, y0, x1, y1 = boxes[row].tolist()
                ax.add_patch(
                    plt.Rectangle(
                        (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="white", lw=1
                    )
                )
            if row == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def beta_figure(alphas: Sequence[float], n_samples: int = 2000, seed: int = 0) -> Figure:
    """Beta(alpha, alpha) densities with histograms of lambdas drawn by the package's sampler."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    grid = np.linspace(0.001, 0.999, 400)
    gen = torch.Generator().manual_seed(seed)
    for alpha in alphas:
        (line,) = ax.plot(grid, stats.beta(alpha, alpha).pdf(grid), label=f"α = {alpha:g}")
        drawn = sample_beta(alpha, n_samples, gen).numpy()
        ax.hist(drawn, bins=40, density=True, alpha=0.25, color=line.get_color())
    ax.set(xlabel="λ", ylabel="density", ylim=(0, 4), title="λ ~ Beta(α, α)")
    ax.legend()
    fig.tight_layout()
    return fig


def soft_label_bars(targets: Tensor, classes: Sequence[str], ax=None):
    """Bar chart of one soft label [K]; returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.5))
    ax.bar(range(len(classes)), targets.detach().cpu().numpy())
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="label weight", ylim=(0, 1))
    return ax


class MixingExplorer:
    """Region Mixup of one batch, redrawn when k, alpha or the random draw change.

    The callbacks (``set_k``, ``set_alpha``, ``resample``) are plain methods, so they can
    be called from a test; ``widget()`` wires them to ipywidgets sliders and a button.

    Args:
        images: [B, 3, H, W] in [0, 1]; labels: [B] class indices.
        classes: class names.
        k, alpha, seed: the starting state.
        sample: which sample of the batch to show.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        classes: Sequence[str],
        k: int = 2,
        alpha: float = 1.0,
        seed: int = 0,
        sample: int = 0,
    ) -> None:
        self.images, self.labels, self.classes = images, labels, list(classes)
        self.k, self.alpha, self.seed, self.sample = k, alpha, seed, sample
        self.figure, axes = plt.subplots(1, 3, figsize=(11, 3.6), width_ratios=[1, 1, 1.6])
        plt.close(self.figure)  # shown by ``widget()``, not by the notebook's backend
        self.ax_image, self.ax_lam, self.ax_label = axes
        self.mixed: MixedBatch | None = None
        self._output = None
        self.redraw()

    def mix(self) -> MixedBatch:
        gen = torch.Generator().manual_seed(self.seed)
        return region_mixup(self.images, self.labels, self.k, self.alpha, len(self.classes), gen)

    def redraw(self) -> None:
        """Mix with the current state and redraw all three panels."""
        self.mixed = self.mix()
        for ax in (self.ax_image, self.ax_lam, self.ax_label):
            ax.clear()
        height, width = self.images.shape[2:]
        _show(self.ax_image, self.mixed.images[self.sample])
        _draw_grid(self.ax_image, self.mixed, self.sample, height, width)
        self.ax_image.set_title(f"k = {self.k}, α = {self.alpha:g}", fontsize=9)
        self.ax_lam.hist(self.mixed.lam.flatten().numpy(), bins=20, range=(0, 1))
        self.ax_lam.set(xlabel="λ of each tile", ylabel="tiles", xlim=(0, 1))
        soft_label_bars(self.mixed.targets[self.sample], self.classes, self.ax_label)
        self.figure.tight_layout()
        if self._output is not None:  # works with the inline backend, in Jupyter and Colab
            from IPython.display import display

            with self._output:
                self._output.clear_output(wait=True)
                display(self.figure)

    def set_k(self, k: int) -> None:
        self.k = int(k)
        self.redraw()

    def set_alpha(self, alpha: float) -> None:
        self.alpha = float(alpha)
        self.redraw()

    def resample(self, _button=None) -> None:
        self.seed += 1
        self.redraw()

    def widget(self):
        """Sliders for k and alpha, a resample button and the figure, wired to the callbacks.

        Returns:
            ipywidgets.VBox([HBox([k slider, alpha slider, button]), Output with the figure]).
        """
        import ipywidgets as widgets

        side = min(self.images.shape[2:])
        k = widgets.IntSlider(value=self.k, min=1, max=min(side, 16), description="k")
        alpha = widgets.FloatLogSlider(value=self.alpha, base=10, min=-2, max=1, description="α")
        button = widgets.Button(description="resample")
        k.observe(lambda change: self.set_k(change["new"]), names="value")
        alpha.observe(lambda change: self.set_alpha(change["new"]), names="value")
        button.on_click(self.resample)
        self._output = widgets.Output()
        self.redraw()
        return widgets.VBox([widgets.HBox([k, alpha, button]), self._output])


class LiveCurves:
    """An ``on_epoch`` callback for ``train`` that redraws the training curves each epoch.

    In a notebook the figure is shown once and updated in place; elsewhere it is only
    kept up to date (``figure``).
    """

    def __init__(self, label: str) -> None:
        self.label, self.rows, self.figure, self._handle = label, [], None, None

    def __call__(self, record: dict) -> None:
        self.rows.append(record)
        if self.figure is not None:
            plt.close(self.figure)
        self.figure = training_curves({self.label: self.rows})
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                if self._handle is None:
                    self._handle = display(self.figure, display_id=True)
                else:
                    self._handle.update(self.figure)
        except ImportError:
            pass
        plt.close(self.figure)


def adversarial_examples(
    images: Tensor, adversarial: Tensor, predictions: tuple[Tensor, Tensor], classes: Sequence[str]
) -> Figure:
    """Clean images, their adversarial versions and the (amplified) perturbation.

    Args:
        images, adversarial: [B, 3, H, W] in [0, 1].
        predictions: (clean predictions [B], adversarial predictions [B]).
    """
    n = images.shape[0]
    fig, axes = plt.subplots(3, n, figsize=(2 * n, 6.3), squeeze=False)
    delta = adversarial - images
    scale = float(delta.abs().max()) or 1.0
    for col in range(n):
        _show(axes[0, col], images[col])
        axes[0, col].set_title(classes[int(predictions[0][col])], fontsize=8)
        _show(axes[1, col], adversarial[col])
        axes[1, col].set_title(classes[int(predictions[1][col])], fontsize=8)
        _show(axes[2, col], delta[col] / (2 * scale) + 0.5)
    for row, name in enumerate(["clean", "adversarial", "perturbation (scaled)"]):
        axes[row, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


def tile_table(
    mixed: MixedBatch,
    sample: int,
    height: int,
    width: int,
    labels: Tensor,
    classes: Sequence[str],
):
    """One row per tile of one mixed sample: where the tile lies, its λ, its partner,
    its area fraction and the label weight it gives the partner's class.

    Returns:
        pandas DataFrame with columns tile, rows, cols, lam, partner, partner_class,
        area, partner_weight.
    """
    import pandas as pd

    gh, gw = mixed.lam.shape
    row_edges, col_edges = tile_bounds(height, gh), tile_bounds(width, gw)
    records = []
    for i in range(gh):
        for j in range(gw):
            partner = int(mixed.partners[i, j, sample])
            area = (row_edges[i + 1] - row_edges[i]) * (col_edges[j + 1] - col_edges[j])
            area /= height * width
            lam = float(mixed.lam[i, j])
            records.append(
                {
                    "tile": (i, j),
                    "rows": f"{row_edges[i]}-{row_edges[i + 1] - 1}",
                    "cols": f"{col_edges[j]}-{col_edges[j + 1] - 1}",
                    "lam": round(lam, 3),
                    "partner": partner,
                    "partner_class": classes[int(labels[partner])],
                    "area": round(area, 4),
                    "partner_weight": round(area * (1 - lam), 4),
                }
            )
    return pd.DataFrame.from_records(records)


def comparison_figure(tables: Sequence) -> Figure:
    """Ours against the paper: one row of panels a table (``results.Table``), one panel
    a dataset (Table 2: a dataset and loss), methods along x, each panel on its own
    scale. Our mean ± std over seeds is filled, the paper's hollow.
    """
    import textwrap

    layouts = []
    for table in tables:
        keys = ["dataset", "ce_row"] if table.number == 2 else ["dataset"]
        rows = list(dict.fromkeys(map(tuple, table.cells[keys].to_numpy())))
        layouts.append((table, keys, rows))
    width = max(len(rows) for _, _, rows in layouts)
    fig = plt.figure(figsize=(4.2 * width, 3.6 * len(layouts)), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(layouts), 1))
    for subfig, (table, keys, rows) in zip(subfigs, layouts, strict=True):
        subfig.suptitle("\n".join(textwrap.wrap(table.caption.split(". ")[0], 110)), fontsize=9)
        axes = np.atleast_1d(subfig.subplots(1, width, squeeze=False)[0])
        labels = list(dict.fromkeys(table.frame.columns.get_level_values(0)))
        for ax, row in zip(axes, rows, strict=False):
            cells = table.cells[(table.cells[keys].apply(tuple, axis=1) == row)]
            for x, label in enumerate(labels):
                for r in cells[cells["label"] == label].itertuples():
                    if r.n > 0:
                        ax.errorbar(x - 0.12, r.mean, yerr=np.nan_to_num(r.std), fmt="o",
                                    color="C0", capsize=3)  # fmt: skip
                    if not np.isnan(r.paper_mean):
                        ax.errorbar(x + 0.12, r.paper_mean, yerr=r.paper_std, fmt="s",
                                    mfc="white", color="C1", capsize=3)  # fmt: skip
            crowded = len(labels) > 3
            ax.set_xticks(
                range(len(labels)),
                [lb if crowded else "\n".join(textwrap.wrap(lb, 14)) for lb in labels],
                fontsize=7, rotation=30 if crowded else 0, ha="right" if crowded else "center",
            )  # fmt: skip
            ax.set_xlim(-0.5, len(labels) - 0.5)
            ax.set_title(" · ".join(row), fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("accuracy (%)")
        for ax in axes[len(rows) :]:
            ax.set_visible(False)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color="C0", label="ours (mean ± std over seeds)"),
        plt.Line2D([], [], marker="s", ls="", mfc="white", color="C1", label="paper (3 runs)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
    return fig
