"""Every GPU check in one script, inside a time budget on one GPU; each row is printed (and
flushed) the moment it is measured, so a run stopped by a timeout keeps what it measured.

On synthetic CIFAR-sized data (50,000 uint8 32x32 training images, 10,000 test images,
10 classes; Tiny ImageNet-sized for its row) and the real CIFAR-10 subset in
``../shared/data`` where it is present. Sections, in the order they run:

- sync: no device-to-host sync inside a training step, for every registered method on
  every AMP path asked for (default: bf16 and fp16 + GradScaler where the GPU has
  native bf16, fp16 + GradScaler on older GPUs such as the T4), with
  ``torch.cuda.set_sync_debug_mode("error")`` around the checked steps; and the one-call
  mixing functions on CUDA tensors;
- epoch: epoch time at paper width (PreAct ResNet-18, width 64, batch 128) for none /
  mixup / cutmix / region k=2 / region-random, channels_last, in the trainer's AMP mode
  (or those asked for); the implied 400-epoch CIFAR-10 run (goal <= 20 minutes on an
  H100-class GPU) and the whole paper (27 runs + 9 for Table 2);
- epoch-compiled: the same with torch.compile, apart, so that a compile failure costs
  only these rows;
- real-epoch: one real epoch of the trainer (``train``), with its checkpoint: the
  epoch's time, the checkpoint's size and write time, and what each checkpoint
  interval costs (``--runs-dir`` points it at Google Drive, say);
- mixing: one mixing call against k (1, 2, 4, 8) and against torchvision's v2.MixUp,
  in the layout the trainer mixes (channels_last on a GPU);
- attacks: FGSM on 10,000 images, and Square-100 in its worst case (every image
  survives every query: the network's cost, with an output no perturbation flips);
- workers: the same 4 one-epoch runs by one worker process, then by two sharing the
  GPU; each worker a fresh interpreter, both ways;
- move: a run started on the GPU, resumed on the CPU for one epoch, and back.

Training steps are timed as N steps between two CUDA events with one synchronize at the
end, so that a sync inside a step shows as lost time and the CPU runs ahead as in
training. ``--budget`` (seconds) drops the slowest sections first when their estimates
do not fit, and skips a section when the time left will not hold it.

``--dry-run`` runs every section on the CPU at tiny sizes (a test runs it): bf16 and
fp16 + GradScaler (CPU autocast; the fused SGD) for the sync section, torch.compile with
its "eager" backend (inductor's C++ build takes minutes on a CPU). On a machine without
CUDA the script says so, does the dry run, and exits 0.

    python benchmarks/gpu.py [--dry-run] [--sections sync epoch ...] [--amp bf16 fp16 fp32]
                             [--budget 480] [--runs-dir DIR] [--no-compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# A script's own folder comes first on sys.path, and a module there named like a standard
# one (benchmarks/statistics.py) would shadow it for torch, triton and the package.
if __name__ == "__main__":
    sys.path.append(sys.path.pop(0))

import numpy as np
import torch
from torch import nn

from regionmix_utils.config import TrainConfig
from regionmix_utils.data import CIFAR10_CLASSES, ImageSet, Splits, is_on_disk, load_dataset
from regionmix_utils.evaluation.robustness import AttackConfig, adversarial_predictions
from regionmix_utils.files import atomic_torch_save
from regionmix_utils.methods import get_method, method_names
from regionmix_utils.models import build_model, evaluating
from regionmix_utils.runs import Run
from regionmix_utils.train import (
    AMP_MODES,
    GPU_CHECKPOINT_EVERY,
    TrainingState,
    amp_dtype,
    evaluate,
    loaders,
    train,
    train_step,
)

SECTIONS = (
    "sync", "epoch", "epoch-compiled", "real-epoch", "mixing", "attacks", "workers", "move",
)  # fmt: skip
# Expected seconds of each section: on an H100-class GPU (from arithmetic: not measured
# yet), and in the dry run (measured on 2 CPU cores). ``--budget`` plans with them.
GPU_ESTIMATE_S = {
    "sync": 40, "epoch": 30, "epoch-compiled": 150, "real-epoch": 20, "mixing": 10,
    "attacks": 60, "workers": 60, "move": 30,
}  # fmt: skip
DRY_RUN_ESTIMATE_S = {
    "sync": 10, "epoch": 10, "epoch-compiled": 15, "real-epoch": 2, "mixing": 1,
    "attacks": 2, "workers": 30, "move": 5,
}  # fmt: skip
GPU_BUDGET_S = 480  # the default --budget: well inside 10 minutes
EPOCH_METHODS = {  # row label -> TrainConfig changes
    "none": {"method": "none"},
    "mixup": {"method": "mixup"},
    "cutmix": {"method": "cutmix"},
    "region k=2": {"method": "region", "k": 2},
    "region-random": {"method": "region-random"},
}
PAPER_EPOCHS = 400
# The paper: CIFAR-10, CIFAR-100 and Tiny ImageNet x 3 methods x 3 seeds (Table 1), plus
# CIFAR-100 x 3 methods x 3 seeds without the clean CE term (Table 2).
PAPER_METHODS = ("mixup", "cutmix", "region k=2")
AMP_WORDS = {"bf16": "bf16", "fp16": "fp16 + GradScaler", "fp32": "float32"}


@dataclass(frozen=True)
class Sizes:
    """How big each check is: the real sizes, or the dry run's."""

    n_train: int = 50_000
    n_test: int = 10_000
    width: int = 64
    batch_size: int = 128
    sync_width: int = 16
    sync_batch_size: int = 128
    sync_warmup_steps: int = 2
    sync_steps: int = 3
    warmup_steps: int = 5  # compiled: more, see ``compile_warmup_steps``
    compile_warmup_steps: int = 15
    timed_steps: int = 30
    tiny_n_train: int = 100_000  # Tiny ImageNet: 100,000 training images of 64 px
    tiny_n_test: int = 10_000
    mix_rounds: int = 7
    mix_calls: int = 50
    attack_images: int = 10_000
    square_queries: int = 100
    worker_n_train: int = 20_000
    worker_width: int = 64
    move_n_train: int = 2_000
    move_width: int = 16


DRY_RUN = Sizes(
    n_train=256, n_test=64, width=4, batch_size=32, sync_width=4, sync_batch_size=8,
    sync_warmup_steps=1, sync_steps=1, warmup_steps=1,
    compile_warmup_steps=1, timed_steps=2, tiny_n_train=256, tiny_n_test=64, mix_rounds=2,
    mix_calls=2, attack_images=20, square_queries=2, worker_n_train=64, worker_width=4,
    move_n_train=128, move_width=4,
)  # fmt: skip


@dataclass
class Row:
    """One line of the table."""

    section: str
    check: str
    measured: str
    goal: str = ""
    verdict: str = ""

    def line(self) -> str:
        cells = (self.section, self.check, self.measured, self.goal, self.verdict)
        return "| " + " | ".join(" ".join(c.replace("|", "/").split()) for c in cells) + " |"


class Table:
    """Prints each row the moment it is added (flushed), and keeps them for the end."""

    HEADER = "| section | check | measured | goal | verdict |\n|---|---|---|---|---|"

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def start(self, title: str) -> None:
        print(title)
        print(self.HEADER, flush=True)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(row.line(), flush=True)


@dataclass(frozen=True)
class Bench:
    """What every section needs: where it runs, at which sizes, in which AMP modes."""

    device: torch.device
    sizes: Sizes
    dry_run: bool
    sync_modes: tuple[str, ...]  # AMP modes whose steps the sync section checks
    epoch_modes: tuple[str, ...]  # AMP modes the epoch sections time
    runs_dir: Path | None = None  # where the real epoch writes its checkpoint

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def median(values) -> float:
    return float(np.median(list(values)))


def mean(values) -> float:
    return float(np.mean(list(values)))


def verdict(ok: bool, dry_run: bool) -> str:
    return "(dry run)" if dry_run else ("ok" if ok else "MISSED")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(device: torch.device, call: Callable[[], object], n: int) -> float:
    """Mean seconds of ``call`` over ``n`` calls in a row: between two CUDA events with
    one synchronize at the end on a GPU (a sync inside a call shows as lost time, and
    the CPU runs ahead as in training); wall time on the CPU."""
    if device.type != "cuda":
        start = time.perf_counter()
        for _ in range(n):
            call()
        return (time.perf_counter() - start) / n
    synchronize(device)
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    for _ in range(n):
        call()
    end.record()
    end.synchronize()
    return begin.elapsed_time(end) / 1000 / n


def shared_data() -> Path | None:
    """The real data subsets: $REGIONMIX_SHARED_DATA or ../shared/data."""
    env = os.environ.get("REGIONMIX_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if path.is_dir() else None


def synthetic_splits(
    n_train: int, n_test: int, size: int = 32, classes: int = 10, device: str = "cpu"
) -> Splits:
    """Random uint8 images [N, 3, size, size] with random labels (timing only), made on
    ``device`` (on a GPU: no 1.2 GB of Tiny ImageNet drawn on the CPU and copied)."""
    gen = torch.Generator(device).manual_seed(0)
    names = CIFAR10_CLASSES if classes == 10 else tuple(f"class {i}" for i in range(classes))

    def split(n: int) -> ImageSet:
        images = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8,
                               device=device)  # fmt: skip
        labels = torch.randint(0, classes, (n,), generator=gen, device=device)
        return ImageSet(images, labels, names)

    return Splits("synthetic", split(n_train), split(n_test))


def paper_config(sizes: Sizes, **changes) -> TrainConfig:
    """The paper's recipe at ``sizes``' width and batch (channels_last on a GPU)."""
    base = TrainConfig(dataset="cifar10", width=sizes.width, batch_size=sizes.batch_size)
    return dataclasses.replace(base, **changes)


def batches_forever(train_loader) -> Iterator:
    """The loader's batches, epoch after epoch (a timing may need more than one epoch)."""
    while True:
        yield from train_loader


# ---------------------------------------------------------------------------- 1. sync


def sync_rows(bench: Bench, splits: Splits) -> Iterator[Row]:
    """Trainer steps of every registered method in every AMP mode of ``bench.sync_modes``
    under CUDA's sync debug mode "error" (on the CPU the same steps run unchecked), then
    the one-call mixing functions on CUDA tensors."""
    for mode in bench.sync_modes:
        for name in method_names():
            steps = bench.sizes.sync_steps
            check = f"{name}, {AMP_WORDS[mode]}: {steps} step{'s' * (steps != 1)}"
            try:
                outcome = steps_without_sync(name, mode, bench, splits)
            except Exception as err:  # the method cannot train at all: its row says why
                yield Row("sync", check, f"{type(err).__name__}: {err}"[:100], "no sync",
                          "FAILED")  # fmt: skip
                continue
            yield Row("sync", check, outcome, "no sync",
                      verdict(outcome == "no sync", bench.dry_run))  # fmt: skip
    yield from one_call_rows(bench)


def checked(device: torch.device, steps: Callable[[], None]) -> str:
    """ "no sync" when ``steps`` ran under CUDA's sync debug mode "error" without a
    device-to-host sync, else the first line of what the first sync raised; on the CPU
    the steps run unchecked."""
    if device.type != "cuda":
        steps()
        return "ran (sync not checked on the CPU)"
    synchronize(device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        steps()
    except RuntimeError as err:
        return f"SYNC: {str(err).splitlines()[0][:70]}"
    finally:
        torch.cuda.set_sync_debug_mode("default")
    synchronize(device)
    return "no sync"


def steps_without_sync(method: str, mode: str, bench: Bench, splits: Splits) -> str:
    """``checked`` over ``sync_steps`` trainer steps of ``method`` in AMP ``mode``, after
    unchecked warm-up steps (lazy initialisation of cuBLAS, cuDNN and the GradScaler's
    tensors may sync once)."""
    sizes = bench.sizes
    config = paper_config(sizes, method=method, width=sizes.sync_width,
                          batch_size=sizes.sync_batch_size)  # fmt: skip
    state = TrainingState.build(config, splits, bench.device, amp=AMP_MODES[mode])
    state.check_mixing(splits)
    state.start_epoch(1)
    batches = batches_forever(loaders(state, splits)[0])
    for _ in range(sizes.sync_warmup_steps):
        train_step(state, *next(batches))

    def steps() -> None:  # as the trainer's loop: the batch is cut on the device, then the step
        for _ in range(bench.sizes.sync_steps):
            train_step(state, *next(batches))

    return checked(bench.device, steps)


def one_call_rows(bench: Bench) -> Iterator[Row]:
    """The public one-call mixing functions on the device's tensors, with a CPU
    generator and with none (both draw on the host), soft targets [B, K] (index labels
    would be range-checked: a documented sync)."""
    from regionmix_utils.mixing import cutmix, fmix, gridmix, mixup, region_mixup, resizemix

    gen = torch.Generator(bench.device).manual_seed(0)
    images = torch.rand(64, 3, 32, 32, generator=gen, device=bench.device)
    if bench.cuda:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = torch.softmax(torch.randn(64, 10, generator=gen, device=bench.device), 1)
    calls = {
        "region_mixup": lambda g: region_mixup(images, targets, k=2, generator=g),
        "mixup": lambda g: mixup(images, targets, generator=g),
        "cutmix": lambda g: cutmix(images, targets, generator=g),
        "gridmix": lambda g: gridmix(images, targets, generator=g),
        "fmix": lambda g: fmix(images, targets, generator=g),
        "resizemix": lambda g: resizemix(images, targets, generator=g),
    }
    for name, call in calls.items():
        for label, generator in (("CPU generator", torch.Generator().manual_seed(1)),
                                 ("no generator", None)):  # fmt: skip
            call(generator)  # warm-up: the tile plan of the grid is built once
            outcome = checked(bench.device, lambda call=call, g=generator: call(g))
            yield Row("sync", f"one call: {name}, soft targets, {label}", outcome, "no sync",
                      verdict(outcome == "no sync", bench.dry_run))  # fmt: skip


# --------------------------------------------------------------------------- 2. epoch


def step_seconds(state: TrainingState, splits: Splits, warmup: int, steps: int) -> float:
    """Seconds of one trainer step (batches from the device-resident loader, augmentation
    included), after ``warmup`` steps: ``steps`` steps timed together."""
    state.start_epoch(1)
    batches = batches_forever(loaders(state, splits)[0])
    for _ in range(warmup):
        train_step(state, *next(batches))
    return seconds_per_call(state.device, lambda: train_step(state, *next(batches)), steps)


def epoch_rows(bench: Bench, splits: Splits, compiled: bool) -> Iterator[Row]:
    """Per AMP mode: seconds per epoch of each ``EPOCH_METHODS`` row (each printed as it
    is measured), the 400-epoch runs, Tiny ImageNet, and the whole paper."""
    section = "epoch-compiled" if compiled else "epoch"
    device, sizes = bench.device, bench.sizes
    cifar = paper_config(sizes)
    for mode in bench.epoch_modes:
        words = f"{AMP_WORDS[mode]}, " + ("channels_last" if bench.cuda else "NCHW (CPU)")
        words += ", compile" if compiled else ""
        per_method: dict[str, float] = {}
        for label, seconds in epoch_seconds(cifar, splits, bench, mode, compiled):
            per_method[label] = seconds
            yield Row(section, f"CIFAR-10 {label}, {words}", f"{seconds:.1f} s/epoch")
            if label in PAPER_METHODS:
                run = seconds * PAPER_EPOCHS
                yield Row(section, f"  400 epochs, {label}", minutes(run), "<= 20 min",
                          verdict(run <= 20 * 60, bench.dry_run))  # fmt: skip
        tiny = synthetic_splits(sizes.tiny_n_train, sizes.tiny_n_test, size=64, classes=200,
                                device=device.type)  # fmt: skip
        tiny_config = dataclasses.replace(cifar, dataset="tinyimagenet")
        tiny_seconds = dict(epoch_seconds(tiny_config, tiny, bench, mode, compiled))
        del tiny
        yield Row(section, f"Tiny ImageNet region k=2, {words}",
                  f"{tiny_seconds['region k=2']:.1f} s/epoch")  # fmt: skip
        cifar_run = PAPER_EPOCHS * mean(per_method[m] for m in PAPER_METHODS)
        tiny_run = PAPER_EPOCHS * mean(tiny_seconds[m] for m in PAPER_METHODS)
        # Table 2's runs drop the clean CE pass: about one forward pass, as "none" plus mixing.
        table2_run = PAPER_EPOCHS * per_method["none"]
        paper = 18 * cifar_run + 9 * tiny_run + 9 * table2_run
        yield Row(section, f"  whole paper (27 + 9 runs), {words}", minutes(paper))


def epoch_seconds(
    config: TrainConfig, splits: Splits, bench: Bench, mode: str, compiled: bool
) -> Iterator[tuple[str, float]]:
    """(row label, seconds of one epoch: train steps + test evaluation) per
    ``EPOCH_METHODS`` row, each yielded as soon as it is measured.

    One model (and one compilation) serves every method: each row swaps the method into
    the same training state. Compiled: inductor on a GPU (as ``--compile`` trains), the
    "eager" backend in the dry run (dynamo's capture without a C++ build)."""
    device, sizes = bench.device, bench.sizes
    config = dataclasses.replace(config, compile=compiled and bench.cuda)
    state = TrainingState.build(config, splits, device, amp=AMP_MODES[mode])
    if compiled and not bench.cuda:
        state = dataclasses.replace(state, forward=torch.compile(state.model, backend="eager"))
    steps_per_epoch = len(splits.train) // config.batch_size
    warmup = sizes.compile_warmup_steps if compiled else sizes.warmup_steps
    _, test_loader = loaders(state, splits)
    evaluate(state.model, test_loader)  # warm-up
    start = time.perf_counter()
    evaluate(state.model, test_loader)  # reads its sums back once: the wall time is right
    eval_s = time.perf_counter() - start
    for label, changes in EPOCH_METHODS.items():
        method_config = dataclasses.replace(config, **changes)
        row_state = dataclasses.replace(state, config=method_config,
                                        method=get_method(method_config.method))  # fmt: skip
        row_state.check_mixing(splits)
        step = step_seconds(row_state, splits, warmup, sizes.timed_steps)
        yield label, step * steps_per_epoch + eval_s


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------- 3. real epoch


class _Stop(Exception):
    """Ends a ``train`` call after the epoch it was raised in (its checkpoint written)."""


def real_epoch_rows(bench: Bench, splits: Splits) -> Iterator[Row]:
    """One epoch of ``train`` at paper width on CIFAR-sized data, checkpoint included,
    then that checkpoint written again alone: its size and time, and the share of the
    training time each checkpoint interval costs."""
    sizes = bench.sizes
    config = paper_config(sizes, epochs=2, checkpoint_every=1)
    with tempfile.TemporaryDirectory(prefix="regionmix-gpu-epoch-", dir=bench.runs_dir) as tmp:
        records = []

        def stop(record: dict) -> None:
            records.append(record)
            raise _Stop

        start = time.perf_counter()
        try:
            train(config, tmp, device=bench.device.type, splits=splits, progress=False,
                  on_epoch=stop)  # fmt: skip
        except _Stop:
            pass
        wall = time.perf_counter() - start
        epoch_s = records[0]["seconds"]
        last = Run.of(tmp, config).path / "last.pt"
        state = torch.load(last, map_location=bench.device, weights_only=True)
        megabytes = last.stat().st_size / 1e6
        start = time.perf_counter()
        atomic_torch_save(state, last)
        save_s = time.perf_counter() - start
    amp = AMP_WORDS[native_mode(bench.device)]
    yield Row("real-epoch", f"one epoch of train(): {len(splits.train)} images, width "
              f"{sizes.width}, region k=2, {amp}", f"{epoch_s:.1f} s train + test "
              f"({wall:.1f} s with set-up and checkpoint)")  # fmt: skip
    where = "--runs-dir " + str(bench.runs_dir) if bench.runs_dir else "a temporary folder"
    yield Row("real-epoch", f"checkpoint last.pt ({megabytes:.0f} MB) to {where}",
              f"{save_s:.2f} s = {100 * save_s / epoch_s:.0f}% of an epoch")  # fmt: skip
    for every in (1, GPU_CHECKPOINT_EVERY):
        share = save_s / (every * epoch_s + save_s)
        yield Row("real-epoch", f"  --checkpoint-every {every}: share of training time",
                  f"{100 * share:.1f}%", "<= 5% at the GPU default" if every > 1 else "",
                  verdict(share <= 0.05, bench.dry_run) if every > 1 else "")  # fmt: skip


# -------------------------------------------------------------------------- 4. mixing


def mixing_rows(bench: Bench) -> Iterator[Row]:
    """One mixing call on a batch of 128 CIFAR images, as the trainer mixes (CPU
    generator, unchecked, channels_last on a GPU), against torchvision's v2.MixUp on the
    same batch; interleaved rounds, each timed over ``mix_calls`` calls in a row."""
    from torchvision.transforms import v2

    device, sizes = bench.device, bench.sizes
    gen = torch.Generator(device).manual_seed(0)
    images = torch.rand(128, 3, 32, 32, device=device, generator=gen)
    layout = "NCHW"
    if bench.cuda:  # the trainer's layout on a GPU (loaders(): channels_last)
        images, layout = images.contiguous(memory_format=torch.channels_last), "channels_last"
    labels = torch.randint(0, 10, (128,), device=device, generator=gen)
    mix_gen = torch.Generator().manual_seed(0)
    region = get_method("region")
    calls: dict[str, Callable[[], object]] = {"v2.MixUp": lambda: v2.MixUp(
        alpha=1.0, num_classes=10)(images, labels)}  # fmt: skip
    for k in (1, 2, 4, 8):
        config = TrainConfig(method="region", k=k)
        calls[f"region k={k}"] = lambda config=config: region.mix(
            images, labels, 10, config, mix_gen, validate=False
        )
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(sizes.mix_rounds):  # interleaved rounds
        for name, call in calls.items():
            times[name].append(seconds_per_call(device, call, sizes.mix_calls))
    base = median(times["v2.MixUp"])
    k1 = median(times["region k=1"])
    yield Row("mixing", f"v2.MixUp, batch 128x3x32x32 {layout}", f"{base * 1e6:.0f} us")
    for k in (1, 2, 4, 8):
        t = median(times[f"region k={k}"])
        measured = f"{t / base:.2f}x ({t * 1e6:.0f} us)"
        yield Row("mixing", f"region k={k} vs v2.MixUp", measured, "<= 1.2x",
                  verdict(t / base <= 1.2, bench.dry_run))  # fmt: skip
    k8 = median(times["region k=8"])
    yield Row("mixing", "region k=8 vs k=1 (flat in k)", f"{k8 / k1:.2f}x", "<= 1.2x",
              verdict(k8 / k1 <= 1.2, bench.dry_run))  # fmt: skip


# ------------------------------------------------------------------------- 5. attacks


class Unfoolable(nn.Module):
    """``model``'s forward pass, with class 0 ahead of every other class by ``margin``
    logits: no perturbation in an 8/255 ball changes its answer, so Square spends its
    whole query budget on every image (its worst case) at the network's real cost."""

    def __init__(self, model: nn.Module, margin: float = 1e4) -> None:
        super().__init__()
        self.model, self.margin = model, margin

    def forward(self, x):
        logits = self.model(x)
        return logits + self.margin * nn.functional.one_hot(
            torch.zeros(len(x), dtype=torch.long, device=x.device), logits.shape[1]
        )


def attack_rows(bench: Bench, splits: Splits) -> Iterator[Row]:
    """FGSM at 8/255 on ``attack_images`` test images (labels: the model's own
    predictions), and Square-100 at 8/255 in its worst case (``Unfoolable``)."""
    device, sizes = bench.device, bench.sizes
    model = build_model("cifar10", 10, sizes.width).to(device).eval()
    images = splits.test.images[: sizes.attack_images].to(device).float() / 255
    with torch.no_grad(), evaluating(model):
        labels = torch.cat([model(x).argmax(1) for x in images.split(500)])
    n, queries = len(labels), sizes.square_queries
    for check, attacked, y, config, goal_s in (
        (f"fgsm, {n} images", model, labels, AttackConfig("fgsm", 8 / 255), 5.0),
        (f"square-{queries}, {n} images, every one to its last query", Unfoolable(model),
         torch.zeros_like(labels), AttackConfig("square", 8 / 255, queries=queries), 120.0),
    ):  # fmt: skip
        synchronize(device)
        start = time.perf_counter()
        predicted = adversarial_predictions(attacked, images, y, config, progress=False)
        synchronize(device)
        seconds = time.perf_counter() - start
        robust = 100.0 * float((predicted == y).float().mean())
        yield Row("attacks", check, f"{seconds:.1f} s (acc {robust:.0f}%)", f"<= {goal_s:g} s",
                  verdict(seconds <= goal_s, bench.dry_run))  # fmt: skip


# ------------------------------------------------------------------------- 6. workers


def sweep_seconds(data_dir: Path, runs_dir: Path, workers: int, bench: Bench) -> float:
    """Wall seconds for ``workers`` processes of ``regionmix sweep --workers 1`` started
    at once on one runs folder (4 one-epoch runs, shared through the runs' locks): each
    worker a fresh interpreter, for one worker as for two."""
    sizes = bench.sizes
    command = [
        sys.executable, "-m", "regionmix_utils.cli", "sweep", "--datasets", "cifar10-subset",
        "--methods", "region", "mixup", "--seeds", "0", "1", "--epochs", "1",
        "--width", str(sizes.worker_width), "--batch-size", str(sizes.batch_size),
        "--n-train", str(sizes.worker_n_train), "--data-dir", str(data_dir),
        "--runs-dir", str(runs_dir), "--device", bench.device.type, "--workers", "1",
        "--no-progress",
    ]  # fmt: skip
    start = time.perf_counter()
    children = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True) for _ in range(workers)]  # fmt: skip
    errors = [child.communicate()[1] for child in children]
    seconds = time.perf_counter() - start
    failed = [err for child, err in zip(children, errors, strict=True) if child.returncode]
    if failed:
        raise RuntimeError(f"a sweep worker ({workers} at once) failed: {failed[0][-500:]}")
    return seconds


def worker_rows(bench: Bench, splits: Splits) -> Iterator[Row]:
    """One GPU, two sweep workers against one: the same 4 runs, wall time each way."""
    with tempfile.TemporaryDirectory(prefix="regionmix-gpu-bench-") as tmp:
        data_dir = Path(tmp)
        train_set, test_set = splits.train, splits.test
        n = min(len(train_set), bench.sizes.worker_n_train)
        np.savez(
            data_dir / "cifar10-subset.npz",
            x_train=train_set.images[:n].permute(0, 2, 3, 1).cpu().numpy(),
            y_train=train_set.labels[:n].cpu().numpy(),
            x_test=test_set.images.permute(0, 2, 3, 1).cpu().numpy(),
            y_test=test_set.labels.cpu().numpy(),
        )
        one = sweep_seconds(data_dir, data_dir / "runs-1", 1, bench)
        yield Row("workers", f"sweep of 4 runs, 1 worker ({bench.device.type})", f"{one:.0f} s")
        two = sweep_seconds(data_dir, data_dir / "runs-2", 2, bench)
    yield Row("workers", f"sweep of 4 runs, 2 workers sharing the {bench.device.type}",
              f"{two:.0f} s: {one / two:.2f}x throughput", "> 1x",
              verdict(one / two > 1.0, bench.dry_run))  # fmt: skip


# ---------------------------------------------------------------------------- 7. move


def move_rows(bench: Bench) -> Iterator[Row]:
    """A 3-epoch run: epoch 1 on the device, epoch 2 on the CPU, epoch 3 on the device
    again, each leg stopped after its epoch as a closed session would stop it."""
    device, sizes = bench.device, bench.sizes
    root = shared_data()
    if root is not None and is_on_disk("cifar10-subset", root):
        splits, data = load_dataset("cifar10-subset", root), "real CIFAR-10 subset"
    else:
        splits, data = synthetic_splits(sizes.move_n_train, 500), "synthetic data"
    config = TrainConfig(dataset="cifar10", method="region", epochs=3, width=sizes.move_width,
                         n_train=sizes.move_n_train, n_test=500, checkpoint_every=1)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="regionmix-gpu-move-") as runs_dir:
        for leg, leg_device in enumerate((device.type, "cpu", device.type), start=1):

            def stop_after(record, leg=leg):
                if record["epoch"] == leg and leg < config.epochs:
                    raise _Stop

            try:
                train(config, runs_dir, device=leg_device, splits=splits, progress=False,
                      on_epoch=stop_after)  # fmt: skip
            except _Stop:
                pass
        run = Run.of(runs_dir, config)
        epochs = [m["epoch"] for m in run.metrics()]
        legs = [f"{h['device']} ({h['amp']})" for h in run.record["history"]]
        moves = sum("moved_from" in h for h in run.record["history"])
        ok = run.finished and epochs == [1, 2, 3] and len(legs) == 3
        if bench.cuda:
            ok = ok and moves == 2
    yield Row("move", f"{data}: epochs by leg", " -> ".join(legs) + f"; epochs {epochs}",
              "each epoch once, 2 moves", verdict(ok, bench.dry_run) if bench.cuda
              else ("ok" if ok else "MISSED") + " (CPU only)")  # fmt: skip


# --------------------------------------------------------------------------- running


def plan_sections(
    sections: list[str], estimates: dict[str, float], budget_s: float | None
) -> tuple[list[str], list[str]]:
    """(kept, dropped): ``sections`` in their order, less the slowest ones (by
    ``estimates``, seconds) until the estimates of the rest fit ``budget_s``."""
    kept = list(sections)
    dropped: list[str] = []
    while budget_s is not None and kept and sum(estimates[s] for s in kept) > budget_s:
        slowest = max(kept, key=lambda s: estimates[s])
        kept.remove(slowest)
        dropped.append(slowest)
    return kept, dropped


def run_sections(
    bench: Bench,
    sections: list[str],
    table: Table,
    estimates: dict[str, float],
    budget_s: float | None,
    started: float,
) -> None:
    """Run ``sections`` in order, each row printed as it comes. A section that raises
    adds one FAILED row and the next goes on (rows it printed stay). Before a section,
    one that the time left will not hold (its estimate, scaled by how the sections so far
    compared with theirs) is skipped with a row that says so."""
    splits = synthetic_splits(bench.sizes.n_train, bench.sizes.n_test, device=bench.device.type)
    checks: dict[str, Callable[[], Iterator[Row]]] = {
        "sync": lambda: sync_rows(bench, splits),
        "epoch": lambda: epoch_rows(bench, splits, compiled=False),
        "epoch-compiled": lambda: epoch_rows(bench, splits, compiled=True),
        "real-epoch": lambda: real_epoch_rows(bench, splits),
        "mixing": lambda: mixing_rows(bench),
        "attacks": lambda: attack_rows(bench, splits),
        "workers": lambda: worker_rows(bench, splits),
        "move": lambda: move_rows(bench),
    }
    spent, expected = 0.0, 0.0
    for name in sections:
        scale = max(1.0, spent / expected) if expected else 1.0
        left = None if budget_s is None else budget_s - (time.perf_counter() - started)
        if left is not None and estimates[name] * scale > left:
            table.add(Row(name, "(skipped)", f"expected {estimates[name] * scale:.0f} s, "
                          f"{max(left, 0):.0f} s of --budget left", "", "skipped"))  # fmt: skip
            continue
        start = time.perf_counter()
        try:
            for row in checks[name]():
                table.add(row)
        except Exception as err:  # the section's rows so far are printed already
            table.add(Row(name, "(the check itself failed)",
                          f"{type(err).__name__}: {err}"[:120], "", "FAILED"))  # fmt: skip
        seconds = time.perf_counter() - start
        spent, expected = spent + seconds, expected + estimates[name]
        print(f"{name}: {seconds:.0f} s", flush=True)


def native_mode(device: torch.device) -> str:
    """The AMP mode the trainer picks on ``device`` ("bf16", "fp16" or "fp32")."""
    return {AMP_MODES[name]: name for name in AMP_MODES}[amp_dtype(device, True)]


def amp_modes(requested: list[str], device: torch.device) -> tuple[tuple, tuple]:
    """(sync modes, epoch modes). "auto": the sync section checks every AMP path the GPU
    trains with (bf16 where supported natively, and fp16 + GradScaler, which a T4 gets;
    on the CPU both, as on a bf16 GPU); the timings take the trainer's own mode. Named
    modes serve both sections."""
    if requested != ["auto"]:
        modes = tuple(dict.fromkeys(m for m in requested if m != "auto"))
        return modes, modes
    native = native_mode(device)
    sync = ("fp16",) if native == "fp16" else ("bf16", "fp16")
    return sync, (native,)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="every section on the CPU at tiny sizes (about a minute)")  # fmt: skip
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--no-compile", action="store_true",
                        help="leave out the torch.compile rows")  # fmt: skip
    parser.add_argument(
        "--amp", nargs="+", default=["auto"], choices=["auto", *AMP_MODES],
        help="AMP paths: bf16, fp16 (with a GradScaler and the fused SGD), fp32; 'auto': "
        "sync on every path the GPU trains with, timings in the trainer's mode",
    )  # fmt: skip
    parser.add_argument(
        "--budget", type=float, default=None, metavar="SECONDS",
        help=f"drop the slowest sections to fit (default {GPU_BUDGET_S} s on a GPU, none in "
        "the dry run)",
    )  # fmt: skip
    parser.add_argument(
        "--runs-dir", default=None, help="where the real epoch writes its checkpoint (Drive, say)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    dry_run = args.dry_run or not torch.cuda.is_available()
    if not args.dry_run and not torch.cuda.is_available():
        print("No CUDA device here: the GPU checks cannot run. Running the dry run instead.")
    if dry_run:
        device, sizes, estimates = torch.device("cpu"), DRY_RUN, DRY_RUN_ESTIMATE_S
        torch.set_num_threads(1)  # tiny tensors: more threads only wait on each other
        budget = args.budget
        where = "CPU (dry run: tiny sizes, verdicts not judged)"
    else:
        device, sizes, estimates = torch.device("cuda"), Sizes(), GPU_ESTIMATE_S
        budget = GPU_BUDGET_S if args.budget is None else args.budget
        where = f"{torch.cuda.get_device_name(device)}"
    sync_modes, epoch_modes = amp_modes(args.amp, device)
    bench = Bench(device, sizes, dry_run, sync_modes, epoch_modes,
                  Path(args.runs_dir) if args.runs_dir else None)  # fmt: skip
    sections = [s for s in args.sections if not (args.no_compile and s == "epoch-compiled")]
    sections, dropped = plan_sections(sections, estimates, budget)
    table = Table()
    table.start(
        f"{where}; torch {torch.__version__}; the trainer's AMP here: "
        f"{AMP_WORDS[native_mode(device)]}; sync checked in "
        f"{', '.join(AMP_WORDS[m] for m in sync_modes)}; timed in "
        f"{', '.join(AMP_WORDS[m] for m in epoch_modes)}; budget "
        f"{'none' if budget is None else f'{budget:.0f} s'}"
        + (f"; dropped to fit it: {', '.join(dropped)}" if dropped else "")
    )
    for name in dropped:
        table.add(Row(name, "(dropped)", f"expected {estimates[name]:.0f} s", "",
                      "dropped by --budget"))  # fmt: skip
    run_sections(bench, sections, table, estimates, budget, started)
    failed = sum(r.verdict == "FAILED" for r in table.rows)
    print(f"{len(table.rows)} rows in {time.perf_counter() - started:.0f} s; {failed} FAILED",
          flush=True)  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
