"""Out-of-distribution detection and selective classification: the measures against
textbook cases, the out-sets' readers on files in their real on-disk format, the class
overlap rule, and the evaluation stored per image through the registry."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest
import torch

from regionmix_utils.data import DatasetMissingError
from regionmix_utils.evaluation.ood import (
    OOD,
    OUTSETS,
    TINYIMAGENET_CIFAR10,
    detection,
    evaluate_ood,
    load_outset,
    ood_table,
    out_images,
    selective,
    stored_scores,
)
from regionmix_utils.runs import TIMED, Run, evaluation_settings
from regionmix_utils.train import train

from .conftest import tiny_config

# ---------------------------------------------------------------- textbook measures


def test_auroc_of_known_scores_is_the_share_of_in_out_pairs_ranked_right():
    """In-images scored 0.9, 0.8, 0.4 and out-images 0.7, 0.3: five of the six (in, out)
    pairs put the in-image higher, AUROC = 5/6. The same scores a hundred times larger
    (as max logits and energies are) rank the same and give the same AUROC."""
    inside, outside = torch.tensor([0.9, 0.8, 0.4]), torch.tensor([0.7, 0.3])
    assert detection(inside, outside)["auroc"] == pytest.approx(100 * 5 / 6, abs=1e-4)
    assert detection(100 * inside, 100 * outside)["auroc"] == pytest.approx(100 * 5 / 6, abs=1e-4)
    # AUPR-In: precision 1, 1, 3/4 at the three in-images' recalls 1/3, 2/3, 1.
    assert detection(inside, outside)["aupr_in"] == pytest.approx(
        100 * (1 + 1 + 3 / 4) / 3, abs=1e-4
    )


def test_fpr_at_95_tpr_on_a_hand_computed_case():
    """Twenty in-images scored 1..20: the threshold that accepts 95% of them (19) is 2.
    Of ten out-images, 2.5 and 3.5 reach it and 1.5 does not: FPR = 2/10."""
    inside = torch.arange(1, 21, dtype=torch.float64)
    outside = torch.tensor([1.5, 2.5, 3.5, 0, 0, 0, 0, 0, 0, 0], dtype=torch.float64)
    assert detection(inside, outside)["fpr95"] == pytest.approx(20.0)


def test_aurc_of_a_known_ranking():
    """Confidences 0.9, 0.8, 0.7, 0.6 with the third wrong: the risk is 0, 0, 1/3, 1/4 at
    coverage 1/4 .. 1, AURC = (1/3 + 1/4) / 4 = 7/48; 80% coverage takes all four (3/4 is
    short of it): risk 1/4. Tied confidences are accepted together, whatever their order."""
    found = selective(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([True, True, False, True]))
    assert found == pytest.approx({"aurc": 100 * 7 / 48, "risk80": 25.0, "risk90": 25.0})
    tied = torch.tensor([0.9, 0.9, 0.5, 0.5])
    for correct in ([True, False, True, False], [False, True, False, True]):
        assert selective(tied, torch.tensor(correct))["aurc"] == pytest.approx(50.0)


# ------------------------------------------------------------------------- out-sets


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_svhn_is_read_from_its_mat_file_and_its_md5_checked(tmp_path, monkeypatch):
    """``test_32x32.mat`` as released (MATLAB v5: X [32, 32, 3, N] uint8, y [N, 1] with
    10 for the digit 0) is read through torchvision, which checks the file's MD5 even
    without downloading: this fixture passes only once its MD5 is the expected one."""
    import scipy.io
    from torchvision.datasets import SVHN

    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    y = np.array([[10], [1], [2], [10], [9]], dtype=np.uint8)
    (tmp_path / "svhn").mkdir()
    scipy.io.savemat(tmp_path / "svhn" / "test_32x32.mat", {"X": x, "y": y})
    with pytest.raises(DatasetMissingError, match=r"SVHN's test split is missing or corrupt"):
        load_outset("svhn", tmp_path)  # the released file's MD5, not this one's
    url, name, _ = SVHN.split_list["test"]
    monkeypatch.setitem(SVHN.split_list, "test", [url, name, _md5(tmp_path / "svhn" / name)])
    svhn = load_outset("svhn", tmp_path)
    assert torch.equal(svhn.images, torch.from_numpy(x).permute(3, 2, 0, 1))
    assert svhn.labels.tolist() == [0, 1, 2, 0, 9]
    assert OUTSETS["svhn"].on_disk(tmp_path)


def test_cifar100_is_read_through_the_registered_dataset_with_its_md5s(tmp_path, monkeypatch):
    """``cifar-100-python/`` as released (pickled ``train``, ``test`` with data [N, 3072]
    and fine_labels, ``meta`` with fine_label_names), read as the registered cifar100
    dataset reads it: refused while the MD5s are the released files', read once they are
    this fixture's."""
    from torchvision.datasets import CIFAR100

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    data = {split: rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            for split, n in (("train", 6), ("test", 4))}  # fmt: skip
    for split, array in data.items():
        entry = {"data": array, "fine_labels": [3, 1, 4, 1, 5, 9][: len(array)]}
        (folder / split).write_bytes(pickle.dumps(entry))
    names = [f"class {i}" for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": names}))
    with pytest.raises(DatasetMissingError, match="cifar100 is missing or corrupt"):
        load_outset("cifar100", tmp_path)
    monkeypatch.setattr(CIFAR100, "train_list", [["train", _md5(folder / "train")]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", _md5(folder / "test")]])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": _md5(folder / "meta")})
    test = load_outset("cifar100", tmp_path)
    assert torch.equal(test.images, torch.from_numpy(data["test"]).view(4, 3, 32, 32))
    assert test.labels.tolist() == [3, 1, 4, 1] and test.classes[9] == "class 9"


def test_tiny_imagenet_drops_the_classes_it_shares_with_cifar10(real_data):
    """The validation images of the 25 declared classes (cats, dogs, cars, ...; 10 each
    in the subset) are dropped and counted; the rest are sampled and resized to 32x32
    (bilinear, antialiased, as PIL resizes). An in-set it was not checked against is
    refused."""
    from PIL import Image

    wnids = (real_data / "tiny-imagenet-200" / "wnids.txt").read_text().split()
    assert set(TINYIMAGENET_CIFAR10) <= set(wnids)
    out = out_images("tinyimagenet", "cifar10-subset", (32, 32), 2000, root=real_data)
    assert out.dropped == 10 * len(TINYIMAGENET_CIFAR10) == 250
    assert out.images.shape == (1750, 3, 32, 32) and out.images.dtype == torch.uint8
    val = load_outset("tinyimagenet", real_data)
    shown = {wnids.index(w) for w in TINYIMAGENET_CIFAR10}
    assert not shown & set(val.labels[out.index].tolist())
    first = Image.fromarray(val.images[out.index[0]].permute(1, 2, 0).numpy())
    pil = torch.from_numpy(np.array(first.resize((32, 32), Image.BILINEAR))).permute(2, 0, 1)
    assert (out.images[0].int() - pil.int()).abs().max() <= 1  # resized as PIL resizes
    for dataset in ("cifar100", "tinyimagenet"):
        with pytest.raises(ValueError, match=f"not checked .* dataset '{dataset}'"):
            out_images("tinyimagenet", dataset, (64, 64), 10, root=real_data)


def test_noise_is_drawn_from_the_seed():
    first = out_images("gaussian", "shapes", (8, 8), 20, out_seed=3)
    assert torch.equal(
        first.images, out_images("gaussian", "shapes", (8, 8), 20, out_seed=3).images
    )
    assert not torch.equal(first.images, out_images("gaussian", "shapes", (8, 8), 20).images)
    saturated = ((first.images == 0) | (first.images == 255)).float().mean()
    assert 0.55 < saturated < 0.70  # N(0.5, 1) clipped to [0, 1]: 62% at either end
    with pytest.raises(ValueError, match=r"outset must be one of \('cifar100'"):
        out_images("mnist", "shapes", (8, 8), 20)


# ----------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_shapes) -> list[Run]:
    """Two finished one-epoch runs on the embedded data, region mixing and none."""
    runs_dir = tmp_path_factory.mktemp("ood-runs")
    for method in ("region", "none"):
        train(tiny_config(method=method, epochs=1), runs_dir, splits=tiny_shapes, progress=False)
    return [Run(p.parent) for p in sorted(runs_dir.rglob("final.pt"))]


def test_a_run_is_evaluated_stored_per_image_and_paired(two_runs, capsys):
    """Through ``regionmix evaluate``: one record per out-set with every measure, the
    scores of every in- and out-image stored beside it (a second out-set's record keeps
    the first's), the measures recomputed from them, two runs paired image by image."""
    from regionmix_utils.cli import main

    runs_dir = two_runs[0].path.parents[2]
    for outset in ("uniform", "gaussian"):
        assert main(["evaluate", "--kind", "ood", "--setting", f"outset={outset}", "n_out=40",
                     "out_seed=0", "--runs-dir", str(runs_dir), "--n-images", "50",
                     "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    assert capsys.readouterr().out.count("): ood ") == 4  # two runs, two out-sets
    assert main(["table", "--runs-dir", str(runs_dir)]) == 0
    title = f"{OOD.title} (beyond the paper, outset=uniform, n_out=40, out_seed=0)"
    assert title in capsys.readouterr().out
    stored = []
    for run in two_runs:
        records = {r["outset"]: r for r in run.evaluations() if r["kind"] == "ood"}
        record = records["uniform"]
        assert record["out_images"] == 40 and record["overlap_dropped"] == 0
        stored.append(run.predictions(evaluation_settings(record)))
        scores = stored_scores(stored[-1], "energy")
        assert len(scores["in"]) == 50 and len(scores["out"]) == 40
        inside, outside = torch.from_numpy(scores["in"]), torch.from_numpy(scores["out"])
        assert detection(inside, outside)["auroc"] == pytest.approx(record["auroc_energy"])
        aurc = selective(inside, torch.from_numpy(scores["correct"]))["aurc"]
        assert aurc == pytest.approx(record["aurc_energy"])
        assert evaluate_ood(run, "uniform", 40, 0, 50)[0] == record  # reused
    a, b = stored
    assert a.labels_hash == b.labels_hash  # the same test images
    assert np.array_equal(a.arrays["out.index"], b.arrays["out.index"])  # the same out-images
    assert not np.array_equal(a.arrays["out.msp"], b.arrays["out.msp"])
    table = ood_table({str(r.path): [e for e in r.evaluations() if e["kind"] == "ood"]
                       for r in two_runs})  # fmt: skip
    assert list(table.columns[:4]) == ["uniform noise AUROC", "uniform noise FPR95",
                                       "Gaussian noise AUROC", "Gaussian noise FPR95"]  # fmt: skip


def test_a_bundles_read_only_run_is_measured_in_memory(two_runs, tmp_path):
    """A results bundle's copy of a run takes no records: it is measured the same way and
    nothing in its folder changes."""
    import shutil

    writable, bundled = Run(tmp_path / "runs"), Run(tmp_path / "bundle")
    for run in (writable, bundled):
        shutil.copytree(two_runs[1].path, run.path)
    expected, _ = evaluate_ood(writable, "uniform", 30, 1, 40)
    (bundled.path / "exported.json").write_text(json.dumps({"source": str(tmp_path)}))
    before = {p.name: p.read_bytes() for p in bundled.path.iterdir()}
    record, predictions = evaluate_ood(bundled, "uniform", 30, 1, 40)
    assert {p.name: p.read_bytes() for p in bundled.path.iterdir()} == before
    assert {k: v for k, v in record.items() if k not in TIMED} == pytest.approx(
        {k: v for k, v in expected.items() if k not in TIMED}
    )
    assert len(predictions.arrays["out.msp"]) == 30
