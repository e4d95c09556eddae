"""How the grids mix (notebook 01, the demo): equation 1 tile by tile, and the explorer."""

import textwrap
from collections.abc import Sequence
from functools import partial

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor

from regionmix_utils import mixing
from regionmix_utils.config import TrainConfig
from regionmix_utils.methods import methods
from regionmix_utils.mixing import MixedBatch, RegionParams, apply_region_mixup, tile_index
from regionmix_utils.records import column_label
from regionmix_utils.viz.base import Explorer, box, panels, show
from regionmix_utils.viz.base import split_labels as split_labels  # notebooks import it here


def _edges(mixed: MixedBatch, height: int, width: int) -> tuple[tuple[int, ...], ...]:
    """(row edges, column edges) of the tiles (the even grid where none are recorded)."""
    return mixed.edges or RegionParams(mixed.lam, mixed.partners).edges(height, width)


def _tile_lam(mixed: MixedBatch, sample: int) -> Tensor:
    """[gh, gw] λ of one sample's tiles (``lam`` is [gh, gw, B] when drawn per sample)."""
    return mixed.lam[..., sample] if mixed.lam.ndim == 3 else mixed.lam


def _tile_text(mixed: MixedBatch, i: int, j: int, sample: int, lam: bool = True) -> str:
    """Tile (i, j)'s partner "#5" (with ``lam``: "λ=0.37\n#5"); a tile paired with the
    sample itself is unchanged whatever its λ, and says so ("self", "itself\nunchanged")."""
    partner = int(mixed.partners[i, j, sample])
    if partner == sample:
        return "itself\nunchanged" if lam else "self"
    return f"λ={float(_tile_lam(mixed, sample)[i, j]):.2f}\n#{partner}" if lam else f"#{partner}"


def _draw_grid(ax, edges) -> None:
    for line, positions in ((ax.axhline, edges[0]), (ax.axvline, edges[1])):
        for p in positions[1:-1]:
            line(p - 0.5, color="white", lw=1.2)


def _label_tiles(ax, edges, text, fontsize: float, boxed: bool = True, colour=None) -> None:
    """``text(i, j)`` at each tile's centre, none on tiles under 1/8 of a side (too thin)."""
    rows, cols = edges
    bbox = {"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0} if boxed else None
    for i, j in np.ndindex(len(rows) - 1, len(cols) - 1):
        if rows[i + 1] - rows[i] < rows[-1] / 8 or cols[j + 1] - cols[j] < cols[-1] / 8:
            continue
        ax.text((cols[j] + cols[j + 1]) / 2 - 0.5, (rows[i] + rows[i + 1]) / 2 - 0.5, text(i, j),
                ha="center", va="center", fontsize=fontsize, bbox=bbox,
                color=colour(i, j) if colour else "white")  # fmt: skip


def _outline(ax, mask: Tensor, lw: float) -> None:
    """The 0.5 level of a mask [H, W] as a white line (none where the mask is constant)."""
    mask = mask.float().cpu().numpy()
    if mask.min() < mask.max():
        ax.contour(mask, levels=[0.5], colors="white", linewidths=lw)


def split_by_partners(results: dict[str, MixedBatch]) -> tuple[dict, dict]:
    """``results`` as (λ and partner per tile: Mixup, Region Mixup; a box or mask: CutMix)."""
    tiles = {title: mixed for title, mixed in results.items()
             if mixed.box is None and mixed.mask is None}  # fmt: skip
    return tiles, {title: mixed for title, mixed in results.items() if title not in tiles}


def every_mix(images: Tensor, labels: Tensor, num_classes: int, seed: int = 0,
              k_values: Sequence[int] = (2, 4), alpha: float = 1.0) -> dict:  # fmt: skip
    """Label -> MixedBatch of every image-mixing method (and k) on images [B, 3, H, W] in [0, 1]."""
    out = {}
    for method in (m for m in methods() if m.mixes and not m.in_model):
        for k in k_values if "k" in method.reads else (TrainConfig().k,):
            config = TrainConfig(method=method.name, k=k, alpha=alpha)
            gen = torch.Generator().manual_seed(seed)
            out[column_label(config)] = method.mix(images, labels, num_classes, config, gen)
    return out


def mixing_figure(images: Tensor, results: dict[str, MixedBatch], classes: Sequence[str],
                  n_show: int = 4, labels: Tensor | None = None) -> plt.Figure:  # fmt: skip
    """The originals [B, 3, H, W] (``labels`` [B] as captions), then a row per result: tile
    borders (λ and partner up to 2 x 2), boxes, mask outlines, the two largest weights."""
    n_show = min(n_show, images.shape[0])
    fig, axes = panels(1 + len(results), n_show, 2.3, 2.5)
    for col, ax in enumerate(axes[0]):
        show(ax, images[col])
        ax.set_title(f"#{col}", fontsize=9)
        ax.set_xlabel("" if labels is None else classes[int(labels[col])], fontsize=8)
    axes[0, 0].set_ylabel("original", fontsize=9)
    for row, (title, mixed) in enumerate(results.items(), start=1):
        for col, ax in enumerate(axes[row]):
            show(ax, mixed.images[col])
            top = torch.topk(mixed.targets[col], min(2, len(classes)))
            caption = ", ".join(f"{classes[int(c)]} {float(w):.2f}"
                                for w, c in zip(*top, strict=True) if w > 0)  # fmt: skip
            one_partner = mixed.box is not None or mixed.mask is not None
            self_paired = bool((mixed.partners[..., col] == col).all())
            # CutMix paired with itself pastes the image onto itself: nothing to outline;
            # ResizeMix paired with itself still pastes a shrunk copy: outlined, dashed.
            pasted = not torch.equal(mixed.images[col], images[col])
            if mixed.mask is not None and pasted:
                _outline(ax, mixed.mask, 1.0)
            elif mixed.box is not None and pasted:
                box(ax, *mixed.box, ls="--" if self_paired else "-")
            elif not one_partner:
                _draw_grid(ax, edges := _edges(mixed, *images.shape[2:]))
                if mixed.lam.shape[0] * mixed.lam.shape[1] <= 4:
                    _label_tiles(ax, edges, partial(_tile_text, mixed, sample=col), 8)
            ax.set_xlabel(("self-paired: " if one_partner and self_paired else "") + caption,
                          fontsize=8)  # fmt: skip
        # wrapped: rotated beside a row of 32-pixel images, a longer line runs past its row
        axes[row, 0].set_ylabel(textwrap.fill(title, 20, break_on_hyphens=False), fontsize=9)
    return fig


def mixing_story(images: Tensor, mixed: MixedBatch, classes: Sequence[str], labels: Tensor,
                 sample: int = 0) -> plt.Figure:  # fmt: skip
    """x_A, its partners tile by tile (one-partner methods: the partner, its box or mask's
    edge), x~ and y~ of a sample, images [B, 3, H, W]."""
    fig, (axes,) = panels(1, 4, 3.25, 3.5, width_ratios=[1, 1, 1, 1.5])
    show(axes[0], images[sample])
    axes[0].set_title(f"x_A: #{sample}, {classes[int(labels[sample])]}", fontsize=10)
    show(axes[2], mixed.images[sample])
    axes[2].set_title("mixed image x~", fontsize=10)
    if mixed.box is None and mixed.mask is None:
        edges = _edges(mixed, *images.shape[2:])
        only_partners = RegionParams(torch.zeros_like(mixed.lam), mixed.partners, *mixed.edges)
        partners = apply_region_mixup(images, labels, only_partners, len(classes)).images
        show(axes[1], partners[sample])
        for ax in axes[1:3]:
            _draw_grid(ax, edges)
        if mixed.lam.numel() <= 64:
            _label_tiles(axes[1], edges, partial(_tile_text, mixed, sample=sample, lam=False), 9)
        axes[1].set_title("partners, tile by tile", fontsize=10)
    else:
        partner = int(mixed.partners.flatten()[sample])
        show(axes[1], images[partner])
        if mixed.box is not None:
            box(axes[1], *mixed.box, lw=1.5)
        else:
            _outline(axes[1], mixed.mask, 1.5)
        note = " (itself: nothing changes)" if partner == sample else ""
        shape = "box" if mixed.box is not None else "mask's edge"
        axes[1].set_title(f"partner #{partner}, its {shape}{note}", fontsize=10)
    soft_label_bars(mixed.targets[sample], classes, axes[3])
    axes[3].set_title("soft label y~", fontsize=10)
    return fig


def beta_figure(alphas: Sequence[float], n_samples: int = 2000, seed: int = 0) -> plt.Figure:
    """Beta(α, α) densities, with histograms of λ drawn by the package's sampler."""
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="tight")
    grid = np.linspace(0.001, 0.999, 400)
    gen = torch.Generator().manual_seed(seed)
    for alpha in alphas:
        (line,) = ax.plot(grid, stats.beta(alpha, alpha).pdf(grid), label=f"α = {alpha:g}")
        drawn = mixing.sample_beta(alpha, n_samples, gen).numpy()
        ax.hist(drawn, bins=40, density=True, alpha=0.25, color=line.get_color())
    ax.set(xlabel="λ", ylabel="density", ylim=(0, 4), title="λ ~ Beta(α, α)")
    ax.legend()
    return fig


def soft_label_bars(targets: Tensor, classes: Sequence[str], ax) -> None:
    """One soft label [K] as bars."""
    ax.bar(range(len(classes)), targets.detach().cpu().numpy())
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="label weight", ylim=(0, 1))


class MixingExplorer(Explorer):
    """Region Mixup of images [B, 3, H, W] (labels [B]) as k, α, grid (random: ``sides``, tiles
    >= ``min_side`` px) or ``seed`` change: ``sample``, its tiles' λ, λ histogram, soft label."""

    def __init__(self, images: Tensor, labels: Tensor, classes: Sequence[str], k: int = 2,
                 alpha: float = 1.0, seed: int = 0, sample: int = 0, random_grid: bool = False,
                 sides: tuple[int, ...] = (1, 2, 4), min_side: int = 1) -> None:  # fmt: skip
        self.images, self.labels, self.classes = images, labels, list(classes)
        self.k, self.alpha, self.seed, self.sample = k, alpha, seed, sample
        self.random_grid, self.sides, self.min_side = random_grid, sides, min_side
        axes = self.start((12.8, 3.6), [1, 1.15, 1, 1.5])
        self.ax_image, self.ax_tiles, self.ax_lam, self.ax_label = axes
        self.redraw()

    def mix(self) -> MixedBatch:
        """Region Mixup now; a random grid's edges and its λ/partners come from two generators,
        so that moving min side moves the edges and nothing else."""
        n, gen = len(self.classes), torch.Generator().manual_seed(self.seed)
        if not self.random_grid:
            return mixing.region_mixup(self.images, self.labels, self.k, self.alpha, n, gen)
        grid = mixing.sample_random_region_params(len(self.images), *self.images.shape[2:],
                                                  self.sides, self.alpha, gen,
                                                  min_side=self.min_side)  # fmt: skip
        draw = mixing.sample_region_params(len(self.images), grid.grid, self.alpha,
                                           torch.Generator().manual_seed(self.seed))  # fmt: skip
        params = RegionParams(draw.lam, draw.partners, grid.row_edges, grid.col_edges)
        return apply_region_mixup(self.images, self.labels, params, n)

    def draw(self) -> None:
        self.mixed, sample = (mixed := self.mix()), self.sample
        rows, cols = edges = _edges(mixed, *self.images.shape[2:])
        show(self.ax_image, mixed.images[sample])
        _draw_grid(self.ax_image, edges)
        gh, gw = len(rows) - 1, len(cols) - 1
        grid = f"random {gh} x {gw} grid" if self.random_grid else f"k = {self.k}"
        self.ax_image.set_title(f"{grid}, α = {self.alpha:.3g}", fontsize=11)
        own = mixed.partners[..., sample].cpu() == sample  # unchanged: all its own weight
        tile_lam = torch.where(own, 1.0, _tile_lam(mixed, sample).float().cpu())
        lam_map = tile_lam[tile_index(rows)][:, tile_index(cols)].numpy()
        colours = self.ax_tiles.imshow(lam_map, cmap="viridis", vmin=0, vmax=1,
                                       interpolation="nearest")  # fmt: skip
        _draw_grid(self.ax_tiles, edges)
        if gh * gw <= 64:
            text = partial(_tile_text, mixed, sample=sample, lam=False)
            _label_tiles(self.ax_tiles, edges, text, max(7, min(12, 16 - max(gh, gw))), False,
                         lambda i, j: "white" if tile_lam[i, j] < 0.6 else "black")  # fmt: skip
        self.ax_tiles.set(xticks=[], yticks=[])
        self.ax_tiles.set_title("tiles: λ (colour), partner #", fontsize=11)
        if self._colorbar is None:
            self._colorbar = self.figure.colorbar(colours, ax=self.ax_tiles, fraction=0.046)
            self._colorbar.set_label(f"λ = weight of #{sample} itself", fontsize=10)
        self.ax_lam.hist(mixed.lam.flatten().cpu().numpy(), bins=20, range=(0, 1))
        self.ax_lam.set(xlabel="λ of each tile", ylabel="tiles", xlim=(0, 1))
        self.ax_lam.yaxis.set_major_locator(plt.MaxNLocator(integer=True))
        soft_label_bars(mixed.targets[sample], self.classes, self.ax_label)
        self.ax_label.set_title(f"soft label of #{sample}", fontsize=11)

    def resample(self, _button=None) -> None:
        self.update(seed=self.seed + 1)

    def controls(self) -> list:
        side = min(self.images.shape[2:])
        grid = widgets.ToggleButtons(options=[("k x k grid", False), ("random grid", True)],
                                     value=self.random_grid, description="regions")  # fmt: skip
        k = widgets.IntSlider(value=self.k, min=1, max=min(side, 16), description="k")
        min_side = widgets.IntSlider(value=self.min_side, min=1, description="min side",
                                     max=max(self.min_side, side // max(self.sides)))  # fmt: skip
        alpha = widgets.FloatLogSlider(value=self.alpha, base=10, min=-2, max=1, description="α",
                                       readout_format=".3g")  # fmt: skip
        button = widgets.Button(description="resample")
        button.on_click(self.resample)
        widgets.dlink((grid, "value"), (k, "disabled"))  # set now, and on each change
        widgets.dlink((grid, "value"), (min_side, "disabled"), lambda random_grid: not random_grid)
        self.bind(random_grid=grid, min_side=min_side, k=k, alpha=alpha)
        return [widgets.HBox([grid, min_side]), widgets.HBox([k, alpha, button])]


def tile_table(mixed: MixedBatch, sample: int, height: int, width: int, labels: Tensor,
               classes: Sequence[str]) -> pd.DataFrame:  # fmt: skip
    """A row per tile of one sample: tile, rows, cols (pixels), lam, partner, partner_class,
    area (a_j), partner_weight (a_j (1 - λ_j), to the partner's class)."""
    rows, cols = _edges(mixed, height, width)
    records = []
    for i, j in np.ndindex(len(rows) - 1, len(cols) - 1):
        partner, lam = int(mixed.partners[i, j, sample]), float(_tile_lam(mixed, sample)[i, j])
        area = (rows[i + 1] - rows[i]) * (cols[j + 1] - cols[j]) / (height * width)
        records.append({"tile": (i, j), "rows": f"{rows[i]}-{rows[i + 1] - 1}",
                        "cols": f"{cols[j]}-{cols[j + 1] - 1}", "lam": round(lam, 3),
                        "partner": partner, "partner_class": classes[int(labels[partner])],
                        "area": round(area, 4),
                        "partner_weight": round(area * (1 - lam), 4)})  # fmt: skip
    return pd.DataFrame.from_records(records)
