"""Common corruptions on fixtures written in the released formats: CIFAR-10-C's .npy
arrays and Tiny-ImageNet-C's JPEG tree; downloads checked and moved in only when whole."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from regionmix_utils.cli import main
from regionmix_utils.data import DatasetMissingError, load_dataset
from regionmix_utils.evaluation.corruptions import (
    BENCHMARK,
    FAMILIES,
    SEVERITIES,
    corrupted_images,
    download_corruptions,
    evaluate_corruptions,
    gaussian_noise,
    summarise_corruptions,
)
from regionmix_utils.evaluation.robustness import accuracy
from regionmix_utils.results import collect_runs, paper_tables
from regionmix_utils.runs import Run, evaluation_settings
from regionmix_utils.train import train

from .conftest import tiny_config
from .test_data import make_tinyimagenet, save_jpeg

PER_SEVERITY = 20


def make_cifar10_c(root: Path, corruptions=("gaussian_noise", "fog")) -> Path:
    """A CIFAR-10-C folder as released: <corruption>.npy uint8 [5 x n, 32, 32, 3] (the
    same n test images at severities 1-5) and labels.npy [5 x n]."""
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    test = load_dataset("shapes", n_train=1, n_test=PER_SEVERITY).test
    gen = torch.Generator().manual_seed(0)
    for corruption in corruptions:
        stack = [gaussian_noise(test.images, s, gen) for s in SEVERITIES]
        np.save(folder / f"{corruption}.npy", torch.cat(stack).permute(0, 2, 3, 1).numpy())
    np.save(folder / "labels.npy", test.labels.repeat(5).numpy())
    return folder


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    """A tiny run named CIFAR-10 (trained on the embedded data, which has 10 classes)."""
    root = tmp_path_factory.mktemp("corruption-runs")
    config = tiny_config(dataset="cifar10", epochs=1)
    train(config, root, device="cpu", splits=load_dataset("shapes", n_train=256, n_test=50),
          progress=False)  # fmt: skip
    return Run.of(root, config)


def test_per_severity_accuracy_equals_accuracy_by_hand(cifar_run, tmp_path):
    folder = make_cifar10_c(tmp_path)
    records = evaluate_corruptions(cifar_run, ("gaussian_noise", "fog"), SEVERITIES,
                                   data_dir=tmp_path, progress=False)  # fmt: skip
    assert len(records) == 10 and {r["n_images"] for r in records} == {PER_SEVERITY}
    model = cifar_run.load_model()
    array, labels = np.load(folder / "fog.npy"), np.load(folder / "labels.npy")
    for severity in SEVERITIES:
        rows = slice((severity - 1) * PER_SEVERITY, severity * PER_SEVERITY)
        images = torch.from_numpy(array[rows]).permute(0, 3, 1, 2).float() / 255
        predicted = model(images).argmax(1)
        by_hand = 100 * float((predicted == torch.from_numpy(labels[rows])).float().mean())
        (record,) = [r for r in records if r["corruption"] == "fog" and r["severity"] == severity]
        assert record["accuracy"] == pytest.approx(by_hand)
        assert record["accuracy"] == accuracy(model, images, torch.from_numpy(labels[rows]))
        stored = cifar_run.predictions(evaluation_settings(record))
        assert stored.predicted.tolist() == predicted.tolist()
    again = evaluate_corruptions(cifar_run, ("fog",), (1,), data_dir=tmp_path, progress=False)
    assert again[0]["seconds"] == records[5]["seconds"]  # read back, not recomputed


def test_the_benchmark_mean_and_the_family_means():
    records = [
        {"corruption": c, "severity": s, "accuracy": float(10 * i + s)}
        for i, c in enumerate(BENCHMARK) for s in SEVERITIES
    ]  # fmt: skip
    summary = summarise_corruptions(records)
    assert summary["mean"] == pytest.approx(np.mean([r["accuracy"] for r in records]))
    noise = [r["accuracy"] for r in records if r["corruption"] in FAMILIES["noise"]]
    assert summary["noise"] == pytest.approx(np.mean(noise))  # 10 i + s over i = 0..2
    assert summary["digital"] == pytest.approx(np.mean([10 * i + 3 for i in range(11, 15)]))
    partial = summarise_corruptions(records[:5])  # one corruption: no benchmark mean
    assert "mean" not in partial and partial == {"noise": 3.0}


def test_truncated_or_missing_files_name_the_file_and_the_fix(tmp_path):
    folder = make_cifar10_c(tmp_path)
    data = (folder / "fog.npy").read_bytes()
    (folder / "fog.npy").write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetMissingError, match=r"fog\.npy .*regionmix download cifar10-c"):
        corrupted_images("cifar10", "fog", 1, tmp_path)
    with pytest.raises(DatasetMissingError, match=r"snow\.npy is missing"):
        corrupted_images("cifar10", "snow", 1, tmp_path)
    np.save(folder / "labels.npy", np.zeros(7, dtype=np.int64))
    with pytest.raises(DatasetMissingError, match="not 5 severities"):
        corrupted_images("cifar10", "gaussian_noise", 1, tmp_path)
    with pytest.raises(ValueError, match="severity must be one of"):
        corrupted_images("cifar10", "fog", 6, tmp_path)
    with pytest.raises(ValueError, match="no corrupted test set for 'shapes'"):
        corrupted_images("shapes", "fog", 1, tmp_path)


def test_tiny_imagenet_c_reads_its_jpeg_tree(tmp_path):
    wnids = ("n01443537", "n01629819")
    make_tinyimagenet(tmp_path, wnids=wnids)
    for severity in SEVERITIES:
        for c, wnid in enumerate(wnids):
            folder = tmp_path / "Tiny-ImageNet-C" / "fog" / str(severity) / wnid
            folder.mkdir(parents=True)
            for i in range(3):
                save_jpeg(torch.full((3, 64, 64), 20 * severity + c, dtype=torch.uint8),
                          folder / f"val_{c * 3 + i}.JPEG")  # fmt: skip
    data = corrupted_images("tinyimagenet", "fog", 4, tmp_path)
    assert data.images.shape == (6, 3, 64, 64) and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert abs(float(data.images[0].float().mean()) - 80) < 3  # severity 4's pixels
    assert data.classes == ("goldfish", "European fire salamander")
    broken = tmp_path / "Tiny-ImageNet-C" / "fog" / "2" / wnids[0] / "val_0.JPEG"
    broken.write_bytes(broken.read_bytes()[:100])
    with pytest.raises(DatasetMissingError, match=r"cannot be read.*download tinyimagenet-c"):
        corrupted_images("tinyimagenet", "fog", 2, tmp_path)


def _tar(folder: Path, archive: Path, nested: bool = False) -> str:
    with tarfile.open(archive, "w") as tar:
        tar.add(folder, arcname=folder.name)
    if nested:  # as Tiny-ImageNet-C's archive: a tar inside a folder inside a tar
        outer = archive.with_name("outer.tar")
        with tarfile.open(outer, "w") as tar:
            tar.add(archive, arcname=f"TinyImageNet-C/{archive.name}")
        archive.unlink()
        outer.rename(archive)
    return hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_checks_the_md5_and_moves_in_only_a_whole_folder(tmp_path):
    source = make_cifar10_c(tmp_path / "src")
    archive = tmp_path / "CIFAR-10-C.tar"
    md5 = _tar(source, archive)
    root = tmp_path / "data"
    with pytest.raises(DatasetMissingError, match=r"MD5 .* not the published"):
        download_corruptions("cifar10-c", root, url=archive.as_uri(), md5="0" * 32,
                             progress=False)  # fmt: skip
    assert list(root.iterdir()) == []  # nothing half-downloaded or half-extracted
    target = download_corruptions("cifar10-c", root, url=archive.as_uri(), md5=md5,
                                  progress=False)  # fmt: skip
    assert target == root / "CIFAR-10-C" and sorted(p.name for p in root.iterdir()) == [
        "CIFAR-10-C"
    ]
    assert corrupted_images("cifar10", "fog", 3, root).images.shape == (PER_SEVERITY, 3, 32, 32)
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"not a tar at all")
    other = tmp_path / "other"
    with pytest.raises(DatasetMissingError, match="not a valid tar"):
        md5 = hashlib.md5(b"not a tar at all").hexdigest()
        download_corruptions("cifar100-c", other, url=broken.as_uri(), md5=md5, progress=False)
    assert list(other.iterdir()) == []


def test_a_nested_tiny_imagenet_c_archive_is_unpacked(tmp_path):
    tree = tmp_path / "src" / "Tiny-ImageNet-C"
    (tree / "gaussian_noise" / "1" / "n01443537").mkdir(parents=True)
    save_jpeg(torch.zeros(3, 64, 64, dtype=torch.uint8),
              tree / "gaussian_noise" / "1" / "n01443537" / "val_0.JPEG")  # fmt: skip
    archive = tmp_path / "Tiny-ImageNet-C.tar"
    md5 = _tar(tree, archive, nested=True)
    target = download_corruptions("tinyimagenet-c", tmp_path / "data", url=archive.as_uri(),
                                  md5=md5, progress=False)  # fmt: skip
    assert (target / "gaussian_noise" / "1" / "n01443537" / "val_0.JPEG").is_file()


def _nested(tmp_path: Path, inner: bytes | None = None, escape: bool = False) -> tuple[Path, str]:
    """A Tiny-ImageNet-C-like archive whose inner tar is ``inner`` (raw bytes: corrupt),
    or holds a member that climbs out of its folder (``escape``)."""
    inner_tar = tmp_path / "inner" / "Tiny-ImageNet-C.tar"
    inner_tar.parent.mkdir()
    if inner is not None:
        inner_tar.write_bytes(inner)
    else:
        payload = tmp_path / "payload.txt"
        payload.write_text("outside")
        with tarfile.open(inner_tar, "w") as tar:
            tar.add(payload, arcname="../../escaped.txt" if escape else "fine.txt")
    archive = tmp_path / "outer.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(inner_tar, arcname=f"TinyImageNet-C/{inner_tar.name}")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["corrupt", "escape"])
def test_a_bad_nested_archive_is_the_named_error_and_leaves_nothing(tmp_path, kind):
    archive, md5 = _nested(tmp_path, inner=b"not a tar" * 100 if kind == "corrupt" else None,
                           escape=kind == "escape")  # fmt: skip
    root = tmp_path / "data"
    inner = "in it TinyImageNet-C/Tiny-ImageNet-C.tar is not a valid tar archive"
    with pytest.raises(DatasetMissingError, match=inner):
        download_corruptions("tinyimagenet-c", root, url=archive.as_uri(), md5=md5,
                             progress=False)  # fmt: skip
    assert list(root.iterdir()) == []  # nothing half-extracted
    assert not list(tmp_path.rglob("escaped.txt"))


def test_the_command_and_the_table(cifar_run, tmp_path, capsys):
    make_cifar10_c(tmp_path)
    runs_dir = cifar_run.path.parent.parent.parent
    assert main(["corruptions", "--runs-dir", str(runs_dir), "--data-dir", str(tmp_path),
                 "--corruptions", "gaussian_noise", "fog", "--device", "cpu",
                 "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "noise" in out and "weather" in out and "mean" not in out  # 2 of the 15
    (table,) = [t for t in paper_tables(collect_runs(runs_dir)) if t.number == 6]
    assert f"on {PER_SEVERITY} test images" in table.caption
    assert table.frame.index.tolist() == [("CIFAR-10", "noise"), ("CIFAR-10", "weather")]
