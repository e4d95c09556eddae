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
  edges per batch (the stochastic region selection the paper leaves to future work);
- ``gridmix``, ``fmix``, ``resizemix``: baselines that mix by a region of the image
  (GridMix, Baek et al., 2021; FMix, Harris et al., 2020; ResizeMix, Qin et al., 2020);
- ``manifold``: Manifold Mixup (Verma et al., 2019), mixup of a hidden state;
- ``region-manifold``: beyond the paper, equation 1 on a hidden state's feature map.

The last two mix inside the model: their entries declare the ``layers`` they may mix at,
and ``Method.forward_mixed`` applies the mix there through a forward hook on the
model's ``mix_layers`` (``mixing.feature``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from regionmix_utils.mixing import (
    INPUT,
    MixedBatch,
    apply_cutmix,
    apply_mask_mix,
    apply_region_mixup,
    apply_resizemix,
    draw_layer,
    forward_mixed,
    mixable_layers,
    sample_cutmix_params,
    sample_fmix_params,
    sample_gridmix_params,
    sample_random_region_params,
    sample_region_params,
    sample_resizemix_params,
)
from regionmix_utils.mixing.core import _check_lam_mode, plain_number

__all__ = [
    "SETTINGS",
    "Method",
    "Setting",
    "declaration",
    "get_method",
    "method_names",
    "methods",
    "register",
    "registered",
    "setting_names",
    "unregister",
]


@dataclass(frozen=True)
class Setting:
    """A parameter a method reads: one of the shared ``SETTINGS`` (fields of
    ``TrainConfig``: k, alpha, sides, lam_mode), or a method's own (``Method.params``,
    stored in ``TrainConfig.params``). The command-line option (``--name``), the
    run-folder tag, the table label and the ablation axis all come from it.

    Attributes:
        help: one line for the command line.
        tag: prefix in run-folder names ("k" gives ``k2``).
        symbol: name in table labels ("α" gives ``α=0.4``).
        type: how the command line parses a value.
        several: the value is a tuple (``--sides 1 2 4``), not one number.
        unnamed: a value left out of run-folder names (a setting added after runs
            existed: at its default it keeps their folder names); None: always named.
        default: a method's own parameter's default (the shared settings take theirs
            from ``TrainConfig``).
        low, high: the allowed range, inclusive (None: unbounded).
        above: an exclusive lower bound (a power that must be positive).
        choices: the allowed values (None: any of ``type``).
    """

    help: str
    tag: str
    symbol: str
    type: Callable[[str], Any] = float
    several: bool = False
    unnamed: Any = None
    default: Any = None
    low: float | None = None
    high: float | None = None
    above: float | None = None
    choices: tuple | None = None

    def format(self, value: Any, sep: str = ".") -> str:
        """``1`` for 1.0, ``0.4``, ``2``; a tuple joined by ``sep`` (``1.2.4``)."""
        if isinstance(value, (tuple, list)):
            return sep.join(self.format(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    def allowed(self) -> str:
        """What the value may be, in words: "a number in [0, 10]", "one of (1, 2)"."""
        if self.choices is not None:
            return f"one of {self.choices}"
        kind = "an integer" if self.type is int else "a number"
        if self.above is not None:
            return f"{kind} > {self.above:g}" + (f" and <= {self.high:g}" if self.high else "")
        if self.low is not None and self.high is not None:
            return f"{kind} in [{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{kind} >= {self.low:g}"
        return f"{kind} <= {self.high:g}" if self.high is not None else kind

    def _as_type(self, value: Any) -> Any:
        # numpy numbers as the Python numbers they stand for (np.float32(0.4) -> 0.4)
        value = plain_number(value)
        if self.type is int and isinstance(value, float) and not value.is_integer():
            raise ValueError  # int(2.5) would quietly use k = 2
        return self.type(value)

    def check(self, name: str, value: Any) -> Any:
        """``value`` as this setting's type, or a one-line ValueError naming ``name``
        and what is allowed."""
        try:
            if self.several:
                value = tuple(self._as_type(v) for v in value)
            elif not isinstance(value, (bool, np.bool_)) or self.type is bool:
                value = self._as_type(value)
            else:
                raise TypeError
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be {self.allowed()}, got {value!r}") from None
        for v in value if self.several else (value,):
            bad = (self.choices is not None and v not in self.choices) or (
                self.low is not None and v < self.low) or (
                self.above is not None and not v > self.above) or (
                self.high is not None and v > self.high) or (
                isinstance(v, float) and not math.isfinite(v))  # fmt: skip
            if bad:
                raise ValueError(f"{name} must be {self.allowed()}, got {value!r}")
        return value


def _lam_mode(text: str) -> str:
    """A ``--lam-mode`` value: one of ``LAM_MODES``."""
    return _check_lam_mode(text)


_lam_mode.__name__ = "lam_mode"  # argparse names the type in its error message

# The settings several methods share, with the defaults ``TrainConfig`` takes: the
# paper's k = 2; α = 1, what the mixup and CutMix papers use on CIFAR (the paper states
# none); random grids of sides 1, 2, 4; one λ per tile (Algorithm 1).
SETTINGS: dict[str, Setting] = {
    "k": Setting("tiles per side of the grid", "k", "k", int, default=2, low=1),
    "alpha": Setting("Beta(α, α) concentration of λ", "a", "α", float, default=1.0, above=0),
    "sides": Setting(
        "grid sides drawn per batch, for rows and columns",
        "s",
        "sides",
        int,
        several=True,
        default=(1, 2, 4),
        low=1,
    ),
    "lam_mode": Setting(
        "λ per tile ('batch', Algorithm 1) or per tile and sample ('sample')",
        "lam",
        "λ per",
        _lam_mode,
        unnamed="batch",
        default="batch",
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
        layers: for a method that mixes inside the model, the layers it may mix at
            ("input", "layer1", ...), one drawn uniformly per batch among those the
            model declares (``mixing.mixable_layers``); ``apply`` is then applied to
            that layer's hidden state. Empty for methods that mix images.
        params: the method's own parameters, name -> ``Setting`` with its default
            (FMix's ``decay_power``): ``sample`` receives them as keywords after the
            shared ones, and they name the run folder after them.
    """

    name: str
    label: str
    help: str
    reads: tuple[str, ...] = ()
    sample: Sampler | None = None
    apply: Applier | None = None
    shown: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    layers: tuple[str, ...] = ()
    params: Mapping[str, Setting] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [s for s in (*self.reads, *self.shown)
                   if s not in SETTINGS and s not in self.params]  # fmt: skip
        if unknown:
            raise ValueError(f"settings {unknown} of method {self.name!r} are not in SETTINGS "
                             "or its params")  # fmt: skip
        shared = [name for name in self.params if name in SETTINGS]
        if shared:
            raise ValueError(f"params {shared} of method {self.name!r} are shared SETTINGS: "
                             "list them in reads")  # fmt: skip
        for name, setting in self.params.items():
            setting.check(name, setting.default)
        if (self.sample is None) != (self.apply is None):
            raise ValueError(f"method {self.name!r} needs both sample and apply, or neither")
        if self.layers and not self.mixes:
            raise ValueError(f"method {self.name!r} declares layers but does not mix")

    @property
    def mixes(self) -> bool:
        """Whether the method mixes (the loss then has the mixed term)."""
        return self.sample is not None

    @property
    def in_model(self) -> bool:
        """Whether the method mixes hidden states inside the model (``layers``)."""
        return bool(self.layers)

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
        if self.in_model:
            raise ValueError(
                f"method {self.name!r} mixes inside the model: use forward_mixed(model, ...)"
            )
        batch, _, height, width = images.shape
        params = self.sample(batch, height, width, generator, **self.settings_of(settings))
        return self.apply(images, labels, params, num_classes, validate=validate)

    def forward_mixed(
        self,
        model: torch.nn.Module,
        images: Tensor,
        labels: Tensor,
        num_classes: int,
        settings: Mapping[str, Any],
        generator: torch.Generator | None = None,
        *,
        layer: str | None = None,
        validate: bool = True,
    ) -> tuple[Tensor, MixedBatch, str]:
        """The model's output on a mixed batch: for an image-space method, the model on
        ``mix``'s images; for a method with ``layers``, the model with the mix applied to
        the hidden state at a layer drawn from ``generator`` (then the parameters).

        Args:
            model: the network; declares ``mix_layers`` for in-model methods.
            images, labels, num_classes, settings, generator, validate: as ``mix``.
            layer: mix at this layer instead of drawing one (tests, figures).
        Returns:
            (logits [B, K], the MixedBatch of what was mixed (images, or the hidden
            state), the layer: "input" for image-space methods).
        """
        if not self.in_model:
            mixed = self.mix(images, labels, num_classes, settings, generator, validate=validate)
            return model(mixed.images), mixed, INPUT
        if layer is None:
            layer = draw_layer(self.layers, model, generator)
        elif layer not in mixable_layers(model):
            raise ValueError(f"layer must be one of {mixable_layers(model)}, got {layer!r}")
        values = self.settings_of(settings)

        def mix(hidden: Tensor) -> MixedBatch:
            batch, _, height, width = hidden.shape
            params = self.sample(batch, height, width, generator, **values)
            return self.apply(hidden, labels, params, num_classes, validate=validate)

        logits, mixed = forward_mixed(model, images, layer, mix)
        return logits, mixed, layer

    @property
    def setting_names(self) -> tuple[str, ...]:
        """Every parameter it reads: the shared ones (``reads``), then its own."""
        return (*self.reads, *self.params)

    def setting(self, name: str) -> Setting:
        """The declaration of one of its parameters."""
        return self.params[name] if name in self.params else SETTINGS[name]

    def check_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Its own parameters: ``values`` checked against their declarations, the
        missing ones at their defaults, in declaration order.

        Raises:
            ValueError: in one line, a name it does not declare (listing those it
                does), or a value out of its declared range.
        """
        unknown = [name for name in values if name not in self.params]
        if unknown:
            raise ValueError(f"method {self.name!r} has no parameter {unknown[0]!r}; its "
                             f"parameters: {self.setting_names or 'none'}")  # fmt: skip
        return {name: setting.check(name, values.get(name, setting.default))
                for name, setting in self.params.items()}  # fmt: skip

    def transform(self, num_classes: int | None = None, generator=None, *, p: float = 1.0,
                  label_smoothing: float = 0.0, **settings: Any):  # fmt: skip
        """This method as a torchvision v2 transform (``mixing.MethodMix``): the
        shared settings it reads and its own parameters as keywords (the missing ones
        at their defaults), ``p`` and ``label_smoothing`` as every ``BatchMix`` takes
        them. A keyword it does not read is a one-line error that lists those it does."""
        from regionmix_utils.mixing.transforms import MethodMix

        own = {k: v for k, v in settings.items() if k not in self.reads}
        values = {name: SETTINGS[name].check(name, settings.get(name, SETTINGS[name].default))
                  for name in self.reads}  # fmt: skip
        values |= self.check_params(own)
        return MethodMix(self, values, num_classes, generator, p=p,
                         label_smoothing=label_smoothing)  # fmt: skip

    def settings_of(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The settings this method reads (shared, then its own), taken from a config
        or a mapping (settings a mapping lacks are left out: the method's sampler then
        uses its default)."""
        if isinstance(values, Mapping):
            return {name: values[name] for name in self.setting_names if name in values}
        own = dict(getattr(values, "params", ()))
        return {**{name: getattr(values, name) for name in self.reads},
                **{name: own.get(name, s.default) for name, s in self.params.items()}}  # fmt: skip

    def folder(self, settings: Mapping[str, Any]) -> str:
        """Run-folder name: ``region-k2-a1``, ``mixup-a1``, ``none``,
        ``region-k2-a1-lamsample`` (a setting at its ``unnamed`` value is left out)."""
        return self.name + self.folder_tags(settings, self.setting_names)

    @staticmethod
    def folder_tags(settings: Mapping[str, Any], names) -> str:
        """``-k2-a1``: the tags of the settings ``names`` (in that order) as run-folder
        names write them; a setting at its ``unnamed`` value, or missing, is left out.
        Names that are no shared setting are looked up among the registered methods'
        own parameters."""
        get = settings.get if isinstance(settings, Mapping) else (
            lambda n: getattr(settings, n, None)
        )  # fmt: skip
        tags = []
        for name in names:
            value, setting = get(name), declaration(name)
            if value is None or (setting.unnamed is not None and value == setting.unnamed):
                continue
            tags.append(f"-{setting.tag}{setting.format(value)}")
        return "".join(tags)

    def table_label(
        self, settings: Mapping[str, Any], defaults: Mapping[str, Any], extra: tuple = ()
    ) -> str:
        """ "Region Mixup (k=2)", "Mixup (k=1, α=0.4)": the label names the settings shown
        always and those that differ from ``defaults``, then the ``extra`` words."""
        values = {**self.fixed, **self.settings_of(settings)}
        defaults = {**defaults, **{name: s.default for name, s in self.params.items()}}
        parts = [
            f"{self._declared(s).symbol}={self._declared(s).format(v, sep=',')}"
            for s, v in values.items()
            if s in self.shown or s in self.fixed or v != defaults.get(s)
        ]
        parts += list(extra)
        return f"{self.label} ({', '.join(parts)})" if parts else self.label

    def _declared(self, name: str) -> Setting:
        return self.params.get(name) or SETTINGS[name]


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


def declaration(name: str) -> Setting:
    """The declaration of a parameter: a shared setting, or the first registered
    method's own parameter of that name.

    Raises:
        ValueError: no setting and no registered method's parameter has the name.
    """
    if name in SETTINGS:
        return SETTINGS[name]
    for method in _REGISTRY.values():
        if name in method.params:
            return method.params[name]
    raise ValueError(f"no method reads a setting {name!r}; the settings: {setting_names()}")


def setting_names() -> tuple[str, ...]:
    """The shared settings, then every registered method's own parameters (each once)."""
    own = (name for m in _REGISTRY.values() for name in m.params)
    return tuple(dict.fromkeys((*SETTINGS, *own)))


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

# Manifold Mixup's layers on PreAct ResNet (Verma et al., 2019: layer_mix in {0, 1, 2}).
MANIFOLD_LAYERS = ("input", "layer1", "layer2")


def _sample_grid(batch_size, height, width, generator, *, k, alpha, lam_mode="batch"):
    if k > min(height, width):
        raise ValueError(
            f"k must be between 1 and min(H, W) = {min(height, width)} for {height}x{width} "
            f"images, got k={k}"
        )
    return sample_region_params(batch_size, (k, k), alpha, generator, lam_mode=lam_mode)


def _sample_mixup(batch_size, height, width, generator, *, alpha, lam_mode="batch"):
    return _sample_grid(batch_size, height, width, generator, k=1, alpha=alpha,
                        lam_mode=lam_mode)  # fmt: skip


def _sample_random_grid(batch_size, height, width, generator, *, sides, alpha,
                        lam_mode="batch"):  # fmt: skip
    return sample_random_region_params(
        batch_size, height, width, sides, alpha, generator, lam_mode=lam_mode
    )


def _sample_cutmix(batch_size, height, width, generator, *, alpha):
    return sample_cutmix_params(batch_size, height, width, alpha, generator)


def _sample_gridmix(batch_size, height, width, generator, *, alpha):
    return sample_gridmix_params(batch_size, height, width, alpha, generator)


def _sample_fmix(batch_size, height, width, generator, *, alpha, decay_power=3.0):
    return sample_fmix_params(batch_size, height, width, alpha, generator,
                              decay_power=decay_power)  # fmt: skip


def _sample_resizemix(batch_size, height, width, generator):
    return sample_resizemix_params(batch_size, height, width, generator)


register(Method(
    name="cutmix", label="CutMix", reads=("alpha",),
    sample=_sample_cutmix, apply=apply_cutmix,
    help="CutMix: paste a Beta-sized box from a partner, label weight = true box area",
))  # fmt: skip
register(Method(
    name="mixup", label="Mixup", reads=("alpha", "lam_mode"), fixed={"k": 1},
    sample=_sample_mixup, apply=apply_region_mixup,
    help="Mixup: blend whole images (Region Mixup with k = 1)",
))  # fmt: skip
register(Method(
    name="region", label="Region Mixup", reads=("k", "alpha", "lam_mode"), shown=("k",),
    sample=_sample_grid, apply=apply_region_mixup,
    help="Region Mixup (the paper): k x k tiles, each with its own λ and partner",
))  # fmt: skip
register(Method(name="none", label="No mixing", help="no mixing: clean cross entropy only"))
register(Method(
    name="region-random", label="Region Mixup, random grid", reads=("sides", "alpha", "lam_mode"),
    shown=("sides",),
    sample=_sample_random_grid, apply=apply_region_mixup,
    help="beyond the paper: a random gh x gw grid (sides from --sides) with random tile "
    "edges per batch, each tile its own λ and partner",
))  # fmt: skip
register(Method(
    name="gridmix", label="GridMix", reads=("alpha",),
    sample=_sample_gridmix, apply=apply_mask_mix,
    help="GridMix (Baek et al., 2021): a grid of holes filled from a partner, 4 holes "
    "across, hole side from Beta; label weight = true hole area",
))  # fmt: skip
register(Method(
    name="fmix", label="FMix", reads=("alpha",),
    sample=_sample_fmix, apply=apply_mask_mix,
    params={"decay_power": Setting(
        "FMix: d of the Fourier noise's 1/f^d decay (higher: smoother masks)", "d",
        "decay power", float, unnamed=3.0, default=3.0, above=0.0,
    )},
    help="FMix (Harris et al., 2020): a mask of thresholded low-frequency Fourier noise "
    "(1/f^d, --decay-power) with area λ ~ Beta, one partner",
))  # fmt: skip
register(Method(
    name="resizemix", label="ResizeMix", sample=_sample_resizemix, apply=apply_resizemix,
    help="ResizeMix (Qin et al., 2020): the partner resized into a box of side ratio "
    "U(0.1, 0.8) at a random place; label weight = box area",
))  # fmt: skip
register(Method(
    name="manifold", label="Manifold Mixup", reads=("alpha",),
    sample=_sample_mixup, apply=apply_region_mixup, layers=MANIFOLD_LAYERS,
    help="Manifold Mixup (Verma et al., 2019): mixup of the hidden state at a layer "
    "drawn per batch from {input, layer1, layer2}",
))  # fmt: skip
register(Method(
    name="region-manifold", label="Region Manifold Mixup", reads=("k", "alpha", "lam_mode"),
    shown=("k",), sample=_sample_grid, apply=apply_region_mixup, layers=MANIFOLD_LAYERS,
    help="beyond the paper: equation 1 on the hidden state at a layer drawn per batch "
    "from {input, layer1, layer2}: k x k tiles of the feature map, each its own λ and partner",
))  # fmt: skip
