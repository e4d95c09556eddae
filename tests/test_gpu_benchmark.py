"""benchmarks/gpu.py cannot rot: its dry run (the same code on the CPU, tiny sizes) runs
every check and prints the whole table; without CUDA the script says so and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=REPO, env=env or ENV, timeout=600)  # fmt: skip


def _table(stdout: str) -> list[list[str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


@pytest.mark.slow
def test_the_dry_run_runs_every_check_and_prints_one_table():
    done = _run("--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _table(done.stdout)
    assert "CPU (dry run" in done.stdout
    assert {r[0] for r in rows} == {"sync", "epoch", "mixing", "attacks", "workers", "move"}
    assert not [r for r in rows if r[4] == "FAILED"], rows
    checks = [r[1] for r in rows]
    from regionmix_utils.methods import method_names

    assert {c.split(":")[0] for c in checks if c.endswith("steps")} == set(method_names())
    for label in ("none", "mixup", "cutmix", "region k=2", "region-random"):
        assert any(c.startswith(f"CIFAR-10 {label},") for c in checks), label
    assert any("whole paper (27 + 9 runs)" in c for c in checks)
    assert [c for c in checks if c.startswith("region k=") and "vs v2.MixUp" in c] == [
        f"region k={k} vs v2.MixUp" for k in (1, 2, 4, 8)
    ]
    assert any(c.startswith("fgsm") for c in checks) and any(c.startswith("square") for c in checks)
    move = next(r for r in rows if r[0] == "move")
    assert "epochs [1, 2, 3]" in move[2] and move[4].startswith("ok")


@pytest.mark.slow
def test_without_cuda_the_script_says_so_and_does_the_dry_run():
    done = _run("--sections", "move", env={**ENV, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No CUDA device here" in done.stdout
    assert [r[0] for r in _table(done.stdout)] == ["move"]
