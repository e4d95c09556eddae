"""Sweeps: many runs, on one process, on several local workers, or as a SLURM job array.

Every way shares the runs folder through the runs' locks (``Run.claimed``):

- ``sweep`` trains the runs one after another; a run that another process is training
  is skipped and come back to later (it may have been released unfinished); a run
  that fails is reported and the others go on.
- ``run_workers`` starts N such sweeps as processes (one per GPU, or on the CPU), shows
  one progress bar for the whole sweep, and stops them all on Ctrl-C; every run stays
  resumable from its last epoch.
- ``submit`` sends the runs to a submitit executor as a job array (SLURM on a cluster,
  submitit's local executor in tests): one job a run, one GPU each. A preempted or
  timed-out job checkpoints by requeueing itself, and resumes from ``last.pt``.
- ``status`` says where each run stands: finished, training (by whom), stopped at an
  epoch, failed (and why), submitted, or not started.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from regionmix_utils.config import TrainConfig
from regionmix_utils.progress import progress as progress_bar
from regionmix_utils.runs import LAST, Run, RunBusyError
from regionmix_utils.train import RunResult, train

__all__ = ["SweepReport", "TrainJob", "run_workers", "status", "submit", "sweep"]

SUBMITTED = "submitted.json"  # in a run folder: the job that will train it


@dataclass
class SweepReport:
    """What a sweep did: finished runs (trained or found finished) and failures.

    The results hold no models: each run's model is let go when the run ends, so that
    a sweep never keeps more than one model on the GPU (``Run.load_model`` loads one).
    """

    results: list[RunResult] = field(default_factory=list)
    failures: dict[TrainConfig, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


def sweep(
    configs: list[TrainConfig],
    runs_dir: str | os.PathLike = "runs",
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
    poll_s: float = 2.0,
    after: Callable[[Run], None] | None = None,
) -> SweepReport:
    """Train ``configs`` one after another; each resumes or is skipped if finished.

    Configs that name the same run (a method that ignores k, say) run once. A run that
    another process trains is left for later and waited for (every ``poll_s`` seconds)
    once nothing else is left. A failing run is reported (and its ``failed.json``
    written); the others go on. Each finished run's model is dropped from its result and
    the GPU's cached memory released before the next run starts.

    Args:
        after: called with each finished run while this process holds its claim (a
            study evaluates it there: ``study.run_study``); a run another process holds
            is come back to later, as for training.
    """
    pending = list(dict.fromkeys(configs))
    report = SweepReport()
    bar = progress_bar(total=len(pending), desc="sweep", disable=not progress)
    while pending:
        busy = []
        for config in pending:
            try:
                result = train(config, runs_dir, data_dir, device, progress=progress)
                if after is not None:
                    run = Run.of(runs_dir, config)
                    with run.claimed(wait_s=0.1):  # one process at a time after training
                        after(run)
                report.results.append(dataclasses.replace(result, model=None))
                del result
                _release_gpu_memory()
                bar.update(1)
            except RunBusyError:
                busy.append(config)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as err:  # reported, and the sweep goes on
                Run.of(runs_dir, config).record_failure(err)
                report.failures[config] = f"{type(err).__name__}: {err}"
                print(f"{Run.of(runs_dir, config).path}: failed: {err}", file=sys.stderr)
                bar.update(1)
        if busy and len(busy) == len(pending):
            time.sleep(poll_s)  # only runs others train are left: wait for them
        pending = busy
    bar.close()
    return report


def _release_gpu_memory() -> None:
    """Hand the blocks that the finished run's tensors left in torch's CUDA cache back to
    the GPU (other workers may share it)."""
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------ local workers


def default_workers() -> int:
    """One worker per visible GPU, one on a machine without."""
    import torch

    return max(1, torch.cuda.device_count())


def run_workers(
    worker_argv: list[str],
    workers: int,
    configs: list[TrainConfig],
    runs_dir: str | os.PathLike,
    progress: bool = True,
    gpus: int | None = None,
) -> int:
    """Run ``regionmix <worker_argv>`` in ``workers`` processes at once and wait.

    Each worker is pinned to its own GPU (``CUDA_VISIBLE_DEVICES``) when there are
    ``gpus``; on the CPU the cores are shared out. Returns 0 when every run finished,
    1 when a run failed; on Ctrl-C the workers are stopped (their runs stay resumable)
    and KeyboardInterrupt propagates.
    """
    gpus = default_workers() if gpus is None else gpus
    threads = max(1, (os.cpu_count() or 1) // workers)
    children = []
    for i in range(workers):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        if gpus:  # more workers than GPUs share them round robin
            env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
        command = [sys.executable, "-m", "regionmix_utils.cli", *worker_argv]
        children.append(subprocess.Popen(command, env=env))
    runs = [Run.of(runs_dir, c) for c in dict.fromkeys(configs)]
    bar = progress_bar(total=len(runs), desc=f"sweep ({workers} workers)", disable=not progress)
    try:
        while any(child.poll() is None for child in children):
            bar.n = sum(run.finished for run in runs)
            bar.refresh()
            time.sleep(1.0)
    except KeyboardInterrupt:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        raise
    finally:
        bar.n = sum(run.finished for run in runs)
        bar.close()
    return 0 if all(child.returncode == 0 for child in children) else 1


# --------------------------------------------------------------------- submitit


class TrainJob:
    """One run as a submitit job. On preemption or timeout submitit calls
    ``checkpoint``, which requeues the same job: it resumes from ``last.pt``."""

    def __init__(self, runs_dir: str | os.PathLike, data_dir: str | os.PathLike | None) -> None:
        self.runs_dir, self.data_dir = str(runs_dir), data_dir and str(data_dir)

    def __call__(self, config: TrainConfig) -> float:
        result = train(config, self.runs_dir, self.data_dir, "auto", progress=False)
        return result.final_acc

    def checkpoint(self, config: TrainConfig):
        import submitit

        return submitit.helpers.DelayedSubmission(self, config)


def slurm_executor(folder, partition: str, time_min: int, gpus_per_node: int,
                   max_parallel: int, cpus_per_task: int = 8):  # fmt: skip
    """A submitit executor for SLURM: one GPU a task, arrays limited to ``max_parallel``."""
    try:
        import submitit
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "SLURM sweeps need submitit: pip install 'regionmix-utils[cluster]'"
        ) from err
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(
        slurm_partition=partition, timeout_min=time_min, gpus_per_node=gpus_per_node,
        tasks_per_node=1, cpus_per_task=cpus_per_task, slurm_array_parallelism=max_parallel,
    )  # fmt: skip
    return executor


def submit(
    configs: list[TrainConfig],
    runs_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None,
    executor,
) -> list:
    """Submit the unfinished runs of ``configs`` as one job array; returns the jobs.

    Each run folder gets a ``submitted.json`` (job id, time) so that ``status`` can say
    it is queued before it starts.
    """
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


# ----------------------------------------------------------------------- status


def status(configs: list[TrainConfig], runs_dir: str | os.PathLike) -> list[dict]:
    """Where each run stands, without waiting on any lock: rows of run (folder),
    state (finished / training / stopped / failed / submitted / not started, or
    conflict: the folder holds another configuration) and detail (accuracy, who trains
    it, the epoch reached, the error, the job id, what differs)."""
    rows = []
    for config in dict.fromkeys(configs):
        run = Run.of(runs_dir, config)
        state, detail = "not started", ""
        metrics = run.metrics()
        changed = run.differences(config)
        if changed:
            state, detail = (
                "conflict",
                f"the folder holds a run that differs in {', '.join(changed)}",
            )
        elif run.finished:
            state, detail = "finished", f"test accuracy {run.accuracy():.2f}%"
        elif run.path.is_dir() and run.is_claimed():
            holder = run.holder() or {}
            state = "training"
            detail = f"epoch {len(metrics)}/{config.epochs}, pid {holder.get('pid', '?')} on " \
                     f"{holder.get('host', '?')} since {holder.get('since', '?')}"  # fmt: skip
        elif run.failure():
            state, detail = "failed", run.failure()
        elif (run.path / LAST).exists():
            state, detail = "stopped", f"at epoch {len(metrics)}/{config.epochs} (resumable)"
        elif (run.path / SUBMITTED).exists():
            job = json.loads((run.path / SUBMITTED).read_text())
            state, detail = "submitted", f"job {job['job_id']} since {job['time']}"
        rows.append({"run": str(run.path), "state": state, "detail": detail})
    return rows


def format_status(rows: list[dict]) -> str:
    """The status rows as an aligned text table with a count per state."""
    width = max((len(r["run"]) for r in rows), default=3)
    lines = [f"{r['run']:<{width}}  {r['state']:<11}  {r['detail']}" for r in rows]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in counts.items())
    return "\n".join([*lines, f"{len(rows)} runs: {summary}"])
