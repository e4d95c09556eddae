"""Training: the loop of Algorithm 1 (Saha & Garain, 2024), with checkpoints and resume (across
devices and AMP modes: docs/many-runs.md); a step that never syncs: docs/speed.md."""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR, MultiStepLR
from torch.optim.optimizer import _get_fused_kernels_supported_devices

from regionmix_utils.config import TrainConfig, run_name
from regionmix_utils.data import BatchLoader, Splits
from regionmix_utils.files import atomic_torch_save
from regionmix_utils.losses import LossParts, combined_loss
from regionmix_utils.methods import Method, get_method
from regionmix_utils.mixing import MixedBatch, draw_choice, draw_mixed, mixable_layers
from regionmix_utils.models import build_model, evaluating
from regionmix_utils.progress import progress as progress_bar
from regionmix_utils.runs import FINAL, LAST, Run, training_splits

# A 90 MB checkpoint takes 0.3 s (local disk) to 3 s (Google Drive) against a 3-30 s epoch:
# every 10 epochs costs 1-10% and loses at most 9 epochs (``benchmarks/gpu.py`` measures it).
GPU_CHECKPOINT_EVERY = 10

AMP_MODES: dict[str, torch.dtype | None] = dict(bf16=torch.bfloat16, fp16=torch.float16, fp32=None)


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used; it is left untouched."""


@dataclass
class RunResult:
    """A run's folder, the metrics of the epochs trained so far, and the model."""

    path: Path
    metrics: list[dict]
    model: nn.Module | None = field(default=None, repr=False)
    skipped: bool = False

    @property
    def final_acc(self) -> float:
        return self.metrics[-1]["test_acc"]


def resolve_device(device: str) -> torch.device:
    """ "auto" (CUDA when available, else CPU), "cpu" or "cuda" as a torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    return torch.device(device)


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 on GPUs of compute capability >= 8, fp16 on older ones, None on the CPU or off."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16


def amp_name(amp: torch.dtype | None) -> str:
    return {None: "off", torch.bfloat16: "bfloat16", torch.float16: "float16 + GradScaler"}[amp]


def checkpoint_interval(config: TrainConfig, device: torch.device) -> int:
    """``config.checkpoint_every``, or when None: 1 on the CPU, ``GPU_CHECKPOINT_EVERY`` else."""
    return config.checkpoint_every or (1 if device.type == "cpu" else GPU_CHECKPOINT_EVERY)


def _zero_momentum(optimizer: torch.optim.Optimizer) -> None:
    for group in optimizer.param_groups:
        if group["momentum"]:
            for p in group["params"]:
                optimizer.state[p].setdefault("momentum_buffer", torch.zeros_like(p))


def hold_cosine_factor(epoch: int, epochs: int) -> float:
    """The "hold-cosine" lr factor of the 1-based ``epoch``: 1 up to ``epochs // 2``, then
    (1 + cos(pi t)) / 2, t = (epoch - hold) / (epochs - hold + 1) < 1 (the last epoch learns)."""
    hold = epochs // 2
    return 0.5 * (1.0 + math.cos(math.pi * max(0, epoch - hold) / (epochs - hold + 1)))


def lr_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """The run's schedule, stepped once an epoch (LambdaLR counts the epochs done)."""
    if config.lr_schedule == "step":
        return MultiStepLR(optimizer, list(config.milestones), config.lr_gamma)
    return LambdaLR(optimizer, lambda done: hold_cosine_factor(done + 1, config.epochs))


def stream_seeds(seed: int, epoch: int) -> tuple[int, int]:
    """Seeds of the data and mixing streams of ``epoch`` (independent: numpy SeedSequence)."""
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    return tuple(np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint64).tolist())


def training_loss(model: nn.Module, config: TrainConfig, images: Tensor, labels: Tensor,
                  mixed: MixedBatch | None, second: MixedBatch | None = None,
                  ) -> LossParts:  # fmt: skip
    """Algorithm 1's loss CE(f(x_A), y_A) + CE(f(x~), y~); the clean term alone without
    ``mixed``. ``matched_compute``: CE(f(x~), y~) + CE(f(x~'), y~') with ``second``."""
    if mixed is None:
        clean = F.cross_entropy(model(images).float(), labels,
                                label_smoothing=config.label_smoothing)  # fmt: skip
        return LossParts(total=clean, mixed=None, clean=clean)
    if not config.clean_ce:
        first = _loss(config, model(mixed.images), mixed.targets)
        if second is None:
            return first
        total = first.total + _loss(config, model(second.images), second.targets).total
        return LossParts(total=total, mixed=total / 2, clean=None)
    if config.concat_forward:  # one pass: BatchNorm sees both halves
        logits_clean, logits_mixed = model(torch.cat([images, mixed.images])).chunk(2)
    else:
        logits_clean, logits_mixed = model(images), model(mixed.images)
    return _loss(config, logits_mixed, mixed.targets, logits_clean, labels)


def in_model_loss(model: nn.Module, config: TrainConfig, method: Method, images: Tensor,
                  labels: Tensor, num_classes: int, generator: torch.Generator | None,
                  ) -> LossParts:  # fmt: skip
    """Algorithm 1's loss, the hidden state mixed at a layer drawn per batch (Manifold Mixup)."""
    logits_mixed, mixed, _layer = method.forward_mixed(model, images, labels, num_classes, config,
                                                       generator, validate=False)  # fmt: skip
    logits_clean = model(images) if config.clean_ce else None
    return _loss(config, logits_mixed, mixed.targets, logits_clean, labels)


def _loss(config, logits_mixed, targets, logits_clean=None, labels=None) -> LossParts:
    """The combined loss, targets smoothed to (1 - ε) y + ε / K (which commutes with mixing)."""
    eps, classes = config.label_smoothing, targets.shape[1]
    if eps:
        targets = targets * (1 - eps) + eps / classes
        if labels is not None:
            labels = F.one_hot(labels, classes).to(targets.dtype) * (1 - eps) + eps / classes
    return combined_loss(logits_mixed, targets, logits_clean, labels, clean_ce=config.clean_ce)


@torch.no_grad()
def evaluate(model: nn.Module, loader: BatchLoader) -> tuple[float, float]:
    """(mean cross entropy, accuracy %) over ``loader`` in eval mode and float32
    (``models.evaluating``); the sums stay on the device and are read back once."""
    total_loss = correct = count = 0
    with evaluating(model):
        for images, labels in loader:
            logits = model(images).float()
            total_loss += F.cross_entropy(logits, labels, reduction="sum").double()
            correct += (logits.argmax(1) == labels).sum()
            count += labels.numel()
    return float(total_loss) / count, 100.0 * int(correct) / count


@dataclass
class TrainingState:
    """Everything the epochs of one run change, and what they need to change it."""

    config: TrainConfig
    method: Method
    num_classes: int
    device: torch.device
    model: nn.Module
    forward: nn.Module  # the model, or its torch.compile'd version
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp: torch.dtype | None
    data_gen: torch.Generator  # data order and augmentation, on the device
    mix_gen: torch.Generator  # the mixing, on the CPU (no device sync for CutMix's box)
    epoch: int = 0  # the epoch being trained (set by start_epoch)

    @classmethod
    def build(cls, config: TrainConfig, splits: Splits, device: torch.device,
              amp: torch.dtype | str | None = "auto") -> TrainingState:  # fmt: skip
        """A fresh run's state; ``amp``: "auto" (``amp_dtype``) or a forced ``AMP_MODES`` value
        (benchmarks force fp16 on a bf16 GPU to check a T4's path)."""
        with torch.random.fork_rng(devices=[]):  # the same initial weights for every method
            torch.manual_seed(config.seed)
            model = build_model(config.dataset, splits.num_classes, config.width,
                                config.stem_stride)  # fmt: skip
        channels_last = config.channels_last and device.type == "cuda"
        model = model.to(device, memory_format=torch.channels_last if channels_last else None)
        if isinstance(amp, str):
            if amp != "auto":
                raise ValueError(f"amp must be 'auto', a dtype or None, got {amp!r}")
            amp = amp_dtype(device, config.amp)
        # fused for fp16: GradScaler.step then passes the overflow flag on the device (torch
        # amp/grad_scaler.py); fused SGD's momentum buffers come from empty_like in its first
        # step, which an overflow skips (torch 2.14 optim/sgd.py): they start as zeros.
        fused = amp == torch.float16 and device.type in _get_fused_kernels_supported_devices()
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay, nesterov=config.nesterov,
                                    **({"fused": True} if fused else {}))  # fmt: skip
        if fused:
            _zero_momentum(optimizer)
        return cls(
            config=config, method=get_method(config.method), num_classes=splits.num_classes,
            device=device, model=model, forward=torch.compile(model) if config.compile else model,
            optimizer=optimizer, scheduler=lr_scheduler(optimizer, config),
            scaler=torch.amp.GradScaler(device.type, enabled=amp == torch.float16), amp=amp,
            data_gen=torch.Generator(device), mix_gen=torch.Generator())  # fmt: skip

    def start_epoch(self, epoch: int) -> None:
        data_seed, mix_seed = stream_seeds(self.config.seed, epoch)
        self.data_gen.manual_seed(data_seed)
        self.mix_gen.manual_seed(mix_seed)
        self.epoch = epoch

    def checkpoint(self, metrics: list[dict]) -> dict:
        parts = ("model", "optimizer", "scheduler", "scaler")  # the scaler's is {} when unused
        return {name: getattr(self, name).state_dict() for name in parts} | {"metrics": metrics}

    def restore(self, path: Path) -> list[dict]:
        """Load a ``last.pt`` of any device and AMP mode (the optimizer keeps this device's
        ``fused``/``foreach`` flags); returns its metrics. Raises CheckpointError."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state["model"])
            kernels = [{k: g[k] for k in ("fused", "foreach")} for g in self.optimizer.param_groups]
            self.optimizer.load_state_dict(state["optimizer"])
            for group, flags in zip(self.optimizer.param_groups, kernels, strict=True):
                group.update(flags)
            if getattr(self.optimizer, "_step_supports_amp_scaling", False):
                _zero_momentum(self.optimizer)  # a checkpoint saved before any step has none
            self.scheduler.load_state_dict(state["scheduler"])
            if self.scaler.is_enabled() and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            return list(state["metrics"])
        except Exception as err:
            raise CheckpointError(f"{path} exists but cannot be used ({type(err).__name__}: "
                                  f"{err}). It was left as it is. Move it away to restart this "
                                  "run from scratch, or restore a good copy.") from err  # fmt: skip

    def check_mixing(self, splits: Splits) -> None:
        """Mix two training images once with every check on, with each method the run uses
        (in-model ones at each layer), so that the training steps can skip the checks."""
        images = splits.train.images[:2].float().to(self.device) / 255
        labels = splits.train.labels[:2].to(self.device)
        args = (images, labels, self.num_classes, self.config, torch.Generator())
        for method in (self.method, *(get_method(name) for name, _ in self.config.switch)):
            if method.in_model:
                with evaluating(self.model), torch.no_grad():
                    for layer in [n for n in method.layers if n in mixable_layers(self.model)]:
                        method.forward_mixed(self.model, *args, layer=layer)
            elif method.mixes:
                method.mix(*args)

    def batch_method(self) -> Method | None:
        """The method that mixes the next batch (drawn as the transforms' MixChoice and p
        draw), or None for a clean one; a knob at its default draws nothing."""
        config = self.config
        if config.mix_off_epoch is not None and self.epoch >= config.mix_off_epoch:
            return None
        method = self.method
        if config.switch:
            chosen = draw_choice([*itertools.accumulate(p for _, p in config.switch)], self.mix_gen)
            if chosen < len(config.switch):
                method = get_method(config.switch[chosen][0])
        return method if draw_mixed(config.mix_prob, self.mix_gen) and method.mixes else None


def loaders(state: TrainingState, splits: Splits) -> tuple[BatchLoader, BatchLoader]:
    """Training batches (shuffled, augmented, drop_last) and test batches."""
    config, cuda = state.config, state.device.type == "cuda"
    common = {"device": state.device, "channels_last": config.channels_last and cuda}
    train_loader = BatchLoader(splits.train, config.batch_size, pad=config.pad, drop_last=True,
                               generator=state.data_gen, **common)  # fmt: skip
    if len(train_loader) == 0:  # the last, partial batch is dropped
        raise ValueError(f"batch_size {config.batch_size} is larger than the {len(splits.train)} "
                         "training images: lower --batch-size or raise --n-train")  # fmt: skip
    return train_loader, BatchLoader(splits.test, 500, shuffle=False, augment=False, **common)


def train_step(state: TrainingState, images: Tensor, labels: Tensor) -> LossParts:
    """One optimiser step of Algorithm 1, unchecked (``check_mixing``), with no device sync
    (``tests/test_gpu_path.py``). An in-model method runs the uncompiled model (its hook)."""
    method, mixed, second, config = state.batch_method(), None, None, state.config
    if method is not None and not method.in_model:
        args = (images, labels, state.num_classes, config, state.mix_gen)
        mixed = method.mix(*args, validate=False)
        if config.matched_compute:  # the clean term's pass, given to a second mix
            second = method.mix(*args, validate=False)
    with torch.autocast(state.device.type, dtype=state.amp, enabled=state.amp is not None):
        if method is not None and method.in_model:
            loss = in_model_loss(state.model, config, method, images, labels,
                                 state.num_classes, state.mix_gen)  # fmt: skip
        else:
            loss = training_loss(state.forward, config, images, labels, mixed, second)
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss.total).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    return loss


def one_epoch(state: TrainingState, train_loader: BatchLoader, test_loader: BatchLoader,
              epoch: int, progress: bool = True) -> dict:  # fmt: skip
    """Train epoch ``epoch`` and evaluate if due. Metrics: epoch, lr, train losses (each term
    averaged over the batches that had it), test loss and accuracy, seconds."""
    started, config = time.perf_counter(), state.config
    state.start_epoch(epoch)
    lr = state.optimizer.param_groups[0]["lr"]
    sums = {name: torch.zeros((), device=state.device) for name in ("total", "clean", "mixed")}
    counts = dict.fromkeys(sums, 0)
    state.model.train()
    for images, labels in progress_bar(train_loader, leave=False, disable=not progress,
                                       desc="batches"):  # fmt: skip
        loss = train_step(state, images, labels)
        for name in sums:
            if (value := getattr(loss, name)) is not None:
                sums[name], counts[name] = sums[name] + value.detach(), counts[name] + 1
    state.scheduler.step()
    record = {"epoch": epoch, "lr": lr, "train_loss": float(sums["total"]) / len(train_loader)}
    for name in ("clean", "mixed"):
        if counts[name]:
            record[f"train_{name}_loss"] = float(sums[name]) / counts[name]
    if config.mix_prob < 1 or config.mix_off_epoch is not None or config.switch:
        record["mixed_batches"] = counts["mixed"]
    if epoch % config.eval_every == 0 or epoch == config.epochs:
        record["test_loss"], record["test_acc"] = evaluate(state.model, test_loader)
    return record | {"seconds": time.perf_counter() - started}


def train(config: TrainConfig, runs_dir: str | Path = "runs", data_dir: str | Path | None = None,
          device: str = "auto", *, splits: Splits | None = None, progress: bool = True,
          on_epoch: Callable[[dict], None] | None = None, stop_after: int | None = None,
          ) -> RunResult:  # fmt: skip
    """Train (or resume, or skip) one run. ``splits``: data instead of ``config.dataset``'s
    (``n_train``, ``holdout`` still apply); ``on_epoch(metrics)`` after each epoch; ``stop_after``:
    stop after this epoch, leaving a checkpoint to resume from. Raises RunBusyError (another
    process trains the run), ValueError (``stop_after`` outside 1..epochs or already passed)."""
    if stop_after is not None and not 1 <= stop_after <= config.epochs:
        raise ValueError(f"stop_after must be in 1..{config.epochs} (the run's epochs), "
                         f"got {stop_after}")  # fmt: skip
    stop_after = stop_after or config.epochs
    run = Run.of(runs_dir, config)
    with contextlib.nullcontext() if run.finished else run.claimed():  # reading needs no claim
        run.record_config(config)
        if run.finished:  # perhaps by another process while we waited
            return RunResult(run.path, run.metrics(), skipped=True)
        dev = resolve_device(device)
        splits = training_splits(config, data_dir, splits)
        state = TrainingState.build(config, splits, dev)
        state.check_mixing(splits)
        metrics = state.restore(run.path / LAST) if (run.path / LAST).exists() else []
        if len(metrics) > stop_after:
            raise ValueError(f"stop_after={stop_after}, but {run.path} has already trained "
                             f"{len(metrics)} epochs")  # fmt: skip
        run.log_start(config, epoch=len(metrics), device=dev.type, amp=amp_name(state.amp))
        train_loader, test_loader = loaders(state, splits)
        epochs = progress_bar(range(len(metrics) + 1, stop_after + 1), initial=len(metrics),
                              desc=f"{config.dataset}/{run_name(config)}/seed{config.seed}",
                              total=config.epochs, disable=not progress)  # fmt: skip
        for epoch in epochs:
            record = one_epoch(state, train_loader, test_loader, epoch, progress)
            metrics.append(record)
            if epoch == config.epochs:  # the fit to the clean training images
                fit = BatchLoader(splits.train, 500, shuffle=False, augment=False, device=dev)
                record["train_eval_loss"], record["train_acc"] = evaluate(state.model, fit)
                _save(run, state, metrics, final=True)
            elif epoch % checkpoint_interval(config, dev) == 0:
                _save(run, state, metrics)
            epochs.set_postfix(loss=f"{record['train_loss']:.3f}", acc=record.get("test_acc"))
            if on_epoch is not None:
                on_epoch(record)
        if stop_after < config.epochs and len(metrics) > len(run.metrics()):
            _save(run, state, metrics)  # stopped off the checkpoint interval: save anyway
        elif stop_after == config.epochs:
            if not (run.path / FINAL).exists():  # resumed from a checkpoint of the last epoch
                _save(run, state, metrics, final=True)
            (run.path / LAST).unlink(missing_ok=True)
        return RunResult(run.path, metrics, state.model)


def _save(run: Run, state: TrainingState, metrics: list[dict], final: bool = False) -> None:
    """``last.pt`` then ``metrics.jsonl`` (listing what a resume starts from); or the
    metrics, then ``final.pt`` (which marks the run finished)."""
    if not final:
        atomic_torch_save(state.checkpoint(metrics), run.path / LAST)
    run.write_metrics(metrics)
    if final:
        atomic_torch_save(state.model.state_dict(), run.path / FINAL)
