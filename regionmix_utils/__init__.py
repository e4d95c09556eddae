"""regionmix_utils: the package behind the Region Mixup notebooks.

Region Mixup (Saha & Garain, ICLR 2024 Tiny Papers) mixes each tile of a k x k grid
with its own partner and its own Beta(alpha, alpha) weight. See ``mixing`` for the
method, ``losses`` for the paper's combined loss.
"""

from regionmix_utils.losses import LossParts, combined_loss, soft_cross_entropy
from regionmix_utils.mixing import (
    CutMix,
    MixedBatch,
    Mixup,
    RegionMixup,
    cutmix,
    mixup,
    region_mixup,
)

__version__ = "0.1.0"

__all__ = [
    "CutMix",
    "LossParts",
    "MixedBatch",
    "Mixup",
    "RegionMixup",
    "__version__",
    "combined_loss",
    "cutmix",
    "mixup",
    "region_mixup",
    "soft_cross_entropy",
]
