"""The configuration of one training run: the paper's recipe, and what makes runs alike.

``TrainConfig`` holds the paper's setup as defaults (Section 3; Appendix A.1). A run's
identity is the settings its method reads: a method that ignores k (Mixup, CutMix, no
mixing) gets the default k, so ``--k 4`` on a Mixup run names the same run as before;
without mixing the loss has no mixed term, so ``clean_ce`` and ``concat_forward`` are
reset too (and ``concat_forward`` for methods that mix inside the model). Fields that
only say how a run executes (AMP, channels_last, torch.compile, how often to evaluate
and to checkpoint, whether to download the data) are not part of its identity either;
``identity`` leaves them out, and ``run_name`` never reads them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regionmix_utils.data import get_dataset
from regionmix_utils.methods import SETTINGS, get_method
from regionmix_utils.mixing import LAM_MODES
from regionmix_utils.mixing.core import plain_number

__all__ = [
    "EXECUTION_FIELDS",
    "LR_SCHEDULES",
    "TrainConfig",
    "identity",
    "quick_config",
    "recipe_differences",
    "run_name",
]

LR_SCHEDULES = ("step", "hold-cosine")

# How a run executes, not what it computes: may change between a start and a resume.
EXECUTION_FIELDS = ("eval_every", "amp", "channels_last", "compile", "checkpoint_every", "download")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are the paper's (Section 3, Appendix A.1).

    Fields a method does not read are reset to their defaults on construction (see the
    module docstring). The paper does not state α: 1.0 is what the mixup and CutMix
    papers use on CIFAR.
    """

    dataset: str = "cifar10"
    method: str = "region"  # a name in the method registry (regionmix_utils.methods)
    # The shared method settings; their defaults are declared once, in methods.SETTINGS.
    k: int = SETTINGS["k"].default  # tiles per side (Region Mixup)
    alpha: float = SETTINGS["alpha"].default  # Beta(alpha, alpha)
    sides: tuple[int, ...] = SETTINGS["sides"].default  # grid sides per batch (region-random)
    lam_mode: str = SETTINGS["lam_mode"].default  # λ per tile ("batch", Algorithm 1) or sample
    clean_ce: bool = True  # the CE(f(x_A), y_A) term; False is Table 2's ablation
    concat_forward: bool = False  # one forward over [x_A; x~] instead of two calls
    # Without the clean CE term, a second, independently mixed batch in its place: the
    # compute of the clean term's pass (two forward/backward passes a step), not its loss.
    matched_compute: bool = False
    epochs: int = 400
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False  # the paper says "SGD with momentum"
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = (100, 150)  # epochs after which lr is divided by 10
    lr_gamma: float = 0.1
    # "step": lr times lr_gamma after each milestone (the paper's); "hold-cosine": lr held
    # for the first half of the epochs, then cosine-annealed towards zero over the second
    # half (milestones and lr_gamma unused) -- a recipe for short training.
    lr_schedule: str = "step"
    pad: int = 2  # zero padding before the random crop, pixels on each side
    stem_stride: int = 1  # 1: layer4 at 8x8 on Tiny ImageNet; 2: PuzzleMix's 64 px stem
    seed: int = 0
    eval_every: int = 1  # epochs between test evaluations (the last is always evaluated)
    amp: bool = True  # CUDA only: bf16 where supported natively, else fp16 + GradScaler
    channels_last: bool = True  # CUDA only
    compile: bool = False  # torch.compile the model
    # Epochs between checkpoints (last.pt); None: every epoch on the CPU, every
    # ``train.GPU_CHECKPOINT_EVERY`` on a GPU. The last epoch always writes final.pt.
    checkpoint_every: int | None = None
    download: bool = False  # fetch the dataset when it is not on disk (torchvision, Tiny ImageNet)
    width: int = 64  # channels of the first ResNet stage (64 in the paper)
    n_train: int | None = None  # a class-stratified sample of n training images
    n_test: int | None = None  # likewise for the test split
    holdout: int = 0  # training images kept out of training (to fit a temperature on)
    quick: bool = False  # a few epochs on little data, for demos and tests
    # The mixing schedule (timm's mixup options); at their defaults every batch is mixed
    # by ``method``, and the run's folder name is what it was before they existed.
    mix_prob: float = 1.0  # a batch is mixed with this probability, else clean CE only
    switch: tuple[tuple[str, float], ...] = ()  # (method, P): a batch uses it with prob. P
    mix_off_epoch: int | None = None  # no mixing from this epoch (1-based) on
    label_smoothing: float = 0.0  # ε: targets (1 - ε) y + ε / K, clean and mixed
    # The method's own parameters (``Method.params``, e.g. FMix's decay_power), as
    # ((name, value), ...) in its declaration order; a mapping is accepted. The missing
    # ones take their declared defaults; a name the method does not declare is an error.
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # A value taken from numpy (np.linspace for a sweep of lr, say) would reach the
        # optimizer's state, which a weights_only load of the checkpoint then refuses.
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _plain(getattr(self, field.name)))
        method = get_method(self.method)  # raises, naming the registered methods
        get_dataset(self.dataset)  # raises, naming the registered datasets
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(f"alpha must be a positive finite number, got {self.alpha}")
        for name in ("epochs", "batch_size", "eval_every", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")
        if self.holdout < 0:
            raise ValueError(f"holdout must be >= 0, got {self.holdout}")
        for name in ("n_train", "n_test", "checkpoint_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be None or >= 1, got {getattr(self, name)}")
        object.__setattr__(self, "milestones", tuple(self.milestones))
        object.__setattr__(self, "sides", tuple(self.sides))
        if not self.sides or any(isinstance(s, bool) or s < 1 for s in self.sides):
            raise ValueError(f"sides must be a non-empty tuple of integers >= 1, got {self.sides}")
        object.__setattr__(self, "alpha", float(self.alpha))
        if self.lam_mode not in LAM_MODES:
            raise ValueError(f"lam_mode must be one of {LAM_MODES}, got {self.lam_mode!r}")
        object.__setattr__(self, "switch", _check_switch(self.switch))
        if self.matched_compute and (self.clean_ce or method.in_model):
            raise ValueError(
                "matched_compute gives the run without the clean CE term (clean_ce=False) a "
                "second mixed pass in the clean term's place; it needs clean_ce=False and a "
                f"method that mixes images, got clean_ce={self.clean_ce}, method={self.method!r}"
            )
        self._check_schedule()
        object.__setattr__(self, "params", _own_params(self.params, method, self.switch))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.lr_schedule != "step":  # unused: reset, so that labels do not name them
            object.__setattr__(self, "milestones", _defaults()["milestones"])
            object.__setattr__(self, "lr_gamma", _defaults()["lr_gamma"])
        for name, value in _ignored_by(method.name, self.switch).items():
            object.__setattr__(self, name, value)

    def _check_schedule(self) -> None:
        if not 0 <= self.mix_prob <= 1:
            raise ValueError(f"mix_prob must lie in [0, 1], got {self.mix_prob}")
        object.__setattr__(self, "mix_prob", float(self.mix_prob))
        if self.mix_off_epoch is not None and (
            isinstance(self.mix_off_epoch, bool) or not isinstance(self.mix_off_epoch, int)
            or self.mix_off_epoch < 1
        ):  # fmt: skip
            raise ValueError(
                f"mix_off_epoch must be None or an integer >= 1, got {self.mix_off_epoch!r}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        object.__setattr__(self, "label_smoothing", float(self.label_smoothing))

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        """The config stored in a ``config.json`` (unknown keys such as the environment
        are ignored; fields added since take their defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def settings(self) -> dict[str, Any]:
        """The method's settings: e.g. {"k": 2, "alpha": 1.0} for Region Mixup."""
        return get_method(self.method).settings_of(self)


def _plain(value: Any) -> Any:
    """``value`` with numpy (and torch) numbers as plain Python ones, inside tuples and
    lists too: np.float64(0.1) -> 0.1, np.int64(3) -> 3, np.bool_(True) -> True, an
    array -> a tuple. A float32 becomes the decimal it was made from (np.float32(0.4)
    -> 0.4, ``mixing.core.plain_number``): that is what the run's folder name says, so
    a run started with 0.4 resumes when restarted with np.float32(0.4)."""
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    ndim = getattr(value, "ndim", None)
    if ndim == 0 and hasattr(value, "item"):
        return plain_number(value)
    if ndim and hasattr(value, "tolist"):  # an array of sides, say: a tuple of numbers
        return tuple(_plain(v) for v in value)
    return value


def _own_params(params, method, switch) -> tuple[tuple[str, Any], ...]:
    """``params`` checked by the declarations of the run's method and the methods it
    switches to (``Method.check_params``), defaults filled in."""
    values = dict(params.items() if isinstance(params, Mapping) else params)
    used = [method, *(get_method(name) for name, _ in switch)]
    declared = {name for m in used for name in m.params}
    unknown = [name for name in values if name not in declared]
    if unknown:
        names = tuple(dict.fromkeys(n for m in used for n in m.setting_names))
        raise ValueError(f"method {method.name!r} has no parameter {unknown[0]!r}; its "
                         f"parameters: {names or 'none'}")  # fmt: skip
    out = {}
    for m in used:
        out |= m.check_params({k: v for k, v in values.items() if k in m.params})
    return tuple(out.items())


def _defaults() -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _check_switch(switch) -> tuple[tuple[str, float], ...]:
    """``switch`` as ((method, P), ...): registered mixing methods, each P in (0, 1],
    their sum at most 1 (the rest of the batches use ``method``). Accepts lists (JSON)
    and "name:P" strings (the command line)."""
    pairs = []
    for entry in switch:
        if isinstance(entry, str):
            name, _, prob = entry.partition(":")
            try:
                entry = (name, float(prob))
            except ValueError:
                raise ValueError(f"switch entries must be METHOD:P, got {entry!r}") from None
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ValueError(f"switch entries must be (method, P) pairs, got {entry!r}")
        name, prob = entry[0], float(entry[1])
        if not get_method(name).mixes:
            raise ValueError(f"switch methods must mix, got {name!r}")
        if not 0 < prob <= 1:
            raise ValueError(f"switch probabilities must lie in (0, 1], got {name}:{prob}")
        pairs.append((name, prob))
    if sum(p for _, p in pairs) > 1 + 1e-9:
        raise ValueError(f"switch probabilities must sum to at most 1, got {tuple(pairs)}")
    if len({name for name, _ in pairs}) != len(pairs):
        raise ValueError(f"switch names each method once, got {tuple(pairs)}")
    return tuple(pairs)


def _ignored_by(method_name: str, switch: tuple = ()) -> dict[str, Any]:
    """Field -> default for the fields that ``method_name`` (and the methods it
    switches with) do not read."""
    used = [get_method(method_name), *(get_method(name) for name, _ in switch)]
    defaults = _defaults()
    reads = {s for m in used for s in m.reads}
    reset = {s: defaults[s] for s in SETTINGS if s not in reads}
    if not any(m.mixes for m in used):
        reset |= {"clean_ce": True, "concat_forward": False, "matched_compute": False}
        reset |= {f: defaults[f] for f in ("mix_prob", "mix_off_epoch")}
    if any(m.in_model for m in used):  # mixed inside the forward pass: no [x_A; x~] batch
        reset |= {"concat_forward": False}
    return reset


def identity(config: TrainConfig) -> dict[str, Any]:
    """What a run computes: every field except ``EXECUTION_FIELDS``. Two configs with
    the same identity are the same run."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in EXECUTION_FIELDS}


def quick_config(config: TrainConfig) -> TrainConfig:
    """The quick version of a run: 4 epochs (lr / 10 after 3), width 8, 2000/500 images."""
    return dataclasses.replace(
        config,
        quick=True,
        epochs=min(config.epochs, 4),
        milestones=(3,),
        width=8,
        batch_size=min(config.batch_size, 64),
        n_train=min(config.n_train or 2000, 2000),
        n_test=min(config.n_test or 500, 500),
    )


def run_name(config: TrainConfig) -> str:
    """Folder name of a run: e.g. ``region-k2-a1``, ``mixup-a1-noclean``, ``none-quick``,
    ``region-k2-a1-ho5000`` (5000 training images held out), ``region-k2-a1-swcutmix0.5``
    (half the batches CutMix), ``-p0.5`` (mix_prob), ``-off300`` (mix_off_epoch),
    ``-ls0.1`` (label smoothing), ``mixup-a1-noclean-2mix`` (without the clean CE term,
    two mixed passes a step). Fields at their defaults add nothing."""
    method = get_method(config.method)
    name = method.folder(config.settings())
    if config.switch:
        name += "".join(f"-sw{other}{prob:g}" for other, prob in config.switch)
        extra = [s for other, _ in config.switch for s in get_method(other).setting_names
                 if s not in method.setting_names]  # fmt: skip
        values = {**{n: getattr(config, n) for n in SETTINGS}, **dict(config.params)}
        name += get_method(config.method).folder_tags(values, dict.fromkeys(extra))
    if not config.clean_ce:
        name += "-noclean"
    if config.matched_compute:
        name += "-2mix"
    if config.concat_forward:
        name += "-concat"
    if config.mix_prob != 1:
        name += f"-p{config.mix_prob:g}"
    if config.mix_off_epoch is not None:
        name += f"-off{config.mix_off_epoch}"
    if config.label_smoothing:
        name += f"-ls{config.label_smoothing:g}"
    if config.holdout:
        name += f"-ho{config.holdout}"
    return name + ("-quick" if config.quick else "")


# Not for labels: the method's own settings, the seed, the execution, and the clean CE
# term (tables give it rows of its own, as the paper's Table 2 does).
_NOT_RECIPE = ("dataset", "method", "seed", "quick", "clean_ce", "params", *SETTINGS,
               *EXECUTION_FIELDS)  # fmt: skip
_RECIPE_WORDS = {
    "concat_forward": lambda v: "one forward pass" if v else "",
    "matched_compute": lambda v: "two mixed passes" if v else "",
    "switch": lambda v: ", ".join(f"{name} P={prob:g}" for name, prob in v),
    "mix_off_epoch": lambda v: f"no mixing from epoch {v}",
    "label_smoothing": lambda v: f"label smoothing {v:g}",
    "lr_schedule": lambda v: "lr held, then cosine" if v == "hold-cosine" else f"lr {v}",
}


def recipe_differences(config: TrainConfig) -> list[str]:
    """How the run's recipe differs from the paper's, in words for table labels:
    e.g. ["epochs=200", "one forward pass"]. Quick runs are compared with the quick
    recipe and say "quick". The method's own settings are left to its label."""
    reference = TrainConfig(dataset=config.dataset, method=config.method)
    if config.quick:
        reference = quick_config(reference)
    words = ["quick"] if config.quick else []
    for field in dataclasses.fields(TrainConfig):
        value, default = getattr(config, field.name), getattr(reference, field.name)
        if field.name in _NOT_RECIPE or value == default:
            continue
        if field.name in _RECIPE_WORDS:
            words.append(_RECIPE_WORDS[field.name](value))
        else:
            words.append(f"{field.name}={value}")
    return [w for w in words if w]
