"""The notebooks' helpers: set-up (device, Colab's Drive) and finding the runs they need."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from regionmix_utils import __version__, notebook
from regionmix_utils.config import TrainConfig
from regionmix_utils.notebook import ensure_runs, example_batch, setup, sweep_commands
from regionmix_utils.runs import Run, run_dir

from .conftest import tiny_config


def test_setup_prints_versions_and_returns_the_device(capsys):
    device = setup()
    out = capsys.readouterr().out
    assert f"regionmix_utils {__version__}" in out and f"torch {torch.__version__}" in out
    assert device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert ("No GPU" in out) == (device == "cpu")
    setup(needs_gpu=False)
    assert "No GPU:" not in capsys.readouterr().out


@pytest.fixture
def colab(monkeypatch):
    """Stands in for the ``google.colab`` module, which only exists on Colab: records mounts."""
    mounts = []
    drive = types.SimpleNamespace(mount=mounts.append)
    colab_module = types.ModuleType("google.colab")
    colab_module.drive = drive
    monkeypatch.setitem(sys.modules, "google.colab", colab_module)
    monkeypatch.setattr(notebook, "IN_COLAB", True)
    return mounts


def test_setup_mounts_google_drive_only_for_runs_on_it(colab, capsys):
    setup("../runs")
    setup("/content/drive-other/runs")
    assert colab == []
    setup("/content/drive/MyDrive/regionmix/runs")
    assert colab == ["/content/drive"]
    if not torch.cuda.is_available():
        assert "Runtime > Change runtime type > GPU" in capsys.readouterr().out


def test_no_drive_outside_colab(capsys):
    setup("/content/drive/MyDrive/regionmix/runs")  # a plain folder here: nothing to mount
    assert "regionmix_utils" in capsys.readouterr().out


def test_example_batch_falls_back_to_the_embedded_data(tmp_path):
    images, labels, classes, source = example_batch(4, tmp_path, download=False)
    assert source.startswith("the embedded shapes data") and images.shape == (4, 3, 32, 32)
    assert len(classes) == 10 and 0 <= images.min() and images.max() <= 1 and labels.shape == (4,)


def test_example_batch_shows_real_photos_of_different_classes_when_it_can(real_data):
    images, labels, classes, source = example_batch(8, real_data, download=False)
    assert images.shape == (8, 3, 32, 32)
    assert source == "CIFAR-10 test images (cifar10-subset.npz)" and classes[0] == "airplane"
    assert len(set(labels.tolist())) == 8  # a stratified sample: eight classes


def test_example_batch_downloads_only_when_asked(tmp_path, monkeypatch):
    asked = []

    def fake_load(name, root=None, download=False, **kwargs):
        asked.append((name, download))
        raise OSError("offline")  # what torchvision's download raises without a network

    monkeypatch.setattr(notebook, "load_dataset", fake_load)
    with pytest.raises(OSError):  # the shapes fallback goes through the same stand-in
        example_batch(2, tmp_path, download=True)
    assert asked[:3] == [("cifar10", False), ("cifar10", True), ("cifar10-subset", False)]
    asked.clear()
    with pytest.raises(OSError):
        example_batch(2, tmp_path, download=False)
    assert ("cifar10", True) not in asked


def test_ensure_runs_never_trains_silently_outside_quick_mode(tmp_path):
    configs = [TrainConfig(dataset="shapes", method="cutmix", seed=1, clean_ce=False)]
    with pytest.raises(FileNotFoundError) as err:
        ensure_runs(configs, tmp_path, quick=False)
    message = str(err.value)
    assert (
        f"regionmix sweep --datasets shapes --methods cutmix --seeds 1 --no-clean-ce "
        f"--runs-dir {tmp_path}"
    ) in message
    assert not any(tmp_path.iterdir())


def test_sweep_commands_name_exactly_what_is_missing():
    configs = [
        TrainConfig(dataset="cifar10", method="region", k=4, alpha=0.4, seed=s) for s in (0, 1)
    ] + [TrainConfig(dataset="cifar100", method="mixup", k=8)]
    assert sweep_commands(configs, "runs") == [
        "regionmix sweep --datasets cifar10 --methods region --seeds 0 1 --k 4 --alpha 0.4 "
        "--runs-dir runs",
        "regionmix sweep --datasets cifar100 --methods mixup --seeds 0 --runs-dir runs",
    ]


def test_every_printed_command_trains_exactly_the_missing_runs(tmp_path, capsys):
    """Each command ``ensure_runs`` prints for missing runs, run as printed, trains those
    runs and no others: holdout, label smoothing, mix_prob, epochs and the clean-CE
    ablation included (the runs notebook 07 asks for hold 5,000 images out)."""
    import shlex

    from regionmix_utils.cli import main
    from regionmix_utils.runs import find_runs

    tiny = {"dataset": "shapes", "epochs": 1, "width": 4, "n_train": 96, "n_test": 20,
            "batch_size": 32}  # fmt: skip
    missing = [
        TrainConfig(method="region", holdout=32, seed=1, **tiny),
        TrainConfig(method="mixup", label_smoothing=0.1, mix_prob=0.5, **tiny),
        TrainConfig(method="region", clean_ce=False, matched_compute=True, k=4, **tiny),
        TrainConfig(method="region-random", sides=(2, 4), lr=0.05, **tiny),
    ]
    assert ensure_runs(missing, tmp_path, quick=False, missing="report") == []
    printed = [line.strip() for line in capsys.readouterr().out.splitlines()
               if line.strip().startswith("regionmix sweep")]  # fmt: skip
    assert len(printed) == len(missing)
    for command in printed:
        assert main([*shlex.split(command)[1:], "--no-progress"]) == 0
    trained = {run.path for run in find_runs(tmp_path)}
    assert trained == {Run.of(tmp_path, c).path for c in missing}
    assert ensure_runs(missing, tmp_path, quick=False) == [Run.of(tmp_path, c) for c in missing]


def test_every_field_of_a_run_is_an_option_and_one_that_is_not_is_named(monkeypatch):
    recipe = TrainConfig(dataset="shapes", milestones=(3, 5), momentum=0.8, weight_decay=1e-4,
                         pad=4, lr_gamma=0.2)  # fmt: skip
    (command,) = sweep_commands([recipe], "runs")  # parsed back to exactly this run
    assert "--milestones 3 5 --lr-gamma 0.2 --pad 4" in command
    from regionmix_utils import cli

    add = cli._add_train_options

    def without_pad(parser):  # a field the command line would lack
        add(parser)
        action = parser._option_string_actions.pop("--pad")
        parser._actions.remove(action)

    monkeypatch.setattr(cli, "_add_train_options", without_pad)
    with pytest.raises(ValueError, match="no option for pad"):
        sweep_commands([recipe], "runs")


def test_ensure_runs_can_report_what_is_missing_and_go_on(tmp_path, capsys):
    from regionmix_utils.train import train

    done = tiny_config(epochs=1, n_train=64, n_test=20)
    train(done, tmp_path, device="cpu", progress=False)
    missing = TrainConfig(dataset="shapes", method="region-random", sides=(2, 8))
    runs = ensure_runs([done, missing], tmp_path, quick=False, missing="report")
    assert runs == [Run.of(tmp_path, done)]
    out = capsys.readouterr().out
    assert "1 of 2 run(s) are missing" in out
    assert "--methods region-random --seeds 0 --sides 2 8" in out


def test_ensure_runs_returns_finished_runs_without_training_them_again(tmp_path):
    from regionmix_utils.train import train

    config = tiny_config(epochs=1, n_train=64, n_test=20)
    train(config, tmp_path, device="cpu", progress=False)
    final = run_dir(tmp_path, config) / "final.pt"
    stamp = final.stat().st_mtime_ns
    assert ensure_runs([config], tmp_path, quick=False) == [Run.of(tmp_path, config)]
    assert final.stat().st_mtime_ns == stamp
