"""A run folder (``runs/<dataset>/<run-name>/seed<seed>/``): config, metrics, checkpoints,
evaluation records (``eval.json``, format 2) with per-image predictions, and the OS-level
training lock. Writes are atomic and readers take no lock (docs/reproducing.md)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock
import numpy as np
import torch
from torch import nn

from regionmix_utils import __version__
from regionmix_utils.config import EXECUTION_FIELDS, TrainConfig, identity, run_name
from regionmix_utils.data import Splits, holdout_split, load_dataset
from regionmix_utils.files import atomic_write_bytes, atomic_write_text
from regionmix_utils.models import build_model
from regionmix_utils.registry import Registry

CONFIG, METRICS, LAST, FINAL = "config.json", "metrics.jsonl", "last.pt", "final.pt"
EVALUATIONS, PREDICTIONS, EVALUATION_LOCK = "eval.json", "predictions.npz", "eval.lock"
LOCK, HOLDER, FAILED = "train.lock", "train.lock.json", "failed.json"
# A run copied into a results bundle (``study.export_bundle``): finished, without its
# checkpoints; some keep their final weights as a float16 state dict.
EXPORTED, WEIGHTS16 = "exported.json", "final.fp16.pt"
ACCURACY_CHOICES = ("final", "best", "last10")
# What picks the CPU kernels and splits their sums: a CPU run reproduces bit for bit only
# where both match (measured: the same run's epoch 1 gives 11.90% test accuracy with the
# AVX-512 kernels and 11.11% with the AVX2 ones; 17.70% with two threads instead of one).
NUMERICS_KEYS = ("cpu_capability", "threads")


def cpu_kernels() -> str:
    """ATen's CPU capability ("AVX2", "AVX512", "DEFAULT"), marked when ``ATEN_CPU_CAPABILITY``
    sets it: the libraries beneath (oneDNN, MKL) still pick their kernels by the CPU itself,
    so AVX2 forced on an AVX-512 CPU is not an AVX2 CPU (step 2 of a run differs by 2e-7)."""
    capability = torch.backends.cpu.get_cpu_capability()
    forced = os.environ.get("ATEN_CPU_CAPABILITY")
    return f"{capability} (ATEN_CPU_CAPABILITY)" if forced else capability


# Filled by ``evaluation.registry``: what each kind measures tells settings from values.
RECORD_KINDS: Registry = Registry("evaluation kind", key="kind")
TIMED = ("seconds", "time")  # when and how long: in every record, never a setting


class RunBusyError(RuntimeError):
    """Another process is training this run (it holds the run's lock)."""


def run_dir(runs_dir: str | os.PathLike, config: TrainConfig) -> Path:
    """``runs_dir/<dataset>/<run-name>/seed<seed>``."""
    return Path(runs_dir) / config.dataset / run_name(config) / f"seed{config.seed}"


def _git(*args: str) -> str | None:
    """``git args`` in the package's folder: its output, or None outside a git checkout."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    return None


def code_identity() -> dict[str, Any]:
    """The code results come from: {"commit" (None outside a git checkout), "dirty" (tracked
    files changed since it), "package_sha256" (of the package's files, in path order)}."""
    digest = hashlib.sha256()
    package = Path(__file__).parent
    for file in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in
                       p.parts):  # fmt: skip
        digest.update(file.relative_to(package).as_posix().encode() + b"\0" + file.read_bytes())
    commit = _git("rev-parse", "HEAD") or None
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else None
    return {"commit": commit, "dirty": dirty, "package_sha256": digest.hexdigest()}


def environment() -> dict[str, Any]:
    """Versions, GPU, and what CPU results depend on bit for bit (``NUMERICS_KEYS``)."""
    return {"regionmix_utils": __version__, "git_commit": _git("rev-parse", "HEAD") or None,
            "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "cpu_capability": cpu_kernels(), "threads": torch.get_num_threads()}  # fmt: skip


def snap_eps(eps: float) -> float:
    """``eps`` as an exact k/255 when it is one to 6 digits (0.0313725 -> 8/255)."""
    n = round(eps * 255)
    return n / 255 if abs(eps * 255 - n) < 1e-4 else float(eps)


def eps_text(eps: float) -> str:
    """8/255 for a multiple of 1/255, the plain number otherwise (0 for 0)."""
    n = eps * 255
    return f"{round(n)}/255" if eps > 0 and abs(n - round(n)) < 1e-4 else f"{eps:g}"


def evaluation_settings(record: dict) -> dict[str, Any]:
    """A record less its kind's ``measures`` (``accuracy`` if unregistered) and ``TIMED``."""
    kind = record.get("kind")
    measured = RECORD_KINDS.get(kind).measures if kind in RECORD_KINDS else ("accuracy",)
    return {k: v for k, v in record.items() if k not in measured and k not in TIMED}


@dataclasses.dataclass(frozen=True)
class Run:
    """One run folder. Every property reads the files afresh (they may change)."""

    path: Path

    @classmethod
    def of(cls, runs_dir: str | os.PathLike, config: TrainConfig) -> Run:
        return cls(run_dir(runs_dir, config))

    @property
    def record(self) -> dict:
        return json.loads((self.path / CONFIG).read_text())

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_json(self.record)

    @property
    def finished(self) -> bool:
        """Trained to the end: ``final.pt`` is there, or the run is a bundle's copy."""
        return (self.path / FINAL).exists() or (self.path / EXPORTED).exists()

    def metrics(self) -> list[dict]:
        """One dict an epoch."""
        file = self.path / METRICS
        lines = file.read_text().splitlines() if file.exists() else []
        return [json.loads(line) for line in lines if line]

    def accuracy(self, which: str = "final") -> float:
        """Test accuracy (%): final epoch, best epoch, or median of the last ten (PuzzleMix)."""
        accs = [m["test_acc"] for m in self.metrics() if "test_acc" in m]
        if not accs:
            raise ValueError(f"{self.path} has no evaluated epoch yet")
        if which not in ACCURACY_CHOICES:
            raise ValueError(f"accuracy must be one of {ACCURACY_CHOICES}, got {which!r}")
        last10 = statistics.median(accs[-10:])
        return {"final": accs[-1], "best": max(accs), "last10": last10}[which]

    def evaluations(self) -> list[dict]:
        """The records in ``eval.json``; ValueError for a layout older than format 2."""
        file = self.path / EVALUATIONS
        if not file.exists():
            return []
        data = json.loads(file.read_text())
        if not (isinstance(data, dict) and data.get("format") == 2):
            raise ValueError(f"{file} is not an eval.json of format 2: move it away and "
                             "evaluate the run again")  # fmt: skip
        return data["records"]

    def find_evaluation(self, settings: dict) -> dict | None:
        """The record of exactly ``settings``, or None."""
        return next((r for r in self.evaluations() if evaluation_settings(r) == settings), None)

    def predictions(self, settings: dict) -> Predictions | None:
        """The per-image predictions stored under exactly ``settings``, or None."""
        if not (self.path / PREDICTIONS).exists():
            return None
        with np.load(self.path / PREDICTIONS, allow_pickle=False) as data:
            for i, entry in enumerate(json.loads(str(data["index"]))):
                if entry["settings"] == settings:
                    return _stored(data, i, entry["labels_hash"])
        return None

    def load_model(self, device: str | torch.device = "cpu") -> nn.Module:
        """The final model in eval mode on ``device`` (a bundle's float16 weights as float32)."""
        if not self.finished:
            raise FileNotFoundError(f"{self.path} has no {FINAL}: the run is not finished")
        file = self.path / FINAL
        if not file.exists() and not (file := self.path / WEIGHTS16).exists():
            raise FileNotFoundError(f"{self.path} is a results bundle's copy of a run without "
                                    f"its weights (the bundle keeps {WEIGHTS16} for the first seed "
                                    "of some configurations only)")  # fmt: skip
        config = self.config
        state = torch.load(file, map_location="cpu", weights_only=True)
        num_classes = state["linear.weight"].shape[0]
        model = build_model(config.dataset, num_classes, config.width, config.stem_stride)
        model.load_state_dict(state)
        return model.to(device).eval()

    def add_evaluation(self, record: dict, predictions: Predictions | None = None) -> None:
        """Store ``record`` (replacing one of the same settings) and its ``predictions``,
        atomically under the run's evaluation lock. ValueError: ``n_images`` is not their
        length; PermissionError: the run is a results bundle's copy, kept as committed."""
        if (self.path / EXPORTED).exists():
            source = (_read_json(self.path / EXPORTED) or {}).get("source")
            raise PermissionError(f"{self.path} is a results bundle's copy of a run: its "
                                  "evaluations stay as committed. Evaluate the run in its runs "
                                  f"folder ({source}) and export the bundle again.")  # fmt: skip
        settings = evaluation_settings(record)
        if predictions is not None and record.get("n_images") not in (None, len(predictions)):
            raise ValueError(f"the record says n_images = {record['n_images']} but the predictions "
                             f"hold {len(predictions)} images")  # fmt: skip
        self.path.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(self.path / EVALUATION_LOCK):
            if predictions is not None:
                self._store_predictions(settings, predictions)
            kept = [r for r in self.evaluations() if evaluation_settings(r) != settings]
            payload = {"format": 2, "records": [*kept, record]}
            atomic_write_text(self.path / EVALUATIONS, json.dumps(payload, indent=2) + "\n")

    def _store_predictions(self, settings: dict, predictions: Predictions) -> None:
        entries = []
        if (self.path / PREDICTIONS).exists():
            with np.load(self.path / PREDICTIONS, allow_pickle=False) as data:
                entries = [(e["settings"], _stored(data, i, e["labels_hash"]))
                           for i, e in enumerate(json.loads(str(data["index"])))
                           if e["settings"] != settings]  # fmt: skip
        entries.append((settings, predictions))
        index = [{"settings": s, "labels_hash": p.labels_hash} for s, p in entries]
        out = {"index": np.array(json.dumps(index))}
        for i, (_, p) in enumerate(entries):
            kept = {f"{i}.predicted": p.predicted, f"{i}.logits": p.logits,
                    _labels_name(p.labels_hash): p.labels}  # fmt: skip
            out |= {name: array for name, array in kept.items() if array is not None}
            out |= {f"{i}.arrays.{name}": array for name, array in p.arrays.items()}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **out)
        atomic_write_bytes(self.path / PREDICTIONS, buffer.getvalue())

    def write_metrics(self, metrics: list[dict]) -> None:
        atomic_write_text(self.path / METRICS, "".join(json.dumps(m) + "\n" for m in metrics))

    def record_config(self, config: TrainConfig) -> None:
        """Create the folder and ``config.json``, or check the one there is the same run."""
        self.path.mkdir(parents=True, exist_ok=True)
        if changed := self.differences(config):
            raise ValueError(f"{self.path / CONFIG} holds a different configuration than the one "
                             f"asked for (differs in {', '.join(changed)}); use another "
                             "--runs-dir or move the old run away")  # fmt: skip
        if not (self.path / CONFIG).exists():
            record = {**dataclasses.asdict(config), "environment": environment(), "history": []}
            atomic_write_text(self.path / CONFIG, json.dumps(record, indent=2) + "\n")

    def differences(self, config: TrainConfig) -> list[str]:
        """The identity fields in which ``config.json`` differs from ``config``."""
        if not (self.path / CONFIG).exists():
            return []
        theirs, ours = identity(self.config), identity(config)
        return sorted(k for k in ours if theirs.get(k) != ours[k])

    @contextlib.contextmanager
    def claimed(self, wait_s: float = 1.0) -> Iterator[Run]:
        """Hold the run's OS-level lock (never stale) while training it; RunBusyError,
        naming the holder, if another process holds it after ``wait_s``."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.path / LOCK)
        try:
            lock.acquire(timeout=wait_s, poll_interval=0.05)
        except filelock.Timeout:
            holder = self.holder() or {}
            raise RunBusyError(f"{self.path} is being trained by another process since "
                               f"{holder.get('since', '(unknown)')}, pid {holder.get('pid', '?')} "
                               f"on {holder.get('host', '?')}") from None  # fmt: skip
        try:
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
            atomic_write_text(self.path / HOLDER, json.dumps(info) + "\n")
            yield self
        finally:
            (self.path / HOLDER).unlink(missing_ok=True)
            lock.release()

    def holder(self) -> dict | None:
        """Who holds the lock (pid, host, since), or None."""
        return _read_json(self.path / HOLDER)

    def is_claimed(self) -> bool:
        if not (self.path / LOCK).exists():
            return False
        try:
            with filelock.FileLock(self.path / LOCK).acquire(timeout=0):
                return False
        except filelock.Timeout:
            return True

    def record_failure(self, error: BaseException) -> None:
        """Write ``failed.json``: why the last attempt failed (the next start clears it)."""
        if self.path.is_dir():
            text = json.dumps({"error": f"{type(error).__name__}: {error}",
                               "time": time.strftime("%Y-%m-%d %H:%M:%S")})  # fmt: skip
            atomic_write_text(self.path / FAILED, text + "\n")

    def failure(self) -> str | None:
        return (_read_json(self.path / FAILED) or {}).get("error")

    def log_start(self, config: TrainConfig, epoch: int, device: str | None = None,
                  amp: str | None = None) -> None:  # fmt: skip
        """Append a start or resume to ``config.json``'s history, with ``moved_from`` on a
        change of device or AMP, and ``numerics_from`` (and a warning: no longer bit for
        bit) on a change of ``NUMERICS_KEYS``."""
        (self.path / FAILED).unlink(missing_ok=True)
        record = self.record
        history = record.setdefault("history", [])
        entry = {"epoch": epoch, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "environment": environment(),
                 "execution": {name: getattr(config, name) for name in EXECUTION_FIELDS},
                 "device": device, "amp": amp}  # fmt: skip
        if history and "device" in history[-1]:  # entries of earlier versions lack it
            before = {"device": history[-1]["device"], "amp": history[-1]["amp"]}
            if before != {"device": device, "amp": amp}:
                entry["moved_from"] = before
        earlier = history[-1]["environment"] if history else {}
        numerics = {k: earlier[k] for k in NUMERICS_KEYS if k in earlier}
        now = {k: entry["environment"][k] for k in numerics}
        if numerics != now:
            entry["numerics_from"] = numerics
            warnings.warn(f"{self.path} resumes with {now} where it ran with {numerics}: the "
                          "epochs from here on will not be bit for bit those of an "
                          "uninterrupted run", stacklevel=2)  # fmt: skip
        history.append(entry)
        atomic_write_text(self.path / CONFIG, json.dumps(record, indent=2) + "\n")


def labels_fingerprint(labels) -> str:
    """``"<N>:<16 hex digits>"``: count and SHA-256 prefix of labels [N] as int64."""
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be one-dimensional [N], got shape {array.shape}")
    digest = hashlib.sha256(np.ascontiguousarray(array, dtype=np.int64).tobytes()).hexdigest()
    return f"{len(array)}:{digest[:16]}"


@dataclasses.dataclass(frozen=True, eq=False)
class Predictions:
    """One evaluation's per-image values in the fixed test order: ``predicted`` [N] int16,
    ``labels_hash``, ``logits`` [N, K] float16 or None, ``labels`` [N] int16 or None (kept
    once per fingerprint), other ``arrays`` by name, of any length (OOD scores)."""

    predicted: np.ndarray
    labels_hash: str
    logits: np.ndarray | None = None
    labels: np.ndarray | None = None
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.predicted.ndim != 1:
            raise ValueError(f"predicted must be [N], got shape {self.predicted.shape}")
        if self.logits is not None and (self.logits.ndim != 2 or len(self.logits) != len(self)):
            raise ValueError(f"logits must be [N, K] with N = {len(self)}, got shape "
                             f"{self.logits.shape}")  # fmt: skip

    @classmethod
    def from_outputs(cls, predicted, labels, logits=None, arrays=None) -> Predictions:
        """From predicted [N], labels [N], logits [N, K], arrays (arrays or CPU tensors);
        ValueError if the lengths differ or a class does not fit in int16."""
        predicted, labels = np.asarray(predicted), np.asarray(labels)
        if predicted.shape != labels.shape:
            raise ValueError(f"predicted must be one class per image {labels.shape}, got "
                             f"{predicted.shape}")  # fmt: skip
        if predicted.size and (predicted.min() < 0 or predicted.max() > np.iinfo(np.int16).max):
            raise ValueError("predicted must hold class indices in [0, 32767]")
        stored = None if logits is None else np.asarray(logits, dtype=np.float16)
        extra = {name: np.asarray(array) for name, array in (arrays or {}).items()}
        return cls(predicted.astype(np.int16), labels_fingerprint(labels), stored,
                   labels.astype(np.int16), extra)  # fmt: skip

    def __len__(self) -> int:
        return len(self.predicted)

    def correct(self, labels=None) -> np.ndarray:
        """[N] bool, right per ``labels`` (default: those kept); ValueError for other
        labels than these predictions were made on, or none."""
        labels = self.labels if labels is None else labels
        if labels is None:
            raise ValueError("these predictions keep no labels: pass the test labels")
        found = labels_fingerprint(labels)
        if found != self.labels_hash:
            raise ValueError(f"these predictions were made on test labels {self.labels_hash}, "
                             f"not on the labels given ({found})")  # fmt: skip
        return self.predicted == np.asarray(labels)


def _read_json(file: Path) -> dict | None:
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        return json.loads(file.read_text())
    return None


def _labels_name(labels_hash: str) -> str:
    return "labels." + labels_hash.replace(":", "-")


def _stored(data, i: int, labels_hash: str) -> Predictions:  # entry i of an open npz
    prefix = f"{i}.arrays."
    arrays = {name[len(prefix) :]: data[name] for name in data if name.startswith(prefix)}
    return Predictions(data[f"{i}.predicted"], labels_hash, data.get(f"{i}.logits"),
                       data.get(_labels_name(labels_hash)), arrays)  # fmt: skip


def find_runs(runs_dir: str | os.PathLike, dataset: str | None = None,
              finished: bool = True) -> list[Run]:  # fmt: skip
    """Sorted runs under ``runs_dir`` (of ``dataset``): finished, or all with a config."""
    markers = (FINAL, EXPORTED) if finished else (CONFIG,)
    found = {p.parent for marker in markers
             for p in Path(runs_dir).glob(f"{dataset or '*'}/*/seed*/{marker}")}  # fmt: skip
    return [Run(p) for p in sorted(found)]


def training_splits(config: TrainConfig, data_dir=None, splits: Splits | None = None) -> Splits:
    """The dataset's (or the given) splits less the ``holdout``, then the ``n_train`` /
    ``n_test`` class-stratified samples (downloaded with ``config.download``)."""
    load = {"download": config.download, "n_test": config.n_test}
    if splits is None and not config.holdout:  # the subset straight from the loader
        return load_dataset(config.dataset, data_dir, n_train=config.n_train, **load)
    if splits is None:
        splits = load_dataset(config.dataset, data_dir, **load)
    train_set = holdout_split(splits.train, config.holdout)[0] if config.holdout else splits.train
    if config.n_train is not None:
        train_set = train_set.subset(config.n_train)
    return Splits(splits.name, train_set, splits.test)
