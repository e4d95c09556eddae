"""Common corruptions beyond the paper: CIFAR-10-C, CIFAR-100-C and Tiny-ImageNet-C.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions
and Perturbations", ICLR 2019. The files are those the AugMix and robustness literature
download from Zenodo:

- ``CIFAR-10-C/`` and ``CIFAR-100-C/``: ``<corruption>.npy`` uint8 [50000, 32, 32, 3],
  the 10,000 test images at severity 1, then 2, ..., 5; ``labels.npy`` [50000];
- ``Tiny-ImageNet-C/<corruption>/<severity>/<wnid>/*.JPEG``: the 10,000 val images.

Results are reported as the benchmark does: the mean accuracy over its 15 corruptions
x 5 severities, and the mean of each family (noise, blur, weather, digital).
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from regionmix_utils.data import DatasetMissingError, ImageSet, data_root

__all__ = [
    "BENCHMARK",
    "FAMILIES",
    "SEVERITIES",
    "SOURCES",
    "corrupted_images",
    "download_corruptions",
    "evaluate_corruptions",
    "gaussian_noise",
    "summarise_corruptions",
]

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
    """Where a corrupted test set comes from and where it goes under the data folder."""

    clean: str  # the clean dataset it corrupts
    folder: str  # under the data folder
    url: str
    md5: str  # of the archive, as Zenodo lists it

    @property
    def archive(self) -> str:
        return self.url.rsplit("/", 1)[1].split("?")[0]


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
    """The corrupted set of a clean dataset: ("cifar10-c", its Source)."""
    for name, source in SOURCES.items():
        if source.clean == dataset:
            return name, source
    raise ValueError(
        f"no corrupted test set for {dataset!r}; there are for "
        f"{sorted(s.clean for s in SOURCES.values())}"
    )


def _fix(name: str, root: Path) -> str:
    return f"Fix: `regionmix download {name} --data-dir {root}`."


def corrupted_images(
    dataset: str, corruption: str, severity: int, root=None, n_images: int | None = None
) -> ImageSet:
    """The test images of ``dataset`` under one corruption at one severity (1-5), whole or
    a class-stratified sample of ``n_images`` (the same images at every severity).

    Returns:
        ImageSet with uint8 images [N, 3, H, W] and labels [N].
    Raises:
        DatasetMissingError: the files are missing, truncated or corrupt; the message
            names the file and the command that fixes it.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    name, source = source_for(dataset)
    root = data_root(root)
    folder = root / source.folder
    if dataset == "tinyimagenet":
        data = _tinyimagenet_c(folder, corruption, severity, root, name)
    else:
        data = _cifar_c(folder, corruption, severity, dataset, root, name)
    if n_images is not None:
        data = data.subset(n_images)
    return data


def _cifar_c(folder: Path, corruption, severity, dataset, root, name) -> ImageSet:
    from regionmix_utils.data import cifar_classes

    arrays = []
    for file in (folder / f"{corruption}.npy", folder / "labels.npy"):
        if not file.is_file():
            raise DatasetMissingError(f"{file} is missing. {_fix(name, root)}")
        try:
            arrays.append(np.load(file, mmap_mode="r"))
        except (ValueError, OSError) as err:
            raise DatasetMissingError(
                f"{file} is not a readable .npy ({err}): truncated or corrupt. Delete "
                f"{folder} and download it again. {_fix(name, root)}"
            ) from err
    images, labels = arrays
    if len(images) != len(labels) or len(images) % len(SEVERITIES):
        raise DatasetMissingError(
            f"{folder / f'{corruption}.npy'} holds {len(images)} images for {len(labels)} labels, "
            f"not 5 severities of the test images each: truncated or not the released file. "
            f"{_fix(name, root)}"
        )
    per = len(images) // len(SEVERITIES)  # 10,000 in the released files
    rows = slice((severity - 1) * per, severity * per)
    images = torch.from_numpy(np.ascontiguousarray(images[rows].transpose(0, 3, 1, 2)))
    labels = torch.from_numpy(np.asarray(labels[rows]).astype(np.int64))
    return ImageSet(images, labels, cifar_classes(dataset, root))


def _tinyimagenet_c(folder: Path, corruption, severity, root, name) -> ImageSet:
    from regionmix_utils.data import read_jpegs, tinyimagenet_classes

    wnids, classes = tinyimagenet_classes(root)
    where = folder / corruption / str(severity)
    if not where.is_dir():
        raise DatasetMissingError(f"{where} is missing. {_fix(name, root)}")
    paths, labels = [], []
    for index, wnid in enumerate(wnids):
        found = sorted((where / wnid).glob("*.JPEG"))
        paths += found
        labels += [index] * len(found)
    if not paths:
        raise DatasetMissingError(f"{where} holds no JPEGs. {_fix(name, root)}")
    try:
        images = read_jpegs(paths, progress=False)
    except OSError as err:
        raise DatasetMissingError(
            f"a JPEG under {where} cannot be read ({err}): truncated or corrupt. Delete "
            f"{folder} and download it again. {_fix(name, root)}"
        ) from err
    return ImageSet(images, torch.tensor(labels), classes)


def gaussian_noise(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """CIFAR-10-C's Gaussian noise, computed: x + N(0, c^2) clipped to [0, 1], with
    c = 0.04, 0.06, 0.08, 0.09, 0.10 for severities 1-5 (Hendrycks & Dietterich's
    parameters for 32 px images), rounded to uint8 as the released files are.

    Args:
        images: uint8 [N, 3, H, W].
    Returns:
        uint8 [N, 3, H, W].
    """
    scale = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    x = images.double() / 255
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return ((x + scale * noise).clamp(0, 1) * 255).round().to(torch.uint8)


# ----------------------------------------------------------------------- download


def download_corruptions(name: str, root=None, url: str | None = None, md5: str | None = None,
                         progress: bool = True) -> Path:  # fmt: skip
    """Download, check (MD5) and extract a corrupted test set into the data folder.

    The archive is fetched and extracted inside a temporary folder under the data
    folder, and moved into place only when complete and checked, so a failed download
    leaves nothing behind. Returns the dataset folder; an existing one is kept.
    """
    from regionmix_utils.progress import progress as progress_bar

    if name not in SOURCES:
        raise ValueError(f"name must be one of {tuple(SOURCES)}, got {name!r}")
    source = SOURCES[name]
    root = data_root(root)
    target = root / source.folder
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    url, md5 = url or source.url, md5 or source.md5
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
        archive = Path(tmp) / source.archive
        digest = hashlib.md5()
        with urllib.request.urlopen(url) as response, open(archive, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, unit="B", unit_scale=True, disable=not progress,
                              desc=f"downloading {name}") as bar:  # fmt: skip
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise DatasetMissingError(
                f"the download from {url} has MD5 {digest.hexdigest()}, not the published "
                f"{md5}: interrupted or changed. Nothing was kept; try again."
            )
        extracted = _extract(archive, Path(tmp) / "extract", source.folder)
        shutil.move(str(extracted), str(target))
    return target


def _extract(archive: Path, into: Path, folder: str) -> Path:
    """Extract ``archive`` (and any archive inside it) and return the folder that holds
    the corruption files, whatever it is called in the archive. Extraction refuses
    members that would land outside ``into`` (tarfile's "data" filter); a corrupt or
    unsafe archive, outer or nested, is a ``DatasetMissingError`` that names it. The
    caller extracts into a temporary folder, so nothing is left half-extracted."""
    _untar(archive, into, archive.name)
    for inner in sorted(into.rglob("*.tar")):  # Tiny-ImageNet-C nests one
        _untar(inner, inner.parent, f"{archive.name}, in it {inner.relative_to(into)}")
        inner.unlink()
    markers = [*into.rglob("labels.npy"), *into.rglob("gaussian_noise")]
    if not markers:
        raise DatasetMissingError(f"{archive.name} holds no corruption files")
    found = markers[0].parent
    return found if found != into else into


def _untar(archive: Path, into: Path, name: str) -> None:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    except tarfile.TarError as err:  # FilterError (an unsafe member) is one too
        raise DatasetMissingError(
            f"{name} is not a valid tar archive, or not a safe one: {err}"
        ) from err


# --------------------------------------------------------------------- evaluation


def evaluate_corruptions(
    run,
    corruptions: tuple[str, ...] = BENCHMARK,
    severities: tuple[int, ...] = SEVERITIES,
    n_images: int | None = None,
    data_dir=None,
    device="cpu",
    progress: bool = True,
    images_of=None,
) -> list[dict]:
    """Accuracy of a finished run under each corruption at each severity, stored as
    records in its ``eval.json`` ({"kind": "corruption", "corruption", "severity",
    "source", "n_images", "accuracy", "seconds"}) and reused, with each image's
    predicted class beside it (``Run.add_evaluation``; paired comparisons). A record
    stored before predictions were kept is evaluated again. Runs in float32, batched, on
    ``device``.

    Args:
        images_of: (corruption, severity) -> ImageSet, instead of the released files
            (the notebooks' quick mode computes Gaussian noise on a real subset); its
            records say "source": "computed", the others "released".
    """
    from regionmix_utils.evaluation.robustness import predictions
    from regionmix_utils.progress import progress as progress_bar
    from regionmix_utils.runs import Predictions

    dataset = run.config.dataset
    source = "released" if images_of is None else "computed"
    if images_of is None:

        def images_of(corruption, severity):
            return corrupted_images(dataset, corruption, severity, data_dir, n_images)

    model, records = None, []
    settings = [(c, s) for c in corruptions for s in severities]
    for corruption, severity in progress_bar(settings, desc="corruptions", disable=not progress):
        data = images_of(corruption, severity)
        key = {"kind": "corruption", "corruption": corruption, "severity": severity,
               "source": source, "n_images": len(data)}  # fmt: skip
        found = run.find_evaluation(key)
        if found is None or run.predictions(key) is None:
            model = model if model is not None else run.load_model(device)
            started = time.perf_counter()
            predicted = predictions(model, data.images.to(device).float() / 255)[0].cpu()
            value = 100.0 * float((predicted == data.labels).double().mean())
            found = {**key, "accuracy": value, "seconds": round(time.perf_counter() - started, 3)}
            run.add_evaluation(found, Predictions.from_outputs(predicted, data.labels))
        records.append(found)
    return records


def summarise_corruptions(records: list[dict]) -> dict[str, float]:
    """The benchmark's means from corruption records of one run: "mean" over the 15
    benchmark corruptions x 5 severities (only when all 75 are there), and one mean per
    family over the family's corruptions and severities found."""
    values = {(r["corruption"], r["severity"]): r["accuracy"] for r in records}
    out = {}
    if all((c, s) in values for c in BENCHMARK for s in SEVERITIES):
        out["mean"] = float(np.mean([values[(c, s)] for c in BENCHMARK for s in SEVERITIES]))
    for family, members in FAMILIES.items():
        found = [v for (c, _), v in values.items() if c in members]
        if found:
            out[family] = float(np.mean(found))
    return out
