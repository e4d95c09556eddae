"""One training run's configuration (the paper's recipe) and its identity: the fields its
method ignores are reset to their defaults. Each field declares ``{"help", "execution"}``
and any of ``low``, ``high`` (inclusive), ``below`` (exclusive), ``choices`` as metadata."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any

from regionmix_utils.data import get_dataset
from regionmix_utils.methods import SETTINGS, check_settings, get_method
from regionmix_utils.mixing.core import plain_number

LR_SCHEDULES = ("step", "hold-cosine")


def _field(default: Any, help: str, *, execution: bool = False, **allowed: Any) -> Any:
    return field(default=default, metadata={"help": help, "execution": execution, **allowed})


@dataclass(frozen=True)
class TrainConfig:
    """One training run; defaults are the paper's (Section 3, Appendix A.1; α: see SETTINGS)."""

    # fmt: off
    dataset: str = _field("cifar10", "a name in the dataset registry")
    method: str = _field("region", "a name in the method registry")
    k: int = SETTINGS["k"].default
    alpha: float = SETTINGS["alpha"].default
    sides: tuple[int, ...] = SETTINGS["sides"].default
    lam_mode: str = SETTINGS["lam_mode"].default
    clean_ce: bool = _field(True, "the CE(f(x_A), y_A) term (False: Table 2's ablation)")
    concat_forward: bool = _field(False, "one forward pass over [x_A; x~]")
    matched_compute: bool = _field(False, "without the clean CE term: a second mixed pass in "
                                   "its place (as many passes a step as with it; -2mix)")
    epochs: int = _field(400, "training epochs", low=1)
    batch_size: int = _field(128, "training batch size", low=1)
    lr: float = _field(0.1, "SGD learning rate")
    momentum: float = _field(0.9, "SGD momentum")
    nesterov: bool = _field(False, "Nesterov momentum (the paper: plain momentum)")
    weight_decay: float = _field(5e-4, "SGD weight decay")
    milestones: tuple[int, ...] = _field((100, 150), "epochs after which lr is times lr_gamma")
    lr_gamma: float = _field(0.1, "the step schedule's lr factor")
    lr_schedule: str = _field("step", "step: lr times lr_gamma after each milestone (the "
                              "paper's); hold-cosine: lr held for half the epochs, then "
                              "cosine towards zero", choices=LR_SCHEDULES)
    pad: int = _field(2, "zero padding before the random crop, pixels on each side", low=0)
    stem_stride: int = _field(1, "stride of the first conv: 1 (layer4 at 8x8 on Tiny "
                              "ImageNet) or 2 (PuzzleMix on 64 px images)", choices=(1, 2))
    seed: int = _field(0, "the seed of the weights, the data order and the mixing")
    eval_every: int = _field(1, "epochs between test evaluations", execution=True, low=1)
    amp: bool = _field(True, "CUDA: bf16 autocast, or fp16 and a GradScaler", execution=True)
    channels_last: bool = _field(True, "CUDA: channels_last memory format", execution=True)
    compile: bool = _field(False, "torch.compile the model", execution=True)
    checkpoint_every: int | None = _field(None, "epochs between checkpoints (last.pt); None: "
                                          "1 on the CPU, train.GPU_CHECKPOINT_EVERY on a GPU",
                                          execution=True, low=1)
    download: bool = _field(False, "download a dataset not on disk", execution=True)
    plan: str | None = _field(None, "the hash of the sealed plan of the study the run belongs "
                              "to (set by `regionmix study`)", execution=True)
    width: int = _field(64, "channels of the first ResNet stage", low=1)
    n_train: int | None = _field(None, "a class-stratified sample of N train images", low=1)
    n_test: int | None = _field(None, "likewise for the test split", low=1)
    holdout: int = _field(0, "training images kept out (to fit a temperature on)", low=0)
    quick: bool = _field(False, "a smoke test: 4 epochs, width 8, 2000 train / 500 test images")
    mix_prob: float = _field(1.0, "mix a batch with this probability, else clean CE only",
                             low=0, high=1)
    switch: tuple[tuple[str, float], ...] = _field((), "METHOD:P: a batch uses METHOD with "
                                                   "probability P (or (METHOD, P) pairs)")
    mix_off_epoch: int | None = _field(None, "no mixing from this epoch (1-based) on", low=1)
    label_smoothing: float = _field(0.0, "ε: targets (1 - ε) y + ε / K", low=0, below=1)
    params: tuple[tuple[str, Any], ...] = _field((), "the method's own parameters (FMix's "
                                                 "decay_power): (name, value) pairs or a dict")
    # fmt: on

    def __post_init__(self) -> None:
        values = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        values |= check_settings(values)  # k, alpha, ...: checked where they are declared
        for f in fields(self):
            if "low" in f.metadata or "choices" in f.metadata:
                values[f.name] = _checked(f, values[f.name])
            object.__setattr__(self, f.name, values[f.name])
        method = get_method(self.method)  # raises, naming the registered methods
        get_dataset(self.dataset)
        object.__setattr__(self, "milestones", tuple(self.milestones))
        object.__setattr__(self, "switch", _check_switch(self.switch))
        if self.matched_compute and (self.clean_ce or method.in_model):
            raise ValueError("matched_compute needs clean_ce=False and a method that mixes images, "
                             f"got clean_ce={self.clean_ce}, method={self.method!r}")  # fmt: skip
        object.__setattr__(self, "params", _own_params(self.params, method, self.switch))
        used = [method, *(get_method(name) for name, _ in self.switch)]
        reset = [s for s in SETTINGS if not any(s in m.reads for m in used)]
        if not any(m.mixes for m in used):
            reset += ["clean_ce", "concat_forward", "matched_compute", "mix_prob", "mix_off_epoch"]
        if any(m.in_model for m in used):  # mixed inside the forward pass: no [x_A; x~] batch
            reset.append("concat_forward")
        if self.lr_schedule != "step":
            reset += ["milestones", "lr_gamma"]
        for name in reset:  # to their defaults
            object.__setattr__(self, name, _DEFAULTS[name])

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        """The config of a ``config.json`` (other keys ignored, newer fields at defaults)."""
        return cls(**{k: v for k, v in data.items() if k in _DEFAULTS})

    def settings(self) -> dict[str, Any]:
        """The method's settings: e.g. {"k": 2, "alpha": 1.0} for Region Mixup."""
        return get_method(self.method).settings_of(self)


_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
EXECUTION_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.metadata.get("execution"))


def _checked(f: dataclasses.Field, value: Any) -> Any:
    meta, integer = f.metadata, f.type.startswith("int")
    if value is None and f.default is None:
        return value
    if integer and isinstance(value, float) and value.is_integer():
        value = int(value)
    if "choices" in meta:
        ok, allowed = value in meta["choices"], f"one of {meta['choices']}"
    else:
        low, high, below = meta["low"], meta.get("high", math.inf), meta.get("below", math.inf)
        number = isinstance(value, int if integer else (int, float)) and type(value) is not bool
        ok = number and low <= value <= high and value < below
        allowed = ("an integer " if integer else "") + (
            f"in [{low}, {high}]" if high < math.inf else
            f"in [{low}, {below})" if below < math.inf else f">= {low}")  # fmt: skip
    if not ok:
        optional = "None or " if f.default is None else ""
        raise ValueError(f"{f.name} must be {optional}{allowed}, got {value!r}")
    return float(value) if f.type == "float" else value


def _plain(value: Any) -> Any:
    """numpy and torch numbers (in tuples too) as Python ones, arrays as tuples, a float32 as
    its decimal (``plain_number``): the optimizer's state must load with weights_only."""
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    ndim = getattr(value, "ndim", None)
    if ndim == 0 and hasattr(value, "item"):
        return plain_number(value)
    if ndim and hasattr(value, "tolist"):
        return tuple(_plain(v) for v in value)
    return value


def _own_params(params, method, switch) -> tuple[tuple[str, Any], ...]:
    """``params`` checked by the run's method (refusing undeclared names) and those it switches
    to (``Method.check_params``), defaults filled in."""
    values = dict(params)  # a mapping, or (name, value) pairs
    others = [get_method(name) for name, _ in switch]
    theirs = {name for m in others for name in m.params} - set(method.params)
    out = method.check_params({k: v for k, v in values.items() if k not in theirs})
    for m in others:
        out |= m.check_params({k: v for k, v in values.items() if k in m.params})
    return tuple(out.items())


def _check_switch(switch) -> tuple[tuple[str, float], ...]:
    """``switch`` (pairs, or "METHOD:P" strings) as ((method, P), ...), P in (0, 1], sum <= 1."""
    pairs = []
    for entry in switch:
        try:
            name, prob = entry.split(":") if isinstance(entry, str) else entry
            pairs.append((name, float(prob)))
        except (TypeError, ValueError):
            msg = f"switch entries must be METHOD:P or (METHOD, P), got {entry!r}"
            raise ValueError(msg) from None
        if not get_method(name).mixes:
            raise ValueError(f"switch methods must mix, got {name!r}")
    probs = [p for _, p in pairs]
    if not all(0 < p <= 1 for p in probs) or sum(probs) > 1 + 1e-9 or len(dict(pairs)) < len(pairs):
        raise ValueError("switch must name each method once, each P in (0, 1], and the Ps sum "
                         f"to at most 1, got {tuple(pairs)}")  # fmt: skip
    return tuple(pairs)


def identity(config: TrainConfig) -> dict[str, Any]:
    """What a run computes: every field but ``EXECUTION_FIELDS``; equal for the same run."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in EXECUTION_FIELDS}


def quick_config(config: TrainConfig) -> TrainConfig:
    """The quick version of a run: 4 epochs (lr / 10 after 3), width 8, 2000/500 images."""
    return dataclasses.replace(config, quick=True, epochs=min(config.epochs, 4), milestones=(3,),
                               width=8, batch_size=min(config.batch_size, 64),
                               n_train=min(config.n_train or 2000, 2000),
                               n_test=min(config.n_test or 500, 500))  # fmt: skip


# run-folder suffixes of the fields off their defaults, in this order
_SUFFIXES = {"clean_ce": "-noclean", "matched_compute": "-2mix", "concat_forward": "-concat",
             "mix_prob": "-p{:g}", "mix_off_epoch": "-off{}", "label_smoothing": "-ls{:g}",
             "holdout": "-ho{}", "quick": "-quick"}  # fmt: skip


def run_name(config: TrainConfig) -> str:
    """Folder name of a run: ``region-k2-a1``, ``mixup-a1-noclean-quick``,
    ``region-k2-a1-swcutmix0.5`` (``switch``), then a ``_SUFFIXES`` tag per field off default."""
    method = get_method(config.method)
    name = method.folder(config.settings())
    if config.switch:
        name += "".join(f"-sw{other}{prob:g}" for other, prob in config.switch)
        extra = [s for other, _ in config.switch for s in get_method(other).setting_names
                 if s not in method.setting_names]  # fmt: skip
        values = {**{n: getattr(config, n) for n in SETTINGS}, **dict(config.params)}
        name += method.folder_tags(values, dict.fromkeys(extra))
    return name + "".join(suffix.format(getattr(config, key)) for key, suffix in _SUFFIXES.items()
                          if getattr(config, key) != _DEFAULTS[key])  # fmt: skip


# Not for labels: the method's own settings, the seed, the execution, and the clean CE
# term (tables give it rows of its own, as the paper's Table 2 does).
_NOT_RECIPE = ("dataset", "method", "seed", "quick", "clean_ce", "params", *SETTINGS,
               *EXECUTION_FIELDS)  # fmt: skip
_RECIPE_WORDS = {"concat_forward": "one forward pass", "matched_compute": "two mixed passes",
                 "mix_off_epoch": "no mixing from epoch {}", "lr_schedule": "lr held, then cosine",
                 "label_smoothing": "label smoothing {:g}"}  # others: "name=value"  # fmt: skip


def recipe_differences(config: TrainConfig) -> list[str]:
    """How the recipe differs from the paper's (or the quick one's, then "quick"), in words
    for table labels: ["epochs=200", "one forward pass"]; the method's settings excluded."""
    reference = TrainConfig(dataset=config.dataset, method=config.method)
    reference = quick_config(reference) if config.quick else reference
    words = ["quick"] if config.quick else []
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name in _NOT_RECIPE or value == getattr(reference, f.name):
            continue
        words.append(", ".join(f"{name} P={prob:g}" for name, prob in value) if f.name == "switch"
                     else _RECIPE_WORDS.get(f.name, f.name + "={}").format(value))  # fmt: skip
    return words
