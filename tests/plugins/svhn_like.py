"""A dataset: street-view house numbers in SVHN's own files (``train_32x32.mat``,
``test_32x32.mat``: X [32, 32, 3, N] uint8, y [N, 1] with 10 for the digit 0)."""

import os
import urllib.request
from pathlib import Path

import scipy.io
import torch

from regionmix_utils.data import (
    DatasetMissingError,
    DatasetSpec,
    ImageSet,
    Splits,
    register_dataset,
)

URL = os.environ.get("SVHN_URL", "http://ufldl.stanford.edu/housenumbers/")
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
CLASSES = tuple(str(digit) for digit in range(10))


def _split(path: Path) -> ImageSet:
    mat = scipy.io.loadmat(path)
    images = torch.from_numpy(mat["X"]).permute(3, 2, 0, 1).contiguous()
    return ImageSet(images, torch.from_numpy(mat["y"]).flatten().long() % 10, CLASSES)


def load_svhn(root, **_):
    folder = Path(root) / "svhn"
    if not on_disk(root):
        raise DatasetMissingError(f"SVHN is not under {folder}: `regionmix download svhn`")
    return Splits("svhn", _split(folder / FILES["train"]), _split(folder / FILES["test"]))


def on_disk(root) -> bool:
    return all((Path(root) / "svhn" / name).is_file() for name in FILES.values())


def download_svhn(root) -> Path:
    folder = Path(root) / "svhn"
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        urllib.request.urlretrieve(URL + name, folder / f"{name}.part")
        (folder / f"{name}.part").rename(folder / name)
    return folder


register_dataset(
    DatasetSpec(
        name="svhn", title="SVHN", num_classes=10, image_size=(32, 32),
        split_sizes=(73257, 26032), mean=(0.4377, 0.4438, 0.4728),
        std=(0.198, 0.201, 0.197), load=load_svhn, on_disk=on_disk, download=download_svhn,
    )
)  # fmt: skip
