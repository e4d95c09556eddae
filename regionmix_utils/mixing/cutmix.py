"""CutMix (Yun et al., ICCV 2019): a box of a partner image pasted into each image."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from regionmix_utils.mixing.core import (
    CutMixParams,
    MixedBatch,
    _check_alpha,
    _check_box,
    _check_generator,
    _check_images,
    _check_one_partner,
    _check_positive_int,
    _labels_to_targets,
    _one_partner_targets,
    _random_permutations,
    _to_device,
    sample_beta,
)


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

    Args:
        batch_size, height, width: B, H, W.
        alpha: Beta(alpha, alpha) concentration, > 0.
        generator: the source of randomness; drawn on its device. The box is read back
            as Python integers: from a GPU generator that is a host-device sync.
        device: where to draw without a generator (default: the CPU, no sync).
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
        _check_box(params.box, height, width)
        _check_one_partner(params.partners, batch_size)
    labels = _labels_to_targets(labels, batch_size, num_classes, validate)
    num_classes = num_classes if labels.ndim == 1 else labels.shape[1]
    partners = _to_device(params.partners, images.device)
    mixed = images.clone()  # clone keeps the memory format
    mixed[:, :, top:bottom, left:right] = images[partners, :, top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / (height * width)
    targets, lam_t = _one_partner_targets(labels, num_classes, lam, partners, images.device)
    return MixedBatch(
        images=mixed, targets=targets, lam=lam_t, partners=partners.view(1, 1, -1), box=params.box
    )


def cutmix(
    images: Tensor,
    labels: Tensor,
    alpha: float = 1.0,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> MixedBatch:
    """CutMix (Yun et al., 2019); the box is drawn as in ``sample_cutmix_params``.

    Args:
        images: [B, C, H, W] floating point, any memory format; not modified.
        labels: int64 class indices [B] (then ``num_classes`` is required) or float soft
            targets [B, num_classes].
        alpha: Beta(alpha, alpha) concentration, > 0.
        num_classes: K, for index labels.
        generator: where the box and the partners are drawn: a CPU generator, or None
            (torch's global CPU generator), draws them on the host and sends the
            partners to the images' device without blocking: no host-device sync. A
            generator on the images' GPU works too, but the box is Python integers, so
            they are read back from it: one sync a call.
    Returns:
        MixedBatch whose ``lam`` [1, 1] is corrected to the pasted box's true area,
        ``partners`` is [1, 1, B] and ``box`` is (top, left, bottom, right).
    Raises:
        ValueError, TypeError: bad arguments (named). Checking index labels' range
        reads their minimum and maximum back from a GPU (a sync); soft targets, or
        ``apply_cutmix(..., validate=False)`` after one check, avoid it.
    """
    _check_images(images)
    alpha = _check_alpha(alpha)
    _check_generator(generator, images.device)
    batch_size, _, height, width = images.shape
    params = sample_cutmix_params(batch_size, height, width, alpha, generator)
    return apply_cutmix(images, labels, params, num_classes)
