"""The mixing schedule: --mix-prob, --switch, --mix-off-epoch, --label-smoothing, and the
in-model methods in the trainer."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from regionmix_utils.config import TrainConfig, run_name
from regionmix_utils.methods import get_method
from regionmix_utils.models import build_model
from regionmix_utils.train import TrainingState, in_model_loss, train, training_loss

from .conftest import tiny_config


def state_of(config: TrainConfig, splits) -> TrainingState:
    state = TrainingState.build(config, splits, torch.device("cpu"))
    state.start_epoch(1)
    return state


def test_default_knobs_keep_the_old_folder_names():
    assert run_name(TrainConfig()) == "region-k2-a1"
    assert run_name(TrainConfig(method="cutmix", mix_prob=1.0, label_smoothing=0.0)) == "cutmix-a1"
    assert run_name(TrainConfig(method="region", mix_prob=0.5)) == "region-k2-a1-p0.5"
    assert run_name(TrainConfig(method="region", mix_off_epoch=300)) == "region-k2-a1-off300"
    assert run_name(TrainConfig(method="mixup", label_smoothing=0.1)) == "mixup-a1-ls0.1"
    switched = TrainConfig(method="cutmix", switch=("mixup:0.5",))
    assert run_name(switched) == "cutmix-a1-swmixup0.5"
    # Settings read only by a method switched to name the run too (k of Region Mixup).
    assert run_name(TrainConfig(method="cutmix", switch=[("region", 0.3)], k=4)) == (
        "cutmix-a1-swregion0.3-k4"
    )
    # A run that never mixes ignores the schedule.
    assert TrainConfig(method="none", mix_prob=0.2, mix_off_epoch=3) == TrainConfig(method="none")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mix_prob": 1.5}, "mix_prob"),
        ({"mix_off_epoch": 0}, "mix_off_epoch"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"switch": ("cutmix:0.7", "mixup:0.6")}, "sum to at most 1"),
        ({"switch": ("none:0.5",)}, "must mix"),
        ({"switch": ("cutmix",)}, "METHOD:P"),
        ({"switch": ("nosuch:0.5",)}, "method must be one of"),
    ],
)
def test_bad_schedules_raise(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_mix_prob_half_mixes_half_of_400_batches(tiny_shapes):
    state = state_of(tiny_config(mix_prob=0.5), tiny_shapes)
    mixed = sum(state.batch_method() is not None for _ in range(400))
    assert 180 <= mixed <= 220  # 50 ± 5 %
    always = state_of(tiny_config(), tiny_shapes)
    assert all(always.batch_method() is get_method("region") for _ in range(50))


def test_switch_uses_each_method_with_its_probability(tiny_shapes):
    config = tiny_config(method="region", switch=("cutmix:0.3", "mixup:0.2"))
    state = state_of(config, tiny_shapes)
    names = [state.batch_method().name for _ in range(2000)]
    for name, share in (("cutmix", 0.3), ("mixup", 0.2), ("region", 0.5)):
        assert abs(names.count(name) / 2000 - share) < 0.04, name


def test_default_schedule_draws_nothing_from_the_mixing_stream(tiny_shapes):
    """A run at the default schedule mixes exactly as before the knobs existed."""
    state = state_of(tiny_config(), tiny_shapes)
    before = state.mix_gen.get_state()
    state.batch_method()
    assert torch.equal(state.mix_gen.get_state(), before)


def test_mix_off_epoch_leaves_later_epochs_unmixed(tmp_path, tiny_shapes):
    config = tiny_config(epochs=3, mix_off_epoch=2, mix_prob=0.5)
    result = train(config, tmp_path, splits=tiny_shapes, progress=False)
    first, *later = result.metrics
    assert "train_mixed_loss" in first and first["mixed_batches"] > 0
    for record in later:
        assert "train_mixed_loss" not in record and record["mixed_batches"] == 0
        assert record["train_loss"] == pytest.approx(record["train_clean_loss"])
    assert result.path.parent.name == "region-k2-a1-p0.5-off2"


def test_label_smoothing_smooths_the_clean_and_the_mixed_targets():
    model = build_model("shapes", 4, width=4)
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.rand(6, 3, 16, 16, generator=gen), torch.arange(6) % 4
    config = TrainConfig(dataset="shapes", method="region", label_smoothing=0.2)
    mixed = get_method("region").mix(images, labels, 4, config, gen)
    loss = training_loss(model, config, images, labels, mixed)
    smooth = lambda t: 0.8 * t + 0.2 / 4  # noqa: E731
    clean = -(smooth(F.one_hot(labels, 4).float()) * F.log_softmax(model(images), 1)).sum(1).mean()
    mixed_ce = -(smooth(mixed.targets) * F.log_softmax(model(mixed.images), 1)).sum(1).mean()
    torch.testing.assert_close(loss.clean, clean)
    torch.testing.assert_close(loss.mixed, mixed_ce)
    plain = training_loss(model, config, images, labels, None)
    torch.testing.assert_close(plain.total, F.cross_entropy(model(images), labels,
                                                            label_smoothing=0.2))  # fmt: skip


def test_in_model_loss_is_clean_ce_plus_ce_of_the_hidden_mix():
    model = build_model("shapes", 4, width=4).eval()
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.rand(6, 3, 16, 16, generator=gen), torch.arange(6) % 4
    config = TrainConfig(dataset="shapes", method="region-manifold")
    method = get_method("region-manifold")
    state = torch.Generator().manual_seed(3)
    loss = in_model_loss(model, config, method, images, labels, 4, state)
    logits, mixed, _ = method.forward_mixed(model, images, labels, 4, config,
                                            torch.Generator().manual_seed(3))  # fmt: skip
    mixed_ce = -(mixed.targets * F.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(loss.mixed, mixed_ce)
    torch.testing.assert_close(loss.clean, F.cross_entropy(model(images), labels))


@pytest.mark.parametrize("method", ["manifold", "region-manifold", "gridmix"])
def test_new_methods_train_and_their_epochs_are_deterministic(method, tmp_path, tiny_shapes):
    config = tiny_config(method=method, epochs=2)
    whole = train(config, tmp_path / "a", splits=tiny_shapes, progress=False)
    assert all("train_mixed_loss" in record for record in whole.metrics)
    half = train(dataclasses.replace(config, epochs=1), tmp_path / "b", splits=tiny_shapes,
                 progress=False)  # fmt: skip
    assert half.metrics[0]["train_loss"] == whole.metrics[0]["train_loss"]
