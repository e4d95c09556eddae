"""Region Mixup (Saha & Garain, ICLR 2024 Tiny Papers) and the mixup family on batches:
``core`` (settings, samplers, kernels), ``feature`` (inside the model), ``transforms`` (v2),
``entries`` (the method registry and what is made from it)."""

from regionmix_utils.mixing import entries, feature, samplers, transforms
from regionmix_utils.mixing.core import (
    LAM_MODES,
    CutMixParams,
    MaskParams,
    MixedBatch,
    RegionParams,
    ResizeParams,
    apply_cutmix,
    apply_mask_mix,
    apply_region_mixup,
    apply_resizemix,
    tile_areas,
    tile_bounds,
    tile_index,
)
from regionmix_utils.mixing.entries import *  # noqa: F403
from regionmix_utils.mixing.feature import *  # noqa: F403
from regionmix_utils.mixing.samplers import *  # noqa: F403
from regionmix_utils.mixing.transforms import *  # noqa: F403

__all__ = [
    "LAM_MODES", "CutMixParams", "MaskParams", "MixedBatch", "RegionParams", "ResizeParams",
    "apply_cutmix", "apply_mask_mix", "apply_region_mixup", "apply_resizemix", "tile_areas",
    "tile_bounds", "tile_index", *entries.__all__, *feature.__all__, *samplers.__all__,
    *transforms.__all__,
]  # fmt: skip
