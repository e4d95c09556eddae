"""regionmix_utils: the package behind the Region Mixup notebooks.

Region Mixup (Saha & Garain, ICLR 2024 Tiny Papers) mixes each tile of a k x k grid with
its own partner and its own Beta(alpha, alpha) weight. Every public name of ``mixing``
(the method, the mixup family, the torchvision-v2 transforms) and ``losses`` (the paper's
combined loss) imports from here.
"""

from regionmix_utils import losses, mixing
from regionmix_utils.losses import *  # noqa: F403
from regionmix_utils.mixing import *  # noqa: F403

__version__ = "0.1.0"
__all__ = ["__version__"]
__all__ += losses.__all__
__all__ += mixing.__all__
