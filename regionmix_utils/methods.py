"""The registry of mixing methods: the one place that says what a method is.

Each ``Method`` says how it samples and applies its mix, its label in tables, which
configuration settings it reads (``SETTINGS``: k, alpha, ...), and so its run-folder
name and its command-line options. Training, the command line, the tables, the demo and
the notebooks read this registry; none of them keeps its own list of method names.
Adding a method is one ``register(Method(...))`` and its tests, as timm's
``@register_model`` does for models.

The built-in entries, in the paper's column order (Table 1: CutMix, Vanilla Mixup k=1,
Region Mixup k=2), then the baseline without mixing:

- ``cutmix``: CutMix (Yun et al., 2019);
- ``mixup``: Mixup (Zhang et al., 2018), Region Mixup with one tile;
- ``region``: Region Mixup (Saha & Garain, 2024), equation 1 on a k x k grid;
- ``none``: no mixing; the loss is the clean cross entropy alone;
- ``region-random``: beyond the paper, Region Mixup with a random grid and random tile
  edges per batch (the stochastic region selection the paper leaves to future work).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from regionmix_utils.mixing import (
    MixedBatch,
    apply_cutmix,
    apply_region_mixup,
    sample_cutmix_params,
    sample_random_region_params,
    sample_region_params,
)

__all__ = [
    "SETTINGS",
    "Method",
    "Setting",
    "get_method",
    "method_names",
    "methods",
    "register",
    "registered",
    "unregister",
]


@dataclass(frozen=True)
class Setting:
    """A configuration field that methods may read (a field of ``TrainConfig``).

    Attributes:
        help: one line for the command line.
        tag: prefix in run-folder names ("k" gives ``k2``).
        symbol: name in table labels ("α" gives ``α=0.4``).
        type: how the command line parses a value.
        several: the value is a tuple (``--sides 1 2 4``), not one number.
    """

    help: str
    tag: str
    symbol: str
    type: type = float
    several: bool = False

    def format(self, value: Any, sep: str = ".") -> str:
        """``1`` for 1.0, ``0.4``, ``2``; a tuple joined by ``sep`` (``1.2.4``)."""
        if isinstance(value, (tuple, list)):
            return sep.join(self.format(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)


SETTINGS: dict[str, Setting] = {
    "k": Setting("tiles per side of the grid", "k", "k", int),
    "alpha": Setting("Beta(α, α) concentration of λ", "a", "α", float),
    "sides": Setting(
        "grid sides drawn per batch, for rows and columns", "s", "sides", int, several=True
    ),
}

# sample(batch_size, height, width, generator, **settings) -> parameters of one batch
Sampler = Callable[..., Any]
# apply(images, labels, params, num_classes, *, validate) -> MixedBatch
Applier = Callable[..., MixedBatch]


@dataclass(frozen=True)
class Method:
    """One mixing method.

    Attributes:
        name: command-line and run-folder name ("region").
        label: name in tables and figures ("Region Mixup").
        help: one line for the command line.
        reads: the ``SETTINGS`` it reads, in folder-name order; the others are reset to
            their defaults, so they never split or block runs.
        sample: draws one batch's random parameters from a ``torch.Generator``; None
            for a method that does not mix.
        apply: applies given parameters to a batch (``apply_region_mixup``'s signature).
        shown: settings always named in table labels (k for Region Mixup, as the paper's
            column headers do); the others are named where they differ from the defaults.
        fixed: settings the method implies for its label (Mixup is k=1).
    """

    name: str
    label: str
    help: str
    reads: tuple[str, ...] = ()
    sample: Sampler | None = None
    apply: Applier | None = None
    shown: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [s for s in (*self.reads, *self.shown) if s not in SETTINGS]
        if unknown:
            raise ValueError(f"settings {unknown} of method {self.name!r} are not in SETTINGS")
        if (self.sample is None) != (self.apply is None):
            raise ValueError(f"method {self.name!r} needs both sample and apply, or neither")

    @property
    def mixes(self) -> bool:
        """Whether the method mixes (the loss then has the mixed term)."""
        return self.sample is not None

    def mix(
        self,
        images: Tensor,
        labels: Tensor,
        num_classes: int,
        settings: Mapping[str, Any],
        generator: torch.Generator | None = None,
        *,
        validate: bool = True,
    ) -> MixedBatch:
        """Sample this batch's parameters, then apply them.

        Args:
            images: [B, C, H, W] floating point.
            labels: int64 class indices [B].
            num_classes: K.
            settings: values of the settings the method reads (extra keys are ignored).
            generator: the source of randomness.
            validate: check the arguments (the trainer checks them once, then skips the
                checks that would read values back from the device).
        Returns:
            MixedBatch with images [B, C, H, W] and targets [B, K].
        """
        if not self.mixes:
            raise ValueError(f"method {self.name!r} does not mix")
        batch, _, height, width = images.shape
        params = self.sample(batch, height, width, generator, **self.settings_of(settings))
        return self.apply(images, labels, params, num_classes, validate=validate)

    def settings_of(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The settings this method reads, taken from a config or a mapping."""
        get = values.get if isinstance(values, Mapping) else lambda n: getattr(values, n)
        return {name: get(name) for name in self.reads}

    def folder(self, settings: Mapping[str, Any]) -> str:
        """Run-folder name: ``region-k2-a1``, ``mixup-a1``, ``none``."""
        values = self.settings_of(settings)
        return "-".join([self.name, *(f"{SETTINGS[s].tag}{SETTINGS[s].format(v)}"
                                      for s, v in values.items())])  # fmt: skip

    def table_label(
        self, settings: Mapping[str, Any], defaults: Mapping[str, Any], extra: tuple = ()
    ) -> str:
        """ "Region Mixup (k=2)", "Mixup (k=1, α=0.4)": the label names the settings shown
        always and those that differ from ``defaults``, then the ``extra`` words."""
        values = {**self.fixed, **self.settings_of(settings)}
        parts = [
            f"{SETTINGS[s].symbol}={SETTINGS[s].format(v, sep=',')}"
            for s, v in values.items()
            if s in self.shown or s in self.fixed or v != defaults.get(s)
        ]
        parts += list(extra)
        return f"{self.label} ({', '.join(parts)})" if parts else self.label


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method; its name must be new. Returns the method."""
    if method.name in _REGISTRY:
        raise ValueError(f"a method named {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method (tests register toy methods for a while)."""
    _REGISTRY.pop(name, None)


@contextlib.contextmanager
def registered(method: Method) -> Iterator[Method]:
    """``with registered(Method(...)):`` the method exists inside the block only."""
    register(method)
    try:
        yield method
    finally:
        unregister(method.name)


def get_method(name: str) -> Method:
    """The registered method called ``name``; a clear error naming the choices otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"method must be one of {method_names()}, got {name!r}") from None


def method_names() -> tuple[str, ...]:
    """Names of the registered methods, in registration order (the paper's first)."""
    return tuple(_REGISTRY)


def methods() -> tuple[Method, ...]:
    """The registered methods, in registration order."""
    return tuple(_REGISTRY.values())


# ---------------------------------------------------------------- built-in methods


def _sample_grid(batch_size, height, width, generator, *, k, alpha):
    if k > min(height, width):
        raise ValueError(
            f"k must be between 1 and min(H, W) = {min(height, width)} for {height}x{width} "
            f"images, got k={k}"
        )
    return sample_region_params(batch_size, (k, k), alpha, generator)


def _sample_mixup(batch_size, height, width, generator, *, alpha):
    return _sample_grid(batch_size, height, width, generator, k=1, alpha=alpha)


def _sample_random_grid(batch_size, height, width, generator, *, sides, alpha):
    return sample_random_region_params(batch_size, height, width, sides, alpha, generator)


def _sample_cutmix(batch_size, height, width, generator, *, alpha):
    return sample_cutmix_params(batch_size, height, width, alpha, generator)


register(Method(
    name="cutmix", label="CutMix", reads=("alpha",),
    sample=_sample_cutmix, apply=apply_cutmix,
    help="CutMix: paste a Beta-sized box from a partner, label weight = true box area",
))  # fmt: skip
register(Method(
    name="mixup", label="Mixup", reads=("alpha",), fixed={"k": 1},
    sample=_sample_mixup, apply=apply_region_mixup,
    help="Mixup: blend whole images (Region Mixup with k = 1)",
))  # fmt: skip
register(Method(
    name="region", label="Region Mixup", reads=("k", "alpha"), shown=("k",),
    sample=_sample_grid, apply=apply_region_mixup,
    help="Region Mixup (the paper): k x k tiles, each with its own λ and partner",
))  # fmt: skip
register(Method(name="none", label="No mixing", help="no mixing: clean cross entropy only"))
register(Method(
    name="region-random", label="Region Mixup, random grid", reads=("sides", "alpha"),
    shown=("sides",),
    sample=_sample_random_grid, apply=apply_region_mixup,
    help="beyond the paper: a random gh x gw grid (sides from --sides) with random tile "
    "edges per batch, each tile its own λ and partner",
))  # fmt: skip
