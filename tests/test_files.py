"""Atomic writes create their files as a plain write would: mode 0o666 less the umask."""

from __future__ import annotations

import os
import pickle
import stat

import numpy as np
import pytest
import torch

from regionmix_utils.config import TrainConfig
from regionmix_utils.files import atomic_torch_save, atomic_write_bytes, atomic_write_text
from regionmix_utils.runs import Predictions, Run


@pytest.fixture
def umask():
    """Set the process's umask for one test, and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")
@pytest.mark.parametrize("mask, expected", [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_atomic_writes_get_the_mode_of_a_plain_write(tmp_path, umask, mask, expected):
    """Under a group-sharing umask (002), as a SLURM group sharing one runs folder uses,
    teammates can read and write what a run writes; tempfile.mkstemp's files are 0600."""
    umask(mask)
    (tmp_path / "plain.txt").write_text("plain")
    atomic_write_text(tmp_path / "config.json", "{}\n")
    atomic_write_bytes(tmp_path / "predictions.npz", b"npz")
    atomic_torch_save({"w": torch.zeros(2)}, tmp_path / "final.pt")
    (tmp_path / "metrics.jsonl").write_text("old\n")
    os.chmod(tmp_path / "metrics.jsonl", 0o600)
    atomic_write_text(tmp_path / "metrics.jsonl", "new\n")  # replaces a 0600 file
    modes = {p.name: _mode(p) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(modes, expected)
    assert len(modes) == 5


@pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")
def test_a_runs_files_are_group_writable_under_umask_002(tmp_path, umask):
    umask(0o002)
    config = TrainConfig(dataset="shapes", method="region", epochs=1)
    run = Run.of(tmp_path / "runs", config)
    run.record_config(config)
    run.write_metrics([{"epoch": 1, "train_loss": 1.0, "test_loss": 1.0, "test_acc": 10.0}])
    labels = np.arange(4) % 2
    run.add_evaluation({"kind": "clean", "n_images": 4, "accuracy": 50.0},
                       Predictions.from_outputs(labels, labels))  # fmt: skip
    written = {"config.json", "metrics.jsonl", "eval.json", "predictions.npz"}
    assert written <= {p.name for p in run.path.iterdir()}
    assert {name: _mode(run.path / name) for name in written} == dict.fromkeys(written, 0o664)


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "final.pt"
    with pytest.raises((AttributeError, pickle.PicklingError)):
        atomic_torch_save(lambda: None, target)  # a local function does not pickle
    assert list(tmp_path.iterdir()) == []
