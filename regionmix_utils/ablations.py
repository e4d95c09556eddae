"""Ablations beyond the paper (notebook 06): k x α, clean CE x k, random regions, λ modes."""

import dataclasses

import pandas as pd

from regionmix_utils.config import TrainConfig
from regionmix_utils.evaluation.robustness import DEFAULT_EPS
from regionmix_utils.runs import Run

METRICS = {"test_acc": "test accuracy (%)", "fgsm": "FGSM accuracy (%)"}
AGGREGATIONS = ("mean", "median", "min", "max")
RANDOM = "random"  # the k of Stochastic Region Mixup in tables and plots


def ablation_configs(datasets, k_values, alphas, seeds, base: TrainConfig | None = None,
                     lam_modes=("batch",)) -> list[TrainConfig]:  # fmt: skip
    """Runs on ``base`` (default the paper's recipe): Region Mixup at every k x α, at every k
    without the clean CE and with each non-"batch" ``lam_modes``; ``region-random``."""
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


def ablation_frame(runs: list[Run], fgsm_eps: float = DEFAULT_EPS) -> pd.DataFrame:
    """One row per run: its settings, k ("1", ..., "random"), test_acc and fgsm (% at
    ``fgsm_eps``, most images)."""
    rows = []
    for run in runs:
        config = run.config
        fgsm = [r for r in run.evaluations()
                if r.get("kind") == "fgsm" and abs(r["eps"] - fgsm_eps) < 1e-9]  # fmt: skip
        best = max(fgsm, key=lambda r: r["n_images"], default={"accuracy": float("nan")})
        # Mixup keeps the default k in its config, which it does not read: it is k = 1.
        k = {"region-random": RANDOM, "mixup": "1"}.get(config.method, str(config.k))
        rows.append({"dataset": config.dataset, "method": config.method, "k": k,
                     "alpha": config.alpha, "clean_ce": config.clean_ce,
                     "lam_mode": config.lam_mode, **dict(config.params), "seed": config.seed,
                     "test_acc": run.accuracy(), "fgsm": best["accuracy"]})  # fmt: skip
    return pd.DataFrame(rows)


def aggregate(frame: pd.DataFrame, by: list[str], metric: str, how: str = "mean") -> pd.DataFrame:
    """``metric`` over seeds per group: value, std (for "mean", else NaN) and n (seeds)."""
    for name, value, allowed in (("how", how, AGGREGATIONS), ("metric", metric, tuple(METRICS))):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    groups = frame.dropna(subset=[metric]).groupby(by, sort=False)[metric]
    out = groups.agg(value=how, n="count")
    out["std"] = groups.std() if how == "mean" else float("nan")
    return out.reset_index()
