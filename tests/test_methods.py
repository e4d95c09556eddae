"""The method registry: the one extension point for a new mixing method."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from regionmix_utils.ablations import ablation_frame
from regionmix_utils.cli import build_parser, main
from regionmix_utils.config import TrainConfig
from regionmix_utils.methods import (
    Method,
    get_method,
    method_names,
    methods,
    register,
    registered,
    unregister,
)
from regionmix_utils.mixing import RegionParams, apply_region_mixup, sample_beta
from regionmix_utils.results import collect_runs, paper_tables, to_markdown
from regionmix_utils.runs import find_runs
from regionmix_utils.viz import parameter_figure


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
from regionmix_utils.methods import Method, Setting, register
from regionmix_utils.mixing import RegionParams, apply_region_mixup, sample_beta

def sample_stripes(batch_size, height, width, generator, *, alpha, stripes):
    lam = sample_beta(alpha, stripes, generator).view(1, stripes)
    partners = torch.rand(stripes, batch_size, generator=generator).argsort(1)
    return RegionParams(lam=lam, partners=partners.view(1, stripes, batch_size))

register(Method(name="stripes", label="Stripes", help="vertical stripes", reads=("alpha",),
                params={"stripes": Setting("vertical stripes", "n", "stripes", int, default=4,
                                           low=1)},
                shown=("stripes",), sample=sample_stripes, apply=apply_region_mixup))
"""


def test_the_guides_plugin_trains_from_the_command_line(tmp_path):
    """The extending guide's example, as a user runs it: a module of their own with a parameter
    of its own, named in $REGIONMIX_PLUGINS, in a fresh process: its option trains it
    into folders named after the parameter, the table labels it by the parameter, and
    the ablation view plots against it. No file of the package knows the method."""
    (tmp_path / "my_methods.py").write_text(PLUGIN)
    guide = (Path(__file__).parent.parent / "docs" / "extending.md").read_text()
    assert 'params={"stripes": Setting(' in guide and "--stripes 2 4 8" in guide
    env = {**os.environ, "REGIONMIX_PLUGINS": "my_methods", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "regionmix_utils.cli", "sweep", "--datasets", "shapes",
               "--methods", "stripes", "--stripes", "2", "4", "--seeds", "0", "1", "--runs-dir",
               "runs", "--epochs", "1", "--width", "4", "--batch-size", "32", "--n-train", "64",
               "--n-test", "20", "--device", "cpu", "--no-progress"]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for n in (2, 4):
        assert (tmp_path / f"runs/shapes/stripes-a1-n{n}/seed1/final.pt").exists()
    table = [sys.executable, "-m", "regionmix_utils.cli", "table", "--runs-dir", "runs"]
    done = subprocess.run(table, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Stripes (stripes=2, " in done.stdout and "Stripes (stripes=4, " in done.stdout

    sys.path.insert(0, str(tmp_path))
    try:
        importlib.import_module("my_methods")
        frame = ablation_frame(find_runs(tmp_path / "runs"))
        figure = parameter_figure(frame, "stripes")
        (line,) = [c for c in figure.axes[0].containers]  # one method: one line
        assert list(line.lines[0].get_xdata()) == [2, 4]
        assert figure.axes[0].get_xlabel() == "stripes (stripes)"
        figure.savefig(tmp_path / "stripes.png")
        transform = get_method("stripes").transform(num_classes=3, stripes=8)
        _, targets = transform(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
        assert targets.shape == (4, 3)
        with pytest.raises(ValueError, match=r"^method 'stripes' has no parameter 'stripe'; "
                           r"its parameters: \('alpha', 'stripes'\)$"):  # fmt: skip
            TrainConfig(dataset="shapes", method="stripes", params={"stripe": 3})
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_methods", None)
        unregister("stripes")

    env["REGIONMIX_PLUGINS"] = "not_a_module"
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "cannot import plugin 'not_a_module'" in done.stderr


def test_fmix_decay_power_is_a_parameter_of_the_trainer_and_the_transform():
    """FMix declares decay_power: the config, the folder name, the sampler the trainer
    calls and the transform all take it from that one declaration."""
    from regionmix_utils.config import run_name
    from regionmix_utils.mixing import FMix

    smooth = TrainConfig(dataset="shapes", method="fmix", params={"decay_power": 2.0})
    default = TrainConfig(dataset="shapes", method="fmix")
    assert (run_name(smooth), run_name(default)) == ("fmix-a1-d2", "fmix-a1")  # old name kept
    assert default.params == (("decay_power", FMix().decay_power),)
    images, labels = torch.rand(6, 3, 16, 16), torch.arange(6) % 3
    method = get_method("fmix")

    def mixed(config):
        gen = torch.Generator().manual_seed(0)
        return method.mix(images, labels, 3, config.settings(), gen).images

    assert not torch.equal(mixed(smooth), mixed(default))
    transform = method.transform(num_classes=3, generator=torch.Generator().manual_seed(0),
                                 decay_power=2.0)  # fmt: skip
    assert torch.equal(transform(images, labels)[0], mixed(smooth))
    message = r"^decay_power must be a positive finite number, got -1\.0$"
    with pytest.raises(ValueError, match=message):
        TrainConfig(method="fmix", params={"decay_power": -1})
