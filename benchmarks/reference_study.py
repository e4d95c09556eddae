"""The reference study's cost, from its bundle: the measured wall time against the budget
(four hours on two CPU cores), and where the time went.

Nothing is run: the numbers are the ones the study recorded while it ran, its wall time
(``study-timing.json``: every invocation of ``regionmix study``, interrupted ones
included) and, per run, the seconds of each training epoch (``metrics.jsonl``) and of
each evaluation (``eval.json``). Training and evaluation seconds are worker time: with
two workers sharing two cores, their sum is about twice the wall time.

    python benchmarks/reference_study.py [--bundle results/cifar10-cpu-gated]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from regionmix_utils.report import common_recipe, shorten
from regionmix_utils.results import column_label
from regionmix_utils.runs import find_runs
from regionmix_utils.study import find_bundle, study_timing

BUDGET_S = 4 * 3600  # the study's budget on the 2-core machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=None, help="default: the committed bundle")
    args = parser.parse_args()
    bundle = args.bundle or find_bundle()
    if bundle is None:
        raise SystemExit("no bundle: pass --bundle DIR")
    runs = find_runs(bundle)
    train_s: dict[str, float] = defaultdict(float)
    eval_s: dict[str, float] = defaultdict(float)
    by_kind: dict[str, float] = defaultdict(float)
    common = common_recipe(runs)
    for run in runs:
        label = shorten(column_label(run.config, with_ce=True), common)
        train_s[label] += sum(m["seconds"] for m in run.metrics())
        for record in run.evaluations():
            if record["kind"] == "clean":
                continue  # stored with the calibration record, from the same predictions
            eval_s[label] += record["seconds"]
            by_kind[record["kind"]] += record["seconds"]
    timing = study_timing(bundle)
    wall = timing["seconds"]
    print(f"{len(runs)} runs under {bundle}; wall time over {timing['invocations']} "
          f"invocation(s) on {timing['cpus']} core(s)\n")  # fmt: skip
    print("| configuration | training (worker s) | evaluation (worker s) |")
    print("|---|---:|---:|")
    for label in train_s:
        print(f"| {label} | {train_s[label]:8.0f} | {eval_s[label]:8.0f} |")
    print(f"| all | {sum(train_s.values()):8.0f} | {sum(eval_s.values()):8.0f} |\n")
    print("| evaluation | worker s |")
    print("|---|---:|")
    for kind, seconds in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {seconds:8.0f} |")
    print(f"\n| study | wall time | budget | vs budget |\n|---|---:|---:|---:|\n"
          f"| {bundle} | {wall / 60:6.1f} min | {BUDGET_S / 60:.0f} min | "
          f"{wall / BUDGET_S:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
