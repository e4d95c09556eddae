"""Stochastic Region Mixup: a random grid and random tile edges per batch, checked pixel
by pixel against equation 1 with the tiles' true areas."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from regionmix_utils.methods import get_method
from regionmix_utils.mixing import (
    RandomRegionMixup,
    RegionParams,
    apply_region_mixup,
    random_region_mixup,
    sample_random_region_params,
)

from .test_mixing import batches, oracle, tolerance


@st.composite
def random_batches(draw):
    """A batch of ``test_mixing.batches`` (any shape, dtype and layout), a set of sides
    and a minimum tile side that leaves some side room to fit."""
    images, labels, num_classes, _grid, alpha, gen = draw(batches())
    height, width = images.shape[2:]
    sides = tuple(draw(st.lists(st.integers(1, 12), min_size=1, max_size=4)))
    min_side = draw(st.integers(1, min(4, height, width)))
    if min(sides) * min_side > min(height, width):
        sides = (*sides, 1)
    return images, labels, num_classes, sides, alpha, gen, min_side


@settings(max_examples=150, deadline=None)
@given(random_batches())
def test_every_pixel_follows_equation_1_on_random_uneven_tiles(batch):
    images, labels, num_classes, sides, alpha, gen, min_side = batch
    before = images.clone()
    out = random_region_mixup(images, labels, sides, alpha, num_classes, gen, min_side=min_side)
    rows, cols = out.edges
    gh, gw = out.lam.shape
    height, width = images.shape[2:]
    # The grid: each side from `sides` (where it fits); edges from 0 to the size, every
    # tile at least min_side pixels.
    assert gh in sides and gw in sides and gh * min_side <= height and gw * min_side <= width
    assert rows[0] == 0 and rows[-1] == height and len(rows) == gh + 1
    assert cols[0] == 0 and cols[-1] == width and len(cols) == gw + 1
    assert all(b - a >= min_side for a, b in itertools.pairwise(rows))
    assert all(b - a >= min_side for a, b in itertools.pairwise(cols))
    expected, targets = oracle(images, labels, num_classes, out.lam, out.partners, out.edges)
    torch.testing.assert_close(out.images.double(), expected, **tolerance(images.dtype))
    torch.testing.assert_close(out.targets.double(), targets, rtol=1e-6, atol=1e-6)
    assert torch.equal(images, before), "the input batch was modified"
    assert out.images.dtype == images.dtype
    assert out.images.is_contiguous(memory_format=torch.channels_last) == images.is_contiguous(
        memory_format=torch.channels_last
    )
    torch.testing.assert_close(out.targets.sum(1), torch.ones(len(labels)), rtol=0, atol=1e-6)
    ids = torch.arange(len(labels)).expand(gh, gw, -1)
    assert torch.equal(out.partners.sort(dim=-1).values, ids), "a tile's partners repeat"


def test_uneven_tiles_weigh_labels_by_their_true_area():
    """4x4 images cut at row 1 and column 3: areas 3, 1, 9, 3 sixteenths."""
    images = torch.zeros(2, 1, 4, 4)
    labels = torch.tensor([0, 1])
    lam = torch.zeros(2, 2)  # every tile entirely from the partner
    swap = torch.tensor([1, 0]).expand(2, 2, 2)
    params = RegionParams(lam, swap, row_edges=(0, 1, 4), col_edges=(0, 3, 4))
    out = apply_region_mixup(images, labels, params, 2)
    torch.testing.assert_close(out.targets, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    half = RegionParams(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), swap, (0, 1, 4), (0, 3, 4))
    own = (3 + 3) / 16  # the two tiles that keep x_A
    out = apply_region_mixup(images, labels, half, 2)
    torch.testing.assert_close(out.targets[0], torch.tensor([own, 1 - own]))
    with pytest.raises(ValueError, match=r"params.col_edges must be 3 increasing"):
        apply_region_mixup(images, labels, RegionParams(lam, swap, (0, 1, 4), (0, 4, 4)), 2)


def test_grid_sides_are_uniform_and_independent_so_rectangles_appear():
    gen = torch.Generator().manual_seed(0)
    grids = [sample_random_region_params(4, 32, 32, (1, 2, 4), 1.0, gen).grid for _ in range(1800)]
    index = {1: 0, 2: 1, 4: 2}
    joint = np.zeros((3, 3))
    for gh, gw in grids:
        joint[index[gh], index[gw]] += 1
    assert stats.chisquare(joint.sum(1)).pvalue > 1e-3
    assert stats.chisquare(joint.sum(0)).pvalue > 1e-3
    assert stats.chi2_contingency(joint).pvalue > 1e-3
    assert joint.sum() - np.trace(joint) > 1000  # rectangular grids are most of them


def test_sides_that_do_not_fit_are_skipped():
    gen = torch.Generator().manual_seed(0)
    grids = {sample_random_region_params(2, 3, 32, (2, 4), 1.0, gen).grid for _ in range(100)}
    assert {gh for gh, _ in grids} == {2} and {gw for _, gw in grids} == {2, 4}
    with pytest.raises(ValueError, match="sides must hold a grid side that fits the 3x32"):
        sample_random_region_params(2, 3, 32, (4, 8), 1.0, gen)


def test_cut_positions_are_uniform():
    """One cut in a 5-pixel side: each of the 4 inner positions equally often; with three
    tiles, every one of the 6 pairs of cuts equally often."""
    gen = torch.Generator().manual_seed(1)
    firsts, pairs = [], []
    for _ in range(2400):
        params = sample_random_region_params(2, 5, 5, (2, 3), 1.0, gen)
        rows = params.row_edges
        (firsts if len(rows) == 3 else pairs).append(rows[1:-1])
    assert stats.chisquare(np.unique(firsts, return_counts=True)[1]).pvalue > 1e-3
    pair_counts = np.unique(np.array(pairs), axis=0, return_counts=True)[1]
    assert len(pair_counts) == 6 and stats.chisquare(pair_counts).pvalue > 1e-3


def test_no_tile_is_thinner_than_min_side_and_the_minimum_is_reached():
    """32 x 32 images, sides up to 8: every tile of every draw is at least min_side
    pixels high and wide, and some tiles are exactly min_side (the bound is met, not
    just kept: the draw is not the even grid)."""
    gen = torch.Generator().manual_seed(2)
    for min_side in (1, 2, 3, 4):
        thinnest = []
        for _ in range(200):
            params = sample_random_region_params(2, 32, 32, (1, 2, 4, 8), 1.0, gen,
                                                 min_side=min_side)  # fmt: skip
            sizes = [b - a for edges in (params.row_edges, params.col_edges)
                     for a, b in itertools.pairwise(edges)]  # fmt: skip
            thinnest.append(min(sizes))
        assert min(thinnest) == min_side, f"min_side={min_side}: thinnest tile {min(thinnest)}"
    # 8 tiles of at least 4 pixels fill 32 pixels exactly: the even grid, every time.
    for _ in range(20):
        params = sample_random_region_params(2, 32, 32, (8,), 1.0, gen, min_side=4)
        assert params.row_edges == params.col_edges == tuple(range(0, 33, 4))


def test_min_side_one_is_the_uniform_draw_as_before():
    """The default draws the very edges it drew before min_side existed (the explorer's
    seed-0 random grid on 32 x 32 images, one-pixel strips included), so runs trained
    with region-random replay; a minimum of 4 keeps those strips out."""
    images, labels = torch.rand(8, 3, 32, 32), torch.arange(8)
    old = ((0, 9, 24, 31, 32), (0, 1, 9, 23, 32))
    for min_side in ({}, {"min_side": 1}):
        gen = torch.Generator().manual_seed(0)
        assert random_region_mixup(images, labels, num_classes=8, generator=gen,
                                   **min_side).edges == old  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    out = random_region_mixup(images, labels, num_classes=8, generator=gen, min_side=4)
    assert all(b - a >= 4 for edges in out.edges for a, b in itertools.pairwise(edges))


def test_cut_positions_are_uniform_with_a_minimum_side():
    """Tiles of at least 2 pixels. One cut in a 7-pixel side: positions 2 to 5, each
    equally often. Three tiles in 8 pixels: the 6 edge sets (2+2+4 and its orders,
    2+3+3 and its orders), each equally often."""
    gen = torch.Generator().manual_seed(4)
    firsts, triples = [], []
    for _ in range(2400):
        rows = sample_random_region_params(2, 7, 8, (2,), 1.0, gen, min_side=2).row_edges
        firsts.append(rows[1])
        cols = sample_random_region_params(2, 7, 8, (3,), 1.0, gen, min_side=2).col_edges
        triples.append(cols[1:-1])
    values, counts = np.unique(firsts, return_counts=True)
    assert list(values) == [2, 3, 4, 5] and stats.chisquare(counts).pvalue > 1e-3
    values, counts = np.unique(np.array(triples), axis=0, return_counts=True)
    assert [tuple(v) for v in values] == [(2, 4), (2, 5), (2, 6), (3, 5), (3, 6), (4, 6)]
    assert stats.chisquare(counts).pvalue > 1e-3


def test_a_minimum_side_skips_the_sides_it_cannot_fit():
    """On 32 x 32 images with tiles of at least 5 pixels, 8 tiles (40 pixels) do not fit:
    the grid sides are drawn from 2 and 4 alone, still uniformly."""
    gen = torch.Generator().manual_seed(6)
    grids = [sample_random_region_params(2, 32, 32, (2, 4, 8), 1.0, gen, min_side=5).grid
             for _ in range(600)]  # fmt: skip
    counts = np.unique([gh for gh, _ in grids], return_counts=True)
    assert list(counts[0]) == [2, 4] and stats.chisquare(counts[1]).pvalue > 1e-3
    with pytest.raises(ValueError, match="fits the 8x8 images with tiles of at least 5 pixels"):
        sample_random_region_params(2, 8, 8, (2, 4), 1.0, gen, min_side=5)


@pytest.mark.parametrize("alpha", [0.3, 2.0])
def test_lambdas_follow_beta(alpha):
    gen = torch.Generator().manual_seed(5)
    lams = torch.cat([
        sample_random_region_params(4, 16, 16, (4, 8), alpha, gen).lam.flatten()
        for _ in range(60)
    ])  # fmt: skip
    assert stats.kstest(lams.double().numpy(), stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    wrong = alpha * 2.5
    assert stats.kstest(lams.double().numpy(), stats.beta(wrong, wrong).cdf).pvalue < 1e-3


def test_tile_partners_are_uniform_and_independent():
    """Two tiles of a 2x2 grid: each permutation of 3 samples is uniform, and the two
    tiles' permutations are independent."""
    gen = torch.Generator().manual_seed(7)
    codes = []
    for _ in range(3600):
        p = sample_random_region_params(3, 2, 2, (2,), 1.0, gen).partners.view(4, 3)
        codes.append([int(p[t, 0] * 9 + p[t, 1] * 3 + p[t, 2]) for t in (0, 3)])
    codes = np.array(codes)
    ids = {c: i for i, c in enumerate(sorted(set(codes.flatten())))}
    first, last = np.vectorize(ids.get)(codes[:, 0]), np.vectorize(ids.get)(codes[:, 1])
    assert len(ids) == 6
    assert stats.chisquare(np.bincount(first, minlength=6)).pvalue > 1e-3
    joint = np.bincount(first * 6 + last, minlength=36).reshape(6, 6)
    assert stats.chi2_contingency(joint).pvalue > 1e-3
    assert np.trace(joint) < 0.5 * joint.sum()  # one permutation for all tiles is caught


def test_same_generator_state_same_batch_and_the_transform_agrees():
    images, labels = torch.rand(8, 3, 16, 16), torch.arange(8) % 4
    a = random_region_mixup(
        images, labels, num_classes=4, generator=torch.Generator().manual_seed(3)
    )
    b = random_region_mixup(
        images, labels, num_classes=4, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(a.images, b.images) and a.edges == b.edges
    transform = RandomRegionMixup(num_classes=4, generator=torch.Generator().manual_seed(3))
    mixed, targets = transform(images, labels)
    assert torch.equal(mixed, a.images) and torch.equal(targets, a.targets)
    assert repr(transform).startswith("RandomRegionMixup(sides=(1, 2, 4), alpha=")
    c = random_region_mixup(images, labels, num_classes=4,
                            generator=torch.Generator().manual_seed(3), min_side=3)  # fmt: skip
    transform = RandomRegionMixup(num_classes=4, generator=torch.Generator().manual_seed(3),
                                  min_side=3)  # fmt: skip
    mixed, targets = transform(images, labels)
    assert torch.equal(mixed, c.images) and torch.equal(targets, c.targets)
    assert repr(transform).startswith("RandomRegionMixup(sides=(1, 2, 4), alpha=1.0, min_side=3,")


def test_the_registered_method_reads_sides_and_alpha():
    method = get_method("region-random")
    assert method.reads == ("sides", "alpha", "lam_mode")
    images, labels = torch.rand(4, 3, 32, 32), torch.arange(4)
    out = method.mix(images, labels, 4, {"sides": (8,), "alpha": 1.0}, torch.Generator())
    assert out.lam.shape == (8, 8) and len(set(np.diff(out.edges[0]))) > 1  # uneven


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda x, y: random_region_mixup(x, y, (), num_classes=2), TypeError, "sides must be"),
        (lambda x, y: random_region_mixup(x, y, (0,), num_classes=2), ValueError, "a non-empty"),
        (lambda x, y: random_region_mixup(x, y, (9,), num_classes=2), ValueError, "fits the 8x8"),
        (lambda x, y: random_region_mixup(x, y, alpha=0, num_classes=2), ValueError, "alpha"),
        (
            lambda x, y: random_region_mixup(x, y, num_classes=2, min_side=0),
            ValueError,
            "min_side must be an integer >= 1",
        ),
        (
            lambda x, y: random_region_mixup(x, y, num_classes=2, min_side=2.0),
            TypeError,
            "min_side",
        ),
        (
            lambda x, y: random_region_mixup(x, y, (4,), num_classes=2, min_side=3),
            ValueError,
            "fits the 8x8 images with tiles of at least 3 pixels",
        ),
        (lambda x, y: random_region_mixup(x.long(), y, num_classes=2), TypeError, "floating"),
    ],
)
def test_bad_arguments_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call(torch.rand(2, 3, 8, 8), torch.tensor([0, 1]))
