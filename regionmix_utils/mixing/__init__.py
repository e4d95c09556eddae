"""Region Mixup (Saha & Garain, ICLR 2024 Tiny Papers) and the mixup family on batches:
``core`` (settings, checks, kernels), ``samplers``, ``feature`` (inside the model),
``transforms`` (v2), ``entries`` (the method registry and what is made from it)."""

from regionmix_utils.mixing import core, entries, feature, samplers, transforms
from regionmix_utils.mixing.core import *  # noqa: F403
from regionmix_utils.mixing.entries import *  # noqa: F403
from regionmix_utils.mixing.feature import *  # noqa: F403
from regionmix_utils.mixing.samplers import *  # noqa: F403
from regionmix_utils.mixing.transforms import *  # noqa: F403

__all__ = [*core.__all__, *entries.__all__, *feature.__all__, *samplers.__all__]
__all__ += transforms.__all__
