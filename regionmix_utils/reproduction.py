"""Does a committed run retrain to its committed numbers here? A check for any CPU.

CPU training is deterministic, but bit for bit only for the same kernels and the same
split of their sums: the CPU's vector capability (``torch.backends.cpu.
get_cpu_capability()``, which picks the AVX-512 or the AVX2 kernels) and the thread
count. A results bundle therefore keeps, beside its runs, ``reproduction.json`` on one
of its runs: the capability and thread count its committed metrics were trained with
(``metrics_numerics``), and the losses of its first optimiser steps with the capability
and thread count that computed them (``first_steps``). ``check`` retrains the run here,
with the reference's thread count:

- **the first steps**, always: bit for bit where the capability and the torch version
  match ``first_steps``'s, to ``STEP_RTOL`` elsewhere. Other kernels sum in another order,
  and training is chaotic: a difference in the last bits grows with every step (the
  same run's epoch-1 test loss is 5.82 with the AVX-512 kernels and 8.67 with the AVX2
  ones). Measured on the committed no-mixing run with the AVX2 kernels against the
  unvectorised ones: step 1 identical, step 2 2e-6 apart (relative), step 3 7e-4, step
  5 2e-3. So the check takes the first ``N_STEPS`` = 2 at 1e-4. What it still sees: the
  seed, the data order and the augmentation (another seed moves step 1 by 9e-3, another
  padding by 6e-3), and the learning rate (10% lower moves step 2 by 2e-3); momentum
  and weight decay act too late to show in two steps.
- **the first ``N_EPOCHS`` epochs**, on the whole run's learning-rate schedule
  (``train(stop_after=...)``), bit for bit against the committed ``metrics.jsonl``,
  where the capability and the thread count match ``metrics_numerics``; elsewhere the
  comparison cannot apply, and ``check`` says why.
"""

from __future__ import annotations

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
from regionmix_utils.runs import NUMERICS_KEYS, Run

__all__ = [
    "N_EPOCHS",
    "N_STEPS",
    "REFERENCE",
    "STEP_RTOL",
    "Reproduction",
    "check",
    "first_step_losses",
    "numerics",
    "write_reference",
]

REFERENCE = "reproduction.json"  # in a bundle's root
N_STEPS = 2
STEP_RTOL = 1e-4  # relative, on each of the first N_STEPS losses across CPU kernels
N_EPOCHS = 2
_COMPARED = ("epoch", "lr", "train_loss", "train_clean_loss", "test_loss", "test_acc")


def numerics() -> dict:
    """This process's ``{"cpu_capability": ..., "threads": ...}`` (``runs.environment``)."""
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}  # fmt: skip


def first_step_losses(
    config: TrainConfig, n_steps: int | None = None, data_dir=None, splits: Splits | None = None
) -> list[float]:
    """The training loss (clean and mixed terms summed) of the run's first ``n_steps``
    optimiser steps of epoch 1, on the CPU, taken exactly as ``train`` takes them
    (None: ``N_STEPS``, or the epoch's steps where it has fewer).

    Raises:
        ValueError: n_steps < 1, or more than an epoch has.
    """
    from regionmix_utils.train import TrainingState, loaders, train_step, training_splits

    splits = training_splits(config, data_dir, splits)
    state = TrainingState.build(config, splits, torch.device("cpu"))
    state.check_mixing(splits)
    train_loader, _ = loaders(state, splits)
    if n_steps is None:
        n_steps = min(N_STEPS, len(train_loader))
    if not 1 <= n_steps <= len(train_loader):
        raise ValueError(f"n_steps must be in [1, {len(train_loader)}], got {n_steps}")
    state.start_epoch(1)
    state.model.train()
    return [float(train_step(state, images, labels).total.detach())
            for images, labels in itertools.islice(train_loader, n_steps)]  # fmt: skip


def write_reference(
    bundle: str | os.PathLike,
    run: Run,
    metrics_numerics: dict | None = None,
    data_dir=None,
    threads: int = 1,
) -> dict:
    """Write ``bundle / REFERENCE`` for ``run`` (a run of ``bundle``): its first steps'
    losses computed here with ``threads`` threads, and the numerics of its committed
    metrics: those its ``config.json`` environment records, or ``metrics_numerics``
    (``cpu_capability``, ``threads`` and a ``source`` saying how they are known) for
    runs that predate the record.

    Raises:
        ValueError: the run records no numerics and none are given.
    """
    recorded = {k: run.record.get("environment", {}).get(k) for k in NUMERICS_KEYS}
    if None in recorded.values():
        if metrics_numerics is None:
            raise ValueError(f"{run.path} records no CPU capability: give metrics_numerics")
        recorded = dict(metrics_numerics)
    else:
        recorded["source"] = "recorded in the run's config.json"
    with _threads(threads):
        first = {**numerics(), "torch": torch.__version__,
                 "losses": first_step_losses(run.config, data_dir=data_dir)}  # fmt: skip
    reference = {"run": Path(run.path).relative_to(bundle).as_posix(),
                 "metrics_numerics": recorded, "first_steps": first}  # fmt: skip
    atomic_write_text(Path(bundle) / REFERENCE, json.dumps(reference, indent=2) + "\n")
    return reference


@dataclass(frozen=True)
class Reproduction:
    """What ``check`` found.

    Attributes:
        steps: "bit for bit" or f"to {STEP_RTOL:g}" (how the first steps were compared).
        epochs_checked: whether the first epochs were compared with the committed ones;
            ``why_not`` says why not.
        problems: what differed (empty: it reproduced).
    """

    steps: str
    epochs_checked: bool
    why_not: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check(bundle: str | os.PathLike, data_dir=None, epochs: bool = True) -> Reproduction:
    """Retrain the bundle's reference run here with its thread count and compare (see
    the module docstring); ``epochs=False`` compares the first steps only.

    Raises:
        FileNotFoundError: the bundle has no ``reproduction.json``.
    """
    reference = json.loads((Path(bundle) / REFERENCE).read_text())
    run = Run(Path(bundle) / reference["run"])
    first, committed = reference["first_steps"], reference["metrics_numerics"]
    problems = []
    with _threads(first["threads"]):
        exact = (numerics()["cpu_capability"], torch.__version__) == (
            first["cpu_capability"], first["torch"])  # fmt: skip
        losses = first_step_losses(run.config, len(first["losses"]), data_dir)
    for step, (ours, theirs) in enumerate(zip(losses, first["losses"], strict=True), 1):
        if not (ours == theirs if exact else abs(ours - theirs) <= STEP_RTOL * abs(theirs)):
            problems.append(f"step {step}: loss {ours!r} here, {theirs!r} in the reference")
    with _threads(committed["threads"]):
        here = numerics()
        why_not = "" if epochs else "not asked"
        trained_with = run.record.get("environment", {}).get("torch", torch.__version__)
        if epochs and here != {k: committed[k] for k in NUMERICS_KEYS}:
            why_not = (f"the metrics were trained with {_text(committed)}, this machine has "
                       f"{_text(here)}: other kernels give other numbers bit for bit")  # fmt: skip
        elif epochs and trained_with != torch.__version__:
            why_not = f"the metrics were trained with torch {trained_with}, not {torch.__version__}"
        if not why_not:
            mismatch = _epoch_mismatch(run, data_dir)
            problems += [mismatch] if mismatch else []
    steps = "bit for bit" if exact else f"to {STEP_RTOL:g}"
    return Reproduction(steps, not why_not, why_not, tuple(problems))


def _text(numbers: dict) -> str:
    return f"the {numbers['cpu_capability']} kernels and {numbers['threads']} thread(s)"


def _epoch_mismatch(run: Run, data_dir) -> str:
    """ "" when the first ``N_EPOCHS`` epochs retrain (in a temporary folder) to the
    committed metrics bit for bit; what differs otherwise."""
    from regionmix_utils.train import train

    with tempfile.TemporaryDirectory() as folder:  # on the whole run's lr schedule
        result = train(run.config, folder, data_dir, "cpu", progress=False,
                       stop_after=min(N_EPOCHS, run.config.epochs))  # fmt: skip
    ours = [{k: m.get(k) for k in _COMPARED} for m in result.metrics]
    theirs = [{k: m.get(k) for k in _COMPARED} for m in run.metrics()[:N_EPOCHS]]
    return "" if ours == theirs else f"retrained {ours}, committed {theirs}"


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch threads, then restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
