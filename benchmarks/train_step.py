"""Cost of Region Mixup inside a training step, measured against the same step without it.

Three steps on the same model and batch, timed in interleaved rounds:

- "two passes, no mixing": the paper's loss structure (clean + second pass) with the
  second batch left unmixed: the baseline that isolates the mixing's own cost;
- "region mixup k=2": the real step of Algorithm 1 (mix, two passes, backward, SGD);
- "single pass (method none)": plain training, for scale (Algorithm 1 costs two passes).

Target: region mixup within 2% of the two-pass baseline.

    python benchmarks/train_step.py [--width 64] [--size 32] [--rounds 5] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
import torch.nn.functional as F

from regionmix_utils.config import TrainConfig
from regionmix_utils.methods import get_method
from regionmix_utils.mixing import MixedBatch
from regionmix_utils.models import build_model
from regionmix_utils.train import amp_dtype, training_loss


def make_step(model, optimizer, config, images, labels, mode, amp):
    """One training step as the trainer takes it. ``mode``: a method of the registry
    (mixed as the trainer mixes, from a CPU generator, unchecked), "unmixed" (the second
    pass on x~ = x_A with one-hot targets: everything but the mixing) or "none"."""
    batch = len(labels)
    unmixed = MixedBatch(
        images, F.one_hot(labels, 10).float(), torch.ones(1, 1), torch.arange(batch).view(1, 1, -1)
    )
    gen = torch.Generator().manual_seed(0)
    cfg = dataclasses.replace(config, method="region" if mode == "unmixed" else mode)

    def step():
        mixed = None
        if mode == "unmixed":
            mixed = unmixed
        elif get_method(mode).mixes:
            mixed = get_method(mode).mix(images, labels, 10, cfg, gen, validate=False)
        with torch.autocast(images.device.type, dtype=amp, enabled=amp is not None):
            loss = training_loss(model, cfg, images, labels, mixed).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if images.is_cuda:
            torch.cuda.synchronize()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps a row a round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    amp = amp_dtype(device, True)
    config = TrainConfig(dataset="cifar10", method="region", k=2, width=args.width)
    model = build_model("cifar10", 10, args.width).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator(device).manual_seed(0)
    images = torch.rand(args.batch_size, 3, args.size, args.size, device=device, generator=gen)
    labels = torch.randint(0, 10, (args.batch_size,), device=device, generator=gen)
    modes = {
        "two passes, no mixing": "unmixed",
        "region mixup k=2": "region",
        "random grid (region-random)": "region-random",
        "single pass (method none)": "none",
    }
    steps = {
        name: make_step(model, optimizer, config, images, labels, m, amp)
        for name, m in modes.items()
    }
    for step in steps.values():
        step()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - start) / args.steps)
    base = torch.tensor(times["two passes, no mixing"])
    print(
        f"{device.type}, PreAct ResNet-18 width {args.width}, "
        f"batch {args.batch_size}x3x{args.size}x{args.size}, amp {amp}, torch {torch.__version__}"
    )
    print(f"| {'step':<28} | {'median ms':>10} | {'vs two passes, no mixing':>25} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 27}|")
    for name, t in times.items():
        t = torch.tensor(t)
        ratio = float((t / base).median())
        print(f"| {name:<28} | {float(t.median()) * 1e3:>10.1f} | {ratio:>24.3f}x |")


if __name__ == "__main__":
    main()
