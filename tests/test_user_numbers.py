"""Numbers as users pass them: settings typed on the command line in any spelling,
labels of any integer dtype, and numpy scalars where Python numbers are expected."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import regionmix_utils as rm
from regionmix_utils.cli import main
from regionmix_utils.config import TrainConfig, run_name
from regionmix_utils.evaluation.calibration import (
    calibration_metrics,
    fit_temperature,
    reliability,
    top_label,
)
from regionmix_utils.evaluation.registry import Evaluation, predict, registered_evaluation
from regionmix_utils.methods import get_method, methods
from regionmix_utils.runs import Run
from regionmix_utils.train import train

from .conftest import tiny_config

B, K = 8, 5
IMAGES = torch.rand(B, 3, 16, 16, generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([0, 1, 2, 3, 4, 0, 1, 4])
NP_LABELS = LABELS.numpy()


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(7)


# ------------------------------------------------------------- evaluate --setting


def test_a_setting_in_any_spelling_of_a_number_is_one_float_and_one_record(tmp_path, tiny_shapes):
    """The kind of fault reported in Noble-Lab/casanovo#64: a number given on the command
    line in exponent notation reached the code as a string. ``--setting sigma=1e-3``,
    ``sigma=1E-3`` and ``sigma=0.001`` must reach the evaluation as the float 0.001 and
    name one stored record; a fraction is a float too, an integer an int."""
    config = tiny_config(method="none", epochs=1, n_train=64, n_test=20)
    train(config, tmp_path, splits=tiny_shapes, progress=False)
    received = []

    def noisy(model, images, labels, *, sigma):
        received.append(sigma)
        return predict(model, images)

    spec = Evaluation("noisy", "Noisy", "accuracy under noise", keys=("sigma",), compute=noisy)
    with registered_evaluation(spec):
        for text in ("1e-3", "1E-3", "0.001", "5e-1", "8/255", "3"):
            words = "evaluate --kind noisy --n-images 20 --device cpu --no-progress".split()
            argv = [*words, "--runs-dir", str(tmp_path), "--setting", f"sigma={text}"]
            assert main(argv) == 0
    assert received == [0.001, 0.5, 8 / 255, 3]
    assert [type(v) for v in received] == [float, float, float, int]
    (run,) = [Run(p.parent) for p in tmp_path.rglob("final.pt")]
    stored = [r["sigma"] for r in run.evaluations() if r["kind"] == "noisy"]
    assert sorted(stored) == [0.001, 8 / 255, 0.5, 3]  # 1e-3, 1E-3 and 0.001: one record


# --------------------------------------------------------------------- calibration

LOGITS = torch.randn(64, K, generator=torch.Generator().manual_seed(1)) * 3
TARGETS = torch.randint(0, K, (64,), generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.int8, torch.uint8])
def test_calibration_takes_class_indices_of_any_integer_dtype(dtype):
    """The kind of fault reported in Lightning-AI/torchmetrics#1970: calibration refused
    integer labels that were not int64 (CIFAR-10-C ships uint8 labels). Every integer
    dtype gives what int64 gives."""
    labels = TARGETS.to(dtype)
    assert calibration_metrics(LOGITS, labels, 1.5) == calibration_metrics(LOGITS, TARGETS, 1.5)
    assert fit_temperature(LOGITS, labels) == fit_temperature(LOGITS, TARGETS)
    for got, want in zip(top_label(LOGITS, labels), top_label(LOGITS, TARGETS), strict=True):
        assert torch.equal(got, want)
    got, want = reliability(LOGITS, labels), reliability(LOGITS, TARGETS)
    assert all(torch.equal(got[k].nan_to_num(-1), want[k].nan_to_num(-1)) for k in want)


@pytest.mark.parametrize("call", [calibration_metrics, fit_temperature])
@pytest.mark.parametrize("labels", [TARGETS.float(), TARGETS.bool()], ids=["float", "bool"])
def test_calibration_refuses_labels_that_are_not_class_indices(call, labels):
    with pytest.raises(TypeError, match=r"^labels must be integer class indices .*got torch\."):
        call(LOGITS, labels)


# ------------------------------------------------------------- numpy scalars in mixing


def _setting_values(method) -> tuple[dict, dict]:
    """(Python settings, the same as numpy scalars) for every setting ``method`` reads:
    floats at 0.4 of their default (not exact in float32) where allowed, else the default."""
    plain, numpy = {}, {}
    for name in method.setting_names:
        setting = method.setting(name)
        value = setting.default
        if isinstance(value, float):
            inexact = round(0.4 * value, 6)
            try:
                value = setting.check(name, inexact)
            except ValueError:
                pass
            numpy[name] = np.float32(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            numpy[name] = np.int64(value)
        elif isinstance(value, tuple):
            numpy[name] = np.array(value)
        else:
            numpy[name] = value
        plain[name] = value
    return plain, numpy


def _assert_same_mix(got, want) -> None:
    for field in ("images", "targets", "lam", "partners", "mask"):
        a, b = getattr(got, field, None), getattr(want, field, None)
        assert (a is None and b is None) or torch.equal(a, b), field
    assert getattr(got, "box", None) == getattr(want, "box", None)


@pytest.mark.parametrize("method", [m for m in methods() if m.mixes], ids=lambda m: m.name)
def test_every_registered_method_mixes_the_same_with_numpy_settings(method):
    """The kind of fault reported in maroba/findiff#32: a numpy integer (or float32)
    where a Python one was expected was refused. Each registered method, given its
    settings and num_classes as numpy scalars (``labels.max() + 1`` on an array), mixes
    exactly as with Python numbers from the same generator, as a function and as a
    transform."""
    plain, numpy = _setting_values(method)
    num_classes = NP_LABELS.max() + 1
    if method.in_model:  # mixed inside the model: its sampler and applier on a feature map
        want = method.apply(IMAGES, LABELS, method.sample(B, 16, 16, _gen(), **plain), K)
        got = method.apply(IMAGES, LABELS, method.sample(B, 16, 16, _gen(), **numpy),
                           num_classes)  # fmt: skip
    else:
        want = method.mix(IMAGES, LABELS, K, plain, _gen())
        got = method.mix(IMAGES, LABELS, num_classes, numpy, _gen())
        mixed = method.transform(
            num_classes, _gen(), p=np.float32(0.9), label_smoothing=np.float32(0.1), **numpy
        )(IMAGES, LABELS)
        expected = method.transform(K, _gen(), p=0.9, label_smoothing=0.1, **plain)(IMAGES, LABELS)
        assert all(torch.equal(a, b) for a, b in zip(mixed, expected, strict=True))
    _assert_same_mix(got, want)


i64, f32 = np.int64, np.float32
# (name, call with Python numbers, call with numpy scalars); each takes a generator.
CALLS = [
    ("region_mixup",
     lambda g: rm.region_mixup(IMAGES, LABELS, 2, 0.4, K, g),
     lambda g: rm.region_mixup(IMAGES, LABELS, i64(2), f32(0.4), NP_LABELS.max() + 1, g)),
    ("region_mixup grid",
     lambda g: rm.region_mixup(IMAGES, LABELS, alpha=0.4, num_classes=K, generator=g, grid=(2, 3)),
     lambda g: rm.region_mixup(IMAGES, LABELS, alpha=f32(0.4), num_classes=i64(K), generator=g,
                               grid=(i64(2), i64(3)))),
    ("mixup",
     lambda g: rm.mixup(IMAGES, LABELS, 0.4, K, g),
     lambda g: rm.mixup(IMAGES, LABELS, f32(0.4), NP_LABELS.max() + 1, g)),
    ("cutmix",
     lambda g: rm.cutmix(IMAGES, LABELS, 0.4, K, g),
     lambda g: rm.cutmix(IMAGES, LABELS, f32(0.4), NP_LABELS.max() + 1, g)),
    ("random_region_mixup",
     lambda g: rm.random_region_mixup(IMAGES, LABELS, (1, 2, 4), 0.4, K, g, min_side=2),
     lambda g: rm.random_region_mixup(IMAGES, LABELS, np.array([1, 2, 4]), f32(0.4), i64(K), g,
                                      min_side=i64(2))),
    ("gridmix",
     lambda g: rm.gridmix(IMAGES, LABELS, 0.4, K, g, n_holes=2),
     lambda g: rm.gridmix(IMAGES, LABELS, f32(0.4), i64(K), g, n_holes=i64(2))),
    ("fmix",
     lambda g: rm.fmix(IMAGES, LABELS, 0.4, K, g, decay_power=2.4, max_soft=0.1),
     lambda g: rm.fmix(IMAGES, LABELS, f32(0.4), i64(K), g, decay_power=f32(2.4),
                       max_soft=f32(0.1))),
    ("resizemix",
     lambda g: rm.resizemix(IMAGES, LABELS, K, g, scale_range=(0.2, 0.7)),
     lambda g: rm.resizemix(IMAGES, LABELS, i64(K), g, scale_range=(f32(0.2), f32(0.7)))),
    ("sample_region_params",
     lambda g: rm.sample_region_params(B, (2, 2), 0.4, g),
     lambda g: rm.sample_region_params(i64(B), (i64(2), i64(2)), f32(0.4), g)),
    ("sample_cutmix_params",
     lambda g: rm.sample_cutmix_params(B, 16, 16, 0.4, g),
     lambda g: rm.sample_cutmix_params(i64(B), i64(16), i64(16), f32(0.4), g)),
    ("sample_beta",
     lambda g: rm.sample_beta(0.4, 6, g),
     lambda g: rm.sample_beta(f32(0.4), i64(6), g)),
]  # fmt: skip
TRANSFORMS = [
    ("RegionMixup",
     lambda g: rm.RegionMixup(2, 0.4, K, g, p=0.5, label_smoothing=0.1),
     lambda g: rm.RegionMixup(i64(2), f32(0.4), NP_LABELS.max() + 1, g, p=f32(0.5),
                              label_smoothing=f32(0.1))),
    ("Mixup",
     lambda g: rm.Mixup(0.4, K, g),
     lambda g: rm.Mixup(f32(0.4), i64(K), g)),
    ("CutMix",
     lambda g: rm.CutMix(0.4, K, g),
     lambda g: rm.CutMix(f32(0.4), i64(K), g)),
    ("RandomRegionMixup",
     lambda g: rm.RandomRegionMixup((1, 2), 0.4, K, g, min_side=3),
     lambda g: rm.RandomRegionMixup((i64(1), i64(2)), f32(0.4), i64(K), g, min_side=i64(3))),
    ("GridMix",
     lambda g: rm.GridMix(0.4, K, g, n_holes=2),
     lambda g: rm.GridMix(f32(0.4), i64(K), g, n_holes=i64(2))),
    ("FMix",
     lambda g: rm.FMix(0.4, K, g, decay_power=2.4, max_soft=0.1),
     lambda g: rm.FMix(f32(0.4), i64(K), g, decay_power=f32(2.4), max_soft=f32(0.1))),
    ("ResizeMix",
     lambda g: rm.ResizeMix(K, g, scale_range=(0.2, 0.7)),
     lambda g: rm.ResizeMix(i64(K), g, scale_range=(f32(0.2), f32(0.7)))),
    ("MixChoice",
     lambda g: rm.MixChoice([rm.Mixup(0.4, K, g), rm.CutMix(0.4, K, g)], [0.3, 0.7], g),
     lambda g: rm.MixChoice([rm.Mixup(f32(0.4), i64(K), g), rm.CutMix(f32(0.4), i64(K), g)],
                            np.array([0.3, 0.7], dtype=np.float32), g)),
]  # fmt: skip


@pytest.mark.parametrize("name, plain, numpy", CALLS, ids=[c[0] for c in CALLS])
def test_mixing_functions_take_numpy_scalars(name, plain, numpy):
    """The kind of fault reported in maroba/findiff#32 (numpy integers refused where
    Python ints were expected): each function gives, from the same generator, exactly
    what it gives for the same Python numbers (float32 0.4 is 0.4, not 0.4000000059604645)."""
    got, want = numpy(_gen()), plain(_gen())
    if isinstance(want, torch.Tensor):
        assert torch.equal(got, want)
    else:
        for field in dataclasses.fields(want):
            a, b = getattr(got, field.name), getattr(want, field.name)
            assert torch.equal(a, b) if isinstance(b, torch.Tensor) else a == b, field.name


@pytest.mark.parametrize("name, plain, numpy", TRANSFORMS, ids=[t[0] for t in TRANSFORMS])
def test_mixing_transforms_take_numpy_scalars(name, plain, numpy):
    """As ``test_mixing_functions_take_numpy_scalars``, for the v2 transforms (several
    batches each, so that ``p`` and the choice of ``MixChoice`` are drawn)."""
    got_mix, want_mix = numpy(_gen()), plain(_gen())
    for _ in range(4):
        got, want = got_mix(IMAGES, LABELS), want_mix(IMAGES, LABELS)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: rm.region_mixup(IMAGES, LABELS, k=True, num_classes=K), "k must be an integer"),
        (lambda: rm.region_mixup(IMAGES, LABELS, k=np.float64(2.0), num_classes=K),
         "k must be an integer"),
        (lambda: rm.mixup(IMAGES, LABELS, alpha=True, num_classes=K), "alpha must be a positive"),
        (lambda: rm.mixup(IMAGES, LABELS, alpha=np.bool_(True), num_classes=K),
         "alpha must be a positive"),
        (lambda: rm.fmix(IMAGES, LABELS, num_classes=K, decay_power="3"), "decay_power must be"),
    ],
)  # fmt: skip
def test_bools_and_text_are_still_refused_as_numbers(call, message):
    with pytest.raises(TypeError, match=message):
        call()


@pytest.mark.parametrize("value", [2.5, np.float32(2.5)])
def test_a_fraction_for_an_integer_setting_is_refused_not_truncated(value):
    """``int(2.5)`` is 2: a method's transform given ``k=2.5`` mixed quietly with k = 2
    while ``TrainConfig`` refused the same value. A whole float (2.0) is the integer."""
    with pytest.raises(ValueError, match=r"k must be an integer >= 1, got .*2\.5"):
        get_method("region").transform(k=value, num_classes=K)
    assert get_method("region").transform(k=np.float64(2.0), num_classes=K).settings["k"] == 2


# ---------------------------------------------------------------- float32 in configs

FLOAT_FIELDS = [f.name for f in dataclasses.fields(TrainConfig) if f.type == "float"]


@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_a_float32_setting_is_the_decimal_it_names(name):
    """np.float32(0.4) is stored as 0.4, not 0.4000000059604645: the value the run's
    folder name ``-a0.4`` means, so the two configs are the same run."""
    config = TrainConfig(method="mixup", **{name: np.float32(0.4)})
    assert config == TrainConfig(method="mixup", **{name: 0.4})
    assert getattr(config, name) == 0.4 and type(getattr(config, name)) is float


def test_float32_in_switch_and_method_params_is_the_decimal_it_names():
    switch = TrainConfig(switch=(("cutmix", np.float32(0.3)),))
    assert switch == TrainConfig(switch=(("cutmix", 0.3),))
    fmix = TrainConfig(method="fmix", params={"decay_power": np.float32(2.4)})
    assert fmix == TrainConfig(method="fmix", params={"decay_power": 2.4})
    assert run_name(fmix) == run_name(TrainConfig(method="fmix", params={"decay_power": 2.4}))


def test_a_run_started_with_alpha_0_4_resumes_with_float32_alpha(tmp_path, tiny_shapes):
    """A run trained with alpha=0.4 and restarted with np.float32(0.4) (the same folder,
    ``mixup-a0.4``) resumes instead of being refused as a different configuration."""
    small = {"method": "mixup", "n_train": 64, "n_test": 20}
    first = tiny_config(alpha=0.4, **small)
    train(first, tmp_path, splits=tiny_shapes, progress=False, stop_after=1)
    again = tiny_config(alpha=np.float32(0.4), **small)
    assert Run.of(tmp_path, again).path == Run.of(tmp_path, first).path
    result = train(again, tmp_path, splits=tiny_shapes, progress=False)
    assert [m["epoch"] for m in result.metrics] == [1, 2] and not result.skipped
