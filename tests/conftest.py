"""Shared fixtures: where the real data subsets live, and a tiny shapes split."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from regionmix_utils.data import Splits, load_dataset
from regionmix_utils.train import TrainConfig

REPO = Path(__file__).resolve().parent.parent


def shared_data() -> Path | None:
    """The real CIFAR-10 / Tiny ImageNet subsets: $REGIONMIX_SHARED_DATA or ../shared/data."""
    env = os.environ.get("REGIONMIX_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


def tiny_config(**changes) -> TrainConfig:
    """A region-mixup run on the embedded data small enough for a test (about a second)."""
    base = TrainConfig(
        dataset="shapes", method="region", epochs=2, width=4, batch_size=32, n_train=256, n_test=100
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="session")
def real_data() -> Path:
    path = shared_data()
    if path is None:
        pytest.skip("real data subsets not found (set REGIONMIX_SHARED_DATA to their folder)")
    return path


@pytest.fixture(scope="session")
def tiny_shapes() -> Splits:
    """256 train / 100 test images of the embedded data: enough to exercise the loop."""
    return load_dataset("shapes", n_train=256, n_test=100)
