"""Region Mixup (equation 1), its one-tile case Mixup, and stochastic Region Mixup.

Region Mixup (Saha & Garain, "Region Mixup", ICLR 2024 Tiny Papers), equation 1:

    x~ = sum_j M_j * (lambda_j x_A + (1 - lambda_j) x_{B_j})
    y~ = sum_j a_j (lambda_j y_A + (1 - lambda_j) y_{B_j})

The image is cut into a gh x gw grid of tiles (masks M_j); each tile j has its own
lambda_j ~ Beta(alpha, alpha) and its own random permutation of the batch B_j, both
drawn once per call. a_j is the tile's true area fraction, so grids that do not divide
the image evenly still give exact label weights. k = 1 is plain mixup.

Sampling is kept apart from applying, as torchvision's v2 MixUp/CutMix do:
``sample_region_params`` draws the random parameters from an explicit
``torch.Generator``; ``apply_region_mixup`` applies given parameters to a batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from regionmix_utils.mixing.core import (
    _HALF_DTYPES,
    MixedBatch,
    RegionParams,
    _check_alpha,
    _check_edges,
    _check_generator,
    _check_grid_fits,
    _check_images,
    _check_lam_mode,
    _check_positive_int,
    _gather_partners,
    _is_channels_last,
    _labels_to_targets,
    _mix_targets,
    _random_permutations,
    _resolve_grid,
    _tile_plan,
    _to_device,
    sample_beta,
)


def sample_region_params(
    batch_size: int,
    grid: tuple[int, int] = (2, 2),
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
    device=None,
    lam_mode: str = "batch",
) -> RegionParams:
    """Draw one lambda ~ Beta(alpha, alpha) and one batch permutation per tile.

    Args:
        batch_size: B.
        grid: (gh, gw) tiles; (k, k) for the paper's k x k grid.
        alpha: Beta concentration, > 0.
        generator: the source of randomness; parameters are drawn on its device.
        device: where to draw when no generator is given (default CPU).
        lam_mode: "batch" (the paper's Algorithm 1: one lambda per tile, shared by the
            batch) or "sample" (one independent lambda per tile and sample, as timm's
            ``mode="elem"`` draws one per sample).
    Returns:
        RegionParams with lam [gh, gw] ("batch") or [gh, gw, B] ("sample") and
        partners [gh, gw, B].
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    gh, gw = _resolve_grid(1, grid)
    if generator is not None:
        device = generator.device
    lam = _sample_tile_lambdas(alpha, gh, gw, batch_size, lam_mode, generator, device)
    partners = _random_permutations(gh * gw, batch_size, generator, lam.device)
    return RegionParams(lam=lam, partners=partners.view(gh, gw, batch_size))


def _sample_tile_lambdas(
    alpha: float, gh: int, gw: int, batch_size: int, lam_mode: str, generator, device
) -> Tensor:
    """[gh, gw] ("batch") or [gh, gw, B] ("sample") float32 draws of Beta(alpha, alpha)."""
    if _check_lam_mode(lam_mode) == "sample":
        return sample_beta(alpha, gh * gw * batch_size, generator, device).view(gh, gw, -1)
    return sample_beta(alpha, gh * gw, generator, device).view(gh, gw)


def _check_sides(sides) -> tuple[int, ...]:
    """``sides`` as a tuple of Python ints >= 1; a 1-D numpy array is taken as a tuple,
    as ``TrainConfig`` takes it."""
    if isinstance(sides, np.ndarray) and sides.ndim == 1:
        sides = tuple(sides)
    if not isinstance(sides, (tuple, list)) or not sides:
        raise TypeError(f"sides must be a non-empty tuple of integers >= 1, got {sides!r}")
    return tuple(_check_positive_int(s, "sides[i]") for s in sides)


def _random_cuts(size: int, parts: int, min_side: int, generator, device) -> tuple[int, ...]:
    """Edges 0 = e_0 < e_1 < ... < e_parts = size with every tile at least ``min_side``
    pixels, uniform over all such edges.

    Stars and bars: take ``parts * (min_side - 1)`` pixels off the side, draw the
    parts - 1 inner cuts of what is left as a uniform random subset of
    {1, ..., size - parts * (min_side - 1) - 1} (every tile at least one pixel), then
    give every tile its min_side - 1 pixels back (cut i moves by i * (min_side - 1)).
    That map is one to one, so the edges stay uniform; ``min_side = 1`` is the plain
    draw, with the same random numbers.
    """
    extra = min_side - 1
    keys = torch.rand(size - parts * extra - 1, generator=generator, device=device)
    cuts = (keys.argsort()[: parts - 1] + 1).sort().values.tolist()
    return (0, *(cut + i * extra for i, cut in enumerate(cuts, start=1)), size)


def sample_random_region_params(
    batch_size: int,
    height: int,
    width: int,
    sides: tuple[int, ...] = (1, 2, 4),
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
    device=None,
    lam_mode: str = "batch",
    min_side: int = 1,
) -> RegionParams:
    """Stochastic Region Mixup: a random grid with random tile edges, drawn per batch.

    The paper (Section 2) leaves "stochasticity into the region selection process" to
    future work; this is one version of it. gh and gw are drawn independently and
    uniformly from ``sides`` (sides that do not fit are skipped), the inner tile edges
    uniformly at random among those that leave every tile at least ``min_side`` pixels
    high and wide, so tiles are unequal; each tile then gets its own
    lambda ~ Beta(alpha, alpha) and its own partner, as in equation 1, and its label
    weight is its true area.

    Args:
        batch_size, height, width: B, H, W.
        sides: the grid sides to draw from, each >= 1; a side s fits an axis of n pixels
            when s * min_side <= n.
        alpha: Beta(alpha, alpha) concentration, > 0.
        generator: the source of randomness; parameters are drawn on its device.
        device: where to draw when no generator is given (default CPU).
        lam_mode: as in ``sample_region_params``.
        min_side: the thinnest tile allowed, in pixels, >= 1. The default 1 lets a tile
            be one pixel thin: the edges are uniform over all cuts, as the trainer's
            ``region-random`` method draws them (the committed reference runs were
            trained so, and their configurations name no minimum). Larger values keep
            strips out of figures (notebook 01 uses 4, 1/8 of a 32-pixel side).
    Returns:
        RegionParams with lam [gh, gw] (or [gh, gw, B]), partners [gh, gw, B] and both
        edge tuples.
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    height, width = _check_positive_int(height, "height"), _check_positive_int(width, "width")
    sides = _check_sides(sides)
    min_side = _check_positive_int(min_side, "min_side")
    if generator is not None:
        device = generator.device
    fit_h = [s for s in sides if s * min_side <= height]
    fit_w = [s for s in sides if s * min_side <= width]
    if not fit_h or not fit_w:
        at_least = f" with tiles of at least {min_side} pixels" if min_side > 1 else ""
        raise ValueError(
            f"sides must hold a grid side that fits the {height}x{width} images{at_least}, "
            f"got sides={sides}"
        )
    keys = torch.rand(2, generator=generator, device=device, dtype=torch.float64).tolist()
    gh, gw = fit_h[int(keys[0] * len(fit_h))], fit_w[int(keys[1] * len(fit_w))]
    rows = _random_cuts(height, gh, min_side, generator, device)
    cols = _random_cuts(width, gw, min_side, generator, device)
    lam = _sample_tile_lambdas(alpha, gh, gw, batch_size, lam_mode, generator, device)
    partners = _random_permutations(gh * gw, batch_size, generator, lam.device)
    return RegionParams(lam, partners.view(gh, gw, batch_size), rows, cols)


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
        params: lam [gh, gw] (or [gh, gw, B], one lambda per tile and sample) and
            partners [gh, gw, B], e.g. from ``sample_region_params``; on the CPU or on
            the images' device.
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
        if params.lam.shape not in ((gh, gw), (gh, gw, batch_size)):
            raise ValueError(
                f"params.lam must have shape (gh, gw) = {(gh, gw)} or (gh, gw, B) = "
                f"{(gh, gw, batch_size)}, got {tuple(params.lam.shape)}"
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
    if lam.ndim == 3:  # one lambda per (tile, sample): [B, 1, H, W]
        pixel_lam = lam.view(gh * gw, batch_size)[plan.pixel_tile].permute(2, 0, 1)[:, None]
    else:
        pixel_lam = lam.view(-1)[plan.pixel_tile]  # [H, W]
    # The partner image is a fresh buffer: blending into it in place saves an allocation.
    if images.dtype in _HALF_DTYPES:
        # Blend in float32 and round once, so half-precision output is the correctly
        # rounded value of lambda x_A + (1 - lambda) x_B.
        mixed = partner_images.float().lerp_(images_c.float(), pixel_lam).to(images.dtype)
    else:
        mixed = partner_images.lerp_(images_c, pixel_lam.to(images.dtype))

    if lam.ndim == 3:  # [T + 1, B]: one set of label weights per sample
        lam64, area = lam.view(gh * gw, batch_size).double(), plan.area[:, None]
        weights = torch.cat([(area * lam64).sum(0, keepdim=True), area * (1 - lam64)])
    else:
        lam64 = lam.view(-1).double()
        weights = torch.cat([(plan.area * lam64).sum().view(1), plan.area * (1 - lam64)])
    targets = _mix_targets(labels, num_classes, weights, partners.view(gh * gw, -1))
    return MixedBatch(images=mixed, targets=targets, lam=lam, partners=partners, edges=edges)


def region_mixup(
    images: Tensor,
    labels: Tensor,
    k: int = 2,
    alpha: float = 1.0,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
    grid: tuple[int, int] | None = None,
    lam_mode: str = "batch",
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
        generator: torch.Generator on the CPU or on the images' device; None uses torch's
            global CPU generator. lambda and the partners are drawn on the generator's
            device; drawn on the CPU they go to the images' GPU without blocking. Either
            way the call makes no host-device sync (the tile plan of a grid is built
            once and sent without blocking).
        grid: (gh, gw) for a rectangular grid; replaces k when given.
        lam_mode: "batch" (Algorithm 1) or "sample" (one lambda per tile and sample).
    Returns:
        MixedBatch with images [B, C, H, W], targets [B, num_classes], lam [gh, gw]
        (or [gh, gw, B] for ``lam_mode="sample"``), partners [gh, gw, B].
    Raises:
        ValueError, TypeError: bad arguments (named). Checking index labels' range
        reads their minimum and maximum back from a GPU: the one sync of a call with
        index labels there; soft targets [B, K], or ``apply_region_mixup(...,
        validate=False)`` after one check (as the trainer does), avoid it.
    """
    _check_images(images)
    alpha = _check_alpha(alpha)
    gh, gw = _resolve_grid(k, grid)
    _check_generator(generator, images.device)
    _check_lam_mode(lam_mode)
    _check_grid_fits((gh, gw), images.shape[2], images.shape[3], k_given=grid is None)
    params = sample_region_params(images.shape[0], (gh, gw), alpha, generator, None, lam_mode)
    return apply_region_mixup(images, labels, params, num_classes)


def random_region_mixup(
    images: Tensor,
    labels: Tensor,
    sides: tuple[int, ...] = (1, 2, 4),
    alpha: float = 1.0,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
    lam_mode: str = "batch",
    min_side: int = 1,
) -> MixedBatch:
    """Stochastic Region Mixup of a batch: a random gh x gw grid (each side from
    ``sides``) with random tile edges, every tile at least ``min_side`` pixels high and
    wide, one lambda and partner per tile (equation 1), label weights from the tiles'
    true areas. See ``sample_random_region_params``, which also says why ``min_side``
    defaults to 1 (tiles may be one pixel thin).

    Args and return as ``region_mixup``; ``out.edges`` holds the drawn tile edges.
    """
    _check_images(images)
    alpha = _check_alpha(alpha)
    _check_generator(generator, images.device)
    _check_lam_mode(lam_mode)
    batch_size, _, height, width = images.shape
    params = sample_random_region_params(
        batch_size, height, width, sides, alpha, generator, None, lam_mode, min_side
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
