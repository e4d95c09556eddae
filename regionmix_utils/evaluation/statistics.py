"""Is a difference between two configurations real? Paired tests over matched seeds.

The trained model is the unit of inference (Dietterich, 1998; Bouthillier et al., 2021):
verdicts rest on the per-seed differences Δ_s (paired t-test, exact sign-flip p, Holm,
1979); McNemar per seed and the test-image bootstrap describe these models only."""

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

_CHUNK_CELLS = 4_000_000  # numbers drawn per chunk of resamples (~32 MB)


def _check_level(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value}")


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p of ``b`` (A right only), ``c`` (B only); 1 if none; ValueError."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    return float(stats.binomtest(int(b), int(b + c), 0.5).pvalue) if b + c else 1.0


@dataclass(frozen=True)
class SeedDifference:
    """One seed's paired comparison: a, b the metric's means (percent for 0/1 metrics),
    delta = a - b (points), a_only / b_only the images where A / B is higher (right)."""

    seed: int
    n_images: int
    a: float
    b: float
    delta: float
    a_only: int
    b_only: int
    p_mcnemar: float


@dataclass(frozen=True)
class PairedComparison:
    """Over seeds: ``seed_test``'s; about these models: per_seed, image_low/high (bootstrap)."""

    per_seed: tuple[SeedDifference, ...]
    delta: float
    low: float
    high: float
    p_value: float
    p_signflip: float
    seed_sd: float
    image_low: float
    image_high: float
    confidence: float
    n_resamples: int

    @property
    def n_seeds(self) -> int:
        return len(self.per_seed)


def bootstrap_deltas(differences: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """[n_resamples] means of ``differences`` [S, N] (A - B) over resampled images, models
    fixed: one multinomial draw (N with replacement) of the counts of the images' per-seed
    patterns (<= 3^S for 0/1). ValueError on an empty or non-2-D array or n_resamples < 1."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.ndim != 2 or differences.size == 0:
        raise ValueError(f"differences must be a non-empty [S, N] array, got {differences.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    n_seeds, n_images = differences.shape
    patterns, counts = np.unique(differences.T, axis=0, return_counts=True)  # [K, S], [K]
    step = max(1, _CHUNK_CELLS // (len(patterns) * n_seeds))
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, step):
        size = min(step, n_resamples - start)
        drawn = rng.multinomial(n_images, counts / n_images, size=size)  # [b, K]
        out[start : start + size] = (drawn @ patterns).sum(1)
    return out / (n_images * n_seeds)


def seed_test(deltas: Sequence[float], confidence: float = 0.95,
              alternative: str = "two-sided") -> dict[str, float]:  # fmt: skip
    """Paired t-test, two-sided t-interval (S - 1 df), exact sign-flip p (all 2^S signs) of
    Δ_s [S], p's against ``alternative`` ("two-sided", "greater", "less"): {"delta",
    "seed_sd", "low", "high", "p_value", "p_signflip"}. One seed: NaN, sign-flip 1; equal Δ_s:
    p 0 (1 if 0). ValueError: no Δ, a non-finite Δ, confidence not in (0, 1)."""
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.ndim != 1 or deltas.size == 0 or not np.isfinite(deltas).all():
        raise ValueError(f"deltas must be a non-empty [S] array of finite numbers, got {deltas}")
    _check_level("confidence", confidence)
    mean, nan = float(deltas.mean()), math.nan
    if deltas.size == 1:
        return dict(delta=mean, seed_sd=nan, low=nan, high=nan, p_value=nan, p_signflip=1.0)
    sd = float(deltas.std(ddof=1))
    if sd == 0:  # scipy's t-test divides by zero here
        away = {"two-sided": mean != 0, "greater": mean > 0, "less": mean < 0}[alternative]
        p, low, high = (0.0 if away else 1.0), mean, mean
    else:
        (low, high) = stats.ttest_1samp(deltas, 0.0).confidence_interval(confidence)
        p = float(stats.ttest_1samp(deltas, 0.0, alternative=alternative).pvalue)
    flips = stats.permutation_test((deltas,), np.mean, permutation_type="samples",
                                   n_resamples=np.inf, alternative=alternative)  # fmt: skip
    return dict(delta=mean, seed_sd=sd, low=float(low), high=float(high), p_value=p,
                p_signflip=float(min(1.0, flips.pvalue)))  # fmt: skip


def power_at(effect: float, seed_sd: float, n_seeds: int, level: float = 0.05,
             alternative: str = "two-sided") -> float:  # fmt: skip
    """The paired t-test's power to find |``effect``| over ``n_seeds`` seeds at ``level`` when
    Δ_s have std ``seed_sd`` (statsmodels ``TTestPower``); NaN below 2 seeds or σ̂ NaN or 0."""
    from statsmodels.stats.power import TTestPower  # heavy: only the planner needs it

    if n_seeds < 2 or not seed_sd > 0:
        return math.nan
    side = {"two-sided": "two-sided", "greater": "larger", "less": "larger"}[alternative]
    return float(TTestPower().power(abs(effect) / seed_sd, n_seeds, level, alternative=side))


def _as_matrix(per_seed: Mapping[int, np.ndarray], name: str) -> np.ndarray:
    rows = [np.asarray(v, dtype=np.float64) for v in per_seed.values()]
    if not rows or len({len(r) for r in rows}) != 1 or rows[0].ndim != 1:
        raise ValueError(f"{name} must map each seed to a [N] array, the same N for all")
    return np.stack(rows)


def compare_paired(a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray],
                   n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                   scale: float = 100.0, alternative: str = "two-sided",
                   ) -> PairedComparison:  # fmt: skip
    """A vs B over shared seeds: ``a``, ``b`` map seed -> per-image metric [N], same images in
    order; ``scale`` 100: 0/1 in points; ``alternative``: ``seed_test``'s. ValueError: no
    shared seed, different N, a level outside (0, 1)."""
    _check_level("confidence", confidence)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no seed in common: A has {sorted(a)}, B has {sorted(b)}")
    values_a = _as_matrix({s: a[s] for s in seeds}, "a") * scale
    values_b = _as_matrix({s: b[s] for s in seeds}, "b") * scale
    if values_a.shape != values_b.shape:
        raise ValueError(f"A and B hold different numbers of test images: "
                         f"{values_a.shape[1]} and {values_b.shape[1]}")  # fmt: skip
    differences = values_a - values_b
    per_seed = []
    for s, row_a, row_b, row in zip(seeds, values_a, values_b, differences, strict=True):
        a_only, b_only = int((row > 0).sum()), int((row < 0).sum())
        per_seed.append(SeedDifference(s, len(row), float(row_a.mean()), float(row_b.mean()),
                                       float(row.mean()), a_only, b_only,
                                       mcnemar_exact(a_only, b_only)))  # fmt: skip
    tail = (1 - confidence) / 2
    image_ci = np.quantile(bootstrap_deltas(differences, n_resamples, seed), [tail, 1 - tail])
    return PairedComparison(
        tuple(per_seed), **seed_test([d.delta for d in per_seed], confidence, alternative),
        image_low=float(image_ci[0]), image_high=float(image_ci[1]), confidence=confidence,
        n_resamples=n_resamples)  # fmt: skip


class MissingPredictions(LookupError):
    """Runs without stored per-image predictions for ``settings`` (listed in ``runs``)."""

    def __init__(self, runs: list, settings: dict) -> None:
        self.runs, self.settings = runs, settings
        names = ", ".join(str(r.path) for r in runs)
        super().__init__(f"no per-image predictions of {settings} in {names}")


def paired_correct(runs_a: Mapping[int, Any], runs_b: Mapping[int, Any],
                   settings: dict) -> tuple[dict, dict]:  # fmt: skip
    """Per shared seed, [N] bool "right" of A's and B's runs (seed -> ``Run``) for ``settings``.
    MissingPredictions; ValueError naming two runs of a seed tested on different images."""
    seeds = sorted(set(runs_a) & set(runs_b))
    sides = {"a": runs_a, "b": runs_b}
    found = {(side, s): runs[s].predictions(settings) for side, runs in sides.items()
             for s in seeds}  # fmt: skip
    if missing := [sides[side][s] for (side, s), p in found.items() if p is None]:
        raise MissingPredictions(missing, settings)
    for s in seeds:
        if found["a", s].labels_hash != found["b", s].labels_hash:
            raise ValueError(f"{runs_a[s].path} and {runs_b[s].path} were evaluated on different "
                             f"test images for {settings}: evaluate both on the same split "
                             "and image count")  # fmt: skip
    return tuple({s: found[side, s].correct() for s in seeds} for side in sides)


def _least_n(test, effect: float, level: float, power: float, max_seeds: int) -> int:
    """The least n >= 2 where ``test`` (statsmodels) reaches ``power``, by doubling and
    bisection (``solve_power`` fails near n = 2); a NaN power: the near tail (a lower bound)."""

    def enough(n: int) -> bool:
        value = float(test.power(effect, n, level, alternative="two-sided"))
        if not math.isfinite(value):
            value = float(test.power(effect, n, level / 2, alternative="larger"))
        return math.isfinite(value) and value >= power

    low, high = 1, 2
    while not enough(high):
        if high >= max_seeds:
            return max_seeds
        low, high = high, min(2 * high, max_seeds)
    return bisect.bisect_left(range(low + 1, high), True, key=enough) + low + 1


def _check_plan(delta: float, level: float, power: float) -> None:
    if delta == 0 or not math.isfinite(delta):
        raise ValueError(f"delta must be a finite non-zero difference, got {delta}")
    _check_level("level", level)
    _check_level("power", power)


def _seeds(delta: float, spread: float, test: Callable, level, power, max_seeds, **stds) -> int:
    if bad := {k: v for k, v in stds.items() if not v >= 0}:
        raise ValueError(f"{' and '.join(bad)} must be >= 0, got {bad}")
    _check_plan(delta, level, power)
    return _least_n(test(), abs(delta) / spread, level, power, max_seeds) if spread else 0


def seeds_needed(delta: float, seed_sd: float, level: float = 0.05, power: float = 0.8,
                 max_seeds: int = 100_000) -> int:  # fmt: skip
    """Seeds the paired t-test (``TTestPower``, n - 1 df) needs to find ``delta`` at
    two-sided ``level`` with ``power`` when Δ_s have std ``seed_sd`` (0 when it is 0).
    ValueError on delta 0 or not finite, seed_sd < 0 or NaN, level/power outside (0, 1)."""
    from statsmodels.stats.power import TTestPower  # heavy: only the planner needs it

    return _seeds(delta, seed_sd, TTestPower, level, power, max_seeds, seed_sd=seed_sd)


def seeds_needed_from_stds(delta: float, std_a: float, std_b: float, level: float = 0.05,
                           power: float = 0.8, max_seeds: int = 100_000) -> int:  # fmt: skip
    """Seeds per side an *unpaired* t-test (2n - 2 df) needs from two stds over seeds (all a
    paper's mean ± std allows), never a paired Δ's spread. ValueError as ``seeds_needed``."""
    from statsmodels.stats.power import TTestIndPower  # heavy: only the planner needs it

    pooled = math.sqrt((std_a**2 + std_b**2) / 2)
    return _seeds(delta, pooled, TTestIndPower, level, power, max_seeds, std_a=std_a, std_b=std_b)


@dataclass(frozen=True)
class SeedPlan:
    """Seeds needed at the measured σ̂ and at the ends of σ's χ² interval (None: one seed)."""

    needed: int | None
    low: int | None
    high: int | None
    n_seeds: int

    @property
    def text(self) -> str:
        """ "about 127 (range 34-4,912)", or "unknown (one seed)"."""
        if self.needed is None:
            return "unknown (one seed)"
        return f"about {self.needed:,} (range {self.low:,}-{self.high:,})"


def plan_seeds(delta: float, seed_sd: float, n_seeds: int, level: float = 0.05,
               power: float = 0.8, confidence: float = 0.95) -> SeedPlan:  # fmt: skip
    """``seeds_needed`` at σ̂ = ``seed_sd`` and at both ends of σ's interval, (S - 1) σ̂² / σ²
    ~ χ²(S - 1); unknown for one seed or NaN. ValueError as ``seeds_needed``, n_seeds < 1."""
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    _check_plan(delta, level, power)
    if n_seeds < 2 or not math.isfinite(seed_sd):
        return SeedPlan(None, None, None, n_seeds)
    df, tail = n_seeds - 1, (1 - confidence) / 2
    ends = [seed_sd * math.sqrt(df / stats.chi2.ppf(q, df)) for q in (1 - tail, tail)]
    return SeedPlan(*(seeds_needed(delta, sd, level, power) for sd in (seed_sd, *ends)), n_seeds)


def holm(p_values: Sequence[float], level: float = 0.05) -> np.ndarray:
    """Holm-adjusted p-values; NaN stays NaN, out of the family. ValueError: level not in (0, 1)."""
    from statsmodels.stats.multitest import multipletests  # heavy: only verdicts need it

    _check_level("level", level)
    p = np.asarray(p_values, dtype=np.float64)
    out, present = np.full(p.shape, np.nan), ~np.isnan(p)
    if present.any():
        out[present] = multipletests(p[present], alpha=level, method="holm")[1]
    return out


def verdict(comparison: PairedComparison, direction: int, p_adjusted: float | None = None,
            level: float = 0.05) -> str:  # fmt: skip
    """ "supported" / "contradicted" / "not resolved" / "no verdict (one seed)" on A - B > 0
    (``direction`` +1) or < 0 (-1) from the t-test's p or ``p_adjusted``. ValueError."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 (A > B) or -1 (A < B), got {direction!r}")
    _check_level("level", level)
    if comparison.n_seeds < 2:
        return "no verdict (one seed)"
    p = comparison.p_value if p_adjusted is None else p_adjusted
    if not p < level:
        return "not resolved"
    return "supported" if np.sign(comparison.delta) == direction else "contradicted"
