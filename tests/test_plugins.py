"""Three contributions as a contributor makes them, each one file outside the package loaded
through ``$REGIONMIX_PLUGINS`` (tests/plugins/): a method with a parameter of its own, an
evaluation with a setting (beside a second keyed one), and a dataset in its own files. Each
is used from the command line, in a fresh process, as a user would."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from regionmix_utils.ablations import ablation_frame
from regionmix_utils.data import DATASETS
from regionmix_utils.methods import METHODS
from regionmix_utils.runs import find_runs

PLUGINS = Path(__file__).parent / "plugins"
NAMES = "diagonal_cut,jpeg_quality,contrast,svhn_like"


def _svhn_file(path: Path, n: int, seed: int) -> None:
    import scipy.io

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10 + 1)  # 1..10, 10 is the digit 0
    images = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    images[:, :, 0, :] = (labels * 23).astype(np.uint8)  # something to learn
    scipy.io.savemat(path, {"X": images, "y": labels.reshape(-1, 1).astype(np.uint8)})


def _regionmix(*args: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "regionmix_utils.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, f"regionmix {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    served = root / "served"
    served.mkdir()
    _svhn_file(served / "train_32x32.mat", 300, 0)
    _svhn_file(served / "test_32x32.mat", 100, 1)
    path = os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "REGIONMIX_PLUGINS": NAMES, "SVHN_URL": served.as_uri() + "/",
           "PYTHONPATH": path}  # fmt: skip
    data, runs = root / "data", root / "runs"
    _regionmix("download", "svhn", "--data-dir", str(data), env=env)
    _regionmix("sweep", "--datasets", "svhn", "--methods", "none", "diagonal", "--angle", "30",
               "--seeds", "0", "1", "--quick", "--epochs", "1", "--data-dir", str(data),
               "--runs-dir", str(runs), "--no-progress", env=env)  # fmt: skip
    _regionmix("evaluate", "--kind", "jpeg", "--setting", "quality=50", "--runs-dir", str(runs),
               "--data-dir", str(data), env=env)  # fmt: skip
    return {"env": env, "data": data, "runs": runs}


@pytest.mark.slow
def test_a_dataset_plugin_downloads_loads_trains_and_is_titled(workspace) -> None:
    assert (workspace["data"] / "svhn" / "test_32x32.mat").is_file()
    assert "svhn" in _regionmix("download", "--help", env=workspace["env"])
    table = _regionmix(
        "table", "--include-quick", "--runs-dir", str(workspace["runs"]), env=workspace["env"]
    )
    assert "| SVHN |" in table


@pytest.mark.slow
def test_a_method_plugin_trains_with_its_own_option_and_is_labelled(workspace) -> None:
    (folder,) = (workspace["runs"] / "svhn").glob("diagonal*")
    assert "ang30" in folder.name
    assert "--angle" in _regionmix("train", "--help", env=workspace["env"])
    table = _regionmix(
        "table", "--include-quick", "--runs-dir", str(workspace["runs"]), env=workspace["env"]
    )
    assert "Diagonal cut (angle=30" in table


@pytest.mark.slow
def test_an_evaluation_plugin_stores_per_image_results_tabulates_and_compares(workspace):
    runs, env = workspace["runs"], workspace["env"]
    assert len(list(runs.glob("svhn/*/seed*/predictions.npz"))) == 4
    table = _regionmix("table", "--include-quick", "--runs-dir", str(runs), env=env)
    assert "Accuracy on JPEG-compressed test images" in table
    assert "Accuracy at reduced contrast" not in table  # registered, no records: no table
    compared = _regionmix(
        "table", "--include-quick", "--runs-dir", str(runs), "--compare", "diagonal:none", env=env
    )
    assert "jpeg" in compared.lower()


@pytest.mark.slow
def test_a_method_plugins_parameter_is_an_ablation_axis(workspace, monkeypatch) -> None:
    """In a notebook, ``import diagonal_cut`` does what ``$REGIONMIX_PLUGINS`` does."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    try:
        importlib.import_module("svhn_like")
        importlib.import_module("diagonal_cut")
        frame = ablation_frame(find_runs(workspace["runs"]))
    finally:
        METHODS.unregister("diagonal")
        DATASETS.unregister("svhn")
        for name in ("svhn_like", "diagonal_cut"):
            sys.modules.pop(name, None)
    diagonal = frame[frame["method"] == "diagonal"]
    assert sorted(diagonal["seed"]) == [0, 1] and set(diagonal["angle"]) == {30.0}
    assert frame.loc[frame["method"] == "none", "angle"].isna().all()
