"""Figures and the live explorer of how the grids mix (notebook 01, the demo)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from io import BytesIO

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats
from torch import Tensor

from regionmix_utils.mixing import (
    MixedBatch,
    RegionParams,
    apply_region_mixup,
    region_mixup,
    sample_beta,
    sample_random_region_params,
    sample_region_params,
    tile_bounds,
    tile_index,
)
from regionmix_utils.progress import headless


def figure_png(figure: Figure, dpi: float = 100) -> bytes:
    """The figure as PNG bytes, figsize x ``dpi`` pixels on a white background. No tight
    bounding box: an explorer's image keeps its size from one redraw to the next."""
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def figure_image():
    """An empty ``ipywidgets.Image`` for an explorer's figure, which the explorer's
    ``redraw`` fills and then updates in place (``image.value = figure_png(figure)``).
    Not an ``Output`` widget: classic Notebook with ipywidgets 7.7.1 (Colab's) and the
    widgetsnbextension 3.6.10 that pip resolves for it cannot create the Output model,
    and the whole explorer then shows as a static figure; Image works in every widget
    frontend."""
    import ipywidgets as widgets

    return widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))


def split_labels(labels: Sequence[str]) -> tuple[list[str], str]:
    """Labels of runs, "Name (word, word, ...)" as ``results.column_label`` writes them,
    without the words in brackets that every label has, and those words to say once in
    a caption: ["Mixup (k=1, epochs=20)", "CutMix (epochs=20)"] -> (["Mixup (k=1)",
    "CutMix"], "epochs=20"). Brackets inside a word ("milestones=(3, 5)") stay whole.
    Labels without brackets come back as they are."""
    parsed = [_label_words(label) for label in labels]
    if not parsed or any(words is None for _, words in parsed):
        return list(labels), ""
    shared = [w for w in parsed[0][1] if all(w in words for _, words in parsed[1:])]
    short = []
    for name, words in parsed:
        kept = [w for w in words if w not in shared]
        short.append(f"{name} ({', '.join(kept)})" if kept else name)
    return short, ", ".join(shared)


def _label_words(label: str) -> tuple[str, list[str] | None]:
    """("Name", ["word", ...]) of "Name (word, word)"; (label, None) without brackets."""
    if not label.endswith(")") or " (" not in label:
        return label, None
    name, inner = label.split(" (", 1)
    words, depth, start = [], 0, 0
    inner = inner[:-1]
    for i, char in enumerate(inner):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and inner.startswith(", ", i):
            words.append(inner[start:i])
            start = i + 2
    return name, [*words, inner[start:]]


def _show(ax, image: Tensor) -> None:
    ax.imshow(image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def _edges(mixed: MixedBatch, height: int, width: int) -> tuple[tuple[int, ...], ...]:
    """(row edges, column edges) of a Region Mixup result (even grid if not recorded)."""
    gh, gw = mixed.lam.shape[:2]
    return mixed.edges or (tuple(tile_bounds(height, gh)), tuple(tile_bounds(width, gw)))


def _label_tiles(ax, edges, text, fontsize: float, boxed: bool = True, colour=None) -> None:
    """Write ``text(i, j)`` at the centre of every tile (colour ``colour(i, j)``), except
    on tiles too thin to hold it (under 1/8 of the image side: random grids make some)."""
    rows, cols = edges
    box = {"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0} if boxed else None
    min_h, min_w = rows[-1] / 8, cols[-1] / 8
    for i, j in np.ndindex(len(rows) - 1, len(cols) - 1):
        if rows[i + 1] - rows[i] < min_h or cols[j + 1] - cols[j] < min_w:
            continue
        ax.text(
            (cols[j] + cols[j + 1]) / 2 - 0.5, (rows[i] + rows[i + 1]) / 2 - 0.5, text(i, j),
            ha="center", va="center", fontsize=fontsize, bbox=box,
            color=colour(i, j) if colour else "white",
        )  # fmt: skip


def _tile_lam(mixed: MixedBatch, sample: int) -> Tensor:
    """[gh, gw] λ of each tile for one sample (λ may be drawn per sample: [gh, gw, B])."""
    return mixed.lam[..., sample] if mixed.lam.ndim == 3 else mixed.lam


def _draw_grid(ax, mixed: MixedBatch, sample: int, height: int, width: int, labels: bool) -> None:
    """Tile borders on an axes showing one sample; with ``labels``, each tile's λ and
    partner too (only where they leave the image readable: 2 x 2 tiles at most)."""
    rows, cols = _edges(mixed, height, width)
    for r in rows[1:-1]:
        ax.axhline(r - 0.5, color="white", lw=1.2)
    for c in cols[1:-1]:
        ax.axvline(c - 0.5, color="white", lw=1.2)
    if labels and (len(rows) - 1) * (len(cols) - 1) <= 4:
        _label_tiles(ax, (rows, cols), lambda i, j: _tile_text(mixed, i, j, sample), fontsize=8)


def _tile_text(mixed: MixedBatch, i: int, j: int, sample: int) -> str:
    """A tile's λ and partner ("λ=0.37\n#5"); a tile paired with the sample itself says
    "itself\nunchanged" instead: its λ blends the image with itself and changes nothing."""
    if _own_partner(mixed, i, j, sample):
        return "itself\nunchanged"
    return f"λ={float(_tile_lam(mixed, sample)[i, j]):.2f}\n{_partner_text(mixed, i, j, sample)}"


def _own_partner(mixed: MixedBatch, i: int, j: int, sample: int) -> bool:
    return int(mixed.partners[i, j, sample]) == sample


def _partner_text(mixed: MixedBatch, i: int, j: int, sample: int) -> str:
    """Tile (i, j)'s partner as "#b", its batch index; "self" when the tile's random
    permutation left the sample in place (RandomPermute can: the tile is unchanged)."""
    return "self" if _own_partner(mixed, i, j, sample) else f"#{int(mixed.partners[i, j, sample])}"


def _self_paired(mixed: MixedBatch, sample: int) -> bool:
    """CutMix (or a one-tile mix) that drew the sample as its own partner: unchanged."""
    return bool((mixed.partners[..., sample] == sample).all())


def split_by_partners(
    results: dict[str, MixedBatch],
) -> tuple[dict[str, MixedBatch], dict[str, MixedBatch]]:
    """(tile by tile, one partner per image): ``results`` in two groups, each in its
    order, for two figures of readable height. The first holds Mixup, Region Mixup and
    random grids (a lambda and a partner per tile), the second CutMix, GridMix, FMix and
    ResizeMix (one partner per image, pasted in a box or through a mask)."""
    tiles = {title: mixed for title, mixed in results.items()
             if mixed.box is None and mixed.mask is None}  # fmt: skip
    return tiles, {title: mixed for title, mixed in results.items() if title not in tiles}


def _row_title(title: str) -> str:
    """A row title broken into lines of at most 20 characters: rotated beside a row of
    32-pixel images, a longer line runs past its row."""
    return textwrap.fill(title, 20, break_on_hyphens=False)


def _label_caption(targets: Tensor, classes: Sequence[str], top: int = 2) -> str:
    """The largest label weights, leaving out classes with no weight."""
    values, indices = torch.topk(targets, min(top, targets.shape[0]))
    return ", ".join(
        f"{classes[int(c)]} {float(w):.2f}" for w, c in zip(values, indices, strict=True) if w > 0
    )


def every_mix(
    images: Tensor,
    labels: Tensor,
    num_classes: int,
    seed: int = 0,
    k_values: Sequence[int] = (2, 4),
    alpha: float = 1.0,
) -> dict[str, MixedBatch]:
    """Every registered mixing method on the same batch, each from the same generator
    seed: label (as in tables) -> MixedBatch; methods that read k once per ``k_values``.
    Methods that mix inside the model (Manifold Mixup) have no mixed image and are left
    out.

    Args:
        images: [B, 3, H, W] in [0, 1]; labels: [B] class indices.
    """
    from regionmix_utils.config import TrainConfig
    from regionmix_utils.methods import methods
    from regionmix_utils.results import column_label

    out = {}
    for method in methods():
        if not method.mixes or method.in_model:
            continue
        for k in k_values if "k" in method.reads else (TrainConfig().k,):
            config = TrainConfig(method=method.name, k=k, alpha=alpha)
            gen = torch.Generator().manual_seed(seed)
            out[column_label(config)] = method.mix(images, labels, num_classes, config, gen)
    return out


def mixing_figure(
    images: Tensor,
    results: dict[str, MixedBatch],
    classes: Sequence[str],
    n_show: int = 4,
    labels: Tensor | None = None,
) -> Figure:
    """Originals in the first row, then one row per mixing result.

    Args:
        images: [B, 3, H, W] the original batch, in [0, 1].
        results: row title -> MixedBatch of that batch (e.g. {"Region k=2": ...}).
        classes: class names for the soft-label captions.
        n_show: how many samples (columns) to show.
        labels: [B] class indices of ``images``: each original's class as its caption.
    Returns:
        The figure: tile borders on Region Mixup rows (with each tile's λ and partner
        where there are at most 2 x 2 tiles; a tile paired with the sample itself says
        "itself"), CutMix's and ResizeMix's box, the outline of GridMix's and FMix's
        mask, and the two largest label weights under each image. A sample paired with
        itself (one partner per image) says so. Row titles are wrapped to their row.
    """
    n_show = min(n_show, images.shape[0])
    fig, axes = plt.subplots(
        1 + len(results), n_show, figsize=(2.3 * n_show, 2.5 * (1 + len(results))), squeeze=False
    )
    height, width = images.shape[2:]
    for col in range(n_show):
        _show(axes[0, col], images[col])
        axes[0, col].set_title(f"#{col}", fontsize=9)
        if labels is not None:
            axes[0, col].set_xlabel(classes[int(labels[col])], fontsize=8)
    axes[0, 0].set_ylabel("original", fontsize=9)
    for row, (title, mixed) in enumerate(results.items(), start=1):
        for col in range(n_show):
            ax = axes[row, col]
            _show(ax, mixed.images[col])
            caption = _label_caption(mixed.targets[col], classes)
            one_partner = mixed.box is not None or mixed.mask is not None
            # CutMix paired with itself pastes the image onto itself: nothing to outline.
            # ResizeMix paired with itself still pastes a shrunk copy: outlined, dashed.
            pasted = not torch.equal(mixed.images[col], images[col])
            if one_partner and _self_paired(mixed, col):
                caption = f"self-paired: {caption}"
            if mixed.mask is not None and pasted:
                mask = mixed.mask.float().cpu().numpy()
                if mask.min() < mask.max():
                    ax.contour(mask, levels=[0.5], colors="white", linewidths=1.0)
            elif mixed.box is not None and pasted:
                top, left, bottom, right = mixed.box
                ax.add_patch(
                    plt.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                                  fill=False, ec="white", lw=1.2,
                                  ls="--" if _self_paired(mixed, col) else "-")
                )  # fmt: skip
            elif not one_partner:
                _draw_grid(ax, mixed, col, height, width, labels=True)
            ax.set_xlabel(caption, fontsize=8)
        axes[row, 0].set_ylabel(_row_title(title), fontsize=9)
    fig.tight_layout()
    return fig


def tile_map(ax, mixed: MixedBatch, sample: int, height: int, width: int) -> None:
    """Each tile of one mixed sample as a map beside the image: colour = the weight of
    the sample itself (λ; 1 on a tile paired with the sample itself, which it keeps
    whole), text = the partner's batch index, or "self" (where it fits)."""
    rows, cols = _edges(mixed, height, width)
    gh, gw = len(rows) - 1, len(cols) - 1
    own = mixed.partners[..., sample].cpu() == sample
    tile_lam = torch.where(own, 1.0, _tile_lam(mixed, sample).float().cpu())
    lam_map = tile_lam.float().cpu()[tile_index(rows)][:, tile_index(cols)]
    image = ax.imshow(lam_map.numpy(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    for r in rows[1:-1]:
        ax.axhline(r - 0.5, color="white", lw=1.2)
    for c in cols[1:-1]:
        ax.axvline(c - 0.5, color="white", lw=1.2)
    if gh * gw <= 64:
        _label_tiles(
            ax, (rows, cols), lambda i, j: _partner_text(mixed, i, j, sample),
            fontsize=max(7, min(12, 16 - max(gh, gw))), boxed=False,
            colour=lambda i, j: "white" if tile_lam[i, j] < 0.6 else "black",
        )  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def mixing_story(
    images: Tensor, mixed: MixedBatch, classes: Sequence[str], labels: Tensor, sample: int = 0
) -> Figure:
    """The story of one mixed image, side by side: x_A, its partners tile by tile (each
    tile taken from that tile's partner), the mixed image, and its soft label.

    Args:
        images: [B, 3, H, W] the batch that was mixed, in [0, 1].
        mixed: the MixedBatch of ``images`` (Region Mixup, Mixup or CutMix).
        labels: [B] class indices of ``images``.
    """
    from regionmix_utils.mixing import RegionParams, apply_region_mixup

    height, width = images.shape[2:]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.5), width_ratios=[1, 1, 1, 1.5])
    _show(axes[0], images[sample])
    axes[0].set_title(f"x_A: #{sample}, {classes[int(labels[sample])]}", fontsize=10)
    if mixed.box is None:
        only_partners = RegionParams(torch.zeros_like(mixed.lam), mixed.partners, *mixed.edges)
        partner_image = apply_region_mixup(images, labels, only_partners, len(classes)).images
        _show(axes[1], partner_image[sample])
        _draw_grid(axes[1], mixed, sample, height, width, labels=False)
        edges = _edges(mixed, height, width)
        if mixed.lam.numel() <= 64:
            _label_tiles(axes[1], edges, lambda i, j: _partner_text(mixed, i, j, sample), 9)
        axes[1].set_title("partners, tile by tile", fontsize=10)
    else:
        partner = int(mixed.partners.flatten()[sample])
        _show(axes[1], images[partner])
        top, left, bottom, right = mixed.box
        axes[1].add_patch(plt.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                                        fill=False, ec="white", lw=1.5))  # fmt: skip
        note = " (itself: nothing changes)" if partner == sample else ""
        axes[1].set_title(f"partner #{partner}, its box{note}", fontsize=10)
    _show(axes[2], mixed.images[sample])
    if mixed.box is None:
        _draw_grid(axes[2], mixed, sample, height, width, labels=False)
    axes[2].set_title("mixed image x~", fontsize=10)
    soft_label_bars(mixed.targets[sample], classes, axes[3])
    axes[3].set_title("soft label y~", fontsize=10)
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
    """Region Mixup of one batch, redrawn when k, α, the grid kind or the draw change.

    Four panels, legible on a 1280 px projector: the mixed image with its tile borders,
    a map of the tiles (colour = each tile's λ, the weight of the shown image itself;
    text = its partner), the histogram of the tiles' λ, and the soft label. The
    callbacks (``set_k``, ``set_alpha``, ``set_random_grid``, ``set_min_side``,
    ``resample``) are plain methods, so they can be called from a test; ``widget()``
    wires them to ipywidgets controls and shows the figure as an ``ipywidgets.Image``,
    redrawn in place (one figure per explorer, reused).

    Args:
        images: [B, 3, H, W] in [0, 1]; labels: [B] class indices.
        classes: class names.
        k, alpha, seed: the starting state.
        sample: which sample of the batch to show.
        random_grid: start with Stochastic Region Mixup (a random grid with random tile
            edges, sides from ``sides``) instead of the k x k grid.
        sides, min_side: the random grid's sides and its thinnest tile in pixels, as
            ``random_region_mixup`` takes them (min_side 1: tiles may be one pixel thin).
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
        random_grid: bool = False,
        sides: tuple[int, ...] = (1, 2, 4),
        min_side: int = 1,
    ) -> None:
        self.images, self.labels, self.classes = images, labels, list(classes)
        self.k, self.alpha, self.seed, self.sample = k, alpha, seed, sample
        self.random_grid, self.sides, self.min_side = random_grid, sides, min_side
        self.figure, axes = plt.subplots(1, 4, figsize=(12.8, 3.6), width_ratios=[1, 1.15, 1, 1.5])
        plt.close(self.figure)  # shown by ``widget()``, not by the notebook's backend
        self.ax_image, self.ax_tiles, self.ax_lam, self.ax_label = axes
        self._colorbar = None
        self.mixed: MixedBatch | None = None
        self._image = None  # the ipywidgets.Image of ``widget()``
        self.redraw()

    def mix(self) -> MixedBatch:
        """Region Mixup of the batch with the current state. A random grid draws its grid
        and edges from one generator and its λ and partners from another (both from
        ``seed``), so that moving min side moves the edges and nothing else."""
        gen = torch.Generator().manual_seed(self.seed)
        n = len(self.classes)
        if not self.random_grid:
            return region_mixup(self.images, self.labels, self.k, self.alpha, n, gen)
        height, width = self.images.shape[2:]
        grid = sample_random_region_params(len(self.images), height, width, self.sides,
                                           self.alpha, gen, min_side=self.min_side)  # fmt: skip
        draw = sample_region_params(len(self.images), grid.grid, self.alpha,
                                    torch.Generator().manual_seed(self.seed))  # fmt: skip
        params = RegionParams(draw.lam, draw.partners, grid.row_edges, grid.col_edges)
        return apply_region_mixup(self.images, self.labels, params, n)

    @property
    def title(self) -> str:
        """The state as the controls show it (α to 3 significant digits)."""
        gh, gw = self.mixed.lam.shape
        grid = f"random {gh} x {gw} grid" if self.random_grid else f"k = {self.k}"
        return f"{grid}, α = {self.alpha:.3g}"

    def redraw(self) -> None:
        """Mix with the current state and redraw all four panels."""
        self.mixed = self.mix()
        for ax in (self.ax_image, self.ax_tiles, self.ax_lam, self.ax_label):
            ax.clear()
        height, width = self.images.shape[2:]
        _show(self.ax_image, self.mixed.images[self.sample])
        _draw_grid(self.ax_image, self.mixed, self.sample, height, width, labels=False)
        self.ax_image.set_title(self.title, fontsize=11)
        colours = tile_map(self.ax_tiles, self.mixed, self.sample, height, width)
        self.ax_tiles.set_title("tiles: λ (colour), partner #", fontsize=11)
        if self._colorbar is None:
            self._colorbar = self.figure.colorbar(colours, ax=self.ax_tiles, fraction=0.046)
            self._colorbar.set_label(f"λ = weight of #{self.sample} itself", fontsize=10)
        self.ax_lam.hist(self.mixed.lam.flatten().cpu().numpy(), bins=20, range=(0, 1))
        self.ax_lam.set(xlabel="λ of each tile", ylabel="tiles", xlim=(0, 1))
        self.ax_lam.yaxis.set_major_locator(MaxNLocator(integer=True))
        soft_label_bars(self.mixed.targets[self.sample], self.classes, self.ax_label)
        self.ax_label.set_title(f"soft label of #{self.sample}", fontsize=11)
        self.figure.tight_layout()
        if self._image is not None:
            self._image.value = figure_png(self.figure)

    def set_k(self, k: int) -> None:
        self.k = int(k)
        self.redraw()

    def set_alpha(self, alpha: float) -> None:
        self.alpha = float(alpha)
        self.redraw()

    def set_random_grid(self, random_grid: bool) -> None:
        self.random_grid = bool(random_grid)
        self.redraw()

    def set_min_side(self, min_side: int) -> None:
        self.min_side = int(min_side)
        self.redraw()

    def resample(self, _button=None) -> None:
        self.seed += 1
        self.redraw()

    def widget(self):
        """Controls for the grid kind, the random grid's thinnest tile, k and α, a
        resample button and the figure.

        Returns:
            ipywidgets.VBox([HBox([grid toggle, min side slider]), HBox([k slider,
            α slider, button]), Image]) (``figure_image``: no Output widget); the k
            slider works on the k x k grid, the min side slider on the random grid. The
            figure alone when the notebook runs headless (``progress.headless``): nobody
            can move a slider there, and nbclient can hang on widget messages
            (jupyter/nbclient#312).
        """
        if headless():
            return self.figure
        import ipywidgets as widgets

        side = min(self.images.shape[2:])
        grid = widgets.ToggleButtons(
            options=[("k x k grid", False), ("random grid", True)], value=self.random_grid,
            description="regions",
        )  # fmt: skip
        k = widgets.IntSlider(value=self.k, min=1, max=min(side, 16), description="k",
                              disabled=self.random_grid)  # fmt: skip
        # Up to the largest minimum at which every side still fits: 8 px for sides up to 4
        # on 32 px images.
        min_side = widgets.IntSlider(
            value=self.min_side, min=1, max=max(self.min_side, side // max(self.sides)),
            description="min side", disabled=not self.random_grid,
        )  # fmt: skip
        alpha = widgets.FloatLogSlider(value=self.alpha, base=10, min=-2, max=1, description="α",
                                       readout_format=".3g")  # fmt: skip
        button = widgets.Button(description="resample")

        def on_grid(change):
            k.disabled, min_side.disabled = change["new"], not change["new"]
            self.set_random_grid(change["new"])

        grid.observe(on_grid, names="value")
        min_side.observe(lambda change: self.set_min_side(change["new"]), names="value")
        k.observe(lambda change: self.set_k(change["new"]), names="value")
        alpha.observe(lambda change: self.set_alpha(change["new"]), names="value")
        button.on_click(self.resample)
        self._image = figure_image()
        self.redraw()
        return widgets.VBox(
            [widgets.HBox([grid, min_side]), widgets.HBox([k, alpha, button]), self._image]
        )


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

    gh, gw = mixed.lam.shape[:2]
    row_edges, col_edges = _edges(mixed, height, width)
    records = []
    for i in range(gh):
        for j in range(gw):
            partner = int(mixed.partners[i, j, sample])
            area = (row_edges[i + 1] - row_edges[i]) * (col_edges[j + 1] - col_edges[j])
            area /= height * width
            lam = float(_tile_lam(mixed, sample)[i, j])
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
