"""Studies: a named set of runs and the evaluations of each, defined in one place.

A study is data: the recipe (the paper's, scaled), the configurations, the seeds, and
what each finished run is evaluated on. ``run_study`` trains and evaluates it, resuming
where it stopped (each run resumes from its last epoch, each evaluation is stored as soon
as it is made); ``export_bundle`` copies what a reader needs (configs with their
environment and history, metrics, evaluation records, per-image predictions, and the
float16 weights of chosen runs) into a small folder that can be committed; the report
(``regionmix_utils.report``) is generated from that folder.

``cpu-reference`` is the study the project commits: PreAct ResNet-18 at width 16 on the
real CIFAR-10 images at hand (the 5,085 + 1,017 image subset, or the same design sampled
from the full download), 12 epochs with the learning rate divided by 10 at the paper's
proportions of its schedule (epochs 100 and 150 of 400 -> after epochs 3 and 5 of 12),
3 seeds; Table 1's methods with no mixing and random grids beside them, Table 2's runs
without the clean CE term, 500 training images held out for temperature scaling.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from regionmix_utils.claims import NO_CE, Claim, paper_claims
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
    RunBusyError,
)

__all__ = [
    "CPU_REFERENCE",
    "SAMPLED_FROM",
    "STUDIES",
    "TIMING",
    "Entry",
    "Study",
    "evaluate_study_run",
    "export_bundle",
    "find_bundle",
    "get_study",
    "noise_images",
    "record_timing",
    "run_study",
    "study_timing",
]

TIMING = "study-timing.json"  # in the runs folder: each invocation's wall time


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
            PGD-``pgd_steps`` (8/255 only: each ε of PGD-10 costs ten FGSMs, and on two
            CPU cores a sweep of it would take a third of the study's time).
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
            sizes = SAMPLED_FROM[dataset]
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
            if (entry.method, entry.clean_ce) == (config.method, config.clean_ce) and all(
                getattr(config, k) == v for k, v in entry.settings
            ):
                return entry
        raise ValueError(f"{config} is not a run of study {self.name!r}")

    def attack_configs(self) -> list:
        from regionmix_utils.evaluation.robustness import attack_configs

        return [
            *attack_configs(["fgsm"], list(self.fgsm_eps)),
            *attack_configs(["pgd"], list(self.pgd_eps), steps=[self.pgd_steps], seed=0),
            *attack_configs(["square"], [self.square_eps], queries=self.square_queries, seed=0),
        ]

    def family(self) -> list[Claim]:
        """The claims its report judges together: the paper's claims about the study's
        dataset (``results.PAPER_DATASET``), then its own, each with the study's
        ``effect`` where it declares none."""
        from regionmix_utils.results import PAPER_DATASET

        on = {self.dataset, PAPER_DATASET.get(self.dataset)}
        found = [c for c in paper_claims() if c.dataset in on] + list(self.claims)
        return [c if c.effect is not None or self.effect is None
                else dataclasses.replace(c, effect=self.effect) for c in found]  # fmt: skip

    def describe(self) -> str:
        """One line for labels: what the runs are."""
        return (f"{self.title}, PreAct ResNet-18 width {self.width}, {self.epochs} epochs, "
                f"{len(self.seeds)} seeds, CPU")  # fmt: skip


# The full dataset sampled to the subset's sizes: 5,085 training images (500 held out)
# and 1,017 test images, class-stratified.
SAMPLED_FROM = {"cifar10": {"n_train": 4585, "n_test": 1017}}

CPU_REFERENCE = Study(
    name="cpu-reference",
    title="reference runs: real CIFAR-10, 5,085 images",
    dataset="cifar10-subset",
    bundle="results/cifar10-cpu-reference",
    entries=(
        Entry("none", weights=True),
        Entry("mixup", (("alpha", 1.0),), weights=True),
        Entry("cutmix", (("alpha", 1.0),), weights=True),
        Entry("region", (("k", 2), ("alpha", 1.0)), weights=True),
        Entry("region-random", (("sides", (1, 2, 4)), ("alpha", 1.0)), weights=True),
        Entry("mixup", (("alpha", 1.0),), clean_ce=False, attacked=False),
        Entry("region", (("k", 2), ("alpha", 1.0)), clean_ce=False, attacked=False),
    ),
    claims=tuple(
        Claim("cifar10-subset", method, method + NO_CE, "clean", source="cpu-reference")
        for method in ("region", "mixup")
    ),
    effect=2.0,
    claims_note=(
        "This study was run before claims were declared in advance: its own two claims "
        "(each method with the clean CE term above the same method without it, the "
        "direction of the paper's Table 2) and the 2-point effect its planner plans for "
        "were written down after its runs were evaluated. They are judged in the same "
        "family as the paper's claims, so that Holm's correction counts them."
    ),
)
STUDIES = {CPU_REFERENCE.name: CPU_REFERENCE}


def get_study(name: str) -> Study:
    """The study registered under ``name``; an unknown name is an error naming them."""
    if name not in STUDIES:
        raise ValueError(f"study must be one of {sorted(STUDIES)}, got {name!r}")
    return STUDIES[name]


def find_bundle(study: Study | str = "cpu-reference") -> Path | None:
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


def evaluate_study_run(run: Run, study: Study, data_dir=None, device="cpu",
                       progress: bool = True) -> None:  # fmt: skip
    """Every evaluation ``study`` asks of one finished run, each stored in the run's
    ``eval.json`` (with its per-image predictions) as soon as it is made; evaluations
    already there are reused."""
    from regionmix_utils.data import load_dataset
    from regionmix_utils.evaluation.calibration import evaluate_calibration
    from regionmix_utils.evaluation.corruptions import evaluate_corruptions
    from regionmix_utils.evaluation.robustness import attack_configs, evaluate_run

    entry = study.entry_of(run.config)
    evaluate_calibration(run, None, data_dir, device)
    config = run.config
    test = load_dataset(config.dataset, data_dir, n_train=1, n_test=config.n_test).test
    evaluate_corruptions(
        run, ("gaussian_noise",), study.noise_severities, device=device, progress=progress,
        images_of=lambda _, severity: noise_images(test, severity, study.noise_seed),
    )  # fmt: skip
    configs = study.attack_configs() if entry.attacked else attack_configs(
        ["fgsm"], list(study.fgsm_eps))  # fmt: skip
    evaluate_run(run, configs, None, data_dir, device, progress)


def run_study(
    study: Study,
    runs_dir: str | os.PathLike,
    data_dir=None,
    device: str = "auto",
    dataset: str | None = None,
    progress: bool = True,
    poll_s: float = 2.0,
) -> list[Run]:
    """Train and evaluate every run of ``study`` (one after another; start several
    processes on the same ``runs_dir`` to share the work: a run another process trains
    or evaluates is left for later). Everything resumes: a killed run from its last
    epoch, a run's evaluations from the last one stored.

    Returns:
        The study's runs, all finished and evaluated.
    """
    from regionmix_utils.progress import progress as progress_bar
    from regionmix_utils.train import resolve_device, train

    dev = resolve_device(device)
    configs = study.configs(dataset)
    pending, done = list(configs), []
    bar = progress_bar(total=len(configs), desc=f"study {study.name}", disable=not progress)
    while pending:
        busy = []
        for config in pending:
            run = Run.of(runs_dir, config)
            try:
                train(config, runs_dir, data_dir, str(dev), progress=progress)
                with run.claimed(wait_s=0.1):  # one process evaluates a run at a time
                    evaluate_study_run(run, study, data_dir, dev, progress)
            except RunBusyError:
                busy.append(config)
                continue
            done.append(run)
            bar.update(1)
        if busy and len(busy) == len(pending):
            time.sleep(poll_s)
        pending = busy
    bar.close()
    return [Run.of(runs_dir, c) for c in configs]


def record_timing(runs_dir: str | os.PathLike, started: float, workers: int) -> None:
    """Append one invocation's wall time to the runs folder's ``study-timing.json``."""
    file = Path(runs_dir) / TIMING
    entries = json.loads(file.read_text()) if file.exists() else []
    entries.append({
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "workers": workers,
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
    })  # fmt: skip
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(file, json.dumps(entries, indent=2) + "\n")


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
    ``collect_runs``, ``Run.load_model``). Where the first run records the CPU
    capability and thread count it trained with, ``reproduction.json`` (its first
    optimiser steps, retrained here: ``reproduction.write_reference``) lets any CPU
    check the bundle.

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
    timing = Path(runs_dir) / TIMING
    if timing.exists():
        shutil.copyfile(timing, out / TIMING)
    first = Run.of(out, configs[0])
    if "cpu_capability" in first.record.get("environment", {}):
        write_reference(out, first, data_dir=data_dir)
    return out
