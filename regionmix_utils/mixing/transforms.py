"""The mixing methods as torchvision v2 transforms, ``images, targets = mix(images, labels)``,
with v2.MixUp's calling conventions plus timm's ``p``, ``label_smoothing`` and
``switch_prob`` (``MixChoice``); docs/pipelines.md shows them in real pipelines."""

import bisect
import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten
from torch.utils.data import get_worker_info
from torchvision import tv_tensors
from torchvision.transforms import v2

from regionmix_utils.mixing import core
from regionmix_utils.mixing.core import MixedBatch

__all__ = ["BatchMix", "MethodMix", "MixChoice", "default_labels", "draw_choice", "draw_mixed",
           "worker_generator"]  # fmt: skip

# What v2 refuses: a mix of two masks, boxes or key points is none of them.
_REFUSED = tuple(t for t in (PIL.Image.Image, tv_tensors.BoundingBoxes, tv_tensors.Mask,
                             getattr(tv_tensors, "KeyPoints", None)) if t is not None)  # fmt: skip
_IMAGE_TYPES = (tv_tensors.Image, tv_tensors.Video)
LabelsGetter = Callable[[Any], Any]
# id(generator) -> (generator, worker seed, derived generator); filled only in workers.
_WORKER_STREAMS: dict[int, tuple[torch.Generator, int, torch.Generator]] = {}


def worker_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """``generator``, or inside a DataLoader worker one seeded from its initial seed and the
    worker's seed (new every epoch), kept for the worker's life."""
    info = get_worker_info() if generator is not None else None
    if info is None:
        return generator
    entry = _WORKER_STREAMS.get(id(generator))
    if entry is None or entry[0] is not generator or entry[1] != info.seed:
        words = np.random.SeedSequence((generator.initial_seed(), info.seed)).generate_state(2)
        seed = (int(words[0]) << 31) ^ int(words[1])  # 63 bits
        derived = torch.Generator(generator.device).manual_seed(seed)
        entry = _WORKER_STREAMS[id(generator)] = (generator, info.seed, derived)
    return entry[2]


def _uniform(generator: torch.Generator | None) -> float:
    device = generator.device if generator is not None else None
    return float(torch.rand((), generator=generator, device=device, dtype=torch.float64))


def draw_choice(cumulative: Sequence[float], generator: torch.Generator | None) -> int:
    """The first option whose cumulative probability exceeds a uniform draw (or the length)."""
    return bisect.bisect_right(cumulative, _uniform(generator))


def draw_mixed(p: float, generator: torch.Generator | None) -> bool:
    """Whether a batch is mixed, with probability ``p``; drawn only when 0 < p < 1."""
    return p == 1 or (p > 0 and _uniform(generator) < p)


def _probability(value: float, name: str) -> float:
    number = core._as_real(value)
    if number is None or not 0 <= number <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return number


def _is_pure_tensor(value: Any) -> bool:
    return isinstance(value, Tensor) and not isinstance(value, tv_tensors.TVTensor)


def default_labels(sample: Any) -> Any:
    """v2's default ``labels_getter``: a tuple's second item if a tensor; else, in a dict (or
    a dict second item), the key ``labels`` or the first containing ``label``; ValueError."""
    if isinstance(sample, (tuple, list)):
        if len(sample) < 2:
            raise ValueError(f"a tuple or list sample must be (images, labels, ...), got "
                             f"{len(sample)} item(s)")  # fmt: skip
        sample = sample[1]
    if _is_pure_tensor(sample):
        return sample
    if not isinstance(sample, Mapping):
        raise ValueError("with the default labels_getter the sample must be a dict, or a "
                         "tuple whose second item is labels or a dict, got "
                         f"{type(sample).__name__}")  # fmt: skip
    keys = [k for k in sample if isinstance(k, str) and "label" in k.lower()]
    key = next((k for k in keys if k.lower() == "labels"), keys[0] if keys else None)
    if key is None:
        raise ValueError(f"found no labels in the dict sample (keys {list(sample)}): name them "
                         "'labels' or pass labels_getter=lambda sample: ...")  # fmt: skip
    return sample[key]


class BatchMix(v2.Transform):
    """Base of the mixing transforms: a subclass writes ``mix(images, labels, generator)``;
    ``forward`` does the rest. ``p``: share of batches mixed; ``label_smoothing`` s in
    [0, 1): targets (1 - s) y + s / K; ``labels_getter``: "default" or sample -> labels."""

    def __init__(self, alpha: float = 1.0, num_classes: int | None = None,
                 generator: torch.Generator | None = None, *, p: float = 1.0,
                 label_smoothing: float = 0.0,
                 labels_getter: str | LabelsGetter = "default") -> None:  # fmt: skip
        super().__init__()
        self.alpha = core.check_setting("alpha", alpha)
        self.num_classes = (None if num_classes is None
                            else core.check_count(num_classes, "num_classes"))  # fmt: skip
        core.check_generator(generator)
        self.generator, self.p = generator, _probability(p, "p")
        self.label_smoothing = _probability(label_smoothing, "label_smoothing")
        if self.label_smoothing == 1:
            raise ValueError("label_smoothing must be a number in [0, 1), got 1")
        if labels_getter != "default" and not callable(labels_getter):
            raise ValueError(f"labels_getter must be 'default' or a callable sample -> labels, "
                             f"got {labels_getter!r}")  # fmt: skip
        self._labels_getter = default_labels if labels_getter == "default" else labels_getter

    def mix(self, images: Tensor, labels: Tensor, generator: torch.Generator | None) -> MixedBatch:
        """images [B, C, H, W] float, labels int64 [B] or float [B, K] -> MixedBatch."""
        raise NotImplementedError(f"{type(self).__name__} must implement mix()")

    def forward(self, *inputs: Any) -> Any:
        """The sample's structure back, images mixed, labels replaced by targets [B, K]."""
        sample = inputs if len(inputs) > 1 else inputs[0]
        pair = type(sample) in (tuple, list) and len(sample) == 2
        if pair and self._labels_getter is default_labels and all(
                type(x) is Tensor for x in sample):  # fmt: skip
            return type(sample)(self._mix_batch(*sample))  # the common call, no tree walk
        flat, spec = tree_flatten(sample)
        if (refused := next((x for x in flat if isinstance(x, _REFUSED)), None)) is not None:
            raise ValueError(f"{type(self).__name__}() does not support PIL images, bounding "
                             f"boxes, key points and masks (a mix of two is none of them), got "
                             f"{type(refused).__name__}")  # fmt: skip
        labels = self._labels_getter(sample)
        at_labels = next((i for i, x in enumerate(flat) if x is labels), None)
        if at_labels is None:
            raise ValueError("labels_getter must return a labels tensor held in the sample")
        # v2's rule: the Image or Video, else the first plain tensor (not the labels).
        found = [i for i, x in enumerate(flat) if isinstance(x, _IMAGE_TYPES)] or [
            i for i, x in enumerate(flat) if _is_pure_tensor(x) and i != at_labels][:1]  # fmt: skip
        if len(found) != 1:
            raise ValueError(f"{type(self).__name__}() found no batch of images in the sample"
                             if not found else f"{type(self).__name__}() mixes one batch of "
                             f"images a call; the sample holds {len(found)} Image/Video "
                             "batches")  # fmt: skip
        flat[found[0]], flat[at_labels] = self._mix_batch(flat[found[0]], labels)
        return tree_unflatten(flat, spec)

    def _mix_batch(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        plain = images.as_subclass(Tensor) if isinstance(images, tv_tensors.TVTensor) else images
        video = isinstance(images, tv_tensors.Video)
        if video:
            if plain.ndim != 5:
                raise ValueError(f"videos must be 5-D [B, T, C, H, W], got {tuple(plain.shape)}")
            plain = plain.reshape(plain.shape[0], -1, *plain.shape[-2:])  # frames as channels
        if not isinstance(labels, Tensor):
            raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
        if not (labels.is_floating_point() or labels.is_complex()):  # any integer dtype
            labels = labels.long() if labels.ndim == 1 and labels.dtype != torch.bool else (
                labels.float() if labels.ndim == 2 else labels)  # fmt: skip
        generator = worker_generator(self.generator)
        if draw_mixed(self.p, generator):
            out = self.mix(plain, labels, generator)
            mixed, targets = out.images, out.targets
        else:
            core.check_images(plain)
            mixed, targets = plain, core._labels(labels, plain.shape[0], self.num_classes, True)
            targets = (F.one_hot(targets, self.num_classes).float() if targets.ndim == 1 else
                       targets.to(torch.float64 if targets.dtype == torch.float64 else
                                  torch.float32, copy=True))  # fmt: skip
        if self.label_smoothing:  # in place: the targets are a fresh tensor
            targets.mul_(1 - self.label_smoothing).add_(self.label_smoothing / targets.shape[1])
        if mixed is plain:
            return images, targets
        mixed = mixed.view(images.shape) if video else mixed
        if isinstance(images, tv_tensors.TVTensor):
            mixed = tv_tensors.wrap(mixed, like=images)
        return mixed, targets

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self._settings())

    def _settings(self) -> list[tuple[str, Any]]:
        common = [("alpha", self.alpha), ("num_classes", self.num_classes)]
        return common + [(n, getattr(self, n)) for n in ("p", "label_smoothing")
                         if getattr(self, n) != (1 if n == "p" else 0)]  # fmt: skip


class MethodMix(BatchMix):
    """A registered method with its checked ``settings`` as a transform (``Method.transform``)."""

    def __init__(self, method: Any, settings: dict[str, Any], num_classes: int | None = None,
                 generator: torch.Generator | None = None, **options: Any) -> None:  # fmt: skip
        if not method.mixes or method.in_model:
            raise ValueError(f"method {method.name!r} does not mix images: no transform")
        super().__init__(settings.get("alpha", 1.0), num_classes, generator, **options)
        self.method, self.settings = method, dict(settings)

    def mix(self, images: Tensor, labels: Tensor, generator: torch.Generator | None) -> MixedBatch:
        return self.method(images, labels, self.num_classes, generator, **self.settings)

    def _settings(self) -> list[tuple[str, Any]]:
        return [("method", self.method.name), *self.settings.items(), *super()._settings()[1:]]


def transform_class(name: str, function: Callable[..., MixedBatch], method: Any) -> type:
    """``method`` as a ``MethodMix`` class whose constructor takes ``function``'s parameters
    after (images, labels); the settings ``method`` declares are checked on construction."""
    signature = inspect.Signature(list(inspect.signature(function).parameters.values())[2:])
    leading = list(signature.parameters)[: list(signature.parameters).index("num_classes")]

    def __init__(self, *args: Any, p: float = 1.0, label_smoothing: float = 0.0,
                 labels_getter: str | LabelsGetter = "default", **kwargs: Any) -> None:  # fmt: skip
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        num_classes, generator = values.pop("num_classes"), values.pop("generator")
        for key in [key for key in values if key in method.setting_names]:
            values[key] = method.setting(key).check(key, values[key], strict=True)
        options = {"p": p, "label_smoothing": label_smoothing, "labels_getter": labels_getter}
        MethodMix.__init__(self, method, values, num_classes, generator, **options)
        for key, value in values.items():
            setattr(self, key, value)

    def _settings(self) -> list[tuple[str, Any]]:
        shown = [(key, value) for key, value in self.settings.items()
                 if key in leading or value != signature.parameters[key].default]  # fmt: skip
        return [*shown, ("num_classes", self.num_classes), *BatchMix._settings(self)[2:]]

    doc = f"``{function.__name__}`` as a torchvision v2 transform: {name}{signature}."
    attributes = {"__init__": __init__, "_settings": _settings, "__doc__": doc}
    return type(name, (MethodMix,), {**attributes, "__module__": function.__module__})


class MixChoice(v2.Transform):
    """One of several mixing transforms per batch, with probabilities ``p`` (normalised;
    None: equal) drawn from ``generator`` (timm's ``switch_prob``)."""

    def __init__(self, transforms: Sequence[BatchMix], p: Sequence[float] | None = None,
                 generator: torch.Generator | None = None) -> None:  # fmt: skip
        super().__init__()
        if not isinstance(transforms, (list, tuple)) or not transforms:
            raise TypeError(f"transforms must be a non-empty list of mixing transforms, "
                            f"got {transforms!r}")  # fmt: skip
        if wrong := [type(t).__name__ for t in transforms if not isinstance(t, BatchMix)]:
            raise TypeError(f"transforms must hold mixing transforms (BatchMix), got {wrong[0]}")
        weights = [1.0] * len(transforms) if p is None else [core._as_real(w) for w in p]
        if len(weights) != len(transforms) or any(w is None or not w >= 0 for w in weights):
            raise ValueError(f"p must hold one non-negative weight per transform "
                             f"({len(transforms)}), got {p!r}")  # fmt: skip
        if not sum(weights) > 0:
            raise ValueError(f"p must have a positive sum, got {p!r}")
        core.check_generator(generator)
        self.transforms, self.generator = nn.ModuleList(transforms), generator
        self.p = [w / sum(weights) for w in weights]
        self._cumulative = list(itertools.accumulate(self.p))

    def forward(self, *inputs: Any) -> Any:
        draw = draw_choice(self._cumulative, worker_generator(self.generator))
        return self.transforms[min(draw, len(self.transforms) - 1)](*inputs)  # rounding below 1

    def extra_repr(self) -> str:
        return f"p={[round(w, 4) for w in self.p]}"
