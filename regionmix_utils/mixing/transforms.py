"""The mixing methods as batch transforms: ``images, targets = mix(images, labels)``."""

from __future__ import annotations

import torch
from torch import Tensor

from regionmix_utils.mixing.core import MixedBatch, _check_alpha, _check_positive_int, _resolve_grid
from regionmix_utils.mixing.cutmix import cutmix
from regionmix_utils.mixing.region import _check_sides, random_region_mixup, region_mixup


class _BatchMix:
    """Base of the callable transforms: ``images, targets = mix(images, labels)``."""

    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.alpha = _check_alpha(alpha)
        if num_classes is not None:
            _check_positive_int(num_classes, "num_classes")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
        self.num_classes = num_classes
        self.generator = generator

    def mix(self, images: Tensor, labels: Tensor) -> MixedBatch:
        raise NotImplementedError

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Mix a batch after the DataLoader: images [B, C, H, W] -> (images, targets [B, K])."""
        out = self.mix(images, labels)
        return out.images, out.targets


class RegionMixup(_BatchMix):
    """Region Mixup as a batch transform, in the style of torchvision's ``v2.MixUp``.

    >>> mix = RegionMixup(k=2, alpha=1.0, num_classes=10)
    >>> images, targets = mix(images, labels)  # doctest: +SKIP
    """

    def __init__(
        self,
        k: int = 2,
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        grid: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(alpha, num_classes, generator)
        self.k, self.grid = k, _resolve_grid(k, grid)
        self._grid_arg = grid

    def mix(self, images: Tensor, labels: Tensor) -> MixedBatch:
        return region_mixup(
            images, labels, self.k, self.alpha, self.num_classes, self.generator, self._grid_arg
        )

    def __repr__(self) -> str:
        return f"RegionMixup(grid={self.grid}, alpha={self.alpha}, num_classes={self.num_classes})"


class Mixup(RegionMixup):
    """Mixup as a batch transform: Region Mixup with a single tile."""

    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(1, alpha, num_classes, generator)

    def __repr__(self) -> str:
        return f"Mixup(alpha={self.alpha}, num_classes={self.num_classes})"


class CutMix(_BatchMix):
    """CutMix as a batch transform (box drawn as in ``sample_cutmix_params``)."""

    def mix(self, images: Tensor, labels: Tensor) -> MixedBatch:
        return cutmix(images, labels, self.alpha, self.num_classes, self.generator)

    def __repr__(self) -> str:
        return f"CutMix(alpha={self.alpha}, num_classes={self.num_classes})"


class RandomRegionMixup(_BatchMix):
    """Stochastic Region Mixup as a batch transform (``random_region_mixup``)."""

    def __init__(
        self,
        sides: tuple[int, ...] = (1, 2, 4),
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(alpha, num_classes, generator)
        self.sides = _check_sides(sides)

    def mix(self, images: Tensor, labels: Tensor) -> MixedBatch:
        return random_region_mixup(
            images, labels, self.sides, self.alpha, self.num_classes, self.generator
        )

    def __repr__(self) -> str:
        return (
            f"RandomRegionMixup(sides={self.sides}, alpha={self.alpha}, "
            f"num_classes={self.num_classes})"
        )
