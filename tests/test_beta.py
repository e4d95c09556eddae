"""Beta(α, α) sampling down to α = 0.001: distribution and symmetry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from regionmix_utils.mixing import sample_beta

N = 200_000


def numpy_reference(alpha: float, n: int, seed: int) -> np.ndarray:
    """numpy's Beta sampler rounded to float32, as λ is: near 0 and 1 the float32 values
    are discrete, so the comparison is with rounded draws, not with the float64 cdf."""
    return np.random.default_rng(seed).beta(alpha, alpha, n).astype(np.float32)


@pytest.mark.parametrize("alpha", [0.001, 0.003, 0.01, 0.1, 1.0, 10.0])
def test_matches_numpy_beta_by_two_sample_ks(alpha):
    ours = sample_beta(alpha, N, torch.Generator().manual_seed(7)).numpy()
    assert ours.dtype == np.float32
    reference = numpy_reference(alpha, N, seed=11)
    assert stats.ks_2samp(ours, reference).pvalue > 1e-3


@pytest.mark.parametrize("alpha", [0.001, 0.1])
def test_ks_tells_a_wrong_alpha_apart(alpha):
    """The two-sample test has power: α and 3α are distinguished."""
    ours = sample_beta(alpha, N, torch.Generator().manual_seed(7)).numpy()
    assert stats.ks_2samp(ours, numpy_reference(3 * alpha, N, seed=11)).pvalue < 1e-3


@pytest.mark.parametrize("alpha", [0.001, 0.003, 0.01, 0.1, 0.5, 1.0, 10.0])
def test_symmetric_about_one_half(alpha):
    lam = sample_beta(alpha, N, torch.Generator().manual_seed(3))
    assert abs(float((lam < 0.5).double().mean()) - 0.5) < 0.01
    assert abs(float((lam > 0.5).double().mean()) - 0.5) < 0.01


def test_no_mass_at_one_half_for_tiny_alpha():
    """Beta(0.001, 0.001) puts almost all of its mass at the ends: λ = 1/2 exactly is a
    sign of both gamma draws underflowing."""
    lam = sample_beta(0.001, N, torch.Generator().manual_seed(3))
    assert int((lam == 0.5).sum()) == 0
    assert float(((lam < 1e-3) | (lam > 1 - 1e-3)).double().mean()) > 0.98


@pytest.mark.parametrize("alpha", [0.01, 2.0])
def test_same_seed_same_draws_and_range(alpha):
    a = sample_beta(alpha, 1000, torch.Generator().manual_seed(5))
    b = sample_beta(alpha, 1000, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert a.dtype == torch.float32 and a.shape == (1000,)
    assert bool(((a >= 0) & (a <= 1)).all())


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_alpha_raises(alpha):
    with pytest.raises(ValueError, match="alpha"):
        sample_beta(alpha, 10)
