"""The method registry: one ``Method`` entry per mixing method, from which the one-call
functions, the v2 transforms, the trainer, command line, folders and labels are made."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from regionmix_utils.mixing import core, feature, samplers
from regionmix_utils.mixing.core import SETTINGS, MixedBatch, Setting
from regionmix_utils.mixing.transforms import MethodMix, transform_class
from regionmix_utils.registry import Registry

__all__ = ["CutMix", "FMix", "GridMix", "Mixup", "RandomRegionMixup", "RegionMixup", "ResizeMix",
           "cutmix", "fmix", "gridmix", "mixup", "random_region_mixup", "region_mixup",
           "resizemix"]  # fmt: skip

# sample(batch_size, height, width, generator, **settings) -> the parameters of one batch
Sampler = Callable[..., Any]
# apply(images, labels, params, num_classes, *, validate) -> MixedBatch
Applier = Callable[..., MixedBatch]
Generator = torch.Generator | None


@dataclass(frozen=True)
class Method:
    """A mixing method: name, table label, help; the ``SETTINGS`` it ``reads`` and its own
    ``params``; ``sample`` and ``apply`` (None: no mixing); settings ``shown`` or ``fixed``
    in labels; the ``layers`` an in-model method mixes at (one drawn per batch)."""

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
        if unknown := [s for s in (*self.reads, *self.shown)
                       if s not in SETTINGS and s not in self.params]:  # fmt: skip
            raise ValueError(f"settings {unknown} of method {self.name!r} are not in SETTINGS "
                             "or its params")  # fmt: skip
        if shared := [name for name in self.params if name in SETTINGS]:
            raise ValueError(f"params {shared} of method {self.name!r} are shared SETTINGS: "
                             "list them in reads")  # fmt: skip
        self.check_params({})
        if (self.sample is None) != (self.apply is None):
            raise ValueError(f"method {self.name!r} needs both sample and apply, or neither")
        if self.layers and not self.mixes:
            raise ValueError(f"method {self.name!r} declares layers but does not mix")

    @property
    def mixes(self) -> bool:
        return self.sample is not None

    @property
    def in_model(self) -> bool:
        return bool(self.layers)

    @property
    def setting_names(self) -> tuple[str, ...]:
        """The shared settings it reads, then its own."""
        return (*self.reads, *self.params)

    def setting(self, name: str) -> Setting:
        return self.params[name] if name in self.params else SETTINGS[name]

    def __call__(self, images: Tensor, labels: Tensor, num_classes: int | None = None,
                 generator: torch.Generator | None = None, *, validate: bool = True,
                 **settings: Any) -> MixedBatch:  # fmt: skip
        """Sample with ``settings``, then apply: images [B, C, H, W] -> MixedBatch."""
        if not self.mixes:
            raise ValueError(f"method {self.name!r} does not mix")
        if validate:
            core.check_images(images)
            core.check_generator(generator, images.device)
        batch, _, height, width = images.shape
        params = self.sample(batch, height, width, generator, **settings)
        return self.apply(images, labels, params, num_classes, validate=validate)

    def mix(self, images: Tensor, labels: Tensor, num_classes: int, settings: Mapping[str, Any],
            generator: torch.Generator | None = None, *,
            validate: bool = True) -> MixedBatch:  # fmt: skip
        """Mix with the settings it reads from a config or mapping (extra keys ignored)."""
        if self.in_model:
            raise ValueError(f"method {self.name!r} mixes inside the model: use "
                             "forward_mixed(model, ...)")  # fmt: skip
        return self(images, labels, num_classes, generator, validate=validate,
                    **self.settings_of(settings))  # fmt: skip

    def forward_mixed(self, model: torch.nn.Module, images: Tensor, labels: Tensor,
                      num_classes: int, settings: Mapping[str, Any],
                      generator: torch.Generator | None = None, *, layer: str | None = None,
                      validate: bool = True) -> tuple[Tensor, MixedBatch, str]:  # fmt: skip
        """(logits [B, K], the MixedBatch, the layer): the images ("input"), or for an
        in-model method the hidden state at ``layer`` (None: drawn)."""
        if not self.in_model:
            mixed = self.mix(images, labels, num_classes, settings, generator, validate=validate)
            return model(mixed.images), mixed, feature.INPUT
        if layer is None:
            layer = feature.draw_layer(self.layers, model, generator)
        elif layer not in (layers := feature.mixable_layers(model)):
            raise ValueError(f"layer must be one of {layers}, got {layer!r}")
        values = self.settings_of(settings)
        logits, mixed = feature.forward_mixed(model, images, layer, lambda hidden: self(
            hidden, labels, num_classes, generator, validate=validate, **values))  # fmt: skip
        return logits, mixed, layer

    def check_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Its own parameters checked, missing ones at defaults; ValueError: unknown name."""
        if unknown := [name for name in values if name not in self.params]:
            raise ValueError(f"method {self.name!r} has no parameter {unknown[0]!r}; its "
                             f"parameters: {self.setting_names or 'none'}")  # fmt: skip
        return {name: setting.check(name, values.get(name, setting.default))
                for name, setting in self.params.items()}  # fmt: skip

    def transform(self, num_classes: int | None = None, generator=None, *, p: float = 1.0,
                  label_smoothing: float = 0.0, **settings: Any) -> MethodMix:  # fmt: skip
        """This method as a v2 ``MethodMix``, its settings as keywords (missing: defaults)."""
        values = check_settings({name: settings.get(name, SETTINGS[name].default)
                                 for name in self.reads})  # fmt: skip
        values |= self.check_params({k: v for k, v in settings.items() if k not in self.reads})
        return MethodMix(self, values, num_classes, generator, p=p,
                         label_smoothing=label_smoothing)  # fmt: skip

    def settings_of(self, values: Any) -> dict[str, Any]:
        """The settings it reads, from a mapping (those present) or a config."""
        if isinstance(values, Mapping):
            return {name: values[name] for name in self.setting_names if name in values}
        own = dict(getattr(values, "params", ()))
        return {**{name: getattr(values, name) for name in self.reads},
                **{name: own.get(name, s.default) for name, s in self.params.items()}}  # fmt: skip

    def folder(self, settings: Mapping[str, Any]) -> str:
        """Run-folder name: ``region-k2-a1``, ``none``, ``region-k2-a1-lamsample``."""
        return self.name + self.folder_tags(settings, self.setting_names)

    @staticmethod
    def folder_tags(settings: Any, names) -> str:
        """``-k2-a1``: the tags of ``names``, left out when missing or ``unnamed``."""
        get = settings.get if isinstance(settings, Mapping) else (
            lambda n: getattr(settings, n, None))  # fmt: skip
        pairs = [(get(name), declaration(name)) for name in names]
        return "".join(f"-{s.tag}{s.format(v)}" for v, s in pairs
                       if v is not None and (s.unnamed is None or v != s.unnamed))  # fmt: skip

    def table_label(self, settings: Mapping[str, Any], defaults: Mapping[str, Any],
                    extra: tuple = ()) -> str:  # fmt: skip
        """ "Region Mixup (k=2)", "Mixup (k=1, α=0.4)": settings shown, fixed or not at
        ``defaults``, then ``extra``."""
        values = {**self.fixed, **self.settings_of(settings)}
        defaults = {**defaults, **{name: s.default for name, s in self.params.items()}}
        parts = [f"{self.setting(s).symbol}={self.setting(s).format(v, sep=',')}"
                 for s, v in values.items()
                 if s in self.shown or s in self.fixed or v != defaults.get(s)]  # fmt: skip
        parts += list(extra)
        return f"{self.label} ({', '.join(parts)})" if parts else self.label


METHODS: Registry[Method] = Registry("method")


def check_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The shared ``SETTINGS`` among ``values``, checked (text parsed); ValueError."""
    return {name: SETTINGS[name].check(name, v) for name, v in values.items() if name in SETTINGS}


def declaration(name: str) -> Setting:
    """A shared setting, or the first registered method's parameter of that name."""
    for declared in (SETTINGS, *(method.params for method in METHODS.entries())):
        if name in declared:
            return declared[name]
    raise ValueError(f"no method reads a setting {name!r}; the settings: {setting_names()}")


def setting_names() -> tuple[str, ...]:
    """The shared settings, then every registered method's own parameters."""
    return tuple(dict.fromkeys((*SETTINGS, *(n for m in METHODS.entries() for n in m.params))))


# ---------------------------------------------------------------------- built-in entries

MANIFOLD_LAYERS = ("input", "layer1", "layer2")  # Verma et al.: layer_mix in {0, 1, 2}


def _sample_grid(batch_size, height, width, generator=None, *, k=2, alpha=1.0,
                 lam_mode="batch", grid=None):  # fmt: skip
    tiles = samplers.resolve_grid(k, grid)
    samplers.check_grid_fits(tiles, height, width, k_given=grid is None)
    # the sizes are checked
    return samplers._region_params(batch_size, tiles, alpha, generator, None, lam_mode)


_sample_mixup = functools.partial(_sample_grid, k=1)


def _keywords(sampler: Callable[..., Any]) -> Sampler:
    """A public sampler with the entries' argument order."""
    return lambda batch_size, height, width, generator=None, **settings: sampler(
        batch_size, height, width, generator=generator, **settings)  # fmt: skip


CUTMIX = METHODS.register(Method(
    "cutmix", "CutMix", "CutMix: paste a Beta-sized box from a partner, label weight = true box "
    "area", ("alpha",), _keywords(samplers.sample_cutmix_params), core.apply_cutmix))  # fmt: skip
MIXUP = METHODS.register(Method(
    "mixup", "Mixup", "Mixup: blend whole images (Region Mixup with k = 1)",
    ("alpha", "lam_mode"), _sample_mixup, core.apply_region_mixup, fixed={"k": 1}))  # fmt: skip
REGION = METHODS.register(Method(
    "region", "Region Mixup", "Region Mixup (the paper): k x k tiles, each with its own λ and "
    "partner", ("k", "alpha", "lam_mode"), _sample_grid, core.apply_region_mixup,
    shown=("k",)))  # fmt: skip
METHODS.register(Method("none", "No mixing", "no mixing: clean cross entropy only"))
RANDOM_REGION = METHODS.register(Method(
    "region-random", "Region Mixup, random grid", "beyond the paper: a random gh x gw grid "
    "(sides from --sides) with random tile edges per batch, each tile its own λ and partner",
    ("sides", "alpha", "lam_mode"), _keywords(samplers.sample_random_region_params),
    core.apply_region_mixup, shown=("sides",)))  # fmt: skip
GRIDMIX = METHODS.register(Method(
    "gridmix", "GridMix", "GridMix (Baek et al., 2021): a grid of holes filled from a partner, "
    "4 holes across, hole side from Beta; label weight = true hole area", ("alpha",),
    _keywords(samplers.sample_gridmix_params), core.apply_mask_mix))  # fmt: skip
FMIX = METHODS.register(Method(
    "fmix", "FMix", "FMix (Harris et al., 2020): a mask of thresholded low-frequency Fourier "
    "noise (1/f^d, --decay-power) with area λ ~ Beta, one partner", ("alpha",),
    _keywords(samplers.sample_fmix_params), core.apply_mask_mix,
    params={"decay_power": samplers.DECAY_POWER}))  # fmt: skip
RESIZEMIX = METHODS.register(Method(
    "resizemix", "ResizeMix", "ResizeMix (Qin et al., 2020): the partner resized into a box of "
    "side ratio U(0.1, 0.8) at a random place; label weight = box area", (),
    _keywords(samplers.sample_resizemix_params), core.apply_resizemix))  # fmt: skip
METHODS.register(Method(
    "manifold", "Manifold Mixup", "Manifold Mixup (Verma et al., 2019): mixup of the hidden "
    "state at a layer drawn per batch from {input, layer1, layer2}", ("alpha",), _sample_mixup,
    core.apply_region_mixup, layers=MANIFOLD_LAYERS))  # fmt: skip
METHODS.register(Method(
    "region-manifold", "Region Manifold Mixup", "beyond the paper: equation 1 on the hidden "
    "state at a layer drawn per batch from {input, layer1, layer2}: k x k tiles of the feature "
    "map, each its own λ and partner", ("k", "alpha", "lam_mode"), _sample_grid,
    core.apply_region_mixup, shown=("k",), layers=MANIFOLD_LAYERS))  # fmt: skip


# The one-call functions: images [B, C, H, W] float, not modified; labels int64 [B] (with
# num_classes) or float [B, K]; generator on the CPU or the images' device. -> MixedBatch


def region_mixup(images: Tensor, labels: Tensor, k: int = 2, alpha: float = 1.0,
                 num_classes: int | None = None, generator: Generator = None,
                 grid: tuple[int, int] | None = None,
                 lam_mode: str = "batch") -> MixedBatch:  # fmt: skip
    """Region Mixup (equation 1): k x k tiles (or ``grid=(gh, gw)``), each with its own
    λ ~ Beta(alpha, alpha) and partner; lam [gh, gw] (or [gh, gw, B]), partners [gh, gw, B]."""
    return REGION(images, labels, num_classes, generator, k=k, alpha=alpha, grid=grid,
                  lam_mode=lam_mode)  # fmt: skip


def mixup(images: Tensor, labels: Tensor, alpha: float = 1.0, num_classes: int | None = None,
          generator: Generator = None, lam_mode: str = "batch") -> MixedBatch:  # fmt: skip
    """Mixup (Zhang et al., 2018): exactly ``region_mixup(..., k=1)``."""
    return MIXUP(images, labels, num_classes, generator, alpha=alpha, lam_mode=lam_mode)


def random_region_mixup(images: Tensor, labels: Tensor, sides: tuple[int, ...] = (1, 2, 4),
                        alpha: float = 1.0, num_classes: int | None = None,
                        generator: Generator = None, lam_mode: str = "batch",
                        min_side: int = 1) -> MixedBatch:  # fmt: skip
    """Stochastic Region Mixup (``sample_random_region_params``); ``out.edges``: the edges."""
    return RANDOM_REGION(images, labels, num_classes, generator, sides=sides, alpha=alpha,
                         lam_mode=lam_mode, min_side=min_side)  # fmt: skip


def cutmix(images: Tensor, labels: Tensor, alpha: float = 1.0, num_classes: int | None = None,
           generator: Generator = None) -> MixedBatch:  # fmt: skip
    """CutMix (``sample_cutmix_params``); ``lam`` [1, 1]: the unpasted share."""
    return CUTMIX(images, labels, num_classes, generator, alpha=alpha)


def gridmix(images: Tensor, labels: Tensor, alpha: float = 1.0, num_classes: int | None = None,
            generator: Generator = None, n_holes: int = 4) -> MixedBatch:  # fmt: skip
    """GridMix (``sample_gridmix_params``); ``mask`` [H, W] is the weight of x_A."""
    return GRIDMIX(images, labels, num_classes, generator, alpha=alpha, n_holes=n_holes)


def fmix(images: Tensor, labels: Tensor, alpha: float = 1.0, num_classes: int | None = None,
         generator: Generator = None, decay_power: float = 3.0, max_soft: float = 0.0,
         ) -> MixedBatch:  # fmt: skip
    """FMix (``sample_fmix_params``); ``mask`` [H, W] is the weight of x_A."""
    return FMIX(images, labels, num_classes, generator, alpha=alpha, decay_power=decay_power,
                max_soft=max_soft)  # fmt: skip


def resizemix(images: Tensor, labels: Tensor, num_classes: int | None = None,
              generator: Generator = None, scale_range: tuple[float, float] = (0.1, 0.8),
              ) -> MixedBatch:  # fmt: skip
    """ResizeMix (``sample_resizemix_params``): no Beta draw, no alpha."""
    return RESIZEMIX(images, labels, num_classes, generator, scale_range=scale_range)


RegionMixup = transform_class("RegionMixup", region_mixup, REGION)
Mixup = transform_class("Mixup", mixup, MIXUP)
RandomRegionMixup = transform_class("RandomRegionMixup", random_region_mixup, RANDOM_REGION)
CutMix = transform_class("CutMix", cutmix, CUTMIX)
GridMix = transform_class("GridMix", gridmix, GRIDMIX)
FMix = transform_class("FMix", fmix, FMIX)
ResizeMix = transform_class("ResizeMix", resizemix, RESIZEMIX)
