"""Pins for one-line bugs that the tests of these modules' own files let through: each
test here fails on its bug, on a fixture where the bug shows.

- ``--n-images N`` must be a class-stratified sample, not the first N test images
  (a class-grouped test split shows the difference);
- the CIFAR-C reader must turn HWC into CHW, not CWH (a non-square, asymmetric image);
- ``regionmix attack``'s default ε is 8/255 (the paper's);
- ``atomic_write_text`` must replace the file, never write into it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from regionmix_utils.cli import build_parser
from regionmix_utils.config import TrainConfig
from regionmix_utils.data import load_dataset
from regionmix_utils.evaluation import robustness
from regionmix_utils.evaluation.corruptions import SEVERITIES, corrupted_images
from regionmix_utils.evaluation.robustness import AttackConfig, attack_configs
from regionmix_utils.files import atomic_write_text
from regionmix_utils.runs import Run

# ------------------------------------------------------------------ --n-images N


def _class_grouped_cifar_npz(root: Path, per_class: int = 10) -> Path:
    """A cifar10-subset.npz whose test split is grouped by class (0, 0, ..., 9, 9), each
    image filled with its own index so that a sample can be traced back."""
    labels = np.repeat(np.arange(10), per_class)
    index = np.arange(len(labels), dtype=np.uint8)
    images = np.broadcast_to(index[:, None, None, None], (len(labels), 32, 32, 3)).copy()
    np.savez(root / "cifar10-subset.npz", x_train=images, y_train=labels, x_test=images,
             y_test=labels)  # fmt: skip
    return root


def test_n_images_takes_a_class_stratified_sample_of_the_test_split(tmp_path):
    data_dir = _class_grouped_cifar_npz(tmp_path)
    run = Run.of(tmp_path / "runs", TrainConfig(dataset="cifar10-subset"))
    run.record_config(TrainConfig(dataset="cifar10-subset"))
    images, labels = robustness.test_images(run, n_images=20, data_dir=data_dir)
    assert torch.equal(torch.bincount(labels, minlength=10), torch.full((10,), 2))
    # Each image keeps its own label (image i holds the value i; its class is i // 10).
    assert torch.equal((images[:, 0, 0, 0] * 255).round().long() // 10, labels)
    whole = load_dataset("cifar10-subset", data_dir, n_test=30).test
    assert torch.equal(torch.bincount(whole.labels, minlength=10), torch.full((10,), 3))


# ---------------------------------------------------------------------- CIFAR-C


def test_the_cifar_c_reader_turns_hwc_into_chw(tmp_path):
    """A non-square image with a different value at every pixel and channel: a swap of
    H and W changes the shape, a wrong channel axis the values."""
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    n, height, width = 4, 8, 6
    gen = np.random.default_rng(0)
    array = gen.integers(0, 256, (len(SEVERITIES) * n, height, width, 3), dtype=np.uint8)
    np.save(folder / "fog.npy", array)
    np.save(folder / "labels.npy", np.tile(np.arange(n), len(SEVERITIES)))
    data = corrupted_images("cifar10", "fog", 2, tmp_path)
    assert data.images.shape == (n, 3, height, width)
    expected = torch.from_numpy(array[n : 2 * n]).permute(0, 3, 1, 2)
    assert torch.equal(data.images, expected)
    assert data.labels.tolist() == list(range(n))


# ----------------------------------------------------------------- attack's ε


def test_regionmix_attack_defaults_to_the_papers_eps_of_8_over_255():
    args = build_parser().parse_args(["attack", "--runs-dir", "runs"])
    assert args.eps == [8 / 255]
    configs = attack_configs(args.attack, args.eps, steps=args.steps)
    assert configs and {c.eps for c in configs} == {8 / 255}
    assert AttackConfig("fgsm").eps == 8 / 255
    assert dataclasses.replace(AttackConfig("square"), queries=5).eps == 8 / 255


# ------------------------------------------------------------------ atomic writes


def test_atomic_write_text_replaces_the_file_and_never_writes_into_it(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old")
    with open(path) as reader:  # a reader that opened the file before the write
        atomic_write_text(path, "new")
        assert reader.read() == "old", "the write went into the file a reader had open"
    assert path.read_text() == "new"
    # A write that fails half-way leaves the old file whole, and no temporary file.
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(path, "half \ud800 written")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
