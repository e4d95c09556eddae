"""λ per (tile, sample): ``lam_mode="sample"`` against equation 1 with per-sample λ."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from regionmix_utils.config import TrainConfig, run_name
from regionmix_utils.methods import get_method
from regionmix_utils.mixing import (
    RegionParams,
    apply_region_mixup,
    random_region_mixup,
    region_mixup,
    sample_region_params,
)


def oracle(images, labels, num_classes, lam, partners, rows, cols):
    """Equation 1 tile by tile and sample by sample in float64; lam [gh, gw, B]."""
    x = images.double()
    y = F.one_hot(labels, num_classes).double()
    out, targets = torch.empty_like(x), torch.zeros_like(y)
    height, width = x.shape[2:]
    for i in range(len(rows) - 1):
        for j in range(len(cols) - 1):
            r, c = slice(rows[i], rows[i + 1]), slice(cols[j], cols[j + 1])
            area = (rows[i + 1] - rows[i]) * (cols[j + 1] - cols[j]) / (height * width)
            for b in range(x.shape[0]):
                lam_b, p = float(lam[i, j, b]), int(partners[i, j, b])
                out[b, :, r, c] = lam_b * x[b, :, r, c] + (1 - lam_b) * x[p, :, r, c]
                targets[b] += area * (lam_b * y[b] + (1 - lam_b) * y[p])
    return out, targets


@pytest.mark.parametrize("grid", [(1, 1), (2, 2), (3, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_per_sample_lambda_matches_the_oracle(grid, dtype):
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.rand(6, 3, 7, 9, generator=gen, dtype=dtype), torch.arange(6) % 4
    params = sample_region_params(6, grid, 0.7, gen, lam_mode="sample")
    assert params.lam.shape == (*grid, 6) and params.lam.dtype == torch.float32
    out = apply_region_mixup(images, labels, params, num_classes=4)
    rows, cols = out.edges
    want_x, want_y = oracle(images, labels, 4, params.lam, params.partners, rows, cols)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out.images.double(), want_x, atol=tol, rtol=0)
    torch.testing.assert_close(out.targets.double(), want_y, atol=1e-6, rtol=0)
    assert out.images.dtype == dtype and out.lam.shape == (*grid, 6)


def test_label_weights_equal_pixel_shares():
    """Images that are their own index: each source's share of a mixed image's pixels
    equals its target weight."""
    batch, height, width = 5, 10, 6
    images = torch.eye(batch, dtype=torch.float64)[:, :, None, None].expand(-1, -1, height, width)
    labels = torch.arange(batch)
    gen = torch.Generator().manual_seed(4)
    out = random_region_mixup(images.contiguous(), labels, (1, 2, 3), 0.5, batch, gen, "sample")
    shares = out.images.mean(dim=(2, 3))  # [B, B]: share of source c in image b
    torch.testing.assert_close(out.targets.double(), shares, atol=1e-6, rtol=0)
    assert out.lam.ndim == 3


def test_channels_last_and_soft_labels():
    gen = torch.Generator().manual_seed(2)
    images = torch.rand(4, 3, 8, 8, generator=gen).to(memory_format=torch.channels_last)
    soft = torch.softmax(torch.randn(4, 5, generator=gen), 1)
    params = sample_region_params(4, (2, 2), 1.0, gen, lam_mode="sample")
    out = apply_region_mixup(images, soft, params)
    ref = apply_region_mixup(images.contiguous(), soft, params)
    assert out.images.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.images, ref.images, atol=0, rtol=0)
    torch.testing.assert_close(out.targets.sum(1), torch.ones(4))


def test_per_sample_lambdas_are_independent_and_beta():
    gen = torch.Generator().manual_seed(9)
    lam = torch.stack([sample_region_params(8, (2, 2), 0.5, gen, lam_mode="sample").lam
                       for _ in range(2000)])  # fmt: skip  # [N, 2, 2, 8]
    draws = lam.reshape(len(lam), -1).double().numpy()  # 32 λ per call
    corr = np.corrcoef(draws, rowvar=False)[np.triu_indices(draws.shape[1], 1)]
    # 496 pairs of 2000 draws each: independent pairs give |r| below ~0.1.
    assert np.abs(corr).max() < 0.1
    assert stats.kstest(draws.ravel(), stats.beta(0.5, 0.5).cdf).pvalue > 1e-3
    # batch mode shares one λ across samples (the test tells them apart).
    shared = sample_region_params(8, (2, 2), 0.5, gen).lam
    assert shared.shape == (2, 2)


def test_batch_mode_is_unchanged_and_seeded():
    images, labels = torch.rand(4, 3, 8, 8), torch.randint(0, 3, (4,))
    a = region_mixup(images, labels, 2, 1.0, 3, torch.Generator().manual_seed(1))
    b = region_mixup(images, labels, 2, 1.0, 3, torch.Generator().manual_seed(1), lam_mode="batch")
    assert a.lam.shape == (2, 2)
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    c = region_mixup(images, labels, 2, 1.0, 3, torch.Generator().manual_seed(1), lam_mode="sample")
    d = region_mixup(images, labels, 2, 1.0, 3, torch.Generator().manual_seed(1), lam_mode="sample")
    assert torch.equal(c.images, d.images)


def test_registry_and_config_read_lam_mode():
    config = TrainConfig(method="region", lam_mode="sample")
    assert run_name(config) == "region-k2-a1-lamsample"
    assert run_name(TrainConfig(method="region")) == "region-k2-a1"  # old names kept
    assert run_name(TrainConfig(method="mixup", lam_mode="sample")) == "mixup-a1-lamsample"
    # CutMix does not read it: the same run.
    assert TrainConfig(method="cutmix", lam_mode="sample") == TrainConfig(method="cutmix")
    images, labels = torch.rand(4, 3, 8, 8), torch.randint(0, 3, (4,))
    out = get_method("region").mix(images, labels, 3, config, torch.Generator())
    assert out.lam.shape == (2, 2, 4)


@pytest.mark.parametrize(
    "call",
    [
        lambda: TrainConfig(lam_mode="tile"),
        lambda: sample_region_params(4, (2, 2), lam_mode="elem"),
        lambda: region_mixup(
            torch.rand(2, 3, 4, 4), torch.zeros(2, dtype=torch.long), 2, 1.0, 2, lam_mode="x"
        ),
    ],
)
def test_bad_lam_mode_raises(call):
    with pytest.raises(ValueError, match="lam_mode must be one of"):
        call()


def test_wrong_lam_shape_raises():
    params = sample_region_params(4, (2, 2), lam_mode="sample")
    bad = RegionParams(params.lam[..., :3], params.partners)
    with pytest.raises(ValueError, match=r"params\.lam must have shape"):
        apply_region_mixup(torch.rand(4, 3, 4, 4), torch.zeros(4, dtype=torch.long), bad, 2)
