"""Runs that move between machines: a checkpoint written on a GPU resumes on the CPU and
back, and across AMP modes (bf16 without a GradScaler, fp16 with one, float32).

There is no GPU here, so the move is simulated on the CPU with the exact states a CUDA
run writes: a CUDA generator's 16-byte state, a GradScaler state dict, and a history
entry saying "cuda". A device where AMP picks fp16 with a GradScaler (a T4, say) is
simulated by making ``amp_dtype`` answer float16 on the CPU, where autocast and the
GradScaler run the same code paths as on CUDA.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import regionmix_utils.train as train_module
from regionmix_utils.runs import Run
from regionmix_utils.train import amp_name, stream_seeds, train

from .conftest import tiny_config


class Interrupted(Exception):
    """Stands for the end of a Colab session: the run stops after an epoch's save."""


def _interrupt_after(epoch: int):
    def on_epoch(record: dict) -> None:
        if record["epoch"] == epoch:
            raise Interrupted

    return on_epoch


def _start_and_stop(config, runs_dir, splits, after: int = 1) -> Run:
    with pytest.raises(Interrupted):
        train(config, runs_dir, device="cpu", splits=splits, progress=False,
              on_epoch=_interrupt_after(after))  # fmt: skip
    run = Run.of(runs_dir, config)
    assert (run.path / "last.pt").exists() and not run.finished
    return run


def _cuda_generator_state(seed: int = 1234, offset: int = 4096) -> torch.Tensor:
    """What ``torch.Generator("cuda").get_state()`` returns: 16 bytes, the Philox seed
    and offset as two 64-bit integers."""
    return torch.tensor([seed, offset], dtype=torch.int64).view(torch.uint8)


# A GradScaler's state dict after some fp16 steps on a GPU (the keys torch writes).
CUDA_SCALER_STATE = {
    "scale": 32768.0,
    "growth_factor": 2.0,
    "backoff_factor": 0.5,
    "growth_interval": 2000,
    "_growth_tracker": 17,
}


def _fp16_with_a_scaler(monkeypatch) -> None:
    """AMP as on a GPU without native bf16: float16 autocast and a GradScaler."""
    monkeypatch.setattr(
        train_module, "amp_dtype", lambda device, enabled: torch.float16 if enabled else None
    )


def _checkpoint(run: Run) -> dict:
    return torch.load(run.path / "last.pt", weights_only=True)


def _as_written_on_cuda(run: Run, amp: str) -> None:
    """Make ``run``'s last.pt and history those of a CUDA run in AMP mode ``amp``."""
    state = _checkpoint(run)
    state["data_generator"] = _cuda_generator_state()  # what earlier versions saved
    state["scaler"] = dict(CUDA_SCALER_STATE) if "GradScaler" in amp else {}
    torch.save(state, run.path / "last.pt")
    record = run.record
    record["history"][-1] |= {"device": "cuda", "amp": amp}
    (run.path / "config.json").write_text(json.dumps(record, indent=2) + "\n")


def _same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# ------------------------------------------------------------------ the simulation


def test_the_simulated_states_are_what_the_old_restore_failed_on():
    """The states used below are the ones that stopped a resume: a CUDA generator's
    state does not fit a CPU generator, and an empty scaler state does not fit a
    GradScaler that is on. (If torch ever converts them, these tests prove less.)"""
    with pytest.raises(RuntimeError, match="CPUGeneratorImplState of size 5056"):
        torch.Generator().set_state(_cuda_generator_state())
    with pytest.raises(RuntimeError, match="source state dict is empty"):
        torch.amp.GradScaler("cpu", enabled=True).load_state_dict({})
    assert set(CUDA_SCALER_STATE) == set(torch.amp.GradScaler("cpu").state_dict())


def test_each_epochs_streams_come_from_the_seed_and_the_epoch():
    seeds = {stream_seeds(seed, epoch) for seed in (0, 1) for epoch in (1, 2, 3)}
    assert len(seeds) == 6 and len({s for pair in seeds for s in pair}) == 12
    assert stream_seeds(3, 7) == stream_seeds(3, 7)
    with pytest.raises(ValueError, match="seed and epoch must be >= 0"):
        stream_seeds(-1, 1)


def test_amp_modes_have_names_for_the_history():
    assert [amp_name(a) for a in (None, torch.bfloat16, torch.float16)] == [
        "off", "bfloat16", "float16 + GradScaler",
    ]  # fmt: skip


# ---------------------------------------------------------------------- the moves


def test_a_stopped_run_resumes_bit_for_bit_on_the_same_device(tmp_path, tiny_shapes):
    config = tiny_config(epochs=3, method="cutmix")
    straight = train(config, tmp_path / "straight", device="cpu", splits=tiny_shapes,
                     progress=False)  # fmt: skip
    run = _start_and_stop(config, tmp_path / "stopped", tiny_shapes, after=1)
    resumed = train(config, tmp_path / "stopped", device="cpu", splits=tiny_shapes,
                    progress=False)  # fmt: skip
    _same_weights(straight.model.state_dict(), resumed.model.state_dict())
    drop = ("seconds",)
    assert [{k: v for k, v in m.items() if k not in drop} for m in resumed.metrics] == [
        {k: v for k, v in m.items() if k not in drop} for m in straight.metrics
    ]
    history = run.record["history"]
    entries = [(h["epoch"], h["device"], h["amp"]) for h in history]
    assert entries == [(0, "cpu", "off"), (1, "cpu", "off")]
    assert not any("moved_from" in h for h in history)


def test_a_cuda_checkpoint_resumes_on_the_cpu_each_epoch_once(tmp_path, tiny_shapes):
    """Start on a T4 (fp16 + GradScaler, a CUDA data generator), finish on a laptop."""
    config = tiny_config(epochs=3)
    run = _start_and_stop(config, tmp_path, tiny_shapes, after=1)
    _as_written_on_cuda(run, "float16 + GradScaler")

    result = train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    assert [m["epoch"] for m in result.metrics] == [1, 2, 3]
    assert [json.loads(line)["epoch"] for line in
            (run.path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]  # fmt: skip
    assert run.finished and not (run.path / "last.pt").exists()
    history = run.record["history"]
    assert [(h["epoch"], h["device"], h["amp"]) for h in history] == [
        (0, "cuda", "float16 + GradScaler"), (1, "cpu", "off"),
    ]  # fmt: skip
    assert history[1]["moved_from"] == {"device": "cuda", "amp": "float16 + GradScaler"}
    # Epochs 2 and 3 drew their order and augmentation from their own seeds on the CPU,
    # as an uninterrupted CPU run does: the weights are that run's, bit for bit.
    straight = train(config, tmp_path / "straight", device="cpu", splits=tiny_shapes,
                     progress=False)  # fmt: skip
    _same_weights(straight.model.state_dict(), result.model.state_dict())


def test_a_run_without_a_scaler_resumes_where_fp16_needs_one(tmp_path, tiny_shapes, monkeypatch):
    """Start on the CPU (or a bf16 GPU: no GradScaler), resume on a T4: a fresh scaler."""
    config = tiny_config(epochs=3)
    run = _start_and_stop(config, tmp_path, tiny_shapes, after=1)
    assert _checkpoint(run)["scaler"] == {}

    _fp16_with_a_scaler(monkeypatch)
    scalers = []
    result = train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False,
                   on_epoch=lambda record: scalers.append(_checkpoint(run)["scaler"]))  # fmt: skip
    assert [m["epoch"] for m in result.metrics] == [1, 2, 3]
    assert len(scalers) == 2 and all(set(s) == set(CUDA_SCALER_STATE) for s in scalers)
    assert all(torch.isfinite(torch.tensor(m["train_loss"])) for m in result.metrics)
    history = run.record["history"]
    assert history[1]["amp"] == "float16 + GradScaler"
    assert history[1]["moved_from"] == {"device": "cpu", "amp": "off"}


def test_a_scaler_state_is_dropped_where_none_is_needed(tmp_path, tiny_shapes, monkeypatch):
    """Start with fp16 and a GradScaler, resume on a bf16 GPU or the CPU: no scaler."""
    config = tiny_config(epochs=3)
    with monkeypatch.context() as patch:
        _fp16_with_a_scaler(patch)
        run = _start_and_stop(config, tmp_path, tiny_shapes, after=1)
    assert set(_checkpoint(run)["scaler"]) == set(CUDA_SCALER_STATE)

    scalers = []
    result = train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False,
                   on_epoch=lambda record: scalers.append(_checkpoint(run)["scaler"]))  # fmt: skip
    assert [m["epoch"] for m in result.metrics] == [1, 2, 3]
    assert scalers == [{}, {}]
    assert run.record["history"][1]["moved_from"] == {
        "device": "cpu", "amp": "float16 + GradScaler",
    }  # fmt: skip


def test_execution_settings_may_change_with_the_device(tmp_path, tiny_shapes):
    """A bf16 GPU run with channels_last resumed with AMP and channels_last off."""
    config = tiny_config(epochs=2)
    run = _start_and_stop(config, tmp_path, tiny_shapes, after=1)
    _as_written_on_cuda(run, "bfloat16")
    changed = dataclasses.replace(config, amp=False, channels_last=False, eval_every=2)
    result = train(changed, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    assert [m["epoch"] for m in result.metrics] == [1, 2]
    resume = run.record["history"][1]
    assert resume["execution"]["amp"] is False and resume["execution"]["channels_last"] is False
    assert resume["moved_from"] == {"device": "cuda", "amp": "bfloat16"}
