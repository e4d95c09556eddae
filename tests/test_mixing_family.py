"""GridMix, FMix and ResizeMix against their papers' definitions, pixel by pixel in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from regionmix_utils.config import TrainConfig, run_name
from regionmix_utils.methods import get_method
from regionmix_utils.mixing import (
    MaskParams,
    ResizeParams,
    apply_mask_mix,
    apply_resizemix,
    fmix,
    fourier_noise,
    gridmix,
    resizemix,
    sample_beta,
    sample_fmix_params,
    sample_gridmix_params,
    sample_resizemix_params,
)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
METHODS = {
    "gridmix": lambda x, y, k, g: gridmix(x, y, 0.8, k, g, n_holes=3),
    "fmix": lambda x, y, k, g: fmix(x, y, 0.8, k, g),
    "fmix-soft": lambda x, y, k, g: fmix(x, y, 0.8, k, g, max_soft=0.1),
    "resizemix": lambda x, y, k, g: resizemix(x, y, k, g),
}


def tolerance(dtype: torch.dtype) -> dict:
    eps = torch.finfo(dtype).eps
    return {"rtol": eps, "atol": eps if dtype in (torch.float16, torch.bfloat16) else 1e-6 * eps}


def batch(dtype=torch.float32, channels_last=False, shape=(5, 3, 12, 10), classes=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(*shape, generator=gen, dtype=torch.float64).to(dtype)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, torch.randint(0, classes, (shape[0],), generator=gen), classes


def mask_oracle(images, labels, num_classes, mask, partners):
    """x~[b] = M x[b] + (1 - M) x[p[b]] pixel by pixel; y~ = mean(M) y + (1 - mean(M)) y[p]."""
    x, y = images.double(), F.one_hot(labels, num_classes).double()
    m = mask.double()
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        p = int(partners[b])
        for i in range(x.shape[2]):
            for j in range(x.shape[3]):
                out[b, :, i, j] = m[i, j] * x[b, :, i, j] + (1 - m[i, j]) * x[p, :, i, j]
    share = float(m.mean())
    return out, share * y + (1 - share) * y[partners]


def gridmix_mask_oracle(height, width, lam, top, left, n_holes):
    """The GridMix authors' loop over hole rectangles (GridMixupLoss._get_gridmask),
    square crop of the whole area, hole aspect ratio 1; 1 = keep x_A."""
    side = int(math.sqrt(height * width))
    crop_h, crop_w = min(side, height), min(side, width)
    patch_w = math.ceil(crop_w / n_holes)
    patch_h = patch_w
    ny = math.ceil(crop_h / patch_h)
    hole = min(max(int(patch_w * math.sqrt(1 - lam)), 1), patch_w - 1)
    holes = np.zeros((height, width))
    for i in range(n_holes + 1):
        for j in range(ny + 1):
            x1, y1 = min(patch_w * i, crop_w), min(patch_h * j, crop_h)
            x2, y2 = min(x1 + hole, crop_w), min(y1 + hole, crop_h)
            holes[top + y1 : top + y2, left + x1 : left + x2] = 1
    return torch.from_numpy(1 - holes)


@pytest.mark.parametrize("shape", [(4, 3, 12, 10), (3, 2, 9, 16), (2, 1, 32, 32)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gridmix_mask_is_the_authors_grid_and_pixels_follow_it(shape, seed):
    images, labels, k = batch(shape=shape, seed=seed)
    height, width = shape[2:]
    gen = torch.Generator().manual_seed(seed)
    state = gen.get_state()
    params = sample_gridmix_params(shape[0], height, width, 0.8, gen, n_holes=3)
    # The same draws, in the sampler's order: lambda, then the crop's corner.
    gen.set_state(state)
    lam = float(sample_beta(0.8, 1, gen)[0])
    corner = torch.rand(2, generator=gen, dtype=torch.float64).tolist()
    side = int(math.sqrt(height * width))
    top = int((height - min(side, height)) * corner[0])
    left = int((width - min(side, width)) * corner[1])
    expected_mask = gridmix_mask_oracle(height, width, lam, top, left, 3)
    assert torch.equal(params.mask.double(), expected_mask)
    out = apply_mask_mix(images, labels, params, k)
    want_x, want_y = mask_oracle(images, labels, k, expected_mask, params.partners)
    torch.testing.assert_close(out.images.double(), want_x, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.targets.double(), want_y, atol=1e-6, rtol=0)


@pytest.mark.parametrize("max_soft", [0.0, 0.15])
@pytest.mark.parametrize("size", [(32, 32), (12, 20), (7, 5)])
def test_fmix_mask_mean_is_lambda_to_one_pixel_and_keeps_the_highest_noise(max_soft, size):
    height, width = size
    gen = torch.Generator().manual_seed(3)
    for _ in range(40):
        state = gen.get_state()
        params = sample_fmix_params(4, height, width, 1.0, gen, max_soft=max_soft)
        mask = params.mask.double()
        assert abs(float(mask.mean()) - params.lam_drawn) <= 1 / (height * width) + 1e-12
        gen.set_state(state)
        sample_beta(1.0, 1, gen)
        noise = fourier_noise(height, width, 3.0, gen)
        kept, taken = noise[mask == 1], noise[mask == 0]
        if len(kept) and len(taken):
            assert kept.min() > taken.max()
        if max_soft == 0:
            assert set(mask.unique().tolist()) <= {0.0, 1.0}
        gen.set_state(state)
        sample_fmix_params(4, height, width, 1.0, gen, max_soft=max_soft)  # same draws on


def test_fmix_lambda_is_beta_and_noise_is_low_frequency():
    gen = torch.Generator().manual_seed(0)
    lams = [sample_fmix_params(2, 16, 16, 0.5, gen).lam_drawn for _ in range(500)]
    assert stats.kstest(lams, stats.beta(0.5, 0.5).cdf).pvalue > 1e-3
    # Power at the lowest non-zero frequency exceeds that at the highest by ~(f_max/f_min)^6.
    noise = torch.stack([fourier_noise(32, 32, 3.0, gen) for _ in range(200)])
    power = torch.fft.rfft2(noise).abs().pow(2).mean(0)
    assert power[0, 1] / power[16, 16] > 1e4


@pytest.mark.parametrize("seed", range(6))
def test_resizemix_pastes_the_resized_partner_pixel_by_pixel(seed):
    images, labels, k = batch(shape=(4, 3, 16, 12), seed=seed)
    out = resizemix(images, labels, k, torch.Generator().manual_seed(seed))
    top, left, bottom, right = out.box
    partners = out.partners.view(-1)
    x, y = images.double(), F.one_hot(labels, k).double()
    want = x.clone()
    h, w = bottom - top, right - left
    for b in range(x.shape[0]):
        for i in range(h):
            for j in range(w):
                # nearest neighbour: output pixel i of h reads source floor(i * H / h)
                want[b, :, top + i, left + j] = x[partners[b], :, i * 16 // h, j * 12 // w]
    torch.testing.assert_close(out.images.double(), want, atol=0, rtol=0)
    area = h * w / (16 * 12)
    torch.testing.assert_close(out.targets.double(), (1 - area) * y + area * y[partners])


def test_resizemix_nearest_matches_torch_interpolate_nearest():
    """Our exact-integer nearest neighbour is torch's ``interpolate(mode="nearest")``
    (which OpenMixup's resizemix uses) for every patch size of a 32x32 image."""
    source = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    for side in range(1, 33):
        params = ResizeParams(box=(0, 0, side, side), partners=torch.tensor([0]), scale=0.0)
        ours = apply_resizemix(source, torch.zeros(1, dtype=torch.long), params, 1).images
        theirs = F.interpolate(source, (side, side), mode="nearest")
        assert torch.equal(ours[..., :side, :side], theirs), side


def test_resizemix_scale_is_uniform_on_the_range_and_box_clipped():
    gen = torch.Generator().manual_seed(1)
    draws = [sample_resizemix_params(2, 32, 32, gen) for _ in range(2000)]
    scales = np.array([d.scale for d in draws])
    assert stats.kstest(scales, stats.uniform(0.1, 0.7).cdf).pvalue > 1e-3
    for d in draws:
        top, left, bottom, right = d.box
        assert 0 <= top <= bottom <= 32 and 0 <= left <= right <= 32
        assert bottom - top <= int(32 * d.scale) and right - left <= int(32 * d.scale)


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("seed", range(4))
def test_label_weights_equal_pixel_shares(name, seed):
    """Image b is the indicator of channel b: each source's share of a mixed image's
    pixels is its target weight."""
    batch_size = 5
    images = torch.eye(batch_size, dtype=torch.float64)[:, :, None, None]
    images = images.expand(-1, -1, 14, 11).contiguous()
    out = METHODS[name](images, torch.arange(batch_size), batch_size,
                        torch.Generator().manual_seed(seed))  # fmt: skip
    shares = out.images.mean(dim=(2, 3))
    torch.testing.assert_close(out.targets.double(), shares, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_dtype_layout_generator_and_input_untouched(name, dtype, channels_last):
    images, labels, k = batch(dtype, channels_last, shape=(6, 3, 16, 16))
    before = images.clone()
    mix = METHODS[name]
    out = mix(images, labels, k, torch.Generator().manual_seed(7))
    again = mix(images, labels, k, torch.Generator().manual_seed(7))
    other = mix(images, labels, k, torch.Generator().manual_seed(8))
    assert torch.equal(images, before)
    assert out.images.dtype == dtype and out.images.shape == images.shape
    assert out.images.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert torch.equal(out.images, again.images) and torch.equal(out.targets, again.targets)
    assert not torch.equal(out.images, other.images)
    assert out.targets.dtype == torch.float32
    torch.testing.assert_close(out.targets.sum(1), torch.ones(6), atol=1e-6, rtol=0)
    partners = out.partners.view(-1)
    assert torch.equal(partners.sort().values, torch.arange(6))
    # Every pixel is the float64 blend rounded once.
    if out.mask is not None:
        want, _ = mask_oracle(images, labels, k, out.mask, partners)
        torch.testing.assert_close(out.images.double(), want, **tolerance(dtype))


@pytest.mark.parametrize("name", ["gridmix", "fmix", "resizemix"])
def test_registry_entries_mix_and_name_runs(name):
    method = get_method(name)
    images, labels, k = batch(shape=(4, 3, 32, 32))
    out = method.mix(images, labels, k, TrainConfig(method=name), torch.Generator())
    assert out.images.shape == images.shape and out.targets.shape == (4, k)
    expected = {"gridmix": "gridmix-a1", "fmix": "fmix-a1", "resizemix": "resizemix"}[name]
    assert run_name(TrainConfig(method=name)) == expected
    # ResizeMix reads no α: another α names the same run.
    if name == "resizemix":
        assert TrainConfig(method=name, alpha=0.3) == TrainConfig(method=name)


IMAGES, LABELS = torch.rand(2, 3, 8, 8), torch.zeros(2, dtype=torch.long)
BAD_MASK = MaskParams(torch.ones(4, 4), torch.arange(2), 0.5)
BAD_BOX = ResizeParams((0, 0, 9, 4), torch.arange(2), 0.5)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: sample_gridmix_params(2, 8, 8, n_holes=5), ValueError, "n_holes"),
        (lambda: sample_gridmix_params(2, 8, 8, crop_area=0), ValueError, "crop_area"),
        (lambda: sample_fmix_params(2, 8, 8, decay_power=0), ValueError, "decay_power"),
        (lambda: sample_fmix_params(2, 8, 8, max_soft=0.6), ValueError, "max_soft"),
        (lambda: sample_resizemix_params(2, 8, 8, scale_range=(0.8, 0.1)), ValueError, "low"),
        (lambda: fmix(IMAGES, LABELS, 0, 2), ValueError, "alpha"),
        (lambda: apply_mask_mix(IMAGES, LABELS, BAD_MASK, 2), ValueError, r"params\.mask"),
        (lambda: apply_resizemix(IMAGES, LABELS, BAD_BOX, 2), ValueError, r"params\.box"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
