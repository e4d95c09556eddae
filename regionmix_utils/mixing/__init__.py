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
(Region Mixup, Mixup, stochastic Region Mixup), ``cutmix``, ``transforms`` (the batch
transforms). Everything public is re-exported here.
"""

from regionmix_utils.mixing.core import (
    CutMixParams,
    MixedBatch,
    RegionParams,
    sample_beta,
    tile_areas,
    tile_bounds,
    tile_index,
)
from regionmix_utils.mixing.cutmix import apply_cutmix, cutmix, sample_cutmix_params
from regionmix_utils.mixing.region import (
    apply_region_mixup,
    mixup,
    random_region_mixup,
    region_mixup,
    sample_random_region_params,
    sample_region_params,
)
from regionmix_utils.mixing.transforms import CutMix, Mixup, RandomRegionMixup, RegionMixup

__all__ = [
    "CutMix",
    "CutMixParams",
    "MixedBatch",
    "Mixup",
    "RandomRegionMixup",
    "RegionMixup",
    "RegionParams",
    "apply_cutmix",
    "apply_region_mixup",
    "cutmix",
    "mixup",
    "random_region_mixup",
    "region_mixup",
    "sample_beta",
    "sample_cutmix_params",
    "sample_random_region_params",
    "sample_region_params",
    "tile_areas",
    "tile_bounds",
    "tile_index",
]
