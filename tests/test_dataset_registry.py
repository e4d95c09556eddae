"""The dataset registry: every entry is complete and agrees with what loads; an unknown
name is one clear error wherever it is given; a plugin's dataset works end to end."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from regionmix_utils import data, paper
from regionmix_utils.config import TrainConfig
from regionmix_utils.data import (
    DatasetSpec,
    ImageSet,
    Splits,
    dataset_names,
    get_dataset,
    is_on_disk,
    load_dataset,
    register_dataset,
    registered_dataset,
    tinyimagenet_classes,
)
from regionmix_utils.models import build_model

BUILT_IN = ("shapes", "cifar10", "cifar100", "tinyimagenet", "cifar10-subset")

# The statistics the trained models in results/ were normalised with.
STATS_BEFORE = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar10-subset": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    "shapes": ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
}

UNKNOWN = f"dataset must be one of {BUILT_IN}, got 'cifar11'"


# ------------------------------------------------------------------------- the entries


def test_the_built_in_datasets_keep_their_names_and_order():
    assert dataset_names() == BUILT_IN == data.DATASETS.names()
    assert all(name in data.DATASETS for name in BUILT_IN) and "cifar11" not in data.DATASETS


@pytest.mark.parametrize("name", dataset_names())
def test_every_registered_dataset_is_described(name):
    spec = get_dataset(name)
    assert spec.name == name
    assert isinstance(spec.title, str) and spec.title
    assert isinstance(spec.num_classes, int) and spec.num_classes >= 2
    assert len(spec.image_size) == 2 and all(isinstance(v, int) and v >= 8
                                             for v in spec.image_size)  # fmt: skip
    train, test = spec.split_sizes
    assert isinstance(train, int) and isinstance(test, int) and train > test >= spec.num_classes
    assert len(spec.mean) == len(spec.std) == 3
    assert all(0 < m < 1 for m in spec.mean) and all(0 < s < 1 for s in spec.std)
    assert callable(spec.load) and callable(spec.on_disk)
    assert spec.download is None or callable(spec.download)


def test_the_normalisation_is_the_one_the_models_were_trained_with():
    assert {name: (get_dataset(name).mean, get_dataset(name).std) for name in BUILT_IN} == (
        STATS_BEFORE
    )
    model = build_model("tinyimagenet", 200, width=4)
    assert model.mean.flatten().tolist() == pytest.approx(STATS_BEFORE["tinyimagenet"][0])
    assert model.std.flatten().tolist() == pytest.approx(STATS_BEFORE["tinyimagenet"][1])


def test_only_the_public_datasets_can_be_downloaded():
    fetchable = {name for name in dataset_names() if get_dataset(name).download is not None}
    assert fetchable == {"cifar10", "cifar100", "tinyimagenet"}


def test_the_paper_datasets_are_titled_as_the_paper_titles_them():
    titles = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "tinyimagenet": "Tiny ImageNet"}
    assert {name: get_dataset(name).title for name in titles} == titles
    assert {cell.dataset for cell in paper.CELLS} == set(titles)


def test_shapes_loads_as_its_entry_says():
    spec = get_dataset("shapes")
    splits = load_dataset("shapes")
    assert (len(splits.train), len(splits.test)) == spec.split_sizes
    assert tuple(splits.train.images.shape[-2:]) == spec.image_size
    assert splits.num_classes == spec.num_classes
    assert is_on_disk("shapes")


def test_the_real_subsets_agree_with_their_entries(real_data):
    spec = get_dataset("cifar10-subset")
    splits = load_dataset("cifar10-subset", real_data)
    assert (len(splits.train), len(splits.test)) == spec.split_sizes
    assert tuple(splits.test.images.shape[-2:]) == spec.image_size
    assert splits.num_classes == spec.num_classes
    # Tiny ImageNet here is cut down to 20 images a class, but has all its classes.
    assert len(tinyimagenet_classes(real_data)[0]) == get_dataset("tinyimagenet").num_classes


# ------------------------------------------------------------------------ unknown names


@pytest.mark.parametrize(
    "call",
    [
        lambda: get_dataset("cifar11"),
        lambda: load_dataset("cifar11"),
        lambda: is_on_disk("cifar11"),
        lambda: build_model("cifar11", 10, width=4),
        lambda: TrainConfig(dataset="cifar11"),
    ],
    ids=["get_dataset", "load_dataset", "is_on_disk", "build_model", "TrainConfig"],
)
def test_an_unknown_dataset_is_one_line_naming_the_registered_ones(call):
    with pytest.raises(ValueError) as caught:
        call()
    assert str(caught.value) == UNKNOWN


# ----------------------------------------------------------------------- a plugin's set


def load_toy(root, *, size=None, n_train=None, n_test=None, seed=0) -> Splits:
    """Random uint8 images of 3 classes, made in memory as shapes is: n_train / n_test
    of them (default 30 / 12), side ``size`` (default 16), fixed by ``seed``."""
    size = size or 16

    def split(n: int, seed: int) -> ImageSet:
        gen = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
        return ImageSet(images, torch.arange(n) % 3, ("a", "b", "c"))

    return Splits("toy", split(n_train or 30, seed), split(n_test or 12, seed + 1))


TOY = DatasetSpec(
    name="toy", title="Toy", num_classes=3, image_size=(16, 16), split_sizes=(30, 12),
    mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6), load=load_toy, on_disk=lambda root: True,
)  # fmt: skip


def test_a_registered_dataset_loads_trains_and_goes_away():
    with registered_dataset(TOY):
        assert dataset_names() == (*BUILT_IN, "toy") and "toy" in data.DATASETS
        splits = load_dataset("toy", n_train=9, n_test=6, seed=3)
        assert splits.train.images.shape == (9, 3, 16, 16) and len(splits.test) == 6
        assert torch.equal(splits.train.images, load_toy(None, n_train=9, seed=3).train.images)
        assert is_on_disk("toy")

        model = build_model("toy", 3, width=4)
        assert model.mean.flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])
        assert model.std.flatten().tolist() == pytest.approx([0.4, 0.5, 0.6])
        assert model(splits.train.images.float() / 255).shape == (9, 3)
        assert TrainConfig(dataset="toy").dataset == "toy"

        with pytest.raises(ValueError, match="a dataset named 'toy' is already registered"):
            register_dataset(TOY)
    assert dataset_names() == BUILT_IN and "toy" not in data.DATASETS
    with pytest.raises(ValueError, match="got 'toy'"):
        load_dataset("toy")


def test_a_plugin_dataset_on_disk_is_found_fetched_and_sampled(tmp_path, capsys):
    """A dataset read from a file: ``is_on_disk`` asks its check, ``download=True`` calls
    its download, and ``load_dataset`` takes stratified samples of what it loads."""
    rng = np.random.default_rng(0)
    fetched = []

    def download(root):
        fetched.append(root)
        if not (root / "toy.npz").exists():
            print("toy is not under the data folder: writing it")
            np.savez(root / "toy.npz", x=rng.integers(0, 256, (40, 3, 16, 16), dtype=np.uint8),
                     y=np.arange(40) % 4)  # fmt: skip

    def load(root, **_):
        if not (root / "toy.npz").exists():
            raise data.DatasetMissingError(f"no toy.npz under {root}")
        with np.load(root / "toy.npz") as arrays:
            split = ImageSet(torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]),
                             ("a", "b", "c", "d"))  # fmt: skip
        return Splits("toy-file", split, split)

    spec = DatasetSpec(
        name="toy-file", title="Toy file", num_classes=4, image_size=(16, 16),
        split_sizes=(40, 40), mean=(0.5,) * 3, std=(0.3,) * 3,
        load=load, on_disk=lambda root: (root / "toy.npz").exists(), download=download,
    )  # fmt: skip
    with registered_dataset(spec):
        downloadable = [name for name in dataset_names() if get_dataset(name).download]
        assert downloadable[-1] == "toy-file" and get_dataset("toy-file").title == "Toy file"
        assert not is_on_disk("toy-file", tmp_path)
        with pytest.raises(data.DatasetMissingError, match=r"no toy\.npz"):
            load_dataset("toy-file", tmp_path)
        assert fetched == []
        splits = load_dataset("toy-file", tmp_path, download=True, n_train=8)
        assert fetched == [tmp_path] and "writing it" in capsys.readouterr().out
        assert is_on_disk("toy-file", tmp_path)
        assert len(splits.train) == 8 and len(splits.test) == 40
        assert torch.bincount(splits.train.labels).tolist() == [2, 2, 2, 2]  # stratified
    assert "toy-file" not in dataset_names()


def test_unregistering_an_unknown_dataset_is_harmless():
    data.DATASETS.unregister("never-registered")
    assert dataset_names() == BUILT_IN


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"mean": (0.5, 0.5)}, "mean must be 3 numbers"),
        ({"std": (0.5, 0.0, 0.5)}, "std must be 3 numbers (R, G, B), each > 0"),
        ({"num_classes": 0}, "num_classes must be an integer >= 1"),
        ({"image_size": (16,)}, "image_size must be two integers >= 1"),
        ({"split_sizes": (30, 0)}, "split_sizes must be two integers >= 1"),
    ],
)
def test_an_incomplete_entry_is_refused(changes, words):
    with pytest.raises(ValueError, match=re.escape(f"dataset 'toy': {words}")):
        dataclasses.replace(TOY, **changes)
