"""Region Mixup (Saha & Garain, ICLR 2024 Tiny Papers) and the mixup family on batches:
``core`` (settings, samplers, kernels), ``feature`` (inside the model), ``transforms`` (v2),
``entries`` (the method registry and what is made from it)."""

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
from regionmix_utils.mixing.entries import (
    CutMix,
    FMix,
    GridMix,
    Mixup,
    RandomRegionMixup,
    RegionMixup,
    ResizeMix,
    cutmix,
    fmix,
    gridmix,
    mixup,
    random_region_mixup,
    region_mixup,
    resizemix,
)
from regionmix_utils.mixing.feature import (
    INPUT,
    draw_layer,
    forward_mixed,
    mixable_layers,
    mixing_at,
)
from regionmix_utils.mixing.samplers import (
    fourier_noise,
    sample_beta,
    sample_cutmix_params,
    sample_fmix_params,
    sample_gridmix_params,
    sample_random_region_params,
    sample_region_params,
    sample_resizemix_params,
)
from regionmix_utils.mixing.transforms import (
    BatchMix,
    MethodMix,
    MixChoice,
    default_labels,
    draw_choice,
    draw_mixed,
    worker_generator,
)

__all__ = [
    "INPUT", "LAM_MODES", "BatchMix", "CutMix", "CutMixParams", "FMix", "GridMix", "MaskParams",
    "MethodMix", "MixChoice", "MixedBatch", "Mixup", "RandomRegionMixup", "RegionMixup",
    "RegionParams", "ResizeMix", "ResizeParams", "apply_cutmix", "apply_mask_mix",
    "apply_region_mixup", "apply_resizemix", "cutmix", "default_labels", "draw_choice",
    "draw_layer", "draw_mixed", "fmix", "forward_mixed", "fourier_noise", "gridmix",
    "mixable_layers", "mixing_at", "mixup", "random_region_mixup", "region_mixup", "resizemix",
    "sample_beta", "sample_cutmix_params", "sample_fmix_params", "sample_gridmix_params",
    "sample_random_region_params", "sample_region_params", "sample_resizemix_params",
    "tile_areas", "tile_bounds", "tile_index", "worker_generator",
]  # fmt: skip
