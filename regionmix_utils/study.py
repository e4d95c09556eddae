"""Studies: a named set of runs and the evaluations of each, defined in one place.

A study is data: the recipe (the paper's, scaled), the configurations, the seeds, and
what each finished run is evaluated on. ``run_study`` trains and evaluates it, resuming
where it stopped (each run resumes from its last epoch, each evaluation is stored as soon
as it is made); ``export_bundle`` copies what a reader needs (configs with their
environment and history, metrics, evaluation records, per-image predictions, and the
float16 weights of chosen runs) into a small folder that can be committed; the report
(``regionmix_utils.report``) is generated from that folder.

``cpu-gated`` is the study the project commits (``CPU_GATED``): PreAct ResNet-18 at width
16 on 2,000 real CIFAR-10 training images of the subset at hand (500 more held out for
temperature scaling; all 1,017 test images), 20 epochs with the learning rate held at
0.1 for 10 and cosine-annealed over the rest, 5 seeds; no mixing, Mixup, CutMix, Region
Mixup k=2, and Region Mixup without the clean CE term, plain and compute-matched. A
pilot (``run_pilot``) gates it: seed 0 of no mixing must fit its training images at
least 10 points better than the test images, and chooses the primary ε of its attacks.
Its claims are declared in its definition, before its runs were evaluated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from regionmix_utils.claims import MATCHED, NO_CE, Claim, paper_claims
from regionmix_utils.config import TrainConfig
from regionmix_utils.data import ImageSet
from regionmix_utils.evaluation.corruptions import SEVERITIES, gaussian_noise
from regionmix_utils.files import atomic_torch_save, atomic_write_text
from regionmix_utils.runs import (
    CONFIG,
    EVALUATIONS,
    EXPORTED,
    METRICS,
    PREDICTIONS,
    WEIGHTS16,
    Run,
)

__all__ = [
    "CPU_GATED",
    "PLAN",
    "PRIMARY_EPS",
    "SAMPLED_FROM",
    "STUDIES",
    "TIMING",
    "Entry",
    "Study",
    "StudyGateError",
    "evaluate_study_run",
    "export_bundle",
    "find_bundle",
    "gate_message",
    "get_study",
    "noise_images",
    "read_plan",
    "record_timing",
    "run_pilot",
    "run_study",
    "study_plan",
    "study_timing",
    "timed",
]

TIMING = "study-timing.json"  # in the runs folder: each invocation's wall time
PLAN = "study-plan.json"  # in the runs folder: the pilot's gate and the primary ε


class StudyGateError(RuntimeError):
    """The pilot found nothing for mixing to regularise: the study stops."""


@dataclass(frozen=True)
class Entry:
    """One configuration of a study: a registered method, its settings, the loss."""

    method: str
    settings: tuple[tuple[str, object], ...] = ()
    clean_ce: bool = True
    attacked: bool = True  # evaluated under the attacks (Tables 3, 4, 7)
    weights: bool = False  # its seed-0 weights go into the bundle (float16)


@dataclass(frozen=True)
class Study:
    """A study: the scaled recipe, its entries and seeds, and its evaluations.

    Attributes:
        epochs, milestones: the schedule; milestones are the paper's (100, 150 of 400)
            at the same proportions of ``epochs``.
        fgsm_eps, pgd_eps: the ε (pixel units) of FGSM (a sweep) and of
            PGD-``pgd_steps`` when the study has no pilot to choose a primary ε (each ε
            of PGD-10 costs ten FGSMs).
        square_eps, square_queries: the black-box attack of Table 4.
        noise_severities: Gaussian noise computed with CIFAR-10-C's parameters.
    """

    name: str
    title: str
    dataset: str
    entries: tuple[Entry, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    width: int = 16
    epochs: int = 12
    milestones: tuple[int, ...] = (3, 5)
    holdout: int = 500
    n_train: int | None = None
    n_test: int | None = None
    fgsm_eps: tuple[float, ...] = (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
    pgd_eps: tuple[float, ...] = (8 / 255,)
    pgd_steps: int = 10
    square_eps: float = 8 / 255
    square_queries: int = 100
    noise_severities: tuple[int, ...] = SEVERITIES
    noise_seed: int = 0
    bundle: str | None = None  # where the committed results are, from the repository root
    # Claims of the study's own (``claims.Claim``), judged with the paper's claims on its
    # dataset as one family (Holm); ``effect``: the smallest Δ (points) the study wants to
    # detect, given to every claim of the family that declares none (the seed planner's);
    # ``claims_note``: when and how they were declared, printed with the verdicts.
    claims: tuple[Claim, ...] = ()
    effect: float | None = None
    claims_note: str = ""
    with_paper_claims: bool = True  # judge the paper's claims on its dataset in the family
    lr_schedule: str = "step"
    # The pilot gate (``run_pilot``): seed 0 of no mixing is trained first, and the study
    # goes on only if its final training accuracy (clean images, eval mode) exceeds its
    # test accuracy by at least ``gate_gap`` points. None: no pilot.
    gate_gap: float | None = None
    # The primary ε, chosen from the pilot alone: the ε of ``fgsm_eps`` at which the
    # pilot's FGSM accuracy is nearest ``primary_target`` (%; the smaller ε on a tie).
    # PGD-``pgd_steps`` and Square then run at it on every image, and PGD also on
    # ``sample_images`` (class-stratified) at the sweep's two ε next to it and at 64/255,
    # so that every gradient-masking flag is checked. None: ``pgd_eps``/``square_eps``.
    primary_target: float | None = None
    sample_images: int = 500
    # Registered evaluations (``evaluation.registry``, a plugin's say) of every run, on
    # every test image: (kind, ((setting, value), ...)) each.
    evaluations: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()
    # One paragraph for the report: the study this one replaces, and why.
    replaces: str = ""
    # The method of the run whose first epochs the bundle's reproduction reference
    # retrains (its first run trained with one thread, else its first run); None: any
    # method.
    reproduced: str | None = None

    def configs(self, dataset: str | None = None) -> list[TrainConfig]:
        """Every run of the study, entry by entry, seed by seed.

        Args:
            dataset: "cifar10-subset" (the default design) or "cifar10": the full
                download, sampled to the subset's sizes (class-stratified), so that the
                design is the same.
        """
        dataset = dataset or self.dataset
        sizes = {"n_train": self.n_train, "n_test": self.n_test}
        if dataset != self.dataset:
            if dataset not in SAMPLED_FROM:
                raise ValueError(f"dataset must be {self.dataset!r} or one of "
                                 f"{sorted(SAMPLED_FROM)}, got {dataset!r}")  # fmt: skip
            # The subset's sizes, less any the study samples down itself.
            sizes = {k: getattr(self, k) or v for k, v in SAMPLED_FROM[dataset].items()}
        return [
            TrainConfig(
                dataset=dataset,
                method=entry.method,
                clean_ce=entry.clean_ce,
                seed=seed,
                epochs=self.epochs,
                milestones=self.milestones,
                width=self.width,
                holdout=self.holdout,
                lr_schedule=self.lr_schedule,
                amp=False,
                channels_last=False,
                **sizes,
                **dict(entry.settings),
            )
            for entry in self.entries
            for seed in self.seeds
        ]

    def entry_of(self, config: TrainConfig) -> Entry:
        """The entry a run of this study belongs to."""
        for entry in self.entries:
            settings = {"matched_compute": False, **dict(entry.settings)}
            if (entry.method, entry.clean_ce) == (config.method, config.clean_ce) and all(
                getattr(config, k) == v for k, v in settings.items()
            ):
                return entry
        raise ValueError(f"{config} is not a run of study {self.name!r}")

    def attack_configs(self, primary_eps: float | None = None) -> list:
        """The attacks of an attacked run on every test image: the FGSM sweep, then
        PGD and Square at ``primary_eps`` (the study's ``pgd_eps`` and ``square_eps``
        when it chooses none)."""
        from regionmix_utils.evaluation.robustness import attack_configs

        pgd_eps = list(self.pgd_eps) if primary_eps is None else [primary_eps]
        square_eps = self.square_eps if primary_eps is None else primary_eps
        return [
            *attack_configs(["fgsm"], list(self.fgsm_eps)),
            *attack_configs(["pgd"], pgd_eps, steps=[self.pgd_steps], seed=0),
            *attack_configs(["square"], [square_eps], queries=self.square_queries, seed=0),
        ]

    def sample_eps(self, primary_eps: float) -> list[float]:
        """The ε of PGD on the ``sample_images`` sample: the two ε of the FGSM sweep
        next to ``primary_eps`` (one each side where it has both), and 64/255."""
        from regionmix_utils.evaluation.masking import UNBOUNDED_EPS

        others = sorted(e for e in self.fgsm_eps if abs(e - primary_eps) > 1e-9)
        below = [e for e in others if e < primary_eps][-1:]
        above = [e for e in others if e > primary_eps][:1]
        near = below + above
        if len(near) < 2:  # at an end of the sweep: its two nearest
            near = sorted(others, key=lambda e: abs(e - primary_eps))[:2]
        return [*sorted(near), UNBOUNDED_EPS]

    def family(self, primary_eps: float | None = None) -> list[Claim]:
        """The claims its report judges together: the paper's claims about the study's
        dataset (``results.PAPER_DATASET``; unless ``with_paper_claims`` is False),
        then its own, each with the study's ``effect`` where it declares none.

        Args:
            primary_eps: the primary ε the pilot chose (``read_plan``): a claim declared
                at ``PRIMARY_EPS`` is about it.
        Raises:
            ValueError: a claim is declared at the primary ε and none is given.
        """
        from regionmix_utils.results import PAPER_DATASET

        on = {self.dataset, PAPER_DATASET.get(self.dataset)}
        found = [c for c in paper_claims() if c.dataset in on] if self.with_paper_claims else []
        found += [_at_primary(c, primary_eps) for c in self.claims]
        return [c if c.effect is not None or self.effect is None
                else dataclasses.replace(c, effect=self.effect) for c in found]  # fmt: skip

    def describe(self) -> str:
        """One line for labels: what the runs are."""
        return (f"{self.title}, PreAct ResNet-18 width {self.width}, {self.epochs} epochs, "
                f"{len(self.seeds)} seeds, CPU")  # fmt: skip

    def pilot(self, dataset: str | None = None) -> TrainConfig:
        """The gate's pilot: the first seed of the study's no-mixing entry."""
        for config in self.configs(dataset):
            if config.method == "none":
                return config
        raise ValueError(f"study {self.name!r} has no no-mixing entry to pilot")


PRIMARY_EPS = "primary"  # a claim's ε that the pilot chooses (``Study.primary_target``)


def _at_primary(claim: Claim, primary_eps: float | None) -> Claim:
    if ("eps", PRIMARY_EPS) not in claim.settings:
        return claim
    if primary_eps is None:
        raise ValueError(f"claim {claim.text} ({claim.kind}) is declared at the primary ε: "
                         "pass primary_eps (the study's plan, read_plan, holds it)")  # fmt: skip
    settings = tuple((k, primary_eps if v == PRIMARY_EPS else v) for k, v in claim.settings)
    return dataclasses.replace(claim, settings=settings)


# The full dataset sampled to the subset's sizes: 5,085 training images (500 held out)
# and 1,017 test images, class-stratified.
SAMPLED_FROM = {"cifar10": {"n_train": 4585, "n_test": 1017}}


def _gated_claims(name: str) -> tuple[Claim, ...]:
    """The claims of the gated study, declared with it: Region Mixup (k=2) above CutMix
    and above Mixup under FGSM and under Square-100 at the primary ε; Region Mixup with
    the clean CE term above without it, and above the compute-matched arm without it;
    each mixing method above no mixing on clean accuracy."""
    at = (("eps", PRIMARY_EPS),)
    attacks = [("fgsm", at), ("square", (*at, ("queries", 100)))]
    claims = [Claim("cifar10-subset", "region", other, kind, settings, source=name)
              for kind, settings in attacks for other in ("cutmix", "mixup")]  # fmt: skip
    claims += [Claim("cifar10-subset", "region", "region" + arm, "clean", source=name)
               for arm in (NO_CE, MATCHED)]  # fmt: skip
    claims += [Claim("cifar10-subset", method, "none", "clean", source=name)
               for method in ("mixup", "cutmix", "region")]  # fmt: skip
    return tuple(claims)


# A study that can answer: a model that overfits its 2,000 training images (the pilot's
# gate), the learning rate held and then annealed, 5 seeds, the claims declared here.
# Sized from measured pilots of no mixing (one thread, AVX2, width 16, hold-cosine):
# 4,585 images for 12 epochs fitted to 67.4% train / 59.5% test (a gap of 7.9 points,
# under the gate), 16 epochs to 76.3% / 67.0% (9.3); 2,000 images for 30 epochs to
# 89.3% / 55.5% (33.8). 2,000 images at 20 epochs keep the gap and fit 6 configurations
# x 5 seeds in the 4-hour budget on two cores, with the attacks; random grids and a
# sixth seed did not fit. Eager, not torch.compile: a compiled step was 1.14x faster
# (0.652 s against 0.740 s) after a 77 s compilation, and a run is about 320 steps.
CPU_GATED = Study(
    name="cpu-gated",
    title="reference runs: real CIFAR-10, 2,000 training images",
    dataset="cifar10-subset",
    bundle="results/cifar10-cpu-gated",
    entries=(
        Entry("none", weights=True),
        Entry("mixup", (("alpha", 1.0),), weights=True),
        Entry("cutmix", (("alpha", 1.0),), weights=True),
        Entry("region", (("k", 2), ("alpha", 1.0)), weights=True),
        Entry("region", (("k", 2), ("alpha", 1.0)), clean_ce=False, attacked=False),
        Entry(
            "region",
            (("k", 2), ("alpha", 1.0), ("matched_compute", True)),
            clean_ce=False,
            attacked=False,
        ),
    ),
    seeds=(0, 1, 2, 3, 4),
    epochs=20,
    lr_schedule="hold-cosine",
    holdout=500,
    n_train=2000,
    noise_severities=(),
    gate_gap=10.0,
    primary_target=30.0,
    sample_images=500,
    with_paper_claims=False,
    claims=_gated_claims("cpu-gated"),
    effect=2.0,
    reproduced="region",
    claims_note=(
        "Declared in the study's definition before its pilot ran: the directions, the "
        "family (Holm over these nine claims) and the 2-point effect the planner plans for. "
        "The primary ε was chosen by the rule in the plan from the no-mixing pilot alone, "
        "and recorded before any other run was evaluated."
    ),
    replaces=(
        "Before it, the project committed a study named `cpu-reference` (commit 133015f "
        "holds its bundle and report): the same network at width 16 on "
        "4,585 training images of the same subset (500 more held out), 12 epochs with the "
        "learning rate divided by 10 after epochs 3 and 5 (the paper's 400-epoch "
        "proportions), 3 seeds, seven configurations (no mixing, Mixup, CutMix, Region "
        "Mixup k=2, random grids; Mixup and Region Mixup without the clean CE term), FGSM, "
        "PGD-10 and Square-100 at 8/255 and computed Gaussian noise. It could not answer "
        "the paper's questions by its design. Its models never fitted their training "
        "images (no mixing ended at a clean training loss of 1.43 and a test loss of 1.43, "
        "Region Mixup at 1.49 and 1.49), so a regulariser had nothing to do, and no "
        "mixing had the best clean accuracy (46.94%); 7 of its 12 epochs ran at a learning "
        "rate of 0.001, and test accuracy moved by +0.41 points between epochs 6 and 12. "
        "At 8/255 every model sat at 8-11% under FGSM and 4-7% under PGD-10, where no "
        "difference can show. With 3 seeds no exact test over the seeds can reach 5% (the "
        "sign-flip p cannot go below 0.25). Gaussian noise at severity 5 cost at most 3.2 "
        "points (Region Mixup without the clean CE term; 1.6 at most for the others) and "
        "could not separate methods. And its runs did not record the "
        "thread count or the CPU capability that their numbers depend on."
    ),
)
STUDIES = {study.name: study for study in (CPU_GATED,)}


def get_study(name: str) -> Study:
    """The study registered under ``name``; an unknown name is an error naming them."""
    if name not in STUDIES:
        raise ValueError(f"study must be one of {sorted(STUDIES)}, got {name!r}")
    return STUDIES[name]


def find_bundle(study: Study | str = "cpu-gated") -> Path | None:
    """The committed results of ``study``: ``$REGIONMIX_REFERENCE`` when set, else its
    folder in the repository this package is installed from (a clone, or an editable
    install), else None (a plain ``pip install`` carries no results)."""
    study = get_study(study) if isinstance(study, str) else study
    if os.environ.get("REGIONMIX_REFERENCE"):
        return Path(os.environ["REGIONMIX_REFERENCE"])
    if study.bundle is None:
        return None
    found = Path(__file__).resolve().parents[1] / study.bundle
    return found if found.is_dir() else None


# -------------------------------------------------------------------- evaluation


def noise_images(test: ImageSet, severity: int, seed: int = 0) -> ImageSet:
    """``test`` under CIFAR-10-C's Gaussian noise at ``severity``, drawn with a generator
    seeded by (``seed``, ``severity``), so that every run of a study sees the same noisy
    images (paired comparisons need that).

    Args:
        test: uint8 images [N, 3, H, W] and labels [N].
    Returns:
        ImageSet with uint8 images [N, 3, H, W] and the same labels.
    """
    generator = torch.Generator().manual_seed(1000 * seed + severity)
    return ImageSet(gaussian_noise(test.images, severity, generator), test.labels, test.classes)


def read_plan(folder: str | os.PathLike) -> dict | None:
    """The plan a study's pilot wrote in ``folder`` (a runs folder or a bundle), or None."""
    file = Path(folder) / PLAN
    return json.loads(file.read_text()) if file.exists() else None


def study_plan(study: Study, folder: str | os.PathLike) -> dict | None:
    """The plan of ``study`` in ``folder`` (a runs folder or a bundle; ``read_plan``),
    None where the study has no gate and no plan is there.

    Raises:
        FileNotFoundError: the study has a gate and its plan is not in ``folder``.
    """
    plan = read_plan(folder)
    if plan is None and study.gate_gap is not None:
        raise FileNotFoundError(f"{folder} has no {PLAN}: a study with a gate keeps its "
                                "pilot's plan with its runs (export_bundle copies it)")  # fmt: skip
    return plan


def gate_message(plan: dict) -> str:
    """One paragraph: what the gate measured, and what to change when it failed."""
    pilot = plan["pilot"]
    said = (f"the no-mixing pilot ({pilot['run']}) fits its training images to "
            f"{pilot['train_acc']:.2f}% and the test images to {pilot['test_acc']:.2f}%: a gap "
            f"of {pilot['gap']:+.2f} points (at least {plan['required_gap']:g})")  # fmt: skip
    if plan["passed"]:
        return f"gate passed: {said}"
    return (f"gate failed: {said}, so mixing has nothing to regularise. Train longer "
            "(more epochs), hold the learning rate longer, or train a wider model, then run "
            "the study in a new runs folder.")  # fmt: skip


def _nearest_target(accuracy: dict[float, float], target: float) -> float:
    """The ε whose accuracy (%) is nearest ``target`` (%), the smallest such ε on a tie.
    Distances within 1e-9 points are a tie: 34.88% and 25.12% are 4.88 points from 30%,
    but 4.880000000000003 and 4.879999999999999 in floating point."""
    nearest = min(abs(a - target) for a in accuracy.values())
    return min(e for e, a in accuracy.items() if abs(a - target) <= nearest + 1e-9)


def run_pilot(study: Study, runs_dir: str | os.PathLike, data_dir=None, device: str = "auto",
              dataset: str | None = None, progress: bool = True) -> dict | None:  # fmt: skip
    """Train the study's pilot, apply its gate, choose its primary ε, and write
    ``study-plan.json`` (atomically) before any other run is evaluated; a plan already
    there is read instead. None for a study without a gate.

    The plan: {"study", "pilot": {"run", "train_acc", "test_acc", "gap"}, "required_gap",
    "passed", and when it passed "fgsm" (ε -> the pilot's FGSM accuracy, %),
    "primary_eps", "rule", "sample_eps"; "decided" (local time)}.

    Raises:
        StudyGateError: the gate failed (``gate_message`` says what to change).
    """
    from regionmix_utils.evaluation.robustness import attack_configs, evaluate_run
    from regionmix_utils.train import resolve_device, train

    if study.gate_gap is None:
        return None
    device = resolve_device(device)
    plan = read_plan(runs_dir)
    if plan is None:
        config = study.pilot(dataset)
        train(config, runs_dir, data_dir, str(device), progress=progress)
        run = Run.of(runs_dir, config)
        final = run.metrics()[-1]
        gap = final["train_acc"] - final["test_acc"]
        plan = {
            "study": study.name,
            "pilot": {"run": str(run.path.relative_to(runs_dir)),
                      "train_acc": final["train_acc"], "test_acc": final["test_acc"], "gap": gap},
            "required_gap": study.gate_gap,
            "passed": gap >= study.gate_gap,
        }  # fmt: skip
        if plan["passed"] and study.primary_target is not None:
            records = evaluate_run(run, attack_configs(["fgsm"], list(study.fgsm_eps)), None,
                                   data_dir, device, progress)  # fmt: skip
            fgsm = {r["eps"]: r["accuracy"] for r in records if r["kind"] == "fgsm"}
            primary = _nearest_target(fgsm, study.primary_target)
            plan |= {
                "fgsm": {str(e): a for e, a in fgsm.items()},
                "primary_eps": primary,
                "rule": f"the ε of the FGSM sweep at which the no-mixing pilot's accuracy is "
                        f"nearest {study.primary_target:g}% (the smaller ε on a tie)",
                "sample_eps": study.sample_eps(primary),
            }  # fmt: skip
        plan["decided"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_text(Path(runs_dir) / PLAN, json.dumps(plan, indent=2) + "\n")
    if not plan["passed"]:
        raise StudyGateError(gate_message(plan))
    return plan


def evaluate_study_run(run: Run, study: Study, data_dir=None, device="cpu",
                       progress: bool = True, plan: dict | None = None) -> None:  # fmt: skip
    """Every evaluation ``study`` asks of one finished run, each stored in the run's
    ``eval.json`` (with its per-image predictions) as soon as it is made; evaluations
    already there are reused. ``plan`` (``run_pilot``) gives the primary ε."""
    from regionmix_utils.data import load_dataset
    from regionmix_utils.evaluation.calibration import evaluate_calibration
    from regionmix_utils.evaluation.corruptions import evaluate_corruptions
    from regionmix_utils.evaluation.robustness import attack_configs, evaluate_run

    entry = study.entry_of(run.config)
    evaluate_calibration(run, None, data_dir, device)
    config = run.config
    if study.noise_severities:
        test = load_dataset(config.dataset, data_dir, n_train=1, n_test=config.n_test).test
        evaluate_corruptions(
            run, ("gaussian_noise",), study.noise_severities, device=device, progress=progress,
            images_of=lambda _, severity: noise_images(test, severity, study.noise_seed),
        )  # fmt: skip
    primary = plan.get("primary_eps") if plan else None
    configs = study.attack_configs(primary) if entry.attacked else attack_configs(
        ["fgsm"], list(study.fgsm_eps))  # fmt: skip
    evaluate_run(run, configs, None, data_dir, device, progress)
    if entry.attacked and primary is not None:
        sample = attack_configs(["pgd"], plan["sample_eps"], steps=[study.pgd_steps], seed=0)
        evaluate_run(run, sample, study.sample_images, data_dir, device, progress)
    for kind, settings in study.evaluations:
        from regionmix_utils.evaluation.registry import evaluate

        evaluate(run, kind, None, data_dir, device, **dict(settings))


def run_study(
    study: Study,
    runs_dir: str | os.PathLike,
    data_dir=None,
    device: str = "auto",
    dataset: str | None = None,
    progress: bool = True,
    poll_s: float = 2.0,
) -> list[Run]:
    """Train and evaluate every run of ``study``, through the sweeps' run loop
    (``sweeps.sweep``, evaluating each run after it trains; start several processes on
    the same ``runs_dir`` to share the work: a run another process trains or evaluates
    is left for later). Everything resumes: a killed run from its last epoch, a run's
    evaluations from the last one stored. A run that fails is reported and the others
    go on; the study then raises.

    A study with a gate first trains its pilot and writes its plan (``run_pilot``);
    nothing else is trained before the gate has passed.

    Returns:
        The study's runs, all finished and evaluated.
    Raises:
        StudyGateError: the pilot's gate failed.
        RuntimeError: some run failed (its ``failed.json`` says why).
    """
    from regionmix_utils.sweeps import sweep
    from regionmix_utils.train import resolve_device

    dev = resolve_device(device)
    plan = run_pilot(study, runs_dir, data_dir, str(dev), dataset, progress)
    configs = study.configs(dataset)

    def evaluate(run: Run) -> None:
        evaluate_study_run(run, study, data_dir, dev, progress, plan)

    report = sweep(configs, runs_dir, data_dir, str(dev), progress, poll_s, after=evaluate)
    if not report.ok:
        raise RuntimeError(f"{len(report.failures)} run(s) of study {study.name!r} failed: "
                           + "; ".join(report.failures.values()))  # fmt: skip
    return [Run.of(runs_dir, c) for c in configs]


def record_timing(runs_dir: str | os.PathLike, started: float, workers: int) -> None:
    """Write one invocation's wall time so far into the runs folder's
    ``study-timing.json`` (its entry, found by its start time and process, is replaced:
    ``timed`` calls this as the invocation runs, so a kill loses at most a minute)."""
    file = Path(runs_dir) / TIMING
    entries = json.loads(file.read_text()) if file.exists() else []
    entry = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "workers": workers,
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "pid": os.getpid(),
    }
    same = [i for i, e in enumerate(entries)
            if (e["started"], e.get("pid")) == (entry["started"], entry["pid"])]  # fmt: skip
    if same:
        entries[same[0]] = entry
    else:
        entries.append(entry)
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(file, json.dumps(entries, indent=2) + "\n")


@contextlib.contextmanager
def timed(runs_dir: str | os.PathLike, workers: int, every_s: float = 60.0):
    """Time one invocation of a study: its entry in ``study-timing.json`` is written at
    once, every ``every_s`` seconds from a background thread, and at the end (also on an
    exception), so the study's wall time survives a kill at any moment."""
    started, stop = time.time(), threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            record_timing(runs_dir, started, workers)

    record_timing(runs_dir, started, workers)
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield started
    finally:
        stop.set()
        thread.join()
        record_timing(runs_dir, started, workers)


def study_timing(folder: str | os.PathLike) -> dict:
    """The study's wall time over all its invocations (a resumed study has several):
    {"seconds", "invocations", "cpus"}."""
    file = Path(folder) / TIMING
    entries = json.loads(file.read_text()) if file.exists() else []
    return {
        "seconds": sum(e["seconds"] for e in entries),
        "invocations": len(entries),
        "cpus": sorted({e.get("cpus") for e in entries} - {None}),
    }


# ------------------------------------------------------------------------ bundle


def export_bundle(study: Study, runs_dir: str | os.PathLike, out: str | os.PathLike,
                  dataset: str | None = None, data_dir=None) -> Path:  # fmt: skip
    """Copy the finished study under ``runs_dir`` into ``out`` as a bundle: per run its
    ``config.json`` (environment, history), ``metrics.jsonl``, ``eval.json`` and
    ``predictions.npz``, an ``exported.json`` marker, and for the entries marked
    ``weights`` the seed-0 final weights as a float16 state dict (``final.fp16.pt``).
    No checkpoints. The bundle's runs read like any runs folder (``find_runs``,
    ``collect_runs``, ``Run.load_model``). Where the runs record the CPU capability and
    thread count they trained with, ``reproduction.json`` (the first optimiser steps of
    one run, retrained here: the first run of ``study.reproduced`` trained with one
    thread; ``reproduction.write_reference``) lets any CPU check the bundle.

    Raises:
        FileNotFoundError: a run of the study is not finished.
    """
    from regionmix_utils.reproduction import write_reference

    out = Path(out)
    configs = study.configs(dataset)
    for config in configs:
        source = Run.of(runs_dir, config)
        if not source.finished:
            raise FileNotFoundError(f"{source.path} is not finished: run the study first")
        target = Run.of(out, config).path
        target.mkdir(parents=True, exist_ok=True)
        for name in (CONFIG, METRICS, EVALUATIONS, PREDICTIONS):
            shutil.copyfile(source.path / name, target / name)
        weights = study.entry_of(config).weights and config.seed == min(study.seeds)
        if weights:
            state = torch.load(source.path / "final.pt", map_location="cpu", weights_only=True)
            half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
            atomic_torch_save(half, target / WEIGHTS16)
        marker = {"study": study.name, "source": str(source.path), "weights": weights}
        atomic_write_text(target / EXPORTED, json.dumps(marker, indent=2) + "\n")
    for name in (TIMING, PLAN):
        if (Path(runs_dir) / name).exists():
            shutil.copyfile(Path(runs_dir) / name, out / name)
    # The reference run: of the study's ``reproduced`` method, the first trained with one
    # thread (its kernels are the easiest to match), else the first.
    exported = [Run.of(out, c) for c in configs]
    chosen = [r for r in exported if r.config.method == study.reproduced] or exported
    first = next((r for r in chosen if r.record.get("environment", {}).get("threads") == 1),
                 chosen[0])  # fmt: skip
    if "cpu_capability" in first.record.get("environment", {}):
        write_reference(out, first, data_dir=data_dir)
    return out
