"""Mixing by a mask of the image: GridMix, FMix and ResizeMix.

Each method mixes every sample with one partner (one batch permutation per call, as in
the methods' own code) through a region of the image, and weighs the labels by the true
areas of what was applied, not by the lambda that was drawn:

- GridMix (Baek, Bang & Kwak, "GridMix: Strong regularization through local context
  mapping", Pattern Recognition 109, 2021): a regular grid of holes over a crop of the
  image, filled from the partner;
- FMix (Harris et al., "FMix: Enhancing Mixed Sample Data Augmentation", 2020): a
  binary mask made by thresholding low-frequency Fourier noise at its lambda quantile;
- ResizeMix (Qin et al., "ResizeMix: Mixing Data with Preserved Object Information and
  True Labels", 2020): the whole partner image, resized into a box pasted at a random
  place.

GridMix and FMix give a ``MaskParams`` (a [H, W] weight of x_A per pixel) applied by
``apply_mask_mix``; ResizeMix gives ``ResizeParams`` applied by ``apply_resizemix``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from regionmix_utils.mixing.core import (
    _HALF_DTYPES,
    MixedBatch,
    _check_alpha,
    _check_box,
    _check_generator,
    _check_images,
    _check_one_partner,
    _check_positive_int,
    _check_real,
    _is_channels_last,
    _labels_to_targets,
    _one_partner_targets,
    _random_permutations,
    _to_device,
    sample_beta,
)

__all__ = [
    "MaskParams",
    "ResizeParams",
    "apply_mask_mix",
    "apply_resizemix",
    "fmix",
    "gridmix",
    "resizemix",
    "sample_fmix_params",
    "sample_gridmix_params",
    "sample_resizemix_params",
]


@dataclass(frozen=True)
class MaskParams:
    """Random parameters of one mask-mixing call (GridMix, FMix).

    Attributes:
        mask: [H, W] float32 in [0, 1], the weight of x_A at each pixel (1 keeps the
            image, 0 takes the partner's pixel).
        partners: [B] int64 permutation of the batch.
        lam_drawn: the lambda drawn from Beta(alpha, alpha); the label weight is the
            mask's true mean instead.
    """

    mask: Tensor
    partners: Tensor
    lam_drawn: float


@dataclass(frozen=True)
class ResizeParams:
    """Random parameters of one ResizeMix call.

    Attributes:
        box: (top, left, bottom, right) of the pasted patch, bottom/right exclusive.
        partners: [B] int64 permutation: the image resized into each sample's box.
        scale: the drawn side ratio tau of the patch (before clipping to the image).
    """

    box: tuple[int, int, int, int]
    partners: Tensor
    scale: float


def _check_fraction(value: float, name: str, low: float = 0.0, high: float = 1.0) -> float:
    value = _check_real(value, name, f"a number in [{low}, {high}]")
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")
    return value


def _check_size(batch_size: int, height: int, width: int) -> tuple[int, int, int]:
    return (
        _check_positive_int(batch_size, "batch_size"),
        _check_positive_int(height, "height"),
        _check_positive_int(width, "width"),
    )


# ----------------------------------------------------------------------------- GridMix


def sample_gridmix_params(
    batch_size: int,
    height: int,
    width: int,
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
    device=None,
    n_holes: int = 4,
    crop_area: float = 1.0,
) -> MaskParams:
    """Draw a GridMix mask: holes of a regular grid over a random square crop.

    As the GridMix authors' code (github.com/IlyaDobrynin/GridMixup,
    ``GridMixupLoss._get_gridmask``; also OpenMixup's ``gridmix``): lambda ~ Beta(alpha,
    alpha); a square crop of area ``crop_area * H * W`` (clipped to the image) at a
    uniform position; the crop is cut into patches of side ``ceil(crop width /
    n_holes)`` (square holes: hole aspect ratio 1), and each patch's top-left
    ``int(side * sqrt(1 - lambda))`` pixels (at least 1, at most side - 1) are a hole,
    filled from the partner. The authors' default of 20 holes is for large images and
    needs a crop at least 40 pixels wide; 4 holes give 8-pixel patches on 32x32 images.

    Args:
        batch_size, height, width: B, H, W.
        alpha: Beta concentration, > 0.
        generator, device: the source of randomness, and where to draw without one.
        n_holes: holes across the crop, 1 <= n_holes <= crop width // 2.
        crop_area: the crop's share of the image, in (0, 1].
    Returns:
        MaskParams: mask [H, W] (0 in the holes), partners [B], lam_drawn.
    Raises:
        ValueError: n_holes does not fit the crop; bad sizes or alpha.
    """
    batch_size, height, width = _check_size(batch_size, height, width)
    n_holes = _check_positive_int(n_holes, "n_holes")
    crop_area = _check_fraction(crop_area, "crop_area")
    if crop_area == 0:
        raise ValueError("crop_area must lie in (0, 1], got 0")
    if generator is not None:
        device = generator.device
    lam = float(sample_beta(alpha, 1, generator, device)[0])
    side = int(math.sqrt(height * width * crop_area))
    crop_h, crop_w = min(side, height), min(side, width)
    if not 1 <= n_holes <= crop_w // 2:
        raise ValueError(
            f"n_holes must be between 1 and crop width // 2 = {crop_w // 2} for "
            f"{height}x{width} images, got {n_holes}"
        )
    corner = torch.rand(2, generator=generator, device=device, dtype=torch.float64).tolist()
    top, left = int((height - crop_h) * corner[0]), int((width - crop_w) * corner[1])
    patch = math.ceil(crop_w / n_holes)
    hole = min(max(int(patch * math.sqrt(1.0 - lam)), 1), patch - 1)
    # The union of the holes is a product set: rows and columns whose offset within
    # their patch is below the hole's side.
    rows = torch.zeros(height, dtype=torch.bool)
    cols = torch.zeros(width, dtype=torch.bool)
    rows[top : top + crop_h] = torch.arange(crop_h) % patch < hole
    cols[left : left + crop_w] = torch.arange(crop_w) % patch < hole
    mask = 1.0 - (rows[:, None] & cols[None, :]).float()
    partners = _random_permutations(1, batch_size, generator, device)[0]
    return MaskParams(mask=mask, partners=partners, lam_drawn=lam)


# -------------------------------------------------------------------------------- FMix


def fourier_noise(
    height: int, width: int, decay_power: float = 3.0, generator=None, device=None
) -> Tensor:
    """[H, W] float64 low-frequency noise: the inverse real FFT of complex Gaussian
    coefficients scaled by 1 / max(f, 1 / max(H, W)) ** decay_power (FMix, section 3).

    The FMix code (github.com/ecs-vlc/FMix, ``make_low_freq_image``) reshapes the
    (real, imaginary) pairs into one real array before ``irfftn``, so neighbouring
    coefficients swap roles; this follows the paper's definition instead (both give a
    smooth field with the same 1/f^d decay).
    """
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    freqs = (fy * fy + fx * fx).sqrt()
    scale = 1.0 / freqs.clamp_min(1.0 / max(height, width)) ** decay_power
    parts = torch.randn(2, *freqs.shape, generator=generator, device=device, dtype=torch.float64)
    spectrum = torch.complex(parts[0], parts[1]) * scale.to(parts.device)
    return torch.fft.irfft2(spectrum, s=(height, width))


def sample_fmix_params(
    batch_size: int,
    height: int,
    width: int,
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
    device=None,
    decay_power: float = 3.0,
    max_soft: float = 0.0,
) -> MaskParams:
    """Draw an FMix mask whose mean is lambda to within one pixel.

    As the FMix code (github.com/ecs-vlc/FMix, ``sample_mask`` and ``binarise_mask``):
    lambda ~ Beta(alpha, alpha); the ``n = ceil(lambda H W)`` or ``floor(lambda H W)``
    (a fair coin) pixels of highest Fourier noise (``fourier_noise``) keep the image,
    the others take the partner. ``max_soft`` > 0 softens the edge: the ``2 s`` pixels
    ranked around n (s = ``int(H W min(max_soft, lambda, 1 - lambda))``) get weights
    falling linearly from 1 to 0, which keeps the mean at n / (H W). The paper's CIFAR
    setting is decay_power 3, max_soft 0.

    Args:
        batch_size, height, width: B, H, W.
        alpha: Beta concentration, > 0.
        generator, device: the source of randomness (mask, coin and permutation all
            come from it), and where to draw without one.
        decay_power: d of the 1/f^d decay, > 0 (higher: smoother masks).
        max_soft: edge softening in [0, 0.5].
    Returns:
        MaskParams: mask [H, W] (weight of x_A), partners [B], lam_drawn.
    """
    batch_size, height, width = _check_size(batch_size, height, width)
    decay_power = _check_real(decay_power, "decay_power", "a positive number")
    if not (decay_power > 0 and math.isfinite(decay_power)):
        raise ValueError(f"decay_power must be a positive finite number, got {decay_power}")
    max_soft = _check_fraction(max_soft, "max_soft", 0.0, 0.5)
    if generator is not None:
        device = generator.device
    lam = float(sample_beta(alpha, 1, generator, device)[0])
    noise = fourier_noise(height, width, decay_power, generator, device).flatten().cpu()
    coin = float(torch.rand(1, generator=generator, device=device, dtype=torch.float64))
    pixels = height * width
    count = math.ceil(lam * pixels) if coin > 0.5 else math.floor(lam * pixels)
    soft = int(pixels * min(max_soft, lam, 1.0 - lam))
    low, high = max(count - soft, 0), min(count + soft, pixels)
    order = torch.argsort(noise, descending=True, stable=True)
    ranked = torch.zeros(pixels, dtype=torch.float32)
    ranked[:high] = 1.0
    ranked[low:high] = torch.linspace(1.0, 0.0, high - low)
    mask = torch.empty(pixels, dtype=torch.float32)
    mask[order] = ranked
    partners = _random_permutations(1, batch_size, generator, device)[0]
    return MaskParams(mask=mask.view(height, width), partners=partners, lam_drawn=lam)


# ---------------------------------------------------------------------------- applying


def apply_mask_mix(
    images: Tensor,
    labels: Tensor,
    params: MaskParams,
    num_classes: int | None = None,
    *,
    validate: bool = True,
) -> MixedBatch:
    """x~ = M x_A + (1 - M) x_B with the per-pixel weight M = ``params.mask``; label
    weight of x_A = mean(M), the mask's true area.

    Args and return as ``apply_region_mixup``; ``lam`` is [1, 1] (mean(M)),
    ``partners`` [1, 1, B] and ``mask`` the [H, W] weight of x_A.
    """
    if validate:
        _check_images(images)
    batch_size, _, height, width = images.shape
    if validate:
        if params.mask.shape != (height, width):
            raise ValueError(
                f"params.mask must have the images' shape (H, W) = {(height, width)}, "
                f"got {tuple(params.mask.shape)}"
            )
        _check_one_partner(params.partners, batch_size)
    labels = _labels_to_targets(labels, batch_size, num_classes, validate)
    num_classes = num_classes if labels.ndim == 1 else labels.shape[1]
    partners = _to_device(params.partners, images.device)
    mask = _to_device(params.mask, images.device).float()
    partner_images = images[partners]
    if images.dtype in _HALF_DTYPES:  # blend in float32, round once
        mixed = partner_images.float().lerp_(images.float(), mask).to(images.dtype)
    else:
        mixed = partner_images.lerp_(images, mask.to(images.dtype))
    layout = torch.channels_last if _is_channels_last(images) else torch.contiguous_format
    mixed = mixed.contiguous(memory_format=layout)
    lam = params.mask.double().mean()
    targets, lam_t = _one_partner_targets(labels, num_classes, lam, partners, images.device)
    return MixedBatch(mixed, targets, lam_t, partners.view(1, 1, -1), mask=mask)


# ---------------------------------------------------------------------------- ResizeMix


def sample_resizemix_params(
    batch_size: int,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
    device=None,
    scale_range: tuple[float, float] = (0.1, 0.8),
) -> ResizeParams:
    """Draw a ResizeMix box, as OpenMixup's ``resizemix`` (the ResizeMix paper's setting).

    The side ratio tau ~ U(scale_range) (the paper's (0.1, 0.8); no Beta draw); the box
    has sides ``int(H tau)`` and ``int(W tau)``, its centre is uniform over the image's
    pixels, and it is clipped to the image as CutMix's is. The partner image is then
    resized into the clipped box (``apply_resizemix``), so the label weight is the box's
    true area.

    Returns:
        ResizeParams: box, partners [B], scale tau.
    """
    batch_size, height, width = _check_size(batch_size, height, width)
    if not isinstance(scale_range, (tuple, list)) or len(scale_range) != 2:
        raise TypeError(f"scale_range must be a pair (low, high), got {scale_range!r}")
    low = _check_fraction(scale_range[0], "scale_range[0]")
    high = _check_fraction(scale_range[1], "scale_range[1]")
    if low > high:
        raise ValueError(f"scale_range must have low <= high, got {tuple(scale_range)}")
    if generator is not None:
        device = generator.device
    draws = torch.rand(3, generator=generator, device=device, dtype=torch.float64).tolist()
    tau = low + (high - low) * draws[0]
    cut_h, cut_w = int(height * tau), int(width * tau)
    cy, cx = int(draws[1] * height), int(draws[2] * width)
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    partners = _random_permutations(1, batch_size, generator, device)[0]
    return ResizeParams(box=(top, left, bottom, right), partners=partners, scale=tau)


def nearest_index(source: int, target: int, device=None) -> Tensor:
    """[target] int64: the source row (or column) of each of ``target`` rows when
    ``source`` rows are resized to ``target`` by nearest neighbour: floor(i * source /
    target), in exact integer arithmetic."""
    return torch.arange(target, device=device) * source // target


def apply_resizemix(
    images: Tensor,
    labels: Tensor,
    params: ResizeParams,
    num_classes: int | None = None,
    *,
    validate: bool = True,
) -> MixedBatch:
    """Paste each sample's partner, resized (nearest neighbour) to ``params.box``, into
    the box; label weight of the partner = the box's true area.

    Args and return as ``apply_region_mixup``; ``lam`` is [1, 1] (the unpasted share),
    ``partners`` [1, 1, B], ``box`` the pasted box.
    """
    if validate:
        _check_images(images)
    batch_size, _, height, width = images.shape
    top, left, bottom, right = params.box
    if validate:
        _check_box(params.box, height, width)
        _check_one_partner(params.partners, batch_size)
    labels = _labels_to_targets(labels, batch_size, num_classes, validate)
    num_classes = num_classes if labels.ndim == 1 else labels.shape[1]
    partners = _to_device(params.partners, images.device)
    mixed = images.clone()  # clone keeps the memory format
    if bottom > top and right > left:
        rows = nearest_index(height, bottom - top, images.device)
        cols = nearest_index(width, right - left, images.device)
        mixed[:, :, top:bottom, left:right] = images[partners][:, :, rows][:, :, :, cols]
    lam = 1.0 - (bottom - top) * (right - left) / (height * width)
    targets, lam_t = _one_partner_targets(labels, num_classes, lam, partners, images.device)
    return MixedBatch(mixed, targets, lam_t, partners.view(1, 1, -1), box=params.box)


# ------------------------------------------------------------------------ one-call forms
#
# Each draws its parameters where its generator lives: with a CPU generator, or None
# (torch's global CPU generator), on the host, and the mask and partners go to the
# images' device without blocking, so a call makes no host-device sync. A generator on
# the images' GPU works too, but the box, the crop and FMix's pixel count are Python
# numbers read back from it: a sync or two a call. Checking index labels' range reads
# their minimum and maximum back from a GPU (a sync); soft targets [B, K], or the
# ``apply_*`` functions with ``validate=False`` after one check, avoid it.


def _checked(images, alpha, generator) -> None:
    _check_images(images)
    if alpha is not None:
        _check_alpha(alpha)
    _check_generator(generator, images.device)


def gridmix(
    images: Tensor,
    labels: Tensor,
    alpha: float = 1.0,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
    n_holes: int = 4,
) -> MixedBatch:
    """GridMix of a batch (``sample_gridmix_params``, then ``apply_mask_mix``)."""
    _checked(images, alpha, generator)
    batch, _, height, width = images.shape
    params = sample_gridmix_params(batch, height, width, alpha, generator, n_holes=n_holes)
    return apply_mask_mix(images, labels, params, num_classes)


def fmix(
    images: Tensor,
    labels: Tensor,
    alpha: float = 1.0,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
    decay_power: float = 3.0,
    max_soft: float = 0.0,
) -> MixedBatch:
    """FMix of a batch (``sample_fmix_params``, then ``apply_mask_mix``)."""
    _checked(images, alpha, generator)
    batch, _, height, width = images.shape
    params = sample_fmix_params(batch, height, width, alpha, generator, None, decay_power, max_soft)
    return apply_mask_mix(images, labels, params, num_classes)


def resizemix(
    images: Tensor,
    labels: Tensor,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
    scale_range: tuple[float, float] = (0.1, 0.8),
) -> MixedBatch:
    """ResizeMix of a batch (``sample_resizemix_params``, then ``apply_resizemix``)."""
    _checked(images, None, generator)
    batch, _, height, width = images.shape
    params = sample_resizemix_params(batch, height, width, generator, None, scale_range)
    return apply_resizemix(images, labels, params, num_classes)
