"""Soft-target cross entropy and the paper's loss CE(f(x_A), y_A) + CE(f(x~), y~)."""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LossParts", "combined_loss", "soft_cross_entropy"]


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross entropy in float32 of logits [B, K] against indices [B] (any integer
    dtype) or probability targets [B, K]. ValueError: shapes; TypeError: float indices."""
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D [B, K], got shape {tuple(logits.shape)}")
    if targets.shape[0] != logits.shape[0]:
        raise ValueError(f"targets must have one row per logit row ({logits.shape[0]}), "
                         f"got shape {tuple(targets.shape)}")  # fmt: skip
    if targets.ndim == 1:
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise TypeError(f"targets of shape [B] must be integer class indices, got "
                            f"{targets.dtype}")  # fmt: skip
    elif targets.shape != logits.shape:
        raise ValueError(f"soft targets must have the logits' shape {tuple(logits.shape)}, "
                         f"got {tuple(targets.shape)}")  # fmt: skip
    return F.cross_entropy(logits.float(), targets.long() if targets.ndim == 1 else targets.float())


class LossParts(NamedTuple):
    """The loss and its terms (0-d tensors; a term the loss lacks is None)."""

    total: Tensor
    mixed: Tensor | None
    clean: Tensor | None


def combined_loss(logits_mixed: Tensor, targets_mixed: Tensor, logits_clean: Tensor | None = None,
                  labels_clean: Tensor | None = None, *,
                  clean_ce: bool = True) -> LossParts:  # fmt: skip
    """CE(f(x_A), y_A) + CE(f(x~), y~) (Algorithm 1): logits [B, K], y~ [B, K], y_A [B] or
    [B, K]; the clean pair is required when ``clean_ce`` (False: Table 2's ablation)."""
    mixed = soft_cross_entropy(logits_mixed, targets_mixed)
    if not clean_ce:
        return LossParts(total=mixed, mixed=mixed, clean=None)
    if logits_clean is None or labels_clean is None:
        raise ValueError("logits_clean and labels_clean are required when clean_ce=True")
    clean = soft_cross_entropy(logits_clean, labels_clean)
    return LossParts(total=clean + mixed, mixed=mixed, clean=clean)
