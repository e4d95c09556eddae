"""PreAct ResNet-18 (He et al., "Identity Mappings in Deep Residual Networks", 2016), the
CIFAR network of the mixup, CutMix and Region Mixup papers, and the modes of test-time work."""

import contextlib
from collections.abc import Iterator
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regionmix_utils.data import get_dataset


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity (or 1x1 conv) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        projects = stride != 1 or in_planes != planes
        self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False) if projects else None

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        # The projection shortcut sees the pre-activated input, as in the paper.
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        return self.conv2(F.relu(self.bn2(self.conv1(out)))) + shortcut


class PreActResNet18(nn.Module):
    """Images [B, 3, H, W] in [0, 1], normalised inside (attacks and CAMs see the trained model)
    -> logits [B, num_classes]: 3x3 stem of stride ``stem_stride`` (2 on 64 px, as PuzzleMix),
    4 stages of 2 blocks (``width`` x1, x2, x4, x8), pool, linear; ``mix_layers``: mixable."""

    mix_layers: ClassVar[dict[str, str]] = {f"layer{i}": f"layer{i}" for i in range(1, 5)}

    def __init__(self, num_classes: int = 10, mean: tuple[float, ...] = (0.5, 0.5, 0.5),
                 std: tuple[float, ...] = (0.25, 0.25, 0.25), width: int = 64,
                 stem_stride: int = 1) -> None:  # fmt: skip
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, width, 3, stem_stride, 1, bias=False)
        planes = (width, width, 2 * width, 4 * width, 8 * width)  # each stage's in, out
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            nn.Sequential(PreActBlock(a, b, stride), PreActBlock(b, b))
            for a, b, stride in zip(planes[:-1], planes[1:], (1, 2, 2, 2), strict=True)
        )
        self.bn = nn.BatchNorm2d(8 * width)
        self.linear = nn.Linear(8 * width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """[B, 3, H, W] in [0, 1] -> layer4's output [B, 8 * width, H / 8s, W / 8s]."""
        out = self.conv1((x - self.mean) / self.std)
        return self.layer4(self.layer3(self.layer2(self.layer1(out))))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn(self.features(x)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def build_model(dataset: str, num_classes: int, width: int = 64,
                stem_stride: int = 1) -> PreActResNet18:  # fmt: skip
    """PreAct ResNet-18 normalising with the registered ``dataset``'s mean and std."""
    spec = get_dataset(dataset)
    return PreActResNet18(num_classes, spec.mean, spec.std, width, stem_stride)


def tf32_switches() -> list[tuple[object, str, object]]:
    """torch's TF32 switches as (object, attribute, full-float32 value): torch >= 2.9's
    ``fp32_precision`` (the legacy flags beside it raise once it is set), else ``allow_tf32``."""
    b = torch.backends
    if hasattr(b.cudnn, "conv") and hasattr(b.cuda.matmul, "fp32_precision"):
        return [(o, "fp32_precision", "ieee") for o in (b.cuda.matmul, b.cudnn.conv, b.cudnn.rnn)]
    return [(b.cuda.matmul, "allow_tf32", False), (b.cudnn, "allow_tf32", False)]


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """TF32 (10-bit mantissas, cuDNN's default for convolutions since Ampere) off inside."""
    with contextlib.ExitStack() as restore:
        for obj, name, value in tf32_switches():
            restore.callback(setattr, obj, name, getattr(obj, name))
            setattr(obj, name, value)
        yield


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode without autocast or TF32 inside; on exit each submodule's own mode is back."""
    with contextlib.ExitStack() as restore:
        for module in model.modules():
            restore.callback(setattr, module, "training", module.training)
        with full_float32(), torch.autocast(next(model.parameters()).device.type, enabled=False):
            yield model.eval()


@contextlib.contextmanager
def gradients_on() -> Iterator[None]:
    """Autograd on inside, even in ``inference_mode`` (tensors made there: ``autograd_tensor``)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def autograd_tensor(tensor: Tensor) -> Tensor:
    """``tensor``, or an ordinary copy of an inference tensor (which autograd refuses)."""
    return tensor.clone() if tensor.is_inference() else tensor
