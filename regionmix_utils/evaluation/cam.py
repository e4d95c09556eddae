"""Grad-CAM++ maps on ``layer4`` (package grad-cam), as in Figure 2 of the paper, and how
well they localise object boxes: energy in box and the pointing game (Zhang et al., ECCV
2016), explaining the true class (docs/reproducing.md)."""

import torch
from torch import Tensor, nn

from regionmix_utils.models import autograd_tensor, evaluating, gradients_on


def cam_maps(model: nn.Module, images: Tensor, classes: Tensor | None = None,
             batch_size: int = 64) -> Tensor:  # fmt: skip
    """Grad-CAM++ maps [B, H, W] in [0, 1] (float32) of ``model.layer4[-1]`` for images
    [B, 3, H, W] in [0, 1], explaining ``classes`` [B] (default: the predictions). Works
    under no_grad; gradients reach the input only; modes and ``.grad`` are left as they were.
    ValueError: ``classes`` is not [B], or names a class the model does not have."""
    from pytorch_grad_cam import GradCAMPlusPlus  # heavy: only the maps need it
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # heavy: as above

    if classes is not None and tuple(classes.shape) != (images.shape[0],):
        raise ValueError(f"classes must be [B] = [{images.shape[0]}], got shape "
                         f"{tuple(classes.shape)}")  # fmt: skip
    targets = None if classes is None else [ClassifierOutputTarget(int(c)) for c in classes]
    params = list(model.parameters())
    saved = [(p.requires_grad, p.grad) for p in params]
    maps = []
    try:
        model.requires_grad_(False)
        with (gradients_on(), evaluating(model),
              GradCAMPlusPlus(model=model, target_layers=[model.layer4[-1]]) as cam):  # fmt: skip
            for start in range(0, images.shape[0], batch_size):
                # The input requires grad, so layer4's output does too, whatever the weights.
                x = autograd_tensor(images[start : start + batch_size]).detach().requires_grad_()
                chunk = None if targets is None else targets[start : start + batch_size]
                try:
                    maps.append(torch.from_numpy(cam(input_tensor=x, targets=chunk)))
                except IndexError as err:  # grad-cam's __exit__ would drop an IndexError
                    raise ValueError(f"cannot explain classes[{start}:{start + len(x)}]: a class "
                                     f"the model does not output ({err})") from err  # fmt: skip
    finally:
        for p, (flag, grad) in zip(params, saved, strict=True):
            p.requires_grad_(flag)
            p.grad = grad
    return torch.cat(maps).float().clamp_(0, 1)


def _box_mask(boxes: Tensor, height: int, width: int) -> Tensor:
    """[B, H, W] bool masks of boxes [B, 4] = (x0, y0, x1, y1), x1/y1 exclusive."""
    ys, xs = torch.arange(height)[None, :, None], torch.arange(width)[None, None, :]
    x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)


def blank_maps(maps: Tensor) -> Tensor:
    """[B] bool: maps [B, H, W] with no pixel above zero (they point nowhere); ValueError
    if not [B, H, W] or NaN."""
    if maps.ndim != 3:
        raise ValueError(f"maps must be [B, H, W], got shape {tuple(maps.shape)}")
    if maps.is_floating_point() and torch.isnan(maps).any():
        raise ValueError("maps must not hold NaN (a NaN map has no maximum to point with)")
    return maps.flatten(1).amax(1) <= 0


def energy_in_box(maps: Tensor, boxes: Tensor) -> Tensor:
    """[B] share of each map's mass inside its box (a map that is all zero scores 0)."""
    inside = _box_mask(boxes.cpu(), *maps.shape[1:]).to(maps.device)
    total = maps.sum((1, 2))
    return torch.where(total > 0, (maps * inside).sum((1, 2)) / total.clamp_min(1e-12), 0.0)


def pointing_hits(maps: Tensor, boxes: Tensor) -> Tensor:
    """The pointing game (Zhang et al., ECCV 2016): [B] bool, is each map's [B, H, W]
    maximum in its box [B, 4] = (x0, y0, x1, y1), x1/y1 exclusive. Blank maps miss; tied
    maxima hit when any is in the box (the authors' first ``argmax`` depends on pixel
    order); no 15-pixel tolerance (most of a 32 x 32 image). ValueError as ``blank_maps``."""
    blank = blank_maps(maps)
    peak = maps.flatten(1).amax(1)[:, None, None]
    inside = _box_mask(boxes.cpu(), *maps.shape[1:]).to(maps.device)
    return ((maps == peak) & inside).flatten(1).any(1) & ~blank


def score_maps(maps: Tensor, boxes: Tensor) -> dict[str, float | int]:
    """Mean ``energy_in_box``, ``pointing_game`` hit rate, ``blank_maps`` count and
    ``n_maps`` of maps [B, H, W] for boxes [B, 4]; ValueError as ``blank_maps``."""
    return {"energy_in_box": float(energy_in_box(maps, boxes).mean()),
            "pointing_game": float(pointing_hits(maps, boxes).float().mean()),
            "blank_maps": int(blank_maps(maps).sum()), "n_maps": int(maps.shape[0])}  # fmt: skip


def localisation_scores(model: nn.Module, images: Tensor, labels: Tensor,
                        boxes: Tensor) -> dict[str, float | int]:  # fmt: skip
    """``score_maps`` of the maps of images [B, 3, H, W] for their ``labels`` [B]."""
    return score_maps(cam_maps(model, images, labels), boxes)
