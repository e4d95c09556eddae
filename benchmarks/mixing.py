"""Speed of Region Mixup against torchvision's v2.MixUp / v2.CutMix (and timm's Mixup).

Every row is timed in the same run, interleaved with the others, and reported as the
median over rounds of its ratio to v2.MixUp on the same batch (lower is faster).
Targets: on the CPU, region k=2 <= 1.0x v2.MixUp (the call, and its kernel alone with
the parameters drawn beforehand), k=8 <= 2x k=2 and the random grid (uneven tiles) <= 1.2x
k=2; on a GPU, time flat in k (a fixed number of kernels). The other mixing baselines
(GridMix, FMix, ResizeMix) and λ drawn per sample are rows of their own, on the same batch.

    python benchmarks/mixing.py [--device cpu|cuda|all] [--batch-size 128] [--rounds 7]
"""

from __future__ import annotations

import argparse
import itertools
import platform

import torch
from torch.utils import benchmark
from torchvision.transforms import v2

from regionmix_utils.mixing import (
    apply_region_mixup,
    fmix,
    gridmix,
    random_region_mixup,
    region_mixup,
    resizemix,
    sample_region_params,
)


def naive_region_mixup(images, labels, k, num_classes, generator):
    """The textbook per-tile loop, for scale: what the vectorised design replaces."""
    batch, _, height, width = images.shape
    targets = torch.nn.functional.one_hot(labels, num_classes).float()
    out, mixed_targets = images.clone(), torch.zeros_like(targets)
    for i in range(k):
        for j in range(k):
            lam = float(torch.distributions.Beta(1.0, 1.0).sample())
            perm = torch.randperm(batch, generator=generator, device=generator.device)
            rows = slice(i * height // k, (i + 1) * height // k)
            cols = slice(j * width // k, (j + 1) * width // k)
            out[:, :, rows, cols] = (
                lam * images[:, :, rows, cols] + (1 - lam) * images[perm, :, rows, cols]
            )
            mixed_targets += (lam * targets + (1 - lam) * targets[perm]) / k**2
    return out, mixed_targets


def candidates(num_classes: int, batch_size: int, generator: torch.Generator) -> dict:
    """name -> callable(images, labels), baseline first."""
    rows = {
        "torchvision v2.MixUp": v2.MixUp(alpha=1.0, num_classes=num_classes),
        "torchvision v2.CutMix": v2.CutMix(alpha=1.0, num_classes=num_classes),
    }
    try:
        from timm.data import Mixup as TimmMixup

        timm_mix = TimmMixup(mixup_alpha=1.0, cutmix_alpha=0.0, num_classes=num_classes)
        rows["timm Mixup"] = timm_mix
    except ImportError:
        pass
    for k in (1, 2, 4, 8):
        rows[f"region_mixup k={k}"] = lambda x, y, k=k: region_mixup(
            x, y, k=k, num_classes=num_classes, generator=generator
        )
    # The kernel alone, its parameters drawn beforehand (a pool, cycled): the sampler's
    # share of a k=2 call is the difference between this row and the one above.
    pool = [sample_region_params(batch_size, (2, 2), 1.0, generator) for _ in range(64)]
    drawn = itertools.cycle(pool)
    rows["region kernel k=2, drawn"] = lambda x, y: apply_region_mixup(
        x, y, next(drawn), num_classes
    )
    rows["random grid, sides 1 2 4"] = lambda x, y: random_region_mixup(
        x, y, (1, 2, 4), num_classes=num_classes, generator=generator
    )
    rows["region_mixup k=2, λ per sample"] = lambda x, y: region_mixup(
        x, y, k=2, num_classes=num_classes, generator=generator, lam_mode="sample"
    )
    rows["gridmix (4 holes)"] = lambda x, y: gridmix(x, y, 1.0, num_classes, generator)
    rows["fmix (decay 3)"] = lambda x, y: fmix(x, y, 1.0, num_classes, generator)
    rows["resizemix (0.1-0.8)"] = lambda x, y: resizemix(x, y, num_classes, generator)
    for k in (2, 8):
        rows[f"naive per-tile loop k={k}"] = lambda x, y, k=k: naive_region_mixup(
            x, y, k, num_classes, generator
        )
    return rows


def measure(device: str, batch_size: int, size: int, rounds: int, min_run_time: float):
    """Rows of (name, median seconds, median ratio to the first row).

    Each round times every candidate back to back and divides by the baseline's time
    in that round, so drift of the machine's speed between rows cancels out.
    """
    generator = torch.Generator(device).manual_seed(0)
    images = torch.rand(batch_size, 3, size, size, device=device, generator=generator)
    labels = torch.randint(0, 10, (batch_size,), device=device, generator=generator)
    fns = candidates(10, batch_size, generator)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            timer = benchmark.Timer(
                stmt="fn(images, labels)",
                globals={"fn": fn, "images": images, "labels": labels},
                num_threads=torch.get_num_threads(),
            )
            times[name].append(timer.blocked_autorange(min_run_time=min_run_time).median)
    base = torch.tensor(times[next(iter(fns))])
    rows = [
        (name, float(torch.tensor(t).median()), float((torch.tensor(t) / base).median()))
        for name, t in times.items()
    ]
    return rows, times


def same_round_ratio(times: dict, name: str, reference: str) -> float:
    """Median over rounds of time(name) / time(reference), both timed in each round."""
    return float((torch.tensor(times[name]) / torch.tensor(times[reference])).median())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--min-run-time", type=float, default=0.2, help="seconds a row a round")
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
        print("(no CUDA device: GPU rows skipped)")
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, batch {args.batch_size}, float32"
    )
    for device in devices:
        for size in (32, 64):
            rows, times = measure(device, args.batch_size, size, args.rounds, args.min_run_time)
            print(f"\n{device}, {args.batch_size}x3x{size}x{size}")
            print(f"| {'method':<30} | {'median (us)':>11} | {'vs v2.MixUp':>11} |")
            print(f"|{'-' * 32}|{'-' * 13}|{'-' * 13}|")
            for name, seconds, ratio in rows:
                print(f"| {name:<30} | {seconds * 1e6:>11.1f} | {ratio:>10.2f}x |")
            k2 = "region_mixup k=2"
            targets = [
                ("k=2 / v2.MixUp", k2, "torchvision v2.MixUp", 1.0),
                ("kernel k=2 / v2.MixUp", "region kernel k=2, drawn", "torchvision v2.MixUp", 1.0),
                ("k=8 / k=2", "region_mixup k=8", k2, 2.0),
                ("random grid / k=2", "random grid, sides 1 2 4", k2, 1.2),
            ]
            print("targets: " + ", ".join(
                f"{label} {same_round_ratio(times, a, b):.2f}x (<= {goal:g})"
                for label, a, b, goal in targets
            ))  # fmt: skip


if __name__ == "__main__":
    main()
