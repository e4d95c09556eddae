"""Adversarial robustness: white-box FGSM and black-box Square (Appendix A.2 of the paper),
and, beyond the paper, multi-step white-box attacks (PGD, APGD) and AutoAttack, so that a
one-step FGSM number can be told apart from gradient masking (Athalye, Carlini & Wagner,
ICML 2018; Carlini et al., "On Evaluating Adversarial Robustness", 2019; ``masking``).

Every attack comes from torchattacks 3.5.1 and works on images in [0, 1] (the models
normalise inside), with eps in the same pixel units (L∞). ``ATTACKS`` is the registry:
one ``Attack`` entry each (its settings, how to build it, its table), and every other
module (the CLI's choices, the tables, the masking check's labels) reads it.

- ``fgsm``: one signed-gradient step of size ε (Goodfellow et al., 2015).
- ``square``: Square (Andriushchenko et al., 2020), torchattacks' own p_init = 0.8 and
  margin loss, one restart, the paper's budget of 100 queries.
- ``pgd``: L∞ PGD (Madry et al., 2018), cross-entropy, ``steps`` steps (10; 50 offered)
  of ``step_size`` (default ε/4, i.e. 2/255 at 8/255), one uniform random start.
- ``apgd-ce``, ``apgd-dlr``: APGD (Croce & Hein, 2020) on cross-entropy or the DLR
  loss, ``steps`` iterations, one restart (torchattacks' rho = 0.75).
- ``autoattack``: AutoAttack (Croce & Hein, ICML 2020) with the settings of the reference
  implementation (github.com/fra31/auto-attack, ``AutoAttack(version="standard")`` for
  L∞), composed from torchattacks' own attacks (``reference_autoattack``): APGD-CE (100
  iterations, one restart), APGD-T (100 iterations, 9 target classes, one restart), FAB-T
  (100 iterations, 9 target classes, one restart), then Square (5,000 queries, p_init 0.8,
  one restart, the reference's unrescaled p schedule), each run only on the images every
  attack before it left correctly classified. Its record keeps how many images each
  attack ran on (``stages``). On 1,000 class-stratified test images by default (slow).
- ``autoattack-fast``: torchattacks' own ``AutoAttack(version="standard")``, kept under
  its own name: the same four attacks at torchattacks' defaults, 10 iterations of
  APGD-CE, APGD-T and FAB-T (the reference: 100), K - 1 target classes for a K-class model
  (the reference: 9) and Square's schedule rescaled to its 5,000 queries (the reference
  does not rescale it), so it is cheaper and weaker than the reference; same image cap.
  A record of kind ``autoattack`` stored before the reference settings existed (no
  ``steps`` key) was this attack and is labelled so (``attack_label``).

The paper states neither ε nor Square's other settings: eps = 8/255 (the common choice on
CIFAR) by default. Everything is recorded with each result.

Test-time work runs in eval mode and float32 (``models.evaluating``: no autocast, no TF32;
each submodule's mode restored), on the whole test split unless ``n_images`` asks for a
class-stratified subset. The attacks take their gradients whatever the caller's grad mode
(``torch.no_grad()``, ``torch.inference_mode()``: ``models.gradients_on``), and images in
either memory layout (channels_last ones are made contiguous as they enter the attacks,
``_attack_inputs``). Square, APGD and each of AutoAttack's attacks call
``torch.manual_seed(seed)`` on every batch with the config's seed (never the clock,
torchattacks' AutoAttack default), and PGD draws its random start from the global RNG
(seeded here with the config's seed); each batch is attacked inside
``torch.random.fork_rng``, so the global RNG is the same afterwards as before, and the
same seed gives the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from regionmix_utils.models import autograd_tensor, evaluating, gradients_on
from regionmix_utils.progress import progress as progress_bar
from regionmix_utils.runs import Run, eps_text, snap_eps

__all__ = [
    "ATTACKS",
    "AUTOATTACK_ORDER",
    "AUTOATTACK_QUERIES",
    "AUTOATTACK_STEPS",
    "AUTOATTACK_TARGETS",
    "DEFAULT_EPS",
    "PRESETS",
    "Attack",
    "AttackConfig",
    "AutoAttackCascade",
    "accuracy",
    "adversarial_accuracy",
    "adversarial_predictions",
    "attack_configs",
    "attack_label",
    "attack_names",
    "attack_outcome",
    "evaluate_run",
    "fast_autoattack",
    "get_attack",
    "make_attack",
    "predictions",
    "preset_text",
    "record_name",
    "reference_autoattack",
    "test_images",
]

DEFAULT_EPS = 8 / 255
SQUARE_LOSSES = ("margin", "ce")


@dataclass(frozen=True)
class Attack:
    """One registered attack.

    Attributes:
        name: its registry name, the record's ``kind`` and the CLI's ``--attack`` choice.
        title: how tables name it ("PGD", "APGD-CE").
        table: the table its records go to (3: FGSM, 4: Square, 7: beyond the paper).
        fields: the ``AttackConfig`` fields that are its settings (besides eps).
        build: ``(model, config, num_classes) -> torchattacks.Attack``.
        help: one line for the CLI.
        seeded: whether its result depends on ``seed`` (it is seeded before each batch).
        default_images: the test images it is run on when the caller asks for more (or
            for the whole split): a class-stratified sample of this many; None: no cap.
        min_classes: the fewest classes it can attack (its loss needs that many logits).
        budget: the record key that goes into its label ("steps" -> "PGD-10").
        fixed: settings it always runs with, not ``AttackConfig`` fields, recorded with
            each result so a record says what ran (AutoAttack's 100 iterations).
    """

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
        """ "FGSM", "PGD-10", "Square-100": the title and its budget, if it has one."""
        if self.budget is None or settings.get(self.budget) is None:
            return self.title
        return f"{self.title}-{int(settings[self.budget])}"


def _torchattacks():
    try:
        import torchattacks
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "torchattacks is not installed. Install it without its dependencies (its "
            "requests pin would downgrade JupyterLab): pip install --no-deps torchattacks==3.5.1"
        ) from err
    return torchattacks


def _fgsm(model, config, num_classes):
    return _torchattacks().FGSM(model, eps=config.eps)


def _square(model, config, num_classes):
    return _torchattacks().Square(
        model, norm="Linf", eps=config.eps, n_queries=config.queries, n_restarts=1,
        p_init=config.p_init, loss=config.loss, resc_schedule=True, seed=config.seed,
    )  # fmt: skip


def _pgd(model, config, num_classes):
    return _torchattacks().PGD(model, eps=config.eps, alpha=config.resolved_step_size,
                               steps=config.steps, random_start=config.random_start)  # fmt: skip


def _apgd(loss: str):
    def build(model, config, num_classes):
        return _torchattacks().APGD(
            model, norm="Linf", eps=config.eps, steps=config.steps, n_restarts=1,
            seed=config.seed, loss=loss, eot_iter=1, rho=0.75,
        )  # fmt: skip

    return build


# The reference AutoAttack's "standard" L∞ settings (fra31/auto-attack, autoattack.py:
# AutoAttack.__init__ and set_version("standard")).
AUTOATTACK_STEPS = 100  # APGD-CE, APGD-T and FAB-T iterations (n_iter=100)
AUTOATTACK_TARGETS = 9  # APGD-T's and FAB-T's target classes (n_target_classes = 9)
AUTOATTACK_QUERIES = 5000  # Square's queries (n_queries=5000, p_init=.8, n_restarts=1)
AUTOATTACK_ORDER = ("apgd-ce", "apgd-t", "fab-t", "square")


class AutoAttackCascade:
    """AutoAttack's cascade: each attack runs only on the images every attack before it
    left correctly classified, in the order given, as the reference's
    ``run_standard_evaluation`` (fra31/auto-attack, autoattack.py) and torchattacks'
    ``MultiAttack`` do; an image the model already misclassifies is attacked by none. It
    counts, summed over the batches it is called on, how many images each attack ran on
    and how many were still correctly classified after it.

    Called with images [N, 3, H, W] in [0, 1] (any memory layout) and labels [N] (on the
    model's device), it returns adversarial images [N, 3, H, W]: each image the first
    attack that fooled it found, or the image itself when none did. The model runs in eval
    mode and float32 (``models.evaluating``), with gradients on even where the caller
    turned them off (``torch.no_grad()``, ``torch.inference_mode()``).

    Attributes:
        model: the attacked model.
        names: the attacks' names ("apgd-ce", "apgd-t", "fab-t", "square").
        attacks: the torchattacks attacks, in that order.
        stages: one dict per attack, ``{"attack", "n_attacked", "n_robust_after"}``.
    """

    def __init__(self, model: nn.Module, names: tuple[str, ...], attacks: list):
        if len(names) != len(attacks):
            raise ValueError(f"{len(names)} names for {len(attacks)} attacks")
        self.model, self.names, self.attacks = model, tuple(names), list(attacks)
        self.reset_stages()

    def reset_stages(self) -> None:
        """Start the per-attack counts afresh."""
        self.stages = [{"attack": n, "n_attacked": 0, "n_robust_after": 0} for n in self.names]

    def __call__(self, images: Tensor, labels: Tensor) -> Tensor:
        with gradients_on(), evaluating(self.model):
            images, labels = _attack_inputs(images, labels)
            images, labels = images.clone().detach(), labels.clone().detach()
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
    """Images [N, 3, H, W] and labels [N] as every attack takes them; call inside
    ``models.gradients_on``. The images are made contiguous: torchattacks' FAB views the
    input gradient, which has the images' strides, and a channels_last view fails. Both
    are copied out of inference mode where they were made in it (``autograd_tensor``)."""
    return autograd_tensor(images).contiguous(), autograd_tensor(labels)


def reference_autoattack(
    model: nn.Module,
    eps: float,
    num_classes: int,
    seed: int = 0,
    steps: int = AUTOATTACK_STEPS,
    targets: int = AUTOATTACK_TARGETS,
    queries: int = AUTOATTACK_QUERIES,
) -> AutoAttackCascade:
    """AutoAttack with the reference "standard" L∞ settings (Croce & Hein, ICML 2020;
    github.com/fra31/auto-attack, ``AutoAttack.__init__`` and ``set_version``), built from
    torchattacks 3.5.1's APGD, APGDT, FAB and Square:

    1. APGD-CE: ``steps`` iterations, one restart, rho 0.75, one EOT sample;
    2. APGD-T: targeted DLR loss, ``steps`` iterations, one restart per target class, the
       ``targets`` classes ranked highest after the true one (at most K - 1);
    3. FAB-T: ``steps`` iterations, one restart, the same target classes (alpha_max 0.1,
       eta 1.05, beta 0.9, the reference's and torchattacks' defaults);
    4. Square: ``queries`` queries, p_init 0.8, margin loss, one restart, the p schedule
       not rescaled to the budget (the reference passes ``resc_schedule=False``; the
       standalone Square of both packages rescales by default).

    Every attack is seeded with ``seed`` (each reseeds the global RNG on every call). The
    defaults are the reference's; smaller ``steps`` and ``queries`` are for tests.

    Args:
        eps: the L∞ radius in [0, 1] pixel units.
        num_classes: K, the model's number of outputs (>= 4: the targeted DLR loss reads
            the four largest logits).
    Raises:
        ValueError: fewer than 4 classes, or a budget below 1.
    """
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


def fast_autoattack(
    model: nn.Module, eps: float, num_classes: int, seed: int = 0
) -> AutoAttackCascade:
    """torchattacks 3.5.1's own ``AutoAttack(version="standard")`` attacks (built by it,
    unchanged), seeded with ``seed`` instead of torchattacks' clock, in the same cascade as
    ``reference_autoattack`` (so its record counts each attack's images too): APGD-CE,
    APGD-T and FAB-T at 10 iterations with K - 1 target classes, then Square-5000 with its
    p schedule rescaled to the budget. Cheaper and weaker than the reference. Arguments
    as ``reference_autoattack``'s."""
    built = _torchattacks().AutoAttack(model, norm="Linf", eps=eps, version="standard",
                                       n_classes=num_classes, seed=seed)  # fmt: skip
    return AutoAttackCascade(model, AUTOATTACK_ORDER, list(built._autoattack.attacks))


def _autoattack(model, config, num_classes):
    return reference_autoattack(model, config.eps, num_classes, config.seed)


def _autoattack_fast(model, config, num_classes):
    return fast_autoattack(model, config.eps, num_classes, config.seed)


_SQUARE_FIELDS = ("queries", "seed", "p_init", "loss")
_PGD_FIELDS = ("steps", "step_size", "random_start", "seed")

ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in (
        Attack("fgsm", "FGSM", 3, (), _fgsm, "one signed-gradient step of size ε"),
        Attack("pgd", "PGD", 7, _PGD_FIELDS, _pgd,
               "L∞ PGD, --steps steps of --step-size (ε/4), one random start",
               seeded=True, budget="steps"),
        Attack("apgd-ce", "APGD-CE", 7, ("steps", "seed"), _apgd("ce"),
               "APGD on cross-entropy, --steps iterations, one restart", seeded=True),
        Attack("apgd-dlr", "APGD-DLR", 7, ("steps", "seed"), _apgd("dlr"),
               "APGD on the DLR loss, --steps iterations, one restart", seeded=True,
               min_classes=3),
        Attack("autoattack", "AutoAttack", 7, ("version", "seed"), _autoattack,
               "AutoAttack with the reference 'standard' settings (fra31/auto-attack): "
               "APGD-CE and APGD-T (9 targets) of 100 iterations, FAB-T (9 targets, 100 "
               "iterations), Square-5000, each on the images still correct",
               seeded=True, default_images=1000, min_classes=4,
               fixed=(("steps", AUTOATTACK_STEPS), ("targets", AUTOATTACK_TARGETS),
                      ("queries", AUTOATTACK_QUERIES))),
        Attack("autoattack-fast", "AutoAttack-fast", 7, ("version", "seed"), _autoattack_fast,
               "torchattacks' own AutoAttack 'standard': 10 iterations of APGD-CE, APGD-T and "
               "FAB-T (K - 1 targets), Square-5000 with a rescaled schedule; weaker than "
               "the reference", seeded=True, default_images=1000, min_classes=4,
               fixed=(("steps", 10),)),
        Attack("square", "Square", 4, _SQUARE_FIELDS, _square,
               "black-box Square, --queries queries", seeded=True, budget="queries"),
    )
}  # fmt: skip


# Named sets for the CLI's --attack: (attack, steps) pairs; steps None: the --steps given.
PRESETS: dict[str, tuple[tuple[str, int | None], ...]] = {
    "paper": (("fgsm", None), ("square", None)),  # Tables 3-4
    "table7": (
        ("fgsm", None),
        ("pgd", 10),
        ("pgd", 50),
        ("apgd-ce", None),
        ("autoattack", None),
        ("square", None),
    ),
    "all": tuple((name, None) for name in ATTACKS),
}


def preset_text(name: str) -> str:
    """What a preset runs, for help texts: "fgsm, pgd-10, pgd-50, ..."."""
    return ", ".join(a if steps is None else f"{a}-{steps}" for a, steps in PRESETS[name])


def attack_names() -> tuple[str, ...]:
    """The registered attacks, in table order."""
    return tuple(ATTACKS)


def get_attack(name: str) -> Attack:
    """The registry entry ``name``; a ValueError naming the known ones otherwise."""
    if name not in ATTACKS:
        raise ValueError(f"attack must be one of {attack_names()}, got {name!r}")
    return ATTACKS[name]


def attack_label(settings: dict) -> str:
    """The table label of a record's attack: "FGSM", "PGD-50", "Square-100". A record of
    kind "autoattack" without "steps" (absent, or NaN in a table row) was stored before
    the reference settings existed, by torchattacks' own AutoAttack: it is labelled
    "AutoAttack-fast"."""
    spec = get_attack(settings["kind"])
    steps = settings.get("steps")
    if spec.name == "autoattack" and (steps is None or steps != steps):
        spec = ATTACKS["autoattack-fast"]
    return spec.label(settings)


def record_name(record: dict) -> str:
    """ "clean", "fgsm ε=8/255", "pgd-50 ε=4/255": a record in a line of text."""
    if record["kind"] not in ATTACKS:
        return record["kind"]
    return f"{attack_label(record).lower()} ε={eps_text(record['eps'])}"


@dataclass(frozen=True)
class AttackConfig:
    """One attack setting. eps is in [0, 1] pixel units (snapped to k/255 when it is one);
    each attack reads only its own fields (``Attack.fields``)."""

    attack: str = "fgsm"
    eps: float = DEFAULT_EPS
    queries: int = 100  # Square only: the query budget
    seed: int = 0  # Square, PGD (random start), APGD, both AutoAttacks
    p_init: float = 0.8  # Square only: initial share of pixels changed (torchattacks' default)
    loss: str = "margin"  # Square only: "margin" or "ce" (torchattacks' default: margin)
    steps: int = 10  # PGD and APGD: iterations
    step_size: float | None = None  # PGD only, pixel units; None: eps / 4
    random_start: bool = True  # PGD only: one uniform start in the ε-ball
    version: str = "standard"  # both AutoAttacks (the one version offered)

    def __post_init__(self) -> None:
        get_attack(self.attack)
        if not 0 <= self.eps <= 1:
            raise ValueError(f"eps must be in [0, 1] (pixel units, e.g. 8/255), got {self.eps}")
        if self.queries < 1:
            raise ValueError(f"queries must be >= 1, got {self.queries}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.step_size is not None and not 0 <= self.step_size <= 1:
            raise ValueError(f"step_size must be in [0, 1] (pixel units) or None, got "
                             f"{self.step_size}")  # fmt: skip
        if not 0 < self.p_init <= 1:
            raise ValueError(f"p_init must be in (0, 1], got {self.p_init}")
        if self.loss not in SQUARE_LOSSES:
            raise ValueError(f"loss must be one of {SQUARE_LOSSES}, got {self.loss!r}")
        if self.version != "standard":
            raise ValueError(f"version must be 'standard', got {self.version!r}")
        object.__setattr__(self, "eps", snap_eps(self.eps))
        if self.step_size is not None:
            object.__setattr__(self, "step_size", snap_eps(self.step_size))

    @property
    def spec(self) -> Attack:
        return ATTACKS[self.attack]

    @property
    def resolved_step_size(self) -> float:
        """PGD's step: the one given, or eps / 4 (2/255 at 8/255, the usual choice)."""
        return self.step_size if self.step_size is not None else snap_eps(self.eps / 4)

    def settings(self) -> dict[str, Any]:
        """The record keys that identify this setting (n_images is added by the caller):
        kind, eps, its fields and its fixed settings (``Attack.fixed``)."""
        values = {"step_size": self.resolved_step_size}
        fields = {f: values.get(f, getattr(self, f)) for f in self.spec.fields}
        return {"kind": self.attack, "eps": self.eps, **fields, **dict(self.spec.fixed)}

    @property
    def name(self) -> str:
        """Short text for progress bars: "fgsm ε=8/255", "pgd-10 ε=8/255"."""
        return f"{self.spec.label(self.settings()).lower()} ε={eps_text(self.eps)}"


def attack_configs(
    names: list[str], eps: list[float], steps: list[int] = (10,), **settings
) -> list[AttackConfig]:
    """Every attack of ``names`` (registry names or ``PRESETS``) at every ε, and for
    PGD / APGD every number of ``steps`` (a preset may fix it); ``settings`` are the
    other ``AttackConfig`` fields. Duplicates are dropped, the order kept.

    Raises:
        ValueError: an unknown name, or a bad setting (``AttackConfig``).
    """
    pairs = []
    for name in names:
        if name in PRESETS:
            pairs += PRESETS[name]
        else:
            get_attack(name)
            pairs.append((name, None))
    configs = []
    for value in eps:
        for name, fixed in pairs:
            counts = [fixed] if fixed else list(steps) if "steps" in ATTACKS[name].fields else [10]
            configs += [AttackConfig(name, value, steps=n, **settings) for n in counts]
    return list(dict.fromkeys(configs))


def make_attack(model: nn.Module, config: AttackConfig, num_classes: int | None = None):
    """The torchattacks object for ``config``, every setting passed explicitly.

    Args:
        num_classes: the model's number of outputs (AutoAttack's targeted attacks need
            it; read from the model's ``linear`` layer when None).
    Raises:
        ValueError: the attack cannot take a model with that few classes.
    """
    if num_classes is None:
        num_classes = _num_classes(model)
    spec = config.spec
    if num_classes < spec.min_classes:
        raise ValueError(
            f"attack {spec.name!r} needs a model with >= {spec.min_classes} classes (its loss "
            f"reads that many logits), got {num_classes}"
        )
    return spec.build(model, config, num_classes)


def _num_classes(model: nn.Module) -> int:
    linear = getattr(model, "linear", None)
    if isinstance(linear, nn.Linear):
        return linear.out_features
    raise ValueError("num_classes must be given for a model without a `linear` output layer")


@torch.no_grad()
def predictions(model: nn.Module, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """Predicted classes [N] and logits [N, K] of images [N, 3, H, W] in [0, 1], in eval
    mode and float32."""
    with evaluating(model):
        logits = torch.cat([model(x).float() for x in images.split(batch_size)])
    return logits.argmax(1), logits


def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Accuracy in percent on images [N, 3, H, W] in [0, 1], in eval mode and float32."""
    predicted, _ = predictions(model, images, batch_size)
    return 100.0 * int((predicted == labels).sum()) / len(labels)


def adversarial_predictions(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    config: AttackConfig,
    batch_size: int = 500,
    progress: bool = True,
) -> Tensor:
    """Predicted classes [N] of adversarial versions of ``images`` [N, 3, H, W] (in
    [0, 1], any memory layout; labels [N]) built by ``config``, in eval mode and float32,
    also when called under ``torch.no_grad()`` or ``torch.inference_mode()``; each
    submodule is left in the mode it had, the global RNG as it was. At eps = 0 the ε-ball
    holds only the image itself, so the clean predictions are returned without running the
    attack (AutoAttack's Square would spend all 5,000 queries finding nothing).

    Raises:
        ValueError: the attack cannot take the model's class count (``make_attack``).
    """
    return attack_outcome(model, images, labels, config, batch_size, progress)[0]


def attack_outcome(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    config: AttackConfig,
    batch_size: int = 500,
    progress: bool = True,
) -> tuple[Tensor, list[dict] | None]:
    """``adversarial_predictions`` and, for an AutoAttack, what each of its attacks did
    over all the batches (``AutoAttackCascade.stages``: one dict per attack in the order
    they ran, ``{"attack", "n_attacked", "n_robust_after"}``); None for the other attacks
    and at eps = 0, where nothing runs."""
    devices = [images.device.index or 0] if images.is_cuda else []
    predicted = []
    batches = zip(images.split(batch_size), labels.split(batch_size), strict=True)
    total = -(-len(labels) // batch_size)
    with evaluating(model):
        with torch.no_grad():
            num_classes = model(images[:1]).shape[1]
        attack = make_attack(model, config, num_classes)
        if config.eps == 0:
            return predictions(model, images, batch_size)[0], None
        for x, y in progress_bar(batches, total=total, desc=config.name, disable=not progress):
            with torch.random.fork_rng(devices=devices), gradients_on():
                if config.spec.seeded:
                    torch.manual_seed(config.seed)  # PGD's start; the others reseed anyway
                adversarial = attack(*_attack_inputs(x, y))
            with torch.no_grad():
                predicted.append(model(adversarial).argmax(1))
    stages = attack.stages if isinstance(attack, AutoAttackCascade) else None
    return (torch.cat(predicted) if predicted else labels.new_empty(0)), stages


def adversarial_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    config: AttackConfig,
    batch_size: int = 500,
    progress: bool = True,
) -> float:
    """Accuracy in percent after ``config``'s attack (see ``adversarial_predictions``)."""
    predicted = adversarial_predictions(model, images, labels, config, batch_size, progress)
    return 100.0 * int((predicted == labels).sum()) / len(labels)


def test_images(
    run: Run, n_images: int | None = None, data_dir=None, device: str | torch.device = "cpu"
) -> tuple[Tensor, Tensor]:
    """The run's test split as floats in [0, 1] on ``device``, and its labels: whole, or a
    class-stratified sample of ``n_images`` (fixed seed)."""
    from regionmix_utils.data import load_dataset

    test = load_dataset(run.config.dataset, data_dir, n_train=1, n_test=n_images).test
    return test.images.to(device).float() / 255, test.labels.to(device)


def image_count(config: AttackConfig | None, n_images: int | None,
                capped_images: int | None = None) -> int | None:  # fmt: skip
    """How many test images ``config`` runs on when the caller asks for ``n_images``
    (None: the whole split): at most its ``default_images`` (or ``capped_images``, when
    given) for a slow attack such as AutoAttack."""
    cap = None if config is None else config.spec.default_images
    if cap is not None and capped_images is not None:
        cap = capped_images
    if cap is None:
        return n_images
    return cap if n_images is None else min(n_images, cap)


def _store(run: Run, record: dict, predicted: Tensor, labels: Tensor,
           logits: Tensor | None = None) -> None:  # fmt: skip
    """The record in ``eval.json``, the per-image predictions beside it (paired tests)."""
    from regionmix_utils.runs import Predictions

    stored = Predictions.from_outputs(
        predicted.cpu().numpy(), labels.cpu().numpy(),
        None if logits is None else logits.cpu().numpy(),
    )  # fmt: skip
    run.add_evaluation(record, predictions=stored)


def evaluate_run(
    run: Run,
    configs: list[AttackConfig],
    n_images: int | None = None,
    data_dir=None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    capped_images: int | None = None,
) -> list[dict]:
    """Clean and adversarial accuracy of a finished run, stored as records in its
    ``eval.json`` with each image's prediction beside them (``Run.add_evaluation``); a
    record already there for the same settings and image count is reused, not
    recomputed.

    Args:
        run: a finished run.
        configs: the attack settings.
        n_images: None for the whole test split (as the paper reports), or a
            class-stratified sample of that many test images.
        capped_images: the image count of slow attacks (``Attack.default_images``, e.g.
            AutoAttack's 1,000) when not their default; never more than ``n_images``.
    Returns:
        The records, the clean one of each image count before the attacks on it:
        {"kind", settings..., "n_images", "accuracy" (%), "seconds"}; an AutoAttack's
        also holds "stages", one {"attack", "n_attacked", "n_robust_after"} per attack in
        the order they ran (how many images it attacked, how many stayed correct after it),
        a measured value like "accuracy", not a setting.
    """
    counts = list(dict.fromkeys(image_count(c, n_images, capped_images) for c in configs))
    counts = counts or [n_images]
    model, records = None, []
    for count in counts:
        images, labels = test_images(run, count, data_dir, device)
        chosen = [c for c in configs if image_count(c, n_images, capped_images) == count]
        for config in [None, *chosen]:  # None: clean accuracy
            settings = {"kind": "clean"} if config is None else config.settings()
            key = {**settings, "n_images": len(labels)}
            found = run.find_evaluation(key)
            # A record stored before per-image predictions were kept is recomputed, so
            # that re-running the command gives `table --compare` its paired numbers.
            if found is not None and run.predictions(key) is not None:
                records.append(found)
                continue
            if model is None:
                model = run.load_model(device)
            started = time.perf_counter()
            logits, stages = None, None
            if config is None:
                predicted, logits = predictions(model, images)
            else:
                predicted, stages = attack_outcome(model, images, labels, config,
                                                   progress=progress)  # fmt: skip
            value = 100.0 * int((predicted == labels).sum()) / len(labels)
            record = {**key, "accuracy": value, "seconds": round(time.perf_counter() - started, 3)}
            if stages is not None:
                record["stages"] = stages
            _store(run, record, predicted, labels, logits)  # after each: a kill keeps the rest
            records.append(record)
    return records
