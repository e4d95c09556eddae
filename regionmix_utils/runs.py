"""Runs on disk: finding them, and reading (or adding to) what each one holds.

A run lives in ``runs/<dataset>/<run-name>/seed<seed>/``:

- ``config.json``: the whole ``TrainConfig``, the ``environment`` of the first start
  (package version, git commit, torch, Python, GPU, the CPU's vector capability and the
  thread count) and a ``history`` with one entry per start or resume (its epoch, time,
  environment, execution settings, device and AMP mode, ``moved_from`` where the device
  or AMP mode changed, ``numerics_from`` where the CPU capability or thread count did);
- ``metrics.jsonl``: one JSON object an epoch (``epoch``, ``lr`` used in that epoch,
  ``train_loss``, ``test_loss``, ``test_acc`` in percent, ``seconds``);
- ``last.pt``: the checkpoint of an unfinished run; ``final.pt``: the final state dict;
- ``eval.json``: evaluations as records, e.g. ``{"kind": "fgsm", "eps": 0.0313...,
  "n_images": 10000, "accuracy": 52.4, "seconds": 3.1}``;
- ``predictions.npz``: per test image, what each evaluation predicted (``Predictions``),
  keyed by the record's settings, with a fingerprint of the test labels so that two
  runs' evaluations pair image by image (paired tests, ``evaluation.statistics``);
  ``eval.lock``: held while an evaluation writes these two files;
- ``train.lock``: the claim of the process training the run (an OS-level file lock,
  released by the OS when the process ends, however it ends), with ``train.lock.json``
  saying who holds it; ``failed.json``: why the last attempt failed, if it did.

Every write is atomic (``files``), so a reader never sees half a file, and readers
never take the lock: tables and notebooks read runs while they train.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock
import numpy as np
import torch
from torch import nn

from regionmix_utils import __version__
from regionmix_utils.config import EXECUTION_FIELDS, TrainConfig, identity, run_name
from regionmix_utils.files import atomic_write_bytes, atomic_write_text

__all__ = [
    "ACCURACY_CHOICES",
    "NUMERICS_KEYS",
    "RESULT_KEYS",
    "Predictions",
    "Run",
    "RunBusyError",
    "environment",
    "eps_text",
    "evaluation_settings",
    "find_runs",
    "labels_fingerprint",
    "run_dir",
    "snap_eps",
]

CONFIG, METRICS, LAST, FINAL, EVALUATIONS = (
    "config.json", "metrics.jsonl", "last.pt", "final.pt", "eval.json",
)  # fmt: skip
LOCK, HOLDER, FAILED = "train.lock", "train.lock.json", "failed.json"
PREDICTIONS, EVALUATION_LOCK = "predictions.npz", "eval.lock"
# A run copied into a results bundle (``study.export_bundle``): finished, without its
# checkpoints; some keep their final weights as a float16 state dict.
EXPORTED, WEIGHTS16 = "exported.json", "final.fp16.pt"


class RunBusyError(RuntimeError):
    """Another process is training this run (it holds the run's lock)."""


# Measured values of an evaluation record; every other key is one of its settings.
RESULT_KEYS = frozenset({
    "accuracy", "seconds", "ece", "nll", "brier", "temperature", "ece_scaled", "nll_scaled",
    "brier_scaled", "stages",  # stages: AutoAttack's per-attack counts
})  # fmt: skip
ACCURACY_CHOICES = ("final", "best", "last10")


def run_dir(runs_dir: str | os.PathLike, config: TrainConfig) -> Path:
    """``runs_dir/<dataset>/<run-name>/seed<seed>``."""
    return Path(runs_dir) / config.dataset / run_name(config) / f"seed{config.seed}"


# What picks the CPU kernels and splits their sums: a CPU run reproduces bit for bit only
# where both match (measured: the same run's epoch 1 gives 11.90% test accuracy with the
# AVX-512 kernels and 11.11% with the AVX2 ones; 17.70% with two threads instead of one).
NUMERICS_KEYS = ("cpu_capability", "threads")


def _numerics_text(env: dict) -> str:
    return f"CPU capability {env.get('cpu_capability')} and {env.get('threads')} thread(s)"


def environment() -> dict[str, Any]:
    """Package version, git commit (in a checkout), torch, Python, GPU, and what CPU
    results depend on bit for bit: ``cpu_capability`` (the vector instructions torch's
    kernels use, ``torch.backends.cpu.get_cpu_capability()``: "AVX512", "AVX2", ...;
    ``ATEN_CPU_CAPABILITY`` can lower it) and ``threads`` (``torch.get_num_threads()``)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False,
            cwd=Path(__file__).parent,
        ).stdout.strip() or None  # fmt: skip
    except OSError:
        commit = None
    return {
        "regionmix_utils": __version__,
        "git_commit": commit,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


def snap_eps(eps: float) -> float:
    """``eps`` as an exact multiple of 1/255 when it is one to 6 digits (0.0313725 ->
    8/255), so settings written with fewer digits compare equal."""
    n = round(eps * 255)
    return n / 255 if abs(eps * 255 - n) < 1e-4 else float(eps)


def eps_text(eps: float) -> str:
    """8/255 for a multiple of 1/255, the plain number otherwise (0 for 0)."""
    n = eps * 255
    return f"{round(n)}/255" if eps > 0 and abs(n - round(n)) < 1e-4 else f"{eps:g}"


def evaluation_settings(record: dict) -> dict[str, Any]:
    """The settings of an evaluation record: all but its measured values (``RESULT_KEYS``,
    and the ``measures`` its kind declares in ``evaluation.registry``)."""
    from regionmix_utils.evaluation.registry import measured_keys

    measured = RESULT_KEYS | measured_keys(record.get("kind"))
    return {k: v for k, v in record.items() if k not in measured}


@dataclass(frozen=True)
class Run:
    """One run folder. Every property reads the files afresh (they may change)."""

    path: Path

    @classmethod
    def of(cls, runs_dir: str | os.PathLike, config: TrainConfig) -> Run:
        return cls(run_dir(runs_dir, config))

    # ------------------------------------------------------------------ reading

    @property
    def record(self) -> dict:
        """The whole ``config.json`` (config, environment, history)."""
        return json.loads((self.path / CONFIG).read_text())

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_json(self.record)

    @property
    def finished(self) -> bool:
        """Trained to the end: ``final.pt`` is there, or the run is a bundle's copy."""
        return (self.path / FINAL).exists() or (self.path / EXPORTED).exists()

    def exported_from(self) -> str | None:
        """For a results bundle's copy of a run, the runs folder it was copied from."""
        try:
            return json.loads((self.path / EXPORTED).read_text())["source"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    def metrics(self) -> list[dict]:
        """One dict an epoch (empty before the first epoch ends)."""
        file = self.path / METRICS
        if not file.exists():
            return []
        return [json.loads(line) for line in file.read_text().splitlines() if line]

    def accuracy(self, which: str = "final") -> float:
        """Test accuracy (%): of the final epoch (as we report), the best epoch, or the
        median of the last ten evaluations (what PuzzleMix reports)."""
        accs = [m["test_acc"] for m in self.metrics() if "test_acc" in m]
        if not accs:
            raise ValueError(f"{self.path} has no evaluated epoch yet")
        if which == "final":
            return accs[-1]
        if which == "best":
            return max(accs)
        if which == "last10":
            return statistics.median(accs[-10:])
        raise ValueError(f"accuracy must be one of {ACCURACY_CHOICES}, got {which!r}")

    def evaluations(self) -> list[dict]:
        """The evaluation records in ``eval.json`` (files written before records existed
        are read and converted)."""
        file = self.path / EVALUATIONS
        if not file.exists():
            return []
        data = json.loads(file.read_text())
        if isinstance(data, dict) and "records" in data:
            return data["records"]
        return _records_from_key_strings(data, file)

    def find_evaluation(self, settings: dict) -> dict | None:
        """The record whose settings are exactly ``settings``, or None."""
        return next((r for r in self.evaluations() if evaluation_settings(r) == settings), None)

    def predictions(self, settings: dict) -> Predictions | None:
        """The per-image predictions stored with the evaluation whose settings are exactly
        ``settings`` (as ``find_evaluation`` takes them), or None: not evaluated, or
        evaluated before predictions were stored (evaluate it again to get them)."""
        file = self.path / PREDICTIONS
        if not file.exists():
            return None
        with np.load(file, allow_pickle=False) as data:
            for i, entry in enumerate(json.loads(str(data["index"]))):
                if entry["settings"] == settings:
                    logits = data[f"{i}.logits"] if f"{i}.logits" in data.files else None
                    labels = _labels_name(entry["labels_hash"])
                    labels = data[labels] if labels in data.files else None
                    return Predictions(data[f"{i}.predicted"], entry["labels_hash"], logits,
                                       labels, _arrays_of(data, i))  # fmt: skip
        return None

    def prediction_settings(self) -> list[dict]:
        """The settings of every evaluation whose per-image predictions are stored."""
        return [entry["settings"] for entry in _read_predictions(self.path / PREDICTIONS)[0]]

    def load_model(self, device: str | torch.device = "cpu") -> nn.Module:
        """The final model, in eval mode, on ``device``."""
        from regionmix_utils.models import build_model

        if not self.finished:
            raise FileNotFoundError(f"{self.path} has no {FINAL}: the run is not finished")
        file = self.path / FINAL
        if not file.exists():  # a bundle's copy: float16 weights, or none
            file = self.path / WEIGHTS16
            if not file.exists():
                raise FileNotFoundError(
                    f"{self.path} is a results bundle's copy of a run without its weights "
                    f"(the bundle keeps {WEIGHTS16} for seed 0 of some configurations only)"
                )
        config = self.config
        state = torch.load(file, map_location="cpu", weights_only=True)
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        num_classes = state["linear.weight"].shape[0]
        model = build_model(config.dataset, num_classes, config.width, config.stem_stride)
        model.load_state_dict(state)
        return model.to(device).eval()

    # ------------------------------------------------------------------ writing

    def add_evaluation(self, record: dict, predictions: Predictions | None = None) -> None:
        """Store ``record`` in ``eval.json``, replacing a record with the same settings,
        and ``predictions`` (if given) in ``predictions.npz`` under those settings. Each
        file is written atomically, under the run's evaluation lock (two evaluations of
        one run may finish at the same time).

        Raises:
            ValueError: the record's ``n_images`` differs from the predictions' length.
            PermissionError: the run is a results bundle's copy, which stays as committed.
        """
        if (self.path / EXPORTED).exists():
            raise PermissionError(
                f"{self.path} is a results bundle's copy of a run: its evaluations stay as "
                f"committed. Evaluate the run in its runs folder ({self.exported_from()}) "
                "and export the bundle again."
            )
        settings = evaluation_settings(record)
        n_images = record.get("n_images")
        if predictions is not None and n_images is not None and n_images != len(predictions):
            raise ValueError(
                f"the record says n_images = {n_images} but the predictions hold "
                f"{len(predictions)} images"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(self.path / EVALUATION_LOCK):
            if predictions is not None:
                self._store_predictions(settings, predictions)
            kept = [r for r in self.evaluations() if evaluation_settings(r) != settings]
            payload = {"format": 2, "records": [*kept, record]}
            atomic_write_text(self.path / EVALUATIONS, json.dumps(payload, indent=2) + "\n")

    def _store_predictions(self, settings: dict, predictions: Predictions) -> None:
        index, arrays = _read_predictions(self.path / PREDICTIONS)
        entries = [
            (entry, arrays[f"{i}.predicted"], arrays.get(f"{i}.logits"), _arrays_of(arrays, i))
            for i, entry in enumerate(index) if entry["settings"] != settings
        ]  # fmt: skip
        entry = {"settings": settings, "labels_hash": predictions.labels_hash}
        entries.append((entry, predictions.predicted, predictions.logits, predictions.arrays))
        out = {"index": np.array(json.dumps([e for e, *_ in entries]))}
        for i, (_, predicted, logits, extra) in enumerate(entries):
            out[f"{i}.predicted"] = predicted
            if logits is not None:
                out[f"{i}.logits"] = logits
            out |= {f"{i}.arrays.{name}": array for name, array in extra.items()}
        kept = {_labels_name(e["labels_hash"]) for e, *_ in entries}
        out |= {name: array for name, array in arrays.items() if name in kept}
        if predictions.labels is not None:
            out[_labels_name(predictions.labels_hash)] = predictions.labels
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **out)
        atomic_write_bytes(self.path / PREDICTIONS, buffer.getvalue())

    def write_metrics(self, metrics: list[dict]) -> None:
        atomic_write_text(self.path / METRICS, "".join(json.dumps(m) + "\n" for m in metrics))

    def record_config(self, config: TrainConfig) -> None:
        """Create the folder and its ``config.json``, or check that the one there holds
        the same run (execution settings such as AMP may differ)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / CONFIG).exists():
            changed = self.differences(config)
            if changed:
                raise ValueError(
                    f"{self.path / CONFIG} holds a different configuration than the one asked "
                    f"for (differs in {', '.join(changed)}); use another --runs-dir or move "
                    "the old run away"
                )
            return
        record = {**dataclasses.asdict(config), "environment": environment(), "history": []}
        atomic_write_text(self.path / CONFIG, json.dumps(record, indent=2) + "\n")

    def differences(self, config: TrainConfig) -> list[str]:
        """The fields in which the run's ``config.json`` differs from ``config`` (execution
        settings aside); empty when they agree or there is no config yet."""
        if not (self.path / CONFIG).exists():
            return []
        theirs, ours = identity(self.config), identity(config)
        return sorted(k for k in ours if theirs.get(k) != ours[k])

    @contextlib.contextmanager
    def claimed(self, wait_s: float = 1.0) -> Iterator[Run]:
        """Hold the run's lock while training it. An OS-level lock (``filelock``): the
        OS releases it when the process ends, even by SIGKILL, so it never goes stale.

        Args:
            wait_s: how long to wait for a lock that is held (covers a reader's brief
                probe, see ``is_claimed``) before giving up.
        Raises:
            RunBusyError: another process trains the run; the message says which.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.path / LOCK)
        try:
            lock.acquire(timeout=wait_s, poll_interval=0.05)
        except filelock.Timeout:
            holder = self.holder() or {}
            raise RunBusyError(
                f"{self.path} is being trained by another process since "
                f"{holder.get('since', '(unknown)')}, pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}"
            ) from None
        try:
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
            atomic_write_text(self.path / HOLDER, json.dumps(info) + "\n")
            yield self
        finally:
            (self.path / HOLDER).unlink(missing_ok=True)
            lock.release()

    def holder(self) -> dict | None:
        """Who said they hold the lock (pid, host, since), or None."""
        try:
            return json.loads((self.path / HOLDER).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_claimed(self) -> bool:
        """Whether a process trains the run now (probes the lock for an instant)."""
        if not (self.path / LOCK).exists():
            return False
        lock = filelock.FileLock(self.path / LOCK)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            return True
        lock.release()
        return False

    def record_failure(self, error: BaseException) -> None:
        """Say why the last attempt failed (``failed.json``); cleared by the next start."""
        if self.path.is_dir():
            text = json.dumps({"error": f"{type(error).__name__}: {error}",
                               "time": time.strftime("%Y-%m-%d %H:%M:%S")})  # fmt: skip
            atomic_write_text(self.path / FAILED, text + "\n")

    def failure(self) -> str | None:
        """The error of the last failed attempt, or None."""
        try:
            return json.loads((self.path / FAILED).read_text())["error"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    def log_start(
        self, config: TrainConfig, epoch: int, device: str | None = None, amp: str | None = None
    ) -> None:
        """Append a start (epoch 0) or a resume to the history in ``config.json``; the
        first start's environment stays where it was written.

        Args:
            device: where this start trains ("cuda", "cpu").
            amp: its AMP mode ("bfloat16", "float16 + GradScaler", "off"). A resume whose
                device or AMP mode differs from the previous entry's is a move between
                machines: its entry says where the run came from (``moved_from``). One
                whose CPU capability or thread count differs (``NUMERICS_KEYS``) says so
                in ``numerics_from``: from there on the run is not the bit-for-bit
                continuation the first start's environment would have trained.
        """
        (self.path / FAILED).unlink(missing_ok=True)
        record = self.record
        history = record.setdefault("history", [])
        entry = {
            "epoch": epoch,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "environment": environment(),
            "execution": {name: getattr(config, name) for name in EXECUTION_FIELDS},
            "device": device,
            "amp": amp,
        }
        if history and "device" in history[-1]:  # entries of earlier versions lack it
            before = {"device": history[-1]["device"], "amp": history[-1]["amp"]}
            if before != {"device": device, "amp": amp}:
                entry["moved_from"] = before
        earlier = history[-1]["environment"] if history else {}
        numerics = {k: earlier[k] for k in NUMERICS_KEYS if k in earlier}
        if numerics and numerics != {k: entry["environment"][k] for k in numerics}:
            entry["numerics_from"] = numerics
            warnings.warn(
                f"{self.path} resumes with {_numerics_text(entry['environment'])} where it "
                f"ran with {_numerics_text(numerics)}: the epochs from here on will not be "
                "bit for bit those of an uninterrupted run", stacklevel=2,
            )  # fmt: skip
        history.append(entry)
        atomic_write_text(self.path / CONFIG, json.dumps(record, indent=2) + "\n")


# ------------------------------------------------------------ per-image predictions


def labels_fingerprint(labels) -> str:
    """``"<N>:<16 hex digits>"``: the count and a SHA-256 prefix of labels [N] (as int64,
    in their order). Two evaluations pair image by image only when theirs agree."""
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be one-dimensional [N], got shape {array.shape}")
    digest = hashlib.sha256(np.ascontiguousarray(array, dtype=np.int64).tobytes()).hexdigest()
    return f"{len(array)}:{digest[:16]}"


@dataclass(frozen=True, eq=False)
class Predictions:
    """What one evaluation predicted for each test image, in the fixed test order.

    Attributes:
        predicted: [N] int16, the predicted class of each image.
        labels_hash: ``labels_fingerprint`` of the test labels [N] in that order.
        logits: [N, K] float16 (clean test and calibration only), enough to recompute
            ECE, NLL and Brier score (to float16 precision); None elsewhere.
        labels: [N] int16, the test labels themselves (stored once per file for each
            fingerprint), so that a comparison needs no dataset; None if not kept.
        arrays: other per-image values an evaluation keeps, by name, of any length (an
            out-of-distribution set's scores, say); empty for most.
    """

    predicted: np.ndarray
    labels_hash: str
    logits: np.ndarray | None = None
    labels: np.ndarray | None = None
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.predicted.ndim != 1:
            raise ValueError(f"predicted must be [N], got shape {self.predicted.shape}")
        if self.logits is not None and (
            self.logits.ndim != 2 or len(self.logits) != len(self.predicted)
        ):
            raise ValueError(
                f"logits must be [N, K] with N = {len(self.predicted)}, got shape "
                f"{self.logits.shape}"
            )

    @classmethod
    def from_outputs(cls, predicted, labels, logits=None, arrays=None) -> Predictions:
        """From an evaluation's outputs: predicted classes [N], the labels [N] they are
        scored against, and (optionally) logits [N, K] and other per-image values by name
        (``arrays``); arrays or CPU tensors.

        Raises:
            ValueError: the lengths differ, or a class index does not fit in int16.
        """
        predicted = np.asarray(predicted)
        if len(predicted) != len(labels):
            raise ValueError(f"predicted has {len(predicted)} entries but labels has {len(labels)}")
        if predicted.size and (predicted.min() < 0 or predicted.max() > np.iinfo(np.int16).max):
            raise ValueError("predicted must hold class indices in [0, 32767]")
        stored = None if logits is None else np.asarray(logits, dtype=np.float16)
        labels = np.asarray(labels)
        extra = {name: np.asarray(array) for name, array in (arrays or {}).items()}
        return cls(predicted.astype(np.int16), labels_fingerprint(labels), stored,
                   labels.astype(np.int16), extra)  # fmt: skip

    def __len__(self) -> int:
        return len(self.predicted)

    def correct(self, labels=None) -> np.ndarray:
        """[N] bool: whether each image was classified as ``labels`` (default: the labels
        kept with the predictions) says.

        Raises:
            ValueError: ``labels`` are not the ones these predictions were made against
                (another order, subset or split), or none were given nor kept.
        """
        if labels is None:
            if self.labels is None:
                raise ValueError("these predictions keep no labels: pass the test labels")
            labels = self.labels
        found = labels_fingerprint(labels)
        if found != self.labels_hash:
            raise ValueError(
                f"these predictions were made on test labels {self.labels_hash}, not on the "
                f"labels given ({found})"
            )
        return self.predicted == np.asarray(labels)


def _arrays_of(data, i: int) -> dict[str, np.ndarray]:
    """The named per-image arrays of entry ``i`` of a predictions file (its arrays or its
    open ``np.load``)."""
    prefix = f"{i}.arrays."
    return {name[len(prefix) :]: data[name] for name in data if name.startswith(prefix)}


def _labels_name(labels_hash: str) -> str:
    return "labels." + labels_hash.replace(":", "-")


def _read_predictions(file: Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The index (one ``{"settings", "labels_hash"}`` an entry) and the arrays of a
    predictions file (empty when there is none)."""
    if not file.exists():
        return [], {}
    with np.load(file, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return json.loads(str(arrays.pop("index"))), arrays


def find_runs(
    runs_dir: str | os.PathLike, dataset: str | None = None, finished: bool = True
) -> list[Run]:
    """Runs under ``runs_dir`` (``<dataset>/<run-name>/seed<seed>/``), sorted by folder.

    Args:
        dataset: only this dataset's runs.
        finished: only finished runs (``final.pt``, or a results bundle's copy);
            otherwise every folder with a config.
    """
    markers = (FINAL, EXPORTED) if finished else (CONFIG,)
    found = {p.parent for marker in markers
             for p in Path(runs_dir).glob(f"{dataset or '*'}/*/seed*/{marker}")}  # fmt: skip
    return [Run(p) for p in sorted(found)]


# ---------------------------------------------------------- eval.json before records

_OLD_KEY = re.compile(r"^(fgsm|square) eps=([0-9.e+-]+)(?: queries=(\d+) seed=(\d+))?$")


def _records_from_key_strings(data: dict, file: Path) -> list[dict]:
    """Records from the first ``eval.json`` layout: ``{"n_images": N, "clean": acc,
    "fgsm eps=0.0313725": acc, "square eps=... queries=100 seed=0": acc}``."""
    n_images = data.get("n_images")
    records = []
    for key, accuracy in data.items():
        if key == "n_images":
            continue
        if key == "clean":
            records.append({"kind": "clean", "n_images": n_images, "accuracy": accuracy})
            continue
        match = _OLD_KEY.match(key)
        if match is None:
            raise ValueError(
                f"{file} holds an evaluation {key!r} of no known kind; move the file away "
                "and evaluate the run again"
            )
        attack, eps, queries, seed = match.groups()
        record = {"kind": attack, "eps": snap_eps(float(eps))}
        if attack == "square":  # the settings torchattacks used then, as now, by default
            record |= {"queries": int(queries), "seed": int(seed), "p_init": 0.8,
                       "loss": "margin"}  # fmt: skip
        records.append({**record, "n_images": n_images, "accuracy": accuracy})
    return records
