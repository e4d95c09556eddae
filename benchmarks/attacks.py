"""Speed of each attack against a clean forward pass, on the same model in one run.

Every row attacks the same images with the same PreAct ResNet-18 (float32, eval mode,
batches of 500 or fewer) through ``attack_outcome`` (as ``regionmix attack`` does), after
one warm-up of the clean pass. With ``--run`` the model is a trained run's and the images
its test images (class-stratified); otherwise an untrained model (random weights, fixed
seed) on random images labelled with its own predictions. APGD, AutoAttack and Square
stop early on images already fooled, so their rates depend on the model: only a trained
run's rows say what evaluating one costs. Columns: images per second, seconds per image,
the ratio to the clean pass, and the time the rate implies for 10,000 test images
(CIFAR-10's test split).

Two AutoAttack rows: "autoattack", the reference settings (fra31/auto-attack "standard":
100 iterations of APGD-CE, APGD-T and FAB-T with 9 target classes, Square-5000), and
"autoattack-fast", torchattacks' own (10 iterations, K - 1 targets). Below the table: the
reference's time per image as a multiple of the fast variant's, and how many images each
of their four attacks ran on (each runs only on the images the ones before left correct,
so most of their cost is the images that resist APGD-CE).

    python benchmarks/attacks.py [--run runs/cifar10/region-k2-a1/seed0] [--device cpu|cuda|all]
                                 [--images 100] [--width 16] [--threads N]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from regionmix_utils.evaluation.robustness import (
    AttackConfig,
    attack_outcome,
    test_images,
)
from regionmix_utils.evaluation.robustness import predictions as clean_predictions
from regionmix_utils.models import build_model
from regionmix_utils.runs import Run

TEST_IMAGES = 10_000
ROWS = {
    "FGSM": AttackConfig("fgsm"),
    "PGD-10": AttackConfig("pgd", steps=10),
    "PGD-50": AttackConfig("pgd", steps=50),
    "APGD-CE (10 iterations)": AttackConfig("apgd-ce", steps=10),
    "Square-100": AttackConfig("square", queries=100),
    "AutoAttack (reference)": AttackConfig("autoattack"),
    "AutoAttack-fast": AttackConfig("autoattack-fast"),
}
REFERENCE, FAST = "AutoAttack (reference)", "AutoAttack-fast"


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(
    device: str, n_images: int, width: int, skip: set[str], run: Path | None = None
) -> list[tuple[str, float, list[dict] | None]]:
    """(row, images per second, AutoAttack's stages or None): the clean pass first, then
    each attack."""
    torch.manual_seed(0)
    if run is not None:
        model = Run(run).load_model(device)
        images, labels = test_images(Run(run), n_images, device=device)
    else:
        model = build_model("cifar10", 10, width).to(device).eval()
        images = torch.rand(n_images, 3, 32, 32, device=device)
        with torch.no_grad():
            labels = model(images).argmax(1)  # every image correct at first
    clean_predictions(model, images)  # warm-up
    _sync(device)
    started = time.perf_counter()
    for _ in range(5):
        clean_predictions(model, images)
    _sync(device)
    rows = [("clean forward pass", 5 * n_images / (time.perf_counter() - started), None)]
    for name, config in ROWS.items():
        if name in skip:
            continue
        started = time.perf_counter()
        _, stages = attack_outcome(model, images, labels, config, progress=False)
        _sync(device)
        rows.append((name, n_images / (time.perf_counter() - started), stages))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a finished run's folder")
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--images", type=int, default=100, help="images a row")
    parser.add_argument("--width", type=int, default=16, help="first-stage channels (paper: 64)")
    parser.add_argument("--skip", nargs="*", default=[], choices=list(ROWS), help="rows left out")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
        print("(no CUDA device: GPU rows skipped)")
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads"
          f"{gpu}, float32, eps 8/255")  # fmt: skip
    if args.run is not None:
        config = Run(args.run).config
        print(f"model: {args.run} (PreAct ResNet-18, width {config.width}, {config.dataset}), "
              f"clean accuracy {Run(args.run).accuracy():.1f}%")  # fmt: skip
    else:
        print(f"model: untrained PreAct ResNet-18 (width {args.width}), random images")
    for device in devices:
        rows = measure(device, args.images, args.width, set(args.skip), args.run)
        base = rows[0][1]
        print(f"\n{device}, {args.images} images a row")
        print(f"| {'evaluation':<26} | {'images/s':>9} | {'s/image':>9} | {'vs clean':>9} "
              f"| {'10k images':>11} |")  # fmt: skip
        print(f"|{'-' * 28}|{'-' * 11}|{'-' * 11}|{'-' * 11}|{'-' * 13}|")
        for name, rate, _ in rows:
            seconds = TEST_IMAGES / rate
            implied = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
            implied = implied if seconds < 7200 else f"{seconds / 3600:.1f} h"
            print(f"| {name:<26} | {rate:>9.1f} | {1 / rate:>9.4f} | {rate / base:>8.4f}x "
                  f"| {implied:>11} |")  # fmt: skip
        rates = {name: rate for name, rate, _ in rows}
        if REFERENCE in rates and FAST in rates:
            print(f"\nAutoAttack per image: reference {1 / rates[REFERENCE]:.3f} s, fast "
                  f"{1 / rates[FAST]:.3f} s: the reference takes "
                  f"{rates[FAST] / rates[REFERENCE]:.1f}x the fast variant's time")  # fmt: skip
        for name, _, stages in rows:
            if stages:
                ran = ", ".join(f"{s['attack']} {s['n_attacked']} -> {s['n_robust_after']}"
                                for s in stages)  # fmt: skip
                print(f"{name}: images attacked -> still correct, per attack: {ran}")


if __name__ == "__main__":
    main()
