"""Datasets as uint8 tensors, the paper's augmentation (pad 2, crop, flip) and a batch loader;
each dataset is a ``DatasetSpec`` in ``DATASETS`` (docs/extending.md adds one)."""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision import datasets

from regionmix_utils import progress as bars
from regionmix_utils.files import atomic_torch_save, data_dir
from regionmix_utils.registry import Registry

JPEG_CHUNK = 256  # JPEGs a decoding task reads
data_root = data_dir


class DatasetMissingError(FileNotFoundError):
    """A dataset is missing or incomplete on disk; the message says how to get it."""


def _missing(name: str, root: Path, problem: str) -> DatasetMissingError:
    return DatasetMissingError(f"{problem} Fix: `regionmix download {name} --data-dir {root}`.")


@dataclass(frozen=True)
class ImageSet:
    """One split: images uint8 [N, 3, H, W], labels int64 [N] into ``classes``, optional boxes
    int64 [N, 4] (x0, y0, x1, y1; x1, y1 exclusive); checked once, not read back from a GPU."""

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]
    boxes: Tensor | None = None

    def __post_init__(self) -> None:
        images, labels, k = self.images, self.labels, len(self.classes)
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} "
                             f"{tuple(images.shape)}")  # fmt: skip
        if labels.shape != (len(images),):
            raise ValueError(f"labels must be [N] = [{len(images)}], got {tuple(labels.shape)}")
        if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < k):
            raise ValueError(f"labels must lie in [0, {k - 1}] for {k} classes, got "
                             f"{int(labels.min())} to {int(labels.max())}")  # fmt: skip

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, n: int, seed: int = 0) -> ImageSet:
        """A class-stratified sample of ``n`` images (``stratified_indices``), in file order."""
        return self._take(stratified_indices(self.labels, n, len(self.classes), seed))

    def _take(self, index: Tensor) -> ImageSet:
        boxes = None if self.boxes is None else self.boxes[index]
        return ImageSet(self.images[index], self.labels[index], self.classes, boxes)


@dataclass(frozen=True)
class Splits:
    name: str
    train: ImageSet
    test: ImageSet

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]


def stratified_indices(labels: Tensor, n: int, num_classes: int, seed: int = 0) -> Tensor:
    """Sorted indices of ``n`` of ``labels`` [N], dealt round-robin over the classes in a random
    order fixed by ``seed``: class counts differ by at most one unless a class runs out."""
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
    key = rank * num_classes + torch.randperm(num_classes, generator=gen)[shuffled]
    return order[torch.argsort(key)[:n]].sort().values


def holdout_split(data: ImageSet, n: int) -> tuple[ImageSet, ImageSet]:
    """(kept, held out): ``n`` stratified images, fixed (seed 7) for trainer and evaluation."""
    held = stratified_indices(data.labels, n, len(data.classes), seed=7)
    kept = torch.ones(len(data), dtype=torch.bool).index_fill_(0, held, False)
    return data._take(kept.nonzero().flatten()), data._take(held)


# Each shape's mask at unit coordinates u, v [n, H, W], with r = |(u, v)|, box = max(|u|, |v|).
_SHAPES = {
    "disk": lambda u, v, r, box: r <= 1,
    "square": lambda u, v, r, box: box <= 0.8,
    "triangle": lambda u, v, r, box: (v <= 0.6) & (u.abs() <= (v + 1) * 0.6),
    "diamond": lambda u, v, r, box: u.abs() + v.abs() <= 1,
    "plus": lambda u, v, r, box: ((u.abs() <= 0.3) | (v.abs() <= 0.3)) & (box <= 1),
    "ring": lambda u, v, r, box: (r <= 1) & (r >= 0.55),
    "ellipse": lambda u, v, r, box: u**2 + (v / 0.45) ** 2 <= 1,
    "cross": lambda u, v, r, box: ((u - v).abs().minimum((u + v).abs()) <= 0.35) & (box <= 0.85),
    "frame": lambda u, v, r, box: (box <= 0.9) & (box >= 0.55),
    "half-disk": lambda u, v, r, box: (r <= 1) & (v >= -0.1),
}
SHAPE_CLASSES = tuple(_SHAPES)


def shapes(n: int, size: int = 32, seed: int = 0) -> ImageSet:
    """``n`` images [n, 3, size, size] of 10 balanced shape classes with boxes, fixed by ``seed``:
    one shape, 40-70% of the side, turned +-20 degrees, contrasting with two gratings, noisy."""
    if n < 1 or size < 8:
        raise ValueError(f"shapes needs n >= 1 and size >= 8, got n={n}, size={size}")
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % len(SHAPE_CLASSES))[torch.randperm(n, generator=gen)]
    radius = (torch.rand(n, generator=gen) * 0.15 + 0.2) * size
    cy, cx = (radius + torch.rand(n, generator=gen) * (size - 2 * radius) for _ in range(2))
    theta = (torch.rand(n, generator=gen) - 0.5) * math.radians(40)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    background = torch.zeros(n, 3, size, size)
    for _ in range(2):
        freq = torch.rand(n, 1, 1, generator=gen) * 0.5 + 0.05
        angle = torch.rand(n, 1, 1, generator=gen) * math.pi
        phase = torch.rand(n, 1, 1, generator=gen) * 2 * math.pi
        wave = torch.sin(freq * (xx * torch.cos(angle) + yy * torch.sin(angle)) + phase)
        background += torch.rand(n, 3, 1, 1, generator=gen) * 0.25 * (wave[:, None] * 0.5 + 0.5)
    background += torch.rand(n, 3, 1, 1, generator=gen) * 0.5
    colour = torch.rand(n, 3, 1, 1, generator=gen) * 0.45
    colour = torch.where(background.mean((1, 2, 3), keepdim=True) < 0.5, 1 - colour, colour)
    noise = torch.randn(n, 3, size, size, generator=gen) * 0.04

    coords = torch.arange(size, dtype=torch.float32) + 0.5
    dy = (coords[None, :, None] - cy[:, None, None]) / radius[:, None, None]
    dx = (coords[None, None, :] - cx[:, None, None]) / radius[:, None, None]
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    r, box = torch.sqrt(u**2 + v**2), torch.maximum(u.abs(), v.abs())
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    for label, inside in enumerate(_SHAPES.values()):
        chosen = labels == label
        mask[chosen] = inside(u[chosen], v[chosen], r[chosen], box[chosen])
    images = torch.where(mask[:, None], colour, background) + noise
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    rows, cols, index = mask.any(2), mask.any(1), torch.arange(size)
    y0, x0 = (torch.where(m, index, size).amin(1) for m in (rows, cols))
    y1, x1 = (torch.where(m, index, -1).amax(1) + 1 for m in (rows, cols))
    return ImageSet(images, labels, SHAPE_CLASSES, torch.stack([x0, y0, x1, y1], 1))


def _load_shapes(root: Path, *, size=None, n_train=None, n_test=None, seed: int = 0) -> Splits:
    size, (train, test) = size or 32, get_dataset("shapes").split_sizes
    return Splits("shapes", shapes(n_train or train, size, seed),
                  shapes(n_test or test, size, seed + 1))  # fmt: skip


CIFAR10_CLASSES = tuple("airplane automobile bird cat deer dog frog horse ship truck".split())
_CIFAR = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}


def _hwc_set(images: np.ndarray, labels, classes: tuple[str, ...]) -> ImageSet:
    """An ImageSet of images stored as uint8 [N, H, W, 3], as CIFAR stores them."""
    chw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return ImageSet(chw, torch.tensor(np.asarray(labels), dtype=torch.int64), classes)


def cifar(name: str, root: str | os.PathLike | None = None, download: bool = False) -> Splits:
    """CIFAR-10 or CIFAR-100 through torchvision, which checks every file's MD5 and fetches what
    is missing or corrupt if ``download``, else ``DatasetMissingError``."""
    folder = (root := data_root(root)) / _CIFAR[name].base_folder
    if download and not folder.is_dir():
        print(f"{name} is not under {root}: torchvision downloads it there and checks its MD5s")
    try:
        train, test = (_CIFAR[name](str(root), train=t, download=download) for t in (True, False))
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted."
        raise _missing(name, root, f"{name} is missing or corrupt under {folder}: {err}") from err
    return Splits(name, *(_hwc_set(ds.data, ds.targets, tuple(ds.classes)) for ds in (train, test)))


def cifar_classes(name: str, root: str | os.PathLike | None = None) -> tuple[str, ...]:
    """CIFAR-10's class names, or CIFAR-100's (its ``meta`` file's, else "class 0", ...)."""
    meta = data_root(root) / "cifar-100-python" / "meta"
    if name == "cifar10" or not meta.is_file():
        return CIFAR10_CLASSES if name == "cifar10" else tuple(f"class {i}" for i in range(100))
    return tuple(pickle.loads(meta.read_bytes(), encoding="latin1")["fine_label_names"])


def cifar10_npz(path: str | os.PathLike) -> Splits:
    """A CIFAR-10 subset in an ``.npz``: x_train, x_test [N, 32, 32, 3], y_train, y_test [N]."""
    if not Path(path).is_file():
        raise DatasetMissingError(f"no CIFAR-10 .npz at {path}; set $REGIONMIX_DATA to the "
                                  "folder holding cifar10-subset.npz or pass its path")  # fmt: skip
    with np.load(path) as a:
        splits = [_hwc_set(a[f"x_{s}"], a[f"y_{s}"], CIFAR10_CLASSES) for s in ("train", "test")]
    return Splits("cifar10-subset", *splits)


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines() if line.strip()]


def tinyimagenet_classes(root: str | os.PathLike | None = None) -> tuple[list[str], tuple]:
    """(wnids in ``wnids.txt`` order, which is class index order; their names)."""
    folder = data_root(root) / "tiny-imagenet-200"
    if not (folder / "wnids.txt").is_file():
        raise _missing("tinyimagenet", folder.parent, f"{folder / 'wnids.txt'} is missing.")
    wnids = (folder / "wnids.txt").read_text().split()
    rows = _rows(folder / "words.txt") if (folder / "words.txt").is_file() else []
    words = {wnid: names for wnid, names, *_ in rows}
    return wnids, tuple(words.get(w, w).split(",")[0].strip() for w in wnids)


def read_jpegs(paths: list[Path], progress: bool = True, threads: int | None = None,
               desc: str = "JPEGs") -> Tensor:  # fmt: skip
    """uint8 [N, 3, 64, 64] from 64x64 JPEGs (greyscale ones as RGB), on ``threads`` threads."""
    out = torch.empty(len(paths), 3, 64, 64, dtype=torch.uint8)
    nhwc = out.permute(0, 2, 3, 1).numpy()  # a view: images are written straight into ``out``

    def decode(start: int) -> int:
        chunk = paths[start : start + JPEG_CHUNK]
        for i, path in enumerate(chunk, start):
            with Image.open(path) as image:
                nhwc[i] = np.asarray(image.convert("RGB"))
        return len(chunk)

    bar = bars.progress(total=len(paths), desc=desc, unit="img", disable=not progress)
    with ThreadPoolExecutor(threads) as pool, bar:
        for done in pool.map(decode, range(0, len(paths), JPEG_CHUNK)):
            bar.update(done)
    return out


def _read_tinyimagenet_folder(folder: Path, progress: bool) -> dict:
    """The tensors ``tinyimagenet`` caches, decoded from a ``tiny-imagenet-200`` folder."""
    wnids, classes = tinyimagenet_classes(folder.parent)
    index = {w: i for i, w in enumerate(wnids)}
    train = [(folder / "train" / w / "images" / name, w, box) for w in wnids
             for name, *box in _rows(folder / "train" / w / f"{w}_boxes.txt")]  # fmt: skip
    val = [(folder / "val" / "images" / name, w, box)
           for name, w, *box in _rows(folder / "val" / "val_annotations.txt")]  # fmt: skip
    saved = {"wnids": wnids, "classes": list(classes)}
    for key, desc, rows in (("train", "train", train), ("test", "val", val)):
        saved[f"{key}_images"] = read_jpegs([r[0] for r in rows], progress, desc=f"{desc} JPEGs")
        saved[f"{key}_labels"] = torch.tensor([index[r[1]] for r in rows])
        corners = torch.tensor([[int(v) for v in r[2]] for r in rows])
        saved[f"{key}_boxes"] = corners + torch.tensor([0, 0, 1, 1])  # inclusive in the files
    return saved


def tinyimagenet(root: str | os.PathLike | None = None, progress: bool = True) -> Splits:
    """Tiny ImageNet with boxes, class i on line i of ``wnids.txt``, ``val`` as the test set, its
    JPEGs decoded once into ``regionmix-cache.pt`` (unless read-only); ``DatasetMissingError``."""
    folder = data_root(root) / "tiny-imagenet-200"
    needed = (folder / "wnids.txt", folder / "train", folder / "val" / "val_annotations.txt")
    if missing := [str(p) for p in needed if not p.exists()]:
        raise _missing("tinyimagenet", folder.parent, f"Tiny ImageNet lacks {', '.join(missing)}.")
    cache, saved = folder / "regionmix-cache.pt", None
    if cache.exists() and cache.stat().st_mtime >= needed[0].stat().st_mtime:
        saved = torch.load(cache, weights_only=True)
    if saved is None or saved.get("wnids") != tinyimagenet_classes(folder.parent)[0]:
        if progress:
            print(f"Decoding Tiny ImageNet's JPEGs under {folder}, once, into {cache.name}")
        saved = _read_tinyimagenet_folder(folder, progress)
        with contextlib.suppress(OSError):  # a read-only dataset folder only costs the cache
            atomic_torch_save(saved, cache)
    train, test = (ImageSet(saved[f"{s}_images"], saved[f"{s}_labels"], tuple(saved["classes"]),
                            saved[f"{s}_boxes"]) for s in ("train", "test"))  # fmt: skip
    return Splits("tinyimagenet", train, test)


def download_file(url: str, path: Path, progress: bool = True, desc: str = "downloading") -> Path:
    """``url`` streamed into the file ``path`` a megabyte at a time, with a bar in bytes."""
    with urllib.request.urlopen(url) as response, open(path, "wb") as out:
        size = int(response.headers.get("Content-Length") or 0) or None
        with bars.progress(total=size, unit="B", unit_scale=True, disable=not progress,
                           desc=desc) as bar:  # fmt: skip
            while chunk := response.read(1 << 20):
                bar.update(out.write(chunk))
    return path


def download_tinyimagenet(root: str | os.PathLike | None = None,
                          url: str = "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
                          progress: bool = True) -> Path:  # fmt: skip
    """``root/tiny-imagenet-200``, unzipped from ``url`` if absent; ``DatasetMissingError``."""
    target = (root := data_root(root)) / "tiny-imagenet-200"
    if (target / "wnids.txt").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    print(f"Tiny ImageNet is not under {root}: downloading {url} (about 240 MB)")
    with tempfile.TemporaryDirectory(dir=root, prefix=".tinyimagenet-") as tmp:
        archive, extracted = Path(tmp) / "tiny-imagenet-200.zip", Path(tmp) / "tiny-imagenet-200"
        download_file(url, archive, progress)
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)  # which checks each member's CRC
        except zipfile.BadZipFile as err:
            raise DatasetMissingError(f"the download from {url} is not a valid zip: {err}") from err
        if not (extracted / "wnids.txt").exists():
            raise DatasetMissingError(f"the zip from {url} has no tiny-imagenet-200/wnids.txt")
        shutil.move(str(extracted), str(target))
    return target


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: names in commands and tables, (H, W), (train, test) sizes, training-set RGB
    mean and std in [0, 1]; functions of the data folder (docs/extending.md)."""

    name: str
    title: str
    num_classes: int
    image_size: tuple[int, int]
    split_sizes: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    load: Callable[..., Splits]
    on_disk: Callable[[Path], bool]
    download: Callable[[Path], object] | None = None

    def __post_init__(self) -> None:
        def counts(*values) -> bool:
            return all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values)

        size, splits = tuple(self.image_size), tuple(self.split_sizes)
        mean, std = (tuple(float(v) for v in rgb) for rgb in (self.mean, self.std))
        for field, bad, allowed in (
            ("num_classes", not counts(self.num_classes), "an integer >= 1"),
            ("image_size", len(size) != 2 or not counts(*size), "two integers >= 1"),
            ("split_sizes", len(splits) != 2 or not counts(*splits), "two integers >= 1"),
            ("mean", len(mean) != 3, "3 numbers (R, G, B)"),
            ("std", len(std) != 3 or min(std) <= 0, "3 numbers (R, G, B), each > 0"),
        ):
            if bad:
                value = getattr(self, field)
                raise ValueError(f"dataset {self.name!r}: {field} must be {allowed}, got {value!r}")
        for field, value in dict(image_size=size, split_sizes=splits, mean=mean, std=std).items():
            object.__setattr__(self, field, value)


DATASETS: Registry[DatasetSpec] = Registry("dataset")
register_dataset = DATASETS.register
registered_dataset = DATASETS.temporary
get_dataset = DATASETS.get
dataset_names = DATASETS.names


def _cifar_spec(name: str, title: str, num_classes: int, mean, std) -> DatasetSpec:
    def download(root: Path) -> Path:
        cifar(name, root, download=True)  # torchvision fetches, then checks every MD5
        return root / _CIFAR[name].base_folder

    return DatasetSpec(name, title, num_classes, (32, 32), (50_000, 10_000), mean, std,
                       load=lambda root, **_: cifar(name, root), download=download,
                       on_disk=lambda root: (root / _CIFAR[name].base_folder).exists())  # fmt: skip


_CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
_SUBSET = "cifar10-subset.npz"
register_dataset(DatasetSpec("shapes", "Shapes", len(SHAPE_CLASSES), (32, 32), (10_000, 2_000),
                             (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), load=_load_shapes,
                             on_disk=lambda root: True))  # fmt: skip
register_dataset(_cifar_spec("cifar10", "CIFAR-10", 10, *_CIFAR10_STATS))
register_dataset(_cifar_spec("cifar100", "CIFAR-100", 100,
                             (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)))  # fmt: skip
register_dataset(DatasetSpec("tinyimagenet", "Tiny ImageNet", 200, (64, 64), (100_000, 10_000),
                             (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821),
                             load=lambda root, **_: tinyimagenet(root),
                             on_disk=lambda root: (root / "tiny-imagenet-200/wnids.txt").exists(),
                             # a lambda: ``download_tinyimagenet`` is looked up at each call
                             download=lambda root: download_tinyimagenet(root)))  # fmt: skip
register_dataset(DatasetSpec("cifar10-subset", "CIFAR-10 subset", 10, (32, 32), (5_085, 1_017),
                             *_CIFAR10_STATS, load=lambda root, **_: cifar10_npz(root / _SUBSET),
                             on_disk=lambda root: (root / _SUBSET).exists()))  # fmt: skip


def is_on_disk(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether ``load_dataset(name, root)`` finds the dataset without downloading."""
    return get_dataset(name).on_disk(data_root(root))


def load_dataset(name: str, root: str | os.PathLike | None = None, *, download: bool = False,
                 size: int | None = None, n_train: int | None = None, n_test: int | None = None,
                 seed: int = 0) -> Splits:  # fmt: skip
    """Dataset ``name`` (fetched if ``download``), ``n_train`` / ``n_test`` a stratified sample
    by ``seed``, ``size`` a made one's side; ValueError if unknown, else DatasetMissingError."""
    spec, root = get_dataset(name), data_root(root)
    if download and spec.download is not None:
        spec.download(root)
    splits = spec.load(root, size=size, n_train=n_train, n_test=n_test, seed=seed)
    train, test = (split if n is None or len(split) <= n else split.subset(n, seed)
                   for split, n in ((splits.train, n_train), (splits.test, n_test)))  # fmt: skip
    return Splits(splits.name, train, test)


def augment_batch(images: Tensor, pad: int = 2, generator: torch.Generator | None = None) -> Tensor:
    """The paper's augmentation, per image: zero-pad ``pad``, crop back at uniform offsets, flip
    with p = 0.5. [B, C, H, W] -> the same; ``generator`` on the CPU or the images' device."""
    batch, channels, height, width = images.shape
    device = getattr(generator, "device", images.device)
    offsets = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator, device=device)
    flips = torch.rand(batch, generator=generator, device=device) < 0.5
    # Drawn on the CPU for a GPU batch: sent without blocking (no host-device sync).
    offsets, flips = (t.to(images.device, non_blocking=True) for t in (offsets, flips))
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)  # [B, H]
    cols = torch.arange(width, device=images.device).expand(batch, width)
    cols = torch.where(flips[:, None], cols.flip(1), cols) + offsets[1, :, None]  # [B, W]
    flat = F.pad(images, (pad, pad, pad, pad)).flatten(2)  # [B, C, (H + 2p) * (W + 2p)]
    index = (rows[:, :, None] * (width + 2 * pad) + cols[:, None, :]).flatten(1)  # [B, H*W]
    return flat.gather(2, index[:, None].expand(-1, channels, -1)).view_as(images)


@dataclass(eq=False)
class BatchLoader:
    """Batches (images float [B, 3, H, W] in [0, 1], labels int64 [B]) of ``data``, shuffled,
    augmented and scaled on ``device``, drawn from ``generator`` (its state replays an epoch)."""

    data: ImageSet
    batch_size: int
    _: KW_ONLY
    shuffle: bool = True
    augment: bool = True
    drop_last: bool = False
    pad: int = 2
    device: str | torch.device = "cpu"
    generator: torch.Generator | None = None
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self.device = torch.device(self.device)
        self.images, self.labels = (t.to(self.device) for t in (self.data.images, self.data.labels))

    def __len__(self) -> int:
        return (math.floor if self.drop_last else math.ceil)(len(self.images) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if self.shuffle:
            device = getattr(self.generator, "device", "cpu")
            order = torch.randperm(len(self.images), generator=self.generator, device=device)
            order = order.to(self.device, non_blocking=True)
        else:
            order = torch.arange(len(self.images), device=self.device)
        layout = torch.channels_last if self.channels_last else torch.preserve_format
        for idx in order[: len(self) * self.batch_size].split(self.batch_size):
            images = self.images[idx]
            if self.augment:
                images = augment_batch(images, self.pad, self.generator)
            yield images.to(torch.float32, memory_format=layout).div_(255), self.labels[idx]
