"""Shared machinery of the mixing methods: results and parameters, argument checks,
tiles, the partner gather, Beta and permutation sampling, and soft-target mixing.

Tile row i spans image rows ``(i * H) // gh`` to ``((i + 1) * H) // gh``; columns
likewise. The application is vectorised: one gather of partner pixels through a
per-pixel partner map and one lerp with a per-pixel lambda map, so the number of
kernels does not grow with the number of tiles.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

_HALF_DTYPES = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class MixedBatch:
    """The result of a mixing call.

    Attributes:
        images: [B, C, H, W] mixed images; same dtype, device and memory format as the input.
        targets: [B, num_classes] soft labels (float32, or float64 for float64 labels);
            each row sums to 1 when the input labels do.
        lam: [gh, gw] float32, the weight of x_A in each tile (CutMix: [1, 1], the share
            of the image left unpasted); [gh, gw, B] when lambda is drawn per (tile,
            sample) (``lam_mode="sample"``).
        partners: [gh, gw, B] int64, the batch index of the partner of each sample in
            each tile (CutMix: [1, 1, B]).
        box: CutMix only: the pasted box as (top, left, bottom, right), bottom/right
            exclusive; None for Region Mixup and Mixup.
        edges: Region Mixup only: (row edges, column edges) of the tiles, gh + 1 and
            gw + 1 pixel positions from 0 to H and W; tile (i, j) spans rows
            [rows[i], rows[i + 1]) and columns [cols[j], cols[j + 1]).
        mask: GridMix and FMix only: [H, W] float32, the weight of x_A at each pixel.
    """

    images: Tensor
    targets: Tensor
    lam: Tensor
    partners: Tensor
    box: tuple[int, int, int, int] | None = None
    edges: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    mask: Tensor | None = None


@dataclass(frozen=True)
class RegionParams:
    """Random parameters of one Region Mixup call.

    Attributes:
        lam: [gh, gw] float32, lambda_j ~ Beta(alpha, alpha) for each tile; or
            [gh, gw, B], one lambda per (tile, sample) (``lam_mode="sample"``).
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


# torch's narrow float dtypes that numpy has too: their 0-d tensors are read as numpy
# scalars of the same precision, so that ``plain_number`` rounds them as it rounds numpy's.
_NUMPY_OF_TORCH = {torch.float32: np.float32, torch.float16: np.float16}


def plain_number(value: Any) -> Any:
    """A numpy scalar, 0-d array or 0-d tensor as the Python number it holds
    (np.int64(3) -> 3, np.bool_(True) -> True); anything else unchanged.

    A float narrower than float64 (float32, float16) becomes the shortest decimal that
    reads back as the same value at its own precision: np.float32(0.4) -> 0.4, not
    0.4000000059604645. A float32 is the nearest float32 to the decimal that was meant,
    and that decimal is what a run's folder name and a table label print; widening it
    bit for bit would give a setting equal to neither 0.4 nor anything a user wrote.
    """
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        narrow = _NUMPY_OF_TORCH.get(value.dtype)
        value = value.item() if narrow is None else narrow(value.item())
    elif isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return float(np.format_float_positional(value))
    return value.item() if isinstance(value, np.generic) else value


def _as_real(value: Any) -> float | None:
    """``value`` as a Python float (``plain_number``) if it is a real number, numpy's
    too, and not a bool; else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(plain_number(value))


def _check_real(value: Any, name: str, allowed: str) -> float:
    """``value`` as a Python float (``_as_real``). Raises TypeError naming ``name`` and
    what is ``allowed``."""
    number = _as_real(value)
    if number is None:
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    return number


def _check_alpha(alpha: float) -> float:
    alpha = _check_real(alpha, "alpha", "a positive finite number")
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a positive finite number (alpha > 0), got {alpha}")
    return alpha


def _check_positive_int(value: int, name: str) -> int:
    """``value`` as a Python int: any integer, numpy's too, but not a bool; >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


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


LAM_MODES = ("batch", "sample")


def _check_box(box: tuple[int, int, int, int], height: int, width: int) -> None:
    """A pasted box (top, left, bottom, right), bottom/right exclusive, inside the image."""
    top, left, bottom, right = box
    if not (0 <= top <= bottom <= height and 0 <= left <= right <= width):
        raise ValueError(
            f"params.box must lie inside the {height}x{width} image with top <= bottom "
            f"and left <= right, got {box}"
        )


def _check_one_partner(partners: Tensor, batch_size: int) -> None:
    """The [B] partners of a method with one partner per sample."""
    if partners.shape != (batch_size,):
        raise ValueError(
            f"params.partners must have shape (B,) = ({batch_size},), got {tuple(partners.shape)}"
        )


def _check_lam_mode(lam_mode: str) -> str:
    if lam_mode not in LAM_MODES:
        raise ValueError(f"lam_mode must be one of {LAM_MODES}, got {lam_mode!r}")
    return lam_mode


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
    0 = e_0 < ... < e_n = size. Built on the CPU; on another ``device`` it is sent
    without blocking."""
    sizes = torch.tensor([b - a for a, b in itertools.pairwise(edges)])
    index = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    return index if device is None else _to_device(index, torch.device(device))


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


# Plans kept per process. An even grid needs one plan per image shape and layout; a
# random grid (``random_region_mixup``) one per distinct draw of its tile edges. 512
# plans of 64x64 images hold about 17 MB of index tensors on the device. A random grid
# drawn again after its plan left the cache is planned again: a few microseconds on the
# CPU and one copy that does not block.
_PLAN_CACHE_SIZE = 512


@functools.lru_cache(maxsize=_PLAN_CACHE_SIZE)
def _tile_plan(
    channels: int,
    height: int,
    width: int,
    edges: tuple[tuple[int, ...], tuple[int, ...]],
    channels_last: bool,
    device: torch.device,
) -> _TilePlan:
    """The ``_TilePlan`` of one grid, built on the CPU and sent to ``device`` as one
    packed buffer without blocking: a miss costs no host-device sync (a blocking copy
    would wait for the GPU's queue). Cached per distinct (shape, edges, layout, device).
    """
    row_edges, col_edges = edges
    gh, gw = len(row_edges) - 1, len(col_edges) - 1
    run = math.gcd(*col_edges)
    row_tile, col_tile = tile_index(row_edges), tile_index(col_edges)
    area = tile_areas(height, width, (gh, gw), edges).flatten()
    parts = (row_tile, col_tile[::run], (row_tile[:, None] * gw + col_tile[None, :]).flatten())
    # float64 areas travel as their bit patterns in the same int64 buffer: one copy.
    packed = _to_device(torch.cat([*parts, area.view(torch.int64)]), device)
    pieces = packed.split([p.numel() for p in parts] + [area.numel()])
    return _TilePlan(
        row_tile=pieces[0],
        run_tile=pieces[1],
        pixel_tile=pieces[2].view(height, width),
        run_offset=_run_offsets(channels, height, width // run, channels_last, device),
        area=pieces[3].view(torch.float64),
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
    ``torch.distributions.Beta`` cannot take a generator. For alpha >= 1 the gamma draws
    are used as they are. For alpha < 1 both draws underflow to 0 for a large share of
    samples at small alpha (24% at alpha = 0.001), which would give lambda = 1/2 there;
    so the draws are made in log space with the boost Gamma(a) = Gamma(a + 1) U^(1/a)
    (Marsaglia & Tsang, "A simple method for generating gamma variables", 2000; numpy's
    ``Generator.beta`` likewise works in log space, by Johnk's method, when both
    parameters are below 1):

        log G = log Gamma(a + 1) + log(U) / a,   lambda = sigmoid(log G1 - log G2),

    which never underflows, and is exactly symmetric about 1/2.

    Args:
        alpha: concentration, > 0 (0.001 and below are exact).
        n: number of samples.
        generator: the source of randomness; samples are drawn on its device.
        device: where to draw when no generator is given (default CPU).
    Raises:
        TypeError, ValueError: alpha is not a positive finite number.
    """
    alpha = _check_alpha(alpha)
    device = generator.device if generator is not None else torch.device(device or "cpu")
    concentration = torch.full((2, n), alpha, dtype=torch.float64, device=device)
    if alpha >= 1:
        gammas = torch._standard_gamma(concentration, generator=generator)
        # Both draws are >= 0 and their sum is 0 with negligible probability for a >= 1.
        total = gammas.sum(0).clamp_min_(torch.finfo(torch.float64).tiny)
        return (gammas[0] / total).float()
    boosted = torch._standard_gamma(concentration + 1, generator=generator)
    # 1 - U lies in (0, 1]: its log is finite.
    uniform = 1 - torch.rand(2, n, generator=generator, dtype=torch.float64, device=device)
    log_gammas = boosted.log() + uniform.log() / alpha
    return torch.sigmoid(log_gammas[0] - log_gammas[1]).float()


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


# --------------------------------------------------------------------------- applying


def _mix_targets(labels: Tensor, num_classes: int, weights: Tensor, partners: Tensor) -> Tensor:
    """Soft targets y~[b] = weights[0] y[b] + sum_t weights[t + 1] y[partners[t, b]].

    Args:
        labels: int64 class indices [B] or float targets [B, K].
        weights: [T + 1] label weights: x_A's total, then each tile's partner; or
            [T + 1, B], one set per sample (lambda drawn per sample).
        partners: [T, B] int64.
    Returns:
        [B, K] float32 (float64 if the labels are float64).
    """
    out_dtype = torch.float64 if labels.dtype == torch.float64 else torch.float32
    # Summed in float64 and rounded once: with many tiles float32 sums drift from 1.
    weights = _to_device(weights, labels.device).double()
    batch = labels.shape[0]
    per_sample = weights.T if weights.ndim == 2 else weights.expand(batch, -1)  # [B, T + 1]
    sources = torch.cat([labels[None], labels[partners]])  # [T + 1, B] or [T + 1, B, K]
    if labels.ndim == 1:
        targets = torch.zeros(batch, num_classes, dtype=torch.float64, device=labels.device)
        targets.scatter_add_(1, sources.T, per_sample)
    else:
        targets = torch.einsum("bt,tbk->bk", per_sample, sources.double())
    return targets.to(out_dtype)


def _one_partner_targets(
    labels: Tensor, num_classes: int, lam: float | Tensor, partners: Tensor, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Targets [B, K] = lam y + (1 - lam) y[partners] and lam as [1, 1] float32 on
    ``device``, for the methods with one partner per sample (CutMix, GridMix, FMix,
    ResizeMix); ``lam`` is x_A's true share of the image."""
    lam64 = torch.as_tensor(lam, dtype=torch.float64).cpu()
    weights = torch.stack([lam64, 1.0 - lam64])
    targets = _mix_targets(labels, num_classes, weights, partners[None])
    return targets, _to_device(lam64.float().view(1, 1), device)
