"""Grad-CAM++ maps on ``layer4`` (package grad-cam) and how well they localise objects.

Figure 2 of the paper compares Grad-CAM++ maps of Mixup, CutMix and Region Mixup by eye.
Where object boxes exist (Tiny ImageNet val, ``shapes``) we also score them:

- energy in box: the share of the map's total mass inside the object box;
- pointing game: whether the map's maximum falls inside the box.

grad-cam's CAM constructor puts the model in eval mode and leaves it there; ``cam_maps``
restores the mode and releases the hooks (the CAM object is used as a context manager),
and computes in float32. The paper does not say which class its maps explain; the
scores here explain the true class (``localisation_scores``), the figure either.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from regionmix_utils.models import evaluating

__all__ = ["cam_maps", "energy_in_box", "localisation_scores", "pointing_hits", "score_maps"]


def cam_maps(
    model: nn.Module, images: Tensor, classes: Tensor | None = None, batch_size: int = 64
) -> Tensor:
    """Grad-CAM++ maps of ``model.layer4[-1]``.

    Args:
        model: a PreAct ResNet-18 (anything with ``layer4``).
        images: [B, 3, H, W] in [0, 1].
        classes: [B] classes to explain; default: the model's predictions.
    Returns:
        [B, H, W] float32 maps, each scaled to [0, 1] by grad-cam.
    """
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    maps = []
    # grad-cam puts the model in eval mode and leaves it there: ``evaluating`` restores the
    # mode, and keeps the maps in float32 even under an autocast context.
    with evaluating(model), GradCAMPlusPlus(model=model, target_layers=[model.layer4[-1]]) as cam:
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size]
            targets = None
            if classes is not None:
                targets = [
                    ClassifierOutputTarget(int(c)) for c in classes[start : start + batch_size]
                ]
            maps.append(torch.from_numpy(cam(input_tensor=x, targets=targets)))
    return torch.cat(maps).float().clamp_(0, 1)


def _box_mask(boxes: Tensor, height: int, width: int) -> Tensor:
    """[B, H, W] bool masks of boxes [B, 4] = (x0, y0, x1, y1), x1/y1 exclusive."""
    ys = torch.arange(height)[None, :, None]
    xs = torch.arange(width)[None, None, :]
    x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)


def energy_in_box(maps: Tensor, boxes: Tensor) -> Tensor:
    """[B] share of each map's mass inside its box (a map that is all zero scores 0)."""
    inside = _box_mask(boxes.cpu(), *maps.shape[1:]).to(maps.device)
    total = maps.sum((1, 2))
    return torch.where(total > 0, (maps * inside).sum((1, 2)) / total.clamp_min(1e-12), 0.0)


def pointing_hits(maps: Tensor, boxes: Tensor) -> Tensor:
    """[B] bool: does the map's maximum fall inside the box."""
    width = maps.shape[2]
    peak = maps.flatten(1).argmax(1)
    y, x = peak // width, peak % width
    boxes = boxes.to(maps.device)
    return (x >= boxes[:, 0]) & (x < boxes[:, 2]) & (y >= boxes[:, 1]) & (y < boxes[:, 3])


def score_maps(maps: Tensor, boxes: Tensor) -> dict[str, float]:
    """Mean energy-in-box and pointing-game hit rate of maps [B, H, W] for boxes [B, 4]."""
    return {
        "energy_in_box": float(energy_in_box(maps, boxes).mean()),
        "pointing_game": float(pointing_hits(maps, boxes).float().mean()),
    }


def localisation_scores(
    model: nn.Module, images: Tensor, labels: Tensor, boxes: Tensor
) -> dict[str, float]:
    """``score_maps`` of the model's Grad-CAM++ maps for the true classes.

    Args:
        images: [B, 3, H, W] in [0, 1]; labels: [B]; boxes: [B, 4] (x0, y0, x1, y1).
    """
    return score_maps(cam_maps(model, images, labels), boxes)
