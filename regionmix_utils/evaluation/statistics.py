"""Is a difference between two configurations real? Paired tests over matched seeds.

The runs are paired twice over: a method trained with seed s sees the same batches and
starts from the same weights as every other method with seed s, and every method is
tested on the same test images (in the same order, checked by a fingerprint of the
labels; ``runs.Predictions``). Paired statistics use that, and are much sharper than a
comparison of two means over seeds.

- Per seed: the difference of accuracies (points) and McNemar's exact test on the
  discordant images (McNemar, 1947; the exact version is a two-sided binomial test of
  b successes in b + c trials at 1/2: ``scipy.stats.binomtest``).
- Across seeds: Δ (mean of the per-seed differences) with a 95% percentile interval from
  a two-level bootstrap: the seeds are resampled, then the test images; one draw of the
  images serves every seed of a resample, because every seed was tested on the same
  images (drawing them apart per seed would count 10,000 images as 30,000). The combined
  p-value is the bootstrap's own (two-sided: twice the share of resampled Δ on the far
  side of zero), so it agrees with the interval: p < 0.05 exactly when the 95% interval
  leaves out zero. A pooled McNemar or Cochran–Mantel–Haenszel test over seeds would
  treat each trained model as fixed and ignore the seed-to-seed spread, the larger part
  of the uncertainty about a *method*; it is not used for verdicts.
- The two-level resampling is not in scipy (``scipy.stats.bootstrap`` resamples one
  level): it is written here, vectorised. Images are grouped by their pattern of
  per-seed differences (with 3 seeds and a 0/1 metric there are at most 27), and a
  resample of the N images is one multinomial draw of the pattern counts, which has
  exactly the distribution of N draws with replacement at a fraction of the cost
  (a metric with many distinct values per image is resampled by drawn indices).
- Seed planner: the seeds needed to resolve a difference Δ at two-sided level 0.05 with
  80% power, from the between-seed standard deviation of the paired Δ (ours) or from
  two methods' own standard deviations (the paper's, unpaired): the normal approximation
  n = ((z_{1-α/2} + z_{power}) σ / Δ)², or the exact t-test power (noncentral t,
  ``scipy.stats.nct``) where n is small.

With 3 seeds the seed level of the bootstrap sees only 3 values: its interval is as wide
as 3 seeds allow, no wider, and it can under-cover when seeds differ more than test
images do. The planner says how many seeds would settle a claim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "MissingPredictions",
    "PairedComparison",
    "SeedDifference",
    "bootstrap_deltas",
    "compare_paired",
    "mcnemar_exact",
    "paired_correct",
    "seeds_needed",
    "seeds_needed_from_stds",
    "verdict",
]

_CHUNK_CELLS = 4_000_000  # numbers drawn at once per chunk of resamples (~32 MB)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value of a paired 2x2 table with discordant counts ``b``
    (right under A, wrong under B) and ``c`` (the other way round): the binomial test of
    b in b + c at 1/2. 1.0 when there is no discordant pair.

    Raises:
        ValueError: a negative count.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(int(b), int(b + c), 0.5, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class SeedDifference:
    """One seed's paired comparison.

    Attributes:
        seed: the training seed both runs share.
        n_images: test images compared.
        a, b: the metric's mean under A and under B (percent for 0/1 metrics).
        delta: a - b (points).
        a_only, b_only: images right under A only / under B only (0/1 metrics; for
            other metrics: images where A's value is higher / lower).
        p_mcnemar: exact McNemar p of (a_only, b_only).
    """

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
    """A paired comparison of two configurations over matched seeds.

    Attributes:
        per_seed: one ``SeedDifference`` per seed, in seed order.
        delta: the mean over seeds of the per-seed differences (points).
        low, high: its ``confidence`` percentile interval (two-level bootstrap).
        p_value: two-sided bootstrap p-value for Δ = 0.
        seed_sd: standard deviation of the per-seed differences (ddof 1; NaN for 1 seed).
        confidence: the interval's level.
        n_resamples: bootstrap resamples.
    """

    per_seed: tuple[SeedDifference, ...]
    delta: float
    low: float
    high: float
    p_value: float
    seed_sd: float
    confidence: float
    n_resamples: int

    @property
    def n_seeds(self) -> int:
        return len(self.per_seed)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(s.seed for s in self.per_seed)


def bootstrap_deltas(differences: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """Two-level bootstrap of the mean difference: resample the seeds (rows), then the
    test images (columns, one draw shared by the seeds of a resample).

    Args:
        differences: [S, N] per-image differences A - B of seed s and image i (any unit).
        n_resamples: B.
        seed: seeds numpy's ``Generator`` (same seed, same resamples).
    Returns:
        [B] resampled means of the S x N differences.
    Raises:
        ValueError: ``differences`` is not a non-empty 2-D array, or n_resamples < 1.
    """
    differences = np.asarray(differences, dtype=np.float64)
    if differences.ndim != 2 or differences.size == 0:
        raise ValueError(f"differences must be a non-empty [S, N] array, got {differences.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    n_seeds, n_images = differences.shape
    patterns, counts = np.unique(differences.T, axis=0, return_counts=True)  # [K, S], [K]
    shares = counts / n_images
    seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_resamples)
    out = np.empty(n_resamples)
    # Few distinct patterns (0/1 metrics): draw pattern counts; many (a continuous
    # metric): draw image indices, which is cheaper than a multinomial over N cells.
    by_pattern = len(patterns) <= n_images // 4
    step = max(1, _CHUNK_CELLS // (len(patterns) if by_pattern else n_images * n_seeds))
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        if by_pattern:
            image_counts = rng.multinomial(n_images, shares, size=stop - start)  # [b, K]
            per_seed = image_counts @ patterns  # [b, S]: each seed's sum over the images
        else:
            drawn = rng.integers(0, n_images, size=(stop - start, n_images))  # [b, N]
            per_seed = differences.T[drawn].sum(1)  # [b, S]
        out[start:stop] = (per_seed * seed_counts[start:stop]).sum(1)
    return out / (n_images * n_seeds)


def _as_matrix(per_seed: Mapping[int, np.ndarray], name: str) -> np.ndarray:
    rows = [np.asarray(v, dtype=np.float64) for v in per_seed.values()]
    if not rows or len({len(r) for r in rows}) != 1 or rows[0].ndim != 1:
        raise ValueError(f"{name} must map each seed to a [N] array, the same N for all")
    return np.stack(rows)


def compare_paired(
    a: Mapping[int, np.ndarray],
    b: Mapping[int, np.ndarray],
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    scale: float = 100.0,
) -> PairedComparison:
    """Paired comparison of configuration A with B over the seeds they share.

    Args:
        a, b: seed -> per-image metric [N] (bool "correct", or any number per image),
            images in the same order for every seed and both configurations.
        n_resamples, seed: of the two-level bootstrap (``bootstrap_deltas``).
        confidence: level of the interval, in (0, 1).
        scale: multiplies the metric (100: a 0/1 metric in percent and points).
    Raises:
        ValueError: no shared seed, arrays of different lengths, a bad level.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no seed in common: A has {sorted(a)}, B has {sorted(b)}")
    values_a = _as_matrix({s: a[s] for s in seeds}, "a") * scale
    values_b = _as_matrix({s: b[s] for s in seeds}, "b") * scale
    if values_a.shape != values_b.shape:
        raise ValueError(
            f"A and B hold different numbers of test images: {values_a.shape[1]} and "
            f"{values_b.shape[1]}"
        )
    differences = values_a - values_b
    per_seed = []
    for row, s in enumerate(seeds):
        a_only = int((differences[row] > 0).sum())
        b_only = int((differences[row] < 0).sum())
        per_seed.append(SeedDifference(
            s, differences.shape[1], float(values_a[row].mean()), float(values_b[row].mean()),
            float(differences[row].mean()), a_only, b_only, mcnemar_exact(a_only, b_only),
        ))  # fmt: skip
    deltas = bootstrap_deltas(differences, n_resamples, seed)
    tail = (1 - confidence) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    below = (np.count_nonzero(deltas <= 0) + 1) / (n_resamples + 1)
    above = (np.count_nonzero(deltas >= 0) + 1) / (n_resamples + 1)
    seed_deltas = np.array([s.delta for s in per_seed])
    return PairedComparison(
        per_seed=tuple(per_seed),
        delta=float(seed_deltas.mean()),
        low=float(low),
        high=float(high),
        p_value=float(min(1.0, 2 * min(below, above))),
        seed_sd=float(seed_deltas.std(ddof=1)) if len(seeds) > 1 else math.nan,
        confidence=confidence,
        n_resamples=n_resamples,
    )


# ------------------------------------------------------------------------ pairing runs


class MissingPredictions(LookupError):
    """Runs evaluated before per-image predictions were stored (or not evaluated).

    Attributes:
        runs: the runs lacking them; settings: the evaluation's settings.
    """

    def __init__(self, runs: list, settings: dict) -> None:
        self.runs, self.settings = runs, settings
        names = ", ".join(str(r.path) for r in runs)
        super().__init__(f"no per-image predictions of {settings} in {names}")


def paired_correct(
    runs_a: Mapping[int, Any], runs_b: Mapping[int, Any], settings: dict
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per shared seed, whether each test image was classified right ([N] bool) by A's
    and by B's run in the evaluation of ``settings``, from their stored predictions.

    Args:
        runs_a, runs_b: seed -> ``runs.Run`` of each configuration.
        settings: an evaluation record's settings (``runs.evaluation_settings``).
    Raises:
        MissingPredictions: some run has no predictions for ``settings``.
        ValueError: two runs of a seed were tested on different images (another order,
            subset or split); the message names both runs.
    """
    seeds = sorted(set(runs_a) & set(runs_b))
    found = {(side, s): runs[s].predictions(settings)
             for side, runs in (("a", runs_a), ("b", runs_b)) for s in seeds}  # fmt: skip
    sides = {"a": runs_a, "b": runs_b}
    missing = [sides[side][s] for (side, s), p in found.items() if p is None]
    if missing:
        raise MissingPredictions(missing, settings)
    for s in seeds:
        if found["a", s].labels_hash != found["b", s].labels_hash:
            raise ValueError(
                f"{runs_a[s].path} and {runs_b[s].path} were evaluated on different test "
                f"images ({found['a', s].labels_hash} and {found['b', s].labels_hash}) for "
                f"{settings}: evaluate both on the same split and image count"
            )
    return (
        {s: found["a", s].correct() for s in seeds},
        {s: found["b", s].correct() for s in seeds},
    )


# ------------------------------------------------------------------------ the planner


def _check_plan(delta: float, level: float, power: float) -> None:
    if delta == 0 or not math.isfinite(delta):
        raise ValueError(f"delta must be a finite non-zero difference, got {delta}")
    if not 0 < level < 1 or not 0 < power < 1:
        raise ValueError(f"level and power must be in (0, 1), got {level} and {power}")


def _t_power(critical: float, df: int, noncentrality: float) -> float:
    """Power of a two-sided t-test: P(|T| > critical) for T ~ noncentral t. A tail that
    scipy cannot evaluate (NaN: it happens for the far tail at 1 degree of freedom) counts
    as 0, which can only make the planner ask for more seeds, never fewer."""
    upper = float(stats.nct.sf(critical, df, noncentrality))
    lower = float(stats.nct.cdf(-critical, df, noncentrality))
    return (upper if math.isfinite(upper) else 0.0) + (lower if math.isfinite(lower) else 0.0)


def _planned(normal: float, power_of, power: float, method: str, max_seeds: int) -> int:
    """The normal approximation's n (at least 2), or the least n >= 2 whose exact power
    ``power_of(n)`` reaches ``power``."""
    if method not in ("normal", "t"):
        raise ValueError(f"method must be 'normal' or 't', got {method!r}")
    n = max(2, math.ceil(normal))
    if method == "normal":
        return n
    while power_of(n) < power:
        n += 1
        if n > max_seeds:
            return max_seeds
    return n


def seeds_needed(
    delta: float,
    seed_sd: float,
    level: float = 0.05,
    power: float = 0.8,
    method: str = "t",
    max_seeds: int = 10_000,
) -> int:
    """Seeds (pairs of runs) needed to tell a paired difference ``delta`` from zero at
    two-sided ``level`` with ``power``, given the between-seed standard deviation
    ``seed_sd`` of the per-seed differences (same unit as delta).

    ``method="normal"``: n = ((z_{1-level/2} + z_{power}) seed_sd / delta)², rounded up,
    at least 2. ``"t"``: the least n >= 2 at which the one-sample t-test has that power
    (noncentral t with n - 1 degrees of freedom), which the normal answer understates
    for small n. 0 when ``seed_sd`` is 0 (every seed gives the same difference: nothing
    left to resolve with more seeds).

    Raises:
        ValueError: delta zero or not finite, seed_sd negative or NaN, level or power
            outside (0, 1), an unknown method.
    """
    _check_plan(delta, level, power)
    if not seed_sd >= 0:
        raise ValueError(f"seed_sd must be >= 0, got {seed_sd}")
    if seed_sd == 0:
        return 0
    z = stats.norm.ppf(1 - level / 2) + stats.norm.ppf(power)
    effect = abs(delta) / seed_sd

    def power_of(n: int) -> float:
        return _t_power(stats.t.ppf(1 - level / 2, n - 1), n - 1, effect * math.sqrt(n))

    return _planned((z / effect) ** 2, power_of, power, method, max_seeds)


def seeds_needed_from_stds(
    delta: float,
    std_a: float,
    std_b: float,
    level: float = 0.05,
    power: float = 0.8,
    method: str = "t",
    max_seeds: int = 10_000,
) -> int:
    """Seeds per configuration needed to tell two means ``delta`` apart, from each one's
    own standard deviation over seeds (unpaired, as a paper's mean ± std allows):
    n = (z_{1-level/2} + z_{power})² (std_a² + std_b²) / delta², or the two-sample
    t-test's exact power with 2n - 2 degrees of freedom (``method="t"``). Pairing can
    only lower this when the paired runs are positively correlated.

    Raises:
        ValueError: as ``seeds_needed``; a negative or NaN std.
    """
    _check_plan(delta, level, power)
    if not (std_a >= 0 and std_b >= 0):
        raise ValueError(f"stds must be >= 0, got {std_a} and {std_b}")
    spread = math.sqrt(std_a**2 + std_b**2)
    if spread == 0:
        return 0
    z = stats.norm.ppf(1 - level / 2) + stats.norm.ppf(power)

    def power_of(n: int) -> float:
        df, noncentrality = 2 * n - 2, abs(delta) / (spread / math.sqrt(n))
        return _t_power(stats.t.ppf(1 - level / 2, df), df, noncentrality)

    return _planned((z * spread / abs(delta)) ** 2, power_of, power, method, max_seeds)


# ------------------------------------------------------------------------ verdicts


def verdict(comparison: PairedComparison, claimed: float, needed: int | None = None) -> str:
    """The verdict on a claim that A - B has the sign of ``claimed`` (e.g. the paper's
    difference): "supported" when the whole interval lies on the claimed side of zero,
    "contradicted" when it lies wholly on the other side, otherwise "not resolved (n
    seeds; about N needed)" (N from ``needed``, when known).

    Raises:
        ValueError: ``claimed`` is zero or not finite (no direction to judge).
    """
    if claimed == 0 or not math.isfinite(claimed):
        raise ValueError(f"claimed must be a finite non-zero difference, got {claimed}")
    sign = 1 if claimed > 0 else -1
    low, high = sorted((sign * comparison.low, sign * comparison.high))
    if low > 0:
        return "supported"
    if high < 0:
        return "contradicted"
    about = "" if needed is None else f"; about {needed} needed"
    n = comparison.n_seeds
    return f"not resolved ({n} seed{'s' if n != 1 else ''}{about})"
