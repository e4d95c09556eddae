"""Grad-CAM++ where gradients are off, and the pointing game's blank maps and ties."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from regionmix_utils.data import load_dataset, tinyimagenet
from regionmix_utils.evaluation.cam import (
    blank_maps,
    cam_maps,
    energy_in_box,
    localisation_scores,
    pointing_hits,
    score_maps,
)
from regionmix_utils.models import build_model


@pytest.fixture(scope="module")
def model_and_data():
    """An untrained PreAct ResNet-18 (width 8; its maps are not all blank) and 8 shapes."""
    torch.manual_seed(0)
    model = build_model("shapes", 10, width=8).eval()
    test = load_dataset("shapes", n_train=1, n_test=8).test
    return model, test.images.float() / 255, test.labels, test.boxes


# ------------------------------------------------------------- gradients switched off


def _state(model):
    return [(p.requires_grad, p.grad) for p in model.parameters()]


def test_cam_maps_inside_no_grad_and_on_frozen_weights_are_the_usual_maps(model_and_data):
    model, images, labels, _ = model_and_data
    expected = cam_maps(model, images, labels)
    assert not blank_maps(expected).all(), "the fixture's maps are all blank: nothing is tested"
    with torch.no_grad():
        torch.testing.assert_close(cam_maps(model, images, labels), expected, rtol=0, atol=1e-6)
        assert not torch.is_grad_enabled(), "the caller's no_grad was switched off"
    model.requires_grad_(False)
    try:
        torch.testing.assert_close(cam_maps(model, images, labels), expected, rtol=0, atol=1e-6)
        with torch.no_grad():
            torch.testing.assert_close(cam_maps(model, images), cam_maps(model, images), rtol=0,
                                       atol=0)  # fmt: skip
        assert not any(p.requires_grad for p in model.parameters()), "frozen weights thawed"
    finally:
        model.requires_grad_(True)
    assert torch.is_grad_enabled()


def test_cam_maps_leave_flags_and_gradients_of_the_parameters_as_they_were(model_and_data):
    """A partly frozen model (a linear probe: only ``linear`` trains) with gradients already
    accumulated by the caller's step: no flag and no ``.grad`` changes."""
    model, images, labels, boxes = model_and_data
    model.requires_grad_(False)
    model.linear.requires_grad_(True)
    try:
        model(images).logsumexp(1).sum().backward()
        before = _state(model)
        grads = [None if g is None else g.clone() for _, g in before]
        localisation_scores(model, images, labels, boxes)
        after = _state(model)
        assert [f for f, _ in after] == [f for f, _ in before]
        assert all(a is b for (_, a), (_, b) in zip(after, before, strict=True))
        for (_, g), saved in zip(after, grads, strict=True):
            assert (g is None) == (saved is None) and (g is None or torch.equal(g, saved))
        assert model.linear.weight.grad is not None
    finally:
        model.requires_grad_(True)
        model.zero_grad()


def test_a_bad_class_is_an_error_not_fewer_maps_and_the_hooks_are_released(model_and_data):
    """grad-cam's context manager swallows an IndexError raised inside it: a class the
    model lacks in the second batch returned the first batch's maps alone."""
    model, images, labels, _ = model_and_data
    classes = labels.clone()
    classes[-1] = 99
    with pytest.raises(ValueError, match="cannot explain classes"):
        cam_maps(model, images, classes, batch_size=4)
    with pytest.raises(ValueError, match="classes must be"):
        cam_maps(model, images, labels[:3])
    layer = model.layer4[-1]
    assert not layer._forward_hooks and not layer._backward_hooks and not layer._forward_pre_hooks
    assert all(p.requires_grad for p in model.parameters()) and torch.is_grad_enabled()


# ------------------------------------------------------------------ the pointing game


def test_a_blank_map_is_a_miss_and_is_counted_as_blank():
    """An all-zero map used to score a hit when the box covered pixel (0, 0)."""
    boxes = torch.tensor([[0, 0, 4, 4], [0, 0, 4, 4], [0, 0, 4, 4]])
    maps = torch.zeros(3, 8, 8)
    maps[1] = -0.5  # no pixel above zero: no positive evidence, blank too
    maps[2, 1, 1] = 1.0  # a real peak in the box
    assert blank_maps(maps).tolist() == [True, True, False]
    assert pointing_hits(maps, boxes).tolist() == [False, False, True]
    scores = score_maps(maps, boxes)
    assert scores["blank_maps"] == 2 and scores["n_maps"] == 3
    assert scores["pointing_game"] == pytest.approx(1 / 3)
    torch.testing.assert_close(energy_in_box(maps[:1], boxes[:1]), torch.zeros(1))


def _box_shaped(boxes: Tensor, height: int, width: int) -> Tensor:
    """[B, H, W] maps that are 1 inside each box [B, 4] (x0, y0, x1, y1) and 0 outside:
    the ideal localisation map."""
    maps = torch.zeros(len(boxes), height, width)
    for map_, (x0, y0, x1, y1) in zip(maps, boxes.tolist(), strict=True):
        map_[y0:y1, x0:x1] = 1.0
    return maps


def test_a_map_equal_to_a_box_covering_the_whole_image_is_a_hit_not_blank():
    """A map equal to its object's box is the ideal answer, and one whose box covers the
    whole image (all ones, every pixel equal) used to be called blank and scored a miss."""
    boxes = torch.tensor([[0, 0, 8, 8], [0, 0, 8, 8], [2, 2, 5, 5]])
    maps = _box_shaped(boxes, 8, 8)
    maps[1] = 0.0  # grad-cam's all-zero map: still no evidence, still a miss
    assert maps[0].eq(1).all(), "the whole-image box gives the all-ones map"
    assert blank_maps(maps).tolist() == [False, True, False]
    assert pointing_hits(maps, boxes).tolist() == [True, False, True]
    scores = score_maps(maps, boxes)
    assert scores["blank_maps"] == 1 and scores["pointing_game"] == pytest.approx(2 / 3)
    torch.testing.assert_close(energy_in_box(maps, boxes), torch.tensor([1.0, 0.0, 1.0]))


def test_box_shaped_maps_of_the_real_tinyimagenet_val_boxes_all_point_inside(real_data):
    """Tiny ImageNet's own validation boxes, many of them the whole 64 x 64 image: a map
    equal to each box used to score a pointing-game miss wherever the box was the whole
    image, though no map localises better."""
    test = tinyimagenet(real_data, progress=False).test
    whole = (test.boxes == torch.tensor([0, 0, 64, 64])).all(1)
    assert whole.any(), "no validation box covers the whole image: nothing is tested"
    maps = _box_shaped(test.boxes, 64, 64)
    scores = score_maps(maps, test.boxes)
    assert scores["pointing_game"] == 1.0
    assert scores["blank_maps"] == 0 and scores["energy_in_box"] == pytest.approx(1.0)
    # The same maps scaled to nothing are grad-cam's all-zero maps: every one a miss.
    zero = score_maps(maps * 0, test.boxes)
    assert zero["pointing_game"] == 0.0 and zero["blank_maps"] == len(test.boxes)


def test_mirroring_a_map_and_its_box_cannot_flip_the_pointing_game():
    """Two tied maxima, one inside the box and one outside: first-in-raster-order argmax
    scores a hit on the map and a miss on its mirror image; any maximal pixel in the box
    is a hit on both."""
    width = 10
    maps = torch.zeros(1, 6, width)
    maps[0, 2, 1] = maps[0, 2, 8] = 1.0
    maps[0, 4, 5] = 0.5
    box = torch.tensor([[0, 0, 3, 6]])  # x0, y0, x1, y1: columns 0-2
    mirrored_map = maps.flip(2)
    mirrored_box = torch.tensor([[width - 3, 0, width, 6]])  # columns 7-9
    assert pointing_hits(maps, box).tolist() == [True]
    assert pointing_hits(mirrored_map, mirrored_box).tolist() == [True]
    # Both maxima out of the box: a miss however the map is mirrored.
    centre = torch.tensor([[3, 0, 7, 6]])
    assert pointing_hits(maps, centre).tolist() == [False]
    assert pointing_hits(mirrored_map, centre).tolist() == [False]


def test_the_pointing_game_is_invariant_to_mirroring_random_tied_maps():
    gen = torch.Generator().manual_seed(0)
    maps = torch.randint(0, 3, (200, 8, 8), generator=gen).float()  # many ties
    corner = torch.randint(0, 6, (200, 2), generator=gen)
    boxes = torch.cat([corner, corner + torch.randint(1, 3, (200, 2), generator=gen)], 1)
    for dim, (a, b) in ((2, (0, 2)), (1, (1, 3))):  # mirror left-right, then top-bottom
        mirrored = boxes.clone()
        mirrored[:, a], mirrored[:, b] = 8 - boxes[:, b], 8 - boxes[:, a]
        assert torch.equal(pointing_hits(maps, boxes), pointing_hits(maps.flip(dim), mirrored))
    # ... and to any other reordering of the pixels that moves the boxes with them.
    turned = torch.stack([boxes[:, 1], 8 - boxes[:, 2], boxes[:, 3], 8 - boxes[:, 0]], 1)
    assert torch.equal(pointing_hits(maps, boxes), pointing_hits(maps.rot90(1, (1, 2)), turned))


def test_maps_with_nan_are_refused():
    maps = torch.zeros(1, 4, 4)
    maps[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        score_maps(maps, torch.tensor([[0, 0, 2, 2]]))
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        blank_maps(torch.zeros(4, 4))
