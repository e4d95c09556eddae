"""A config built from numpy numbers (a sweep over np.linspace) trains and resumes."""

from __future__ import annotations

import numpy as np
import pytest

from regionmix_utils.config import TrainConfig
from regionmix_utils.train import train


class Stop(Exception):
    pass


def _stop_after_first_epoch(record: dict) -> None:
    raise Stop


def _config(**numbers) -> TrainConfig:
    fields = {"dataset": "shapes", "method": "region", "epochs": 2, "width": 4, "n_train": 128,
              "n_test": 50, "batch_size": 64}  # fmt: skip
    return TrainConfig(**(fields | numbers))


def test_the_config_holds_plain_python_numbers():
    config = _config(lr=np.linspace(0.05, 0.1, 2)[0], k=np.int64(2), mix_prob=np.float32(1.0),
                     concat_forward=np.bool_(False))  # fmt: skip
    for name in ("lr", "k", "mix_prob", "concat_forward"):
        assert type(getattr(config, name)) in (float, int, bool), name
    assert config.lr == 0.05 and type(config.k) is int
    grids = _config(method="region-random", sides=np.array([1, 2]), alpha=np.float64(0.5))
    assert grids.sides == (1, 2) and all(type(side) is int for side in grids.sides)


def test_a_numpy_learning_rate_trains_checkpoints_and_resumes(tmp_path):
    config = _config(lr=np.float64(0.05))
    with pytest.raises(Stop):
        train(config, tmp_path, progress=False, on_epoch=_stop_after_first_epoch)
    result = train(config, tmp_path, progress=False)  # resumes from last.pt
    assert [m["epoch"] for m in result.metrics] == [1, 2] and not result.skipped
