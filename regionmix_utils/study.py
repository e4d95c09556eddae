"""Studies: named sets of runs, their evaluations and declared claims, as data; a gated
pilot, resumable training, a committable bundle. Explanatory prose: ``templates/<name>.md``."""

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from regionmix_utils import runs
from regionmix_utils.claims import MATCHED, NO_CE, Claim, paper_claims
from regionmix_utils.config import TrainConfig
from regionmix_utils.data import ImageSet, load_dataset
from regionmix_utils.evaluation import calibration, corruptions, masking, robustness
from regionmix_utils.evaluation.registry import evaluate
from regionmix_utils.files import atomic_torch_save, atomic_write_text
from regionmix_utils.registry import Registry
from regionmix_utils.reproduction import write_reference
from regionmix_utils.results import PAPER_DATASET
from regionmix_utils.sweeps import sweep
from regionmix_utils.train import resolve_device, train

TIMING = "study-timing.json"  # in the runs folder: each invocation's wall time
PLAN = "study-plan.json"  # in the runs folder: the pilot's gate and primary ε; the sealed plan
PRIMARY_EPS = "primary"  # a claim's ε that the pilot chooses (``Study.primary_target``)
SAMPLED_FROM = {"cifar10": {"n_train": 4585, "n_test": 1017}}
TEMPLATES = Path(__file__).with_name("templates")


class StudyGateError(RuntimeError):
    """The pilot found nothing for mixing to regularise: the study stops."""


class UncommittedError(RuntimeError):
    """A study trained or exported from code with no commit, without ``allow_uncommitted``."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """A configuration; ``attacked``: by PGD and Square; ``weights``: its first seed's bundled."""

    method: str
    settings: tuple[tuple[str, object], ...] = ()
    clean_ce: bool = True
    attacked: bool = True
    weights: bool = False


@dataclasses.dataclass(frozen=True)
class Study:
    """A study: the scaled recipe, entries, seeds, evaluations and claims (Holm within each family
    declared together). ε in pixel units; ``bundle``, ``report``: from the repository root;
    ``effect`` (points) where a claim declares none; ``gate_gap``: points the pilot's train accuracy
    must exceed its test one (None: no pilot); the primary ε: the ``fgsm_eps`` where its FGSM
    accuracy is nearest ``primary_target`` (%); ``evaluations``: every run's (kind, settings)."""

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
    noise_severities: tuple[int, ...] = corruptions.SEVERITIES
    noise_seed: int = 0
    bundle: str | None = None
    claims: tuple[Claim, ...] = ()
    effect: float | None = None
    claims_note: str = ""
    with_paper_claims: bool = True
    lr_schedule: str = "step"
    gate_gap: float | None = None
    primary_target: float | None = None
    sample_images: int = 500
    evaluations: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()
    replaces: str = ""
    reproduced: str | None = None
    report: str = "docs/reference-study.md"

    def configs(self, dataset: str | None = None) -> list[TrainConfig]:
        """Every run, entry by entry, seed by seed; ``dataset``: one of ``SAMPLED_FROM``."""
        dataset = dataset or self.dataset
        sizes = {"n_train": self.n_train, "n_test": self.n_test}
        if dataset != self.dataset:
            if dataset not in SAMPLED_FROM:
                raise ValueError(f"dataset must be {self.dataset!r} or one of "
                                 f"{sorted(SAMPLED_FROM)}, got {dataset!r}")  # fmt: skip
            sizes = {k: getattr(self, k) or v for k, v in SAMPLED_FROM[dataset].items()}
        return [TrainConfig(dataset=dataset, method=entry.method, clean_ce=entry.clean_ce,
                            seed=seed, epochs=self.epochs, milestones=self.milestones,
                            width=self.width, holdout=self.holdout, lr_schedule=self.lr_schedule,
                            amp=False, channels_last=False, **sizes, **dict(entry.settings))
                for entry in self.entries for seed in self.seeds]  # fmt: skip

    def entry_of(self, config: TrainConfig) -> Entry:
        """The entry a run of this study belongs to."""
        for entry in self.entries:
            wanted = {"method": entry.method, "clean_ce": entry.clean_ce, "matched_compute": False}
            if all(getattr(config, k) == v for k, v in (wanted | dict(entry.settings)).items()):
                return entry
        raise ValueError(f"{config} is not a run of study {self.name!r}")

    def attack_configs(self, primary_eps: float | None = None, attacked: bool = True) -> list:
        """The FGSM sweep, then if ``attacked`` PGD and Square at ``primary_eps`` (None: theirs)."""
        attacks, at = robustness.attack_configs, None if primary_eps is None else [primary_eps]
        configs = attacks(["fgsm"], list(self.fgsm_eps))
        if attacked:
            configs += attacks(["pgd"], at or list(self.pgd_eps), steps=[self.pgd_steps], seed=0)
            configs += attacks(["square"], at or [self.square_eps], queries=self.square_queries,
                               seed=0)  # fmt: skip
        return configs

    def sample_eps(self, primary_eps: float) -> list[float]:
        """PGD's ε on the sample: the sweep's nearest each side of ``primary_eps``, and 64/255."""
        others = sorted(e for e in self.fgsm_eps if abs(e - primary_eps) > 1e-9)
        near = [e for e in others if e < primary_eps][-1:]
        near += [e for e in others if e > primary_eps][:1]
        if len(near) < 2:
            near = sorted(others, key=lambda e: abs(e - primary_eps))[:2]
        return [*sorted(near), masking.UNBOUNDED_EPS]

    def family(self, primary_eps: float | None = None, plan: dict | None = None) -> list[Claim]:
        """The paper's claims on its dataset (if ``with_paper_claims``), then its own, at
        ``primary_eps`` (default the ``plan``'s) where declared at ``PRIMARY_EPS`` (ValueError
        if None); a claim in the plan's sealed family is declared when it was sealed."""
        primary_eps = plan.get("primary_eps") if primary_eps is None and plan else primary_eps
        on = {self.dataset, PAPER_DATASET.get(self.dataset)}
        found = [c for c in paper_claims() if c.dataset in on] if self.with_paper_claims else []
        found += [_at_primary(c, primary_eps) for c in self.claims]
        found = [c if c.effect is not None or self.effect is None
                 else dataclasses.replace(c, effect=self.effect) for c in found]  # fmt: skip
        if sealed := (plan or {}).get("sealed"):
            entries = [json.dumps(e, sort_keys=True) for e in sealed["claims"]]
            found = [dataclasses.replace(c, declared=sealed["time"]
                                         if json.dumps(c.plan_entry(), sort_keys=True) in entries
                                         else None) for c in found]  # fmt: skip
        return found

    def describe(self) -> str:
        """One line: what the runs are."""
        return (f"{self.title}, PreAct ResNet-18 width {self.width}, {self.epochs} epochs, "
                f"{len(self.seeds)} seeds, CPU")  # fmt: skip

    def pilot(self, dataset: str | None = None) -> TrainConfig:
        """The gate's pilot: the first seed of the study's no-mixing entry."""
        found = next((c for c in self.configs(dataset) if c.method == "none"), None)
        if found is None:
            raise ValueError(f"study {self.name!r} has no no-mixing entry to pilot")
        return found


def _at_primary(claim: Claim, primary_eps: float | None) -> Claim:
    if ("eps", PRIMARY_EPS) not in claim.settings:
        return claim
    if primary_eps is None:
        raise ValueError(f"claim {claim.text} ({claim.kind}) is declared at the primary ε: "
                         "pass primary_eps (the study's plan, read_plan, holds it)")  # fmt: skip
    settings = tuple((k, primary_eps if v == PRIMARY_EPS else v) for k, v in claim.settings)
    return dataclasses.replace(claim, settings=settings)


def prose(name: str) -> dict[str, str]:
    """The "## section" paragraphs of ``templates/<name>.md`` (empty when there is none)."""
    file = TEMPLATES / f"{name}.md"
    parts = re.split(r"^## (\w+)\n", file.read_text(), flags=re.M) if file.exists() else [""]
    return {key: text.strip() for key, text in zip(parts[1::2], parts[2::2], strict=True)}


def _gated_claims(name: str) -> tuple[Claim, ...]:
    """Region Mixup > CutMix, Mixup (FGSM, Square-100); > no clean CE; mixing > none: first
    recorded in commit 589a5f5 (its time below), no sealed plan then; then the paper's
    Table 1 on clean accuracy, added once every run had been evaluated."""
    at = (("eps", PRIMARY_EPS),)
    attacks = (("fgsm", at), ("square", (*at, ("queries", 100))))
    sides = [("region", b, kind, s) for kind, s in attacks for b in ("cutmix", "mixup")]
    sides += [("region", "region" + arm, "clean", ()) for arm in (NO_CE, MATCHED)]
    sides += [(a, "none", "clean", ()) for a in ("mixup", "cutmix", "region")]
    later = [("region", b, "clean", ()) for b in ("cutmix", "mixup")]
    return tuple(Claim("cifar10-subset", *side, source=name, declared=declared)
                 for group, declared in ((sides, "2026-12-02T07:48:18+00:00"),
                                         (later, "2026-12-06T20:45:00+00:00"))
                 for side in group)  # fmt: skip


def _confirm_claims(name: str) -> tuple[Claim, ...]:
    """Region Mixup > without the clean CE term, > the two-mixed-pass arm, > Mixup, > CutMix
    (clean accuracy); > without the clean CE term after BatchNorm recalibration."""
    sides = [("region" + NO_CE, "clean"), ("region" + MATCHED, "clean"), ("mixup", "clean"),
             ("cutmix", "clean"), ("region" + NO_CE, "recalibrated")]  # fmt: skip
    return tuple(Claim("cifar10-subset", "region", b, kind, source=name) for b, kind in sides)


_REGION = (("k", 2), ("alpha", 1.0))
_PROSE, _GATE = prose("cpu-gated"), prose("gate")
STUDIES: Registry[Study] = Registry("study")
CPU_GATED = STUDIES.register(Study(
    name="cpu-gated", title="reference runs: real CIFAR-10, 2,000 training images",
    dataset="cifar10-subset", bundle="results/cifar10-cpu-gated",
    entries=(
        Entry("none", weights=True),
        Entry("mixup", (("alpha", 1.0),), weights=True),
        Entry("cutmix", (("alpha", 1.0),), weights=True),
        Entry("region", _REGION, weights=True),
        Entry("region", _REGION, clean_ce=False, attacked=False),
        Entry("region", (*_REGION, ("matched_compute", True)), clean_ce=False, attacked=False),
    ),
    seeds=(0, 1, 2, 3, 4), epochs=20, lr_schedule="hold-cosine", n_train=2000,
    noise_severities=(), gate_gap=10.0, primary_target=30.0, with_paper_claims=False,
    claims=_gated_claims("cpu-gated"), effect=2.0, reproduced="region",
    claims_note=_PROSE["claims_note"], replaces=_PROSE["replaces"]))  # fmt: skip
CPU_CONFIRM = STUDIES.register(Study(
    name="cpu-confirm", title="a confirmatory replication of cpu-gated: its recipe, fresh seeds",
    dataset="cifar10-subset", bundle="results/cifar10-cpu-confirm", report="docs/replication.md",
    entries=tuple(dataclasses.replace(e, attacked=False, weights=True)
                  for e in CPU_GATED.entries if e.method != "none"),
    seeds=tuple(range(5, 15)), epochs=20, lr_schedule="hold-cosine", n_train=2000,
    fgsm_eps=(), noise_severities=(), with_paper_claims=False, evaluations=(("recalibrated", ()),),
    claims=_confirm_claims("cpu-confirm"), effect=2.0, reproduced="region",
    claims_note=prose("cpu-confirm")["claims_note"]))  # fmt: skip
get_study = STUDIES.get


def find_bundle(study: Study | str = "cpu-gated") -> Path | None:
    """``$REGIONMIX_REFERENCE``, else the study's bundle in this repository, else None."""
    study = get_study(study) if isinstance(study, str) else study
    if os.environ.get("REGIONMIX_REFERENCE"):
        return Path(os.environ["REGIONMIX_REFERENCE"])
    found = Path(__file__).resolve().parents[1] / study.bundle if study.bundle else None
    return found if found and found.is_dir() else None


def noise_images(test: ImageSet, severity: int, seed: int = 0) -> ImageSet:
    """``test`` (uint8 [N, 3, H, W]) under CIFAR-10-C's Gaussian noise, the same for every run."""
    generator = torch.Generator().manual_seed(1000 * seed + severity)
    noisy = corruptions.gaussian_noise(test.images, severity, generator)
    return ImageSet(noisy, test.labels, test.classes)


def read_plan(folder: str | os.PathLike) -> dict | None:
    """The plan a study's pilot wrote in ``folder`` (a runs folder or a bundle), or None."""
    return _read_json(Path(folder) / PLAN, None)


def study_plan(study: Study, folder: str | os.PathLike) -> dict | None:
    """``read_plan``; FileNotFoundError for a gated study without one."""
    plan = read_plan(folder)
    if plan is None and study.gate_gap is not None:
        raise FileNotFoundError(f"{folder} has no {PLAN}: a study with a gate keeps its "
                                "pilot's plan with its runs (export_bundle copies it)")  # fmt: skip
    return plan


def plan_hash(plan: dict) -> str:
    """The first 16 hex digits of the SHA-256 of ``plan`` less its ``hash`` (sorted JSON)."""
    text = json.dumps({k: v for k, v in plan.items() if k != "hash"}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_code(action: str, allow_uncommitted: bool) -> dict:
    """``code_identity``; UncommittedError when it has no commit and that is not allowed."""
    code = runs.code_identity()
    if code["commit"] is None and not allow_uncommitted:
        raise UncommittedError(f"{action} from code with no git commit (a copy, not a "
                               "checkout): run it from a clone, or pass --allow-uncommitted, "
                               "which the plan and the bundle then record")  # fmt: skip
    return code


def seal_plan(study: Study, runs_dir: str | os.PathLike, dataset: str | None = None,
              allow_uncommitted: bool = False, level: float = 0.05) -> dict:  # fmt: skip
    """Add the sealed section to the study's plan (``PLAN``) before any run but the pilot
    starts, or read it back: the claims (sides, metric and ε, direction, sidedness, effect),
    the test, ``level`` and Holm's correction, the seeds, the code (``code_identity``), the
    time; then ``hash`` (``plan_hash``), which every run of the study carries in its config.
    ValueError: runs started before it; UncommittedError (``_check_code``)."""
    plan = read_plan(runs_dir) or {"study": study.name}
    if "sealed" in plan:
        return plan
    code = _check_code(f"sealing study {study.name!r}", allow_uncommitted)
    pilot = study.pilot(dataset) if study.gate_gap is not None else None
    begun = [str(runs.run_dir(runs_dir, c)) for c in study.configs(dataset)
             if c != pilot and (runs.run_dir(runs_dir, c) / runs.CONFIG).exists()]  # fmt: skip
    if begun:
        raise ValueError(f"{len(begun)} run(s) of study {study.name!r} began before its plan "
                         f"was sealed (e.g. {begun[0]}): their claims can only be exploratory; "
                         "seal into an empty runs folder")  # fmt: skip
    plan["sealed"] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "claims": [c.plan_entry() for c in study.family(plan=plan)],
        "test": "paired t-test over seeds (n - 1 df) on each claim's per-seed Δ, as its "
                "'sided' says; the exact sign-flip p beside it",
        "level": level, "correction": "holm", "effect": study.effect, "power": 0.8,
        "seeds": list(study.seeds), "runs": len(study.configs(dataset)), "code": code}  # fmt: skip
    plan["hash"] = plan_hash(plan)
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(runs_dir) / PLAN, json.dumps(plan, indent=2) + "\n")
    return plan


def gate_message(plan: dict) -> str:
    """One paragraph: what the gate measured, and what to change when it failed."""
    said = _GATE["said"].format(**plan["pilot"], required_gap=plan["required_gap"])
    return _GATE["passed" if plan["passed"] else "failed"].format(said=said)


def run_pilot(study: Study, runs_dir: str | os.PathLike, data_dir=None, device: str = "auto",
              dataset: str | None = None, progress: bool = True) -> dict | None:  # fmt: skip
    """Train the pilot, apply the gate, choose the primary ε and write ``PLAN`` (or read it);
    None without a gate. StudyGateError when the gate fails."""
    if study.gate_gap is None:
        return None
    device = resolve_device(device)
    plan = read_plan(runs_dir)
    if plan is None:
        config = study.pilot(dataset)
        run = runs.Run(train(config, runs_dir, data_dir, str(device), progress=progress).path)
        final = run.metrics()[-1]
        gap = final["train_acc"] - final["test_acc"]
        pilot = {"run": str(run.path.relative_to(runs_dir)), "train_acc": final["train_acc"],
                 "test_acc": final["test_acc"], "gap": gap}  # fmt: skip
        plan = {"study": study.name, "pilot": pilot, "required_gap": study.gate_gap,
                "passed": gap >= study.gate_gap}  # fmt: skip
        if plan["passed"] and study.primary_target is not None:
            fgsm_sweep = study.attack_configs(attacked=False)
            records = robustness.evaluate_run(run, fgsm_sweep, None, data_dir, device, progress)
            fgsm = {r["eps"]: r["accuracy"] for r in records if r["kind"] == "fgsm"}
            distance = {e: abs(a - study.primary_target) for e, a in fgsm.items()}
            # ties within 1e-9: 34.88 and 25.12 are not equally far from 30 in floats
            primary = min(e for e, d in distance.items() if d <= min(distance.values()) + 1e-9)
            plan |= {"fgsm": {str(e): a for e, a in fgsm.items()}, "primary_eps": primary,
                     "rule": f"the ε of the FGSM sweep at which the no-mixing pilot's accuracy "
                             f"is nearest {study.primary_target:g}% (the smaller ε on a tie)",
                     "sample_eps": study.sample_eps(primary)}  # fmt: skip
        plan["decided"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_text(Path(runs_dir) / PLAN, json.dumps(plan, indent=2) + "\n")
    if not plan["passed"]:
        raise StudyGateError(gate_message(plan))
    return plan


def run_study(study: Study, runs_dir: str | os.PathLike, data_dir=None, device: str = "auto",
              dataset: str | None = None, progress: bool = True, poll_s: float = 2.0,
              allow_uncommitted: bool = False) -> list[runs.Run]:  # fmt: skip
    """Train and evaluate every run after the gate and the sealed plan (``seal_plan``) via
    ``sweeps.sweep`` (resumes, shares one ``runs_dir``). StudyGateError: the gate failed;
    UncommittedError; RuntimeError: some run failed."""
    dev = resolve_device(device)
    run_pilot(study, runs_dir, data_dir, str(dev), dataset, progress)
    plan = seal_plan(study, runs_dir, dataset, allow_uncommitted)
    configs = [dataclasses.replace(c, plan=plan["hash"]) for c in study.configs(dataset)]
    primary = plan.get("primary_eps")

    def after(run: runs.Run) -> None:  # every evaluation of a finished run (stored ones reused)
        entry, config = study.entry_of(run.config), run.config
        calibration.evaluate_calibration(run, None, data_dir, dev)
        if study.noise_severities:
            test = load_dataset(config.dataset, data_dir, n_train=1, n_test=config.n_test).test
            corruptions.evaluate_corruptions(
                run, ("gaussian_noise",), study.noise_severities, device=dev, progress=progress,
                images_of=lambda _, severity: noise_images(test, severity, study.noise_seed),
            )  # fmt: skip
        if attacks := study.attack_configs(primary, entry.attacked):
            robustness.evaluate_run(run, attacks, None, data_dir, dev, progress)
        if entry.attacked and primary is not None:
            pgd = robustness.attack_configs(["pgd"], plan["sample_eps"], [study.pgd_steps], seed=0)
            robustness.evaluate_run(run, pgd, study.sample_images, data_dir, dev, progress)
        for kind, settings in study.evaluations:
            evaluate(run, kind, None, data_dir, dev, **dict(settings))

    report = sweep(configs, runs_dir, data_dir, str(dev), progress, poll_s, after=after)
    if not report.ok:
        raise RuntimeError(f"{len(report.failures)} run(s) of study {study.name!r} failed: "
                           + "; ".join(report.failures.values()))  # fmt: skip
    return [runs.Run.of(runs_dir, c) for c in configs]


def _read_json(file: Path, default):
    return json.loads(file.read_text()) if file.exists() else default


@contextlib.contextmanager
def timed(runs_dir: str | os.PathLike, workers: int, every_s: float = 60.0):
    """Time one invocation into ``TIMING`` now, every ``every_s`` s (a kill loses at most that)
    and at the end."""
    started, stop, file = time.time(), threading.Event(), Path(runs_dir) / TIMING
    entry = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
             "seconds": 0.0, "workers": workers, "host": socket.gethostname(),
             "cpus": os.cpu_count(), "pid": os.getpid()}  # fmt: skip

    def record() -> None:
        entry["seconds"] = round(time.time() - started, 1)
        others = [e for e in _read_json(file, []) if (e["started"], e.get("pid")) !=
                  (entry["started"], entry["pid"])]  # fmt: skip
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(file, json.dumps([*others, entry], indent=2) + "\n")

    def beat() -> None:
        while not stop.wait(every_s):
            record()

    record()
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield started
    finally:
        stop.set()
        thread.join()
        record()


def study_timing(folder: str | os.PathLike) -> dict:
    """The wall time over all invocations: {"seconds", "invocations", "cpus", "reconstructed"
    (the notes of invocations timed after the fact, not as they ran)}."""
    entries = _read_json(Path(folder) / TIMING, [])
    return {"seconds": sum(e["seconds"] for e in entries), "invocations": len(entries),
            "cpus": sorted({e.get("cpus") for e in entries} - {None}),
            "reconstructed": [(e["seconds"], e["reconstructed"]) for e in entries
                              if "reconstructed" in e]}  # fmt: skip


def export_bundle(study: Study, runs_dir: str | os.PathLike, out: str | os.PathLike,
                  dataset: str | None = None, data_dir=None,
                  allow_uncommitted: bool = False) -> Path:  # fmt: skip
    """Copy the finished study into ``out`` without checkpoints (float16 weights of ``weights``
    entries' first seed), ``reproduction.json`` on a one-thread run of ``study.reproduced``;
    each run's ``EXPORTED`` marker records the exporting code (``code_identity``).
    FileNotFoundError: a run not finished; UncommittedError (``_check_code``)."""
    out, code = Path(out), _check_code(f"exporting study {study.name!r}", allow_uncommitted)
    configs = study.configs(dataset)
    for config in configs:
        source, target = runs.Run.of(runs_dir, config), runs.run_dir(out, config)
        if not source.finished:
            raise FileNotFoundError(f"{source.path} is not finished: run the study first")
        target.mkdir(parents=True, exist_ok=True)
        for name in (runs.CONFIG, runs.METRICS, runs.EVALUATIONS, runs.PREDICTIONS):
            shutil.copyfile(source.path / name, target / name)
        weights = study.entry_of(config).weights and config.seed == min(study.seeds)
        if weights:
            state = torch.load(source.path / "final.pt", map_location="cpu", weights_only=True)
            half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
            atomic_torch_save(half, target / runs.WEIGHTS16)
        marker = {"study": study.name, "source": str(source.path), "weights": weights, "code": code}
        atomic_write_text(target / runs.EXPORTED, json.dumps(marker, indent=2) + "\n")
    for name in (TIMING, PLAN):
        if (Path(runs_dir) / name).exists():
            shutil.copyfile(Path(runs_dir) / name, out / name)
    pool = [runs.Run.of(out, c) for c in configs]  # the reference run's candidates
    pool = [r for r in pool if r.config.method == study.reproduced] or pool
    first = next((r for r in pool if r.record.get("environment", {}).get("threads") == 1), pool[0])
    if "cpu_capability" in first.record.get("environment", {}):
        write_reference(out, first, data_dir=data_dir)
    return out
