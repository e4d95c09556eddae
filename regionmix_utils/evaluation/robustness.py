"""Adversarial robustness: the paper's FGSM and Square (Appendix A.2), and PGD, APGD and
AutoAttack to tell robustness from gradient masking (``masking``); all torchattacks 3.5.1,
L∞, on images in [0, 1]; seeded ones isolate the global RNG (docs/reproducing.md)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from regionmix_utils.evaluation import registry
from regionmix_utils.evaluation.registry import predictions, test_images  # re-exported
from regionmix_utils.models import autograd_tensor, evaluating, gradients_on
from regionmix_utils.progress import progress as progress_bar
from regionmix_utils.registry import Registry
from regionmix_utils.runs import Run, eps_text, snap_eps

DEFAULT_EPS = 8 / 255
SQUARE_LOSSES = ("margin", "ce")
# The reference AutoAttack's "standard" L∞ settings (fra31/auto-attack, autoattack.py:
# AutoAttack.__init__ and set_version("standard")).
AUTOATTACK_STEPS = 100  # APGD-CE, APGD-T and FAB-T iterations
AUTOATTACK_TARGETS = 9  # APGD-T's and FAB-T's target classes
AUTOATTACK_QUERIES = 5000  # Square's queries (p_init 0.8, one restart)
AUTOATTACK_ORDER = ("apgd-ce", "apgd-t", "fab-t", "square")


@dataclass(frozen=True)
class Attack:
    """One attack: ``name`` (record kind), the paper's ``table`` (7: beyond it), the
    ``AttackConfig`` ``fields`` it reads besides eps, the record key in its ``label``
    (``budget``: "steps" -> "PGD-10"), settings it always runs with (``fixed``)."""

    name: str
    title: str
    table: int
    fields: tuple[str, ...]
    build: Callable[[nn.Module, AttackConfig, int], Any]
    help: str
    seeded: bool = False
    default_images: int | None = None
    min_classes: int = 2
    budget: str | None = None
    fixed: tuple[tuple[str, Any], ...] = ()

    def label(self, settings: dict) -> str:
        value = None if self.budget is None else settings.get(self.budget)
        return self.title if value is None else f"{self.title}-{int(value)}"


def _torchattacks():
    try:
        import torchattacks  # heavy: only the attacks need it
    except ImportError as err:  # pragma: no cover; --no-deps: its requests pin breaks Jupyter
        raise ImportError("torchattacks is missing: "
                          "pip install --no-deps torchattacks==3.5.1") from err  # fmt: skip
    return torchattacks


def _apgd(loss: str):
    return lambda model, c, k: _torchattacks().APGD(
        model, norm="Linf", eps=c.eps, steps=c.steps, n_restarts=1, seed=c.seed, loss=loss,
        eot_iter=1, rho=0.75)  # fmt: skip


class AutoAttackCascade:
    """AutoAttack's cascade (reference ``run_standard_evaluation``): images [N, 3, H, W], labels
    [N] -> the first success of attacks run in turn on the images still correct; ``stages``
    sums per attack {"attack", "n_attacked", "n_robust_after"}."""

    def __init__(self, model: nn.Module, names: tuple[str, ...], attacks: list):
        if len(names) != len(attacks):
            raise ValueError(f"{len(names)} names for {len(attacks)} attacks")
        self.model, self.names, self.attacks = model, tuple(names), list(attacks)
        self.stages = [{"attack": n, "n_attacked": 0, "n_robust_after": 0} for n in self.names]

    def __call__(self, images: Tensor, labels: Tensor) -> Tensor:
        with gradients_on(), evaluating(self.model):
            images, labels = (t.clone().detach() for t in _attack_inputs(images, labels))
            adversarial = images.clone()
            with torch.no_grad():
                robust = self.model(images).argmax(1) == labels
            for attack, stage in zip(self.attacks, self.stages, strict=True):
                index = robust.nonzero().flatten()
                stage["n_attacked"] += len(index)
                if len(index):
                    found = attack(images[index], labels[index])
                    with torch.no_grad():
                        fooled = self.model(found).argmax(1) != labels[index]
                    adversarial[index[fooled]] = found[fooled]
                    robust[index[fooled]] = False
                stage["n_robust_after"] += int(robust.sum())
        return adversarial


def _attack_inputs(images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    # contiguous: torchattacks' FAB views the input gradient, which channels_last breaks
    return autograd_tensor(images).contiguous(), autograd_tensor(labels)


def reference_autoattack(model: nn.Module, eps: float, num_classes: int, seed: int = 0,
                         steps: int = AUTOATTACK_STEPS, targets: int = AUTOATTACK_TARGETS,
                         queries: int = AUTOATTACK_QUERIES) -> AutoAttackCascade:  # fmt: skip
    """AutoAttack with the reference "standard" L∞ settings (Croce & Hein, ICML 2020;
    fra31/auto-attack ``set_version``) from torchattacks' APGD-CE, APGD-T, FAB-T (``targets``
    targets, at most K - 1) and Square (``queries``, ``resc_schedule=False``), seeded.
    ValueError: ``num_classes`` < 4 (the targeted DLR loss reads four logits), a budget < 1."""
    if num_classes < 4:
        raise ValueError(f"AutoAttack needs a model with >= 4 classes, got {num_classes}")
    if min(steps, targets, queries) < 1:
        raise ValueError(f"steps, targets and queries must be >= 1, got {steps}, {targets}, "
                         f"{queries}")  # fmt: skip
    ta = _torchattacks()
    common = {"norm": "Linf", "eps": eps, "seed": seed, "n_restarts": 1}
    apgd = ta.APGD(model, steps=steps, loss="ce", eot_iter=1, rho=0.75, **common)
    apgdt = ta.APGDT(model, steps=steps, eot_iter=1, rho=0.75, n_classes=num_classes, **common)
    fab = ta.FAB(model, steps=steps, multi_targeted=True, n_classes=num_classes,
                 alpha_max=0.1, eta=1.05, beta=0.9, **common)  # fmt: skip
    # torchattacks sets K - 1 target classes from n_classes; the reference sets 9.
    apgdt.n_target_classes = fab.n_target_classes = min(targets, num_classes - 1)
    square = ta.Square(model, n_queries=queries, p_init=0.8, loss="margin",
                       resc_schedule=False, **common)  # fmt: skip
    return AutoAttackCascade(model, AUTOATTACK_ORDER, [apgd, apgdt, fab, square])


def fast_autoattack(model: nn.Module, eps: float, num_classes: int, seed: int = 0
                    ) -> AutoAttackCascade:  # fmt: skip
    """torchattacks' own ``AutoAttack(version="standard")`` attacks, seeded, in the cascade."""
    built = _torchattacks().AutoAttack(model, norm="Linf", eps=eps, version="standard",
                                       n_classes=num_classes, seed=seed)  # fmt: skip
    return AutoAttackCascade(model, AUTOATTACK_ORDER, list(built._autoattack.attacks))


ATTACK_REGISTRY: Registry[Attack] = Registry("attack")
ATTACKS: dict[str, Attack] = ATTACK_REGISTRY._entries  # the same entries as a mapping
get_attack = ATTACK_REGISTRY.get
attack_names = ATTACK_REGISTRY.names


for _attack in (
    Attack("fgsm", "FGSM", 3, (), lambda model, c, k: _torchattacks().FGSM(model, eps=c.eps),
           "one signed-gradient step of size ε"),
    Attack("pgd", "PGD", 7, ("steps", "step_size", "random_start", "seed"),
           lambda model, c, k: _torchattacks().PGD(model, eps=c.eps, alpha=c.resolved_step_size,
                                                   steps=c.steps, random_start=c.random_start),
           "L∞ PGD, --steps steps of --step-size (ε/4), one random start",
           seeded=True, budget="steps"),
    Attack("apgd-ce", "APGD-CE", 7, ("steps", "seed"), _apgd("ce"),
           "APGD on cross-entropy, --steps iterations, one restart", seeded=True),
    Attack("apgd-dlr", "APGD-DLR", 7, ("steps", "seed"), _apgd("dlr"),
           "APGD on the DLR loss, --steps iterations, one restart", seeded=True,
           min_classes=3),
    Attack("autoattack", "AutoAttack", 7, ("version", "seed"),
           lambda model, c, k: reference_autoattack(model, c.eps, k, c.seed),
           "AutoAttack, the reference 'standard' (fra31/auto-attack): APGD-CE, APGD-T, "
           "FAB-T (100 iterations, 9 targets), Square-5000, each on the images still correct",
           seeded=True, default_images=1000, min_classes=4,
           fixed=(("steps", AUTOATTACK_STEPS), ("targets", AUTOATTACK_TARGETS),
                  ("queries", AUTOATTACK_QUERIES))),
    Attack("autoattack-fast", "AutoAttack-fast", 7, ("version", "seed"),
           lambda model, c, k: fast_autoattack(model, c.eps, k, c.seed),
           "torchattacks' own AutoAttack 'standard' (10 iterations, K - 1 targets, Square "
           "rescaled): weaker", seeded=True, default_images=1000, min_classes=4,
           fixed=(("steps", 10),)),
    Attack("square", "Square", 4, ("queries", "seed", "p_init", "loss"),
           lambda model, c, k: _torchattacks().Square(
               model, norm="Linf", eps=c.eps, n_queries=c.queries, n_restarts=1,
               p_init=c.p_init, loss=c.loss, resc_schedule=True, seed=c.seed),
           "black-box Square, --queries queries", seeded=True, budget="queries"),
):  # fmt: skip
    registry.register_evaluation(registry.Evaluation(
        _attack.name, f"Accuracy under {_attack.name}",
        f"test accuracy (%) under the {_attack.name} attack", keys=("eps", *_attack.fields),
        measures=("accuracy", "stages"), rerun=f"regionmix attack --attack {_attack.name}",
        table=_attack.table))  # fmt: skip
    ATTACK_REGISTRY.register(_attack)

# Named sets for the CLI's --attack: (attack, steps) pairs; steps None: the --steps given.
PRESETS: dict[str, tuple[tuple[str, int | None], ...]] = {
    "paper": (("fgsm", None), ("square", None)),  # Tables 3-4
    "table7": (("fgsm", None), ("pgd", 10), ("pgd", 50), ("apgd-ce", None),
               ("autoattack", None), ("square", None)),
    "all": tuple((name, None) for name in ATTACKS),
}  # fmt: skip


def preset_text(name: str) -> str:
    """ "fgsm, pgd-10, pgd-50, ...": what a preset runs."""
    return ", ".join(a if steps is None else f"{a}-{steps}" for a, steps in PRESETS[name])


def attack_label(settings: dict) -> str:
    """ "FGSM", "PGD-50", "Square-100": a record's attack in tables."""
    return get_attack(settings["kind"]).label(settings)


def record_name(record: dict) -> str:
    """ "clean", "fgsm ε=8/255", "pgd-50 ε=4/255": a record in a line of text."""
    if record["kind"] not in ATTACKS:
        return record["kind"]
    return f"{attack_label(record).lower()} ε={eps_text(record['eps'])}"


@dataclass(frozen=True)
class AttackConfig:
    """One attack setting; eps in [0, 1] pixel units (snapped to k/255 when it is one)."""

    attack: str = "fgsm"
    eps: float = DEFAULT_EPS
    queries: int = 100  # Square only: the query budget
    seed: int = 0  # Square, PGD (random start), APGD, both AutoAttacks
    p_init: float = 0.8  # Square only: initial share of pixels changed (torchattacks' default)
    loss: str = "margin"  # Square only: "margin" or "ce"
    steps: int = 10  # PGD and APGD: iterations
    step_size: float | None = None  # PGD only, pixel units; None: eps / 4
    random_start: bool = True  # PGD only: one uniform start in the ε-ball
    version: str = "standard"  # both AutoAttacks (the one version offered)

    def __post_init__(self) -> None:
        get_attack(self.attack)
        for name, ok, allowed in (
            ("eps", 0 <= self.eps <= 1, "in [0, 1] (pixel units, e.g. 8/255)"),
            ("queries", self.queries >= 1, ">= 1"),
            ("steps", self.steps >= 1, ">= 1"),
            ("step_size", self.step_size is None or 0 <= self.step_size <= 1,
             "in [0, 1] (pixel units) or None"),
            ("p_init", 0 < self.p_init <= 1, "in (0, 1]"),
            ("loss", self.loss in SQUARE_LOSSES, f"one of {SQUARE_LOSSES}"),
            ("version", self.version == "standard", "'standard'"),
        ):  # fmt: skip
            if not ok:
                raise ValueError(f"{name} must be {allowed}, got {getattr(self, name)!r}")
        object.__setattr__(self, "eps", snap_eps(self.eps))
        if self.step_size is not None:
            object.__setattr__(self, "step_size", snap_eps(self.step_size))

    @property
    def spec(self) -> Attack:
        return get_attack(self.attack)

    @property
    def resolved_step_size(self) -> float:
        """PGD's step: the one given, or eps / 4 (2/255 at 8/255, the usual choice)."""
        return self.step_size if self.step_size is not None else snap_eps(self.eps / 4)

    def settings(self) -> dict[str, Any]:
        """The record keys identifying it but n_images: kind, eps, fields, fixed settings."""
        values = {"step_size": self.resolved_step_size}
        fields = {f: values.get(f, getattr(self, f)) for f in self.spec.fields}
        return {"kind": self.attack, "eps": self.eps, **fields, **dict(self.spec.fixed)}

    @property
    def name(self) -> str:
        """Short text for progress bars: "fgsm ε=8/255", "pgd-10 ε=8/255"."""
        return record_name(self.settings())


def attack_configs(names: list[str], eps: list[float], steps: list[int] = (10,),
                   **settings) -> list[AttackConfig]:  # fmt: skip
    """Every attack of ``names`` (attacks or ``PRESETS``) at every ε and (where it takes
    them) ``steps``, other fields from ``settings``, no duplicates; ValueError as given."""
    pairs = [p for name in names for p in PRESETS.get(name) or [(get_attack(name).name, None)]]
    configs = []
    for value in eps:
        for name, fixed in pairs:
            counts = [fixed] if fixed else list(steps) if "steps" in ATTACKS[name].fields else [10]
            configs += [AttackConfig(name, value, steps=n, **settings) for n in counts]
    return list(dict.fromkeys(configs))


def make_attack(model: nn.Module, config: AttackConfig, num_classes: int | None = None):
    """The torchattacks object for ``config`` (``num_classes`` default: the model's
    ``linear`` layer's); ValueError if the attack cannot take that few classes."""
    if num_classes is None:
        linear = getattr(model, "linear", None)
        if not isinstance(linear, nn.Linear):
            raise ValueError("num_classes must be given for a model without a `linear` layer")
        num_classes = linear.out_features
    spec = config.spec
    if num_classes < spec.min_classes:
        raise ValueError(f"attack {spec.name!r} needs a model with >= {spec.min_classes} classes "
                         f"(its loss reads that many logits), got {num_classes}")  # fmt: skip
    return spec.build(model, config, num_classes)


def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Accuracy (%) on images [N, 3, H, W] in [0, 1], in eval mode and float32."""
    return 100.0 * int((predictions(model, images, batch_size)[0] == labels).sum()) / len(labels)


def attack_outcome(model: nn.Module, images: Tensor, labels: Tensor, config: AttackConfig,
                   batch_size: int = 500, progress: bool = True,
                   ) -> tuple[Tensor, list[dict] | None]:  # fmt: skip
    """Classes [N] predicted on ``config``'s adversarial ``images`` [N, 3, H, W] (labels [N])
    and an AutoAttack's ``stages`` (else None); modes and global RNG kept; eps 0: clean."""
    devices = [images.device.index or 0] if images.is_cuda else []
    predicted = []
    batches = list(zip(images.split(batch_size), labels.split(batch_size), strict=True))
    with evaluating(model):
        attack = make_attack(model, config, num_classes=predictions(model, images[:1])[1].shape[1])
        if config.eps == 0:
            return predictions(model, images, batch_size)[0], None
        for x, y in progress_bar(batches, desc=config.name, disable=not progress):
            with torch.random.fork_rng(devices=devices), gradients_on():
                if config.spec.seeded:
                    torch.manual_seed(config.seed)  # PGD's start; the others reseed anyway
                adversarial = attack(*_attack_inputs(x, y))
            with torch.no_grad():
                predicted.append(model(adversarial).argmax(1))
    stages = attack.stages if isinstance(attack, AutoAttackCascade) else None
    return (torch.cat(predicted) if predicted else labels.new_empty(0)), stages


def adversarial_predictions(model: nn.Module, images: Tensor, labels: Tensor,
                            config: AttackConfig, batch_size: int = 500,
                            progress: bool = True) -> Tensor:  # fmt: skip
    """The predicted classes [N] of ``attack_outcome``."""
    return attack_outcome(model, images, labels, config, batch_size, progress)[0]


def _attacked(model, images, labels, *, config: AttackConfig, progress: bool, **settings):
    predicted, stages = attack_outcome(model, images, labels, config, progress=progress)
    return registry.Outcome(predicted, {} if stages is None else {"stages": stages})


def image_count(config: AttackConfig, n_images: int | None,
                capped_images: int | None = None) -> int | None:  # fmt: skip
    """``n_images`` (None: all) capped at a slow attack's ``default_images``/``capped_images``."""
    cap = config.spec.default_images and (capped_images or config.spec.default_images)
    return n_images if cap is None else cap if n_images is None else min(n_images, cap)


def evaluate_run(run: Run, configs: list[AttackConfig], n_images: int | None = None,
                 data_dir=None, device: str | torch.device = "cpu", progress: bool = True,
                 capped_images: int | None = None) -> list[dict]:  # fmt: skip
    """Records of a finished run on its test split (whole, or a stratified ``n_images``,
    ``image_count``) stored with per-image predictions (``registry.evaluated``): per image
    count the clean record, then each attack's (AutoAttack's with ``stages``)."""
    model = functools.cache(functools.partial(run.load_model, device))
    counts = dict.fromkeys(image_count(c, n_images, capped_images) for c in configs)
    records = []
    for count in counts or [n_images]:
        images, labels = test_images(run, count, data_dir, device)
        key = {"kind": "clean", "n_images": len(labels)}
        records.append(registry.evaluated(run, registry.CLEAN, key, images, labels, model=model,
                                          compute=registry.clean_outcome)[0])  # fmt: skip
        for config in configs:
            if image_count(config, n_images, capped_images) == count:
                key = {**config.settings(), "n_images": len(labels)}
                records.append(registry.evaluated(
                    run, registry.get_evaluation(config.attack), key, images, labels, model=model,
                    compute=_attacked, config=config, progress=progress)[0])  # fmt: skip
    return records
