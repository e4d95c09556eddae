"""Common corruptions (Hendrycks & Dietterich, ICLR 2019): CIFAR-10-C, CIFAR-100-C and
Tiny-ImageNet-C from Zenodo, reported as the mean over 15 corruptions x 5 severities and
per family (docs/reproducing.md)."""

import functools
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets.utils import calculate_md5

from regionmix_utils import data
from regionmix_utils.evaluation.registry import Evaluation, evaluated, predict, register_evaluation
from regionmix_utils.progress import progress as progress_bar
from regionmix_utils.runs import Run

FAMILIES = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
BENCHMARK = tuple(c for family in FAMILIES.values() for c in family)  # the 15
SEVERITIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Source:
    """A corrupted test set: its clean dataset, folder under the data folder, URL, MD5."""

    clean: str
    folder: str
    url: str
    md5: str


SOURCES = {
    "cifar10-c": Source("cifar10", "CIFAR-10-C",
                        "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar?download=1",
                        "56bf5dcef84df0e2308c6dcbcbbd8499"),
    "cifar100-c": Source("cifar100", "CIFAR-100-C",
                         "https://zenodo.org/records/3555552/files/CIFAR-100-C.tar?download=1",
                         "11f0ed0f1191edbf9fa23466ae6021d3"),
    "tinyimagenet-c": Source("tinyimagenet", "Tiny-ImageNet-C",
                             "https://zenodo.org/records/2469796/files/TinyImageNet-C.tar?download=1",
                             "3d9c6e89c2609aeb4198f84c8edd1ff0"),
}  # fmt: skip


def source_for(dataset: str) -> tuple[str, Source]:
    """("cifar10-c", its Source) of a clean dataset."""
    for name, source in SOURCES.items():
        if source.clean == dataset:
            return name, source
    raise ValueError(f"no corrupted test set for {dataset!r}; there are for "
                     f"{sorted(s.clean for s in SOURCES.values())}")  # fmt: skip


def corrupted_images(dataset: str, corruption: str, severity: int, root=None,
                     n_images: int | None = None) -> data.ImageSet:  # fmt: skip
    """Test images (uint8 [N, 3, H, W]) and labels [N] of ``dataset`` under one corruption
    at one severity (1-5), whole or a stratified ``n_images``; DatasetMissingError (naming
    the file and the fix) if missing, truncated or corrupt."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    name, source = source_for(dataset)
    root = data.data_root(root)
    fix = f"Fix: (delete it and) `regionmix download {name} --data-dir {root}`."
    args = (root / source.folder, corruption, severity, root, fix)
    found = _tinyimagenet_c(*args) if dataset == "tinyimagenet" else _cifar_c(*args, dataset)
    return found if n_images is None else found.subset(n_images)


def _cifar_c(folder: Path, corruption, severity, root, fix: str, dataset) -> data.ImageSet:
    arrays = []
    for file in (folder / f"{corruption}.npy", folder / "labels.npy"):
        if not file.is_file():
            raise data.DatasetMissingError(f"{file} is missing. {fix}")
        try:
            arrays.append(np.load(file, mmap_mode="r"))
        except (ValueError, OSError) as err:
            raise data.DatasetMissingError(f"{file} is not a readable .npy ({err}): truncated or "
                                           f"corrupt. {fix}") from err  # fmt: skip
    images, labels = arrays
    if len(images) != len(labels) or len(images) % len(SEVERITIES):
        raise data.DatasetMissingError(f"{folder / f'{corruption}.npy'} holds {len(images)} "
                                       f"images for {len(labels)} labels, not 5 severities of "
                                       f"the test images: truncated? {fix}")  # fmt: skip
    per = len(images) // len(SEVERITIES)  # 10,000 in the released files
    rows = slice((severity - 1) * per, severity * per)
    images = torch.from_numpy(np.ascontiguousarray(images[rows].transpose(0, 3, 1, 2)))
    labels = torch.from_numpy(np.asarray(labels[rows]).astype(np.int64))
    return data.ImageSet(images, labels, data.cifar_classes(dataset, root))


def _tinyimagenet_c(folder: Path, corruption, severity, root, fix: str) -> data.ImageSet:
    wnids, classes = data.tinyimagenet_classes(root)
    where = folder / corruption / str(severity)
    if not where.is_dir():
        raise data.DatasetMissingError(f"{where} is missing. {fix}")
    found = [sorted((where / wnid).glob("*.JPEG")) for wnid in wnids]
    paths = [path for files in found for path in files]
    if not paths:
        raise data.DatasetMissingError(f"{where} holds no JPEGs. {fix}")
    labels = torch.tensor([index for index, files in enumerate(found) for _ in files])
    try:
        return data.ImageSet(data.read_jpegs(paths, progress=False), labels, classes)
    except OSError as err:
        raise data.DatasetMissingError(f"a JPEG under {where} cannot be read ({err}): "
                                       f"truncated or corrupt. {fix}") from err  # fmt: skip


def gaussian_noise(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """CIFAR-10-C's Gaussian noise of uint8 images [N, 3, H, W]: x + N(0, c^2) in [0, 1],
    c = 0.04 ... 0.10 for severities 1-5 (Hendrycks & Dietterich, 32 px), as uint8."""
    scale = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    x = images.double() / 255
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return ((x + scale * noise).clamp(0, 1) * 255).round().to(torch.uint8)


def download_corruptions(name: str, root=None, url: str | None = None, md5: str | None = None,
                         progress: bool = True) -> Path:  # fmt: skip
    """The folder of a corrupted test set, downloaded, MD5-checked and extracted if absent."""
    if name not in SOURCES:
        raise ValueError(f"name must be one of {tuple(SOURCES)}, got {name!r}")
    source = SOURCES[name]
    target = (root := data.data_root(root)) / source.folder
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    url, md5 = url or source.url, md5 or source.md5
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
        archive = Path(tmp) / source.url.rsplit("/", 1)[1].split("?")[0]
        data.download_file(url, archive, progress, f"downloading {name}")
        if (found := calculate_md5(archive)) != md5:
            raise data.DatasetMissingError(f"the download from {url} has MD5 {found}, not the "
                                           f"published {md5}: nothing was kept; try again."
                                           )  # fmt: skip
        shutil.move(_extract(archive, Path(tmp) / "extract"), target)
    return target


def _extract(archive: Path, into: Path) -> Path:
    """The corruption files' folder of ``archive`` extracted with the archives in it."""
    _untar(archive, into, archive.name)
    for inner in sorted(into.rglob("*.tar")):  # Tiny-ImageNet-C nests one
        _untar(inner, inner.parent, f"{archive.name}, in it {inner.relative_to(into)}")
        inner.unlink()
    markers = [*into.rglob("labels.npy"), *into.rglob("gaussian_noise")]
    if not markers:
        raise data.DatasetMissingError(f"{archive.name} holds no corruption files")
    return markers[0].parent


def _untar(archive: Path, into: Path, name: str) -> None:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    except tarfile.TarError as err:  # FilterError (an unsafe member) is one too
        raise data.DatasetMissingError(f"{name} is not a valid tar archive, or not a safe one: "
                                       f"{err}") from err  # fmt: skip


CORRUPTION = register_evaluation(Evaluation(
    "corruption", "Common corruptions", "test accuracy (%) under common corruptions",
    keys=("corruption", "severity", "source"), rerun="regionmix corruptions", table=6))  # fmt: skip


def evaluate_corruptions(run: Run, corruptions: tuple[str, ...] = BENCHMARK,
                         severities: tuple[int, ...] = SEVERITIES, n_images: int | None = None,
                         data_dir=None, device="cpu", progress: bool = True,
                         images_of=None) -> list[dict]:  # fmt: skip
    """A finished run's "corruption" records, one per corruption and severity, stored with
    each image's prediction (``registry.evaluated``). ``images_of(corruption, severity)
    -> ImageSet`` replaces the released files (records say "source": "computed")."""
    source = "released" if images_of is None else "computed"
    images_of = images_of or functools.partial(corrupted_images, run.config.dataset,
                                               root=data_dir, n_images=n_images)  # fmt: skip
    model = functools.cache(functools.partial(run.load_model, device))
    records = []
    settings = [(c, s) for c in corruptions for s in severities]
    for corruption, severity in progress_bar(settings, desc="corruptions", disable=not progress):
        test = images_of(corruption, severity)
        key = CORRUPTION.settings(len(test), corruption=corruption, severity=severity,
                                  source=source)  # fmt: skip
        records.append(evaluated(
            run, CORRUPTION, key, test.images.to(device).float() / 255, test.labels.to(device),
            model=model, compute=lambda model, images, labels, **_: predict(model, images),
        )[0])  # fmt: skip
    return records


def summarise_corruptions(records: list[dict]) -> dict[str, float]:
    """ "mean" over the 15 x 5 benchmark records (when all are there) and each family's."""
    values = {(r["corruption"], r["severity"]): r["accuracy"] for r in records}
    grid = [(c, s) for c in BENCHMARK for s in SEVERITIES]
    out = {"mean": float(np.mean([values[k] for k in grid]))} if set(grid) <= set(values) else {}
    for family, members in FAMILIES.items():
        if found := [v for (c, _), v in values.items() if c in members]:
            out[family] = float(np.mean(found))
    return out
