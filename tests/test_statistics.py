"""Paired statistics: McNemar against hand-worked tables, the verdict interval's coverage
on simulated studies with a planted Δ, the t-test and sign-flip against scipy and by
hand, Holm and the planner against statsmodels and textbook answers, the verdict rules,
and the pairing of stored predictions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from regionmix_utils.evaluation.statistics import (
    bootstrap_deltas,
    compare_paired,
    holm,
    mcnemar_exact,
    paired_correct,
    plan_seeds,
    seed_test,
    seeds_needed,
    seeds_needed_from_stds,
    verdict,
)
from regionmix_utils.runs import Predictions, Run

# ------------------------------------------------------------------------ McNemar


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        # 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096 = 0.03857
        (10, 2, 0.0386),
        (2, 10, 0.0386),
        # 2 * P(X <= 0), X ~ Bin(5, 1/2) = 2 / 32
        (0, 5, 0.0625),
        # b = c: the two tails cover everything
        (7, 7, 1.0),
        (0, 0, 1.0),
    ],
)
def test_exact_mcnemar_on_hand_worked_tables(b, c, expected):
    assert mcnemar_exact(b, c) == pytest.approx(expected, abs=5e-5)


def test_exact_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError, match="discordant"):
        mcnemar_exact(-1, 3)


def test_per_seed_counts_and_differences_by_hand():
    # Seed 0: A right on images 0-3, B right on 2-5 -> b = 2 (images 0, 1), c = 2; Δ 0.
    # Seed 1: A right on 0-4, B on 0-1 -> b = 3, c = 0; Δ = (5 - 2) / 8 = 37.5 points.
    a = {0: np.array([1, 1, 1, 1, 0, 0, 0, 0], bool), 1: np.array([1, 1, 1, 1, 1, 0, 0, 0], bool)}
    b = {0: np.array([0, 0, 1, 1, 1, 1, 0, 0], bool), 1: np.array([1, 1, 0, 0, 0, 0, 0, 0], bool)}
    result = compare_paired(a, b, n_resamples=200)
    first, second = result.per_seed
    assert (first.a_only, first.b_only, first.delta) == (2, 2, 0.0)
    assert (second.a_only, second.b_only, second.delta) == (3, 0, 37.5)
    assert second.p_mcnemar == pytest.approx(0.25)  # 2 / 2**3
    assert result.delta == pytest.approx(18.75)
    assert result.seed_sd == pytest.approx(37.5 / math.sqrt(2))


# ------------------------------------------------------------------------ bootstrap


def simulate_study(rng, delta, n_seeds, n_images=1017, discordant=0.3, seed_sd=2.5):
    """Per-seed right/wrong of A and B on the same ``n_images`` test images, shaped like
    the reference study: in each seed about ``discordant`` of the images are right under
    one method only; seed s's models differ by delta + u_s points with u_s ~ N(0,
    ``seed_sd``) (the spread between trained models), and each image's outcome is drawn
    afresh per seed (the per-image noise). The method's difference is ``delta`` points."""
    a, b = {}, {}
    for s in range(n_seeds):
        shift = (delta + rng.normal(0, seed_sd)) / 100
        u = rng.random(n_images)
        a_only = u < (discordant + shift) / 2
        b_only = (u >= (discordant + shift) / 2) & (u < discordant)
        a[s], b[s] = a_only, b_only
    return a, b


def per_seed_deltas(a, b) -> np.ndarray:
    return np.array([100 * (a[s].mean() - b[s].mean()) for s in sorted(a)])


def coverage(n_seeds: int, confidence: float = 0.95) -> float:
    """Share of 500 simulated studies whose interval holds the planted Δ (seeded)."""
    rng = np.random.default_rng(1000 + n_seeds)
    planted, covered = 1.0, 0
    for _ in range(500):
        found = seed_test(per_seed_deltas(*simulate_study(rng, planted, n_seeds)), confidence)
        covered += found["low"] <= planted <= found["high"]
    return covered / 500


@pytest.mark.parametrize("n_seeds", [3, 5])
def test_the_verdict_interval_covers_the_planted_difference_95_percent(n_seeds):
    """Bounded on both sides: the 95% t-interval over seeds holds the method's Δ in 93-97%
    of 500 simulated studies; a 90% interval falls below the bound."""
    assert 0.93 <= coverage(n_seeds) <= 0.97
    assert coverage(n_seeds, confidence=0.90) < 0.93


def test_seed_test_is_scipys_t_test_and_the_exact_sign_flip():
    # The committed study's Region Mixup with against without the clean CE term.
    found = seed_test([4.62, 2.65, 9.14])
    assert found["delta"] == pytest.approx(5.47)
    assert found["p_value"] == pytest.approx(0.1044, abs=1e-4)  # t = 2.85, 2 df
    assert (found["low"], found["high"]) == pytest.approx((-2.796, 13.736), abs=1e-3)
    assert found["p_signflip"] == 0.25 == 2 / 2**3  # 2 of the 8 sign patterns
    # Sign flips by hand: 5 seeds, one negative of the smallest size: the patterns at
    # least as extreme are all-positive, that one flipped, and their mirrors: 4 / 32.
    assert seed_test([3.0, 2.0, 4.0, 5.0, -1.0])["p_signflip"] == pytest.approx(4 / 32)
    # The floor, 2 / 2^S: all six positive, or all six negative.
    assert seed_test([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])["p_signflip"] == pytest.approx(0.03125)
    one = seed_test([2.0])
    assert math.isnan(one["p_value"]) and one["p_signflip"] == 1.0
    same = seed_test([1.0, 1.0, 1.0])
    assert (same["p_value"], same["low"], same["high"]) == (0.0, 1.0, 1.0)


def test_compare_paired_tests_over_seeds_and_bootstraps_the_images_of_these_models():
    rng = np.random.default_rng(0)
    a, b = simulate_study(rng, 4.0, 5)
    result = compare_paired(a, b, n_resamples=1000)
    expected = seed_test(per_seed_deltas(a, b))
    assert (result.delta, result.low, result.high, result.p_value) == pytest.approx(
        (expected["delta"], expected["low"], expected["high"], expected["p_value"])
    )
    # the models held fixed: narrower than the interval over seeds, around the same Δ
    assert result.image_low < result.delta < result.image_high
    assert result.image_high - result.image_low < result.high - result.low
    null = compare_paired(a, a, n_resamples=200)
    assert (null.delta, null.image_low, null.image_high, null.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_the_image_interval_is_a_95_percent_percentile_bootstrap_of_the_test_images():
    """``image_low``/``image_high`` at the default confidence are the 95% percentile
    interval of Δ over resampled test images, the models held fixed: recomputed with
    scipy's bootstrap of the per-image mean difference (one draw of the images serves
    every seed, so Δ of a resample is the mean of the images' seed-averaged differences).
    A 90% interval is 0.25 points narrower at each end here; the two bootstraps' draws
    differ by about 0.02."""
    from scipy import stats

    a, b = simulate_study(np.random.default_rng(5), 2.0, 5)
    result = compare_paired(a, b, n_resamples=20_000)
    per_image = np.mean([100 * (a[s].astype(float) - b[s]) for s in sorted(a)], axis=0)

    def scipy_interval(level: float) -> tuple[float, float]:
        found = stats.bootstrap(
            (per_image,), np.mean, confidence_level=level, batch=2000, n_resamples=20_000,
            method="percentile", random_state=1,
        )  # fmt: skip
        return found.confidence_interval.low, found.confidence_interval.high

    assert result.confidence == 0.95
    assert (result.image_low, result.image_high) == pytest.approx(scipy_interval(0.95), abs=0.06)
    ninety = scipy_interval(0.90)
    assert abs(result.image_low - ninety[0]) > 0.15 and abs(result.image_high - ninety[1]) > 0.15


def test_bootstrap_is_reproducible_and_unbiased_for_0_1_and_continuous_metrics():
    rng = np.random.default_rng(1)
    binary = rng.integers(-1, 2, size=(3, 4000)).astype(float)  # few patterns
    continuous = rng.normal(0.5, 1.0, size=(3, 4000))  # as many patterns as images
    for differences in (binary, continuous):
        first = bootstrap_deltas(differences, 400, seed=7)
        assert np.array_equal(first, bootstrap_deltas(differences, 400, seed=7))
        assert first.mean() == pytest.approx(differences.mean(), abs=3 * first.std() / 20)
    # the spread of the mean of 3 x 4000 values, 1 / sqrt(12000)
    fixed = bootstrap_deltas(continuous, 400)
    assert fixed.std() == pytest.approx(1 / math.sqrt(12000), rel=0.2)


def test_compare_rejects_unpaired_inputs():
    with pytest.raises(ValueError, match="no seed in common"):
        compare_paired({0: np.ones(4)}, {1: np.ones(4)})
    with pytest.raises(ValueError, match="different numbers"):
        compare_paired({0: np.ones(4)}, {0: np.ones(5)})


# ------------------------------------------------------------------------ planner


@pytest.mark.parametrize(("delta", "sd"), [(0.5, 1.0), (0.3, 0.5), (0.1, 0.2), (1.0, 0.2)])
def test_planner_is_statsmodels_paired_t_test_power(delta, sd):
    from statsmodels.stats.power import TTestPower

    n = TTestPower().solve_power(effect_size=delta / sd, alpha=0.05, power=0.8)
    assert seeds_needed(delta, sd) == max(2, math.ceil(n))
    # the least n: one seed fewer falls short of the power (where more than 2 are needed)
    needed = seeds_needed(delta, sd)
    if needed > 2:
        assert TTestPower().power(delta / sd, needed - 1, 0.05) < 0.8 <= TTestPower().power(
            delta / sd, needed, 0.05)  # fmt: skip


def test_planner_matches_the_textbook_sample_sizes():
    # Cohen (1988): effect size 0.5, two-sided 0.05, power 0.8: 34 pairs for the paired
    # (one-sample) t-test; 64 per group for the two-sample t-test (2n - 2 df).
    assert seeds_needed(0.5, 1.0) == 34
    assert seeds_needed_from_stds(0.5, 1.0, 1.0) == 64
    assert seeds_needed(0.3, 0.0) == 0 and seeds_needed_from_stds(0.3, 0.0, 0.0) == 0


def test_the_plan_carries_the_uncertainty_of_the_spread():
    plan = plan_seeds(0.37, 2.0, 3)
    assert plan.low < plan.needed < plan.high
    assert plan.needed == seeds_needed(0.37, 2.0)
    # σ's 95% interval from 3 seeds: [0.52 σ̂, 6.28 σ̂] (χ² with 2 df)
    assert plan.low == seeds_needed(0.37, 2.0 * 0.5207)
    assert plan.high == pytest.approx(seeds_needed(0.37, 2.0 * 6.2847), rel=1e-3)
    assert plan.text == f"about {plan.needed:,} (range {plan.low:,}-{plan.high:,})"
    assert plan_seeds(0.37, float("nan"), 1).text == "unknown (one seed)"


def test_planner_never_asks_for_more_seeds_for_a_larger_difference():
    needed = [seeds_needed(d, 0.13) for d in np.linspace(0.1, 1.0, 46)]
    assert all(a >= b for a, b in itertools.pairwise(needed))


def test_planner_rejects_bad_arguments():
    with pytest.raises(ValueError, match="delta"):
        seeds_needed(0.0, 1.0)
    with pytest.raises(ValueError, match="seed_sd"):
        seeds_needed(0.3, math.nan)
    with pytest.raises(ValueError, match="n_seeds"):
        plan_seeds(0.3, 1.0, 0)


# ------------------------------------------------------------------------ verdicts


def test_holm_is_statsmodels_on_a_textbook_family():
    from statsmodels.stats.multitest import multipletests

    # Holm (1979) step-down on 5 p-values: sorted p_(i) times (m - i + 1), made monotone.
    p = [0.01, 0.04, 0.03, 0.005, 0.20]
    expected = [0.04, 0.09, 0.09, 0.025, 0.20]
    assert holm(p) == pytest.approx(expected)
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    # claims without numbers stay out of the family
    with_missing = holm([0.01, math.nan, 0.04])
    assert math.isnan(with_missing[1]) and with_missing[[0, 2]] == pytest.approx([0.02, 0.04])


def test_verdict_follows_the_declared_direction_never_the_data():
    rng = np.random.default_rng(3)
    a, b = simulate_study(rng, 5.0, 5, seed_sd=0.5)
    clear = compare_paired(a, b, n_resamples=100)
    assert clear.delta > 0 and clear.p_value < 0.01
    assert verdict(clear, +1) == "supported"
    assert verdict(clear, -1) == "contradicted"
    assert verdict(clear, +1, p_adjusted=0.2) == "not resolved"
    unclear = compare_paired(a, a, n_resamples=100)
    assert verdict(unclear, +1) == verdict(unclear, -1) == "not resolved"
    single = compare_paired({0: a[0]}, {0: b[0]}, n_resamples=100)
    assert verdict(single, +1) == "no verdict (one seed)"
    with pytest.raises(ValueError, match="direction"):
        verdict(clear, 0)


# ------------------------------------------------------------------------ pairing runs


def test_paired_correct_reads_stored_predictions_and_names_mismatched_runs(tmp_path):
    labels = np.arange(10) % 3
    settings = {"kind": "clean", "n_images": 10}
    runs_a, runs_b = {}, {}
    for seed in (0, 1):
        for side, runs in (("a", runs_a), ("b", runs_b)):
            run = Run(tmp_path / side / f"seed{seed}")
            predicted = labels if side == "a" else np.zeros(10, int)
            run.add_evaluation({**settings, "accuracy": 0.0},
                               Predictions.from_outputs(predicted, labels))  # fmt: skip
            runs[seed] = run
    a, b = paired_correct(runs_a, runs_b, settings)
    assert a[0].all() and b[1].sum() == 4  # label 0 at images 0, 3, 6, 9
    shuffled = Run(tmp_path / "b" / "seed1")
    shuffled.add_evaluation({**settings, "accuracy": 0.0},
                            Predictions.from_outputs(labels, labels[::-1]))  # fmt: skip
    with pytest.raises(ValueError, match=r"a/seed1.*b/seed1"):
        paired_correct(runs_a, runs_b, settings)
