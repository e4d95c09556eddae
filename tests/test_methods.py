"""The method registry: the one extension point for a new mixing method."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from regionmix_utils.cli import build_parser, main
from regionmix_utils.config import TrainConfig
from regionmix_utils.methods import (
    Method,
    get_method,
    method_names,
    methods,
    register,
    registered,
)
from regionmix_utils.mixing import RegionParams, apply_region_mixup, sample_beta
from regionmix_utils.results import collect_runs, paper_tables, to_markdown
from regionmix_utils.runs import find_runs


def test_built_in_methods_come_in_the_papers_order():
    assert method_names()[:4] == ("cutmix", "mixup", "region", "none")
    assert [get_method(n).label for n in method_names()] == [
        "CutMix", "Mixup", "Region Mixup", "No mixing", "Region Mixup, random grid",
        "GridMix", "FMix", "ResizeMix", "Manifold Mixup", "Region Manifold Mixup",
    ]  # fmt: skip
    assert not get_method("none").mixes and get_method("region").mixes
    in_model = [m.name for m in methods() if m.in_model]
    assert in_model == ["manifold", "region-manifold"]
    with pytest.raises(ValueError, match=r"method must be one of \('cutmix'"):
        get_method("puzzlemix")


def test_folder_names_and_labels_follow_the_settings_read():
    region, mixup, none = get_method("region"), get_method("mixup"), get_method("none")
    settings = {"k": 4, "alpha": 0.5}
    assert region.folder(settings) == "region-k4-a0.5"
    assert mixup.folder(settings) == "mixup-a0.5"
    assert none.folder(settings) == "none"
    defaults = {"k": 2, "alpha": 1.0}
    assert region.table_label({"k": 2, "alpha": 1.0}, defaults) == "Region Mixup (k=2)"
    assert mixup.table_label({"k": 2, "alpha": 1.0}, defaults) == "Mixup (k=1)"
    assert mixup.table_label({"alpha": 0.4}, defaults) == "Mixup (k=1, α=0.4)"
    assert get_method("cutmix").table_label({"alpha": 1.0}, defaults) == "CutMix"


def test_registry_refuses_duplicates_unknown_settings_and_half_methods():
    with pytest.raises(ValueError, match="already registered"):
        register(Method(name="region", label="again", help=""))
    with pytest.raises(ValueError, match="not in SETTINGS"):
        Method(name="x", label="x", help="", reads=("grid_size",))
    with pytest.raises(ValueError, match="both sample and apply"):
        Method(name="x", label="x", help="", sample=lambda *a, **k: None)


# --------------------------------------------------- a new method, registered by a test


def _sample_stripes(batch_size, height, width, generator, *, k, alpha):
    """k vertical stripes, each with its own λ ~ Beta(α, α) and its own partner."""
    lam = sample_beta(alpha, k, generator).view(1, k)
    keys = torch.rand(k, batch_size, generator=generator)
    return RegionParams(lam=lam, partners=keys.argsort(1).view(1, k, batch_size))


STRIPES = Method(
    name="stripes", label="Stripes", help="vertical stripes (a test's toy method)",
    reads=("k", "alpha"), shown=("k",), sample=_sample_stripes, apply=apply_region_mixup,
)  # fmt: skip


def test_a_registered_method_mixes_as_equation_1_on_stripes():
    images = torch.rand(6, 3, 8, 8)
    labels = torch.arange(6) % 3
    with registered(STRIPES) as method:
        out = method.mix(images, labels, 3, {"k": 4, "alpha": 1.0}, torch.Generator())
    assert out.lam.shape == (1, 4) and out.partners.shape == (1, 4, 6)
    for j in range(4):  # stripe j: columns 2j, 2j + 1, blended with its own partner
        lam, partner = out.lam[0, j], out.partners[0, j]
        cols = slice(2 * j, 2 * j + 2)
        expected = lam * images[..., cols] + (1 - lam) * images[partner][..., cols]
        torch.testing.assert_close(out.images[..., cols], expected)
    assert "stripes" not in method_names()


def test_a_new_method_trains_sweeps_and_tables_without_touching_the_package(tmp_path, capsys):
    """The registry is the only extension point: a method registered here is a CLI
    choice, a run folder, a sweep entry and a column of `regionmix table`."""
    runs = str(tmp_path)
    common = ["--epochs", "1", "--width", "4", "--batch-size", "32", "--n-train", "128",
              "--n-test", "50", "--device", "cpu", "--runs-dir", runs, "--no-progress"]  # fmt: skip
    with registered(STRIPES):
        args = build_parser().parse_args(["train", "--dataset", "shapes", "--method", "stripes"])
        assert args.method == "stripes"
        sweep = ["sweep", "--datasets", "shapes", "--methods", "stripes", "region",
                 "--k", "4", "--seeds", "0", "1", *common]  # fmt: skip
        assert main(sweep) == 0
        assert "4 runs" in capsys.readouterr().out
        folders = [run.path.parent.name for run in find_runs(tmp_path)]
        assert len(folders) == 4 and set(folders) == {"region-k4-a1", "stripes-k4-a1"}
        config = TrainConfig(dataset="shapes", method="stripes", k=4)
        assert config.settings() == {"k": 4, "alpha": 1.0}
        assert main(["table", "--runs-dir", runs]) == 0
        out = capsys.readouterr().out
        assert "Stripes (k=4, " in out and "Region Mixup (k=4, " in out
        table = paper_tables(collect_runs(tmp_path))[0]
        assert list(dict.fromkeys(table.frame.columns.get_level_values(0)))[-1].startswith(
            "Stripes (k=4"
        )  # registration order: after the built-in methods
        assert "(2)" in to_markdown(table.frame)  # two seeds a cell
    with pytest.raises(SystemExit):  # unregistered again: no longer a choice
        build_parser().parse_args(["train", "--dataset", "shapes", "--method", "stripes"])


PLUGIN = """
import torch
from regionmix_utils.methods import Method, register
from regionmix_utils.mixing import RegionParams, apply_region_mixup, sample_beta

def sample_stripes(batch_size, height, width, generator, *, k, alpha):
    lam = sample_beta(alpha, k, generator).view(1, k)
    partners = torch.rand(k, batch_size, generator=generator).argsort(1)
    return RegionParams(lam=lam, partners=partners.view(1, k, batch_size))

register(Method(name="stripes", label="Stripes", help="vertical stripes",
                reads=("k", "alpha"), shown=("k",),
                sample=sample_stripes, apply=apply_region_mixup))
"""


def test_the_readmes_plugin_trains_from_the_command_line(tmp_path):
    """The README's example, as a user runs it: a module of their own, named in
    $REGIONMIX_PLUGINS, in a fresh process."""
    (tmp_path / "my_methods.py").write_text(PLUGIN)
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert PLUGIN.strip().splitlines()[-4] in readme  # the test runs what the README shows
    env = {**os.environ, "REGIONMIX_PLUGINS": "my_methods", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "regionmix_utils.cli", "sweep", "--datasets", "shapes",
               "--methods", "stripes", "--k", "4", "--seeds", "0", "--runs-dir", "runs",
               "--epochs", "1", "--width", "4", "--batch-size", "32", "--n-train", "64",
               "--n-test", "20", "--device", "cpu", "--no-progress"]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs/shapes/stripes-k4-a1/seed0/final.pt").exists()
    env["REGIONMIX_PLUGINS"] = "not_a_module"
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "cannot import plugin 'not_a_module'" in done.stderr
