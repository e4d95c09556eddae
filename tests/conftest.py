"""Shared fixtures: the real data subsets (read through links, and checked unchanged after
the session), and a tiny shapes split."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from regionmix_utils.data import Splits, load_dataset
from regionmix_utils.train import TrainConfig

REPO = Path(__file__).resolve().parent.parent


def shared_data() -> Path | None:
    """The real CIFAR-10 / Tiny ImageNet subsets: $REGIONMIX_SHARED_DATA or ../shared/data."""
    env = os.environ.get("REGIONMIX_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


def tiny_config(**changes) -> TrainConfig:
    """A region-mixup run on the embedded data small enough for a test (about a second)."""
    base = TrainConfig(
        dataset="shapes", method="region", epochs=2, width=4, batch_size=32, n_train=256, n_test=100
    )
    return dataclasses.replace(base, **changes)


def file_listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``, recursively: relative path -> (size in bytes, mtime in
    ns). Links are not followed (a link's own size and mtime)."""
    listing = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            stat = path.lstat()
            listing[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return listing


def listing_changes(before: dict, after: dict) -> list[str]:
    """The files added, removed or changed (size or mtime) between two ``file_listing``s,
    each as "path (what happened)"."""
    changes = []
    for name in sorted(before.keys() | after.keys()):
        if name not in before:
            changes.append(f"{name} (added, {after[name][0]:,} bytes)")
        elif name not in after:
            changes.append(f"{name} (removed)")
        elif before[name] != after[name]:
            changes.append(f"{name} (size or mtime changed)")
    return changes


@pytest.fixture(scope="session", autouse=True)
def shared_data_unchanged():
    """Fails the session, naming the files, if any test wrote into the shared data
    folder (a cache beside the dataset, a file opened for writing through a link)."""
    path = shared_data()
    before = file_listing(path) if path else {}
    yield
    changed = listing_changes(before, file_listing(path)) if path else []
    if changed:
        pytest.fail(
            f"the tests changed {len(changed)} file(s) in the shared data folder {path}, "
            "which tests must only read: " + "; ".join(changed[:20]),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def real_data(tmp_path_factory) -> Path:
    """The real data subsets, seen through a temporary folder of links: each file of the
    shared folder and of each dataset folder in it is linked, so that what a loader
    writes beside a dataset (Tiny ImageNet's ``regionmix-cache.pt``, 74 MB) lands in the
    temporary folder, once per session, and never in the shared one."""
    path = shared_data()
    if path is None:
        pytest.skip("real data subsets not found (set REGIONMIX_SHARED_DATA to their folder)")
    mirror = tmp_path_factory.mktemp("real-data")
    for entry in path.iterdir():
        if not entry.is_dir():
            (mirror / entry.name).symlink_to(entry)
            continue
        (mirror / entry.name).mkdir()
        for child in entry.iterdir():
            (mirror / entry.name / child.name).symlink_to(child)
    return mirror


@pytest.fixture(scope="session")
def tiny_shapes() -> Splits:
    """256 train / 100 test images of the embedded data: enough to exercise the loop."""
    return load_dataset("shapes", n_train=256, n_test=100)
