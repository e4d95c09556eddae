"""Speed of the common-corruption evaluation against a plain clean-accuracy pass.

Both rows evaluate PreAct ResNet-18 (full width, float32, eval mode, batches of 500) on
the same number of 32 px images in the same run: the baseline on images already in
memory, the corruption row as ``evaluate_corruptions`` does it, from CIFAR-10-C's .npy
layout on disk (memory-mapped, one severity slice at a time). The last column is the
time the rate implies for the whole of CIFAR-10-C: 19 corruptions x 5 severities x
10,000 images = 950,000 images (the 15 of the benchmark: 750,000).

    python benchmarks/corruptions.py [--device cpu|cuda|all] [--images 1000]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from regionmix_utils.evaluation.corruptions import evaluate_corruptions
from regionmix_utils.evaluation.robustness import accuracy
from regionmix_utils.models import build_model

FULL = 950_000


class _Run:
    """Just enough of a Run for ``evaluate_corruptions``: a model and no stored records."""

    def __init__(self, model, dataset="cifar10"):
        self.model, self.config = model, type("C", (), {"dataset": dataset})()

    def load_model(self, device):
        return self.model.to(device)

    def find_evaluation(self, key):
        return None

    def predictions(self, settings):
        return None

    def add_evaluation(self, record, predictions=None):
        pass


def measure(device: str, n_images: int) -> list[tuple[str, float]]:
    torch.manual_seed(0)
    model = build_model("cifar10", 10).to(device).eval()
    images = torch.randint(0, 256, (n_images, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (n_images,))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "CIFAR-10-C"
        folder.mkdir()
        per = n_images // 5
        np.save(folder / "fog.npy", images.permute(0, 2, 3, 1).numpy())
        np.save(folder / "labels.npy", labels.numpy())
        x, y = images[:per].to(device).float() / 255, labels[:per].to(device)
        accuracy(model, x, y)  # warm-up
        rows = []
        started = time.perf_counter()
        for _ in range(5):
            accuracy(model, x, y)
        if device == "cuda":
            torch.cuda.synchronize()
        rows.append(
            ("clean accuracy, images in memory", n_images / (time.perf_counter() - started))
        )
        started = time.perf_counter()
        evaluate_corruptions(_Run(model), ("fog",), (1, 2, 3, 4, 5), data_dir=tmp, device=device,
                             progress=False)  # fmt: skip
        if device == "cuda":
            torch.cuda.synchronize()
        rows.append(
            ("corruptions, from CIFAR-10-C .npy", n_images / (time.perf_counter() - started))
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--images", type=int, default=1000, help="images per row (5 severities)")
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
        print("(no CUDA device: GPU rows skipped)")
    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads, "
          f"PreAct ResNet-18 (width 64), float32")  # fmt: skip
    for device in devices:
        rows = measure(device, args.images)
        base = rows[0][1]
        print(f"\n{device}, {args.images} images a row")
        print(f"| {'evaluation':<36} | {'images/s':>9} | {'vs clean':>8} | {'950k images':>11} |")
        print(f"|{'-' * 38}|{'-' * 11}|{'-' * 10}|{'-' * 13}|")
        for name, rate in rows:
            hours = FULL / rate / 3600
            print(f"| {name:<36} | {rate:>9.0f} | {rate / base:>7.2f}x | {hours:>9.1f} h |")


if __name__ == "__main__":
    main()
