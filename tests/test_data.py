"""Dataset loaders on fixtures in the real on-disk formats and on the real subsets."""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from regionmix_utils import data
from regionmix_utils.data import (
    BatchLoader,
    DatasetMissingError,
    augment_batch,
    cifar,
    cifar10_npz,
    download_tinyimagenet,
    load_dataset,
    shapes,
    stratified_indices,
    tinyimagenet,
)

from .conftest import file_listing, listing_changes, shared_data

# ------------------------------------------------------------------------------ shapes


def test_shapes_is_deterministic_balanced_and_boxed():
    a, b, c = shapes(200, 32, seed=1), shapes(200, 32, seed=1), shapes(200, 32, seed=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (200, 3, 32, 32) and a.images.dtype == torch.uint8
    assert torch.equal(torch.bincount(a.labels), torch.full((10,), 20))
    x0, y0, x1, y1 = a.boxes.T
    assert ((0 <= x0) & (x0 < x1) & (x1 <= 32) & (0 <= y0) & (y0 < y1) & (y1 <= 32)).all()
    # Objects are 40-70% of the side: boxes are neither specks nor the whole image.
    sides = torch.minimum(x1 - x0, y1 - y0)
    assert sides.min() >= 5 and (x1 - x0).max() <= 32
    assert shapes(10, 64).images.shape == (10, 3, 64, 64)


def test_shape_boxes_are_tight_around_the_object():
    """Inside the box the object's colour is present on every border row and column."""
    s = shapes(40, 32, seed=0)
    for image, box in zip(s.images.int(), s.boxes, strict=True):
        x0, y0, x1, y1 = box.tolist()
        crop = image[:, y0:y1, x0:x1]
        centre = crop[:, (y1 - y0) // 2, (x1 - x0) // 2]  # all our shapes but rings cover it
        near = (crop - centre[:, None, None]).abs().amax(0) < 40
        assert near.any(0)[[0, -1]].all() or near.any(1)[[0, -1]].all()
    with pytest.raises(ValueError, match="n >= 1 and size >= 8"):
        shapes(0)


# ------------------------------------------------------------------------------- CIFAR


def test_cifar10_npz_subset_loads_in_chw(real_data):
    splits = cifar10_npz(real_data / "cifar10-subset.npz")
    assert splits.train.images.shape == (5085, 3, 32, 32)
    assert splits.test.images.shape == (1017, 3, 32, 32)
    assert splits.num_classes == 10 and splits.train.labels.max() == 9
    raw = np.load(real_data / "cifar10-subset.npz")
    assert np.array_equal(splits.train.images[7].permute(1, 2, 0).numpy(), raw["x_train"][7])
    assert load_dataset("cifar10-subset", real_data, n_train=100).train.images.shape[0] == 100


def _write_cifar_batches(root: Path, arrays, monkeypatch) -> None:
    """The real CIFAR-10 python layout: pickled dicts, row-major 3072-byte rows."""
    from torchvision.datasets import CIFAR10

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    x, y = arrays["x_train"], arrays["y_train"]
    chunks = np.array_split(np.arange(len(x)), 5)
    files = []
    for i, idx in enumerate(chunks, start=1):
        files.append((f"data_batch_{i}", x[idx], y[idx]))
    files.append(("test_batch", arrays["x_test"], arrays["y_test"]))
    md5 = {}
    for name, images, labels in files:
        record = {  # written by Python 2 originally: str keys, protocol 2
            "batch_label": f"{name} of 5",
            "data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),
            "labels": [int(v) for v in labels],
        }
        (folder / name).write_bytes(pickle.dumps(record, protocol=2))
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    names = [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ]  # fmt: skip
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}, protocol=2))
    # The fixture's own checksums stand in for the real archive's in torchvision's check.
    monkeypatch.setattr(
        CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    meta = dict(CIFAR10.meta, md5=hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest())
    monkeypatch.setattr(CIFAR10, "meta", meta)


def test_cifar10_reads_the_real_python_layout(real_data, tmp_path, monkeypatch):
    arrays = np.load(real_data / "cifar10-subset.npz")
    _write_cifar_batches(tmp_path, arrays, monkeypatch)
    splits = cifar("cifar10", tmp_path)
    assert splits.train.images.shape == (5085, 3, 32, 32)
    assert np.array_equal(splits.train.images.permute(0, 2, 3, 1).numpy(), arrays["x_train"])
    assert np.array_equal(splits.test.labels.numpy(), arrays["y_test"])
    assert splits.train.classes[0] == "airplane"

    # A corrupt file fails torchvision's md5 check and surfaces as our error with the fix.
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(DatasetMissingError, match="regionmix download cifar10"):
        cifar("cifar10", tmp_path)


def test_missing_datasets_say_how_to_get_them(tmp_path):
    with pytest.raises(DatasetMissingError, match="regionmix download cifar100"):
        cifar("cifar100", tmp_path)
    with pytest.raises(DatasetMissingError, match="regionmix download tinyimagenet"):
        tinyimagenet(tmp_path)
    with pytest.raises(DatasetMissingError, match=r"cifar10-subset\.npz"):
        load_dataset("cifar10-subset", tmp_path)
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("mnist")


# ----------------------------------------------------------------------- Tiny ImageNet


def save_jpeg(image: torch.Tensor, path: Path) -> None:
    """uint8 [C, H, W] (C = 1 or 3) to a JPEG file, as the dataset stores them."""
    array = image.permute(1, 2, 0).numpy()
    Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(path, quality=95)


def make_tinyimagenet(root: Path, wnids=("n01443537", "n01629819"), per_class: int = 3) -> Path:
    """A small tiny-imagenet-200 folder in the exact layout of the official zip."""
    folder = root / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    (folder / "words.txt").write_text(
        "n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander\n"
        "n99999999\tnot in wnids\n"
    )
    gen = torch.Generator().manual_seed(0)
    val_lines = []
    for c, wnid in enumerate(wnids):
        images_dir = folder / "train" / wnid / "images"
        images_dir.mkdir(parents=True)
        box_lines = []
        for i in range(per_class):
            image = torch.full((3, 64, 64), 40 * (c + 1), dtype=torch.uint8)
            if i == 0:  # some originals are greyscale JPEGs
                image = image[:1]
            save_jpeg(image, images_dir / f"{wnid}_{i}.JPEG")
            box_lines.append(f"{wnid}_{i}.JPEG\t{i}\t{2 * i}\t{60 - i}\t63\n")
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(box_lines))
        name = f"val_{c}.JPEG"
        noise = torch.randint(0, 255, (3, 64, 64), generator=gen, dtype=torch.uint8)
        save_jpeg(noise, folder / "val" / "images" / name)
        val_lines.append(f"{name}\t{wnid}\t0\t32\t44\t62\n")
    (folder / "val" / "val_annotations.txt").write_text("".join(val_lines))
    return folder


def test_tinyimagenet_fixture_layout(tmp_path):
    make_tinyimagenet(tmp_path)
    splits = tinyimagenet(tmp_path, progress=False)
    assert splits.train.images.shape == (6, 3, 64, 64) and splits.train.images.dtype == torch.uint8
    assert splits.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert splits.train.classes == ("goldfish", "European fire salamander")
    # Greyscale JPEGs come back as RGB with equal channels.
    grey = splits.train.images[0].float()
    assert torch.allclose(grey[0], grey[1]) and abs(grey.mean() - 40) < 3
    # Inclusive corners in the files become exclusive ends.
    assert splits.train.boxes[1].tolist() == [1, 2, 60, 64]
    assert splits.test.boxes[0].tolist() == [0, 32, 45, 63]
    assert splits.test.labels.tolist() == [0, 1]


def test_tinyimagenet_labels_follow_the_wnids_file_not_sorted_order(tmp_path):
    """The released wnids.txt is not sorted: class i is line i, for train and val alike."""
    wnids = ("n01629819", "n01443537")  # not sorted, as in the released file
    make_tinyimagenet(tmp_path, wnids=wnids)
    splits = tinyimagenet(tmp_path, progress=False)
    assert splits.train.classes == ("European fire salamander", "goldfish")
    # Train images of the first line's class are the darkest (fixture: 40 * (line + 1)).
    assert splits.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert abs(splits.train.images[:3].float().mean() - 40) < 3
    # val_<c>.JPEG belongs to line c of wnids.txt (val_annotations.txt gives its wnid).
    assert splits.test.labels.tolist() == [0, 1]


def test_a_cache_numbered_in_another_class_order_is_read_afresh(tmp_path):
    folder = make_tinyimagenet(tmp_path)
    first = tinyimagenet(tmp_path, progress=False)
    stamp = (folder / "regionmix-cache.pt").stat().st_mtime
    wnids = folder / "wnids.txt"
    wnids.write_text("".join(f"{w}\n" for w in reversed(wnids.read_text().split())))
    os.utime(wnids, (stamp - 60, stamp - 60))  # replaced by a copy that kept an old date
    second = tinyimagenet(tmp_path, progress=False)
    assert second.train.classes == tuple(reversed(first.train.classes))
    for splits, label in ((first, 0), (second, 1)):  # goldfish's images are 40 grey
        goldfish = (splits.train.images.float().mean((1, 2, 3)) - 40).abs() < 3
        assert goldfish.sum() == 3 and (splits.train.labels[goldfish] == label).all()
    assert torch.equal(second.test.labels, 1 - first.test.labels)


def test_tinyimagenet_cache_is_used_on_the_second_load(tmp_path):
    folder = make_tinyimagenet(tmp_path)
    first = tinyimagenet(tmp_path, progress=False)
    assert (folder / "regionmix-cache.pt").exists()
    for jpeg in folder.rglob("*.JPEG"):
        jpeg.unlink()  # the cache alone must now suffice
    second = tinyimagenet(tmp_path, progress=False)
    assert torch.equal(first.train.images, second.train.images)
    assert torch.equal(first.test.boxes, second.test.boxes)


def test_subsets_are_stratified_on_a_class_grouped_fixture():
    """Files grouped by class, as Tiny ImageNet's train split: 200 classes x 500 images."""
    labels = torch.arange(200).repeat_interleave(500)
    index = stratified_indices(labels, 2000, 200, seed=0)
    assert torch.equal(torch.bincount(labels[index], minlength=200), torch.full((200,), 10))
    assert torch.equal(index, index.sort().values) and len(set(index.tolist())) == 2000
    assert torch.equal(index, stratified_indices(labels, 2000, 200, seed=0))
    assert not torch.equal(index, stratified_indices(labels, 2000, 200, seed=1))
    uneven = stratified_indices(labels, 2010, 200)  # 10 classes get an 11th image
    assert sorted(set(torch.bincount(labels[uneven]).tolist())) == [10, 11]
    scarce = torch.cat([torch.zeros(3, dtype=torch.long), torch.ones(100, dtype=torch.long)])
    counts = torch.bincount(scarce[stratified_indices(scarce, 20, 2)])
    assert counts.tolist() == [3, 17]  # a class that runs out leaves its share to the others
    assert len(stratified_indices(labels, 10**6, 200)) == len(labels)


def test_image_sets_check_their_labels_once():
    images = torch.zeros(3, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\] for 2 classes"):
        data.ImageSet(images, torch.tensor([0, 1, 2]), ("a", "b"))
    with pytest.raises(ValueError, match="images must be uint8"):
        data.ImageSet(images.float(), torch.tensor([0, 1, 1]), ("a", "b"))


def test_tinyimagenet_real_subset_loads_unchanged(real_data):
    splits = tinyimagenet(real_data, progress=False)
    assert splits.num_classes == 200
    assert splits.train.images.shape == (4000, 3, 64, 64)
    assert splits.test.images.shape == (2000, 3, 64, 64)
    assert torch.equal(torch.bincount(splits.train.labels), torch.full((200,), 20))
    folder = real_data / "tiny-imagenet-200"
    wnids = (folder / "wnids.txt").read_text().split()
    assert wnids != sorted(wnids), "the subset keeps the released (unsorted) class order"
    assert splits.train.classes[0] == "Egyptian cat"  # line 0: n02124075
    annotations = (folder / "val" / "val_annotations.txt").read_text().splitlines()
    val_wnids = [line.split("\t")[1] for line in annotations if line.strip()]
    assert splits.test.labels.tolist() == [wnids.index(w) for w in val_wnids]
    boxes = splits.test.boxes
    assert ((boxes[:, 0] < boxes[:, 2]) & (boxes[:, 2] <= 64) & (boxes[:, 3] <= 64)).all()


def test_a_quick_tinyimagenet_subset_holds_every_class(real_data):
    """--quick's 2000 training images: 10 of each of the 200 classes, boxes alongside."""
    full = tinyimagenet(real_data, progress=False)
    splits = load_dataset("tinyimagenet", real_data, n_train=2000, n_test=500)
    assert torch.equal(torch.bincount(splits.train.labels, minlength=200), torch.full((200,), 10))
    assert set(torch.bincount(splits.test.labels, minlength=200).tolist()) == {2, 3}
    # Each kept image keeps its own label and box.
    first = int((full.train.images == splits.train.images[:1]).flatten(1).all(1).nonzero()[0])
    assert full.train.labels[first] == splits.train.labels[0]
    assert torch.equal(full.train.boxes[first], splits.train.boxes[0])


def test_loading_the_real_tinyimagenet_leaves_the_shared_data_folder_unchanged(real_data):
    """A first load of Tiny ImageNet writes its 74 MB cache of decoded images beside the
    dataset, and the tests' loads used to leave it in the shared data folder."""
    shared = shared_data()
    before = file_listing(shared)
    splits = load_dataset("tinyimagenet", real_data, n_train=200, n_test=200)
    assert splits.num_classes == 200
    assert listing_changes(before, file_listing(shared)) == []


def _zip_folder(folder: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent))


def test_download_extracts_the_official_zip_layout(tmp_path):
    source = make_tinyimagenet(tmp_path / "src")
    archive = tmp_path / "tiny-imagenet-200.zip"
    _zip_folder(source, archive)
    root = tmp_path / "data"
    target = download_tinyimagenet(root, url=archive.as_uri(), progress=False)
    assert target == root / "tiny-imagenet-200"
    assert tinyimagenet(root, progress=False).train.images.shape[0] == 6
    assert sorted(p.name for p in root.iterdir()) == ["tiny-imagenet-200"]  # no temp leftovers
    # A second call finds the folder and downloads nothing.
    assert download_tinyimagenet(root, url="file:///nonexistent.zip", progress=False) == target


def test_a_corrupt_download_leaves_nothing_behind(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 this is not a zip")
    root = tmp_path / "data"
    with pytest.raises(DatasetMissingError, match="not a valid zip"):
        download_tinyimagenet(root, url=archive.as_uri(), progress=False)
    assert list(root.iterdir()) == []


# ------------------------------------------------------------------------ augmentation


def _reference_crop_flip(images, offsets, flips, pad=2):
    padded = F.pad(images, (pad,) * 4)
    out = []
    for b in range(len(images)):
        crop = padded[
            b,
            :,
            offsets[0, b] : offsets[0, b] + images.shape[2],
            offsets[1, b] : offsets[1, b] + images.shape[3],
        ]
        out.append(crop.flip(-1) if flips[b] else crop)
    return torch.stack(out)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_augmentation_is_a_padded_crop_and_flip_per_image(dtype):
    images = shapes(64, 32).images.to(dtype)
    out = augment_batch(images, pad=2, generator=torch.Generator().manual_seed(5))
    # Replay the same draws to get each image's offsets and flip.
    gen = torch.Generator().manual_seed(5)
    offsets = torch.randint(0, 5, (2, 64), generator=gen)
    flips = torch.rand(64, generator=gen) < 0.5
    assert torch.equal(out, _reference_crop_flip(images, offsets, flips))
    assert out.dtype == dtype and out.shape == images.shape
    assert len({tuple(o) for o in offsets.T.tolist()}) > 10, "offsets are not per image"
    assert 16 < int(flips.sum()) < 48


def test_augmentation_is_deterministic_under_a_seed_and_keeps_range():
    images = torch.rand(16, 3, 8, 8)
    a = augment_batch(images, generator=torch.Generator().manual_seed(0))
    b = augment_batch(images, generator=torch.Generator().manual_seed(0))
    c = augment_batch(images, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_batch_loader_covers_the_epoch_once_and_scales(tiny_shapes):
    loader = BatchLoader(
        tiny_shapes.test,
        32,
        shuffle=True,
        augment=False,
        generator=torch.Generator().manual_seed(0),
    )
    batches = list(loader)
    assert len(batches) == len(loader) == 4  # 100 images: 3 full batches and one of 4
    labels = torch.cat([y for _, y in batches])
    images = torch.cat([x for x, _ in batches])
    assert images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1
    assert sorted(labels.tolist()) == sorted(tiny_shapes.test.labels.tolist())
    assert len(BatchLoader(tiny_shapes.test, 32, drop_last=True)) == 3
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        BatchLoader(tiny_shapes.test, 0)


def test_is_on_disk_looks_where_the_loaders_look(tmp_path, real_data):
    assert data.is_on_disk("shapes", tmp_path) and not data.is_on_disk("cifar10", tmp_path)
    assert data.is_on_disk("cifar10-subset", real_data) and data.is_on_disk(
        "tinyimagenet", real_data
    )
    make_tinyimagenet(tmp_path)
    assert data.is_on_disk("tinyimagenet", tmp_path)
    with pytest.raises(ValueError, match="dataset must be one of"):
        data.is_on_disk("mnist")


def test_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REGIONMIX_DATA", str(tmp_path))
    assert data.data_root() == tmp_path
    assert data.data_root("elsewhere") == Path("elsewhere").resolve()


# --------------------------------------------------------------------------- downloads


def test_cifar_is_downloaded_when_asked_with_torchvisions_checks(tmp_path, monkeypatch, capsys):
    """download=True hands the fetch to torchvision (its download, then its MD5 check of
    every file) and says so; not asked, nothing is fetched. The network stands replaced by
    writing the archive's files."""
    from torchvision.datasets import CIFAR10

    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8),
        "y_train": np.arange(50) % 10,
        "x_test": rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
        "y_test": np.arange(10),
    }
    calls = []

    def fetch(self):
        calls.append(self.root)
        if not (Path(self.root) / "cifar-10-batches-py").exists():
            _write_cifar_batches(Path(self.root), arrays, monkeypatch)

    monkeypatch.setattr(CIFAR10, "download", fetch)
    with pytest.raises(DatasetMissingError, match="regionmix download cifar10"):
        load_dataset("cifar10", tmp_path)
    assert calls == []
    splits = load_dataset("cifar10", tmp_path, download=True)
    assert calls and splits.train.images.shape == (50, 3, 32, 32)
    assert "cifar10 is not under" in capsys.readouterr().out
    assert np.array_equal(splits.test.images.permute(0, 2, 3, 1).numpy(), arrays["x_test"])
    # On disk now: asked again, torchvision checks the files, and nothing is said.
    load_dataset("cifar10", tmp_path, download=True)
    assert "not under" not in capsys.readouterr().out
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(DatasetMissingError, match="missing or corrupt"):
        load_dataset("cifar10", tmp_path, download=True)


def test_the_tinyimagenet_download_says_what_it_fetches(tmp_path, capsys):
    source = make_tinyimagenet(tmp_path / "src")
    archive = tmp_path / "tiny-imagenet-200.zip"
    _zip_folder(source, archive)
    download_tinyimagenet(tmp_path / "data", url=archive.as_uri(), progress=False)
    assert f"downloading {archive.as_uri()}" in capsys.readouterr().out


# ------------------------------------------------------------------ decoding Tiny ImageNet


def test_tinyimagenet_jpegs_are_decoded_on_several_threads_with_a_progress_bar(
    real_data, monkeypatch
):
    """The first load decodes every JPEG (110,000 in the full dataset): on a pool of
    threads, counted by a progress bar, into the same tensors as one thread gives."""
    import threading

    from PIL import Image

    from regionmix_utils import progress as progress_module

    threads, bars = set(), []
    open_image = Image.open

    def recording_open(*args, **kwargs):
        threads.add(threading.get_ident())
        return open_image(*args, **kwargs)

    class Bar(progress_module.LineProgress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(Image, "open", recording_open)
    monkeypatch.setattr(progress_module, "progress", Bar)
    monkeypatch.setattr(data, "JPEG_CHUNK", 100, raising=False)  # 60 tasks for 6,000 images
    folder = real_data / "tiny-imagenet-200"
    saved = data._read_tinyimagenet_folder(folder, progress=True)  # what a first load decodes
    assert len(threads) > 1, "every JPEG was decoded on one thread"
    assert sorted((b.total, b.n) for b in bars) == [(2000, 2000), (4000, 4000)]
    wnid = (folder / "wnids.txt").read_text().split()[0]
    first = sorted((folder / "train" / wnid / "images").iterdir())
    boxes = (folder / "train" / wnid / f"{wnid}_boxes.txt").read_text().split("\n")[0]
    path = folder / "train" / wnid / "images" / boxes.split("\t")[0]
    assert path in first
    with open_image(path) as image:
        expected = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(saved["train_images"][0], expected)
    assert torch.equal(data.read_jpegs(first[:5], progress=False, threads=1),
                       data.read_jpegs(first[:5], progress=False, threads=3))  # fmt: skip


def test_batch_loader_lays_out_channels_last_with_the_same_values(tiny_shapes):
    """The layout the trainer asks for on a GPU, on the CPU: same batches, other strides."""
    plain, last = (list(BatchLoader(tiny_shapes.test, 32, channels_last=layout,
                                    generator=torch.Generator().manual_seed(0)))
                   for layout in (False, True))  # fmt: skip
    for (x, y), (x_last, y_last) in zip(plain, last, strict=True):
        assert x_last.is_contiguous(memory_format=torch.channels_last) and x.is_contiguous()
        assert torch.equal(x, x_last) and torch.equal(y, y_last)
