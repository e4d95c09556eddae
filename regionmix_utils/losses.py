"""Losses: soft-target cross entropy and the Region Mixup paper's combined loss.

Algorithm 1 of Saha & Garain (ICLR 2024 Tiny Papers) trains on

    loss = CE(f(x_A), y_A) + CE(f(x~), y~)

the clean cross-entropy term plus the cross entropy of the mixed batch against its
soft labels. Table 2 of the paper ablates the clean term; ``clean_ce=False`` drops it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LossParts", "combined_loss", "soft_cross_entropy"]


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross entropy of ``logits`` [B, K] against class indices [B] (any integer
    dtype), or one-hot (integer) or probability (float) targets [B, K].

    Computed in float32 whatever the logits' dtype (AMP gives bf16/fp16 logits), and the
    targets are never cast to a half type (which would corrupt the probabilities).

    Raises:
        ValueError: shapes that do not match. TypeError: float or bool indices [B].
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D [B, K], got shape {tuple(logits.shape)}")
    if targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"targets must have one row per logit row ({logits.shape[0]}), "
            f"got shape {tuple(targets.shape)}"
        )
    if targets.ndim == 1:
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise TypeError(
                f"targets of shape [B] must be integer class indices, got {targets.dtype}"
            )
        targets = targets.long()  # cross_entropy takes int64 indices only
    else:  # probabilities, or integer one-hot as F.one_hot gives it
        if targets.shape != logits.shape:
            raise ValueError(
                f"soft targets must have the logits' shape {tuple(logits.shape)}, "
                f"got {tuple(targets.shape)}"
            )
        targets = targets.float()
    return F.cross_entropy(logits.float(), targets)


class LossParts(NamedTuple):
    """The loss and its terms (0-d tensors; a term the loss lacks is None)."""

    total: Tensor
    mixed: Tensor | None
    clean: Tensor | None


def combined_loss(
    logits_mixed: Tensor,
    targets_mixed: Tensor,
    logits_clean: Tensor | None = None,
    labels_clean: Tensor | None = None,
    *,
    clean_ce: bool = True,
) -> LossParts:
    """The paper's loss, CE(f(x_A), y_A) + CE(f(x~), y~) (Algorithm 1).

    Args:
        logits_mixed: [B, K] f(x~).
        targets_mixed: [B, K] soft labels y~ from a mixing call (or any targets
            ``soft_cross_entropy`` takes).
        logits_clean: [B, K] f(x_A); required when ``clean_ce``.
        labels_clean: y_A as indices [B] (any integer dtype), or one-hot or soft
            targets [B, K]; required when ``clean_ce``.
        clean_ce: keep the clean term (True in Table 1; False is Table 2's ablation).
    """
    mixed = soft_cross_entropy(logits_mixed, targets_mixed)
    if not clean_ce:
        return LossParts(total=mixed, mixed=mixed, clean=None)
    if logits_clean is None or labels_clean is None:
        raise ValueError("logits_clean and labels_clean are required when clean_ce=True")
    clean = soft_cross_entropy(logits_clean, labels_clean)
    return LossParts(total=clean + mixed, mixed=mixed, clean=clean)
