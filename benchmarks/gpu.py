"""Every GPU check in one script, in at most 8 minutes on one GPU; one table at the end.

On synthetic CIFAR-sized data (50,000 uint8 32x32 training images, 10,000 test images,
10 classes; Tiny ImageNet-sized for its row) and the real CIFAR-10 subset in
``../shared/data`` where it is present:

1. sync: no device-to-host sync inside a training step, for every registered method
   (``torch.cuda.set_sync_debug_mode("error")`` around a few steps of the trainer);
2. epoch: epoch time at paper width (PreAct ResNet-18, width 64, batch 128) for none /
   mixup / cutmix / region k=2 / region-random, bf16 autocast + channels_last, with and
   without torch.compile; the implied 400-epoch CIFAR-10 run (goal <= 20 minutes on an
   H100-class GPU) and the whole paper (27 runs + 9 for Table 2);
3. mixing: one mixing call against k (1, 2, 4, 8) and against torchvision's v2.MixUp
   (goal: flat in k, <= 1.2x v2.MixUp);
4. attacks: FGSM and Square-100 on 10,000 images (goal <= 5 s and <= 2 min);
5. workers: a sweep on two ``--workers`` sharing the GPU against one (throughput ratio);
6. move: a run started on the GPU, resumed on the CPU for one epoch, and back.

``--dry-run`` runs the same code on the CPU at tiny sizes (under a minute; a test runs
it). On a machine without CUDA the script says so, does the dry run, and exits 0.

    python benchmarks/gpu.py [--dry-run] [--sections sync epoch ...] [--no-compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# A script's own folder comes first on sys.path, and a module there named like a standard
# one (benchmarks/statistics.py) would shadow it for torch, triton and the package.
sys.path.append(sys.path.pop(0))

import numpy as np
import torch

from regionmix_utils.config import TrainConfig
from regionmix_utils.data import CIFAR10_CLASSES, ImageSet, Splits, is_on_disk, load_dataset
from regionmix_utils.evaluation.robustness import AttackConfig, adversarial_predictions
from regionmix_utils.methods import get_method, method_names
from regionmix_utils.models import build_model
from regionmix_utils.runs import Run
from regionmix_utils.train import (
    TrainingState,
    amp_dtype,
    amp_name,
    evaluate,
    loaders,
    train,
    train_step,
)

SECTIONS = ("sync", "epoch", "mixing", "attacks", "workers", "move")
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


@dataclass(frozen=True)
class Sizes:
    """How big each check is: the real sizes, or the dry run's."""

    n_train: int = 50_000
    n_test: int = 10_000
    width: int = 64
    batch_size: int = 128
    sync_width: int = 16
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
    n_train=256, n_test=64, width=4, batch_size=32, sync_width=4, sync_steps=2, warmup_steps=1,
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


def median(values) -> float:
    return float(np.median(list(values)))


def mean(values) -> float:
    return float(np.mean(list(values)))


def verdict(ok: bool, dry_run: bool) -> str:
    return "(dry run)" if dry_run else ("ok" if ok else "MISSED")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def shared_data() -> Path | None:
    """The real data subsets: $REGIONMIX_SHARED_DATA or ../shared/data."""
    env = os.environ.get("REGIONMIX_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if path.is_dir() else None


def synthetic_splits(n_train: int, n_test: int, size: int = 32, classes: int = 10) -> Splits:
    """Random uint8 images [N, 3, size, size] with random labels (timing only)."""
    gen = torch.Generator().manual_seed(0)
    names = CIFAR10_CLASSES if classes == 10 else tuple(f"class {i}" for i in range(classes))

    def split(n: int) -> ImageSet:
        images = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)
        return ImageSet(images, torch.randint(0, classes, (n,), generator=gen), names)

    return Splits("synthetic", split(n_train), split(n_test))


def paper_config(sizes: Sizes, **changes) -> TrainConfig:
    """The paper's recipe at ``sizes``' width and batch (bf16 autocast, channels_last)."""
    base = TrainConfig(dataset="cifar10", width=sizes.width, batch_size=sizes.batch_size)
    return dataclasses.replace(base, **changes)


# ---------------------------------------------------------------------------- 1. sync


def sync_rows(device: torch.device, sizes: Sizes, splits: Splits, dry_run: bool) -> list[Row]:
    """A few trainer steps per registered method under CUDA's sync debug mode "error"
    (on the CPU the same steps run unchecked)."""
    rows = []
    for name in method_names():
        check = f"{name}: {sizes.sync_steps} steps"
        try:
            outcome = steps_without_sync(name, device, sizes, splits)
        except Exception as err:  # the method cannot train at all: its own row says why
            rows.append(Row("sync", check, f"{type(err).__name__}: {err}"[:100], "no sync",
                            "FAILED"))  # fmt: skip
            continue
        rows.append(Row("sync", check, outcome, "no sync",
                        verdict(outcome == "no sync", dry_run)))  # fmt: skip
    return rows


def steps_without_sync(method: str, device: torch.device, sizes: Sizes, splits: Splits) -> str:
    """ "no sync", or the first line of the error a sync raised inside a trainer step."""
    config = paper_config(sizes, method=method, width=sizes.sync_width)
    state = TrainingState.build(config, splits, device)
    state.check_mixing(splits)
    state.start_epoch(1)
    train_loader, _ = loaders(state, splits)
    batches = iter(train_loader)
    train_step(state, *next(batches))  # warm-up: lazy initialisation may sync
    synchronize(device)
    if device.type != "cuda":
        for _ in range(sizes.sync_steps):
            train_step(state, *next(batches))
        return "ran (sync not checked on the CPU)"
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(sizes.sync_steps):
            train_step(state, *next(batches))
        torch.cuda.set_sync_debug_mode("default")
        synchronize(device)
        return "no sync"
    except RuntimeError as err:
        return f"SYNC: {str(err).splitlines()[0][:70]}"
    finally:
        torch.cuda.set_sync_debug_mode("default")


# --------------------------------------------------------------------------- 2. epoch


def step_seconds(state: TrainingState, splits: Splits, warmup: int, steps: int) -> float:
    """Median seconds of one trainer step (batches from the device-resident loader,
    augmentation included), after ``warmup`` steps."""
    state.start_epoch(1)
    train_loader, _ = loaders(state, splits)
    batches = iter(train_loader)
    needed = warmup + steps
    if len(train_loader) < needed:
        batches = (b for _ in range(-(-needed // len(train_loader))) for b in train_loader)
    for _ in range(warmup):
        train_step(state, *next(batches))
    synchronize(state.device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        train_step(state, *next(batches))
        synchronize(state.device)
        times.append(time.perf_counter() - start)
    return median(times)


def epoch_seconds(
    config: TrainConfig, splits: Splits, device: torch.device, sizes: Sizes, compiled: bool
) -> dict[str, float]:
    """Seconds of one epoch (train steps + test evaluation) per ``EPOCH_METHODS`` row.

    One model (and one compilation) serves every method: each row swaps the method
    into the same training state."""
    config = dataclasses.replace(config, compile=compiled)
    state = TrainingState.build(config, splits, device)
    steps_per_epoch = len(splits.train) // config.batch_size
    warmup = sizes.compile_warmup_steps if compiled else sizes.warmup_steps
    _, test_loader = loaders(state, splits)
    evaluate(state.model, test_loader)  # warm-up
    synchronize(device)
    start = time.perf_counter()
    evaluate(state.model, test_loader)
    eval_s = time.perf_counter() - start
    out = {}
    for label, changes in EPOCH_METHODS.items():
        method_config = dataclasses.replace(config, **changes)
        row_state = dataclasses.replace(state, config=method_config,
                                        method=get_method(method_config.method))  # fmt: skip
        row_state.check_mixing(splits)
        step = step_seconds(row_state, splits, warmup, sizes.timed_steps)
        out[label] = step * steps_per_epoch + eval_s
    return out


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def epoch_rows(device: torch.device, sizes: Sizes, splits: Splits, dry_run: bool,
               compile_modes: tuple[bool, ...]) -> list[Row]:  # fmt: skip
    rows = []
    cifar = paper_config(sizes)
    tiny = synthetic_splits(sizes.tiny_n_train, sizes.tiny_n_test, size=64, classes=200)
    tiny_config = dataclasses.replace(cifar, dataset="tinyimagenet")
    for compiled in compile_modes:
        mode = "bf16, channels_last" + (", compile" if compiled else "")
        if device.type != "cuda":
            mode = "float32 (CPU)" + (", compile" if compiled else "")
        per_method = epoch_seconds(cifar, splits, device, sizes, compiled)
        for label, seconds in per_method.items():
            run = seconds * PAPER_EPOCHS
            rows.append(Row("epoch", f"CIFAR-10 {label}, {mode}", f"{seconds:.1f} s/epoch",
                            "", ""))  # fmt: skip
            if label in PAPER_METHODS:
                rows.append(Row("epoch", f"  400 epochs, {label}", minutes(run), "<= 20 min",
                                verdict(run <= 20 * 60, dry_run)))  # fmt: skip
        tiny_seconds = epoch_seconds(tiny_config, tiny, device, sizes, compiled)
        rows.append(Row("epoch", f"Tiny ImageNet region k=2, {mode}",
                        f"{tiny_seconds['region k=2']:.1f} s/epoch"))  # fmt: skip
        cifar_run = PAPER_EPOCHS * mean(per_method[m] for m in PAPER_METHODS)
        tiny_run = PAPER_EPOCHS * mean(tiny_seconds[m] for m in PAPER_METHODS)
        # Table 2's runs drop the clean CE pass: about one forward pass, as "none" plus mixing.
        table2_run = PAPER_EPOCHS * per_method["none"]
        paper = 18 * cifar_run + 9 * tiny_run + 9 * table2_run
        rows.append(Row("epoch", f"  whole paper (27 + 9 runs), {mode}", minutes(paper),
                        "", ""))  # fmt: skip
    return rows


# -------------------------------------------------------------------------- 3. mixing


def mixing_rows(device: torch.device, sizes: Sizes, dry_run: bool) -> list[Row]:
    """One mixing call on a batch of 128 CIFAR images, as the trainer mixes (CPU
    generator, unchecked), against torchvision's v2.MixUp on the same batch."""
    from torchvision.transforms import v2

    gen = torch.Generator(device).manual_seed(0)
    images = torch.rand(128, 3, 32, 32, device=device, generator=gen)
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
            synchronize(device)
            start = time.perf_counter()
            for _ in range(sizes.mix_calls):
                call()
            synchronize(device)
            times[name].append((time.perf_counter() - start) / sizes.mix_calls)
    base = median(times["v2.MixUp"])
    k1 = median(times["region k=1"])
    rows = [Row("mixing", "v2.MixUp, batch 128x3x32x32", f"{base * 1e6:.0f} us")]
    for k in (1, 2, 4, 8):
        t = median(times[f"region k={k}"])
        measured = f"{t / base:.2f}x ({t * 1e6:.0f} us)"
        rows.append(Row("mixing", f"region k={k} vs v2.MixUp", measured, "<= 1.2x",
                        verdict(t / base <= 1.2, dry_run)))  # fmt: skip
    k8 = median(times["region k=8"])
    rows.append(Row("mixing", "region k=8 vs k=1 (flat in k)", f"{k8 / k1:.2f}x", "<= 1.2x",
                    verdict(k8 / k1 <= 1.2, dry_run)))  # fmt: skip
    return rows


# ------------------------------------------------------------------------- 4. attacks


def attack_rows(device: torch.device, sizes: Sizes, splits: Splits, dry_run: bool) -> list[Row]:
    """FGSM and Square-100 at 8/255 on ``attack_images`` test images, paper width.

    The labels are the model's own predictions, so every image starts correctly
    classified and Square works on all of them (the slowest case: a model of 100%
    clean accuracy), whatever the untrained weights."""
    model = build_model("cifar10", 10, sizes.width).to(device).eval()
    images = splits.test.images[: sizes.attack_images].to(device).float() / 255
    with torch.no_grad():
        labels = torch.cat([model(x).argmax(1) for x in images.split(500)])
    rows = []
    for config, goal_s in (
        (AttackConfig("fgsm", 8 / 255), 5.0),
        (AttackConfig("square", 8 / 255, queries=sizes.square_queries), 120.0),
    ):
        synchronize(device)
        start = time.perf_counter()
        predicted = adversarial_predictions(model, images, labels, config, progress=False)
        synchronize(device)
        seconds = time.perf_counter() - start
        robust = 100.0 * float((predicted == labels).float().mean())
        rows.append(Row("attacks", f"{config.name}, {len(labels)} images",
                        f"{seconds:.1f} s (acc {robust:.0f}%)", f"<= {goal_s:g} s",
                        verdict(seconds <= goal_s, dry_run)))  # fmt: skip
    return rows


# ------------------------------------------------------------------------- 5. workers


def sweep_seconds(data_dir: Path, runs_dir: Path, workers: int, device: torch.device,
                  sizes: Sizes) -> float:  # fmt: skip
    """Wall seconds of ``regionmix sweep`` (4 one-epoch runs) on ``workers`` processes."""
    command = [
        sys.executable, "-m", "regionmix_utils.cli", "sweep", "--datasets", "cifar10-subset",
        "--methods", "region", "mixup", "--seeds", "0", "1", "--epochs", "1",
        "--width", str(sizes.worker_width), "--batch-size", str(sizes.batch_size),
        "--n-train", str(sizes.worker_n_train), "--data-dir", str(data_dir),
        "--runs-dir", str(runs_dir), "--device", device.type, "--workers", str(workers),
        "--no-progress",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the sweep on {workers} workers failed: {done.stderr[-500:]}")
    return time.perf_counter() - start


def worker_rows(device: torch.device, sizes: Sizes, splits: Splits, dry_run: bool) -> list[Row]:
    """One GPU, two sweep workers against one: the same 4 runs, wall time each way."""
    with tempfile.TemporaryDirectory(prefix="regionmix-gpu-bench-") as tmp:
        data_dir = Path(tmp)
        train_set, test_set = splits.train, splits.test
        np.savez(
            data_dir / "cifar10-subset.npz",
            x_train=train_set.images.permute(0, 2, 3, 1).numpy(), y_train=train_set.labels.numpy(),
            x_test=test_set.images.permute(0, 2, 3, 1).numpy(), y_test=test_set.labels.numpy(),
        )  # fmt: skip
        one = sweep_seconds(data_dir, data_dir / "runs-1", 1, device, sizes)
        two = sweep_seconds(data_dir, data_dir / "runs-2", 2, device, sizes)
    return [Row("workers", f"sweep of 4 runs on 1 / 2 workers ({device.type})",
                f"{one:.0f} s / {two:.0f} s: {one / two:.2f}x throughput", "> 1x",
                verdict(one / two > 1.0, dry_run))]  # fmt: skip


# ---------------------------------------------------------------------------- 6. move


def move_rows(device: torch.device, sizes: Sizes, dry_run: bool) -> list[Row]:
    """A 3-epoch run: epoch 1 on ``device``, epoch 2 on the CPU, epoch 3 on ``device``
    again, each leg stopped after its epoch as a closed session would stop it."""

    class Stop(Exception):
        pass

    root = shared_data()
    if root is not None and is_on_disk("cifar10-subset", root):
        splits, data = load_dataset("cifar10-subset", root), "real CIFAR-10 subset"
    else:
        splits, data = synthetic_splits(sizes.move_n_train, 500), "synthetic data"
    config = TrainConfig(dataset="cifar10", method="region", epochs=3, width=sizes.move_width,
                         n_train=sizes.move_n_train, n_test=500)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="regionmix-gpu-move-") as runs_dir:
        for leg, leg_device in enumerate((device.type, "cpu", device.type), start=1):

            def stop_after(record, leg=leg):
                if record["epoch"] == leg and leg < config.epochs:
                    raise Stop

            try:
                train(config, runs_dir, device=leg_device, splits=splits, progress=False,
                      on_epoch=stop_after)  # fmt: skip
            except Stop:
                pass
        run = Run.of(runs_dir, config)
        epochs = [m["epoch"] for m in run.metrics()]
        legs = [f"{h['device']} ({h['amp']})" for h in run.record["history"]]
        moves = sum("moved_from" in h for h in run.record["history"])
        ok = run.finished and epochs == [1, 2, 3] and len(legs) == 3
        if device.type == "cuda":
            ok = ok and moves == 2
    return [Row("move", f"{data}: epochs by leg", " -> ".join(legs) + f"; epochs {epochs}",
                "each epoch once, 2 moves", verdict(ok, dry_run) if device.type == "cuda"
                else ("ok" if ok else "MISSED") + " (CPU only)")]  # fmt: skip


# ---------------------------------------------------------------------------- table


def print_table(rows: list[Row], header: str) -> None:
    print(header)
    print("| section | check | measured | goal | verdict |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.section} | {r.check} | {r.measured} | {r.goal} | {r.verdict} |")


def run_checks(device: torch.device, sizes: Sizes, sections, dry_run: bool,
               compile_modes: tuple[bool, ...]) -> list[Row]:  # fmt: skip
    splits = synthetic_splits(sizes.n_train, sizes.n_test)
    checks = {
        "sync": lambda: sync_rows(device, sizes, splits, dry_run),
        "epoch": lambda: epoch_rows(device, sizes, splits, dry_run, compile_modes),
        "mixing": lambda: mixing_rows(device, sizes, dry_run),
        "attacks": lambda: attack_rows(device, sizes, splits, dry_run),
        "workers": lambda: worker_rows(device, sizes, splits, dry_run),
        "move": lambda: move_rows(device, sizes, dry_run),
    }
    rows = []
    for name in sections:
        start = time.perf_counter()
        try:
            new = checks[name]()
        except Exception as err:  # one failing check must not hide the others' rows
            new = [Row(name, "(the check itself failed)", f"{type(err).__name__}: {err}"[:120],
                       "", "FAILED")]  # fmt: skip
        rows += new
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="the same code on the CPU at tiny sizes (under a minute)")  # fmt: skip
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    args = parser.parse_args()
    started = time.perf_counter()
    dry_run = args.dry_run or not torch.cuda.is_available()
    if not args.dry_run and not torch.cuda.is_available():
        print("No CUDA device here: the GPU checks cannot run. Running the dry run instead.")
    if dry_run:
        # inductor's C++ build takes minutes on the CPU: the dry run leaves compile out.
        device, sizes, compile_modes = torch.device("cpu"), DRY_RUN, (False,)
        torch.set_num_threads(1)  # tiny tensors: more threads only wait on each other
    else:
        device, sizes = torch.device("cuda"), Sizes()
        compile_modes = (False,) if args.no_compile else (False, True)
    rows = run_checks(device, sizes, args.sections, dry_run, compile_modes)
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
        where = f"{gpu}, AMP {amp_name(amp_dtype(device, True))}"
    else:
        where = "CPU (dry run: tiny sizes, verdicts not judged)"
    header = (f"{where}; torch {torch.__version__}; "
              f"{time.perf_counter() - started:.0f} s in all")  # fmt: skip
    print_table(rows, header)
    return 1 if any(r.verdict == "FAILED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
