"""Test-time work (evaluation, attacks, calibration, CAMs) leaves each submodule in its
own mode and torch's TF32 settings as they were, runs in full float32, and works under
``torch.no_grad()`` or ``torch.inference_mode()`` and on channels_last images."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from regionmix_utils.data import BatchLoader, Splits
from regionmix_utils.evaluation.calibration import predict_logits
from regionmix_utils.evaluation.cam import cam_maps
from regionmix_utils.evaluation.robustness import (
    ATTACKS,
    AttackConfig,
    accuracy,
    adversarial_predictions,
    reference_autoattack,
)
from regionmix_utils.models import PreActResNet18, evaluating, full_float32, tf32_switches
from regionmix_utils.train import evaluate

from .test_attacks import adversarial_accuracy

# The registry's "autoattack" runs the reference's fixed budgets (100 iterations, 5,000
# queries): too slow here. Its cascade is tested at small budgets (``reference_autoattack``).
ATTACK_NAMES = sorted(name for name in ATTACKS if name != "autoattack")


def _model(num_classes: int = 10) -> PreActResNet18:
    """A width-2 PreAct ResNet-18 with fixed random weights (fast on the CPU)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return PreActResNet18(num_classes, width=2)


def _images(model: nn.Module, n: int = 4, size: int = 8) -> tuple[Tensor, Tensor]:
    """n random images [n, 3, size, size] and the model's own predictions as labels, so
    every image starts correctly classified and each attack has work to do."""
    images = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))
    with evaluating(model), torch.no_grad():
        return images, model(images).argmax(1)


def _config(name: str) -> AttackConfig:
    """Small budgets; the fast AutoAttack (fixed budgets) at ε = 1, where its first attack
    fools every image and the later ones (Square's 5,000 queries) run on none."""
    return AttackConfig(name, 1.0 if name == "autoattack-fast" else 8 / 255, queries=5, steps=2)


def _small_autoattack(model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    """The reference AutoAttack at tiny budgets and ε = 1/255, where the images survive to
    FAB-T and Square (all four attacks run); adversarial images [N, 3, H, W]."""
    attack = reference_autoattack(model, 1 / 255, 10, seed=0, steps=2, targets=1, queries=3)
    return attack(images, labels)


@pytest.fixture
def tf32_flags():
    """Restores torch's TF32 switches after the test, whatever it set."""
    with full_float32():  # saves them, and restores them on exit
        yield


# ----------------------------------------------------------- each submodule's own mode


def _frozen_batchnorm(model: nn.Module) -> None:
    """Train mode with every BatchNorm frozen in eval mode (fine-tuning a backbone)."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


def _training_head_norm(model: nn.Module) -> None:
    """Eval mode with the last BatchNorm left in train mode."""
    model.eval()
    model.bn.train()


def _batch(shapes: Splits, n: int = 8) -> tuple[Tensor, Tensor]:
    """The first n test images [n, 3, 32, 32] in [0, 1] and their labels [n]."""
    return shapes.test.images[:n].float() / 255, shapes.test.labels[:n]


TEST_TIME_WORK: dict[str, Callable[[nn.Module, Splits], object]] = {
    "train.evaluate": lambda model, shapes: evaluate(
        model, BatchLoader(shapes.test, 50, shuffle=False, augment=False)
    ),
    "accuracy": lambda model, shapes: accuracy(model, *_batch(shapes)),
    "fgsm": lambda model, shapes: adversarial_accuracy(
        model, *_batch(shapes), AttackConfig("fgsm"), progress=False
    ),
    "reference autoattack": lambda model, shapes: _small_autoattack(model, *_batch(shapes)),
    "calibration logits": lambda model, shapes: predict_logits(model, _batch(shapes)[0]),
    "cam": lambda model, shapes: cam_maps(model, _batch(shapes, 4)[0]),
}


@pytest.mark.parametrize("setup", [_frozen_batchnorm, _training_head_norm])
@pytest.mark.parametrize("work", sorted(TEST_TIME_WORK))
def test_test_time_work_leaves_each_submodule_in_its_own_mode(tiny_shapes, work, setup):
    """The kind of fault reported in Lightning-AI/pytorch-lightning#18930: restoring only
    the model's own flag with ``model.train(flag)`` put every submodule in that mode, so
    a BatchNorm frozen in eval mode came back in train mode after any evaluation (its
    running statistics then drifting), and one left in train mode came back frozen."""
    model = _model()
    setup(model)
    before = {name: m.training for name, m in model.named_modules()}
    TEST_TIME_WORK[work](model, tiny_shapes)
    after = {name: m.training for name, m in model.named_modules()}
    assert after == before, f"modes changed: {[n for n in before if after[n] != before[n]]}"


def test_evaluating_restores_each_submodules_mode_after_an_exception():
    """A failure inside test-time work leaves every submodule in the mode it had too."""
    model = _model()
    _frozen_batchnorm(model)
    before = {name: m.training for name, m in model.named_modules()}
    with pytest.raises(RuntimeError, match="inside"), evaluating(model):
        assert not any(m.training for m in model.modules())
        raise RuntimeError("inside")
    assert {name: m.training for name, m in model.named_modules()} == before


# ------------------------------------------------------------------- grad modes


GRAD_MODES = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}


@pytest.mark.parametrize("mode", sorted(GRAD_MODES))
@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_every_attack_works_under_no_grad_and_inference_mode(name, mode):
    """Attacks called under ``torch.no_grad()`` or ``torch.inference_mode()`` (an evaluation
    loop's usual wrapper, the images made inside it) raised "element 0 of tensors does
    not require grad"; they must give the same predictions as outside."""
    model = _model()
    images, labels = _images(model)
    expected = adversarial_predictions(model, images, labels, _config(name), progress=False)
    with GRAD_MODES[mode]():
        x, y = images.clone(), labels.clone()  # inference tensors under inference_mode
        got = adversarial_predictions(model, x, y, _config(name), progress=False)
        assert not torch.is_grad_enabled(), "the caller's grad mode was switched on"
    assert torch.equal(got, expected)


@pytest.mark.parametrize("mode", sorted(GRAD_MODES))
def test_reference_autoattack_works_under_no_grad_and_inference_mode(mode):
    """The reference AutoAttack called directly under ``torch.no_grad()`` or
    ``torch.inference_mode()`` failed for want of gradients; it must find the same
    adversarial images as outside, through all four of its attacks."""
    model = _model()
    images, labels = _images(model)
    expected = _small_autoattack(model, images, labels)
    with GRAD_MODES[mode]():
        got = _small_autoattack(model, images.clone(), labels.clone())
    assert torch.equal(got, expected)


def test_cam_maps_work_under_inference_mode():
    """Grad-CAM++ maps of images made under ``torch.inference_mode()`` failed for want of
    gradients (``no_grad`` alone was handled); they must be the usual maps."""
    model = _model()
    images, _ = _images(model, n=4, size=32)
    expected = cam_maps(model, images)
    with torch.inference_mode():
        got = cam_maps(model, images.clone())
    assert torch.equal(got, expected)


# ------------------------------------------------------------------------ TF32


def _flags() -> tuple[object, ...]:
    return tuple(getattr(obj, name) for obj, name, _ in tf32_switches())


FULL = tuple(value for *_, value in tf32_switches())  # what full float32 sets


def _tf32_on() -> tuple[object, ...]:
    """Turns TF32 on as a user of this torch would, and returns the switches' state."""
    for obj, name, _ in tf32_switches():
        setattr(obj, name, "tf32" if FULL[0] == "ieee" else True)
    return _flags()


def test_test_time_work_runs_without_tf32_and_restores_the_flags(tf32_flags):
    """Attacks, accuracy, calibration and CAMs ran with TF32 on (the default for cuDNN
    convolutions on Ampere and later GPUs): only ``train.evaluate`` turned it off, so
    test-time numbers depended on the card. Every evaluation runs in full float32 and
    leaves the switches as it found them, set through torch's per-backend API where it
    has one (reading the legacy flags raises once a user has set the new ones)."""
    model = _model()
    images, labels = _images(model)
    seen = []
    model.conv1.register_forward_hook(lambda *_: seen.append(_flags()))
    before = _tf32_on()
    accuracy(model, images, labels)
    adversarial_accuracy(model, images, labels, AttackConfig("fgsm"), progress=False)
    predict_logits(model, images)
    cam_maps(model, images[:2])
    assert seen and set(seen) == {FULL}
    assert _flags() == before != FULL


def test_evaluating_restores_the_tf32_flags_after_an_exception(tf32_flags):
    """A failure inside test-time work leaves torch's TF32 switches as they were."""
    before = _tf32_on()
    with pytest.raises(RuntimeError, match="inside"), evaluating(_model()):
        assert _flags() == FULL
        raise RuntimeError("inside")
    assert _flags() == before


@pytest.mark.skipif(
    not hasattr(torch.backends.cudnn, "conv"), reason="torch < 2.9 has no per-backend precision"
)
def test_evaluation_works_after_tf32_is_set_through_torchs_newer_api():
    """A user of torch >= 2.9 who turns TF32 on with ``torch.backends.fp32_precision``
    (the API torch now recommends) got "you have used mix of the legacy and new APIs"
    from every evaluation, which read the legacy ``allow_tf32`` flags. A fresh process,
    since the switches are process-wide."""
    code = (
        "import torch; torch.backends.fp32_precision = 'tf32'\n"
        "from regionmix_utils.evaluation.robustness import accuracy\n"
        "from regionmix_utils.models import PreActResNet18\n"
        "model = PreActResNet18(10, width=2)\n"
        "print(accuracy(model, torch.rand(2, 3, 8, 8), torch.zeros(2, dtype=torch.long)))\n"
        "print(torch.backends.cuda.matmul.fp32_precision)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-600:]
    assert done.stdout.split()[-1] == "tf32"  # left as the user set it


# -------------------------------------------------------------- channels_last images


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_every_attack_gives_the_same_result_on_channels_last_images(name):
    """Every attack takes images in either memory layout with the same result (a batch
    permuted from NHWC, or a GPU pipeline's, is channels_last)."""
    model = _model()
    images, labels = _images(model)
    channels_last = images.contiguous(memory_format=torch.channels_last)
    expected = adversarial_predictions(model, images, labels, _config(name), progress=False)
    got = adversarial_predictions(model, channels_last, labels, _config(name), progress=False)
    assert torch.equal(got, expected)


def test_reference_autoattack_takes_channels_last_images():
    """The reference AutoAttack died in torchattacks' FAB-T on channels_last images ("view
    size is not compatible with input tensor's size and stride"); it must find the same
    adversarial images as for the contiguous ones."""
    model = _model()
    images, labels = _images(model)
    channels_last = images.contiguous(memory_format=torch.channels_last)
    assert torch.equal(_small_autoattack(model, channels_last, labels),
                       _small_autoattack(model, images, labels))  # fmt: skip
