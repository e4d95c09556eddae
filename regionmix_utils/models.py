"""PreAct ResNet-18 (He et al., "Identity Mappings in Deep Residual Networks", 2016).

The CIFAR variant used by the mixup, CutMix and Region Mixup papers: a 3x3 stem with
no pooling, four stages of two pre-activation basic blocks (64, 128, 256, 512
channels), global average pooling and one linear layer. Inputs are images in [0, 1]:
the model normalises them itself, so attacks (which work in pixel space) and CAMs see
the same model the optimiser trained. ``layer4`` is the last stage, for CAMs.

``mix_layers`` names the hidden states that feature-space mixing (Manifold Mixup,
Region Manifold Mixup; see ``regionmix_utils.mixing.feature``) may mix: the outputs of
the four stages. Another model declares its own.

The normalisation statistics are each dataset's own, from the dataset registry
(``regionmix_utils.data.DatasetSpec``): ``DATASET_STATS`` is a read-only view of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regionmix_utils.data import dataset_names, get_dataset

__all__ = [
    "DATASET_STATS",
    "PreActBlock",
    "PreActResNet18",
    "autograd_tensor",
    "build_model",
    "evaluating",
    "full_float32",
    "gradients_on",
]

_Stats = tuple[tuple[float, float, float], tuple[float, float, float]]


class _RegisteredStats(Mapping):
    """name -> (mean, std) of every registered dataset, read from the dataset registry at
    each look-up, so that a dataset registered later (a plugin's) is in it too."""

    def __getitem__(self, name: str) -> _Stats:
        if name not in dataset_names():
            raise KeyError(name)
        spec = get_dataset(name)
        return spec.mean, spec.std

    def __iter__(self) -> Iterator[str]:
        return iter(dataset_names())

    def __len__(self) -> int:
        return len(dataset_names())

    def __repr__(self) -> str:
        return repr(dict(self))


# Per-channel mean and std of each training set (RGB, pixel values in [0, 1]): a
# read-only view of ``DatasetSpec.mean`` / ``std`` in the dataset registry.
DATASET_STATS: Mapping[str, _Stats] = _RegisteredStats()


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity (or 1x1 conv) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        # The projection shortcut sees the pre-activated input, as in the paper.
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """PreAct ResNet-18 for 32x32 or 64x64 images in [0, 1].

    Args:
        num_classes: output logits.
        mean, std: per-channel statistics used to normalise inside the model.
        width: channels of the first stage (64 in the paper); smaller values make
            quick CPU runs cheaper.
        stem_stride: stride of the first convolution. 1 (the CIFAR network, and ours on
            Tiny ImageNet: layer4 at 8x8); 2 is PuzzleMix's and Co-Mixup's choice for
            64 px images (layer4 at 4x4, about 4x less compute).
    Shapes:
        input [B, 3, H, W] in [0, 1] -> logits [B, num_classes].
    Attributes:
        mix_layers: layer name -> submodule whose output is that hidden state, for
            feature-space mixing (after layer1: [B, width, H / s, W / s], ...).
    """

    mix_layers: ClassVar[dict[str, str]] = {
        "layer1": "layer1", "layer2": "layer2", "layer3": "layer3", "layer4": "layer4"
    }  # fmt: skip

    def __init__(
        self,
        num_classes: int = 10,
        mean: tuple[float, ...] = (0.5, 0.5, 0.5),
        std: tuple[float, ...] = (0.25, 0.25, 0.25),
        width: int = 64,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, width, 3, stem_stride, 1, bias=False)
        planes = [width, 2 * width, 4 * width, 8 * width]
        self.layer1 = self._stage(width, planes[0], 1)
        self.layer2 = self._stage(planes[0], planes[1], 2)
        self.layer3 = self._stage(planes[1], planes[2], 2)
        self.layer4 = self._stage(planes[2], planes[3], 2)
        self.bn = nn.BatchNorm2d(planes[3])
        self.linear = nn.Linear(planes[3], num_classes)

    @staticmethod
    def _stage(in_planes: int, planes: int, stride: int) -> nn.Sequential:
        return nn.Sequential(PreActBlock(in_planes, planes, stride), PreActBlock(planes, planes))

    def features(self, x: Tensor) -> Tensor:
        """[B, 3, H, W] in [0, 1] -> layer4 activations [B, 8 * width, H / (8 s), W / (8 s)]
        for stem stride s."""
        out = self.conv1((x - self.mean) / self.std)
        return self.layer4(self.layer3(self.layer2(self.layer1(out))))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn(self.features(x)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def build_model(
    dataset: str, num_classes: int, width: int = 64, stem_stride: int = 1
) -> PreActResNet18:
    """PreAct ResNet-18 with the dataset's normalisation statistics (its registry entry's
    ``mean`` and ``std``).

    Raises:
        ValueError: ``dataset`` is not registered (one line naming the registered ones).
    """
    spec = get_dataset(dataset)
    return PreActResNet18(num_classes, spec.mean, spec.std, width, stem_stride)


def tf32_switches() -> list[tuple[object, str, object]]:
    """torch's TF32 switches as (object, attribute, full-float32 value): the per-backend
    ``fp32_precision`` of torch >= 2.9 where it exists (reading the legacy flags beside
    it raises once a user has set it), else the legacy ``allow_tf32`` flags."""
    b = torch.backends
    if hasattr(b.cudnn, "conv") and hasattr(b.cuda.matmul, "fp32_precision"):
        return [(b.cuda.matmul, "fp32_precision", "ieee"),
                (b.cudnn.conv, "fp32_precision", "ieee"),
                (b.cudnn.rnn, "fp32_precision", "ieee")]  # fmt: skip
    return [(b.cuda.matmul, "allow_tf32", False), (b.cudnn, "allow_tf32", False)]


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """float32 that is float32: TF32 off for cuDNN convolutions and CUDA matmuls inside
    (on Ampere and later GPUs cuDNN convolutions use TF32, 10-bit mantissas, by default);
    the previous settings are restored on exit, an exception's too. No effect on the CPU."""
    switches = tf32_switches()
    saved = [getattr(obj, name) for obj, name, _ in switches]
    for obj, name, value in switches:
        setattr(obj, name, value)
    try:
        yield
    finally:
        for (obj, name, _), value in zip(switches, saved, strict=True):
            setattr(obj, name, value)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and float32 for test-time work (accuracy, attacks, CAMs, calibration).

    Autocast is switched off inside, even when the caller is under an autocast context,
    and so is TF32 on a GPU (``full_float32``), so test numbers depend neither on a GPU's
    AMP mode nor on the card. On exit, an exception's too, each submodule is left in the
    mode it had (a BatchNorm frozen in eval mode inside a training model stays frozen)
    and the TF32 settings are restored.
    """
    # model.train(flag) would set every submodule to the model's flag: keep each one's.
    modes = [(module, module.training) for module in model.modules()]
    device_type = next(model.parameters()).device.type
    model.eval()
    try:
        with full_float32(), torch.autocast(device_type, enabled=False):
            yield model
    finally:
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def gradients_on() -> Iterator[None]:
    """Autograd on inside, whatever the caller's mode: for test-time work that needs
    gradients (attacks, CAMs) when called under ``torch.no_grad()`` or
    ``torch.inference_mode()``. The caller's mode is back on exit. Tensors made under
    inference mode cannot enter autograd even here: pass them through ``autograd_tensor``.
    """
    with torch.inference_mode(False), torch.enable_grad():
        yield


def autograd_tensor(tensor: Tensor) -> Tensor:
    """``tensor`` itself, or a copy of it when it was made under ``torch.inference_mode()``
    (an inference tensor, which autograd refuses to record). Call inside ``gradients_on``,
    so that the copy is an ordinary tensor."""
    return tensor.clone() if tensor.is_inference() else tensor
