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

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from regionmix_utils.cli import build_parser, main, sweep_configs
from regionmix_utils.config import TrainConfig, identity, quick_config, run_name
from regionmix_utils.data import ImageSet, Splits
from regionmix_utils.methods import SETTINGS, Method, get_method, registered
from regionmix_utils.models import build_model, tf32_switches
from regionmix_utils.runs import Run, run_dir
from regionmix_utils.train import (
    GPU_CHECKPOINT_EVERY,
    CheckpointError,
    TrainingState,
    checkpoint_interval,
    evaluate,
    loaders,
    one_epoch,
    stream_seeds,
    train,
    training_loss,
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


def test_the_papers_recipe_is_the_default():
    """Section 3 of the paper; each value here is one the paper states."""
    c = TrainConfig()
    assert (c.lr, c.momentum, c.weight_decay, c.milestones, c.lr_gamma) == (
        0.1, 0.9, 5e-4, (100, 150), 0.1,
    )  # fmt: skip
    assert (c.epochs, c.batch_size, c.pad, c.width) == (400, 128, 2, 64)
    assert c.clean_ce and not c.concat_forward and c.k == 2
    # Open choices, documented in the README: alpha 1, no Nesterov, stride-1 stem.
    assert c.alpha == 1.0 and not c.nesterov and c.stem_stride == 1
    with pytest.raises(ValueError, match="method must be one of"):
        TrainConfig(method="puzzlemix")
    with pytest.raises(ValueError, match="alpha must be"):
        TrainConfig(alpha=0)
    with pytest.raises(ValueError, match=r"stem_stride must be one of \(1, 2\)"):
        TrainConfig(stem_stride=3)


def test_every_field_is_declared_with_its_help_and_its_bounds_are_checked():
    """The command line's help and the checks come from the fields' metadata: a value
    just outside a declared bound, or outside the choices, is refused naming the field."""
    for f in dataclasses.fields(TrainConfig):
        if f.name in SETTINGS:  # declared, and checked, by the method registry
            continue
        assert isinstance(f.metadata["help"], str) and f.metadata["help"], f.name
        meta = f.metadata
        bad = [meta["low"] - 1] if "low" in meta else []
        bad += [meta["high"] + 1] if "high" in meta else []
        bad += [meta["below"]] if "below" in meta else []
        bad += ["nothing of the kind"] if "choices" in meta else []
        for value in bad:
            with pytest.raises(ValueError, match=f"^{f.name} must be .*, got "):
                TrainConfig(**{f.name: value})


def test_a_runs_identity_is_what_its_method_reads():
    assert TrainConfig(method="mixup", k=4) == TrainConfig(method="mixup", k=2)
    assert TrainConfig(method="cutmix", k=8).k == 2
    assert TrainConfig(method="none", clean_ce=False, alpha=0.2) == TrainConfig(method="none")
    assert TrainConfig(method="region", k=4) != TrainConfig(method="region", k=2)
    assert TrainConfig(method="mixup", alpha=0.4) != TrainConfig(method="mixup")


def test_quick_mode_is_what_its_help_says():
    quick = quick_config(TrainConfig())
    assert (quick.epochs, quick.width, quick.n_train, quick.n_test) == (4, 8, 2000, 500)
    help_text = " ".join(build_parser().format_help().split())
    sweep_help = " ".join(
        build_parser()._subparsers._group_actions[0].choices["sweep"].format_help().split()
    )
    assert "4 epochs, width 8, 2000 train / 500 test images" in sweep_help
    assert "regionmix" in help_text


# --------------------------------------------------------------------- the recipe


def _state(config: TrainConfig, splits) -> TrainingState:
    return TrainingState.build(config, splits, torch.device("cpu"))


def test_optimiser_and_schedule_are_the_papers(tiny_shapes):
    state = _state(TrainConfig(dataset="shapes", width=4), tiny_shapes)
    assert type(state.optimizer) is torch.optim.SGD
    group = state.optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (
        0.1, 0.9, 5e-4, False,
    )  # fmt: skip
    assert group["dampening"] == 0
    assert isinstance(state.scheduler, torch.optim.lr_scheduler.MultiStepLR)


def test_the_lr_used_each_epoch_steps_down_after_the_milestones(tmp_path, tiny_shapes):
    """lr 0.1 for epochs 1-2, 0.01 for 3-4, 0.001 for 5: divided by 10 *after* epochs 2
    and 4, stepped once an epoch (a per-batch schedule would reach 0.001 in epoch 1)."""
    config = tiny_config(epochs=5, milestones=(2, 4))
    result = train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    assert [m["lr"] for m in result.metrics] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_batches_are_padded_by_two_cropped_and_full_size(tiny_shapes):
    white = ImageSet(
        torch.full((256, 3, 32, 32), 255, dtype=torch.uint8), tiny_shapes.train.labels,
        tiny_shapes.train.classes,
    )  # fmt: skip
    splits = Splits("shapes", white, tiny_shapes.test)
    config = TrainConfig(dataset="shapes", width=4, batch_size=64)
    train_loader, _ = loaders(_state(config, splits), splits)
    batches = list(train_loader)
    assert len(batches) == 4 and all(x.shape == (64, 3, 32, 32) for x, _ in batches)
    images = torch.cat([x for x, _ in batches])
    black_rows = (images[:, 0].amax(2) == 0).sum(1)  # zero padding shows as black rows
    assert black_rows.max() == 2 and (black_rows == 0).any()
    black_cols = (images[:, 0].amax(1) == 0).sum(1)
    assert black_cols.max() == 2 and (black_cols == 0).any()


def _batch(n=8, classes=10):
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 32, 32, generator=gen), torch.arange(n) % classes


@pytest.mark.parametrize("method", ["region", "mixup", "cutmix"])
def test_the_loss_is_clean_ce_plus_mixed_ce(method):
    model = build_model("shapes", 10, width=4)
    images, labels = _batch()
    config = TrainConfig(dataset="shapes", method=method)
    mixed = get_method(method).mix(images, labels, 10, config, torch.Generator().manual_seed(1))
    loss = training_loss(model, config, images, labels, mixed)
    clean = F.cross_entropy(model(images), labels)
    mixed_ce = -(mixed.targets * F.log_softmax(model(mixed.images), 1)).sum(1).mean()
    torch.testing.assert_close(loss.total, clean + mixed_ce)
    torch.testing.assert_close(loss.clean, clean)
    ablated = training_loss(model, TrainConfig(method=method, clean_ce=False), images, labels,
                            mixed)  # fmt: skip
    torch.testing.assert_close(ablated.total, mixed_ce)
    assert ablated.clean is None
    plain = training_loss(model, TrainConfig(method="none"), images, labels, None)
    torch.testing.assert_close(plain.total, clean)


def test_training_steps_run_in_train_mode_and_evaluation_leaves_it(tiny_shapes):
    config = tiny_config(epochs=2)
    state = _state(config, tiny_shapes)
    train_loader, test_loader = loaders(state, tiny_shapes)
    modes = []
    state.model.register_forward_pre_hook(lambda module, _: modes.append(module.training))
    for epoch in (1, 2):
        modes.clear()
        record = one_epoch(state, train_loader, test_loader, epoch, progress=False)
        assert "test_acc" in record
        steps = 2 * len(train_loader)  # clean and mixed forward passes
        assert modes[:steps] == [True] * steps, f"epoch {epoch} trained in eval mode"
        assert not any(modes[steps:]), "evaluation ran in train mode"
    model = state.model.train()
    evaluate(model, test_loader)
    assert model.training


def test_evaluation_is_float32_even_under_autocast(tiny_shapes):
    state = _state(tiny_config(), tiny_shapes)
    _, test_loader = loaders(state, tiny_shapes)
    dtypes = []
    state.model.conv1.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        evaluate(state.model, test_loader)
        state.model(tiny_shapes.test.images[:2].float())  # the hook does see autocast
    assert set(dtypes[:-1]) == {torch.float32} and dtypes[-1] == torch.bfloat16


def test_arguments_are_checked_once_before_training(tmp_path, tiny_shapes):
    with pytest.raises(ValueError, match=r"k must be between 1 and min\(H, W\) = 32"):
        train(tiny_config(k=33), tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    with pytest.raises(ValueError, match="batch_size 512 is larger than the 256"):
        train(tiny_config(batch_size=512), tmp_path / "b", device="cpu", splits=tiny_shapes,
              progress=False)  # fmt: skip


# A training step never waits for the host on a GPU: tests/test_gpu_path.py checks every
# method on both AMP paths under CUDA's sync debug mode.


# --------------------------------------------------------------- paired randomness


def test_every_method_with_a_seed_sees_the_same_batches_and_starts_alike(tmp_path, tiny_shapes):
    """Common random numbers: data order and augmentation do not depend on the method."""
    seen: dict[str, list] = {}

    def recording(name: str, inner: str) -> Method:
        base = get_method(inner)

        def apply(images, labels, params, num_classes, *, validate):
            seen[name].append((images.clone(), labels.clone()))
            return base.apply(images, labels, params, num_classes, validate=validate)

        return Method(name=name, label=name, help="", reads=base.reads, sample=base.sample,
                      apply=apply)  # fmt: skip

    firsts = {}
    for name, inner in (("rec-region", "region"), ("rec-cutmix", "cutmix")):
        seen[name] = []
        with registered(recording(name, inner)):
            config = tiny_config(method=name, epochs=2, seed=3)
            firsts[name] = _state(config, tiny_shapes).model.state_dict()
            train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    # The first call is the one-off argument check on two images; then the training steps.
    assert all(len(calls[0][1]) == 2 for calls in seen.values())
    a, b = seen["rec-region"][1:], seen["rec-cutmix"][1:]
    assert len(a) == len(b) == 2 * (256 // 32)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    for name, p in firsts["rec-region"].items():
        assert torch.equal(p, firsts["rec-cutmix"][name]), name
    other_seed = tiny_config(seed=4)
    assert not torch.equal(
        _state(other_seed, tiny_shapes).model.conv1.weight, firsts["rec-region"]["conv1.weight"]
    )


def test_seeds_of_the_two_streams_differ_and_follow_the_run_seed_and_epoch():
    assert stream_seeds(0, 1) == stream_seeds(0, 1)
    assert len({*stream_seeds(0, 1), *stream_seeds(1, 1), *stream_seeds(0, 2)}) == 6


# ------------------------------------------------------------------------------- loop


def test_a_short_run_writes_everything_and_is_then_skipped(tmp_path, tiny_shapes):
    config = tiny_config()
    result = train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    path = run_dir(tmp_path, config)
    assert result.path == path and not result.skipped
    # (the lock file stays: deleting a lock file races with a process opening it)
    assert {p.name for p in path.iterdir()} == {
        "config.json",
        "metrics.jsonl",
        "final.pt",
        "train.lock",
    }
    lines = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert {"epoch", "train_loss", "train_clean_loss", "train_mixed_loss", "test_loss",
            "test_acc", "lr"} <= set(lines[0])  # fmt: skip
    assert lines[0]["train_loss"] == pytest.approx(
        lines[0]["train_clean_loss"] + lines[0]["train_mixed_loss"]
    )
    assert 0 <= lines[-1]["test_acc"] <= 100
    stored = json.loads((path / "config.json").read_text())
    assert stored["method"] == "region" and "torch" in stored["environment"]
    assert [h["epoch"] for h in stored["history"]] == [0]
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
    [{"method": "none"}, {"clean_ce": False}, {"concat_forward": True}, {"method": "mixup"},
     {"nesterov": True, "stem_stride": 2}],
)  # fmt: skip
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
    with pytest.raises(CheckpointError, match="cannot be used"):
        train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    assert (path / "last.pt").read_bytes() == b"not a checkpoint"


def test_resuming_with_another_config_is_refused(tmp_path, tiny_shapes):
    config = tiny_config(epochs=1)
    train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    (run_dir(tmp_path, config) / "final.pt").unlink()
    with pytest.raises(ValueError, match=r"different configuration .*differs in lr"):
        train(
            dataclasses.replace(config, lr=0.05),
            tmp_path,
            device="cpu",
            splits=tiny_shapes,
            progress=False,
        )
    # How a run executes is not what it computes: AMP or compile may change on resume.
    train(dataclasses.replace(config, amp=False, eval_every=2), tmp_path, device="cpu",
          splits=tiny_shapes, progress=False)  # fmt: skip


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
    # What the resume starts from is last.pt (written atomically, metrics inside); the
    # kill may land before that epoch's metrics.jsonl is written, so read the checkpoint.
    epochs_done = len(torch.load(last, weights_only=True)["metrics"])
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
    record = Run(run_dir(killed, config)).record
    assert [h["epoch"] for h in record["history"]] == [0, epochs_done]
    assert record["environment"] == record["history"][0]["environment"]  # the first start's


# -------------------------------------------------------------------------------- CLI


SMALL = ["--epochs", "1", "--width", "4", "--batch-size", "32", "--n-train", "128",
         "--n-test", "50", "--device", "cpu", "--no-progress"]  # fmt: skip


def test_cli_train_and_sweep(tmp_path, capsys):
    common = [*SMALL, "--runs-dir", str(tmp_path)]
    assert main(["train", "--dataset", "shapes", "--method", "mixup", *common]) == 0
    assert "test accuracy" in capsys.readouterr().out
    sweep = ["sweep", "--datasets", "shapes", "--methods", "mixup", "region", "--seeds", "0", "1"]
    assert main([*sweep, *common]) == 0
    out = capsys.readouterr().out
    assert out.count("test accuracy") == 4
    assert len(list(tmp_path.glob("shapes/*/seed*/final.pt"))) == 4


def test_exploring_k_after_the_default_sweep_reuses_the_mixup_run(tmp_path, capsys):
    """The sequence a researcher runs: the default sweep, then the same with --k 4."""
    common = ["--quick", *SMALL, "--runs-dir", str(tmp_path)]
    sweep = ["sweep", "--datasets", "shapes", "--methods", "mixup", "region", "--seeds", "0"]
    assert main([*sweep, *common]) == 0
    mixup = Run.of(tmp_path, quick_config(TrainConfig(dataset="shapes", method="mixup")))
    stamp = (mixup.path / "final.pt").stat().st_mtime_ns
    assert main([*sweep, "--k", "4", *common]) == 0, capsys.readouterr().err
    assert (mixup.path / "final.pt").stat().st_mtime_ns == stamp, "mixup was trained again"
    folders = sorted(p.parent.parent.name for p in tmp_path.glob("shapes/*/seed0/final.pt"))
    assert folders == ["mixup-a1-quick", "region-k2-a1-quick", "region-k4-a1-quick"]
    assert main(["sweep", "--datasets", "shapes", "--methods", "none", "--seeds", "0",
                 "--no-clean-ce", *common]) == 0  # fmt: skip
    assert main(["sweep", "--datasets", "shapes", "--methods", "none", "--seeds", "0",
                 *common]) == 0  # fmt: skip
    assert len(list(tmp_path.glob("shapes/none*/seed0/final.pt"))) == 1
    capsys.readouterr()
    # A genuinely different run in the same folders is refused (each run reports it).
    assert main([*sweep, "--lr", "0.05", *common]) == 1
    err = capsys.readouterr().err
    assert err.count("holds a different configuration") == 2


def test_sweep_takes_a_grid_of_settings(capsys):
    args = build_parser().parse_args([
        "sweep", "--datasets", "shapes", "--methods", "mixup", "region", "cutmix",
        "--k", "2", "4", "--alpha", "0.4", "1", "--seeds", "0", "1",
    ])  # fmt: skip
    configs = sweep_configs(args)
    region = [c for c in configs if c.method == "region"]
    assert len(region) == 2 * 2 * 2  # k x alpha x seeds
    assert len([c for c in configs if c.method == "mixup"]) == 2 * 2  # alpha x seeds, no k
    assert len(configs) == 8 + 4 + 4
    assert {(c.k, c.alpha) for c in region} == {(2, 0.4), (2, 1.0), (4, 0.4), (4, 1.0)}


def test_cli_reports_missing_data_clearly(tmp_path, capsys):
    code = main([
        "train", "--dataset", "tinyimagenet", "--method", "region", "--data-dir", str(tmp_path),
        "--runs-dir", str(tmp_path / "runs"), "--device", "cpu", "--no-progress",
    ])  # fmt: skip
    assert code == 2
    assert "regionmix download tinyimagenet" in capsys.readouterr().err


# ------------------------------------------------------------------- checkpoint interval


def test_the_checkpoint_interval_is_an_execution_setting():
    """checkpoint_every and download say how a run executes: no new folder names, the
    same run, and a config.json written before they existed still loads."""
    config = TrainConfig(method="region", k=4)
    changed = dataclasses.replace(config, checkpoint_every=7, download=True)
    assert run_name(changed) == run_name(config) == "region-k4-a1"
    assert identity(changed) == identity(config)
    old = {k: v for k, v in dataclasses.asdict(config).items()
           if k not in ("checkpoint_every", "download")}  # fmt: skip
    assert TrainConfig.from_json(old) == config
    assert checkpoint_interval(config, torch.device("cpu")) == 1
    assert checkpoint_interval(config, torch.device("cuda")) == GPU_CHECKPOINT_EVERY > 1
    assert checkpoint_interval(changed, torch.device("cuda")) == 7
    with pytest.raises(ValueError, match="checkpoint_every must be None or an integer >= 1"):
        TrainConfig(checkpoint_every=0)


class Interrupted(Exception):
    """Stands for the end of a session after some epoch."""


def test_a_run_resumes_from_its_last_checkpoint_and_matches_an_uninterrupted_one(
    tmp_path, tiny_shapes
):
    """Checkpoints every 2 epochs of 5; stopped after epoch 3: last.pt and metrics.jsonl
    hold epochs 1-2, the resume trains 3-5 again, and the run is the uninterrupted one
    bit for bit (weights and metrics); final.pt is written though 5 is odd."""
    config = tiny_config(epochs=5, checkpoint_every=2, n_train=64, n_test=20, batch_size=16)
    straight = train(config, tmp_path / "straight", device="cpu", splits=tiny_shapes,
                     progress=False)  # fmt: skip
    saved = []

    def stop_after_3(record):
        path = run_dir(tmp_path / "cut", config)
        saved.append(((path / "last.pt").exists(), len(Run(path).metrics())))
        if record["epoch"] == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(config, tmp_path / "cut", device="cpu", splits=tiny_shapes, progress=False,
              on_epoch=stop_after_3)  # fmt: skip
    assert saved == [(False, 0), (True, 2), (True, 2)]
    run = Run(run_dir(tmp_path / "cut", config))
    assert len(torch.load(run.path / "last.pt", weights_only=True)["metrics"]) == 2
    resumed = train(config, tmp_path / "cut", device="cpu", splits=tiny_shapes, progress=False)
    assert [h["epoch"] for h in run.record["history"]] == [0, 2]
    assert run.finished and not (run.path / "last.pt").exists()
    for (name, p), q in zip(straight.model.state_dict().items(),
                            resumed.model.state_dict().values(), strict=True):  # fmt: skip
        assert torch.equal(p, q), name
    final = torch.load(run.path / "final.pt", weights_only=True)
    assert all(torch.equal(final[k], v) for k, v in straight.model.state_dict().items())

    def without_seconds(metrics):
        return [{k: v for k, v in m.items() if k != "seconds"} for m in metrics]

    assert without_seconds(run.metrics()) == without_seconds(straight.metrics)
    assert [m["epoch"] for m in run.metrics()] == [1, 2, 3, 4, 5]


def test_every_two_epochs_a_checkpoint_and_every_stop_resumable_to_the_same_run(
    tmp_path, tiny_shapes
):
    """``checkpoint_every=2`` over 4 epochs, trained in three calls that stop after epochs
    1, 3 and 4: last.pt is written after epoch 2 (the interval) and after the last epoch
    of each call that stops early (1 and 3, off the interval), never after epoch 3 inside
    the call that goes on; final.pt ends the run. Each call resumes where the one before
    stopped, and the run is the uninterrupted one (metrics and weights)."""
    config = tiny_config(epochs=4, checkpoint_every=2, n_train=64, n_test=20)
    straight = train(config, tmp_path / "straight", device="cpu", splits=tiny_shapes,
                     progress=False)  # fmt: skip
    run = Run(run_dir(tmp_path / "cut", config))

    def saved() -> int | None:
        """The epochs last.pt holds (what a resume starts from), None without one."""
        if not (run.path / "last.pt").exists():
            return None
        return len(torch.load(run.path / "last.pt", weights_only=True)["metrics"])

    during, after = [], []

    def watch(record: dict) -> None:
        during.append((record["epoch"], saved()))

    for stop in (1, 3, 4):
        train(config, tmp_path / "cut", device="cpu", splits=tiny_shapes, progress=False,
              stop_after=stop, on_epoch=watch)  # fmt: skip
        after.append((saved(), len(run.metrics()), run.finished))
    assert during == [(1, None), (2, 2), (3, 2), (4, 3)]
    assert after == [(1, 1, False), (3, 3, False), (None, 4, True)]
    assert [h["epoch"] for h in run.record["history"]] == [0, 1, 3]

    def without_seconds(metrics):
        return [{k: v for k, v in m.items() if k != "seconds"} for m in metrics]

    assert without_seconds(run.metrics()) == without_seconds(straight.metrics)
    final = torch.load(run.path / "final.pt", weights_only=True)
    for name, weights in straight.model.state_dict().items():
        assert torch.equal(final[name], weights), name


def test_cli_takes_the_checkpoint_interval_and_the_download_switch():
    args = build_parser().parse_args([
        "train", "--dataset", "cifar10", "--method", "region", "--checkpoint-every", "5",
        "--download",
    ])  # fmt: skip
    config = sweep_configs(build_parser().parse_args(
        ["sweep", "--datasets", "cifar10", "--methods", "region", "--seeds", "0",
         "--checkpoint-every", "5", "--download"]
    ))[0]  # fmt: skip
    assert (args.checkpoint_every, args.download) == (5, True)
    assert (config.checkpoint_every, config.download) == (5, True)
    defaults = sweep_configs(build_parser().parse_args(
        ["sweep", "--datasets", "cifar10", "--methods", "region", "--seeds", "0"]
    ))[0]  # fmt: skip
    assert (defaults.checkpoint_every, defaults.download) == (None, False)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--dataset", "cifar10", "--method", "region",
                                   "--checkpoint-every", "0"])  # fmt: skip


# --------------------------------------------------------------------------- download


@pytest.mark.parametrize("dataset", ["cifar10", "tinyimagenet"])
def test_training_downloads_its_dataset_when_asked(tmp_path, monkeypatch, capsys, dataset):
    """download=True (``--download``, notebook 02 on Colab): the missing dataset is fetched
    (the network stands replaced by writing the archive's files; torchvision's MD5 check
    and the zip's layout check stay), saying so; without it the run stops, saying how to
    get the data."""
    from torchvision.datasets import CIFAR10

    from regionmix_utils import data
    from regionmix_utils.data import DatasetMissingError

    from .test_data import _write_cifar_batches, make_tinyimagenet

    calls = []
    if dataset == "cifar10":
        rng = np.random.default_rng(0)
        arrays = {
            "x_train": rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8),
            "y_train": np.arange(100) % 10,
            "x_test": rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
            "y_test": np.arange(20) % 10,
        }

        def fetch(self):  # CIFAR10.download, less the network
            calls.append(self.root)
            if not (Path(self.root) / "cifar-10-batches-py").exists():
                _write_cifar_batches(Path(self.root), arrays, monkeypatch)

        monkeypatch.setattr(CIFAR10, "download", fetch)
    else:

        def fetch(root=None, *args, **kwargs):  # data.download_tinyimagenet, less the network
            calls.append(root)
            print("Tiny ImageNet is not under ...: downloading")
            return make_tinyimagenet(Path(root), per_class=8)

        monkeypatch.setattr(data, "download_tinyimagenet", fetch)
    config = TrainConfig(dataset=dataset, method="region", epochs=1, width=4, batch_size=8,
                         n_test=2 if dataset == "tinyimagenet" else 20)  # fmt: skip
    with pytest.raises(DatasetMissingError, match=f"regionmix download {dataset}"):
        train(config, tmp_path / "runs", tmp_path / "data", "cpu", progress=False)
    assert calls == []
    capsys.readouterr()
    asked = dataclasses.replace(config, download=True)
    result = train(asked, tmp_path / "runs", tmp_path / "data", "cpu", progress=False)
    assert calls and result.metrics[0]["epoch"] == 1
    assert "download" in capsys.readouterr().out


# ------------------------------------------------------------------ evaluation, sweeps


def test_evaluation_reads_its_sums_back_once(tiny_shapes, monkeypatch):
    """Loss and accuracy accumulate on the device; one read of each at the end, however
    many test batches (a read per batch would make the GPU wait twice a batch)."""
    state = _state(tiny_config(), tiny_shapes)
    _, test_loader = loaders(state, tiny_shapes)
    test_loader.batch_size = 10  # 100 test images: 10 batches
    reads = []
    for name in ("__float__", "__int__", "item", "tolist"):
        original = getattr(torch.Tensor, name)

        def spy(tensor, *args, original=original, name=name):
            reads.append(name)
            return original(tensor, *args)

        monkeypatch.setattr(torch.Tensor, name, spy)
    loss, acc = evaluate(state.model, test_loader)
    assert len(reads) <= 2, reads
    monkeypatch.undo()
    with torch.no_grad():
        logits = state.model.eval()(tiny_shapes.test.images.float() / 255)
    assert loss == pytest.approx(float(F.cross_entropy(logits, tiny_shapes.test.labels)))
    assert acc == pytest.approx(100 * float((logits.argmax(1) == tiny_shapes.test.labels)
                                            .float().mean()))  # fmt: skip


def test_evaluation_runs_without_tf32_and_restores_the_setting(tiny_shapes):
    """float32 evaluation is float32 on Ampere and later GPUs too, where cuDNN
    convolutions otherwise run in TF32 (10-bit mantissas) by default."""
    state = _state(tiny_config(), tiny_shapes)
    _, test_loader = loaders(state, tiny_shapes)
    seen = []
    flags = lambda: tuple(getattr(o, name) for o, name, _ in tf32_switches())  # noqa: E731
    state.model.conv1.register_forward_hook(lambda *_: seen.append(flags()))
    before = flags()
    evaluate(state.model, test_loader)
    assert seen and set(seen) == {tuple(value for *_, value in tf32_switches())}
    assert flags() == before


def test_a_sweep_keeps_no_model_of_its_finished_runs(tmp_path, tiny_shapes, monkeypatch):
    """Each finished run's model is let go before the next run starts (on a GPU it would
    otherwise stay in memory for the rest of the sweep)."""
    import gc
    import weakref

    from regionmix_utils import sweeps

    models = []

    def training(config, *args, **kwargs):
        result = train(config, *args, splits=tiny_shapes, **{**kwargs, "progress": False})
        models.append(weakref.ref(result.model))
        return result

    monkeypatch.setattr(sweeps, "train", training)
    configs = [tiny_config(epochs=1, method=m) for m in ("mixup", "region")]
    report = sweeps.sweep(configs, tmp_path, device="cpu", progress=False)
    gc.collect()
    assert report.ok and len(report.results) == 2
    assert all(r.model is None for r in report.results)
    assert all(ref() is None for ref in models), "a finished run's model is still alive"
