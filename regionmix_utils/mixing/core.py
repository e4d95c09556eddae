"""Equation 1 and the mixup family on batches: settings, checks, parameters, and the three
kernels (``apply_*``: one region gather-and-blend, one mask blend, one resized paste)."""

import functools
import itertools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["LAM_MODES", "CutMixParams", "MaskParams", "MixedBatch", "RegionParams", "ResizeParams",
           "apply_cutmix", "apply_mask_mix", "apply_region_mixup", "apply_resizemix",
           "tile_areas", "tile_bounds", "tile_index"]  # fmt: skip

LAM_MODES = ("batch", "sample")
# torch's narrow floats that numpy has too: read as numpy scalars of the same precision.
_NUMPY_OF_TORCH = {torch.float32: np.float32, torch.float16: np.float16}


def plain_number(value: Any) -> Any:
    """A numpy scalar, 0-d array or 0-d tensor as its Python number; else unchanged. A
    narrow float becomes its shortest decimal (np.float32(0.4) -> 0.4), as folders print."""
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        narrow = _NUMPY_OF_TORCH.get(value.dtype)
        value = value.item() if narrow is None else narrow(value.item())
    elif isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return float(np.format_float_positional(value))
    return value.item() if isinstance(value, np.generic) else value


def _as_real(value: Any) -> float | None:
    """``value`` as a Python float if it is a real number (numpy's too) and not a bool."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return None
    return float(plain_number(value))


@dataclass(frozen=True)
class Setting:
    """A parameter a method reads, declared once: its option, folder ``tag`` ("k" gives
    ``k2``), table ``symbol`` and ``check``, the one validation. ``several``: a tuple;
    ``unnamed``: left out of folder names; low/high inclusive, ``above`` exclusive bounds."""

    help: str = ""
    tag: str = ""
    symbol: str = ""
    type: Callable[[str], Any] = float
    several: bool = False
    unnamed: Any = None
    default: Any = None
    low: float | None = None
    high: float | None = None
    above: float | None = None
    choices: tuple | None = None

    def format(self, value: Any, sep: str = ".") -> str:
        """``1`` for 1.0, ``0.4``; a tuple joined by ``sep`` (``1.2.4``)."""
        if isinstance(value, (tuple, list)):
            return sep.join(self.format(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    def allowed(self) -> str:
        """In words: "an integer >= 1", "one of ('batch', 'sample')"."""
        if self.choices is not None:
            return f"one of {self.choices}"
        noun = "integer" if self.type is int else "number"
        if self.above == 0 and self.low is None and self.high is None:
            return f"a positive finite {noun}" + ("s" if self.several else "")
        bounds = f" > {self.above:g}" if self.above is not None else ""
        if self.low is not None and self.high is not None:
            bounds += f" in [{self.low:g}, {self.high:g}]"
        elif self.low is not None or self.high is not None:
            bounds += f" >= {self.low:g}" if self.high is None else f" <= {self.high:g}"
        if self.several:
            return f"a non-empty tuple of {noun}s{bounds}"
        return f"{'an' if noun == 'integer' else 'a'} {noun}{bounds}"

    def check(self, name: str, value: Any, strict: bool = False) -> Any:
        """``value`` as this setting's type; ValueError naming ``name`` and what is allowed.
        ``strict`` (the mixing functions): a bool, text or a float for an int is a TypeError;
        otherwise (configs, command line) text is parsed and a whole float is an int."""
        try:
            if self.several:
                if isinstance(value, np.ndarray) and value.ndim == 1:
                    value = tuple(value)
                if not isinstance(value, (tuple, list)) or not value:
                    raise TypeError
                value = tuple(self._one(v, strict) for v in value)
            else:
                value = self._one(value, strict)
        except (TypeError, ValueError):
            raise (TypeError if strict else ValueError)(self._refusal(name, value)) from None
        for v in value if self.several else (value,):
            if not (
                (self.choices is None or v in self.choices)
                and (self.low is None or v >= self.low)
                and (self.above is None or v > self.above)
                and (self.high is None or v <= self.high)
                and not (isinstance(v, float) and not math.isfinite(v))
            ):
                raise ValueError(self._refusal(name, value))
        return value

    def _refusal(self, name: str, value: Any) -> str:  # built on failure only: checks run per batch
        return f"{name} must be {self.allowed()}, got {value!r}"

    def _one(self, value: Any, strict: bool) -> Any:
        if self.type not in (int, float):
            return value if strict else self.type(value)
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        value = plain_number(value)
        if strict and not isinstance(value, numbers.Integral if self.type is int else numbers.Real):
            raise TypeError
        if self.type is int and isinstance(value, float) and not value.is_integer():
            raise ValueError  # int(2.5) would quietly be 2
        return self.type(value)


# The settings several methods share, with the defaults ``TrainConfig`` takes: the paper's
# k = 2; α = 1, what the mixup and CutMix papers use on CIFAR (the paper states none);
# random grids of sides 1, 2, 4; one λ per tile (Algorithm 1).
SETTINGS: dict[str, Setting] = {
    "k": Setting("tiles per side of the grid", "k", "k", int, default=2, low=1),
    "alpha": Setting("Beta(α, α) concentration of λ", "a", "α", float, default=1.0, above=0),
    "sides": Setting("grid sides drawn per batch, for rows and columns", "s", "sides", int,
                     several=True, default=(1, 2, 4), low=1),
    "lam_mode": Setting("λ per tile ('batch', Algorithm 1) or per tile and sample ('sample')",
                        "lam", "λ per", str, unnamed="batch", default="batch",
                        choices=LAM_MODES),
}  # fmt: skip
_COUNT = Setting(type=int, low=1)


def check_count(value: Any, name: str) -> int:
    """``value`` as a Python int >= 1 (numpy's too, not a bool); TypeError, ValueError."""
    plain = type(value) is int and value >= 1  # per batch: no need for the Setting machinery
    return value if plain else _COUNT.check(name, value, strict=True)


def check_fraction(value: Any, name: str, high: float = 1.0) -> float:
    """``value`` as a Python float in [0, high]; TypeError, ValueError."""
    return Setting(type=float, low=0.0, high=high).check(name, value, strict=True)


def check_setting(name: str, value: Any) -> Any:
    """A shared setting (``SETTINGS``), strictly checked."""
    return SETTINGS[name].check(name, value, strict=True)


def check_images(images: Tensor) -> None:
    """[B, C, H, W] floating point, B >= 1; TypeError or ValueError otherwise."""
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor [B, C, H, W], got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must be 4-D [B, C, H, W], got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point (float32, float16, bfloat16 or float64), "
                        f"got {images.dtype}; uint8 images: images.float() / 255")  # fmt: skip
    if images.shape[0] < 1:
        raise ValueError("images must hold at least one sample, got batch size 0")


def check_generator(generator: torch.Generator | None, device: torch.device | None = None) -> None:
    """None, or a torch.Generator on the CPU or on ``device``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    if generator is not None and device is not None and generator.device.type not in (
        "cpu", device.type):  # fmt: skip
        raise ValueError(f"generator must live on the CPU or on the images' device ({device}), "
                         f"got a generator on {generator.device}")  # fmt: skip


def _check_classes(labels: Tensor, num_classes: int) -> None:
    low, high = torch.aminmax(labels)
    if int(low) < 0 or int(high) >= num_classes:
        raise ValueError(f"labels must lie in [0, num_classes - 1] = [0, {num_classes - 1}], "
                         f"got values from {int(low)} to {int(high)}")  # fmt: skip


def _labels(labels: Tensor, batch_size: int, num_classes: int | None, validate: bool,
            scattered: bool = False) -> Tensor:  # fmt: skip
    """int64 indices [B] or float soft targets [B, K], checked if ``validate``; ``scattered``:
    the caller's ``_mix_targets`` checks the class range on the CPU."""
    if not validate:
        return labels.long() if labels.ndim == 1 else labels
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.shape[:1] != (batch_size,):
        raise ValueError(f"labels must have one entry per image (batch size {batch_size}), "
                         f"got labels of shape {tuple(labels.shape)}")  # fmt: skip
    if labels.ndim == 1:
        if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
            raise TypeError(f"labels of shape [B] must be integer class indices, got "
                            f"{labels.dtype}; soft targets are floats [B, K]")  # fmt: skip
        if num_classes is None:
            raise ValueError("num_classes is required when labels are class indices [B]")
        check_count(num_classes, "num_classes")
        if not scattered or labels.device.type != "cpu":  # a CUDA scatter would assert
            _check_classes(labels, num_classes)
        return labels.long()
    if labels.ndim != 2:
        raise ValueError("labels must be class indices [B] or soft targets [B, num_classes], "
                         f"got shape {tuple(labels.shape)}")  # fmt: skip
    if not labels.is_floating_point():
        raise TypeError(f"labels of shape [B, num_classes] must be float soft targets, "
                        f"got {labels.dtype}")  # fmt: skip
    if num_classes is not None and labels.shape[1] != num_classes:
        raise ValueError(f"labels have {labels.shape[1]} columns but num_classes={num_classes}; "
                         "they must agree")  # fmt: skip
    return labels


@dataclass(frozen=True)
class MixedBatch:
    """images [B, C, H, W] (input's dtype, device, layout); targets [B, K] float32 (float64
    for float64 labels); lam [gh, gw] float32 x_A weight per tile ([gh, gw, B] per sample;
    [1, 1] true share for one-partner methods); partners [gh, gw, B] int64; box (top, left,
    bottom, right), exclusive ends; tile edges (rows, columns); mask [H, W] float32."""

    images: Tensor
    targets: Tensor
    lam: Tensor
    partners: Tensor
    box: tuple[int, int, int, int] | None = None
    edges: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    mask: Tensor | None = None


@dataclass(frozen=True)
class RegionParams:
    """lam [gh, gw] (or [gh, gw, B]) float32, partners [gh, gw, B] int64 permutations, the
    tile edges (None: even grid)."""

    lam: Tensor
    partners: Tensor
    row_edges: tuple[int, ...] | None = None
    col_edges: tuple[int, ...] | None = None

    @property
    def grid(self) -> tuple[int, int]:
        return (self.lam.shape[0], self.lam.shape[1])

    def edges(self, height: int, width: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(row edges, column edges) for H x W images."""
        rows = self.row_edges if self.row_edges is not None else tile_bounds(height, self.grid[0])
        cols = self.col_edges if self.col_edges is not None else tile_bounds(width, self.grid[1])
        return tuple(rows), tuple(cols)


@dataclass(frozen=True)
class CutMixParams:
    """The box (top, left, bottom, right), partners [B], the λ drawn before clipping."""

    box: tuple[int, int, int, int]
    partners: Tensor
    lam_drawn: float


@dataclass(frozen=True)
class MaskParams:
    """mask [H, W] float32 weight of x_A per pixel (label weight: its mean), partners [B]."""

    mask: Tensor
    partners: Tensor
    lam_drawn: float


@dataclass(frozen=True)
class ResizeParams:
    """The box, partners [B], the drawn side ratio tau."""

    box: tuple[int, int, int, int]
    partners: Tensor
    scale: float


@functools.lru_cache(maxsize=256)  # read per batch
def tile_bounds(size: int, parts: int) -> tuple[int, ...]:
    """Edges of ``parts`` tiles along ``size`` pixels: tile i is [e[i], e[i + 1])."""
    return tuple((i * size) // parts for i in range(parts + 1))


def tile_areas(height: int, width: int, grid: tuple[int, int],
               edges: tuple | None = None) -> Tensor:  # fmt: skip
    """[gh, gw] float64 area fraction of each tile (even grid, or between ``edges``)."""
    rows, cols = edges or (tile_bounds(height, grid[0]), tile_bounds(width, grid[1]))
    sizes_h = torch.tensor(rows, dtype=torch.float64).diff()
    return torch.outer(sizes_h, torch.tensor(cols, dtype=torch.float64).diff()) / (height * width)


def tile_index(edges: tuple[int, ...]) -> Tensor:
    """[size] int64: the tile of each pixel row (or column)."""
    return torch.repeat_interleave(torch.tensor(edges).diff())


@dataclass(frozen=True)
class _TilePlan:
    """Index tensors of one (shape, edges, layout, device); partners are copied in runs."""

    run_tile: Tensor  # [H * R] flat tile id (i * gw + j) of each run, row by row
    pixel_tile: Tensor  # [H * W] flat tile id of each pixel, row by row
    run_offset: Tensor  # [C, H, R] (NCHW) or [H, R] (NHWC) int32: each run's row in an image
    area: Tensor  # [gh * gw, 1] float64 area fractions
    run: int  # pixels a run: gcd(column edges), so each run lies in one tile column
    channels_last: bool  # the images' layout: runs carry their channels


# One plan per grid and layout: 512 plans of 64x64 images hold about 17 MB.
@functools.lru_cache(maxsize=512)
def _tile_plan(channels: int, height: int, width: int, edges: tuple, channels_last: bool,
               device: torch.device) -> _TilePlan:  # fmt: skip
    """Built on the CPU, sent as one packed non-blocking buffer: no sync."""
    row_edges, col_edges = edges
    gw, run = len(col_edges) - 1, math.gcd(*col_edges)
    area = tile_areas(height, width, (len(row_edges) - 1, gw), edges).flatten()
    pixel_tile = tile_index(row_edges)[:, None] * gw + tile_index(col_edges)[None, :]
    parts = (pixel_tile[:, ::run].flatten(), pixel_tile.flatten())
    # float64 areas travel as their bit patterns in the same int64 buffer: one copy.
    packed = _to_device(torch.cat([*parts, area.view(torch.int64)]), device)
    pieces = packed.split([p.numel() for p in parts] + [area.numel()])
    shape = (height, width // run) if channels_last else (channels, height, width // run)
    offsets = torch.arange(math.prod(shape), device=device, dtype=torch.int32).view(shape)
    return _TilePlan(pieces[0], pieces[1], offsets,
                     pieces[2].view(torch.float64)[:, None], run, channels_last)  # fmt: skip


def _to_device(tensor: Tensor, device: torch.device) -> Tensor:
    if tensor.device == device:  # no dispatch: the kernels call this per batch
        return tensor
    return tensor.to(device, non_blocking=tensor.device.type == "cpu")


def _is_channels_last(images: Tensor) -> bool:
    return images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()


def _gather_partners(images: Tensor, partners: Tensor, plan: _TilePlan) -> Tensor:
    """[B, C, H, W] in the images' layout: out[b, :, h, w] = images[partners[i(h), j(w), b], :,
    h, w], copied in runs (rows of ``run`` pixels, with their channels when channels-last)."""
    nhwc = plan.channels_last
    source = images.permute(0, 2, 3, 1) if nhwc else images  # contiguous either way
    batch, per_image = partners.shape[-1], plan.run_offset.numel()
    if partners.shape[:-1].numel() == 1:  # one tile (Mixup): whole images
        out = source.index_select(0, partners.view(-1))
    else:
        dtype = torch.int32 if batch * per_image < 2**31 else torch.int64  # half the traffic
        # [B, H * R] partner of every run: one gather of the [B, T] partners.
        run_partner = partners.reshape(-1, batch).T.to(dtype).index_select(1, plan.run_tile)
        rows = torch.add(plan.run_offset.to(dtype).view(1 if nhwc else images.shape[1], -1),
                         run_partner.view(batch, 1, -1), alpha=per_image).view(-1)  # fmt: skip
        row = plan.run * images.shape[1] if nhwc else plan.run
        # Rows of one pixel use the 1-D kernel: much faster than rows of length 1.
        flat = source.reshape(-1) if row == 1 else source.reshape(-1, row)
        out = flat.index_select(0, rows).view(source.shape)
    return out.permute(0, 3, 1, 2) if nhwc else out


def _blend(images: Tensor, partner_images: Tensor, weight: Tensor) -> Tensor:
    """weight x_A + (1 - weight) x_B into ``partner_images``; half types in float32."""
    if images.dtype in (torch.float16, torch.bfloat16):
        return partner_images.float().lerp_(images.float(), weight).to(images.dtype)
    return partner_images.lerp_(images, weight.to(images.dtype))


def _mix_targets(labels: Tensor, num_classes: int, own: Tensor, shares: Tensor,
                 partners: Tensor) -> Tensor:  # fmt: skip
    """y~[b] = own[0] y[b] + sum_t shares[t] y[partners[t, b]] in float64 (on the labels'
    device): labels [B] or [B, K], own [1, 1] or [1, B], shares [T, 1] or [T, B], partners
    [T, B] -> [B, K] float32 (float64 for float64 labels)."""
    out_dtype = torch.float64 if labels.dtype == torch.float64 else torch.float32
    batch = labels.shape[0]
    theirs = labels.index_select(0, partners.reshape(-1)).view(*partners.shape, *labels.shape[1:])
    if labels.ndim == 2:
        return torch.einsum("bt,tbk->bk", torch.cat([own, shares]).T.expand(batch, -1),
                            torch.cat([labels[None], theirs]).double()).to(out_dtype)  # fmt: skip
    # Two scatters add in the order one would: own weight first, then the tiles in order.
    targets = torch.zeros(batch, num_classes, dtype=torch.float64, device=labels.device)
    try:  # every label is some sample's own: this scatter meets each class index
        targets.scatter_add_(1, labels.unsqueeze(1), own.T.expand(batch, 1))
    except RuntimeError:  # on the CPU, an index out of [0, K - 1]
        _check_classes(labels, num_classes)
        raise
    return targets.scatter_add_(1, theirs.T, shares.T.expand(batch, -1)).to(out_dtype)


def _prepare(images, labels, num_classes, validate, partners=None) -> tuple[Tensor, int | None]:
    if validate:
        check_images(images)
        if partners is not None and partners.shape != images.shape[:1]:
            raise ValueError(f"params.partners must have shape (B,) = ({images.shape[0]},), "
                             f"got {tuple(partners.shape)}")  # fmt: skip
    labels = _labels(labels, images.shape[0], num_classes, validate, scattered=True)
    return labels, (num_classes if labels.ndim == 1 else labels.shape[1])


def _box_share(box: tuple[int, int, int, int], height: int, width: int, validate: bool) -> float:
    """The share of the image outside ``box`` (x_A's label weight)."""
    top, left, bottom, right = box
    if validate and not (0 <= top <= bottom <= height and 0 <= left <= right <= width):
        raise ValueError(f"params.box must lie inside the {height}x{width} image with "
                         f"top <= bottom and left <= right, got {box}")  # fmt: skip
    return 1.0 - (bottom - top) * (right - left) / (height * width)


def _one_partner(mixed, labels, num_classes, lam, partners, **extra) -> MixedBatch:
    lam64 = _to_device(torch.as_tensor(lam, dtype=torch.float64).cpu().view(1, 1), labels.device)
    targets = _mix_targets(labels, num_classes, lam64, 1 - lam64, partners[None])
    lam = _to_device(lam64.float(), mixed.device)
    return MixedBatch(mixed, targets, lam, partners.view(1, 1, -1), **extra)


def apply_region_mixup(images: Tensor, labels: Tensor, params: RegionParams,
                       num_classes: int | None = None, *,
                       validate: bool = True) -> MixedBatch:  # fmt: skip
    """Equation 1 with given ``params``: images [B, C, H, W] (not modified), labels [B]
    (needs num_classes) or [B, K]; tile label weights are true areas. ``validate=False``
    skips the checks (on a GPU, the class range check reads the device)."""
    labels, num_classes = _prepare(images, labels, num_classes, validate)
    batch, channels, height, width = images.shape
    (gh, gw), edges = params.grid, params.edges(height, width)
    if validate:
        if params.partners.shape != (gh, gw, batch):
            raise ValueError(f"params.partners must have shape (gh, gw, B) = {(gh, gw, batch)}, "
                             f"got {tuple(params.partners.shape)}")  # fmt: skip
        if params.lam.shape not in ((gh, gw), (gh, gw, batch)):
            raise ValueError(f"params.lam must have shape (gh, gw) = {(gh, gw)} or (gh, gw, B) "
                             f"= {(gh, gw, batch)}, got {tuple(params.lam.shape)}")  # fmt: skip
        for name, size in (("row_edges", height), ("col_edges", width)):
            axis = getattr(params, name)  # None: tile_bounds' even tiles, valid
            if axis is not None and not (axis[0] == 0 and axis[-1] == size and all(
                    a < b for a, b in itertools.pairwise(axis))):  # fmt: skip
                raise ValueError(f"params.{name} must be {len(axis)} increasing pixel "
                                 f"positions from 0 to {size} (tiles of a pixel or more), "
                                 f"got {tuple(axis)}")  # fmt: skip
    lam = _to_device(params.lam, images.device).float()
    partners = _to_device(params.partners, images.device)
    nhwc = _is_channels_last(images)
    source = images if nhwc else images.contiguous()
    plan = _tile_plan(channels, height, width, edges, nhwc, images.device)
    tiles = lam.view(gh * gw, -1)  # [T, 1] or [T, B]: λ per tile (and sample)
    pixel_lam = tiles.T.index_select(1, plan.pixel_tile).view(-1, 1, height, width)
    mixed = _blend(source, _gather_partners(source, partners, plan), pixel_lam)
    lam64 = tiles.double()
    own = (plan.area * lam64).sum(0, keepdim=True)  # [1, *]: x_A's label weight
    shares = plan.area * torch.rsub(lam64, 1)  # [T, *]: 1 - λ, each tile's partner's
    targets = _mix_targets(labels, num_classes, own, shares, partners.view(gh * gw, -1))
    return MixedBatch(mixed, targets, lam, partners, edges=edges)


def apply_mask_mix(images: Tensor, labels: Tensor, params: MaskParams,
                   num_classes: int | None = None, *,
                   validate: bool = True) -> MixedBatch:  # fmt: skip
    """x~ = M x_A + (1 - M) x_B, M = ``params.mask`` [H, W]; x_A's label weight mean(M)."""
    if validate and isinstance(images, Tensor) and params.mask.shape != images.shape[2:]:
        raise ValueError(f"params.mask must have the images' shape (H, W) = "
                         f"{tuple(images.shape[2:])}, got {tuple(params.mask.shape)}")  # fmt: skip
    return _mask_blend(images, labels, num_classes, validate, params.mask, params.partners,
                       params.mask.double().mean())  # fmt: skip


def apply_cutmix(images: Tensor, labels: Tensor, params: CutMixParams,
                 num_classes: int | None = None, *,
                 validate: bool = True) -> MixedBatch:  # fmt: skip
    """Paste ``params.box`` of each partner (a mask blend); label weight: the true area."""
    if validate:
        check_images(images)
    lam = _box_share(params.box, *images.shape[2:], validate)
    top, left, bottom, right = params.box
    mask = torch.ones(images.shape[2:])
    mask[top:bottom, left:right] = 0
    return _mask_blend(images, labels, num_classes, validate, mask, params.partners, lam,
                       box=params.box)  # fmt: skip


def _mask_blend(images, labels, num_classes, validate, mask, partners, lam, **extra):
    labels, num_classes = _prepare(images, labels, num_classes, validate, partners)
    partners = _to_device(partners, images.device)
    mask = _to_device(mask, images.device).float()
    layout = torch.channels_last if _is_channels_last(images) else torch.contiguous_format
    mixed = _blend(images, images[partners], mask).contiguous(memory_format=layout)
    extra.setdefault("mask", None if "box" in extra else mask)
    return _one_partner(mixed, labels, num_classes, lam, partners, **extra)


def apply_resizemix(images: Tensor, labels: Tensor, params: ResizeParams,
                    num_classes: int | None = None, *,
                    validate: bool = True) -> MixedBatch:  # fmt: skip
    """Paste each partner, resized (nearest, index floor(i * H / h)), into ``params.box``."""
    labels, num_classes = _prepare(images, labels, num_classes, validate, params.partners)
    height, width = images.shape[2:]
    lam = _box_share(params.box, height, width, validate)
    top, left, bottom, right = params.box
    partners = _to_device(params.partners, images.device)
    mixed = images.clone()  # keeps the memory format
    if bottom > top and right > left:
        rows = torch.arange(bottom - top, device=images.device) * height // (bottom - top)
        cols = torch.arange(right - left, device=images.device) * width // (right - left)
        mixed[:, :, top:bottom, left:right] = images[partners][:, :, rows][:, :, :, cols]
    return _one_partner(mixed, labels, num_classes, lam, partners, box=params.box)
