"""Datasets as uint8 tensors, the paper's augmentation, and a batch loader.

Every dataset loads into an ``ImageSet``: all images as one uint8 tensor [N, 3, H, W]
with int64 labels [N] (and object boxes where the data has them). The whole set is
small enough to live on the GPU (CIFAR: 150 MB; Tiny ImageNet: 1.2 GB), so batches
are cut, augmented and mixed on the device with no per-image Python work.

- ``shapes``: procedural, ships with the package, no download (the offline default).
- ``cifar10`` / ``cifar100``: through torchvision, with its integrity checks.
- ``tinyimagenet``: the standard ``tiny-imagenet-200/`` folder; ``download_tinyimagenet``
  fetches and extracts the official zip.
- ``cifar10-subset``: a CIFAR-10 ``.npz`` (x_train, y_train, x_test, y_test, HWC uint8).

Datasets are looked up under ``data_root()`` (``files.data_dir``: ``$REGIONMIX_DATA``,
the checkout's ``data/``, ...).

Each dataset is one ``DatasetSpec`` in a registry, the one place that says what it is:
its title, classes, image and split sizes, the normalisation the model uses, and how to
load it, find it on disk and download it. ``load_dataset``, ``is_on_disk``,
``models.build_model`` and ``TrainConfig`` read the registry; ``DATASETS`` is the tuple
of registered names. A plugin adds a dataset with ``register_dataset``::

    from regionmix_utils.data import DatasetSpec, ImageSet, Splits, register_dataset

    def load_noise(root, *, size=None, n_train=None, n_test=None, seed=0):
        gen = torch.Generator().manual_seed(seed)
        def split(n):
            images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
            return ImageSet(images, torch.arange(n) % 2, ("even", "odd"))
        return Splits("noise", split(n_train or 100), split(n_test or 20))

    register_dataset(DatasetSpec(
        name="noise", title="Noise", num_classes=2, image_size=(32, 32),
        split_sizes=(100, 20), mean=(0.5, 0.5, 0.5), std=(0.29, 0.29, 0.29),
        load=load_noise, on_disk=lambda root: True,
    ))

after which ``TrainConfig(dataset="noise")`` and ``load_dataset("noise")`` work.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from regionmix_utils.files import atomic_torch_save, data_dir

__all__ = [
    "DATASETS",
    "BatchLoader",
    "DatasetMissingError",
    "DatasetSpec",
    "ImageSet",
    "Splits",
    "augment_batch",
    "cifar",
    "cifar10_npz",
    "cifar_classes",
    "data_root",
    "dataset_names",
    "download_cifar",
    "download_tinyimagenet",
    "get_dataset",
    "holdout_split",
    "is_on_disk",
    "load_dataset",
    "read_jpegs",
    "register_dataset",
    "registered_dataset",
    "shapes",
    "stratified_indices",
    "tinyimagenet",
    "tinyimagenet_classes",
    "unregister_dataset",
]

# The registered datasets' names, in registration order: the built-in ones are
# ("shapes", "cifar10", "cifar100", "tinyimagenet", "cifar10-subset"). Rebound by
# ``register_dataset`` and ``unregister_dataset``, so ``data.DATASETS`` is always current
# (a name imported with ``from ... import DATASETS`` is the tuple of that moment).
DATASETS: tuple[str, ...] = ()
TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
SHAPE_CLASSES = (
    "disk", "square", "triangle", "diamond", "plus",
    "ring", "ellipse", "cross", "frame", "half-disk",
)  # fmt: skip


class DatasetMissingError(FileNotFoundError):
    """A dataset is not on disk (or is incomplete); the message says how to get it."""


@dataclass(frozen=True)
class ImageSet:
    """One split of a dataset, held in memory.

    Attributes:
        images: uint8 [N, 3, H, W].
        labels: int64 [N].
        classes: class names, index = label.
        boxes: optional int64 [N, 4] object boxes (x0, y0, x1, y1), x1/y1 exclusive.
    """

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]
    boxes: Tensor | None = None

    def __post_init__(self) -> None:
        # Checked once here, so that training never reads labels back from a GPU.
        if self.images.ndim != 4 or self.images.dtype != torch.uint8:
            raise ValueError(
                f"images must be uint8 [N, 3, H, W], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be [N] = [{self.images.shape[0]}], got {tuple(self.labels.shape)}"
            )
        if len(self.labels) and not (
            0 <= int(self.labels.min()) and int(self.labels.max()) < len(self.classes)
        ):
            raise ValueError(
                f"labels must lie in [0, {len(self.classes) - 1}] for {len(self.classes)} "
                f"classes, got {int(self.labels.min())} to {int(self.labels.max())}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, n: int, seed: int = 0) -> ImageSet:
        """A class-stratified sample of ``n`` images (all when n >= len), in file order.

        Every class gets n // C or n // C + 1 images where it has them (C classes), so
        a subset of a set whose files are grouped by class (Tiny ImageNet) still holds
        every class. Fixed by ``seed``.
        """
        index = stratified_indices(self.labels, n, len(self.classes), seed)
        boxes = None if self.boxes is None else self.boxes[index]
        return ImageSet(self.images[index], self.labels[index], self.classes, boxes)


HOLDOUT_SEED = 7  # the seed of the held-out sample (``holdout_split``)


def holdout_split(data: ImageSet, n: int) -> tuple[ImageSet, ImageSet]:
    """(kept, held out): a class-stratified sample of ``n`` images held out of training
    (for fitting a temperature, say) and the rest. Fixed by ``HOLDOUT_SEED``, so the
    trainer and the evaluation agree on which images were held out."""
    held = stratified_indices(data.labels, n, len(data.classes), HOLDOUT_SEED)
    kept = torch.ones(len(data), dtype=torch.bool)
    kept[held] = False
    index = kept.nonzero().flatten()
    boxes = (None, None) if data.boxes is None else (data.boxes[index], data.boxes[held])
    return (
        ImageSet(data.images[index], data.labels[index], data.classes, boxes[0]),
        ImageSet(data.images[held], data.labels[held], data.classes, boxes[1]),
    )


def stratified_indices(labels: Tensor, n: int, num_classes: int, seed: int = 0) -> Tensor:
    """Sorted indices of a class-stratified random sample of ``n`` of ``labels`` [N].

    Images are dealt out class by class, round-robin, each class's images in a random
    order and the classes in a random order for the last round, so class counts differ
    by at most one (a class that runs out leaves its share to the others).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    total = labels.shape[0]
    if n >= total:
        return torch.arange(total)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(total, generator=gen)
    shuffled = labels[order]
    by_class = torch.argsort(shuffled, stable=True)  # classes grouped, shuffled within
    counts = torch.bincount(shuffled, minlength=num_classes)
    first = torch.cumsum(counts, 0) - counts
    rank = torch.empty(total, dtype=torch.long)
    rank[by_class] = torch.arange(total) - first[shuffled[by_class]]  # place within class
    class_order = torch.randperm(num_classes, generator=gen)
    key = rank * num_classes + class_order[shuffled]
    return order[torch.argsort(key)[:n]].sort().values


@dataclass(frozen=True)
class Splits:
    """Train and test splits of one dataset."""

    name: str
    train: ImageSet
    test: ImageSet

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets live, the same from any working directory: ``root`` if given, else
    ``files.data_dir``'s rule ($REGIONMIX_DATA, the checkout's ``data/``, ...)."""
    return data_dir(root)


# ----------------------------------------------------------------------------- shapes


def _shape_masks(label: int, u: Tensor, v: Tensor) -> Tensor:
    """Boolean mask of shape ``label`` in unit coordinates u, v ([n, H, W], radius 1)."""
    r = torch.sqrt(u**2 + v**2)
    box = torch.maximum(u.abs(), v.abs())
    masks = {
        0: r <= 1,
        1: box <= 0.8,
        2: (v <= 0.6) & (u.abs() <= (v + 1) * 0.6),
        3: u.abs() + v.abs() <= 1,
        4: ((u.abs() <= 0.3) | (v.abs() <= 0.3)) & (box <= 1),
        5: (r <= 1) & (r >= 0.55),
        6: u**2 + (v / 0.45) ** 2 <= 1,
        7: (((u - v).abs() <= 0.35) | ((u + v).abs() <= 0.35)) & (box <= 0.85),
        8: (box <= 0.9) & (box >= 0.55),
        9: (r <= 1) & (v >= -0.1),
    }
    return masks[label]


def _textures(n: int, size: int, gen: torch.Generator) -> Tensor:
    """[n, 3, size, size] float backgrounds: two coloured gratings plus noise."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = torch.zeros(n, 3, size, size)
    for _ in range(2):
        freq = torch.rand(n, 1, 1, generator=gen) * 0.5 + 0.05
        angle = torch.rand(n, 1, 1, generator=gen) * math.pi
        phase = torch.rand(n, 1, 1, generator=gen) * 2 * math.pi
        wave = torch.sin(freq * (xx * torch.cos(angle) + yy * torch.sin(angle)) + phase)
        colour = torch.rand(n, 3, 1, 1, generator=gen) * 0.25
        out += colour * (wave[:, None] * 0.5 + 0.5)
    return out + torch.rand(n, 3, 1, 1, generator=gen) * 0.5


def shapes(n: int, size: int = 32, seed: int = 0) -> ImageSet:
    """``n`` procedural images of 10 shape classes on textured backgrounds, with boxes.

    Each image holds one shape of random position, scale (40% to 70% of the image
    side), rotation (+-20 degrees, so a square never becomes a diamond) and colour
    (lighter than the background where that is dark, darker where it is light), over a
    random two-grating texture, with pixel noise. Fully determined by ``seed``.

    Returns:
        ImageSet with images uint8 [n, 3, size, size], balanced labels, and boxes.
    """
    if n < 1 or size < 8:
        raise ValueError(f"shapes needs n >= 1 and size >= 8, got n={n}, size={size}")
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(SHAPE_CLASSES)
    labels = labels[torch.randperm(n, generator=gen)]
    radius = (torch.rand(n, generator=gen) * 0.15 + 0.2) * size
    cy = radius + torch.rand(n, generator=gen) * (size - 2 * radius)
    cx = radius + torch.rand(n, generator=gen) * (size - 2 * radius)
    theta = (torch.rand(n, generator=gen) - 0.5) * math.radians(40)
    background = _textures(n, size, gen)
    light = background.mean((1, 2, 3), keepdim=True) < 0.5
    colour = torch.rand(n, 3, 1, 1, generator=gen) * 0.45
    colour = torch.where(light, 1 - colour, colour)
    noise = torch.randn(n, 3, size, size, generator=gen) * 0.04

    coords = torch.arange(size, dtype=torch.float32) + 0.5
    dy = (coords[None, :, None] - cy[:, None, None]) / radius[:, None, None]
    dx = (coords[None, None, :] - cx[:, None, None]) / radius[:, None, None]
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    for label in range(len(SHAPE_CLASSES)):
        chosen = labels == label
        mask[chosen] = _shape_masks(label, u[chosen], v[chosen])
    images = torch.where(mask[:, None], colour, background) + noise
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageSet(images, labels, SHAPE_CLASSES, _mask_boxes(mask))


def _mask_boxes(mask: Tensor) -> Tensor:
    """[n, 4] int64 (x0, y0, x1, y1) bounding boxes of boolean masks [n, H, W]."""
    rows, cols = mask.any(2), mask.any(1)
    idx_h, idx_w = torch.arange(mask.shape[1]), torch.arange(mask.shape[2])
    y0 = torch.where(rows, idx_h, mask.shape[1]).amin(1)
    y1 = torch.where(rows, idx_h, -1).amax(1) + 1
    x0 = torch.where(cols, idx_w, mask.shape[2]).amin(1)
    x1 = torch.where(cols, idx_w, -1).amax(1) + 1
    return torch.stack([x0, y0, x1, y1], 1)


# ------------------------------------------------------------------------------ CIFAR


def _cifar_class(name: str) -> type:
    """torchvision's dataset class for "cifar10" or "cifar100"."""
    from torchvision import datasets

    if name not in ("cifar10", "cifar100"):
        raise ValueError(f"name must be 'cifar10' or 'cifar100', got {name!r}")
    return datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100


def _cifar_missing(name: str, root: Path, folder: str, err: Exception) -> DatasetMissingError:
    return DatasetMissingError(
        f"{name} is missing or corrupt under {root / folder}: {err} "
        f"Fix: `regionmix download {name} --data-dir {root}` (or download=True)."
    )


def download_cifar(name: str, root: str | os.PathLike | None = None) -> Path:
    """Fetch CIFAR-10 or CIFAR-100 into ``root`` through torchvision, saying so when it
    is missing; torchvision checks every file's MD5 and fetches the archive again when a
    file is missing or corrupt. Returns the dataset folder.

    Raises:
        DatasetMissingError: the files are still missing or corrupt afterwards.
    """
    cls = _cifar_class(name)
    root = data_root(root)
    if not (root / cls.base_folder).is_dir():
        print(f"{name} is not under {root}: torchvision downloads it there and checks "
              "each file's MD5")  # fmt: skip
    try:
        # torchvision fetches only while it builds a split: the test split is the smaller.
        cls(str(root), train=False, download=True)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted."
        raise _cifar_missing(name, root, cls.base_folder, err) from err
    return root / cls.base_folder


def cifar(name: str, root: str | os.PathLike | None = None, download: bool = False) -> Splits:
    """CIFAR-10 or CIFAR-100 through torchvision (which checks every file's md5).

    Args:
        name: "cifar10" or "cifar100".
        root: folder holding ``cifar-10-batches-py`` / ``cifar-100-python``.
        download: fetch the archive if missing (``download_cifar``).
    Raises:
        DatasetMissingError: the files are missing or corrupt; the message gives the fix.
    """
    cls = _cifar_class(name)
    root = data_root(root)
    if download:
        download_cifar(name, root)
    try:
        train, test = (cls(str(root), train=t) for t in (True, False))
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted."
        raise _cifar_missing(name, root, cls.base_folder, err) from err

    def to_set(ds) -> ImageSet:
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        return ImageSet(images, torch.as_tensor(ds.targets, dtype=torch.int64), tuple(ds.classes))

    return Splits(name, to_set(train), to_set(test))


CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def cifar10_npz(path: str | os.PathLike) -> Splits:
    """A CIFAR-10 subset stored as ``.npz`` with x_train/x_test [N, 32, 32, 3] uint8 and
    y_train/y_test [N] labels."""
    path = Path(path)
    if not path.is_file():
        raise DatasetMissingError(
            f"no CIFAR-10 .npz at {path}; set $REGIONMIX_DATA to the folder holding "
            "cifar10-subset.npz or pass its path"
        )
    with np.load(path) as arrays:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays.files)
        if missing:
            raise ValueError(f"{path} lacks arrays {sorted(missing)}")

        def split(x: str, y: str) -> ImageSet:
            images = torch.from_numpy(np.ascontiguousarray(arrays[x].transpose(0, 3, 1, 2)))
            return ImageSet(images, torch.from_numpy(arrays[y].astype(np.int64)), CIFAR10_CLASSES)

        return Splits("cifar10-subset", split("x_train", "y_train"), split("x_test", "y_test"))


# ---------------------------------------------------------------------- Tiny ImageNet


def tinyimagenet_classes(root: str | os.PathLike | None = None) -> tuple[list[str], tuple]:
    """(wnids in ``wnids.txt`` order, i.e. class index order; class names)."""
    folder = data_root(root) / "tiny-imagenet-200"
    if not (folder / "wnids.txt").is_file():
        raise DatasetMissingError(
            f"{folder / 'wnids.txt'} is missing: it gives the class order. "
            f"Fix: `regionmix download tinyimagenet --data-dir {data_root(root)}`."
        )
    wnids = (folder / "wnids.txt").read_text().split()
    words = {}
    if (folder / "words.txt").is_file():
        words = dict(
            line.split("\t", 1) for line in (folder / "words.txt").read_text().splitlines() if line
        )
    return wnids, tuple(words.get(w, w).split(",")[0].strip() for w in wnids)


def cifar_classes(name: str, root: str | os.PathLike | None = None) -> tuple[str, ...]:
    """Class names of CIFAR-10, or of CIFAR-100 (read from its ``meta`` file when the
    dataset is on disk; "class 0", ... otherwise)."""
    if name == "cifar10":
        return CIFAR10_CLASSES
    meta = data_root(root) / "cifar-100-python" / "meta"
    if meta.is_file():
        import pickle

        with open(meta, "rb") as f:
            return tuple(pickle.load(f, encoding="latin1")["fine_label_names"])
    return tuple(f"class {i}" for i in range(100))


JPEG_CHUNK = 256  # JPEGs a decoding task reads


def decoding_threads() -> int:
    """Threads that decode JPEGs: Pillow releases the GIL while it decodes, so they run
    in parallel. As many as ``ThreadPoolExecutor`` takes by default (cores + 4, at
    most 32): reading the files overlaps with decoding."""
    return min(32, (os.cpu_count() or 1) + 4)


def _decode_jpegs(paths: list[Path]) -> np.ndarray:
    """uint8 [n, 64, 64, 3]: ``paths`` decoded as RGB (some Tiny ImageNet images are
    greyscale)."""
    from PIL import Image

    out = np.empty((len(paths), 64, 64, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            out[i] = np.asarray(image.convert("RGB"))
    return out


def read_jpegs(
    paths: list[Path], progress: bool = True, threads: int | None = None, desc: str = "JPEGs"
) -> Tensor:
    """Decode 64x64 JPEG files (greyscale ones as RGB) on a pool of threads, with a
    progress bar.

    Args:
        paths: the files, in the order wanted.
        progress: show a progress bar (images decoded so far).
        threads: decoding threads (default ``decoding_threads()``).
        desc: the progress bar's label.
    Returns:
        uint8 [N, 3, 64, 64] in the order of ``paths``.
    """
    from regionmix_utils.progress import progress as progress_bar

    out = torch.empty(len(paths), 3, 64, 64, dtype=torch.uint8)
    nhwc = out.permute(0, 2, 3, 1)  # a view: each chunk is written straight into ``out``
    chunks = [paths[i : i + JPEG_CHUNK] for i in range(0, len(paths), JPEG_CHUNK)]
    with (
        ThreadPoolExecutor(threads or decoding_threads()) as pool,
        progress_bar(total=len(paths), desc=desc, unit="img", disable=not progress) as bar,
    ):
        for start, decoded in zip(range(0, len(paths), JPEG_CHUNK),
                                  pool.map(_decode_jpegs, chunks), strict=True):  # fmt: skip
            nhwc[start : start + len(decoded)] = torch.from_numpy(decoded)
            bar.update(len(decoded))
    return out


def _box_row(fields: list[str]) -> list[int]:
    x0, y0, x1, y1 = (int(f) for f in fields)
    return [x0, y0, x1 + 1, y1 + 1]  # the files give inclusive corners


def tinyimagenet(root: str | os.PathLike | None = None, progress: bool = True) -> Splits:
    """Tiny ImageNet from the standard ``tiny-imagenet-200/`` folder, with object boxes.

    Reads ``wnids.txt`` (class order), ``words.txt`` (names),
    ``train/<wnid>/images/*.JPEG`` with ``train/<wnid>/<wnid>_boxes.txt``, and
    ``val/images`` with ``val/val_annotations.txt`` (the labelled split used as test
    set). Train and val labels are both numbered in ``wnids.txt`` order: class i is line
    i (the released file is not sorted). Decoded tensors are cached in
    ``tiny-imagenet-200/regionmix-cache.pt`` (written atomically) with the class order
    they were numbered in, so only the first load reads the JPEGs (110,000 of them in
    the full dataset, decoded on ``decoding_threads()`` threads with a progress bar), and
    a cache numbered in another order (a ``wnids.txt`` replaced since) is read afresh.
    A folder that cannot be written (a read-only copy) is read afresh each time.
    """
    folder = data_root(root) / "tiny-imagenet-200"
    needed = [folder / "wnids.txt", folder / "train", folder / "val" / "val_annotations.txt"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise DatasetMissingError(
            f"Tiny ImageNet is missing or incomplete under {folder} (no {', '.join(missing)}). "
            f"Fix: `regionmix download tinyimagenet --data-dir {data_root(root)}`."
        )
    cache = folder / "regionmix-cache.pt"
    saved = None
    if cache.exists() and cache.stat().st_mtime >= (folder / "wnids.txt").stat().st_mtime:
        saved = torch.load(cache, weights_only=True)
        if saved.get("wnids") != tinyimagenet_classes(folder.parent)[0]:
            saved = None  # numbered in another class order: labels would be wrong
    if saved is None:
        if progress:
            print(f"Decoding Tiny ImageNet's JPEGs under {folder} on {decoding_threads()} "
                  f"threads, once: the tensors are cached in {cache.name}")  # fmt: skip
        saved = _read_tinyimagenet_folder(folder, progress)
        try:
            atomic_torch_save(saved, cache)
        except OSError:
            pass  # a read-only dataset folder only costs the cache
    classes = tuple(saved["classes"])
    return Splits(
        "tinyimagenet",
        ImageSet(saved["train_images"], saved["train_labels"], classes, saved["train_boxes"]),
        ImageSet(saved["test_images"], saved["test_labels"], classes, saved["test_boxes"]),
    )


def _read_tinyimagenet_folder(folder: Path, progress: bool) -> dict:
    """Decode the whole tiny-imagenet-200 folder into the tensors ``tinyimagenet`` caches."""
    wnids, classes = tinyimagenet_classes(folder.parent)
    index = {w: i for i, w in enumerate(wnids)}

    train_paths, train_labels, train_boxes = [], [], []
    for wnid in wnids:
        boxes_file = folder / "train" / wnid / f"{wnid}_boxes.txt"
        for line in boxes_file.read_text().splitlines():
            if not line.strip():
                continue
            name, *box = line.split("\t")
            train_paths.append(folder / "train" / wnid / "images" / name)
            train_labels.append(index[wnid])
            train_boxes.append(_box_row(box))
    test_paths, test_labels, test_boxes = [], [], []
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        if not line.strip():
            continue
        name, wnid, *box = line.split("\t")
        test_paths.append(folder / "val" / "images" / name)
        test_labels.append(index[wnid])
        test_boxes.append(_box_row(box))

    return {
        "wnids": wnids,
        "classes": list(classes),
        "train_images": read_jpegs(train_paths, progress, desc="train JPEGs"),
        "train_labels": torch.tensor(train_labels),
        "train_boxes": torch.tensor(train_boxes),
        "test_images": read_jpegs(test_paths, progress, desc="val JPEGs"),
        "test_labels": torch.tensor(test_labels),
        "test_boxes": torch.tensor(test_boxes),
    }


def download_tinyimagenet(
    root: str | os.PathLike | None = None, url: str = TINYIMAGENET_URL, progress: bool = True
) -> Path:
    """Download and extract the official Tiny ImageNet zip into ``root/tiny-imagenet-200``.

    The archive is downloaded and extracted inside a temporary folder under ``root``
    and moved into place only when complete, so an interrupted run leaves nothing
    half-extracted. Returns the dataset folder; an existing one is left as it is.
    """
    from regionmix_utils.progress import progress as progress_bar

    root = data_root(root)
    target = root / "tiny-imagenet-200"
    if (target / "wnids.txt").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    print(f"Tiny ImageNet is not under {root}: downloading {url} (about 240 MB); it is "
          "checked and extracted before it is moved into place")  # fmt: skip
    with tempfile.TemporaryDirectory(dir=root, prefix=".tinyimagenet-") as tmp:
        archive = Path(tmp) / "tiny-imagenet-200.zip"
        with urllib.request.urlopen(url) as response, open(archive, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, unit="B", unit_scale=True, disable=not progress,
                              desc="downloading") as bar:  # fmt: skip
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        try:
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise ValueError(f"corrupt member {bad}")
                zf.extractall(Path(tmp) / "extract")
        except (zipfile.BadZipFile, ValueError) as err:
            raise DatasetMissingError(f"the download from {url} is not a valid zip: {err}") from err
        extracted = Path(tmp) / "extract" / "tiny-imagenet-200"
        if not (extracted / "wnids.txt").exists():
            raise DatasetMissingError(f"the zip from {url} has no tiny-imagenet-200/wnids.txt")
        shutil.move(str(extracted), str(target))
    return target


# ---------------------------------------------------------------------------- registry

# load(root, *, size, n_train, n_test, seed) -> Splits; see ``DatasetSpec.load``.
Loader = Callable[..., Splits]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: what it is, how the model normalises it, how to load and fetch it.

    Attributes:
        name: command-line, config and run-table name ("cifar10").
        title: name in tables and figures ("CIFAR-10").
        num_classes: K, the number of classes.
        image_size: (H, W) of the images as they load, in pixels (shapes: at its
            default side, 32).
        split_sizes: (train, test) image counts of the whole dataset as it loads (shapes:
            its default 10,000 / 2,000).
        mean, std: per-channel statistics of the training set (RGB, pixel values in
            [0, 1]); the model normalises its input with them (``models.build_model``).
        load: ``load(root, *, size, n_train, n_test, seed) -> Splits``, the dataset's
            splits from the data folder ``root`` (a Path); raises
            ``DatasetMissingError``, saying how to get the data, when it is not there.
            A loader that reads files may ignore the keywords: ``load_dataset`` then
            takes the class-stratified samples. A loader that makes its images (shapes)
            makes n_train and n_test of them (None: its default) of side ``size`` (None:
            its default) from ``seed``.
        on_disk: ``on_disk(root) -> bool``, whether ``load`` finds the data under the data
            folder ``root`` (a Path) without downloading; always True for made images.
        download: ``download(root)``, fetch the dataset into the data folder ``root`` (a
            Path) when it is missing, saying so, and check it; None where the dataset
            cannot be downloaded (shapes is made in memory, cifar10-subset is a file we
            were given).
    """

    name: str
    title: str
    num_classes: int
    image_size: tuple[int, int]
    split_sizes: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    load: Loader
    on_disk: Callable[[Path], bool]
    download: Callable[[Path], object] | None = None

    def __post_init__(self) -> None:
        def positive_ints(value, count: int) -> bool:
            return len(value) == count and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
            )

        if not positive_ints((self.num_classes,), 1):
            raise ValueError(
                f"dataset {self.name!r}: num_classes must be an integer >= 1, "
                f"got {self.num_classes!r}"
            )
        for field in ("image_size", "split_sizes"):
            value = tuple(getattr(self, field))
            if not positive_ints(value, 2):
                raise ValueError(
                    f"dataset {self.name!r}: {field} must be two integers >= 1, got {value}"
                )
            object.__setattr__(self, field, value)
        for field in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, field))
            if len(value) != 3 or (field == "std" and min(value) <= 0):
                raise ValueError(
                    f"dataset {self.name!r}: {field} must be 3 numbers (R, G, B)"
                    f"{', each > 0' if field == 'std' else ''}, got {value}"
                )
            object.__setattr__(self, field, value)


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset; its name must be new. Returns the spec.

    Raises:
        ValueError: a dataset of that name is already registered.
    """
    global DATASETS
    if spec.name in _REGISTRY:
        raise ValueError(f"a dataset named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    DATASETS = dataset_names()
    return spec


def unregister_dataset(name: str) -> None:
    """Remove a dataset (tests register toy datasets for a while); no error if absent."""
    global DATASETS
    _REGISTRY.pop(name, None)
    DATASETS = dataset_names()


@contextlib.contextmanager
def registered_dataset(spec: DatasetSpec) -> Iterator[DatasetSpec]:
    """``with registered_dataset(DatasetSpec(...)):`` the dataset exists inside the
    block only."""
    register_dataset(spec)
    try:
        yield spec
    finally:
        unregister_dataset(spec.name)


def get_dataset(name: str) -> DatasetSpec:
    """The registered dataset called ``name``.

    Raises:
        ValueError: ``name`` is not registered; one line naming it and the registered
            datasets.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise ValueError(f"dataset must be one of {dataset_names()}, got {name!r}") from None


def dataset_names() -> tuple[str, ...]:
    """Names of the registered datasets, in registration order (the built-in ones first)."""
    return tuple(_REGISTRY)


def _load_shapes(
    root: Path,
    *,
    size: int | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> Splits:
    """shapes, made in memory (``root`` unused): 10,000 / 2,000 images of side 32 by
    default; the test split from ``seed + 1``."""
    size = size or 32
    train = shapes(n_train or 10_000, size, seed)
    test = shapes(n_test or 2_000, size, seed + 1)
    return Splits("shapes", train, test)


def _load_cifar(name: str, root: Path, **_) -> Splits:
    return cifar(name, root)


def _load_cifar10_npz(root: Path, **_) -> Splits:
    return cifar10_npz(root / "cifar10-subset.npz")


def _load_tinyimagenet(root: Path, **_) -> Splits:
    return tinyimagenet(root)


def _download_tinyimagenet(root: Path) -> Path:
    # The name is looked up at each call, so that a replacement of the module's
    # ``download_tinyimagenet`` (tests have no network) is the one that runs.
    return download_tinyimagenet(root)


def _always_there(root: Path) -> bool:
    return True


def _exists(relative: str) -> Callable[[Path], bool]:
    """A check that ``relative`` exists under the data folder."""

    def on_disk(root: Path) -> bool:
        return (root / relative).exists()

    return on_disk


_CIFAR10_STATS = {"mean": (0.4914, 0.4822, 0.4465), "std": (0.2470, 0.2435, 0.2616)}

register_dataset(DatasetSpec(
    name="shapes", title="Shapes", num_classes=len(SHAPE_CLASSES), image_size=(32, 32),
    split_sizes=(10_000, 2_000), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
    load=_load_shapes, on_disk=_always_there,
))  # fmt: skip
register_dataset(DatasetSpec(
    name="cifar10", title="CIFAR-10", num_classes=10, image_size=(32, 32),
    split_sizes=(50_000, 10_000), **_CIFAR10_STATS,
    load=functools.partial(_load_cifar, "cifar10"), on_disk=_exists("cifar-10-batches-py"),
    download=functools.partial(download_cifar, "cifar10"),
))  # fmt: skip
register_dataset(DatasetSpec(
    name="cifar100", title="CIFAR-100", num_classes=100, image_size=(32, 32),
    split_sizes=(50_000, 10_000),
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    load=functools.partial(_load_cifar, "cifar100"), on_disk=_exists("cifar-100-python"),
    download=functools.partial(download_cifar, "cifar100"),
))  # fmt: skip
register_dataset(DatasetSpec(
    name="tinyimagenet", title="Tiny ImageNet", num_classes=200, image_size=(64, 64),
    split_sizes=(100_000, 10_000),
    mean=(0.4802, 0.4481, 0.3975), std=(0.2770, 0.2691, 0.2821),
    load=_load_tinyimagenet, on_disk=_exists("tiny-imagenet-200/wnids.txt"),
    download=_download_tinyimagenet,
))  # fmt: skip
register_dataset(DatasetSpec(
    name="cifar10-subset", title="CIFAR-10 subset", num_classes=10, image_size=(32, 32),
    split_sizes=(5_085, 1_017), **_CIFAR10_STATS,
    load=_load_cifar10_npz, on_disk=_exists("cifar10-subset.npz"),
))  # fmt: skip


def is_on_disk(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether ``load_dataset(name, root)`` finds the dataset without downloading
    (``shapes`` is always there).

    Raises:
        ValueError: ``name`` is not a registered dataset.
    """
    return get_dataset(name).on_disk(data_root(root))


# ---------------------------------------------------------------------------- dispatch


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    size: int | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> Splits:
    """Load a registered dataset (``dataset_names()``).

    Args:
        name: dataset name.
        root: data folder (default ``data_root()``).
        download: fetch CIFAR (torchvision, MD5-checked) / Tiny ImageNet (its official
            zip, checked before it is extracted) when missing, saying so; a dataset on
            disk is used as it is, and one that cannot be downloaded ignores it.
        size: image side for ``shapes`` (32 or 64; default 32).
        n_train, n_test: keep a class-stratified sample of each split (fixed by ``seed``;
            shapes: how many to generate, default 10000 / 2000).
        seed: shapes' generation seed (the test split uses seed + 1); the subsets' seed.
    Raises:
        ValueError: ``name`` is not a registered dataset.
        DatasetMissingError: the dataset is not on disk (and not downloaded).
    """
    spec = get_dataset(name)
    root = data_root(root)
    if download and spec.download is not None:
        spec.download(root)
    splits = spec.load(root, size=size, n_train=n_train, n_test=n_test, seed=seed)

    def sample(split: ImageSet, n: int | None) -> ImageSet:
        # A split the loader already made at the size asked for (shapes) is kept as it is.
        return split if n is None or len(split) <= n else split.subset(n, seed)

    return Splits(splits.name, sample(splits.train, n_train), sample(splits.test, n_test))


# ------------------------------------------------------------------------ augmentation


def augment_batch(images: Tensor, pad: int = 2, generator: torch.Generator | None = None) -> Tensor:
    """The paper's augmentation, per image but batched: zero-pad ``pad`` pixels, random
    crop back to size, horizontal flip with p = 0.5.

    Args:
        images: [B, C, H, W] (any dtype, any device).
        pad: zero padding on each side; offsets are uniform in [0, 2 * pad].
        generator: source of randomness (CPU or on the images' device).
    Returns:
        [B, C, H, W], same dtype and device.
    """
    batch, _, height, width = images.shape
    device = generator.device if generator is not None else images.device
    offsets = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator, device=device)
    flips = torch.rand(batch, generator=generator, device=device) < 0.5
    # Drawn on the CPU for a GPU batch: sent without blocking (no host-device sync).
    offsets = offsets.to(images.device, non_blocking=True)
    flips = flips.to(images.device, non_blocking=True)
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)  # [B, H]
    cols = torch.arange(width, device=images.device).expand(batch, width)
    cols = torch.where(flips[:, None], cols.flip(1), cols) + offsets[1, :, None]  # [B, W]
    padded = F.pad(images, (pad, pad, pad, pad))
    # One gather over the padded batch: row and column index per image.
    flat = padded.flatten(2)  # [B, C, (H + 2p) * (W + 2p)]
    index = (rows[:, :, None] * (width + 2 * pad) + cols[:, None, :]).flatten(1)  # [B, H*W]
    out = flat.gather(2, index[:, None].expand(-1, images.shape[1], -1))
    return out.view_as(images)


class BatchLoader:
    """Batches of an ``ImageSet`` held on one device: shuffle, augment, scale to [0, 1].

    The uint8 images are moved to ``device`` once; each batch is indexed, augmented
    (``augment_batch`` with ``pad``) and converted there. Iterating draws the epoch's order and
    augmentation from ``generator``, so an epoch is reproducible from its state.

    Yields:
        (images float [B, 3, H, W] in [0, 1], labels int64 [B]).
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        *,
        shuffle: bool = True,
        augment: bool = True,
        drop_last: bool = False,
        pad: int = 2,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
        channels_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.pad = pad
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle, self.augment, self.drop_last = shuffle, augment, drop_last
        self.generator = generator
        self.channels_last = channels_last

    def __len__(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = self.images.shape[0]
        if self.shuffle:
            gen_device = self.generator.device if self.generator is not None else "cpu"
            order = torch.randperm(n, generator=self.generator, device=gen_device)
            order = order.to(self.device, non_blocking=True)
        else:
            order = torch.arange(n, device=self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            idx = order[start : start + self.batch_size]
            images = self.images[idx]
            if self.augment:
                images = augment_batch(images, self.pad, self.generator)
            images = images.float().div_(255)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, self.labels[idx]
