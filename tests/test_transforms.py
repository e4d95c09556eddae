"""The mixing transforms as torchvision v2 transforms: calling conventions and types beside
torchvision's own v2.MixUp (run in the same test), labels, ``p``, ``label_smoothing``,
``MixChoice`` and a new method's transform in a few lines."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import default_collate
from torchvision import tv_tensors
from torchvision.transforms import v2

from regionmix_utils import (
    BatchMix,
    CutMix,
    FMix,
    GridMix,
    MixChoice,
    MixedBatch,
    Mixup,
    RandomRegionMixup,
    RegionMixup,
    ResizeMix,
    combined_loss,
    cutmix,
    fmix,
    gridmix,
    random_region_mixup,
    region_mixup,
    resizemix,
    soft_cross_entropy,
)

EVERY_TRANSFORM = [RegionMixup, Mixup, CutMix, RandomRegionMixup, GridMix, FMix, ResizeMix]

B, K = 4, 10
X = torch.rand(B, 3, 8, 8, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 3, 5, 9])


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def describe(out: Any) -> str:
    """The structure, types, shapes and dtypes of a transform's output."""
    if isinstance(out, tuple):
        return "(" + ", ".join(describe(x) for x in out) + ")"
    if isinstance(out, list):
        return "[" + ", ".join(describe(x) for x in out) + "]"
    if isinstance(out, dict):
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in out.items()) + "}"
    if isinstance(out, torch.Tensor):
        return f"{type(out).__name__}{list(out.shape)} {str(out.dtype).removeprefix('torch.')}"
    return type(out).__name__


def outcome(transform: Callable, call: Callable) -> str:
    try:
        return describe(call(transform))
    except Exception as error:  # the outcome of a refused call is its error
        return f"{type(error).__name__}: {error}"


PAIR = "(Tensor[4, 3, 8, 8] float32, Tensor[4, 10] float32)"
REFUSED = "ValueError: .*does not support PIL images, bounding boxes, key ?points and masks"
BOXES = tv_tensors.BoundingBoxes(torch.zeros(B, 4), format="XYXY", canvas_size=(8, 8))


@dataclass(frozen=True)
class Case:
    """One row of the property table: a call, v2.MixUp's outcome, ours, and why they differ."""

    name: str
    call: Callable
    v2: str  # the outcome, or a regular expression for an error
    ours: str | None = None  # None: as v2
    why: str = ""
    options: dict = field(default_factory=dict)


CASES = [
    Case("unpacked mix(images, labels)", lambda m: m(X, Y), PAIR),
    Case("packed mix((images, labels))", lambda m: m((X, Y)), PAIR),
    Case(
        "list mix([images, labels])", lambda m: m([X, Y]), PAIR.replace("(", "[").replace(")", "]")
    ),
    Case(
        "collate_fn: mix(default_collate(batch))",
        lambda m: m(default_collate([(X[i], int(Y[i])) for i in range(B)])),
        PAIR.replace("(", "[").replace(")", "]"),
    ),
    Case(
        "dict {image, labels, other}",
        lambda m: m({"image": X, "labels": Y, "other": torch.arange(B)}),
        "{image: Tensor[4, 3, 8, 8] float32, labels: Tensor[4, 10] float32, "
        "other: Tensor[4] int64}",
    ),
    Case(
        "labels_getter=lambda s: s['y']",
        lambda m: m({"x": X, "y": Y}),
        "{x: Tensor[4, 3, 8, 8] float32, y: Tensor[4, 10] float32}",
        options={"labels_getter": lambda sample: sample["y"]},
    ),
    Case(
        "dict without a label-like key",
        lambda m: m({"x": X, "y": Y}),
        "ValueError: Could not infer where the labels are",
        "ValueError: found no labels in the dict sample",
    ),
    Case("integer one-hot labels (F.one_hot)", lambda m: m(X, F.one_hot(Y, K)), PAIR),
    Case("float soft labels", lambda m: m(X, F.one_hot(Y, K).float()), PAIR),
    Case(
        "float64 soft labels",
        lambda m: m(X, F.one_hot(Y, K).double()),
        PAIR.replace("10] float32", "10] float64"),
    ),
    Case(
        "int32 class indices",
        lambda m: m(X, Y.int()),
        "RuntimeError: one_hot is only applicable to index tensor of type LongTensor",
        PAIR,
        "ours takes indices of any integer dtype",
    ),
    Case(
        "uint8 class indices",
        lambda m: m(X, Y.to(torch.uint8)),
        "RuntimeError: one_hot is only applicable to index tensor of type LongTensor",
        PAIR,
        "ours takes indices of any integer dtype",
    ),
    Case(
        "bool labels [B]",
        lambda m: m(X, Y > 2),
        "RuntimeError: one_hot is only applicable",
        "TypeError: labels of shape \\[B\\] must be integer class indices",
        "both refuse; ours names the argument",
    ),
    Case(
        "class indices, num_classes=None",
        lambda m: m(X, Y),
        "ValueError: num_classes must be passed",
        "ValueError: num_classes is required",
        options={"num_classes": None},
    ),
    Case(
        "labels out of range",
        lambda m: m(X, Y + 5),
        "RuntimeError: Class values must be smaller than num_classes",
        "ValueError: labels must lie in \\[0, num_classes - 1\\]",
        "both refuse; ours with the range",
    ),
    Case(
        "labels of another batch size",
        lambda m: m(X, Y[:2]),
        "ValueError: The batch size of the image or video does not match",
        "ValueError: labels must have one entry per image",
    ),
    Case(
        "tv_tensors.Image batch",
        lambda m: m(tv_tensors.Image(X), Y),
        "(Image[4, 3, 8, 8] float32, Tensor[4, 10] float32)",
    ),
    Case(
        "tv_tensors.Video batch [B, T, C, H, W]",
        lambda m: m(tv_tensors.Video(torch.rand(B, 2, 3, 8, 8)), Y),
        "(Video[4, 2, 3, 8, 8] float32, Tensor[4, 10] float32)",
    ),
    Case("tv_tensors.Mask batch (4-D float)", lambda m: m(tv_tensors.Mask(X), Y), REFUSED),
    Case(
        "Image with a Mask in a dict",
        lambda m: m({"image": tv_tensors.Image(X), "mask": tv_tensors.Mask(X[:, 0]), "labels": Y}),
        REFUSED,
    ),
    Case("BoundingBoxes in the sample", lambda m: m((tv_tensors.Image(X), Y, BOXES)), REFUSED),
    Case(
        "KeyPoints in the sample",
        lambda m: m(
            (tv_tensors.Image(X), Y, tv_tensors.KeyPoints(torch.zeros(B, 2), canvas_size=(8, 8)))
        ),
        REFUSED,
    ),
    Case("a PIL image", lambda m: m(PIL.Image.new("RGB", (8, 8)), Y), REFUSED),
    Case(
        "uint8 images",
        lambda m: m((X * 255).to(torch.uint8), Y),
        "RuntimeError: result type Float can't be cast to the desired output type Byte",
        "TypeError: images must be floating point",
        "both refuse; ours says how to convert",
    ),
    Case(
        "bfloat16 images",
        lambda m: m(X.bfloat16(), Y),
        "(Tensor[4, 3, 8, 8] bfloat16, Tensor[4, 10] float32)",
    ),
    Case(
        "images [C, H, W] (no batch)",
        lambda m: m(X[0], Y),
        "ValueError: Expected a batched input with 4 dims",
        "ValueError: images must be 4-D",
    ),
    Case(
        "two Image batches in one sample",
        lambda m: m((tv_tensors.Image(X), Y, tv_tensors.Image(X))),
        "(Image[4, 3, 8, 8] float32, Tensor[4, 10] float32, Image[4, 3, 8, 8] float32)",
        "ValueError: RegionMixup\\(\\) mixes one batch of images a call",
        "ours draws its parameters for one batch; two would need the same draws applied twice",
    ),
    Case("in nn.Sequential (packed)", lambda m: nn.Sequential(m)((X, Y)), PAIR),
    Case("in v2.Compose", lambda m: v2.Compose([m])(X, Y), PAIR),
]


def _matches(expected: str, got: str) -> bool:
    if expected.split(":")[0].endswith("Error"):
        return re.match(expected, got) is not None
    return got == expected


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_calling_conventions_and_types_beside_torchvision_mixup(case):
    options = {"num_classes": K, **case.options}
    theirs = outcome(v2.MixUp(**options), case.call)
    ours = outcome(RegionMixup(generator=gen(), **options), case.call)
    assert _matches(case.v2, theirs), theirs
    assert _matches(case.ours or case.v2, ours), ours


def test_a_dict_with_the_labels_first_is_mixed_where_v2_leaves_the_images_alone():
    """v2 takes the first plain tensor as the images, here the labels; ours skips them."""
    sample = {"labels": Y, "image": X}
    assert torch.equal(v2.MixUp(num_classes=K)(sample)["image"], X)
    assert not torch.equal(RegionMixup(num_classes=K, generator=gen())(sample)["image"], X)


def test_other_entries_of_a_sample_pass_through_untouched():
    other = torch.arange(B)
    for transform in (v2.MixUp(num_classes=K), RegionMixup(num_classes=K, generator=gen())):
        out = transform({"image": X, "labels": Y, "other": other})
        assert out["other"] is other


def test_every_convention_gives_the_same_mix_for_the_same_generator():
    ref = region_mixup(X, Y, k=2, num_classes=K, generator=gen(3))
    calls = [
        lambda m: m(X, Y),
        lambda m: m((X, Y)),
        lambda m: tuple(m([X, Y])),
        lambda m: tuple(m({"image": X, "labels": Y}).values()),
        lambda m: m(tv_tensors.Image(X), Y.to(torch.int32)),
        lambda m: m(X, F.one_hot(Y, K)),
    ]
    for call in calls:
        images, targets = call(RegionMixup(k=2, num_classes=K, generator=gen(3)))
        assert torch.equal(images, ref.images) and torch.equal(targets, ref.targets)


def test_every_transform_keeps_the_image_type_and_the_memory_format():
    images = tv_tensors.Image(X.to(memory_format=torch.channels_last))
    for make in EVERY_TRANSFORM:
        transform = make()
        transform.num_classes, transform.generator = K, gen()
        out, _ = transform(images, Y)
        assert type(out) is tv_tensors.Image
        assert out.is_contiguous(memory_format=torch.channels_last)


def test_a_video_is_mixed_with_one_grid_and_one_set_of_partners_for_all_frames():
    frame = torch.rand(B, 3, 8, 8)
    video = tv_tensors.Video(torch.stack([frame, frame, frame], dim=1))  # 3 equal frames
    out, targets = RegionMixup(k=4, num_classes=K, generator=gen(5))(video, Y)
    assert type(out) is tv_tensors.Video and out.shape == video.shape
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
    ref = region_mixup(frame, Y, k=4, num_classes=K, generator=gen(5))
    assert torch.equal(out[:, 0], ref.images) and torch.equal(targets, ref.targets)


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32])
def test_class_indices_of_any_integer_dtype_mix_as_int64(dtype):
    ref = RegionMixup(num_classes=K, generator=gen())(X, Y)
    out = RegionMixup(num_classes=K, generator=gen())(X, Y.to(dtype))
    assert torch.equal(out[1], ref[1])


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_one_hot_labels_mix_as_float_one_hot(dtype):
    for make in (RegionMixup, CutMix):
        ref = make(num_classes=K, generator=gen())(X, Y)
        out = make(num_classes=K, generator=gen())(X, F.one_hot(Y, K).to(dtype))
        assert out[1].dtype == torch.float32 and torch.equal(out[1], ref[1])


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.int64])
def test_the_losses_take_the_same_labels(dtype):
    logits = torch.randn(B, K, generator=gen())
    expected = F.cross_entropy(logits, Y)
    torch.testing.assert_close(soft_cross_entropy(logits, Y.to(dtype)), expected)
    torch.testing.assert_close(soft_cross_entropy(logits, F.one_hot(Y, K).to(dtype)), expected)
    _, targets = RegionMixup(num_classes=K, generator=gen())(X, Y.to(dtype))
    parts = combined_loss(logits, targets, logits, F.one_hot(Y, K).to(dtype))
    torch.testing.assert_close(parts.clean, expected)


# ------------------------------------------------------------------------- p, smoothing


@pytest.mark.parametrize("make", EVERY_TRANSFORM)
def test_p0_returns_the_input_untouched_with_one_hot_targets(make):
    images = tv_tensors.Image(X.clone())
    for labels in (Y, Y.int(), F.one_hot(Y, K)):
        out, targets = make(num_classes=K, generator=gen(), p=0)(images, labels)
        assert out is images and torch.equal(out, X)
        assert targets.dtype == torch.float32 and torch.equal(targets, F.one_hot(Y, K).float())
    soft = torch.softmax(torch.randn(B, K), 1).double()
    out, targets = make(generator=gen(), p=0)(X, soft)
    assert targets.dtype == torch.float64 and torch.equal(targets, soft) and targets is not soft
    kept = soft.float()
    _, smoothed = make(generator=gen(), p=0, label_smoothing=0.5)(X, kept)
    assert torch.equal(kept, soft.float()) and torch.allclose(smoothed, kept * 0.5 + 0.05)


@pytest.mark.parametrize(
    "make, function",
    [
        (lambda g: RegionMixup(k=2, num_classes=K, generator=g, p=1), lambda g: region_mixup(
            X, Y, k=2, num_classes=K, generator=g)),
        (lambda g: CutMix(num_classes=K, generator=g, p=1.0), lambda g: cutmix(
            X, Y, num_classes=K, generator=g)),
        (lambda g: RandomRegionMixup(num_classes=K, generator=g, p=1),
         lambda g: random_region_mixup(X, Y, num_classes=K, generator=g)),
        (lambda g: RegionMixup(k=2, num_classes=K, generator=g, lam_mode="sample"),
         lambda g: region_mixup(X, Y, k=2, num_classes=K, generator=g, lam_mode="sample")),
        (lambda g: GridMix(num_classes=K, generator=g, n_holes=2),
         lambda g: gridmix(X, Y, num_classes=K, generator=g, n_holes=2)),
        (lambda g: FMix(num_classes=K, generator=g, decay_power=2.0),
         lambda g: fmix(X, Y, num_classes=K, generator=g, decay_power=2.0)),
        (lambda g: ResizeMix(num_classes=K, generator=g, scale_range=(0.3, 0.6)),
         lambda g: resizemix(X, Y, num_classes=K, generator=g, scale_range=(0.3, 0.6))),
    ],
)  # fmt: skip
def test_p1_equals_the_plain_call_for_the_same_generator_state(make, function):
    images, targets = make(gen(7))(X, Y)
    ref = function(gen(7))
    assert torch.equal(images, ref.images) and torch.equal(targets, ref.targets)


def test_p_mixes_that_share_of_the_batches_drawn_from_the_generator():
    images, labels = torch.rand(2, 1, 2, 2), torch.tensor([0, 1])

    def mixed_flags(seed):
        transform = RegionMixup(k=1, num_classes=2, generator=gen(seed), p=0.3)
        flags = []
        for _ in range(2000):
            out, targets = transform(images, labels)
            flags.append(out is not images)
            assert targets.shape == (2, 2) and targets.dtype == torch.float32
        return flags

    flags = mixed_flags(0)
    assert 0.27 <= sum(flags) / len(flags) <= 0.33
    assert flags == mixed_flags(0)  # from the generator: the same seed, the same batches
    assert flags != mixed_flags(1)


def test_label_smoothing_is_timms_smoothing_of_both_labels_before_mixing():
    smoothing = 0.1
    out = Mixup(num_classes=K, generator=gen(2), label_smoothing=smoothing)(X, Y)[1]
    ref = region_mixup(X, Y, k=1, num_classes=K, generator=gen(2))
    lam, partners = float(ref.lam), ref.partners[0, 0]
    # timm.data.mixup.mixup_target: one_hot(y, K, on, off) for both labels, then the mix.
    off, on = smoothing / K, 1 - smoothing + smoothing / K
    smoothed = F.one_hot(Y, K).float() * (on - off) + off
    expected = lam * smoothed + (1 - lam) * smoothed[partners]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.sum(1), torch.ones(B))


def test_label_smoothing_matches_timm_itself():
    mixup_target = pytest.importorskip("timm.data.mixup").mixup_target
    # timm pairs each sample with the batch flipped; so do these parameters.
    from regionmix_utils import RegionParams, apply_region_mixup

    lam = 0.3
    params = RegionParams(torch.tensor([[lam]]), torch.arange(B).flip(0).view(1, 1, B))
    unsmoothed = apply_region_mixup(X, Y, params, K).targets
    smoothed = unsmoothed * (1 - 0.1) + 0.1 / K  # what BatchMix does to the mixed targets
    torch.testing.assert_close(smoothed, mixup_target(Y, K, lam=lam, smoothing=0.1))
    torch.testing.assert_close(
        Mixup(num_classes=K, p=0, label_smoothing=0.1)(X, Y)[1],
        mixup_target(Y, K, lam=1.0, smoothing=0.1),
    )


# ----------------------------------------------------------------------- MixChoice


class CountingMix(BatchMix):
    """A new method's transform in a few lines (here: Region Mixup that counts its calls)."""

    def __init__(self, k: int = 2, **options):
        super().__init__(**options)
        self.k, self.calls = k, 0

    def mix(self, images, labels, generator) -> MixedBatch:
        self.calls += 1
        return region_mixup(images, labels, self.k, self.alpha, self.num_classes, generator)


def test_mix_choice_picks_one_method_per_batch_with_its_probability():
    first, second = CountingMix(k=1, num_classes=K), CountingMix(k=2, num_classes=K)
    choice = MixChoice([first, second], p=[1, 3], generator=gen())
    for _ in range(800):
        _, targets = choice(X, Y)
        assert targets.shape == (B, K)
    assert first.calls + second.calls == 800
    assert 0.20 <= first.calls / 800 <= 0.30


def test_mix_choice_draws_the_choice_from_its_generator():
    def run(seed):
        parts = [
            CountingMix(num_classes=K, generator=gen(1)),
            CutMix(num_classes=K, generator=gen(2)),
        ]
        choice = MixChoice(parts, generator=gen(seed))
        return [choice((X, Y))[1] for _ in range(20)]

    same, other = run(0), run(0)
    assert all(torch.equal(a, b) for a, b in zip(same, other, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(same, run(1), strict=True))


def test_mix_choice_with_one_certain_method_is_that_method():
    out = MixChoice([CutMix(num_classes=K, generator=gen(4)), Mixup()], p=[1, 0])(X, Y)
    ref = CutMix(num_classes=K, generator=gen(4))(X, Y)
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])


def test_transforms_print_their_settings():
    assert repr(RegionMixup(k=4)) == "RegionMixup(k=4, alpha=1.0, num_classes=None)"
    assert repr(CutMix(num_classes=3, p=0.5, label_smoothing=0.1)) == (
        "CutMix(alpha=1.0, num_classes=3, p=0.5, label_smoothing=0.1)"
    )
    assert "p=[0.25, 0.75]" in repr(MixChoice([Mixup(), CutMix()], p=[1, 3]))
    assert isinstance(RegionMixup(), v2.Transform)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: RegionMixup(p=1.5), ValueError, "p must be a number in \\[0, 1\\]"),
        (lambda: CutMix(p="half"), ValueError, "p must be"),
        (lambda: Mixup(label_smoothing=1), ValueError, "label_smoothing must be"),
        (lambda: Mixup(label_smoothing=-0.1), ValueError, "label_smoothing must be"),
        (lambda: RegionMixup(labels_getter=3), ValueError, "labels_getter must be"),
        (lambda: RegionMixup(generator=0), TypeError, "generator must be"),
        (lambda: Mixup(grid=(2, 2)), TypeError, "unexpected keyword argument 'grid'"),
        (lambda: CutMix(k=2), TypeError, "unexpected keyword argument 'k'"),
        (lambda: MixChoice([]), TypeError, "transforms must be a non-empty list"),
        (lambda: MixChoice([v2.MixUp()]), TypeError, "transforms must hold mixing"),
        (lambda: MixChoice([Mixup(), CutMix()], p=[1]), ValueError, "p must hold one"),
        (lambda: MixChoice([Mixup()], p=[-1]), ValueError, "p must hold one"),
        (lambda: MixChoice([Mixup()], p=[0]), ValueError, "p must have a positive sum"),
        (lambda: RegionMixup(num_classes=K, labels_getter=lambda s: Y.clone())(X, Y.int()),
         ValueError, "labels_getter must return a labels tensor held in the sample"),
        (lambda: RegionMixup(num_classes=K)({"labels": Y}), ValueError, "found no batch of images"),
        (lambda: RegionMixup(num_classes=K)((X,)), ValueError, "must be \\(images, labels"),
        (lambda: RegionMixup(num_classes=K, p=0)(X, Y[:2]), ValueError, "labels must have one"),
        (lambda: RegionMixup(num_classes=K, p=0)(X.long(), Y), TypeError, "images must be float"),
        (lambda: RegionMixup(num_classes=K)(tv_tensors.Video(X), Y), ValueError, "videos must be"),
    ],
)  # fmt: skip
def test_bad_arguments_raise_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
