"""Speed of the paired comparison: 3 seeds x 10,000 test images x 2,000 resamples.

``compare_paired`` of ``evaluation.statistics``: the t-test and the exact sign-flip over
the seeds (cheap), and the bootstrap of the test images with the trained models held
fixed (the cost; goal: at most 2 s on 2 CPU cores).
The file is not called statistics.py: run as a script, that would shadow the standard
library's ``statistics`` for everything the script imports.

Rows, measured in the same run on the same simulated predictions (A right on about 96%
of the images, B on about 95.7%, each seed its own errors):

- baseline: the test-image bootstrap written the plain vectorised way, drawing 10,000
  image indices per resample (in chunks; one draw for every seed) and summing the
  differences they pick;
- ``compare_paired`` on 0/1 "correct" (what every accuracy comparison is): images
  grouped by their pattern of per-seed differences, one multinomial draw of the pattern
  counts per resample, plus the per-seed McNemar tests;
- ``compare_paired`` on a continuous per-image metric (e.g. a per-image loss): too many
  patterns to group, so it draws indices as the baseline does.

    python benchmarks/paired_statistics.py [--images 10000] [--seeds 3] [--resamples 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from regionmix_utils.evaluation.statistics import compare_paired


def baseline(differences: np.ndarray, n_resamples: int, seed: int = 0) -> np.ndarray:
    """The test-image bootstrap by drawn indices, seeds fixed: [S, N] -> [B] means."""
    rng = np.random.default_rng(seed)
    n_seeds, n_images = differences.shape
    out = np.empty(n_resamples)
    step = max(1, 4_000_000 // (n_images * n_seeds))
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        images = rng.integers(0, n_images, size=(stop - start, n_images))  # [b, N]
        out[start:stop] = differences.T[images].sum((1, 2))  # [b, N, S] -> [b]
    return out / (n_images * n_seeds)


def simulated(n_seeds: int, n_images: int) -> tuple[dict, dict, dict, dict]:
    rng = np.random.default_rng(0)
    a = {s: rng.random(n_images) > 0.040 for s in range(n_seeds)}
    b = {s: rng.random(n_images) > 0.043 for s in range(n_seeds)}
    losses_a = {s: rng.exponential(0.20, n_images) for s in range(n_seeds)}
    losses_b = {s: rng.exponential(0.21, n_images) for s in range(n_seeds)}
    return a, b, losses_a, losses_b


def timed(function, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    a, b, losses_a, losses_b = simulated(args.seeds, args.images)
    differences = 100.0 * np.stack([a[s].astype(float) - b[s] for s in sorted(a)])
    rows = [
        ("baseline: drawn indices", timed(lambda: baseline(differences, args.resamples))),
        ("compare_paired, 0/1 correct", timed(lambda: compare_paired(a, b, args.resamples))),
        ("compare_paired, continuous metric",
         timed(lambda: compare_paired(losses_a, losses_b, args.resamples, scale=1.0))),
    ]  # fmt: skip
    print(f"numpy {np.__version__}, {platform.machine()}, {os.cpu_count()} CPUs visible; "
          f"{args.seeds} seeds x {args.images:,} images x {args.resamples:,} resamples "
          "(best of 3)")  # fmt: skip
    base = rows[0][1]
    print(f"| {'paired comparison':<36} | {'seconds':>8} | {'vs baseline':>11} |")
    print(f"|{'-' * 38}|{'-' * 10}|{'-' * 13}|")
    for name, seconds in rows:
        print(f"| {name:<36} | {seconds:>8.3f} | {base / seconds:>10.1f}x |")


if __name__ == "__main__":
    main()
