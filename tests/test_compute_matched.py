"""The compute-matched arm of Table 2's question: without the clean CE term, a second,
independently mixed batch takes the clean term's forward/backward pass."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from regionmix_utils.config import TrainConfig, run_name
from regionmix_utils.results import column_label
from regionmix_utils.train import TrainingState, loaders, train_step, training_splits


def _passes(config: TrainConfig, tiny_shapes) -> tuple[int, list[int]]:
    """Forward passes of the model in one training step, and the batch sizes seen."""
    splits = training_splits(config, splits=tiny_shapes)
    state = TrainingState.build(config, splits, torch.device("cpu"))
    seen = []
    handle = state.model.register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
    state.start_epoch(1)
    images, labels = next(iter(loaders(state, splits)[0]))
    loss = train_step(state, images, labels)
    handle.remove()
    return loss, seen


def test_the_matched_arm_runs_as_many_passes_as_the_clean_term_and_mixes_twice(tiny_shapes):
    base = TrainConfig(dataset="shapes", method="region", width=4, batch_size=32, epochs=1)
    with_ce, seen_with = _passes(base, tiny_shapes)
    without = dataclasses.replace(base, clean_ce=False)
    plain, seen_plain = _passes(without, tiny_shapes)
    matched, seen_matched = _passes(dataclasses.replace(without, matched_compute=True), tiny_shapes)
    assert seen_with == seen_matched == [32, 32] and seen_plain == [32]
    assert matched.clean is None and with_ce.clean is not None
    # two mixed terms: the total is twice their reported mean, and the first is the plain
    # arm's own term (same streams), the second another mix of the same batch
    assert matched.total.item() == pytest.approx(2 * matched.mixed.item())
    assert matched.total.item() != pytest.approx(2 * plain.total.item(), rel=1e-6)


def test_the_matched_arm_has_its_own_folder_and_label_and_needs_the_term_dropped():
    config = TrainConfig(dataset="cifar10", method="mixup", clean_ce=False, matched_compute=True)
    assert run_name(config) == "mixup-a1-noclean-2mix"
    assert column_label(config, with_ce=True) == "Mixup (k=1, two mixed passes, w/o clean CE)"
    assert run_name(dataclasses.replace(config, matched_compute=False)) == "mixup-a1-noclean"
    with pytest.raises(ValueError, match="needs clean_ce=False"):
        TrainConfig(method="region", matched_compute=True)
    # no mixing, no mixed term: the option is normalised away like clean_ce
    assert TrainConfig(method="none", clean_ce=False, matched_compute=True).matched_compute is False
