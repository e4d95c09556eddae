"""The mixing methods as torchvision v2 transforms: ``images, targets = mix(images, labels)``.

Each transform subclasses ``torchvision.transforms.v2.Transform`` (an ``nn.Module``), so it
sits in ``nn.Sequential``, ``v2.Compose`` or a LightningModule like any v2 transform, and it
takes the calling conventions of torchvision's ``v2.MixUp`` / ``v2.CutMix``
(torchvision/transforms/v2/_augment.py):

- unpacked ``mix(images, labels)``, packed ``mix((images, labels))`` (what
  ``mix(default_collate(batch))`` passes) and dict samples; ``labels_getter`` finds the
  labels (default: the second item of a tuple or list, else a dict's ``labels`` key, else
  its first key containing ``label``, case-insensitive), and the output has the structure
  that came in;
- ``tv_tensors.Image`` and ``tv_tensors.Video`` come back as their type; a video
  [B, T, C, H, W] is mixed with one grid and one set of partners for all its frames;
  masks, bounding boxes, key points and PIL images are refused, as v2 refuses them;
- labels: class indices [B] of any integer dtype, integer one-hot or float soft targets
  [B, K]; the targets are always float [B, K].

Beyond v2, as timm's ``Mixup`` offers them: ``p`` mixes a fraction of the batches (the
others come back unmixed with one-hot targets of the same shape and dtype),
``label_smoothing`` smooths the targets as timm's ``mixup_target`` does, and ``MixChoice``
picks one method per batch (timm's ``switch_prob``).

Randomness comes from the transform's ``generator``. Inside a DataLoader worker each
worker copies the transform, so a fixed generator would repeat the same draws in every
worker and every epoch; there ``worker_generator`` derives the worker's stream from the
generator's seed and the worker's seed, which the DataLoader changes every epoch.

A new method's transform subclasses ``BatchMix`` and writes ``mix`` (one call of the
method's function) and, if it has settings of its own, ``__init__`` and ``_settings``
(for the repr); ``CutMix`` below is the whole pattern.
"""

from __future__ import annotations

import bisect
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

from regionmix_utils.mixing.core import (
    MixedBatch,
    _as_real,
    _check_alpha,
    _check_images,
    _check_lam_mode,
    _check_positive_int,
    _labels_to_targets,
    _resolve_grid,
)
from regionmix_utils.mixing.cutmix import cutmix
from regionmix_utils.mixing.masks import fmix, gridmix, resizemix
from regionmix_utils.mixing.region import _check_sides, random_region_mixup, region_mixup

__all__ = [
    "BatchMix",
    "CutMix",
    "MethodMix",
    "MixChoice",
    "Mixup",
    "RandomRegionMixup",
    "RegionMixup",
    "default_labels",
    "draw_choice",
    "draw_mixed",
    "worker_generator",
]

# What v2.MixUp / v2.CutMix refuse: the mix of two masks, boxes or key points is no mask,
# box or key point (KeyPoints exists from torchvision 0.23 on).
_REFUSED = tuple(
    t
    for t in (PIL.Image.Image, tv_tensors.BoundingBoxes, tv_tensors.Mask,
              getattr(tv_tensors, "KeyPoints", None))
    if t is not None
)  # fmt: skip
_IMAGE_TYPES = (tv_tensors.Image, tv_tensors.Video)

LabelsGetter = Callable[[Any], Any]


# ------------------------------------------------------------------------ randomness

# id(generator) -> (generator, worker seed, derived generator); filled only in workers.
_WORKER_STREAMS: dict[int, tuple[torch.Generator, int, torch.Generator]] = {}


def worker_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """The generator a transform draws from: ``generator`` itself outside DataLoader
    workers; inside one, a generator seeded from ``generator.initial_seed()`` and the
    worker's ``get_worker_info().seed``.

    Every worker holds a copy of the transform, so an explicit generator would give
    every worker the same draws, and every epoch the first epoch's. The worker seed is
    the DataLoader's base seed (drawn anew every epoch from the loader's ``generator``)
    plus the worker id, so the derived streams differ between workers and epochs and
    are fixed by the two seeds. The derived generator lasts the worker's life (with
    ``persistent_workers`` it carries on into the next epoch), and transforms that share
    a generator share its derived stream, as they share the generator outside workers.
    """
    if generator is None:
        return None
    info = get_worker_info()
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
    """One float in [0, 1) from ``generator`` (the global CPU RNG when None)."""
    device = generator.device if generator is not None else None
    return float(torch.rand((), generator=generator, device=device, dtype=torch.float64))


def draw_choice(cumulative: Sequence[float], generator: torch.Generator | None) -> int:
    """Which of several options one uniform draw from ``generator`` picks: the first
    whose cumulative probability exceeds it (``len(cumulative)`` when none does, the
    rest of the probability). The one draw of a switch between methods, for
    ``MixChoice`` and for the trainer's ``--switch``."""
    return bisect.bisect_right(cumulative, _uniform(generator))


def draw_mixed(p: float, generator: torch.Generator | None) -> bool:
    """Whether a batch is mixed, with probability ``p``; drawn only when 0 < p < 1, so
    p = 1 draws exactly what the mix alone draws. For ``BatchMix``'s ``p`` and the
    trainer's ``--mix-prob``."""
    return p == 1 or (p > 0 and _uniform(generator) < p)


def _check_generator_arg(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    return generator


def _check_probability(value: float, name: str) -> float:
    number = _as_real(value)
    if number is None or not 0 <= number <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return number


# ---------------------------------------------------------------------------- samples


def _is_pure_tensor(value: Any) -> bool:
    return isinstance(value, Tensor) and not isinstance(value, tv_tensors.TVTensor)


def default_labels(sample: Any) -> Any:
    """v2's default ``labels_getter``: the second item of a tuple or list if it is a
    tensor; else, in a dict (or a dict second item), the key ``labels`` or the first key
    containing ``label``, case-insensitive.

    Raises:
        ValueError: the sample has no such item.
    """
    if isinstance(sample, (tuple, list)):
        if len(sample) < 2:
            raise ValueError(
                f"a tuple or list sample must be (images, labels, ...), got {len(sample)} item(s)"
            )
        sample = sample[1]
    if _is_pure_tensor(sample):
        return sample
    if not isinstance(sample, Mapping):
        raise ValueError(
            "with the default labels_getter the sample must be a dict, or a tuple or list "
            f"whose second item is a labels tensor or a dict, got {type(sample).__name__}"
        )
    keys = [k for k in sample if isinstance(k, str)]
    key = next((k for k in keys if k.lower() == "labels"), None)
    key = key or next((k for k in keys if "label" in k.lower()), None)
    if key is None:
        raise ValueError(
            f"found no labels in the dict sample (keys {list(sample)}): name them 'labels' "
            "or pass labels_getter=lambda sample: ..."
        )
    return sample[key]


def _parse_labels_getter(labels_getter: str | LabelsGetter) -> LabelsGetter:
    if labels_getter == "default":
        return default_labels
    if callable(labels_getter):
        return labels_getter
    raise ValueError(
        f"labels_getter must be 'default' or a callable sample -> labels, got {labels_getter!r}"
    )


def _mixing_labels(labels: Tensor) -> Tensor:
    """Labels as the mixing functions take them: class indices of any integer dtype
    become int64 [B], integer (or bool) one-hot targets float32 [B, K]; anything else is
    left for the mixing function's checks to accept or refuse."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex():
        return labels
    if labels.ndim == 1 and labels.dtype != torch.bool:
        return labels.long()
    if labels.ndim == 2:
        return labels.float()
    return labels


def _one_hot_targets(labels: Tensor, batch_size: int, num_classes: int | None) -> Tensor:
    """[B, K] targets of an unmixed batch, with the dtype a mixing call gives (float32;
    float64 for float64 soft targets), the labels checked as a mixing call checks them."""
    labels = _labels_to_targets(labels, batch_size, num_classes)
    if labels.ndim == 1:
        return F.one_hot(labels, num_classes).float()
    dtype = torch.float64 if labels.dtype == torch.float64 else torch.float32
    return labels.to(dtype, copy=True)


# ------------------------------------------------------------------------ transforms


class BatchMix(v2.Transform):
    """Base of the mixing transforms; see the module docstring for the conventions.

    A subclass writes ``mix(images, labels, generator) -> MixedBatch``, one call of its
    method's function, and keeps its settings as attributes (listed by ``_settings``).
    ``forward`` handles everything else: the sample's structure and types, label dtypes,
    videos, ``p``, ``label_smoothing`` and the DataLoader-worker streams.

    Args:
        alpha: Beta(alpha, alpha) concentration, > 0.
        num_classes: K; required for class-index labels.
        generator: the source of every draw (the mix, ``p``); None uses the global RNG.
        p: probability that a batch is mixed (timm's ``mixup_prob``); drawn only when
            0 < p < 1, so p = 1 draws exactly what the plain function draws.
        label_smoothing: s in [0, 1): targets become (1 - s) y + s / K, what timm's
            ``mixup_target`` gives by smoothing both one-hot labels before mixing.
        labels_getter: ``"default"`` (as v2) or a callable sample -> labels tensor.
    Raises:
        ValueError, TypeError: a bad argument, named.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        *,
        p: float = 1.0,
        label_smoothing: float = 0.0,
        labels_getter: str | LabelsGetter = "default",
    ) -> None:
        super().__init__()
        self.alpha = _check_alpha(alpha)
        if num_classes is not None:
            num_classes = _check_positive_int(num_classes, "num_classes")
        self.num_classes = num_classes
        self.generator = _check_generator_arg(generator)
        self.p = _check_probability(p, "p")
        self.label_smoothing = _check_probability(label_smoothing, "label_smoothing")
        if self.label_smoothing == 1:
            raise ValueError("label_smoothing must be a number in [0, 1), got 1")
        self._labels_getter = _parse_labels_getter(labels_getter)

    def mix(self, images: Tensor, labels: Tensor, generator: torch.Generator | None) -> MixedBatch:
        """One mixing call: images [B, C, H, W] float, labels int64 [B] or float [B, K]."""
        raise NotImplementedError(f"{type(self).__name__} must implement mix()")

    def forward(self, *inputs: Any) -> Any:
        """``mix(images, labels)``, ``mix((images, labels))`` or ``mix(sample_dict)``:
        the same structure back, with the images mixed and the labels replaced by
        targets [B, K] (float32; float64 for float64 soft targets)."""
        sample = inputs if len(inputs) > 1 else inputs[0]
        if (
            type(sample) in (tuple, list) and len(sample) == 2
            and type(sample[0]) is Tensor and type(sample[1]) is Tensor
            and self._labels_getter is default_labels
        ):  # fmt: skip
            # The common calls, (images, labels) unpacked or packed, without the tree walk.
            return type(sample)(self._mix_batch(*sample))
        flat, spec = tree_flatten(sample)
        refused = next((x for x in flat if isinstance(x, _REFUSED)), None)
        if refused is not None:
            raise ValueError(
                f"{type(self).__name__}() does not support PIL images, bounding boxes, "
                f"key points and masks (a mix of two is none of them), got {type(refused).__name__}"
            )
        labels = self._labels_getter(sample)
        at_labels = next((i for i, x in enumerate(flat) if x is labels), None)
        if at_labels is None:
            raise ValueError("labels_getter must return a labels tensor held in the sample")
        at_images = self._image_position(flat, at_labels)
        flat[at_images], flat[at_labels] = self._mix_batch(flat[at_images], labels)
        return tree_unflatten(flat, spec)

    def _image_position(self, flat: list[Any], at_labels: int) -> int:
        """Where the images are, by v2's rule: the Image or Video if there is one, else
        the first plain tensor (the labels excepted, where v2 would take them)."""
        typed = [i for i, x in enumerate(flat) if isinstance(x, _IMAGE_TYPES)]
        plain = [i for i, x in enumerate(flat) if _is_pure_tensor(x) and i != at_labels]
        found = typed or plain[:1]
        if not found:
            raise ValueError(f"{type(self).__name__}() found no batch of images in the sample")
        if len(found) > 1:
            raise ValueError(
                f"{type(self).__name__}() mixes one batch of images a call; the sample "
                f"holds {len(found)} Image/Video batches"
            )
        return found[0]

    def _mix_batch(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(mixed images like ``images``, targets [B, K]) for one batch."""
        video = isinstance(images, tv_tensors.Video)
        plain = images.as_subclass(Tensor) if isinstance(images, tv_tensors.TVTensor) else images
        if video:
            if plain.ndim != 5:
                raise ValueError(f"videos must be 5-D [B, T, C, H, W], got {tuple(plain.shape)}")
            # Frames become channels: one grid and one partner per tile for all frames.
            plain = plain.reshape(plain.shape[0], -1, *plain.shape[-2:])
        labels = _mixing_labels(labels)
        generator = worker_generator(self.generator)
        if draw_mixed(self.p, generator):
            out = self.mix(plain, labels, generator)
            mixed, targets = out.images, out.targets
        else:
            _check_images(plain)
            mixed, targets = plain, _one_hot_targets(labels, plain.shape[0], self.num_classes)
        if self.label_smoothing:  # in place: the targets are always a fresh tensor
            smoothing = self.label_smoothing
            targets.mul_(1 - smoothing).add_(smoothing / targets.shape[1])
        if mixed is plain:
            return images, targets  # unmixed: the input itself
        if video:
            mixed = mixed.view(images.shape)
        if isinstance(images, tv_tensors.TVTensor):
            mixed = tv_tensors.wrap(mixed, like=images)
        return mixed, targets

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self._settings())

    def _settings(self) -> list[tuple[str, Any]]:
        """(name, value) pairs for the repr: the method's own, then the common ones."""
        settings = [("alpha", self.alpha), ("num_classes", self.num_classes)]
        if self.p != 1:
            settings.append(("p", self.p))
        if self.label_smoothing:
            settings.append(("label_smoothing", self.label_smoothing))
        return settings


class RegionMixup(BatchMix):
    """Region Mixup (``region_mixup``, equation 1) as a torchvision v2 transform.

    >>> mix = RegionMixup(k=2, alpha=1.0, num_classes=10)
    >>> images, targets = mix(images, labels)  # doctest: +SKIP

    Args: ``k`` (tiles per side) or ``grid=(gh, gw)``; ``lam_mode`` "batch" (one λ per
    tile, Algorithm 1) or "sample" (one per tile and sample); and those of ``BatchMix``.
    """

    def __init__(
        self,
        k: int = 2,
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        grid: tuple[int, int] | None = None,
        lam_mode: str = "batch",
        **options: Any,
    ) -> None:
        super().__init__(alpha, num_classes, generator, **options)
        self.k, self.grid = k, _resolve_grid(k, grid)
        self._grid_arg = grid
        self.lam_mode = _check_lam_mode(lam_mode)

    def mix(self, images: Tensor, labels: Tensor, generator: torch.Generator | None) -> MixedBatch:
        return region_mixup(
            images, labels, self.k, self.alpha, self.num_classes, generator, self._grid_arg,
            self.lam_mode,
        )  # fmt: skip

    def _settings(self) -> list[tuple[str, Any]]:
        return [("grid", self.grid), *_lam_setting(self.lam_mode), *super()._settings()]


class Mixup(RegionMixup):
    """Mixup (Zhang et al., 2018) as a transform: Region Mixup with a single tile."""

    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> None:
        super().__init__(1, alpha, num_classes, generator, None, **options)  # one tile, always

    def _settings(self) -> list[tuple[str, Any]]:
        return [*_lam_setting(self.lam_mode), *BatchMix._settings(self)]


class CutMix(BatchMix):
    """CutMix (Yun et al., 2019) as a transform; the box is drawn as in
    ``sample_cutmix_params``."""

    def mix(self, images: Tensor, labels: Tensor, generator: torch.Generator | None) -> MixedBatch:
        return cutmix(images, labels, self.alpha, self.num_classes, generator)


class RandomRegionMixup(BatchMix):
    """Stochastic Region Mixup (``random_region_mixup``) as a transform; ``min_side``
    is the thinnest tile allowed, in pixels (1: any)."""

    def __init__(
        self,
        sides: tuple[int, ...] = (1, 2, 4),
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        lam_mode: str = "batch",
        min_side: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(alpha, num_classes, generator, **options)
        self.sides = _check_sides(sides)
        self.lam_mode = _check_lam_mode(lam_mode)
        self.min_side = _check_positive_int(min_side, "min_side")

    def mix(self, images: Tensor, labels: Tensor, generator: torch.Generator | None) -> MixedBatch:
        return random_region_mixup(
            images, labels, self.sides, self.alpha, self.num_classes, generator, self.lam_mode,
            self.min_side,
        )  # fmt: skip

    def _settings(self) -> list[tuple[str, Any]]:
        min_side = [("min_side", self.min_side)] if self.min_side != 1 else []
        return [("sides", self.sides), *min_side, *_lam_setting(self.lam_mode),
                *super()._settings()]  # fmt: skip


class GridMix(BatchMix):
    """GridMix (Baek, Bang & Kwak, Pattern Recognition 2021) as a transform: a grid of
    ``n_holes`` x ``n_holes`` holes over a cut region, filled from one partner
    (``gridmix``)."""

    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        n_holes: int = 4,
        **options: Any,
    ) -> None:
        super().__init__(alpha, num_classes, generator, **options)
        self.n_holes = _check_positive_int(n_holes, "n_holes")

    def mix(self, images: Tensor, labels: Tensor, generator: torch.Generator | None) -> MixedBatch:
        return gridmix(images, labels, self.alpha, self.num_classes, generator, self.n_holes)

    def _settings(self) -> list[tuple[str, Any]]:
        return [("n_holes", self.n_holes), *super()._settings()]


class FMix(BatchMix):
    """FMix (Harris et al., 2020) as a transform: a binary mask of thresholded
    low-frequency Fourier noise with area λ, one partner (``fmix``)."""

    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        decay_power: float = 3.0,
        max_soft: float = 0.0,
        **options: Any,
    ) -> None:
        super().__init__(alpha, num_classes, generator, **options)
        self.decay_power, self.max_soft = decay_power, max_soft

    def mix(self, images: Tensor, labels: Tensor, generator: torch.Generator | None) -> MixedBatch:
        return fmix(
            images, labels, self.alpha, self.num_classes, generator, self.decay_power,
            self.max_soft,
        )  # fmt: skip

    def _settings(self) -> list[tuple[str, Any]]:
        return [("decay_power", self.decay_power), ("max_soft", self.max_soft),
                *super()._settings()]  # fmt: skip


class ResizeMix(BatchMix):
    """ResizeMix (Qin et al., 2020) as a transform: the partner image resized into a
    patch whose side is a share drawn from ``scale_range``, pasted at a random place
    (``resizemix``). It draws no Beta λ, so it takes no ``alpha``."""

    def __init__(
        self,
        num_classes: int | None = None,
        generator: torch.Generator | None = None,
        scale_range: tuple[float, float] = (0.1, 0.8),
        **options: Any,
    ) -> None:
        super().__init__(1.0, num_classes, generator, **options)
        self.scale_range = tuple(scale_range)

    def mix(self, images: Tensor, labels: Tensor, generator: torch.Generator | None) -> MixedBatch:
        return resizemix(images, labels, self.num_classes, generator, self.scale_range)

    def _settings(self) -> list[tuple[str, Any]]:
        common = [item for item in super()._settings() if item[0] != "alpha"]
        return [("scale_range", self.scale_range), *common]


class MethodMix(BatchMix):
    """Any registered method (``methods.Method``) as a transform, with its declared
    settings: what ``Method.transform`` builds, so that a method registered by a
    plugin is a v2 transform with no class of its own.

    >>> mix = get_method("fmix").transform(num_classes=10, decay_power=2.0)  # doctest: +SKIP

    Args:
        method: the registered method (one that mixes images).
        settings: the values of the settings it reads, checked (``Method.transform``).
        num_classes, generator, p, label_smoothing, labels_getter: as ``BatchMix``.
    """

    def __init__(self, method, settings: dict[str, Any], num_classes: int | None = None,
                 generator: torch.Generator | None = None, **options: Any) -> None:  # fmt: skip
        if not method.mixes or method.in_model:
            raise ValueError(f"method {method.name!r} does not mix images: no transform")
        super().__init__(settings.get("alpha", 1.0), num_classes, generator, **options)
        self.method, self.settings = method, dict(settings)

    def mix(self, images: Tensor, labels: Tensor, generator: torch.Generator | None) -> MixedBatch:
        if self.num_classes is None and not labels.is_floating_point():
            raise ValueError(f"{self.method.name}: num_classes is required for class-index labels")
        num_classes = self.num_classes or labels.shape[1]
        return self.method.mix(images, labels, num_classes, self.settings, generator)

    def _settings(self) -> list[tuple[str, Any]]:
        common = [item for item in super()._settings() if item[0] != "alpha"]
        return [("method", self.method.name), *self.settings.items(), *common]


def _lam_setting(lam_mode: str) -> list[tuple[str, Any]]:
    """The repr's lam_mode entry, shown only when it is not Algorithm 1's "batch"."""
    return [] if lam_mode == "batch" else [("lam_mode", lam_mode)]


class MixChoice(v2.Transform):
    """One of several mixing transforms per batch, as timm's ``switch_prob`` switches
    between Mixup and CutMix (and as ``v2.RandomChoice`` picks a transform).

    >>> mix = MixChoice([RegionMixup(num_classes=10), CutMix(num_classes=10)], p=[0.5, 0.5])

    Args:
        transforms: the mixing transforms (``BatchMix``); each keeps its own ``p``,
            ``label_smoothing`` and generator.
        p: the probability of each transform (normalised); None: equal.
        generator: the source of the choice (derived per DataLoader worker, as the
            transforms' own); None uses the global RNG.
    Raises:
        ValueError, TypeError: a bad argument, named.
    """

    def __init__(
        self,
        transforms: Sequence[BatchMix],
        p: Sequence[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(transforms, (list, tuple)) or not transforms:
            raise TypeError(
                f"transforms must be a non-empty list of mixing transforms, got {transforms!r}"
            )
        for t in transforms:
            if not isinstance(t, BatchMix):
                raise TypeError(
                    f"transforms must hold mixing transforms (BatchMix), got {type(t).__name__}"
                )
        weights = [1.0] * len(transforms) if p is None else [_as_real(w) for w in p]
        if len(weights) != len(transforms) or any(w is None or not w >= 0 for w in weights):
            raise ValueError(
                f"p must hold one non-negative weight per transform ({len(transforms)}), got {p!r}"
            )
        total = sum(weights)
        if not total > 0:
            raise ValueError(f"p must have a positive sum, got {p!r}")
        self.transforms = nn.ModuleList(transforms)
        self.p = [w / total for w in weights]
        self._cumulative = list(itertools.accumulate(self.p))
        self.generator = _check_generator_arg(generator)

    def forward(self, *inputs: Any) -> Any:
        draw = draw_choice(self._cumulative, worker_generator(self.generator))
        chosen = min(draw, len(self.transforms) - 1)  # a cumulative sum a rounding below 1
        return self.transforms[chosen](*inputs)

    def extra_repr(self) -> str:
        return f"p={[round(w, 4) for w in self.p]}"
