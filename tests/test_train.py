"""Model, training loop, checkpoints, resume after SIGKILL, and the command line."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from regionmix_utils.cli import main
from regionmix_utils.models import build_model
from regionmix_utils.train import (
    CheckpointError,
    TrainConfig,
    quick_config,
    run_dir,
    run_name,
    train,
)

from .conftest import tiny_config

# ------------------------------------------------------------------------------- model


@pytest.mark.parametrize("size, classes", [(32, 10), (64, 200)])
def test_preact_resnet18_shapes(size, classes):
    model = build_model("cifar10", classes, width=8)
    x = torch.rand(2, 3, size, size)
    assert model(x).shape == (2, classes)
    assert model.features(x).shape == (2, 64, size // 8, size // 8)
    assert model.layer4[-1] is not None


def test_normalisation_is_inside_the_model():
    """f(x) for pixels in [0, 1] equals the same network without normalisation on (x - m) / s."""
    model = build_model("cifar10", 10, width=8).eval()
    bare = copy.deepcopy(model)
    bare.mean.zero_()
    bare.std.fill_(1.0)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), bare((x - model.mean) / model.std))
        assert not torch.allclose(model(x), bare(x))


def test_full_width_model_has_the_paper_size():
    params = sum(p.numel() for p in build_model("cifar10", 10).parameters())
    assert 11.1e6 < params < 11.3e6  # PreAct ResNet-18 on CIFAR-10: ~11.2M parameters


# ------------------------------------------------------------------------------ config


def test_run_names_and_folders():
    assert run_name(TrainConfig(method="region", k=4, alpha=0.5)) == "region-k4-a0.5"
    assert run_name(TrainConfig(method="mixup", clean_ce=False)) == "mixup-a1-noclean"
    assert run_name(TrainConfig(method="none")) == "none"
    assert run_name(quick_config(TrainConfig(method="cutmix"))) == "cutmix-a1-quick"
    assert run_dir("runs", TrainConfig(dataset="cifar100", seed=2)) == Path(
        "runs/cifar100/region-k2-a1/seed2"
    )


def test_paper_defaults():
    c = TrainConfig()
    assert (c.lr, c.momentum, c.weight_decay, c.milestones, c.epochs, c.batch_size) == (
        0.1, 0.9, 5e-4, (100, 150), 400, 128,
    )  # fmt: skip
    assert c.clean_ce and c.alpha == 1.0
    with pytest.raises(ValueError, match="method must be one of"):
        TrainConfig(method="manifold")
    with pytest.raises(ValueError, match="alpha must be"):
        TrainConfig(alpha=0)


# ------------------------------------------------------------------------------- loop


def test_a_short_run_writes_everything_and_is_then_skipped(tmp_path, tiny_shapes):
    config = tiny_config()
    result = train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    path = run_dir(tmp_path, config)
    assert result.path == path and not result.skipped
    assert {p.name for p in path.iterdir()} == {"config.json", "metrics.jsonl", "final.pt"}
    lines = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert {"epoch", "train_loss", "test_loss", "test_acc", "lr"} <= set(lines[0])
    assert 0 <= lines[-1]["test_acc"] <= 100
    stored = json.loads((path / "config.json").read_text())
    assert stored["method"] == "region" and "torch" in stored["environment"]
    state = torch.load(path / "final.pt", weights_only=True)
    assert "layer4.1.conv2.weight" in state

    again = train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    assert again.skipped and again.metrics == lines


def test_same_seed_same_weights_on_cpu(tmp_path, tiny_shapes):
    config = tiny_config(epochs=1, method="cutmix")
    a = train(config, tmp_path / "a", device="cpu", splits=tiny_shapes, progress=False)
    b = train(config, tmp_path / "b", device="cpu", splits=tiny_shapes, progress=False)
    for (name, p), q in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name


@pytest.mark.parametrize(
    "changes",
    [{"method": "none"}, {"clean_ce": False}, {"concat_forward": True}, {"method": "mixup"}],
)
def test_every_variant_of_the_loss_trains(tmp_path, tiny_shapes, changes):
    result = train(
        tiny_config(epochs=1, **changes), tmp_path, device="cpu", splits=tiny_shapes, progress=False
    )
    assert torch.isfinite(torch.tensor(result.metrics[0]["train_loss"]))


def test_corrupt_checkpoint_is_reported_and_kept(tmp_path, tiny_shapes):
    config = tiny_config()
    path = run_dir(tmp_path, config)
    path.mkdir(parents=True)
    (path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    assert (path / "last.pt").read_bytes() == b"not a checkpoint"


def test_resuming_with_another_config_is_refused(tmp_path, tiny_shapes):
    config = tiny_config(epochs=1)
    train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    (run_dir(tmp_path, config) / "final.pt").unlink()
    with pytest.raises(ValueError, match="different configuration"):
        train(
            dataclasses.replace(config, lr=0.05),
            tmp_path,
            device="cpu",
            splits=tiny_shapes,
            progress=False,
        )


def test_training_on_shapes_learns(tmp_path):
    """Quick mode on the embedded data: well above the 10% of chance after 4 CPU epochs."""
    config = quick_config(TrainConfig(dataset="shapes", method="region"))
    result = train(config, tmp_path, device="cpu", progress=False)
    accs = [m["test_acc"] for m in result.metrics]
    assert accs[-1] > 35, accs


def _train_command(runs_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "regionmix_utils.cli", "train", "--dataset", "shapes",
        "--method", "region", "--epochs", "3", "--width", "4", "--batch-size", "32",
        "--n-train", "320", "--n-test", "100", "--device", "cpu", "--runs-dir", str(runs_dir),
        "--no-progress",
    ]  # fmt: skip


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # same kernels in every process
    subprocess.run(_train_command(tmp_path / "straight"), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    config = TrainConfig(
        dataset="shapes", method="region", epochs=3, width=4, batch_size=32, n_train=320, n_test=100
    )
    last = run_dir(killed, config) / "last.pt"
    proc = subprocess.Popen(
        _train_command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert last.exists() and not (run_dir(killed, config) / "final.pt").exists()
    epochs_done = len((run_dir(killed, config) / "metrics.jsonl").read_text().splitlines())
    assert 1 <= epochs_done < 3

    subprocess.run(_train_command(killed), check=True, env=env, capture_output=True)
    a = torch.load(run_dir(tmp_path / "straight", config) / "final.pt", weights_only=True)
    b = torch.load(run_dir(killed, config) / "final.pt", weights_only=True)
    for name in a:
        assert torch.equal(a[name], b[name]), name

    def metrics(root):
        rows = [
            json.loads(x)
            for x in (run_dir(root, config) / "metrics.jsonl").read_text().splitlines()
        ]
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert metrics(tmp_path / "straight") == metrics(killed)


# -------------------------------------------------------------------------------- CLI


def test_cli_train_and_sweep(tmp_path, capsys):
    common = [
        "--epochs", "1", "--width", "4", "--n-train", "128", "--n-test", "50",
        "--device", "cpu", "--runs-dir", str(tmp_path), "--no-progress",
    ]  # fmt: skip
    assert main(["train", "--dataset", "shapes", "--method", "mixup", *common]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert (
        main(
            [
                "sweep",
                "--datasets",
                "shapes",
                "--methods",
                "mixup",
                "region",
                "--seeds",
                "0",
                "1",
                *common,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("test accuracy") == 4
    assert len(list(tmp_path.glob("shapes/*/seed*/final.pt"))) == 4


def test_cli_reports_missing_data_clearly(tmp_path, capsys):
    code = main([
        "train", "--dataset", "tinyimagenet", "--method", "region", "--data-dir", str(tmp_path),
        "--runs-dir", str(tmp_path / "runs"), "--device", "cpu", "--no-progress",
    ])  # fmt: skip
    assert code == 2
    assert "regionmix download tinyimagenet" in capsys.readouterr().err
