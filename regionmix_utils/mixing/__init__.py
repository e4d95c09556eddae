"""Region Mixup, Mixup and CutMix on batches of images.

Region Mixup (Saha & Garain, "Region Mixup", ICLR 2024 Tiny Papers), equation 1:

    x~ = sum_j M_j * (lambda_j x_A + (1 - lambda_j) x_{B_j})
    y~ = sum_j a_j (lambda_j y_A + (1 - lambda_j) y_{B_j})

The image is cut into a gh x gw grid of tiles (masks M_j); each tile j has its own
lambda_j ~ Beta(alpha, alpha) and its own random permutation of the batch B_j, both
drawn once per call. a_j is the tile's true area fraction, so grids that do not divide
the image evenly still give exact label weights. k = 1 is plain mixup.

Sampling is kept apart from applying, as torchvision's v2 MixUp/CutMix do:
``sample_region_params`` / ``sample_cutmix_params`` draw the random parameters from an
explicit ``torch.Generator``; ``apply_region_mixup`` / ``apply_cutmix`` apply given
parameters to a batch. The application is vectorised: one gather of partner pixels
through a per-pixel partner map and one lerp with a per-pixel lambda map, so the number
of kernels does not grow with k.

Tile row i spans image rows ``(i * H) // gh`` to ``((i + 1) * H) // gh``; columns
likewise.

Modules: ``core`` (results, parameters, checks, tiles, gather, sampling), ``region``
(Region Mixup, Mixup, stochastic Region Mixup), ``cutmix``, ``masks`` (GridMix, FMix,
ResizeMix), ``feature`` (mixing inside the model: Manifold Mixup and Region Manifold
Mixup), ``transforms`` (the batch transforms). Everything public is re-exported here.
"""

from regionmix_utils.mixing.core import (
    LAM_MODES,
    CutMixParams,
    MixedBatch,
    RegionParams,
    sample_beta,
    tile_areas,
    tile_bounds,
    tile_index,
)
from regionmix_utils.mixing.cutmix import apply_cutmix, cutmix, sample_cutmix_params
from regionmix_utils.mixing.feature import (
    INPUT,
    draw_layer,
    forward_mixed,
    mixable_layers,
    mixing_at,
)
from regionmix_utils.mixing.masks import (
    MaskParams,
    ResizeParams,
    apply_mask_mix,
    apply_resizemix,
    fmix,
    fourier_noise,
    gridmix,
    resizemix,
    sample_fmix_params,
    sample_gridmix_params,
    sample_resizemix_params,
)
from regionmix_utils.mixing.region import (
    apply_region_mixup,
    mixup,
    random_region_mixup,
    region_mixup,
    sample_random_region_params,
    sample_region_params,
)
from regionmix_utils.mixing.transforms import (
    BatchMix,
    CutMix,
    FMix,
    GridMix,
    MethodMix,
    MixChoice,
    Mixup,
    RandomRegionMixup,
    RegionMixup,
    ResizeMix,
    default_labels,
    draw_choice,
    draw_mixed,
    worker_generator,
)

__all__ = [
    "INPUT",
    "LAM_MODES",
    "BatchMix",
    "CutMix",
    "CutMixParams",
    "FMix",
    "GridMix",
    "MaskParams",
    "MethodMix",
    "MixChoice",
    "MixedBatch",
    "Mixup",
    "RandomRegionMixup",
    "RegionMixup",
    "RegionParams",
    "ResizeMix",
    "ResizeParams",
    "apply_cutmix",
    "apply_mask_mix",
    "apply_region_mixup",
    "apply_resizemix",
    "cutmix",
    "default_labels",
    "draw_choice",
    "draw_layer",
    "draw_mixed",
    "fmix",
    "forward_mixed",
    "fourier_noise",
    "gridmix",
    "mixable_layers",
    "mixing_at",
    "mixup",
    "random_region_mixup",
    "region_mixup",
    "resizemix",
    "sample_beta",
    "sample_cutmix_params",
    "sample_fmix_params",
    "sample_gridmix_params",
    "sample_random_region_params",
    "sample_region_params",
    "sample_resizemix_params",
    "tile_areas",
    "tile_bounds",
    "tile_index",
    "worker_generator",
]
