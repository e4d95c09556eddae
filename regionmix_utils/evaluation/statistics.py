"""Is a difference between two configurations real? Paired tests over matched seeds.

The runs are paired twice over: a method trained with seed s sees the same batches and
starts from the same weights as every other method with seed s, and every method is
tested on the same test images (in the same order, checked by a fingerprint of the
labels; ``runs.Predictions``).

**The verdict: the unit of inference is the trained model.** A claim is about a
*method*, and a method's result varies from one trained model (seed) to the next more
than the test set can show. So a verdict rests on the S per-seed differences Δ_s (each
seed's accuracy of A minus B on the same images): the paired t-test and its t-interval
with S - 1 degrees of freedom (``scipy.stats.ttest_1samp``; Dietterich, 1998;
Bouthillier et al., 2021), with the exact sign-flip (permutation) p-value beside it,
which assumes no normal distribution of the Δ_s (``scipy.stats.permutation_test``; with
S seeds it cannot go below 2 / 2^S: 0.25 at 3 seeds, 0.0625 at 5, 0.031 at 6). A family
of claims judged together is corrected with Holm's step-down procedure (Holm, 1979;
``statsmodels.stats.multitest.multipletests``). With one seed there is no spread, and no
verdict: ``verdict`` says so instead of computing one.

**About these trained models** (never a verdict about the method):

- per seed, McNemar's exact test on the discordant images (McNemar, 1947; the exact
  version is a two-sided binomial test of b in b + c at 1/2: ``scipy.stats.binomtest``);
- a bootstrap of the test images with the trained models held fixed
  (``bootstrap_deltas(..., resample_seeds=False)``): how much Δ of *these* models would
  move on another draw of test images. One draw of the images serves every seed,
  because every seed was tested on the same images. The two-level form (seeds, then
  images) stays available, but with few seeds its seed level sees only S values (10
  distinct sets at S = 3) and its interval covers too rarely (measured in
  ``tests/test_statistics.py``), so the verdict does not use it.

**The planner** asks how many seeds the same paired t-test needs to detect a Δ at a
level with a power (``statsmodels.stats.power.TTestPower``), from the between-seed
standard deviation of the Δ_s; that standard deviation is itself an estimate from S
seeds, so the plan is given with the range its χ² interval implies (σ̂ from 3 seeds
may be half or six times the true σ: the plan spans a factor of 150).

The resampling code: images are grouped by their pattern of per-seed differences (with
3 seeds and a 0/1 metric there are at most 27), and a resample of the N images is one
multinomial draw of the pattern counts, which has exactly the distribution of N draws
with replacement at a fraction of the cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "MissingPredictions",
    "PairedComparison",
    "SeedDifference",
    "SeedPlan",
    "bootstrap_deltas",
    "compare_paired",
    "holm",
    "mcnemar_exact",
    "paired_correct",
    "plan_seeds",
    "seed_test",
    "seeds_needed",
    "seeds_needed_from_stds",
    "signflip_floor",
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

    The verdict's numbers (over seeds: the trained model is the unit):
        delta: mean over seeds of the per-seed differences Δ_s (points).
        low, high: its ``confidence`` t-interval, S - 1 degrees of freedom (NaN for 1
            seed).
        p_value: two-sided paired t-test p of Δ = 0 (NaN for 1 seed).
        p_signflip: two-sided exact sign-flip p over the S seeds (at least 2 / 2^S).
        seed_sd: standard deviation of the Δ_s (ddof 1; NaN for 1 seed).

    About these trained models (not a verdict about the methods):
        per_seed: one ``SeedDifference`` per seed, in seed order (with McNemar's p).
        image_low, image_high: the ``confidence`` percentile interval of Δ over
            bootstrap resamples of the test images, the models held fixed.
        confidence, n_resamples: the intervals' level; the bootstrap's resamples.
    """

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

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(s.seed for s in self.per_seed)


def bootstrap_deltas(
    differences: np.ndarray, n_resamples: int = 2000, seed: int = 0, resample_seeds: bool = True
) -> np.ndarray:
    """Bootstrap of the mean difference: the test images (columns) are resampled, one
    draw shared by every seed; with ``resample_seeds`` the seeds (rows) are resampled
    first (the two-level bootstrap, which under-covers with few seeds: module docstring).

    Args:
        differences: [S, N] per-image differences A - B of seed s and image i (any unit).
        n_resamples: B.
        seed: seeds numpy's ``Generator`` (same seed, same resamples).
        resample_seeds: False holds the trained models fixed.
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
    if resample_seeds:
        seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_resamples)
    else:
        seed_counts = np.ones((n_resamples, n_seeds))
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


def signflip_floor(n_seeds: int) -> float:
    """The smallest two-sided p an exact sign-flip test over ``n_seeds`` can give:
    2 / 2^S (both all-positive and all-negative sign patterns are as extreme)."""
    return min(1.0, 2 / 2**n_seeds)


def seed_test(deltas: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """The verdict's test on per-seed differences Δ_s [S]: {"delta", "seed_sd", "low",
    "high", "p_value", "p_signflip"}: the mean, the paired t-interval and t-test with
    S - 1 degrees of freedom (``scipy.stats.ttest_1samp``), and the exact two-sided
    sign-flip p (``scipy.stats.permutation_test``, every one of the 2^S sign patterns).
    With one seed the spread, interval and t-test are NaN and the sign-flip p is 1; with
    every Δ_s equal and non-zero the t-test is degenerate (p 0, a zero-width interval).

    Raises:
        ValueError: no Δ, a non-finite Δ, or confidence outside (0, 1).
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.ndim != 1 or deltas.size == 0 or not np.isfinite(deltas).all():
        raise ValueError(f"deltas must be a non-empty [S] array of finite numbers, got {deltas}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean = float(deltas.mean())
    if deltas.size == 1:
        nan = math.nan
        return {"delta": mean, "seed_sd": nan, "low": nan, "high": nan, "p_value": nan,
                "p_signflip": 1.0}  # fmt: skip
    sd = float(deltas.std(ddof=1))
    if sd == 0:  # scipy's t-test divides by zero here
        p = 1.0 if mean == 0 else 0.0
        low = high = mean
    else:
        t = stats.ttest_1samp(deltas, 0.0)
        p = float(t.pvalue)
        low, high = (float(v) for v in t.confidence_interval(confidence))
    flips = stats.permutation_test(
        (deltas,), np.mean, permutation_type="samples", n_resamples=np.inf,
        alternative="two-sided",
    )  # fmt: skip
    return {"delta": mean, "seed_sd": sd, "low": low, "high": high, "p_value": p,
            "p_signflip": float(min(1.0, flips.pvalue))}  # fmt: skip


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
        a, b: seed -> per-image metric [N] (bool "correct", or any number per image,
            such as a loss), images in the same order for every seed and both sides.
        n_resamples, seed: of the test-image bootstrap (``bootstrap_deltas``).
        confidence: level of the intervals, in (0, 1).
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
    tested = seed_test([d.delta for d in per_seed], confidence)
    images = bootstrap_deltas(differences, n_resamples, seed, resample_seeds=False)
    tail = (1 - confidence) / 2
    image_low, image_high = np.quantile(images, [tail, 1 - tail])
    return PairedComparison(
        per_seed=tuple(per_seed), **tested, image_low=float(image_low),
        image_high=float(image_high), confidence=confidence, n_resamples=n_resamples,
    )  # fmt: skip


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


def _least_n(power_of, power: float, max_seeds: int) -> int:
    """The least n >= 2 with ``power_of(n) >= power`` (power grows with n): doubling,
    then bisection; ``max_seeds`` when even that many fall short. statsmodels'
    ``solve_power`` root finder fails to converge near n = 2 (large effects), so its power
    function is searched here instead."""

    def enough(n: int) -> bool:
        return power_of(n) >= power

    if enough(2):
        return 2
    low, high = 2, 4
    while not enough(high):
        if high >= max_seeds:
            return max_seeds
        low, high = high, min(2 * high, max_seeds)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def _two_sided_power(test, effect: float, n: int, level: float) -> float:
    """``test.power`` two-sided; where scipy's noncentral t cannot evaluate the far tail
    (NaN, large effects at few degrees of freedom), the near tail alone (a one-sided
    test at level / 2), which is a lower bound: it can only ask for more seeds."""
    value = float(test.power(effect, n, level, alternative="two-sided"))
    if math.isfinite(value):
        return value
    near = float(test.power(effect, n, level / 2, alternative="larger"))
    return near if math.isfinite(near) else 0.0


def seeds_needed(
    delta: float, seed_sd: float, level: float = 0.05, power: float = 0.8,
    max_seeds: int = 100_000,
) -> int:  # fmt: skip
    """Seeds (pairs of runs) the paired t-test needs to tell a mean difference ``delta``
    from zero at two-sided ``level`` with ``power``, when the per-seed differences have
    standard deviation ``seed_sd`` (same unit as delta): the least n >= 2 with that
    power (``statsmodels.stats.power.TTestPower``, noncentral t with n - 1 degrees of
    freedom; its ``power`` function, searched for n). 0 when ``seed_sd`` is 0 (every
    seed gives the same difference).

    Raises:
        ValueError: delta zero or not finite, seed_sd negative or NaN, level or power
            outside (0, 1).
    """
    from statsmodels.stats.power import TTestPower

    _check_plan(delta, level, power)
    if not seed_sd >= 0:
        raise ValueError(f"seed_sd must be >= 0, got {seed_sd}")
    if seed_sd == 0:
        return 0
    effect = abs(delta) / seed_sd
    return _least_n(lambda n: _two_sided_power(TTestPower(), effect, n, level), power, max_seeds)


def seeds_needed_from_stds(
    delta: float, std_a: float, std_b: float, level: float = 0.05, power: float = 0.8,
    max_seeds: int = 100_000,
) -> int:  # fmt: skip
    """Seeds per configuration an *unpaired* two-sample t-test needs to tell two means
    ``delta`` apart, from each one's own standard deviation over seeds (all a paper's
    mean ± std allows): ``statsmodels.stats.power.TTestIndPower`` at the effect size
    delta / sqrt((std_a² + std_b²) / 2), 2n - 2 degrees of freedom. This is not the
    spread of a paired Δ, which pairing can make smaller or larger: never use it as one.

    Raises:
        ValueError: as ``seeds_needed``; a negative or NaN std.
    """
    from statsmodels.stats.power import TTestIndPower

    _check_plan(delta, level, power)
    if not (std_a >= 0 and std_b >= 0):
        raise ValueError(f"stds must be >= 0, got {std_a} and {std_b}")
    pooled = math.sqrt((std_a**2 + std_b**2) / 2)
    if pooled == 0:
        return 0
    effect = abs(delta) / pooled
    test = TTestIndPower()
    return _least_n(lambda n: _two_sided_power(test, effect, n, level), power, max_seeds)


@dataclass(frozen=True)
class SeedPlan:
    """Seeds the paired t-test needs, with what the spread's uncertainty allows.

    Attributes:
        needed: from the estimated spread σ̂ (None: unknown, one seed).
        low, high: from the ends of σ's ``confidence`` χ² interval (S - 1 df).
        n_seeds: the seeds σ̂ came from.
    """

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


def plan_seeds(
    delta: float, seed_sd: float, n_seeds: int, level: float = 0.05, power: float = 0.8,
    confidence: float = 0.95,
) -> SeedPlan:  # fmt: skip
    """``seeds_needed`` for ``delta`` at the spread σ̂ = ``seed_sd`` measured over
    ``n_seeds`` seeds, and at both ends of σ's χ² interval: (S - 1) σ̂² / σ² ~ χ²(S - 1),
    so σ lies in [σ̂ sqrt((S-1) / χ²_{1-a/2}), σ̂ sqrt((S-1) / χ²_{a/2})] with probability
    ``confidence`` (normal Δ_s). With one seed (or a NaN spread) the plan is unknown.

    Raises:
        ValueError: as ``seeds_needed``; n_seeds < 1.
    """
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    _check_plan(delta, level, power)
    if n_seeds < 2 or not math.isfinite(seed_sd):
        return SeedPlan(None, None, None, n_seeds)
    df, tail = n_seeds - 1, (1 - confidence) / 2
    sd_low = seed_sd * math.sqrt(df / stats.chi2.ppf(1 - tail, df))
    sd_high = seed_sd * math.sqrt(df / stats.chi2.ppf(tail, df))
    return SeedPlan(
        seeds_needed(delta, seed_sd, level, power), seeds_needed(delta, sd_low, level, power),
        seeds_needed(delta, sd_high, level, power), n_seeds,
    )  # fmt: skip


# ------------------------------------------------------------------------ verdicts


def holm(p_values: Sequence[float], level: float = 0.05) -> np.ndarray:
    """Holm-adjusted p-values of a family (``multipletests(..., method="holm")``); NaN
    entries (claims without numbers) are left out of the family and stay NaN.

    Raises:
        ValueError: level outside (0, 1).
    """
    from statsmodels.stats.multitest import multipletests

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    present = ~np.isnan(p)
    if present.any():
        out[present] = multipletests(p[present], alpha=level, method="holm")[1]
    return out


def verdict(
    comparison: PairedComparison, direction: int, p_adjusted: float | None = None,
    level: float = 0.05,
) -> str:  # fmt: skip
    """The verdict on a declared claim that A - B > 0 (``direction`` +1) or < 0 (-1),
    from the paired t-test over seeds: "supported" when p (``p_adjusted``, Holm's within
    a family, or the comparison's own) is below ``level`` and Δ has the declared sign;
    "contradicted" when it is below with the other sign; "not resolved" otherwise; "no
    verdict (one seed)" with a single seed. The direction comes from the declaration,
    never from the data.

    Raises:
        ValueError: direction is not +1 or -1, or level outside (0, 1).
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 (A > B) or -1 (A < B), got {direction!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if comparison.n_seeds < 2:
        return "no verdict (one seed)"
    p = comparison.p_value if p_adjusted is None else p_adjusted
    if not p < level:
        return "not resolved"
    return "supported" if np.sign(comparison.delta) == direction else "contradicted"
