"""Region Mixup, Mixup and CutMix on batches of images.

Region Mixup (Saha & Garain, "Region Mixup", ICLR 2024 Tiny Papers), equation 1:

    x~ = sum_j M_j * (lambda_j x_A + (1 - lambda_j) x_{B_j})
    y~ = sum_j a_j (lambda_j y_A + (1 - lambda_j) y_{B_j})

The image is cut into a gh x gw grid of tiles (masks M_j); each tile j has its own
lambda_j ~ Beta(alpha, alpha) and its own random permutation of the batch B_j, both
drawn once per call. a_j is the tile's true area fraction, so grids that do not divide
the image evenly still give exact label weights. k = 1 is plain mixup.

Sampling is kept apart from applying, as torchvision's v2 MixUp/CutMix do:
``sample_region_params`` / ``sample_cutmix_params`` draw the random parameters from an
explicit ``torch.Generator``; ``apply_region_mixup`` / ``apply_cutmix`` apply given
parameters to a batch. The application is vectorised: one gather of partner pixels
through a per-pixel partner map and one lerp with a per-pixel lambda map, so the number
of kernels does not grow with k.

Tile row i spans image rows ``(i * H) // gh`` to ``((i + 1) * H) // gh``; columns
likewise.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CutMix",
    "CutMixParams",
    "MixedBatch",
    "Mixup",
    "RandomRegionMixup",
    "RegionMixup",
    "RegionParams",
    "apply_cutmix",
    "apply_region_mixup",
    "cutmix",
    "mixup",
    "random_region_mixup",
    "region_mixup",
    "sample_beta",
    "sample_cutmix_params",
    "sample_random_region_params",
    "sample_region_params",
    "tile_areas",
    "tile_bounds",
    "tile_index",
]

_HALF_DTYPES = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class MixedBatch:
    """The result of a mixing call.

    Attributes:
        images: [B, C, H, W] mixed images; same dtype, device and memory format as the input.
        targets: [B, num_classes] soft labels (float32, or float64 for float64 labels);
            each row sums to 1 when the input labels do.
        lam: [gh, gw] float32, the weight of x_A in each tile (CutMix: [1, 1], the share
            of the image left unpasted).
        partners: [gh, gw, B] int64, the batch index of the partner of each sample in
            each tile (CutMix: [1, 1, B]).
        box: CutMix only: the pasted box as (top, left, bottom, right), bottom/right
            exclusive; None for Region Mixup and Mixup.
        edges: Region Mixup only: (row edges, column edges) of the tiles, gh + 1 and
            gw + 1 pixel positions from 0 to H and W; tile (i, j) spans rows
            [rows[i], rows[i + 1]) and columns [cols[j], cols[j + 1]).
    """

    images: Tensor
    targets: Tensor
    lam: Tensor
    partners: Tensor
    box: tuple[int, int, int, int] | None = None
    edges: tuple[tuple[int, ...], tuple[int, ...]] | None = None


@dataclass(frozen=True)
class RegionParams:
    """Random parameters of one Region Mixup call.

    Attributes:
        lam: [gh, gw] float32, lambda_j ~ Beta(alpha, alpha) for each tile.
        partners: [gh, gw, B] int64; ``partners[i, j]`` is a permutation of the batch.
        row_edges, col_edges: the tiles' edges (gh + 1 and gw + 1 increasing pixel
            positions from 0 to H and W); None for the even grid of ``tile_bounds``.
    """

    lam: Tensor
    partners: Tensor
    row_edges: tuple[int, ...] | None = None
    col_edges: tuple[int, ...] | None = None

    @property
    def grid(self) -> tuple[int, int]:
        return (self.lam.shape[0], self.lam.shape[1])

    def edges(self, height: int, width: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(row edges, column edges) for H x W images."""
        gh, gw = self.grid
        rows = self.row_edges if self.row_edges is not None else tile_bounds(height, gh)
        cols = self.col_edges if self.col_edges is not None else tile_bounds(width, gw)
        return tuple(rows), tuple(cols)


@dataclass(frozen=True)
class CutMixParams:
    """Random parameters of one CutMix call.

    Attributes:
        box: (top, left, bottom, right) of the pasted region, bottom/right exclusive.
        partners: [B] int64 permutation of the batch: the image each sample's box comes from.
        lam_drawn: the lambda drawn from Beta(alpha, alpha) before the box was clipped
            to the image; the label weight uses the box's true area instead.
    """

    box: tuple[int, int, int, int]
    partners: Tensor
    lam_drawn: float


# ----------------------------------------------------------------------------- checks


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a positive finite number, got {alpha!r}")
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a positive finite number (alpha > 0), got {alpha}")
    return float(alpha)


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return value


def _resolve_grid(k: int, grid: tuple[int, int] | None) -> tuple[int, int]:
    """(gh, gw) from k or an explicit grid; the grid, when given, replaces k."""
    if grid is None:
        k = _check_positive_int(k, "k")
        return (k, k)
    if not isinstance(grid, (tuple, list)) or len(grid) != 2:
        raise TypeError(f"grid must be a pair (gh, gw) of integers >= 1, got {grid!r}")
    return (_check_positive_int(grid[0], "grid[0]"), _check_positive_int(grid[1], "grid[1]"))


def _check_grid_fits(grid: tuple[int, int], height: int, width: int, k_given: bool) -> None:
    gh, gw = grid
    if gh > height or gw > width:
        if k_given:
            raise ValueError(
                f"k must be between 1 and min(H, W) = {min(height, width)} for "
                f"{height}x{width} images, got k={gh}"
            )
        raise ValueError(
            f"grid must fit the {height}x{width} images (1 <= gh <= {height}, "
            f"1 <= gw <= {width}), got grid={grid}"
        )


def _check_edges(edges: tuple, grid: tuple[int, int], height: int, width: int) -> None:
    for name, axis, parts, size in (("row_edges", edges[0], grid[0], height),
                                    ("col_edges", edges[1], grid[1], width)):  # fmt: skip
        if (
            len(axis) != parts + 1 or axis[0] != 0 or axis[-1] != size
            or any(b <= a for a, b in itertools.pairwise(axis))
        ):  # fmt: skip
            raise ValueError(
                f"params.{name} must be {parts + 1} increasing pixel positions from 0 to "
                f"{size} (every tile at least one pixel), got {tuple(axis)}"
            )


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor [B, C, H, W], got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must be 4-D [B, C, H, W], got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(
            f"images must be floating point (float32, float16, bfloat16 or float64), "
            f"got {images.dtype}; convert uint8 images with images.float() / 255 first"
        )
    if images.shape[0] < 1:
        raise ValueError("images must hold at least one sample, got batch size 0")


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    if generator.device.type not in ("cpu", device.type):
        raise ValueError(
            f"generator must live on the CPU or on the images' device ({device}), "
            f"got a generator on {generator.device}"
        )


def _labels_to_targets(
    labels: Tensor, batch_size: int, num_classes: int | None, validate: bool = True
) -> Tensor:
    """Checked labels: int64 indices [B] or float soft targets [B, num_classes].

    ``validate=False`` skips every check, the label range among them, which reads the
    labels back from the device (a host-device sync on a GPU).
    """
    if not validate:
        return labels.long() if labels.ndim == 1 else labels
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.shape[:1] != (batch_size,):
        raise ValueError(
            f"labels must have one entry per image (batch size {batch_size}), "
            f"got labels of shape {tuple(labels.shape)}"
        )
    if labels.ndim == 1:
        if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
            raise TypeError(
                f"labels of shape [B] must be integer class indices, got {labels.dtype}; "
                "pass soft targets as a float tensor [B, num_classes]"
            )
        if num_classes is None:
            raise ValueError("num_classes is required when labels are class indices [B]")
        _check_positive_int(num_classes, "num_classes")
        low, high = torch.aminmax(labels)
        if int(low) < 0 or int(high) >= num_classes:
            raise ValueError(
                f"labels must lie in [0, num_classes - 1] = [0, {num_classes - 1}], "
                f"got values from {int(low)} to {int(high)}"
            )
        return labels.long()
    if labels.ndim == 2:
        if not labels.is_floating_point():
            raise TypeError(
                f"labels of shape [B, num_classes] must be float soft targets, got {labels.dtype}"
            )
        if num_classes is not None and labels.shape[1] != num_classes:
            raise ValueError(
                f"labels have {labels.shape[1]} columns but num_classes={num_classes}; "
                "they must agree"
            )
        return labels
    raise ValueError(
        f"labels must be class indices [B] or soft targets [B, num_classes], "
        f"got shape {tuple(labels.shape)}"
    )


# ------------------------------------------------------------------------------ tiles


def tile_bounds(size: int, parts: int) -> list[int]:
    """Edges of ``parts`` tiles along an axis of ``size`` pixels: tile i is [e[i], e[i+1])."""
    return [(i * size) // parts for i in range(parts + 1)]


def tile_areas(
    height: int, width: int, grid: tuple[int, int], edges: tuple | None = None
) -> Tensor:
    """[gh, gw] float64 area fraction a_j of each tile (sums to 1): of the even grid, or
    of the tiles between ``edges`` = (row edges, column edges)."""
    rows, cols = edges or (tile_bounds(height, grid[0]), tile_bounds(width, grid[1]))
    sizes_h = torch.tensor(rows, dtype=torch.float64).diff()
    sizes_w = torch.tensor(cols, dtype=torch.float64).diff()
    return torch.outer(sizes_h, sizes_w) / (height * width)


def tile_index(edges: tuple[int, ...], device: torch.device | None = None) -> Tensor:
    """[size] int64: the tile each pixel row (or column) belongs to, for tile edges
    0 = e_0 < ... < e_n = size."""
    index = [tile for tile, (a, b) in enumerate(itertools.pairwise(edges)) for _ in range(a, b)]
    return torch.tensor(index, device=device)


@dataclass(frozen=True)
class _TilePlan:
    """Index tensors for one (image shape, tile edges, layout, device); built once, cached.

    The partner image is copied in runs of ``run`` contiguous pixels along each image
    row: ``run`` is the gcd of the column-tile edges, so every run lies inside one tile
    column (run = W // gw when gw divides W, 1 in the worst case).
    """

    row_tile: Tensor  # [H] tile row of each pixel row
    run_tile: Tensor  # [W // run] tile column of each run
    pixel_tile: Tensor  # [H, W] flat tile id (i * gw + j) of each pixel
    run_offset: Tensor  # [C, H, R] (NCHW) or [H, R] (NHWC): row of each run within one image
    area: Tensor  # [gh * gw] float64 area fractions
    run: int


@functools.lru_cache(maxsize=64)
def _tile_plan(
    channels: int,
    height: int,
    width: int,
    edges: tuple[tuple[int, ...], tuple[int, ...]],
    channels_last: bool,
    device: torch.device,
) -> _TilePlan:
    row_edges, col_edges = edges
    gw = len(col_edges) - 1
    run = math.gcd(*col_edges)
    runs_per_row = width // run
    row_tile = tile_index(row_edges, device)
    col_tile = tile_index(col_edges, device)
    area = tile_areas(height, width, (len(row_edges) - 1, gw), edges)
    return _TilePlan(
        row_tile=row_tile,
        run_tile=col_tile[::run].contiguous(),
        pixel_tile=row_tile[:, None] * gw + col_tile[None, :],
        run_offset=_run_offsets(channels, height, runs_per_row, channels_last, device),
        area=area.flatten().to(device),
        run=run,
    )


@functools.lru_cache(maxsize=16)
def _run_offsets(
    channels: int, height: int, runs_per_row: int, channels_last: bool, device: torch.device
) -> Tensor:
    """[C, H, R] (NCHW) or [H, R] (NHWC) int32: each run's row within one image. Cached
    apart from the tiles: random grids share it whenever their runs have the same length."""
    shape = (height, runs_per_row) if channels_last else (channels, height, runs_per_row)
    return torch.arange(math.prod(shape), device=device, dtype=torch.int32).view(shape)


def _to_device(tensor: Tensor, device: torch.device) -> Tensor:
    """``tensor`` on ``device``. Parameters drawn on the CPU go to a GPU without blocking:
    a blocking copy would wait for the GPU's queue (a sync in every training step)."""
    return tensor.to(device, non_blocking=tensor.device.type == "cpu")


def _is_channels_last(images: Tensor) -> bool:
    return images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()


def _gather_partners(images: Tensor, partners: Tensor, plan: _TilePlan) -> Tensor:
    """[B, C, H, W] partner image: each tile's pixels taken from that tile's partner.

    Args:
        images: [B, C, H, W], contiguous or channels_last.
        partners: [gh, gw, B] int64 on the images' device.
    Returns:
        out[b, :, h, w] = images[partners[i(h), j(w), b], :, h, w], in the input's layout.
    """
    # [B, H, R]: partner of every run of every image row, by two gathers of contiguous
    # rows (far cheaper than one 3-D gather, or a transposed result).
    batch = partners.shape[-1]
    run_partner = (
        partners.to(torch.int32).permute(2, 0, 1).contiguous()
        .index_select(2, plan.run_tile).index_select(1, plan.row_tile)
    )  # fmt: skip
    per_image = plan.run_offset.numel()
    # int32 indices halve the index arithmetic's memory traffic; int64 for huge batches.
    index_dtype = torch.int32 if batch * per_image < 2**31 else torch.int64
    if _is_channels_last(images):
        nhwc = images.permute(0, 2, 3, 1)  # contiguous view
        rows = torch.add(plan.run_offset.to(index_dtype), run_partner.to(index_dtype),
                         alpha=per_image).view(-1)  # fmt: skip
        runs = nhwc.reshape(-1, plan.run * images.shape[1]).index_select(0, rows)
        return runs.view(nhwc.shape).permute(0, 3, 1, 2)
    offsets = plan.run_offset.to(index_dtype).view(images.shape[1], -1)  # [C, H * R]
    run_partner = run_partner.to(index_dtype).view(batch, 1, -1)
    rows = torch.add(offsets, run_partner, alpha=per_image).view(-1)
    # Runs of one pixel (uneven column tiles) go through the 1-D kernel: several times
    # faster than index_select over rows of length 1.
    source = images.view(-1) if plan.run == 1 else images.view(-1, plan.run)
    return source.index_select(0, rows).view(images.shape)


# --------------------------------------------------------------------------- sampling


def sample_beta(
    alpha: float, n: int, generator: torch.Generator | None = None, device=None
) -> Tensor:
    """[n] float32 samples of Beta(alpha, alpha), drawn from ``generator``.

    Uses Beta(a, a) = G1 / (G1 + G2) with G1, G2 ~ Gamma(a), because
    ``torch.distributions.Beta`` cannot take a generator.
    """
    alpha = _check_alpha(alpha)
    device = generator.device if generator is not None else torch.device(device or "cpu")
    concentration = torch.full((2, n), alpha, dtype=torch.float64, device=device)
    gammas = torch._standard_gamma(concentration, generator=generator)
    # For tiny alpha both draws can underflow to 0 (probability ~1e-6 at alpha = 0.01);
    # the clamp then gives lambda = 0, a point where Beta(alpha, alpha) has its mass.
    total = gammas.sum(0).clamp_min_(torch.finfo(torch.float64).tiny)
    return (gammas[0] / total).float()


_SHUFFLERS = threading.local()  # one numpy generator per thread, reseeded on every call


def _shuffler(seed: int) -> np.random.Generator:
    """A PCG64 numpy generator whose state is set from ``seed`` directly: a fresh
    ``default_rng(seed)`` hashes the seed through a SeedSequence, which costs more than
    the shuffle itself. The torch generator's draw already is a uniform 62-bit number."""
    if not hasattr(_SHUFFLERS, "bits"):
        _SHUFFLERS.bits = np.random.PCG64(0)
        _SHUFFLERS.generator = np.random.Generator(_SHUFFLERS.bits)
        _SHUFFLERS.state = _SHUFFLERS.bits.state
    state = _SHUFFLERS.state
    state["state"] = {"state": seed, "inc": _PCG_INCREMENT}
    state["has_uint32"], state["uinteger"] = 0, 0
    _SHUFFLERS.bits.state = state
    return _SHUFFLERS.generator


_PCG_INCREMENT = 0xDA3E39CB94B95BDB  # any odd increment; fixed, so the stream is the seed's


def _permutations_by_shuffle(n: int, batch_size: int, generator: torch.Generator | None) -> Tensor:
    """[n, batch_size] int64 CPU permutations: numpy's vectorised Fisher-Yates.

    Seeded from the torch generator, so the result is a function of its state alone;
    3-4x faster than sorting on the CPU.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    rows = np.broadcast_to(np.arange(batch_size), (n, batch_size))
    return torch.from_numpy(_shuffler(seed).permuted(rows, axis=1))


def _permutations_by_sort(
    n: int, batch_size: int, generator: torch.Generator | None, device
) -> Tensor:
    """[n, batch_size] int64 permutations as the argsort of float64 uniforms: one kernel
    on a GPU (ties have probability ~2^-53)."""
    keys = torch.rand(n, batch_size, generator=generator, device=device, dtype=torch.float64)
    return keys.argsort(dim=1)


def _random_permutations(
    n: int, batch_size: int, generator: torch.Generator | None, device
) -> Tensor:
    """[n, batch_size] int64: n independent uniform permutations, with no loop over rows."""
    device = torch.device(device or "cpu")
    if device.type == "cpu":
        return _permutations_by_shuffle(n, batch_size, generator)
    return _permutations_by_sort(n, batch_size, generator, device)


def sample_region_params(
    batch_size: int,
    grid: tuple[int, int] = (2, 2),
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
    device=None,
) -> RegionParams:
    """Draw one lambda ~ Beta(alpha, alpha) and one batch permutation per tile.

    Args:
        batch_size: B.
        grid: (gh, gw) tiles; (k, k) for the paper's k x k grid.
        alpha: Beta concentration, > 0.
        generator: the source of randomness; parameters are drawn on its device.
        device: where to draw when no generator is given (default CPU).
    Returns:
        RegionParams with lam [gh, gw] and partners [gh, gw, B].
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    gh, gw = _resolve_grid(1, grid)
    if generator is not None:
        device = generator.device
    lam = sample_beta(alpha, gh * gw, generator, device).view(gh, gw)
    partners = _random_permutations(gh * gw, batch_size, generator, lam.device)
    return RegionParams(lam=lam, partners=partners.view(gh, gw, batch_size))


def _check_sides(sides) -> tuple[int, ...]:
    if not isinstance(sides, (tuple, list)) or not sides:
        raise TypeError(f"sides must be a non-empty tuple of integers >= 1, got {sides!r}")
    return tuple(_check_positive_int(s, "sides[i]") for s in sides)


def _random_cuts(size: int, parts: int, generator, device) -> tuple[int, ...]:
    """Edges 0 = e_0 < e_1 < ... < e_parts = size: the parts - 1 inner cuts are a uniform
    random subset of {1, ..., size - 1}, so every tile has at least one pixel."""
    keys = torch.rand(size - 1, generator=generator, device=device)
    cuts = (keys.argsort()[: parts - 1] + 1).sort().values.tolist()
    return (0, *cuts, size)


def sample_random_region_params(
    batch_size: int,
    height: int,
    width: int,
    sides: tuple[int, ...] = (1, 2, 4),
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
    device=None,
) -> RegionParams:
    """Stochastic Region Mixup: a random grid with random tile edges, drawn per batch.

    The paper (Section 2) leaves "stochasticity into the region selection process" to
    future work; this is one version of it. gh and gw are drawn independently and
    uniformly from ``sides`` (sides larger than the image are skipped), the inner tile
    edges uniformly at random (every tile at least one pixel), so tiles are unequal;
    each tile then gets its own lambda ~ Beta(alpha, alpha) and its own partner, as in
    equation 1, and its label weight is its true area.

    Returns:
        RegionParams with lam [gh, gw], partners [gh, gw, B] and both edge tuples.
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    height, width = _check_positive_int(height, "height"), _check_positive_int(width, "width")
    sides = _check_sides(sides)
    if generator is not None:
        device = generator.device
    fit_h, fit_w = [s for s in sides if s <= height], [s for s in sides if s <= width]
    if not fit_h or not fit_w:
        raise ValueError(
            f"sides must hold a grid side that fits the {height}x{width} images, got {sides}"
        )
    keys = torch.rand(2, generator=generator, device=device, dtype=torch.float64).tolist()
    gh, gw = fit_h[int(keys[0] * len(fit_h))], fit_w[int(keys[1] * len(fit_w))]
    rows = _random_cuts(height, gh, generator, device)
    cols = _random_cuts(width, gw, generator, device)
    lam = sample_beta(alpha, gh * gw, generator, device).view(gh, gw)
    partners = _random_permutations(gh * gw, batch_size, generator, lam.device)
    return RegionParams(lam, partners.view(gh, gw, batch_size), rows, cols)


def sample_cutmix_params(
    batch_size: int,
    height: int,
    width: int,
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
    device=None,
) -> CutMixParams:
    """Draw a CutMix box and one batch permutation, as in the CutMix paper (Yun et al., 2019).

    lambda ~ Beta(alpha, alpha); the box has sides ``int(H * sqrt(1 - lambda))`` and
    ``int(W * sqrt(1 - lambda))``, its centre is uniform over the image's pixels, and it
    is clipped to the image (so it may be smaller than drawn; the label weight is then
    taken from the clipped box's true area).
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    height, width = _check_positive_int(height, "height"), _check_positive_int(width, "width")
    if generator is not None:
        device = generator.device
    lam = float(sample_beta(alpha, 1, generator, device)[0])
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    centre = torch.rand(2, generator=generator, device=device, dtype=torch.float64)
    cy, cx = int(centre[0] * height), int(centre[1] * width)
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    partners = _random_permutations(1, batch_size, generator, device)[0]
    return CutMixParams(box=(top, left, bottom, right), partners=partners, lam_drawn=lam)


# --------------------------------------------------------------------------- applying


def _mix_targets(labels: Tensor, num_classes: int, weights: Tensor, partners: Tensor) -> Tensor:
    """Soft targets y~[b] = weights[0] y[b] + sum_t weights[t + 1] y[partners[t, b]].

    Args:
        labels: int64 class indices [B] or float targets [B, K].
        weights: [T + 1] label weights: x_A's total, then each tile's partner.
        partners: [T, B] int64.
    Returns:
        [B, K] float32 (float64 if the labels are float64).
    """
    out_dtype = torch.float64 if labels.dtype == torch.float64 else torch.float32
    # Summed in float64 and rounded once: with many tiles float32 sums drift from 1.
    weights = _to_device(weights, labels.device).double()
    sources = torch.cat([labels[None], labels[partners]])  # [T + 1, B] or [T + 1, B, K]
    if labels.ndim == 1:
        targets = torch.zeros(labels.shape[0], num_classes, dtype=torch.float64,
                              device=labels.device)  # fmt: skip
        targets.scatter_add_(1, sources.T, weights.expand(labels.shape[0], -1))
    else:
        targets = torch.einsum("t,tbk->bk", weights, sources.double())
    return targets.to(out_dtype)


def apply_region_mixup(
    images: Tensor,
    labels: Tensor,
    params: RegionParams,
    num_classes: int | None = None,
    *,
    validate: bool = True,
) -> MixedBatch:
    """Apply equation 1 with given parameters.

    Args:
        images: [B, C, H, W] floating point, any memory format; not modified.
        labels: int64 class indices [B] (needs num_classes) or float targets [B, K].
        params: lam [gh, gw] and partners [gh, gw, B], e.g. from ``sample_region_params``;
            on the CPU or on the images' device.
        num_classes: K, required for index labels.
        validate: check the arguments. ``False`` is for callers that checked them once
            (the trainer): the label range check reads the labels back from the device.
    Returns:
        MixedBatch (images [B, C, H, W], targets [B, K], lam, partners).
    """
    if validate:
        _check_images(images)
    batch_size, _, height, width = images.shape
    gh, gw = params.grid
    edges = params.edges(height, width)
    if validate:
        _check_grid_fits((gh, gw), height, width, k_given=False)
        if params.partners.shape != (gh, gw, batch_size):
            raise ValueError(
                f"params.partners must have shape (gh, gw, B) = {(gh, gw, batch_size)}, "
                f"got {tuple(params.partners.shape)}"
            )
        _check_edges(edges, (gh, gw), height, width)
    labels = _labels_to_targets(labels, batch_size, num_classes, validate)
    num_classes = num_classes if labels.ndim == 1 else labels.shape[1]
    device = images.device
    lam = _to_device(params.lam, device).float()
    partners = _to_device(params.partners, device)
    channels_last = _is_channels_last(images)
    images_c = images if channels_last else images.contiguous()
    plan = _tile_plan(images.shape[1], height, width, edges, channels_last, device)
    partner_images = _gather_partners(images_c, partners, plan)
    pixel_lam = lam.view(-1)[plan.pixel_tile]  # [H, W]
    # The partner image is a fresh buffer: blending into it in place saves an allocation.
    if images.dtype in _HALF_DTYPES:
        # Blend in float32 and round once, so half-precision output is the correctly
        # rounded value of lambda x_A + (1 - lambda) x_B.
        mixed = partner_images.float().lerp_(images_c.float(), pixel_lam).to(images.dtype)
    else:
        mixed = partner_images.lerp_(images_c, pixel_lam.to(images.dtype))

    lam64 = lam.view(-1).double()
    weights = torch.cat([(plan.area * lam64).sum().view(1), plan.area * (1 - lam64)])
    targets = _mix_targets(labels, num_classes, weights, partners.view(gh * gw, -1))
    return MixedBatch(images=mixed, targets=targets, lam=lam, partners=partners, edges=edges)


def apply_cutmix(
    images: Tensor,
    labels: Tensor,
    params: CutMixParams,
    num_classes: int | None = None,
    *,
    validate: bool = True,
) -> MixedBatch:
    """Paste ``params.box`` of each sample's partner into it; label weight = true box area.

    Args and return as ``apply_region_mixup``; ``lam`` is [1, 1] (the unpasted share)
    and ``partners`` [1, 1, B].
    """
    if validate:
        _check_images(images)
    batch_size, _, height, width = images.shape
    top, left, bottom, right = params.box
    if validate:
        if not (0 <= top <= bottom <= height and 0 <= left <= right <= width):
            raise ValueError(
                f"params.box must lie inside the {height}x{width} image with top <= bottom "
                f"and left <= right, got {params.box}"
            )
        if params.partners.shape != (batch_size,):
            raise ValueError(
                f"params.partners must have shape (B,) = ({batch_size},), "
                f"got {tuple(params.partners.shape)}"
            )
    labels = _labels_to_targets(labels, batch_size, num_classes, validate)
    num_classes = num_classes if labels.ndim == 1 else labels.shape[1]
    partners = _to_device(params.partners, images.device)
    mixed = images.clone()  # clone keeps the memory format
    mixed[:, :, top:bottom, left:right] = images[partners, :, top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / (height * width)
    lam_t = _to_device(torch.tensor([[lam]], dtype=torch.float32), images.device)
    weights = torch.tensor([lam, 1.0 - lam], dtype=torch.float64)
    targets = _mix_targets(labels, num_classes, weights, partners[None])
    return MixedBatch(
        images=mixed, targets=targets, lam=lam_t, partners=partners.view(1, 1, -1), box=params.box
    )


# ---------------------------------------------------------------- one-call functions


def region_mixup(
    images: Tensor,
    labels: Tensor,
    k: int = 2,
    alpha: float = 1.0,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
    grid: tuple[int, int] | None = None,
) -> MixedBatch:
    """Region Mixup of a batch (equation 1): k x k tiles, one lambda and partner per tile.

    Args:
        images: [B, C, H, W] floating point (float32, float16, bfloat16, float64), any
            memory format; never modified in place.
        labels: int64 class indices [B] (then ``num_classes`` is required) or float soft
            targets [B, num_classes].
        k: tiles per side, 1 <= k <= min(H, W); k = 1 is Mixup.
        alpha: Beta(alpha, alpha) concentration, > 0.
        num_classes: number of classes for index labels.
        generator: torch.Generator on the CPU or on the images' device; None uses the
            global RNG of the images' device.
        grid: (gh, gw) for a rectangular grid; replaces k when given.
    Returns:
        MixedBatch with images [B, C, H, W], targets [B, num_classes], lam [gh, gw],
        partners [gh, gw, B].
    """
    _check_images(images)
    alpha = _check_alpha(alpha)
    gh, gw = _resolve_grid(k, grid)
    _check_generator(generator, images.device)
    _check_grid_fits((gh, gw), images.shape[2], images.shape[3], k_given=grid is None)
    params = sample_region_params(images.shape[0], (gh, gw), alpha, generator, images.device)
    return apply_region_mixup(images, labels, params, num_classes)


def random_region_mixup(
    images: Tensor,
    labels: Tensor,
    sides: tuple[int, ...] = (1, 2, 4),
    alpha: float = 1.0,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> MixedBatch:
    """Stochastic Region Mixup of a batch: a random gh x gw grid (each side from
    ``sides``) with random tile edges, one lambda and partner per tile (equation 1),
    label weights from the tiles' true areas. See ``sample_random_region_params``.

    Args and return as ``region_mixup``; ``out.edges`` holds the drawn tile edges.
    """
    _check_images(images)
    alpha = _check_alpha(alpha)
    _check_generator(generator, images.device)
    batch_size, _, height, width = images.shape
    params = sample_random_region_params(
        batch_size, height, width, sides, alpha, generator, images.device
    )
    return apply_region_mixup(images, labels, params, num_classes)


def mixup(
    images: Tensor,
    labels: Tensor,
    alpha: float = 1.0,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> MixedBatch:
    """Mixup (Zhang et al., 2018): exactly ``region_mixup(..., k=1)``."""
    return region_mixup(images, labels, 1, alpha, num_classes, generator)


def cutmix(
    images: Tensor,
    labels: Tensor,
    alpha: float = 1.0,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> MixedBatch:
    """CutMix (Yun et al., 2019); the box is drawn as in ``sample_cutmix_params``.

    Returns a MixedBatch whose ``lam`` [1, 1] is corrected to the pasted box's true
    area, ``partners`` is [1, 1, B] and ``box`` is (top, left, bottom, right).
    """
    _check_images(images)
    alpha = _check_alpha(alpha)
    _check_generator(generator, images.device)
    batch_size, _, height, width = images.shape
    params = sample_cutmix_params(batch_size, height, width, alpha, generator, images.device)
    return apply_cutmix(images, labels, params, num_classes)


# ------------------------------------------------------------------------- transforms


class _BatchMix:
    """Base of the callable transforms: ``images, targets = mix(images, labels)``."""

    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.alpha = _check_alpha(alpha)
        if num_classes is not None:
            _check_positive_int(num_classes, "num_classes")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
        self.num_classes = num_classes
        self.generator = generator

    def mix(self, images: Tensor, labels: Tensor) -> MixedBatch:
        raise NotImplementedError

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Mix a batch after the DataLoader: images [B, C, H, W] -> (images, targets [B, K])."""
        out = self.mix(images, labels)
        return out.images, out.targets


class RegionMixup(_BatchMix):
    """Region Mixup as a batch transform, in the style of torchvision's ``v2.MixUp``.

    >>> mix = RegionMixup(k=2, alpha=1.0, num_classes=10)
    >>> images, targets = mix(images, labels)  # doctest: +SKIP
    """

    def __init__(
        self,
        k: int = 2,
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        grid: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(alpha, num_classes, generator)
        self.k, self.grid = k, _resolve_grid(k, grid)
        self._grid_arg = grid

    def mix(self, images: Tensor, labels: Tensor) -> MixedBatch:
        return region_mixup(
            images, labels, self.k, self.alpha, self.num_classes, self.generator, self._grid_arg
        )

    def __repr__(self) -> str:
        return f"RegionMixup(grid={self.grid}, alpha={self.alpha}, num_classes={self.num_classes})"


class Mixup(RegionMixup):
    """Mixup as a batch transform: Region Mixup with a single tile."""

    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(1, alpha, num_classes, generator)

    def __repr__(self) -> str:
        return f"Mixup(alpha={self.alpha}, num_classes={self.num_classes})"


class CutMix(_BatchMix):
    """CutMix as a batch transform (box drawn as in ``sample_cutmix_params``)."""

    def mix(self, images: Tensor, labels: Tensor) -> MixedBatch:
        return cutmix(images, labels, self.alpha, self.num_classes, self.generator)

    def __repr__(self) -> str:
        return f"CutMix(alpha={self.alpha}, num_classes={self.num_classes})"


class RandomRegionMixup(_BatchMix):
    """Stochastic Region Mixup as a batch transform (``random_region_mixup``)."""

    def __init__(
        self,
        sides: tuple[int, ...] = (1, 2, 4),
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(alpha, num_classes, generator)
        self.sides = _check_sides(sides)

    def mix(self, images: Tensor, labels: Tensor) -> MixedBatch:
        return random_region_mixup(
            images, labels, self.sides, self.alpha, self.num_classes, self.generator
        )

    def __repr__(self) -> str:
        return (
            f"RandomRegionMixup(sides={self.sides}, alpha={self.alpha}, "
            f"num_classes={self.num_classes})"
        )
