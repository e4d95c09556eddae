"""Region Mixup, Mixup and CutMix against equation 1, checked pixel by pixel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from regionmix_utils import CutMix, Mixup, RegionMixup, cutmix, mixing, mixup, region_mixup
from regionmix_utils.methods import methods
from regionmix_utils.mixing import (
    CutMixParams,
    RegionParams,
    apply_cutmix,
    apply_region_mixup,
    sample_region_params,
    tile_areas,
)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def edges(size: int, parts: int) -> list[int]:
    """Tile edges as the public contract states them (independent of the package)."""
    return [(i * size) // parts for i in range(parts + 1)]


def oracle(images: torch.Tensor, labels: torch.Tensor, num_classes: int, lam, partners, tiles=None):
    """Equation 1 computed tile by tile in float64: (images [B,C,H,W], targets [B,K]).

    ``tiles``: (row edges, column edges) of uneven tiles; the even grid by default.
    """
    x = images.double()
    y = F.one_hot(labels, num_classes).double() if labels.ndim == 1 else labels.double()
    gh, gw = lam.shape
    height, width = x.shape[2:]
    rows, cols = tiles or (edges(height, gh), edges(width, gw))
    out, targets = torch.empty_like(x), torch.zeros_like(y)
    for i in range(gh):
        for j in range(gw):
            lam_ij, partner = float(lam[i, j]), partners[i, j].cpu()
            tile = (
                slice(None),
                slice(None),
                slice(rows[i], rows[i + 1]),
                slice(cols[j], cols[j + 1]),
            )
            out[tile] = lam_ij * x[tile] + (1 - lam_ij) * x[partner][tile]
            area = (rows[i + 1] - rows[i]) * (cols[j + 1] - cols[j]) / (height * width)
            targets += area * (lam_ij * y + (1 - lam_ij) * y[partner])
    return out, targets


def tolerance(dtype: torch.dtype) -> dict:
    # Half types: the output must be the float32 blend rounded once (<= 1 ulp).
    eps = torch.finfo(dtype).eps
    return {"rtol": eps, "atol": eps if dtype in (torch.float16, torch.bfloat16) else 1e-6 * eps}


@st.composite
def batches(draw, max_side: int = 12):
    batch = draw(st.integers(1, 6))
    channels = draw(st.integers(1, 3))
    height, width = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    grid = (draw(st.integers(1, height)), draw(st.integers(1, width)))
    num_classes = draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = draw(st.sampled_from(DTYPES))
    channels_last = draw(st.booleans())
    alpha = draw(st.floats(0.05, 8.0))
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, channels, height, width, generator=gen, dtype=torch.float64)
    images = images.to(dtype)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, num_classes, (batch,), generator=gen)
    return images, labels, num_classes, grid, alpha, gen


@settings(max_examples=150, deadline=None)
@given(batches())
def test_every_pixel_and_target_follows_equation_1(batch):
    images, labels, num_classes, grid, alpha, gen = batch
    before = images.clone()
    out = region_mixup(
        images, labels, alpha=alpha, num_classes=num_classes, generator=gen, grid=grid
    )

    expected_images, expected_targets = oracle(images, labels, num_classes, out.lam, out.partners)
    torch.testing.assert_close(out.images.double(), expected_images, **tolerance(images.dtype))
    torch.testing.assert_close(out.targets.double(), expected_targets, rtol=1e-6, atol=1e-6)
    assert torch.equal(images, before), "the input batch was modified"

    assert out.images.dtype == images.dtype and out.images.shape == images.shape
    assert out.images.is_contiguous(memory_format=torch.channels_last) == images.is_contiguous(
        memory_format=torch.channels_last
    )
    assert out.targets.dtype == torch.float32
    assert (out.targets >= 0).all()
    torch.testing.assert_close(out.targets.sum(1), torch.ones(len(labels)), rtol=0, atol=1e-6)
    assert out.lam.shape == grid and ((out.lam >= 0) & (out.lam <= 1)).all()
    assert out.partners.shape == (*grid, len(labels)) and out.partners.dtype == torch.int64
    batch_ids = torch.arange(len(labels)).expand(*grid, -1)
    assert torch.equal(out.partners.sort(dim=-1).values, batch_ids), "a tile's partners repeat"


def test_worked_example_by_hand():
    """Two 1x2x2 images, k=2, chosen lambdas and partners: every value written out."""
    images = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[10.0, 20.0], [30.0, 40.0]]]])
    labels = torch.tensor([0, 1])
    lam = torch.tensor([[1.0, 0.5], [0.25, 0.0]])
    # Tile (0,0) keeps itself, (0,1) swaps, (1,0) swaps, (1,1) keeps itself.
    partners = torch.tensor([[[0, 1], [1, 0]], [[1, 0], [0, 1]]])
    out = apply_region_mixup(images, labels, RegionParams(lam, partners), num_classes=2)
    expected = torch.tensor(
        [
            [[[1.0, 0.5 * 2 + 0.5 * 20], [0.25 * 3 + 0.75 * 30, 4.0]]],
            [[[10.0, 0.5 * 20 + 0.5 * 2], [0.25 * 30 + 0.75 * 3, 40.0]]],
        ]
    )
    torch.testing.assert_close(out.images, expected)
    # Sample 0: its own label weighs (1 + 0.5 + 0.25 + 1)/4; sample 1's label the rest.
    own = (1 + 0.5 + 0.25 + 1) / 4
    torch.testing.assert_close(out.targets, torch.tensor([[own, 1 - own], [1 - own, own]]))


def test_uneven_tiles_weigh_labels_by_true_area():
    # 5 rows into 2 tiles: 2 and 3 rows; 1 column. Tile 0 keeps x_A, tile 1 is the partner.
    images = torch.zeros(2, 1, 5, 1)
    params = RegionParams(torch.tensor([[1.0], [0.0]]), torch.tensor([[[0, 1]], [[1, 0]]]))
    out = apply_region_mixup(images, torch.tensor([0, 1]), params, num_classes=2)
    torch.testing.assert_close(out.targets, torch.tensor([[0.4, 0.6], [0.6, 0.4]]))
    torch.testing.assert_close(
        tile_areas(5, 1, (2, 1)), torch.tensor([[0.4], [0.6]], dtype=torch.float64)
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_k1_is_mixup_bit_for_bit(dtype):
    images = torch.rand(8, 3, 9, 7).to(dtype)
    labels = torch.randint(0, 5, (8,))
    a = region_mixup(
        images, labels, k=1, alpha=0.4, num_classes=5, generator=torch.Generator().manual_seed(3)
    )
    b = mixup(images, labels, alpha=0.4, num_classes=5, generator=torch.Generator().manual_seed(3))
    for field in ("images", "targets", "lam", "partners"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    # Mixup is one blend of the whole image with one partner.
    lam, partner = float(b.lam), b.partners[0, 0]
    torch.testing.assert_close(
        b.images.double(),
        lam * images.double() + (1 - lam) * images[partner].double(),
        **tolerance(dtype),
    )


def test_same_generator_state_same_result_and_seeds_differ():
    images, labels = torch.rand(16, 3, 8, 8), torch.randint(0, 10, (16,))

    def run(seed):
        return region_mixup(
            images, labels, k=4, num_classes=10, generator=torch.Generator().manual_seed(seed)
        )

    a, b, c = run(0), run(0), run(1)
    assert all(
        torch.equal(getattr(a, f), getattr(b, f)) for f in ("images", "targets", "lam", "partners")
    )
    assert not torch.equal(a.lam, c.lam) and not torch.equal(a.partners, c.partners)


def test_global_rng_is_used_without_generator_and_seeded_by_manual_seed():
    images, labels = torch.rand(4, 3, 8, 8), torch.randint(0, 10, (4,))
    torch.manual_seed(5)
    a = region_mixup(images, labels, num_classes=10)
    torch.manual_seed(5)
    b = region_mixup(images, labels, num_classes=10)
    assert torch.equal(a.images, b.images)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_lambdas_follow_beta(alpha):
    gen = torch.Generator().manual_seed(1234)
    lams = torch.cat([sample_region_params(4, (8, 8), alpha, gen).lam.flatten() for _ in range(80)])
    assert stats.kstest(lams.double().numpy(), stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    # A wrong alpha must be told apart: the test has power.
    wrong = alpha * 2.5
    assert stats.kstest(lams.double().numpy(), stats.beta(wrong, wrong).cdf).pvalue < 1e-3


@pytest.mark.parametrize("device_path", ["shuffle", "sort"])
def test_tile_permutations_are_uniform_and_independent(device_path, monkeypatch):
    """Each tile's permutation is uniform over all 3! orders, and two tiles are independent."""
    if device_path == "sort":  # the path used on GPUs, exercised here on the CPU
        sort = mixing.samplers._permutations_by_sort
        monkeypatch.setattr(mixing.samplers, "_random_permutations", sort)
    gen = torch.Generator().manual_seed(7)
    draws = torch.stack(
        [sample_region_params(3, (1, 2), 1.0, gen).partners.view(2, 3) for _ in range(3600)]
    )
    code = draws[..., 0] * 9 + draws[..., 1] * 3 + draws[..., 2]  # [N, 2] permutation ids
    perms = sorted({int(c) for c in code.flatten()})
    assert len(perms) == 6
    index = {p: i for i, p in enumerate(perms)}
    first = np.array([index[int(c)] for c in code[:, 0]])
    second = np.array([index[int(c)] for c in code[:, 1]])
    assert stats.chisquare(np.bincount(first, minlength=6)).pvalue > 1e-3
    joint = np.bincount(first * 6 + second, minlength=36).reshape(6, 6)
    assert stats.chi2_contingency(joint).pvalue > 1e-3
    # Same-permutation-everywhere would be caught: it puts all mass on the diagonal.
    assert np.trace(joint) < 0.5 * joint.sum()


def test_mixup_partner_is_a_uniform_permutation_not_a_roll():
    gen, images, labels = torch.Generator().manual_seed(3), torch.rand(3, 1, 2, 2), torch.arange(3)
    codes = [
        tuple(mixup(images, labels, num_classes=3, generator=gen).partners.view(-1).tolist())
        for _ in range(1200)
    ]
    counts = np.array([codes.count(p) for p in sorted(set(codes))])
    assert len(counts) == 6 and stats.chisquare(counts).pvalue > 1e-3


def test_soft_and_index_labels_agree():
    images, labels = torch.rand(6, 3, 8, 8), torch.randint(0, 4, (6,))
    a = region_mixup(images, labels, k=2, num_classes=4, generator=torch.Generator().manual_seed(0))
    soft = F.one_hot(labels, 4).float()
    b = region_mixup(images, soft, k=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.targets, b.targets)
    # Label-smoothed inputs mix linearly too.
    smooth = soft * 0.9 + 0.1 / 4
    c = region_mixup(images, smooth, k=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(c.targets, a.targets * 0.9 + 0.1 / 4)


def test_float64_soft_labels_stay_float64_and_half_labels_become_float32():
    images = torch.rand(4, 3, 4, 4)
    soft = F.one_hot(torch.arange(4), 4)
    assert (
        region_mixup(images, soft.double(), generator=torch.Generator()).targets.dtype
        == torch.float64
    )
    assert (
        region_mixup(images, soft.bfloat16(), generator=torch.Generator()).targets.dtype
        == torch.float32
    )


def test_transforms_match_functions():
    images, labels = torch.rand(8, 3, 8, 8), torch.randint(0, 10, (8,))

    def gen():
        return torch.Generator().manual_seed(11)

    x, y = RegionMixup(k=4, alpha=0.5, num_classes=10, generator=gen())(images, labels)
    ref = region_mixup(images, labels, k=4, alpha=0.5, num_classes=10, generator=gen())
    assert torch.equal(x, ref.images) and torch.equal(y, ref.targets)
    x, y = Mixup(alpha=0.5, num_classes=10, generator=gen())(images, labels)
    assert torch.equal(x, mixup(images, labels, 0.5, 10, gen()).images)
    x, y = CutMix(alpha=0.5, num_classes=10, generator=gen())(images, labels)
    ref = cutmix(images, labels, 0.5, 10, gen())
    assert torch.equal(x, ref.images) and torch.equal(y, ref.targets)
    assert "k=4" in repr(RegionMixup(k=4)) and "grid=(2, 3)" in repr(RegionMixup(grid=(2, 3)))


def test_rectangular_grid():
    images, labels = torch.rand(5, 3, 8, 12), torch.randint(0, 3, (5,))
    out = region_mixup(images, labels, grid=(2, 3), num_classes=3, generator=torch.Generator())
    assert out.lam.shape == (2, 3) and out.partners.shape == (2, 3, 5)


# ------------------------------------------------------------------------------ CutMix


@settings(max_examples=60, deadline=None)
@given(batches(max_side=16))
def test_cutmix_pastes_the_box_and_weighs_its_true_area(batch):
    images, labels, num_classes, _, alpha, gen = batch
    before = images.clone()
    out = cutmix(images, labels, alpha, num_classes, gen)
    top, left, bottom, right = out.box
    height, width = images.shape[2:]
    assert 0 <= top <= bottom <= height and 0 <= left <= right <= width
    partner = out.partners.view(-1)
    expected = images.clone()
    expected[:, :, top:bottom, left:right] = images[partner][:, :, top:bottom, left:right]
    assert torch.equal(out.images, expected)
    lam = 1 - (bottom - top) * (right - left) / (height * width)
    torch.testing.assert_close(out.lam, torch.tensor([[lam]]))
    one_hot = F.one_hot(labels, num_classes).double()
    torch.testing.assert_close(
        out.targets.double(), lam * one_hot + (1 - lam) * one_hot[partner], rtol=1e-6, atol=1e-6
    )
    assert torch.equal(images, before)
    assert out.images.dtype == images.dtype
    assert out.images.is_contiguous(memory_format=torch.channels_last) == images.is_contiguous(
        memory_format=torch.channels_last
    )


def test_cutmix_lam_is_corrected_when_the_box_is_clipped():
    images, labels = torch.rand(2, 1, 10, 10), torch.tensor([0, 1])
    # A 6x6 box centred in the corner is clipped to 3x3: lambda follows the 9 pixels.
    params = CutMixParams(box=(0, 0, 3, 3), partners=torch.tensor([1, 0]), lam_drawn=1 - 36 / 100)
    out = apply_cutmix(images, labels, params, num_classes=2)
    torch.testing.assert_close(out.lam, torch.tensor([[1 - 9 / 100]]))
    torch.testing.assert_close(out.targets[0], torch.tensor([0.91, 0.09]))


def test_cutmix_box_area_matches_beta_on_average():
    gen = torch.Generator().manual_seed(0)
    lams = [mixing.sample_cutmix_params(2, 64, 64, 1.0, gen) for _ in range(2000)]
    drawn = np.array([p.lam_drawn for p in lams])
    areas = np.array([(p.box[2] - p.box[0]) * (p.box[3] - p.box[1]) / 64**2 for p in lams])
    assert stats.kstest(drawn, stats.beta(1, 1).cdf).pvalue > 1e-3
    assert np.all(areas <= 1 - drawn + 1e-9), "a box larger than drawn"
    assert areas.mean() > 0.25  # clipping shrinks boxes, but not to nothing (E[1 - lam] = 0.5)


# ------------------------------------------------------------------------ bad arguments

IMAGES = torch.rand(4, 3, 8, 8)
LABELS = torch.tensor([0, 1, 2, 3])

BAD_CALLS = [
    (lambda: region_mixup(IMAGES, LABELS, k=0, num_classes=4), ValueError, "k must be"),
    (
        lambda: region_mixup(IMAGES, LABELS, k=9, num_classes=4),
        ValueError,
        r"k must be between 1 and min\(H, W\) = 8",
    ),
    (lambda: region_mixup(IMAGES, LABELS, k=2.0, num_classes=4), TypeError, "k must be an integer"),
    (lambda: region_mixup(IMAGES, LABELS, grid=(2, 9), num_classes=4), ValueError, "grid must fit"),
    (
        lambda: region_mixup(IMAGES, LABELS, grid=(2,), num_classes=4),
        TypeError,
        "grid must be a pair",
    ),
    (
        lambda: region_mixup(IMAGES, LABELS, alpha=0.0, num_classes=4),
        ValueError,
        "alpha must be a positive",
    ),
    (
        lambda: region_mixup(IMAGES, LABELS, alpha=-1.0, num_classes=4),
        ValueError,
        "alpha must be a positive",
    ),
    (
        lambda: region_mixup(IMAGES, LABELS, alpha=math.inf, num_classes=4),
        ValueError,
        "alpha must be a positive finite",
    ),
    (
        lambda: region_mixup(IMAGES, LABELS, alpha=math.nan, num_classes=4),
        ValueError,
        "alpha must be a positive finite",
    ),
    (lambda: region_mixup(IMAGES, LABELS, alpha="1", num_classes=4), TypeError, "alpha must be"),
    (
        lambda: region_mixup(IMAGES[0], LABELS, num_classes=4),
        ValueError,
        r"images must be 4-D \[B, C, H, W\]",
    ),
    (
        lambda: region_mixup((IMAGES * 255).to(torch.uint8), LABELS, num_classes=4),
        TypeError,
        "images must be floating point",
    ),
    (
        lambda: region_mixup(IMAGES.numpy(), LABELS, num_classes=4),
        TypeError,
        "images must be a torch.Tensor",
    ),
    (
        lambda: region_mixup(IMAGES, LABELS[:3], num_classes=4),
        ValueError,
        "labels must have one entry per image",
    ),
    (
        lambda: region_mixup(IMAGES, LABELS, num_classes=3),
        ValueError,
        r"labels must lie in \[0, num_classes - 1\] = \[0, 2\]",
    ),
    (lambda: region_mixup(IMAGES, -LABELS, num_classes=4), ValueError, "labels must lie in"),
    (lambda: region_mixup(IMAGES, LABELS), ValueError, "num_classes is required"),
    (lambda: region_mixup(IMAGES, LABELS.float(), num_classes=4), TypeError, "labels of shape"),
    (
        lambda: region_mixup(IMAGES, F.one_hot(LABELS, 4), num_classes=4),
        TypeError,
        "must be float soft targets",
    ),
    (
        lambda: region_mixup(IMAGES, F.one_hot(LABELS, 4).float(), num_classes=5),
        ValueError,
        "num_classes=5",
    ),
    (lambda: region_mixup(IMAGES, LABELS, num_classes=0), ValueError, "num_classes must be"),
    (
        lambda: region_mixup(IMAGES, LABELS, num_classes=4, generator=0),
        TypeError,
        "generator must be",
    ),
    (lambda: mixup(IMAGES, LABELS, alpha=0, num_classes=4), ValueError, "alpha must be"),
    (lambda: cutmix(IMAGES, LABELS, alpha=0, num_classes=4), ValueError, "alpha must be"),
    (
        lambda: cutmix(IMAGES.long(), LABELS, num_classes=4),
        TypeError,
        "images must be floating point",
    ),
    (lambda: cutmix(IMAGES, LABELS[:2], num_classes=4), ValueError, "labels must have one entry"),
    (
        lambda: apply_region_mixup(
            IMAGES,
            LABELS,
            RegionParams(
                torch.rand(2, 1), torch.zeros(2, 1, 4, dtype=torch.long), row_edges=[0, 5, 5, 8]
            ),
            4,
        ),
        ValueError,
        r"params.row_edges must be 4 increasing pixel positions from 0 to 8 .*got \(0, 5, 5, 8\)",
    ),
    (
        lambda: apply_region_mixup(
            IMAGES,
            LABELS,
            RegionParams(
                torch.rand(1, 2), torch.zeros(1, 2, 4, dtype=torch.long), col_edges=(0, 3, 7)
            ),
            4,
        ),
        ValueError,
        r"params.col_edges must be 3 increasing pixel positions from 0 to 8",
    ),
    (lambda: RegionMixup(k=0), ValueError, "k must be"),
    (lambda: RegionMixup(alpha=-2), ValueError, "alpha must be"),
    (lambda: RegionMixup(k=9, num_classes=4)(IMAGES, LABELS), ValueError, "k must be between"),
    (lambda: CutMix(num_classes=-1), ValueError, "num_classes must be"),
    (
        lambda: apply_region_mixup(
            IMAGES,
            LABELS,
            RegionParams(torch.rand(2, 2), torch.zeros(2, 2, 3, dtype=torch.long)),
            4,
        ),
        ValueError,
        r"params.partners must have shape \(gh, gw, B\)",
    ),
    (
        lambda: apply_cutmix(IMAGES, LABELS, CutMixParams((0, 0, 9, 2), torch.arange(4), 0.5), 4),
        ValueError,
        "params.box must lie inside",
    ),
]


@pytest.mark.parametrize("call, error, message", BAD_CALLS)
def test_bad_arguments_raise_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("method", [m for m in methods() if m.mixes and not m.in_model],
                         ids=lambda m: m.name)  # fmt: skip
@pytest.mark.parametrize("wrong", [4, -1])
def test_every_method_refuses_a_class_out_of_range_naming_it(method, wrong):
    """On the CPU the label scatter finds it (no separate pass); the message is the same."""
    labels = LABELS.clone()
    labels[1] = wrong
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes - 1\] = \[0, 3\]"):
        method(IMAGES, labels, 4, torch.Generator().manual_seed(0))


def test_a_transform_refuses_a_class_out_of_range_on_a_batch_it_leaves_unmixed():
    """p=0: no kernel runs, so no scatter; the labels are checked before one_hot."""
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes - 1\]"):
        RegionMixup(num_classes=4, p=0.0)(IMAGES, torch.tensor([0, 1, 2, 4]))
