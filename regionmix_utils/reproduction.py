"""Does a committed run retrain to its committed numbers here? A check for any CPU.

CPU training is bit for bit only on the same kernels (CPU capability) and thread count.
``reproduction.json`` keeps a run's metrics' numerics and first steps' losses; ``check``
retrains: ``N_STEPS`` steps always (bit for bit on the same capability and torch, else to
``STEP_RTOL``), ``N_EPOCHS`` epochs bit for bit where the numerics match. No mixing, AVX2 vs
unvectorised: step 1 identical, step 2 2e-6 apart, step 3 7e-4; two steps at 1e-4 still see
the seed (another: step 1 by 9e-3), data order, augmentation and lr (10% lower: 2e-3).
"""

import contextlib
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from regionmix_utils.config import TrainConfig
from regionmix_utils.data import Splits
from regionmix_utils.files import atomic_write_text
from regionmix_utils.runs import NUMERICS_KEYS, Run, cpu_kernels
from regionmix_utils.train import TrainingState, loaders, train, train_step, training_splits

REFERENCE = "reproduction.json"  # in a bundle's root
N_STEPS = 2
STEP_RTOL = 1e-4  # relative, on each of the first N_STEPS losses across CPU kernels
N_EPOCHS = 2
_COMPARED = ("epoch", "lr", "train_loss", "train_clean_loss", "test_loss", "test_acc")


def numerics() -> dict:
    """This process's ``{"cpu_capability": ..., "threads": ...}`` (``runs.environment``)."""
    return {"cpu_capability": cpu_kernels(), "threads": torch.get_num_threads()}


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def first_step_losses(config: TrainConfig, n_steps: int | None = None, data_dir=None,
                      splits: Splits | None = None) -> list[float]:  # fmt: skip
    """The loss of the first ``n_steps`` (None: ``N_STEPS``) CPU steps of ``train``.
    ValueError outside [1, steps of an epoch]."""
    splits = training_splits(config, data_dir, splits)
    state = TrainingState.build(config, splits, torch.device("cpu"))
    state.check_mixing(splits)
    train_loader, _ = loaders(state, splits)
    n_steps = min(N_STEPS, len(train_loader)) if n_steps is None else n_steps
    if not 1 <= n_steps <= len(train_loader):
        raise ValueError(f"n_steps must be in [1, {len(train_loader)}], got {n_steps}")
    state.start_epoch(1)
    state.model.train()
    return [float(train_step(state, images, labels).total.detach())
            for images, labels in itertools.islice(train_loader, n_steps)]  # fmt: skip


def write_reference(bundle: str | os.PathLike, run: Run, metrics_numerics: dict | None = None,
                    data_dir=None, threads: int = 1) -> dict:  # fmt: skip
    """Write ``bundle / REFERENCE``: ``run``'s first losses here on ``threads`` threads, its
    metrics' numerics from its config, else ``metrics_numerics``; ValueError if neither."""
    recorded = {k: run.record.get("environment", {}).get(k) for k in NUMERICS_KEYS}
    if None not in recorded.values():
        recorded["source"] = "recorded in the run's config.json"
    elif metrics_numerics is None:
        raise ValueError(f"{run.path} records no CPU capability: give metrics_numerics")
    else:
        recorded = dict(metrics_numerics)
    with _threads(threads):
        first = {**numerics(), "torch": torch.__version__,
                 "losses": first_step_losses(run.config, data_dir=data_dir)}  # fmt: skip
    reference = {"run": Path(run.path).relative_to(bundle).as_posix(),
                 "metrics_numerics": recorded, "first_steps": first}  # fmt: skip
    atomic_write_text(Path(bundle) / REFERENCE, json.dumps(reference, indent=2) + "\n")
    return reference


@dataclass(frozen=True)
class Reproduction:
    """``check``'s finding: steps "bit for bit" or "to 1e-4", epochs checked or why not."""

    steps: str
    epochs_checked: bool
    why_not: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _text(numbers: dict) -> str:
    return f"the {numbers['cpu_capability']} kernels and {numbers['threads']} thread(s)"


def check(bundle: str | os.PathLike, data_dir=None, epochs: bool = True) -> Reproduction:
    """Retrain the reference run here (``epochs`` False: steps only); FileNotFoundError."""
    reference = json.loads((Path(bundle) / REFERENCE).read_text())
    run = Run(Path(bundle) / reference["run"])
    first, committed = reference["first_steps"], reference["metrics_numerics"]
    problems = []
    with _threads(first["threads"]):
        exact = (cpu_kernels(), torch.__version__) == (first["cpu_capability"], first["torch"])
        losses = first_step_losses(run.config, len(first["losses"]), data_dir)
    for step, (ours, theirs) in enumerate(zip(losses, first["losses"], strict=True), 1):
        if not (ours == theirs if exact else abs(ours - theirs) <= STEP_RTOL * abs(theirs)):
            problems.append(f"step {step}: loss {ours!r} here, {theirs!r} in the reference")
    with _threads(committed["threads"]):
        here, why_not = numerics(), "" if epochs else "not asked"
        trained_with = run.record.get("environment", {}).get("torch", torch.__version__)
        if epochs and here != {k: committed[k] for k in NUMERICS_KEYS}:
            why_not = (f"the metrics were trained with {_text(committed)}, this machine has "
                       f"{_text(here)}: other kernels give other numbers bit for bit")  # fmt: skip
        elif epochs and trained_with != torch.__version__:
            why_not = f"the metrics were trained with torch {trained_with}, not {torch.__version__}"
        if not why_not:
            with tempfile.TemporaryDirectory() as folder:  # on the whole run's lr schedule
                result = train(run.config, folder, data_dir, "cpu", progress=False,
                               stop_after=min(N_EPOCHS, run.config.epochs))  # fmt: skip
            ours = [{k: m.get(k) for k in _COMPARED} for m in result.metrics]
            theirs = [{k: m.get(k) for k in _COMPARED} for m in run.metrics()[:N_EPOCHS]]
            if ours != theirs:
                problems.append(f"retrained {ours}, committed {theirs}")
    steps = "bit for bit" if exact else f"to {STEP_RTOL:g}"
    return Reproduction(steps, not why_not, why_not, tuple(problems))
