"""Grad-CAM++ maps on ``layer4`` (package grad-cam) and how well they localise objects.

Figure 2 of the paper compares Grad-CAM++ maps of Mixup, CutMix and Region Mixup by eye.
Where object boxes exist (Tiny ImageNet val, ``shapes``) we also score them:

- energy in box: the share of the map's total mass inside the object box;
- pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop",
  ECCV 2016, arXiv:1608.00507): whether the map's maximum falls inside the box. A
  blank map (no pixel above zero, as grad-cam's all-zero maps are) points nowhere: a
  miss, counted apart (``blank_maps``). Tied maxima: a hit when any maximal pixel is in
  the box (``pointing_hits`` says why), so a constant positive map, the box-shaped map
  of a box that covers the whole image, is a hit.

grad-cam's CAM constructor puts the model in eval mode and leaves it there; ``cam_maps``
restores the mode and releases the hooks (the CAM object is used as a context manager),
and computes in float32. It works where gradients are off (``torch.no_grad()``,
``torch.inference_mode()``, frozen parameters) and leaves the caller's grad mode,
``requires_grad`` flags and ``.grad`` as they were. The paper does not say which class
its maps explain; the scores here explain the true class (``localisation_scores``), the
figure either.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from regionmix_utils.models import autograd_tensor, evaluating, gradients_on

__all__ = [
    "blank_maps",
    "cam_maps",
    "energy_in_box",
    "localisation_scores",
    "pointing_hits",
    "score_maps",
]


def cam_maps(
    model: nn.Module, images: Tensor, classes: Tensor | None = None, batch_size: int = 64
) -> Tensor:
    """Grad-CAM++ maps of ``model.layer4[-1]``.

    Grad-CAM++ needs the gradient of the class score at ``layer4``'s output, so the
    function turns gradients on for itself (``models.gradients_on``): inside
    ``torch.no_grad()`` or ``torch.inference_mode()`` and for a model whose parameters are
    frozen (``requires_grad_(False)``) it returns the same maps as anywhere else. The
    gradient flows back to the input (never to the weights: their ``requires_grad`` flags
    are switched off during the call), so the same computation serves every caller;
    afterwards the grad mode, every parameter's ``requires_grad`` and ``.grad`` (which
    grad-cam's ``zero_grad`` would clear) are as they were.

    Args:
        model: a PreAct ResNet-18 (anything with ``layer4``).
        images: [B, 3, H, W] in [0, 1].
        classes: [B] classes to explain; default: the model's predictions.
    Returns:
        [B, H, W] float32 maps, each scaled to [0, 1] by grad-cam (a map with no
        positive evidence is all zero: ``blank_maps``).
    Raises:
        ValueError: ``classes`` is not [B], or names a class the model does not have
            (grad-cam's context manager swallows an ``IndexError`` raised inside it, which
            would return the maps of the batches before it as if they were all).
    """
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if classes is not None and tuple(classes.shape) != (images.shape[0],):
        raise ValueError(
            f"classes must be [B] = [{images.shape[0]}], got shape {tuple(classes.shape)}"
        )

    params = list(model.parameters())
    saved = [(p.requires_grad, p.grad) for p in params]
    maps = []
    try:
        for p in params:
            p.requires_grad_(False)
        # grad-cam puts the model in eval mode and leaves it there: ``evaluating`` restores
        # the mode, and keeps the maps in float32 even under an autocast context.
        with (
            gradients_on(),
            evaluating(model),
            GradCAMPlusPlus(model=model, target_layers=[model.layer4[-1]]) as cam,
        ):
            for start in range(0, images.shape[0], batch_size):
                # The input requires grad, so layer4's output does too, whatever the
                # weights' flags and the caller's grad mode.
                x = autograd_tensor(images[start : start + batch_size]).detach()
                x.requires_grad_(True)
                targets = None
                if classes is not None:
                    targets = [
                        ClassifierOutputTarget(int(c)) for c in classes[start : start + batch_size]
                    ]
                try:
                    maps.append(torch.from_numpy(cam(input_tensor=x, targets=targets)))
                except IndexError as err:  # grad-cam's __exit__ would drop an IndexError
                    raise ValueError(
                        f"cannot explain classes[{start}:{start + len(x)}]: a class the model "
                        f"does not output ({err})"
                    ) from err
    finally:
        for p, (flag, grad) in zip(params, saved, strict=True):
            p.requires_grad_(flag)
            p.grad = grad
    return torch.cat(maps).float().clamp_(0, 1)


def _box_mask(boxes: Tensor, height: int, width: int) -> Tensor:
    """[B, H, W] bool masks of boxes [B, 4] = (x0, y0, x1, y1), x1/y1 exclusive."""
    ys = torch.arange(height)[None, :, None]
    xs = torch.arange(width)[None, None, :]
    x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)


def _check_maps(maps: Tensor) -> None:
    if maps.ndim != 3:
        raise ValueError(f"maps must be [B, H, W], got shape {tuple(maps.shape)}")
    if maps.is_floating_point() and torch.isnan(maps).any():
        raise ValueError("maps must not hold NaN (a NaN map has no maximum to point with)")


def blank_maps(maps: Tensor) -> Tensor:
    """[B] bool: maps [B, H, W] with no pixel above zero (grad-cam's all-zero maps, where
    no location has positive evidence for the class): they point nowhere. A constant
    positive map is not blank: all its pixels are maximal, as the all-ones map of a box
    that covers the whole image is.

    Raises:
        ValueError: ``maps`` is not [B, H, W] or holds NaN.
    """
    _check_maps(maps)
    # Blank means no evidence, not no contrast: a uniform positive map points everywhere.
    return maps.flatten(1).amax(1) <= 0


def energy_in_box(maps: Tensor, boxes: Tensor) -> Tensor:
    """[B] share of each map's mass inside its box (a map that is all zero scores 0)."""
    inside = _box_mask(boxes.cpu(), *maps.shape[1:]).to(maps.device)
    total = maps.sum((1, 2))
    return torch.where(total > 0, (maps * inside).sum((1, 2)) / total.clamp_min(1e-12), 0.0)


def pointing_hits(maps: Tensor, boxes: Tensor) -> Tensor:
    """The pointing game: [B] bool, does the maximum of each map [B, H, W] fall inside its
    box [B, 4] = (x0, y0, x1, y1), x1/y1 exclusive.

    Zhang et al. (ECCV 2016, arXiv:1608.00507) count a hit when the map's maximum point
    lies on the object. A blank map (``blank_maps``) has no maximum point: a miss here,
    whatever the box. The paper does not say how tied maxima are settled; the authors'
    evaluation script (github.com/jimmie33/Caffe-ExcitationBP, ``excitationBP/
    eval_coco.py``) takes numpy's ``argmax``, the first maximum in raster order, so that
    mirroring a map and its box can turn a hit into a miss. Here a map with tied maxima
    scores a hit when any maximal pixel is in the box: independent of pixel order, and
    the paper's rule wherever the maximum is unique. The paper's 15-pixel tolerance
    around the point is not used (on 32 x 32 images it would cover most of the image).

    Raises:
        ValueError: ``maps`` is not [B, H, W] or holds NaN.
    """
    blank = blank_maps(maps)
    peak = maps.flatten(1).amax(1)[:, None, None]
    inside = _box_mask(boxes.cpu(), *maps.shape[1:]).to(maps.device)
    return ((maps == peak) & inside).flatten(1).any(1) & ~blank


def score_maps(maps: Tensor, boxes: Tensor) -> dict[str, float | int]:
    """Localisation scores of maps [B, H, W] for boxes [B, 4] (x0, y0, x1, y1):

    - ``energy_in_box``: mean share of the maps' mass inside the box;
    - ``pointing_game``: hit rate over all B maps (``pointing_hits``; blank maps miss);
    - ``blank_maps``: how many maps are blank (``blank_maps``), of ``n_maps`` = B.

    Raises:
        ValueError: ``maps`` is not [B, H, W] or holds NaN.
    """
    return {
        "energy_in_box": float(energy_in_box(maps, boxes).mean()),
        "pointing_game": float(pointing_hits(maps, boxes).float().mean()),
        "blank_maps": int(blank_maps(maps).sum()),
        "n_maps": int(maps.shape[0]),
    }


def localisation_scores(
    model: nn.Module, images: Tensor, labels: Tensor, boxes: Tensor
) -> dict[str, float | int]:
    """``score_maps`` of the model's Grad-CAM++ maps for the true classes (``cam_maps``:
    works inside ``torch.no_grad()`` and on frozen weights too).

    Args:
        images: [B, 3, H, W] in [0, 1]; labels: [B]; boxes: [B, 4] (x0, y0, x1, y1).
    """
    return score_maps(cam_maps(model, images, labels), boxes)
