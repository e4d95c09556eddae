"""Many runs sharing a runs folder through the runs' locks: in one process (``sweep``), in
local worker processes (``run_workers``) or as a SLURM job array (``submit``); ``status``."""

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import torch

from regionmix_utils.config import TrainConfig
from regionmix_utils.progress import progress as progress_bar
from regionmix_utils.runs import LAST, Run, RunBusyError
from regionmix_utils.train import RunResult, train

SUBMITTED = "submitted.json"  # in a run folder: the job that will train it


@dataclasses.dataclass
class SweepReport:
    """Finished runs (without their models: one at a time on the GPU) and failures."""

    results: list[RunResult] = dataclasses.field(default_factory=list)
    failures: dict[TrainConfig, str] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


def sweep(configs: list[TrainConfig], runs_dir: str | os.PathLike = "runs",
          data_dir: str | os.PathLike | None = None, device: str = "auto", progress: bool = True,
          poll_s: float = 2.0, after: Callable[[Run], None] | None = None,
          ) -> SweepReport:  # fmt: skip
    """Train ``configs`` (each run once) one after another, resuming or skipping each; runs
    another process holds are come back to (polled every ``poll_s`` s once nothing else is
    left), a failure is recorded (``failed.json``) and the rest go on. ``after(run)`` runs
    under the run's claim (``study.run_study`` evaluates there)."""
    pending = list(dict.fromkeys(configs))
    report = SweepReport()
    bar = progress_bar(total=len(pending), desc="sweep", disable=not progress)
    while pending:
        busy = []
        for config in pending:
            run = Run.of(runs_dir, config)
            try:
                result = train(config, runs_dir, data_dir, device, progress=progress)
                if after is not None:
                    with run.claimed(wait_s=0.1):
                        after(run)
                report.results.append(dataclasses.replace(result, model=None))
                if torch.cuda.is_initialized():  # hand the run's cached blocks back
                    torch.cuda.empty_cache()
            except RunBusyError:
                busy.append(config)
                continue
            except Exception as err:  # reported, and the sweep goes on
                run.record_failure(err)
                report.failures[config] = f"{type(err).__name__}: {err}"
                print(f"{run.path}: failed: {err}", file=sys.stderr)
            bar.update(1)
        if busy and len(busy) == len(pending):
            time.sleep(poll_s)  # only runs others train are left: wait for them
        pending = busy
    bar.close()
    return report


def default_workers() -> int:
    return max(1, torch.cuda.device_count())


def run_workers(worker_argv: list[str], workers: int, configs: list[TrainConfig],
                runs_dir: str | os.PathLike, progress: bool = True, gpus: int | None = None,
                ) -> int:  # fmt: skip
    """Run ``regionmix <worker_argv>`` in ``workers`` processes, each on a GPU of ``gpus``
    (round robin) or a share of the CPU cores; 0 when every run finished, else 1. Ctrl-C stops
    the workers (their runs resumable) and propagates."""
    gpus = default_workers() if gpus is None else gpus
    command = [sys.executable, "-m", "regionmix_utils.cli", *worker_argv]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}
    devices = [{"CUDA_VISIBLE_DEVICES": str(i % gpus)} if gpus else {} for i in range(workers)]
    children = [subprocess.Popen(command, env=env | device) for device in devices]
    runs = [Run.of(runs_dir, c) for c in dict.fromkeys(configs)]
    bar = progress_bar(total=len(runs), desc=f"sweep ({workers} workers)", disable=not progress)
    try:
        while any(child.poll() is None for child in children):
            bar.n = sum(run.finished for run in runs)
            bar.refresh()
            time.sleep(1.0)
    except KeyboardInterrupt:
        for child in children:
            child.send_signal(signal.SIGINT)  # does nothing to a child that has exited
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=30)
            child.kill()  # does nothing to a child that has exited
        raise
    finally:
        bar.n = sum(run.finished for run in runs)
        bar.close()
    return 0 if all(child.returncode == 0 for child in children) else 1


class TrainJob:
    """One run as a submitit job; preempted or out of time, ``checkpoint`` requeues it."""

    def __init__(self, runs_dir: str | os.PathLike, data_dir: str | os.PathLike | None) -> None:
        self.runs_dir, self.data_dir = str(runs_dir), data_dir and str(data_dir)

    def __call__(self, config: TrainConfig) -> float:
        return train(config, self.runs_dir, self.data_dir, "auto", progress=False).final_acc

    def checkpoint(self, config: TrainConfig):
        import submitit  # heavy: only SLURM sweeps need it

        return submitit.helpers.DelayedSubmission(self, config)


def slurm_executor(folder, partition: str, time_min: int, gpus_per_node: int,
                   max_parallel: int, cpus_per_task: int = 8):  # fmt: skip
    """A submitit executor for SLURM: one GPU a task, arrays limited to ``max_parallel``."""
    try:
        import submitit  # heavy: only SLURM sweeps need it
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("SLURM sweeps need submitit: pip install 'regionmix-utils[cluster]'"
                          ) from err  # fmt: skip
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(
        slurm_partition=partition, timeout_min=time_min, gpus_per_node=gpus_per_node,
        tasks_per_node=1, cpus_per_task=cpus_per_task,
        slurm_array_parallelism=max_parallel)  # fmt: skip
    return executor


def submit(configs: list[TrainConfig], runs_dir: str | os.PathLike,
           data_dir: str | os.PathLike | None, executor) -> list:  # fmt: skip
    """Submit the unfinished runs as one job array; returns the jobs. Each run folder gets a
    ``submitted.json`` (job id, time) for ``status``."""
    todo = [c for c in dict.fromkeys(configs) if not Run.of(runs_dir, c).finished]
    if not todo:
        return []
    jobs = executor.map_array(TrainJob(runs_dir, data_dir), todo)
    for config, job in zip(todo, jobs, strict=True):
        run = Run.of(runs_dir, config)
        run.path.mkdir(parents=True, exist_ok=True)
        record = {"job_id": str(job.job_id), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
        (run.path / SUBMITTED).write_text(json.dumps(record) + "\n")
    return jobs


def status(configs: list[TrainConfig], runs_dir: str | os.PathLike) -> list[dict]:
    """Where each run stands, without waiting on a lock: rows of run (folder), state (finished,
    training, stopped, failed, submitted, not started, conflict) and detail."""
    rows = []
    for config in dict.fromkeys(configs):
        run = Run.of(runs_dir, config)
        epochs = f"epoch {len(run.metrics())}/{config.epochs}"
        state, detail = "not started", ""
        if changed := run.differences(config):
            state, detail = "conflict", f"the folder's run differs in {', '.join(changed)}"
        elif run.finished:
            state, detail = "finished", f"test accuracy {run.accuracy():.2f}%"
        elif run.path.is_dir() and run.is_claimed():
            held = {"pid": "?", "host": "?", "since": "?", **(run.holder() or {})}
            state = "training"
            detail = f"{epochs}, pid {held['pid']} on {held['host']} since {held['since']}"
        elif run.failure():
            state, detail = "failed", run.failure()
        elif (run.path / LAST).exists():
            state, detail = "stopped", f"at {epochs} (resumable)"
        elif (run.path / SUBMITTED).exists():
            job = json.loads((run.path / SUBMITTED).read_text())
            state, detail = "submitted", f"job {job['job_id']} since {job['time']}"
        rows.append({"run": str(run.path), "state": state, "detail": detail})
    return rows


def format_status(rows: list[dict]) -> str:
    width = max((len(r["run"]) for r in rows), default=3)
    lines = [f"{r['run']:<{width}}  {r['state']:<11}  {r['detail']}" for r in rows]
    summary = ", ".join(f"{n} {state}" for state, n in Counter(r["state"] for r in rows).items())
    return "\n".join([*lines, f"{len(rows)} runs: {summary}"])
