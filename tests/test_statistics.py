"""Paired statistics: McNemar against hand-worked tables, the two-level bootstrap's
coverage on simulated paired data with a planted Δ, the seed planner against its closed
form and against the textbook t-test answer, the verdict rules, and the pairing of
stored predictions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from regionmix_utils.evaluation.statistics import (
    bootstrap_deltas,
    compare_paired,
    mcnemar_exact,
    paired_correct,
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


def simulate_paired(rng, delta, n_seeds=3, n_images=1000, base=0.04, shared=0.5, seed_sd=0.003):
    """Correct/incorrect of A and B per seed and image, with a planted difference
    ``delta`` (a fraction) between the methods' accuracies over seeds and images.

    Each image has a latent type (A only right, B only right, or neither) drawn with
    probabilities base ± delta / 2; in each seed an image keeps its type with probability
    ``shared`` (images that are hard for one method in every seed) and otherwise draws
    a fresh one with the seed's own shift of delta (N(0, seed_sd), the seed-to-seed
    spread). The expected A - B over seeds and images is ``delta``.
    """

    def draw(up, down, size):
        u = rng.random(size)
        return np.where(u < up, 1, np.where(u < up + down, -1, 0))

    latent = draw(base + delta / 2, base - delta / 2, n_images)
    a, b = {}, {}
    for s in range(n_seeds):
        shifted = delta + rng.normal(0, seed_sd)
        fresh = draw(base + shifted / 2, base - shifted / 2, n_images)
        kind = np.where(rng.random(n_images) < shared, latent, fresh)
        a[s], b[s] = kind == 1, kind == -1
    return a, b


def test_two_level_interval_covers_the_planted_difference():
    rng = np.random.default_rng(2024)
    planted = 1.0  # points
    covered = 0
    for i in range(200):
        a, b = simulate_paired(rng, planted / 100)
        result = compare_paired(a, b, n_resamples=500, seed=i)
        covered += result.low <= planted <= result.high
    assert covered / 200 >= 0.93


def test_bootstrap_p_agrees_with_the_interval():
    rng = np.random.default_rng(0)
    a, b = simulate_paired(rng, 0.04, n_images=2000)
    result = compare_paired(a, b, n_resamples=1000)
    assert result.low > 0 and result.p_value < 0.05
    null = compare_paired(a, a, n_resamples=1000)
    assert (null.delta, null.low, null.high, null.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_bootstrap_is_reproducible_and_unbiased_for_both_resampling_paths():
    rng = np.random.default_rng(1)
    binary = rng.integers(-1, 2, size=(3, 4000)).astype(float)  # few patterns: counts
    continuous = rng.normal(0.5, 1.0, size=(3, 4000))  # many patterns: indices
    for differences in (binary, continuous):
        first = bootstrap_deltas(differences, 400, seed=7)
        assert np.array_equal(first, bootstrap_deltas(differences, 400, seed=7))
        assert first.mean() == pytest.approx(differences.mean(), abs=3 * first.std() / 20)
    # the spread of the mean of 3 x 4000 values: seeds and images both resampled
    assert bootstrap_deltas(continuous, 400).std() == pytest.approx(1 / math.sqrt(4000), rel=0.5)


def test_compare_rejects_unpaired_inputs():
    with pytest.raises(ValueError, match="no seed in common"):
        compare_paired({0: np.ones(4)}, {1: np.ones(4)})
    with pytest.raises(ValueError, match="different numbers"):
        compare_paired({0: np.ones(4)}, {0: np.ones(5)})


# ------------------------------------------------------------------------ planner

Z_SUM_SQUARED = (1.959964 + 0.841621) ** 2  # (z_0.975 + z_0.80)² = 7.84888


@pytest.mark.parametrize(("delta", "sd"), [(0.5, 1.0), (0.3, 0.5), (0.1, 0.2), (1.0, 0.2)])
def test_planner_normal_approximation_is_the_closed_form(delta, sd):
    expected = max(2, math.ceil(Z_SUM_SQUARED * (sd / delta) ** 2))
    assert seeds_needed(delta, sd, method="normal") == expected


def test_planner_from_two_stds_is_the_closed_form():
    # n per method = 7.849 * (0.2² + 0.2²) / 0.1² = 62.8 -> 63
    assert seeds_needed_from_stds(0.1, 0.2, 0.2, method="normal") == 63
    # the paper's CIFAR-10 Region vs Mixup: 7.849 * (0.05² + 0.12²) / 0.30² = 1.47 -> 2
    assert seeds_needed_from_stds(0.30, 0.05, 0.12, method="normal") == 2


def test_planner_exact_t_matches_the_textbook_sample_size():
    # one-sample t-test, effect size 0.5, two-sided 0.05, power 0.8: 34 (Cohen, 1988)
    assert seeds_needed(0.5, 1.0) == 34
    assert seeds_needed(0.5, 1.0) >= seeds_needed(0.5, 1.0, method="normal")
    assert seeds_needed(0.3, 0.0) == 0


def test_planner_never_asks_for_more_seeds_for_a_larger_difference():
    # scipy's noncentral t gives NaN for the far tail at 1 degree of freedom (e.g. a
    # noncentrality of 8): the planner must not read that as enough power
    needed = [seeds_needed(d, 0.13) for d in np.linspace(0.1, 1.0, 46)]
    assert all(a >= b for a, b in itertools.pairwise(needed))
    assert seeds_needed(0.8, 0.13) == seeds_needed(0.85, 0.13) == 3


def test_planner_rejects_bad_arguments():
    with pytest.raises(ValueError, match="delta"):
        seeds_needed(0.0, 1.0)
    with pytest.raises(ValueError, match="seed_sd"):
        seeds_needed(0.3, math.nan)
    with pytest.raises(ValueError, match="method"):
        seeds_needed(0.3, 1.0, method="z")


# ------------------------------------------------------------------------ verdicts


def test_verdict_rules():
    rng = np.random.default_rng(3)
    a, b = simulate_paired(rng, 0.05, n_images=2000)
    clear = compare_paired(a, b, n_resamples=500)
    assert verdict(clear, +0.3) == "supported"
    assert verdict(clear, -0.3) == "contradicted"
    unclear = compare_paired(a, a, n_resamples=100)
    assert verdict(unclear, 0.3, needed=12) == "not resolved (3 seeds; about 12 needed)"


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
