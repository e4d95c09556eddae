"""benchmarks/gpu.py cannot rot: its dry run (the same code on the CPU, tiny sizes) runs
every section, both AMP paths included, and prints each row as it is measured; without
CUDA the script says so and exits 0. A section that fails, or a compile that fails,
costs only its own rows; a timeout keeps the rows printed before it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from regionmix_utils.methods import method_names

from .conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=REPO, env=env or ENV, timeout=900)  # fmt: skip


def _table(stdout: str) -> list[list[str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


@pytest.fixture(scope="module")
def gpu():
    """benchmarks/gpu.py as a module, for the checks that run in this process."""
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.mark.slow
def test_the_dry_run_runs_every_section_and_prints_every_row():
    done = _run("--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _table(done.stdout)
    assert "CPU (dry run" in done.stdout
    assert {r[0] for r in rows} == {
        "sync", "epoch", "epoch-compiled", "real-epoch", "mixing", "attacks", "workers", "move",
    }  # fmt: skip
    assert not [r for r in rows if r[4] == "FAILED"], rows
    checks = [r[1] for r in rows]
    # Every method's steps on both AMP paths: bf16, and fp16 with the GradScaler (a T4's).
    for amp in ("bf16", "fp16 + GradScaler"):
        steps = {c.split(",")[0] for c in checks if c.endswith(f"{amp}: 1 step")}
        assert steps == set(method_names()), amp
    for name in ("region_mixup", "mixup", "cutmix", "gridmix", "fmix", "resizemix"):
        assert any(c.startswith(f"one call: {name},") for c in checks), name
    for section in ("epoch", "epoch-compiled"):
        labels = [r[1] for r in rows if r[0] == section]
        for label in ("none", "mixup", "cutmix", "region k=2", "region-random"):
            assert any(c.startswith(f"CIFAR-10 {label},") for c in labels), (section, label)
        assert any("whole paper (27 + 9 runs)" in c for c in labels)
    assert any(c.startswith("checkpoint last.pt") for c in checks)
    assert any("--checkpoint-every 10" in c for c in checks)
    assert [c for c in checks if c.startswith("region k=") and "vs v2.MixUp" in c] == [
        f"region k={k} vs v2.MixUp" for k in (1, 2, 4, 8)
    ]
    assert any(c.startswith("fgsm") for c in checks)
    assert any(c.startswith("square-2") and "last query" in c for c in checks)
    assert sum(c.startswith("sweep of 4 runs") for c in checks) == 2
    move = next(r for r in rows if r[0] == "move")
    assert "epochs [1, 2, 3]" in move[2] and move[4].startswith("ok")


@pytest.mark.slow
def test_without_cuda_the_script_says_so_and_does_the_dry_run():
    done = _run("--sections", "move", env={**ENV, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No CUDA device here" in done.stdout
    assert [r[0] for r in _table(done.stdout)] == ["move"]


def test_rows_are_printed_as_they_are_measured(gpu, monkeypatch, capsys):
    """A run stopped in a later section (a timeout's kill, Ctrl-C) has printed the rows
    measured before it."""

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gpu, "attack_rows", stopped)
    threads = torch.get_num_threads()
    try:
        with pytest.raises(KeyboardInterrupt):
            gpu.main(["--dry-run", "--sections", "mixing", "attacks"])
    finally:
        torch.set_num_threads(threads)
    rows = _table(capsys.readouterr().out)
    assert [r[1] for r in rows if r[0] == "mixing"][:2] == [
        "v2.MixUp, batch 128x3x32x32 NCHW", "region k=1 vs v2.MixUp",
    ]  # fmt: skip


@pytest.mark.slow
def test_a_failing_compile_costs_only_the_compiled_rows(gpu, monkeypatch, capsys):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("inductor is not installed")

    monkeypatch.setattr(torch, "compile", no_compiler)
    threads = torch.get_num_threads()
    try:
        code = gpu.main(["--dry-run", "--sections", "epoch", "epoch-compiled"])
    finally:
        torch.set_num_threads(threads)
    rows = _table(capsys.readouterr().out)
    assert code == 1
    epoch = [r for r in rows if r[0] == "epoch"]
    assert len(epoch) >= 6 and not [r for r in epoch if r[4] == "FAILED"]
    compiled = [r for r in rows if r[0] == "epoch-compiled"]
    assert [r[4] for r in compiled] == ["FAILED"] and "inductor" in compiled[0][2]


def test_the_budget_drops_the_slowest_sections_first(gpu, capsys):
    estimates = {"a": 10, "b": 300, "c": 50, "d": 100}
    assert gpu.plan_sections(list(estimates), estimates, None) == (list(estimates), [])
    assert gpu.plan_sections(list(estimates), estimates, 200) == (["a", "c", "d"], ["b"])
    assert gpu.plan_sections(list(estimates), estimates, 59) == (["a"], ["b", "d", "c"])
    # The dry run's own estimates: a budget too small for the workers drops them.
    threads = torch.get_num_threads()
    try:
        assert gpu.main(["--dry-run", "--sections", "mixing", "workers", "--budget", "10"]) == 0
    finally:
        torch.set_num_threads(threads)
    rows = _table(capsys.readouterr().out)
    assert [r[4] for r in rows if r[0] == "workers"] == ["dropped by --budget"]
    assert any(r[0] == "mixing" and r[4] == "(dry run)" for r in rows)


def test_amp_paths_auto_and_forced(gpu):
    """With "auto" the sync section checks both AMP paths a GPU trains with; the timings take
    the trainer's mode. Named modes serve every section (fp16 forced on a bf16 GPU checks
    what a T4 runs)."""
    cpu = torch.device("cpu")
    assert gpu.amp_modes(["auto"], cpu) == (("bf16", "fp16"), ("fp32",))
    assert gpu.amp_modes(["fp16"], cpu) == (("fp16",), ("fp16",))
    assert gpu.amp_modes(["bf16", "fp16", "fp32"], cpu)[1] == ("bf16", "fp16", "fp32")
