"""regionmix_utils: the package behind the Region Mixup notebooks.

Region Mixup (Saha & Garain, ICLR 2024 Tiny Papers) mixes each tile of a k x k grid with
its own partner and its own Beta(alpha, alpha) weight. Every public name of ``mixing``
(the method, the mixup family, the torchvision-v2 transforms) and ``losses`` (the paper's
combined loss) imports from here.
"""

from regionmix_utils.losses import LossParts, combined_loss, soft_cross_entropy
from regionmix_utils.mixing import (
    INPUT,
    LAM_MODES,
    BatchMix,
    CutMix,
    CutMixParams,
    FMix,
    GridMix,
    MaskParams,
    MethodMix,
    MixChoice,
    MixedBatch,
    Mixup,
    RandomRegionMixup,
    RegionMixup,
    RegionParams,
    ResizeMix,
    ResizeParams,
    apply_cutmix,
    apply_mask_mix,
    apply_region_mixup,
    apply_resizemix,
    cutmix,
    default_labels,
    draw_choice,
    draw_layer,
    draw_mixed,
    fmix,
    forward_mixed,
    fourier_noise,
    gridmix,
    mixable_layers,
    mixing_at,
    mixup,
    random_region_mixup,
    region_mixup,
    resizemix,
    sample_beta,
    sample_cutmix_params,
    sample_fmix_params,
    sample_gridmix_params,
    sample_random_region_params,
    sample_region_params,
    sample_resizemix_params,
    tile_areas,
    tile_bounds,
    tile_index,
    worker_generator,
)

__version__ = "0.1.0"
__all__ = [
    "INPUT", "LAM_MODES", "BatchMix", "CutMix", "CutMixParams", "FMix", "GridMix", "LossParts",
    "MaskParams", "MethodMix", "MixChoice", "MixedBatch", "Mixup", "RandomRegionMixup",
    "RegionMixup", "RegionParams", "ResizeMix", "ResizeParams", "__version__", "apply_cutmix",
    "apply_mask_mix", "apply_region_mixup", "apply_resizemix", "combined_loss", "cutmix",
    "default_labels", "draw_choice", "draw_layer", "draw_mixed", "fmix", "forward_mixed",
    "fourier_noise", "gridmix", "mixable_layers", "mixing_at", "mixup", "random_region_mixup",
    "region_mixup", "resizemix", "sample_beta", "sample_cutmix_params", "sample_fmix_params",
    "sample_gridmix_params", "sample_random_region_params", "sample_region_params",
    "sample_resizemix_params", "soft_cross_entropy", "tile_areas", "tile_bounds", "tile_index",
    "worker_generator",
]  # fmt: skip
