"""BatchNorm recalibration: clean test accuracy after every BatchNorm layer's running mean
and variance are re-estimated on the run's own clean training images, weights unchanged.

Why: a run trained without the clean CE term sees mixed images only, so its running
statistics describe blends. If its clean accuracy recovers here, the gap lay in those
statistics, not in the weights. The re-estimate is AdaBN's (Li et al., 2016), on the
training images instead of a target domain."""

import copy

import torch
from torch import Tensor, nn

from regionmix_utils.evaluation import registry
from regionmix_utils.runs import Run, training_splits

KIND = "recalibrated"


@torch.no_grad()
def recalibrated(model: nn.Module, images: Tensor, batch_size: int = 500) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are the mean over batches of
    ``batch_size`` of ``images`` [N, C, H, W] in [0, 1] (cumulative, ``momentum=None``);
    every other module stays in eval mode, and ``model`` is untouched.
    ValueError: no BatchNorm layer, or no image."""
    net = copy.deepcopy(model).eval()
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or not len(images):
        raise ValueError(f"recalibration needs BatchNorm layers and images, got "
                         f"{len(norms)} layers and {len(images)} images")  # fmt: skip
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over every batch, not the last few
        norm.train()
    for batch in images.split(batch_size):
        net(batch)
    return net.eval()


def recalibrated_outcome(model: nn.Module, images: Tensor, labels: Tensor, *, run: Run,
                         data_dir=None) -> registry.Outcome:  # fmt: skip
    """Predictions on ``images`` after ``recalibrated`` on ``run``'s training images (less its
    holdout, its ``n_train`` sample), not augmented."""
    train = training_splits(run.config, data_dir).train
    net = recalibrated(model, train.images.to(images.device).float() / 255)
    return registry.clean_outcome(net, images, labels)


RECALIBRATED = registry.register_evaluation(registry.Evaluation(
    KIND, "Clean accuracy after BatchNorm recalibration",
    "clean test accuracy (%) after every BatchNorm layer's running statistics were re-estimated "
    "on the run's clean training images (weights unchanged)",
    compute=recalibrated_outcome, context=True))  # fmt: skip
