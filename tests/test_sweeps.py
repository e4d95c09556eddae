"""Many processes, one runs folder: claims, local workers, submitit job arrays, status."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from regionmix_utils.cli import build_parser, main, sweep_configs
from regionmix_utils.config import TrainConfig
from regionmix_utils.runs import Run, RunBusyError
from regionmix_utils.sweeps import format_status, status, submit, sweep
from regionmix_utils.train import train

from .conftest import tiny_config

SMALL = ["--epochs", "2", "--width", "4", "--batch-size", "32", "--n-train", "256",
         "--n-test", "100", "--device", "cpu", "--no-progress"]  # fmt: skip
FOUR_RUNS = ["--datasets", "shapes", "--methods", "mixup", "region", "--seeds", "0", "1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "regionmix_utils.cli", *args]


def _configs(runs_dir: Path, *args: str) -> list[TrainConfig]:
    parsed = build_parser().parse_args(["sweep", *FOUR_RUNS, *SMALL, "--runs-dir",
                                        str(runs_dir), *args])  # fmt: skip
    return sweep_configs(parsed)


def _trained_exactly_once(run: Run) -> bool:
    """Finished, every epoch once in its metrics, and started once (never resumed)."""
    epochs = [m["epoch"] for m in run.metrics()]
    return (
        run.finished
        and epochs == list(range(1, run.config.epochs + 1))
        and [h["epoch"] for h in run.record["history"]] == [0]
    )


def test_two_sweeps_started_together_share_the_runs(tmp_path):
    command = _cli("sweep", *FOUR_RUNS, *SMALL, "--runs-dir", str(tmp_path))
    first = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    runs = [Run.of(tmp_path, c) for c in _configs(tmp_path)]
    assert len(runs) == 4 and all(_trained_exactly_once(r) for r in runs)
    assert not any(r.is_claimed() for r in runs)


def test_a_claimed_run_is_refused_with_who_holds_it(tmp_path, capsys):
    config = tiny_config(epochs=1)
    run = Run.of(tmp_path, config)
    with run.claimed():
        done = subprocess.run(
            _cli("train", "--dataset", "shapes", "--method", "region", "--epochs", "1",
                 "--width", "4", "--batch-size", "32", "--n-train", "256", "--n-test", "100",
                 "--device", "cpu", "--runs-dir", str(tmp_path), "--no-progress"),
            env=ENV, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.is_claimed()
    assert done.returncode == 2
    assert "is being trained by another process since 2" in done.stderr
    assert f"pid {os.getpid()}" in done.stderr
    assert not run.is_claimed() and not (run.path / "train.lock.json").exists()
    with run.claimed(), pytest.raises(RunBusyError, match="being trained by another"):
        with Run(run.path).claimed(wait_s=0.1):  # a second claim, same process, other handle
            pass


def test_a_sigkilled_sweep_leaves_no_stale_claim_and_resumes(tmp_path):
    command = _cli("sweep", "--datasets", "shapes", "--methods", "region", "--seeds", "0",
                   *SMALL, "--epochs", "4", "--runs-dir", str(tmp_path))  # fmt: skip
    (config,) = [c for c in _configs(tmp_path, "--epochs", "4") if c.method == "region"][:1]
    run = Run.of(tmp_path, config)
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (run.path / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run.is_claimed()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not run.finished and not run.is_claimed(), "the killed process left its claim"
    assert "stopped" in format_status(status([config], tmp_path))
    assert subprocess.run(command, env=ENV, capture_output=True, timeout=300).returncode == 0
    history = [h["epoch"] for h in run.record["history"]]
    assert run.finished and history[0] == 0 and len(history) == 2 and history[1] >= 1
    assert [m["epoch"] for m in run.metrics()] == [1, 2, 3, 4]


# Holds one run's claim until another run is finished (or two minutes pass), as a
# second sweep training it would.
HOLD_UNTIL_FINISHED = """
import sys, time
from pathlib import Path
from regionmix_utils.runs import Run
held, other = Path(sys.argv[1]), Path(sys.argv[2])
with Run(held).claimed():
    print("held", flush=True)
    deadline = time.monotonic() + 120
    while not (other / "final.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
"""


def test_a_sweep_comes_back_to_a_run_another_process_holds(tmp_path):
    held, free = tiny_config(epochs=1, seed=0), tiny_config(epochs=1, seed=1)
    held_run, free_run = Run.of(tmp_path, held), Run.of(tmp_path, free)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_UNTIL_FINISHED, str(held_run.path), str(free_run.path)],
        env=ENV, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        report = sweep([held, free], tmp_path, device="cpu", progress=False, poll_s=0.05)
    finally:
        holder.wait(timeout=150)
    assert report.ok
    assert sorted(r.path for r in report.results) == sorted([held_run.path, free_run.path])
    assert _trained_exactly_once(held_run) and _trained_exactly_once(free_run)


def test_two_cpu_workers_train_every_run_once(tmp_path, capsys):
    code = main(["sweep", *FOUR_RUNS, *SMALL, "--runs-dir", str(tmp_path), "--workers", "2"])
    assert code == 0
    assert "4 runs on 2 workers" in capsys.readouterr().out
    runs = [Run.of(tmp_path, c) for c in _configs(tmp_path)]
    assert len(runs) == 4 and all(_trained_exactly_once(r) for r in runs)


def test_a_studys_workers_train_on_the_device_it_was_given(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(
        "regionmix_utils.sweeps.run_workers", lambda argv, *a, **k: asked.append(argv)
    )
    main(["study", "cpu-gated", "--as-worker", "--workers", "2", "--device", "cpu",
          "--runs-dir", str(tmp_path)])  # fmt: skip
    (argv,) = asked
    assert build_parser().parse_args(argv).device == "cpu"


def test_a_failing_run_is_reported_and_the_others_go_on(tmp_path, capsys):
    args = ["sweep", "--datasets", "shapes", "--methods", "mixup", "region", "--seeds", "0",
            *SMALL, "--epochs", "1", "--runs-dir", str(tmp_path)]  # fmt: skip
    mixup, region = sweep_configs(build_parser().parse_args(args))
    train(dataclasses.replace(mixup, lr=0.05), tmp_path, device="cpu", progress=False)
    assert main(args) == 1  # the mixup folder holds another lr: refused, reported
    err = capsys.readouterr().err
    assert "holds a different configuration" in err and "1 of 2 runs failed" in err
    rows = status([mixup, region], tmp_path)
    assert [r["state"] for r in rows] == ["conflict", "finished"]
    assert "differs in lr" in rows[0]["detail"]


def test_status_says_where_each_run_stands(tmp_path):
    configs = _configs(tmp_path)
    _, training, stopped, failed = (Run.of(tmp_path, c) for c in configs)
    train(configs[0], tmp_path, device="cpu", progress=False)
    for run, config in ((stopped, configs[2]), (failed, configs[3])):
        run.record_config(config)
    (stopped.path / "last.pt").write_bytes(b"")
    stopped.write_metrics([{"epoch": 1}])
    failed.record_failure(ValueError("no such dataset"))
    with training.claimed():
        rows = status(configs, tmp_path)
    states = [r["state"] for r in rows]
    assert states == ["finished", "training", "stopped", "failed"]
    assert f"pid {os.getpid()}" in rows[1]["detail"]
    assert rows[2]["detail"].startswith("at epoch 1/2") and "no such dataset" in rows[3]["detail"]
    assert "4 runs: 1 finished, 1 training, 1 stopped, 1 failed" in format_status(rows)


def test_a_switched_methods_own_parameters_reach_its_runs(tmp_path, capsys):
    """``--switch fmix:0.5 --decay-power 2`` on a Region Mixup sweep: the batches that
    switch to FMix mix with decay power 2, not FMix's default 3. The run's config.json
    says so, and FMix mixes a batch under the run's config as it does with d = 2."""
    import json

    import torch

    from regionmix_utils.methods import get_method
    from regionmix_utils.runs import find_runs

    words = ["--switch", "fmix:0.5", "--decay-power", "2", *SMALL, "--epochs", "1",
             "--n-train", "64", "--n-test", "20", "--runs-dir", str(tmp_path)]  # fmt: skip
    assert main(["sweep", "--datasets", "shapes", "--methods", "region", "--seeds", "0",
                 *words]) == 0  # fmt: skip
    (run,) = find_runs(tmp_path)
    stored = json.loads((run.path / "config.json").read_text())
    assert stored["method"] == "region" and stored["switch"] == [["fmix", 0.5]]
    assert stored["params"] == [["decay_power", 2.0]]
    assert run.path.parent.name == "region-k2-a1-swfmix0.5-d2"
    fmix = get_method("fmix")
    assert fmix.settings_of(run.config) == {"alpha": 1.0, "decay_power": 2.0}
    images, labels = torch.rand(4, 3, 16, 16), torch.arange(4)

    def mixed(settings) -> torch.Tensor:
        return fmix.mix(images, labels, 10, settings, torch.Generator().manual_seed(0)).images

    assert torch.equal(mixed(run.config), mixed({"alpha": 1.0, "decay_power": 2.0}))
    assert not torch.equal(mixed(run.config), mixed({"alpha": 1.0, "decay_power": 3.0}))
    # `regionmix train` with the same words names the same run: found finished.
    capsys.readouterr()
    assert main(["train", "--dataset", "shapes", "--method", "region", *words]) == 0
    assert "already finished" in capsys.readouterr().out


def test_the_commands_printed_for_missing_runs_train_only_the_missing_ones(tmp_path, capsys):
    """With some of the runs asked for finished and some not, the ``regionmix sweep``
    commands printed (``missing="report"``) or raised (``"raise"``) name the missing runs
    only: a finished seed of the same configuration is left out of its command."""
    import shlex

    from regionmix_utils.notebook import ensure_runs

    tiny = {"dataset": "shapes", "epochs": 1, "width": 4, "n_train": 64, "n_test": 20,
            "batch_size": 32}  # fmt: skip
    done = TrainConfig(method="region", seed=0, **tiny)
    missing = [TrainConfig(method="region", seed=1, **tiny),
               TrainConfig(method="mixup", seed=0, **tiny)]  # fmt: skip
    train(done, tmp_path, device="cpu", progress=False)
    capsys.readouterr()
    assert ensure_runs([done, *missing], tmp_path, quick=False, missing="report") == [
        Run.of(tmp_path, done)
    ]
    out = capsys.readouterr().out
    assert "2 of 3 run(s) are missing" in out
    printed = [line.strip() for line in out.splitlines()
               if line.strip().startswith("regionmix ")]  # fmt: skip

    def runs_of(commands: list[str]) -> set[Path]:
        parsed = [build_parser().parse_args(shlex.split(command)[1:]) for command in commands]
        return {Run.of(tmp_path, c).path for args in parsed for c in sweep_configs(args)}

    assert len(printed) == 2 and "--seeds 1 " in printed[0]
    assert runs_of(printed) == {Run.of(tmp_path, c).path for c in missing}
    with pytest.raises(FileNotFoundError) as raised:
        ensure_runs([done, *missing], tmp_path, quick=False)
    commands = [line.strip() for line in str(raised.value).splitlines()
                if line.strip().startswith("regionmix ")]  # fmt: skip
    assert commands == printed


# ----------------------------------------------------------------------- submitit


@pytest.mark.slow
def test_a_job_array_on_submitits_local_executor(tmp_path, capsys):
    """Real subprocesses through submitit: two runs as an array, then status."""
    submitit = pytest.importorskip("submitit")
    configs = [c for c in _configs(tmp_path) if c.seed == 0]
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(timeout_min=5)
    jobs = submit(configs, tmp_path, None, executor)
    assert len(jobs) == 2
    assert {r["state"] for r in status(configs, tmp_path)} <= {"submitted", "training",
                                                               "finished"}  # fmt: skip
    accuracies = [job.result() for job in jobs]
    assert all(0 <= a <= 100 for a in accuracies)
    assert all(_trained_exactly_once(Run.of(tmp_path, c)) for c in configs)
    assert main(["sweep", *FOUR_RUNS, *SMALL, "--runs-dir", str(tmp_path), "--status"]) == 0
    out = capsys.readouterr().out
    assert "4 runs: 2 finished, 2 not started" in out
    assert submit(configs, tmp_path, None, executor) == []  # finished: nothing to submit


@pytest.mark.slow
def test_an_interrupted_job_is_requeued_and_resumes(tmp_path):
    """submitit's preemption signal mid-run: the job checkpoints by requeueing itself
    and the new attempt resumes from last.pt, every epoch trained once."""
    submitit = pytest.importorskip("submitit")
    (config,) = [c for c in _configs(tmp_path, "--epochs", "6") if c.method == "region"][:1]
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(timeout_min=5)
    (job,) = submit([config], tmp_path, None, executor)
    run = Run.of(tmp_path, config)
    deadline = time.monotonic() + 120
    while len(run.metrics()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    # The signal SLURM sends a job before it preempts it or its time runs out, sent to
    # the task (submitit's local controller only forwards its own timeout signal).
    (task,) = _children(job._process.pid)
    os.kill(task, submitit.JobEnvironment._usr_sig())
    assert 0 <= job.result() <= 100
    history = [h["epoch"] for h in run.record["history"]]
    assert len(history) == 2 and history[0] == 0 and 2 <= history[1] < 6
    assert [m["epoch"] for m in run.metrics()] == [1, 2, 3, 4, 5, 6]
    assert "Requeued job" in (job.stderr() or "") + (job.stdout() or "")


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children
