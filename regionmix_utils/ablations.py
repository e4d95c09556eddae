"""Ablations beyond the paper: k x α grids, the clean CE term against k, random regions,
and λ drawn per (tile, sample) instead of per tile.

The paper reports Region Mixup at k = 2 and one (unstated) α. ``ablation_configs``
lists the runs that answer the next questions (notebook 06), ``ablation_frame`` reads
the finished ones into one row per run, and ``aggregate`` summarises seeds.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from regionmix_utils.config import TrainConfig
from regionmix_utils.evaluation.robustness import DEFAULT_EPS
from regionmix_utils.runs import Run

__all__ = ["AGGREGATIONS", "METRICS", "ablation_configs", "ablation_frame", "aggregate", "k_order"]

METRICS = {"test_acc": "test accuracy (%)", "fgsm": "FGSM accuracy (%)"}
AGGREGATIONS = ("mean", "median", "min", "max")
RANDOM = "random"  # the k of Stochastic Region Mixup in tables and plots


def ablation_configs(
    datasets,
    k_values,
    alphas,
    seeds,
    base: TrainConfig | None = None,
    lam_modes=("batch",),
) -> list[TrainConfig]:
    """The runs of the ablation grid, on top of ``base`` (the paper's recipe by default):

    - Region Mixup at every k x α, with the clean CE term;
    - Region Mixup at every k without it (α of ``base``);
    - Stochastic Region Mixup (``region-random``) with it;
    - for each of ``lam_modes`` other than "batch" (Algorithm 1): Region Mixup at every
      k with it (α of ``base``, clean CE term on).
    """
    base = base or TrainConfig()
    configs = []
    for dataset in datasets:
        for seed in seeds:
            run = dataclasses.replace(base, dataset=dataset, seed=seed, method="region")
            configs += [dataclasses.replace(run, k=k, alpha=a) for k in k_values for a in alphas]
            configs += [dataclasses.replace(run, k=k, clean_ce=False) for k in k_values]
            configs.append(dataclasses.replace(run, method="region-random"))
            configs += [dataclasses.replace(run, k=k, lam_mode=mode)
                        for mode in lam_modes if mode != "batch" for k in k_values]  # fmt: skip
    return list(dict.fromkeys(configs))


def k_order(values) -> list[str]:
    """k values as plot categories: numbers in order, then "random"."""
    numbers = sorted({int(v) for v in values if v != RANDOM})
    return [str(v) for v in numbers] + ([RANDOM] if RANDOM in set(values) else [])


def _k_of(config) -> str:
    """The grid side a run mixes with: Mixup is k = 1 (its config keeps the default k,
    which it does not read), random grids are "random"."""
    if config.method == "region-random":
        return RANDOM
    return "1" if config.method == "mixup" else str(config.k)


def ablation_frame(runs: list[Run], fgsm_eps: float = DEFAULT_EPS) -> pd.DataFrame:
    """One row per finished run: dataset, method, k ("1", "2", ..., "random"), alpha,
    clean_ce, lam_mode ("batch": one λ per tile; "sample": per tile and sample), seed,
    test_acc (final epoch, %) and fgsm (accuracy under FGSM at
    ``fgsm_eps`` on the most images evaluated, % ; NaN when not evaluated); then a
    column per own parameter of the methods run (``Method.params``; NaN for the runs
    of other methods), the axis ``viz.parameter_figure`` plots against."""
    rows = []
    for run in runs:
        config = run.config
        fgsm = [
            r for r in run.evaluations()
            if r.get("kind") == "fgsm" and abs(r["eps"] - fgsm_eps) < 1e-9
        ]  # fmt: skip
        best = max(fgsm, key=lambda r: r["n_images"]) if fgsm else None
        rows.append({
            "dataset": config.dataset,
            "method": config.method,
            "k": _k_of(config),
            "alpha": config.alpha,
            "clean_ce": config.clean_ce,
            "lam_mode": config.lam_mode,
            **dict(config.params),  # a method's own parameters: an axis each
            "seed": config.seed,
            "test_acc": run.accuracy(),
            "fgsm": best["accuracy"] if best else float("nan"),
        })  # fmt: skip
    return pd.DataFrame(rows)


def aggregate(frame: pd.DataFrame, by: list[str], metric: str, how: str = "mean") -> pd.DataFrame:
    """``metric`` over seeds per group: columns value (the aggregate), std (over seeds,
    for "mean"; NaN otherwise or for one seed) and n (seeds)."""
    if how not in AGGREGATIONS:
        raise ValueError(f"how must be one of {AGGREGATIONS}, got {how!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {tuple(METRICS)}, got {metric!r}")
    groups = frame.dropna(subset=[metric]).groupby(by, sort=False)[metric]
    out = groups.agg(value=how, n="count")
    out["std"] = groups.std() if how == "mean" else float("nan")
    return out.reset_index()
