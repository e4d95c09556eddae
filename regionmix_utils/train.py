"""Training: the loop of Algorithm 1, with checkpoints and resume.

``train`` reads as four steps: claim the run (``Run.claimed``: one process at a time
trains it) and record its config, build or restore the training state, run epochs
(``one_epoch``), save a checkpoint every ``checkpoint_every`` epochs (``last.pt``, with
``metrics.jsonl`` beside it) and ``final.pt`` after the last. A run folder holding
``last.pt`` resumes from it, training the epochs after it again; one holding
``final.pt`` is finished and skipped (see ``runs``).

Randomness comes in two streams: one for the data (order and augmentation), one for
the mixing. Each epoch reseeds both from (run seed, stream, epoch) at its start
(``stream_seeds``), so every method with seed s sees the same batches in the same order
(common random numbers: comparisons between methods are less noisy), and the model
starts from the same weights.

Runs are portable. A checkpoint holds no generator state (a CUDA generator's state is
16 bytes of Philox seed and offset, a CPU generator's 5056 bytes of Mersenne Twister:
neither converts into the other), so a run started on a GPU resumes on the CPU and back,
each epoch trained once, its order and augmentation drawn from the epoch's own seed on
the device at hand. The AMP mode may change too: a checkpoint without a GradScaler state
resumed where fp16 needs one starts a fresh scaler; a scaler state resumed where none is
needed (CPU, bf16) is dropped. Each start and resume records its device and AMP mode in
the run's history (``runs.Run.log_start``).

On the CPU, with the same number of threads, a resumed run is bit for bit the same as an
uninterrupted one (tests check it). On a GPU it matches to rounding, not bit for bit:
cuDNN may pick other convolution algorithms in a new process, and some CUDA kernels add
in an order that changes from call to call (the backward of ``index_select`` in the
in-model mixes, the float64 ``scatter_add_`` of the soft targets); nor are two
uninterrupted GPU runs bit for bit alike. ``torch.use_deterministic_algorithms(True)``
(with ``CUBLAS_WORKSPACE_CONFIG=:4096:8``) before training makes them so, slower.

A training step never reads a value back from the GPU: the mixing parameters are drawn
on the CPU and sent without blocking, and with fp16 the GradScaler's overflow check
stays on the device (``sgd_optimizer``). What an epoch reports is read once, at its end.
"""

from __future__ import annotations

import inspect
import itertools
import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regionmix_utils.config import TrainConfig, quick_config, run_name
from regionmix_utils.data import BatchLoader, Splits, holdout_split, load_dataset
from regionmix_utils.files import atomic_torch_save
from regionmix_utils.losses import LossParts, combined_loss
from regionmix_utils.methods import Method, get_method
from regionmix_utils.mixing import MixedBatch, draw_choice, draw_mixed, mixable_layers
from regionmix_utils.models import build_model, evaluating, full_float32
from regionmix_utils.progress import progress as progress_bar
from regionmix_utils.runs import FINAL, LAST, Run, run_dir

__all__ = [
    "AMP_MODES",
    "GPU_CHECKPOINT_EVERY",
    "CheckpointError",
    "RunResult",
    "TrainConfig",
    "checkpoint_interval",
    "evaluate",
    "full_float32",
    "in_model_loss",
    "quick_config",
    "resolve_device",
    "run_dir",
    "run_name",
    "sgd_optimizer",
    "stream_seeds",
    "train",
    "train_step",
    "training_loss",
]

# Epochs between checkpoints on a GPU when the config leaves it open (every epoch on the
# CPU). A checkpoint is the weights and the SGD momentum: about 90 MB at paper width.
# Not measured yet on a GPU; the arithmetic: a PreAct ResNet-18 epoch on CIFAR is about
# 3 s on an H100 (the 20-minute goal for 400 epochs) and about 30 s on a T4; writing
# 90 MB takes about 0.3 s on a local disk and about 3 s to Google Drive (~30 MB/s). Every
# epoch would cost 10% (H100, local) to 100% (H100, Drive) of the training time; every
# 10 epochs costs 1-10% on an H100 and about 1% on a T4 even to Drive, and an
# interruption loses at most 9 epochs (about 30 s on an H100, 5 minutes on a T4).
# ``benchmarks/gpu.py`` measures the real figures (its "epoch+checkpoint" section).
GPU_CHECKPOINT_EVERY = 10

# The AMP modes by name (benchmarks and tests force each one): bf16 autocast, fp16
# autocast with a GradScaler, or float32.
AMP_MODES: dict[str, torch.dtype | None] = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": None,
}


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used; it is left untouched."""


@dataclass
class RunResult:
    """What a run left: its folder, the metrics of the epochs trained so far (all of them
    for a finished or skipped run; up to ``stop_after`` for a stopped one) and the model."""

    path: Path
    metrics: list[dict]
    model: nn.Module | None = field(default=None, repr=False)
    skipped: bool = False

    @property
    def final_acc(self) -> float:
        return self.metrics[-1]["test_acc"]


# --------------------------------------------------------------------------- helpers


def _numpy_scalars() -> list:
    """The globals a pickled numpy scalar needs (numpy 1 and 2 name its module apart)."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1
        from numpy.core.multiarray import scalar
    return [scalar, np.dtype, *(type(np.dtype(t)) for t in (np.float64, np.float32, np.int64))]


def _plain_numbers(value):
    """``value`` with numpy scalars as Python numbers, through dicts, lists and tuples."""
    if isinstance(value, dict):
        return {k: _plain_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_numbers(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint loaded with ``weights_only=True``. One written while a config held a
    numpy number (``lr=np.float64(...)``, before configs made their numbers plain) holds
    numpy scalars in the optimizer's and scheduler's states: those, and only those, are
    allowed on a second try, and come back as Python numbers.

    Raises:
        pickle.UnpicklingError: anything else the weights-only loader refuses.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        with torch.serialization.safe_globals(_numpy_scalars()):
            state = torch.load(path, map_location="cpu", weights_only=True)
        return _plain_numbers(state)


def resolve_device(device: str) -> torch.device:
    """ "auto" (CUDA when available, else CPU), "cpu" or "cuda" as a torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    return torch.device(device)


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 on GPUs that support it natively (compute capability >= 8), fp16 on older
    GPUs, None (float32) on the CPU or when disabled."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16


def amp_name(amp: torch.dtype | None) -> str:
    """The AMP mode in words for the run's history: "bfloat16", "float16 + GradScaler"
    or "off" (float32)."""
    return {None: "off", torch.bfloat16: "bfloat16", torch.float16: "float16 + GradScaler"}[amp]


def checkpoint_interval(config: TrainConfig, device: torch.device) -> int:
    """Epochs between checkpoints: ``config.checkpoint_every``, or when that is None, 1
    on the CPU and ``GPU_CHECKPOINT_EVERY`` on a GPU (see there for why)."""
    if config.checkpoint_every is not None:
        return config.checkpoint_every
    return 1 if device.type == "cpu" else GPU_CHECKPOINT_EVERY


def _fused_sgd_runs_on(device: torch.device) -> bool:
    """Whether this torch has a fused SGD kernel for ``device`` (CUDA first, the CPU in
    later versions; the torch 2.14 in the project's environment has both)."""
    if "fused" not in inspect.signature(torch.optim.SGD).parameters:
        return False  # pragma: no cover - depends on the torch version
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
    except ImportError:  # pragma: no cover - depends on the torch version
        return device.type == "cuda"
    return device.type in _get_fused_kernels_supported_devices()


def sgd_optimizer(model: nn.Module, config: TrainConfig, fused: bool) -> torch.optim.SGD:
    """The paper's SGD (momentum, weight decay, optional Nesterov) over ``model``.

    With ``fused`` (what the trainer asks for when a GradScaler is on, fp16 AMP), the
    fused kernel: ``GradScaler.step`` then hands it the scale and the overflow flag as
    device tensors and the kernel skips an overflowed step on the device, where the plain
    optimizer makes the scaler read the flag back (``.item()``: a host-device sync every
    step). See torch's ``amp/grad_scaler.py``, ``GradScaler.step``: optimizers with
    ``_step_supports_amp_scaling`` (which ``SGD(fused=True)`` sets) take that path.

    The momentum buffers are created as zeros up front. torch's fused SGD creates them
    with ``torch.empty_like`` on its first step and fills them in its kernel; when the
    GradScaler skips that first step (an overflow, common while the scale settles), the
    kernel returns early and the next step reads uninitialised memory (seen in torch
    2.14; ``optim/sgd.py`` ``_fused_sgd`` and the CUDA kernel's early return on
    ``found_inf``). A zero buffer gives the first real step exactly the plain SGD's
    first step: momentum * 0 + gradient.

    Falls back to the plain optimizer where this torch has no fused kernel for the
    device (the scaler then reads its flag back each step).
    """
    fused = fused and _fused_sgd_runs_on(next(model.parameters()).device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum,
        weight_decay=config.weight_decay, nesterov=config.nesterov,
        **({"fused": True} if fused else {}),
    )  # fmt: skip
    if fused:
        _zero_momentum(optimizer)
    return optimizer


def hold_cosine_factor(epoch: int, epochs: int) -> float:
    """The lr factor of "hold-cosine" for the 1-based ``epoch`` of ``epochs``: 1 for the
    first ``epochs // 2`` epochs, then half a cosine towards zero, (1 + cos(pi t)) / 2 with
    t = (epoch - hold) / (epochs - hold + 1), so that the last epoch still learns
    (t < 1). E.g. 20 epochs: 1.0 up to epoch 10, 0.98 at 11, 0.5 at 15.5, 0.02 at 20."""
    hold = epochs // 2
    if epoch <= hold:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - hold) / (epochs - hold + 1)))


def lr_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """The run's schedule, stepped once per epoch: ``MultiStepLR`` at ``milestones``
    ("step", the paper's), or ``LambdaLR`` with ``hold_cosine_factor``."""
    if config.lr_schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, list(config.milestones), config.lr_gamma
        )
    # LambdaLR calls the factor with the number of steps taken (0 for the first epoch).
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: hold_cosine_factor(done + 1, config.epochs)
    )


def _zero_momentum(optimizer: torch.optim.Optimizer) -> None:
    """A zero momentum buffer for every parameter that has none (see ``sgd_optimizer``)."""
    for group in optimizer.param_groups:
        if group["momentum"]:
            for p in group["params"]:
                optimizer.state[p].setdefault("momentum_buffer", torch.zeros_like(p))


def stream_seeds(seed: int, epoch: int) -> tuple[int, int]:
    """Seeds of epoch ``epoch``'s data stream and mixing stream, derived from the run's
    seed (numpy's SeedSequence keeps them independent across streams and epochs).

    Deriving each epoch's streams at its start, rather than saving generator states,
    is what lets a run move between devices: nothing device-specific is carried over.
    """
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    data, mixing = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint64)
    return int(data), int(mixing)


def training_loss(
    model: nn.Module,
    config: TrainConfig,
    images: Tensor,
    labels: Tensor,
    mixed: MixedBatch | None,
    second: MixedBatch | None = None,
) -> LossParts:
    """Algorithm 1's loss for one batch: CE(f(x_A), y_A) + CE(f(x~), y~).

    Without mixing (``mixed`` None) only the clean term; with ``concat_forward`` the
    clean and mixed images go through the model as one batch (BatchNorm sees both).
    With ``config.label_smoothing`` = ε both targets become (1 - ε) y + ε / K. With
    ``config.matched_compute`` (no clean term) the ``second`` mixed batch takes the
    clean term's pass: CE(f(x~), y~) + CE(f(x~'), y~'), the term reported as ``mixed``
    being their mean.
    """
    if mixed is None:
        logits = model(images).float()
        clean = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        return LossParts(total=clean, mixed=None, clean=clean)
    if not config.clean_ce:
        targets = _smoothed(mixed.targets, config.label_smoothing)
        first = combined_loss(model(mixed.images), targets, clean_ce=False)
        if second is None:
            return first
        targets = _smoothed(second.targets, config.label_smoothing)
        again = combined_loss(model(second.images), targets, clean_ce=False)
        total = first.total + again.total
        return LossParts(total=total, mixed=total / 2, clean=None)
    if config.concat_forward:
        logits_clean, logits_mixed = model(torch.cat([images, mixed.images])).chunk(2)
    else:
        logits_clean, logits_mixed = model(images), model(mixed.images)
    return _loss_of(config, logits_clean, labels, logits_mixed, mixed.targets)


def in_model_loss(
    model: nn.Module,
    config: TrainConfig,
    method: Method,
    images: Tensor,
    labels: Tensor,
    num_classes: int,
    generator: torch.Generator | None,
) -> LossParts:
    """Algorithm 1's loss for a method that mixes inside the model (Manifold Mixup): the
    mixed term's forward pass mixes the hidden state at a layer drawn per batch
    (``Method.forward_mixed``); the clean term is a plain forward pass."""
    logits_mixed, mixed, _layer = method.forward_mixed(
        model, images, labels, num_classes, config, generator, validate=False
    )
    if not config.clean_ce:
        targets = _smoothed(mixed.targets, config.label_smoothing)
        return combined_loss(logits_mixed, targets, clean_ce=False)
    return _loss_of(config, model(images), labels, logits_mixed, mixed.targets)


def _loss_of(config, logits_clean, labels, logits_mixed, targets) -> LossParts:
    if not config.label_smoothing:
        return combined_loss(logits_mixed, targets, logits_clean, labels)
    num_classes = targets.shape[1]
    clean_targets = F.one_hot(labels, num_classes).to(targets.dtype)
    return combined_loss(
        logits_mixed,
        _smoothed(targets, config.label_smoothing),
        logits_clean,
        _smoothed(clean_targets, config.label_smoothing),
    )


def _smoothed(targets: Tensor, epsilon: float) -> Tensor:
    """(1 - ε) y + ε / K for soft targets [B, K] (mixing, then smoothing: the same as
    smoothing each label before mixing, since the label weights sum to 1)."""
    if not epsilon:
        return targets
    return targets * (1 - epsilon) + epsilon / targets.shape[1]


@torch.no_grad()
def evaluate(model: nn.Module, loader: BatchLoader) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy in percent) of ``model`` over ``loader``, in
    eval mode and float32: no autocast, and no TF32 on a GPU (``models.evaluating``); each
    submodule's mode is restored.

    The sums stay on the loader's device (the loss in float64, added in the order of the
    batches, as Python floats would be) and are read back once, at the end.
    """
    device = loader.device
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    with evaluating(model):
        for images, labels in loader:
            logits = model(images).float()
            total_loss += F.cross_entropy(logits, labels, reduction="sum").double()
            correct += (logits.argmax(1) == labels).sum()
            count += labels.numel()
    return float(total_loss) / count, 100.0 * int(correct) / count


# ----------------------------------------------------------------------- the state


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
    mix_gen: torch.Generator  # the mixing (on the CPU: no device sync for CutMix's box)
    epoch: int = 0  # the epoch being trained (set by start_epoch)

    @property
    def settings(self) -> dict:
        """The settings the method reads (k, alpha, ...)."""
        return self.config.settings()

    @classmethod
    def build(
        cls,
        config: TrainConfig,
        splits: Splits,
        device: torch.device,
        amp: torch.dtype | str | None = "auto",
    ) -> TrainingState:
        """The state of a fresh run: model (the seed's weights), optimizer, schedule,
        GradScaler and the two generators.

        Args:
            amp: "auto" (what ``amp_dtype`` picks for the device and ``config.amp``), or
                a forced mode: torch.bfloat16, torch.float16 (with a GradScaler, and the
                fused SGD) or None (float32); ``AMP_MODES`` names them. Benchmarks force
                fp16 on a bf16 GPU to check the path a T4 takes.
        """
        with torch.random.fork_rng(devices=[]):  # the same initial weights for every method
            torch.manual_seed(config.seed)
            model = build_model(
                config.dataset, splits.num_classes, config.width, config.stem_stride
            )
        model = model.to(device)
        if config.channels_last and device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        if isinstance(amp, str):
            if amp != "auto":
                raise ValueError(f"amp must be 'auto', a dtype or None, got {amp!r}")
            amp = amp_dtype(device, config.amp)
        optimizer = sgd_optimizer(model, config, fused=amp == torch.float16)
        return cls(
            config=config,
            method=get_method(config.method),
            num_classes=splits.num_classes,
            device=device,
            model=model,
            forward=torch.compile(model) if config.compile else model,
            optimizer=optimizer,
            scheduler=lr_scheduler(optimizer, config),
            scaler=torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
            amp=amp,
            data_gen=torch.Generator(device),  # seeded by start_epoch
            mix_gen=torch.Generator(),
        )

    def start_epoch(self, epoch: int) -> None:
        """Reseed both random streams for ``epoch`` (``stream_seeds``)."""
        data_seed, mix_seed = stream_seeds(self.config.seed, epoch)
        self.data_gen.manual_seed(data_seed)
        self.mix_gen.manual_seed(mix_seed)
        self.epoch = epoch

    def checkpoint(self, metrics: list[dict]) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),  # {} when no scaler is needed
            "metrics": metrics,
        }

    def restore(self, path: Path) -> list[dict]:
        """Load ``path`` (a ``last.pt``, written on any device in any AMP mode) into the
        state; returns the metrics so far.

        Generator states that checkpoints of earlier versions hold are ignored: each
        epoch reseeds its streams (``start_epoch``).

        Raises:
            CheckpointError: the file cannot be read or does not fit the model.
        """
        try:
            state = load_checkpoint(path)
            self.model.load_state_dict(state["model"])
            self.load_optimizer(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.restore_scaler(state.get("scaler") or {})
            return list(state["metrics"])
        except Exception as err:
            raise CheckpointError(
                f"{path} exists but cannot be used ({type(err).__name__}: {err}). It was left "
                "as it is. Move it away to restart this run from scratch, or restore a good copy."
            ) from err

    def load_optimizer(self, saved: dict) -> None:
        """The saved momentum and lr, with this device's choice of kernel: a state dict
        carries its optimizer's ``fused`` and ``foreach`` flags, and a run saved with the
        fused SGD (fp16) and resumed on the CPU or in bf16 (or the reverse) keeps the
        kernel this state was built with (``sgd_optimizer``)."""
        groups = self.optimizer.param_groups
        kernels = [{k: group[k] for k in ("fused", "foreach")} for group in groups]
        self.optimizer.load_state_dict(saved)
        for group, flags in zip(self.optimizer.param_groups, kernels, strict=True):
            group.update(flags)
        if getattr(self.optimizer, "_step_supports_amp_scaling", False):
            _zero_momentum(self.optimizer)  # a checkpoint saved before any step has none

    def restore_scaler(self, saved: dict) -> None:
        """Continue the saved loss scale where this device uses fp16; keep the fresh
        scaler when the run was saved without one (CPU, bf16); drop a saved scale where
        no scaler is needed (a disabled GradScaler ignores what it is given)."""
        if self.scaler.is_enabled() and saved:
            self.scaler.load_state_dict(saved)

    def check_mixing(self, splits: Splits) -> None:
        """Mix two training images once with every check on (k too large for the image,
        or for a layer's feature map, say), with the run's method and every method it
        switches with, so that the training steps can skip the checks. Methods that mix
        inside the model are tried at each of their layers, in eval mode without
        gradients (the model is left as it was)."""
        images = splits.train.images[:2].float().to(self.device) / 255
        labels = splits.train.labels[:2].to(self.device)
        settings = self.config
        for method in self.methods():
            if not method.in_model:
                method.mix(images, labels, self.num_classes, settings, torch.Generator())
                continue
            with evaluating(self.model), torch.no_grad():
                for layer in method.layers:
                    if layer in mixable_layers(self.model):
                        method.forward_mixed(self.model, images, labels, self.num_classes,
                                             settings, torch.Generator(), layer=layer)  # fmt: skip

    def methods(self) -> list[Method]:
        """The mixing methods the run uses: its method and those it switches with."""
        used = [self.method, *(get_method(name) for name, _ in self.config.switch)]
        return [method for method in used if method.mixes]

    def batch_method(self) -> Method | None:
        """The method that mixes the next batch; None: a clean batch (no mixed term).

        The run's method, or one it switches with (``config.switch``, drawn from the
        mixing stream); None with probability 1 - ``mix_prob``, from ``mix_off_epoch``
        on, or for a method that does not mix. Nothing is drawn for a knob at its
        default, so a run with the default schedule mixes as before the knobs existed.
        """
        config = self.config
        if config.mix_off_epoch is not None and self.epoch >= config.mix_off_epoch:
            return None
        method = self.method
        if config.switch:  # the draws of the transforms' MixChoice and p, in their order
            cumulative = list(itertools.accumulate(prob for _, prob in config.switch))
            chosen = draw_choice(cumulative, self.mix_gen)
            if chosen < len(config.switch):
                method = get_method(config.switch[chosen][0])
        if not draw_mixed(config.mix_prob, self.mix_gen):
            return None
        return method if method.mixes else None


def loaders(state: TrainingState, splits: Splits) -> tuple[BatchLoader, BatchLoader]:
    """Training batches (shuffled, augmented, drop_last) and test batches."""
    config, channels_last = state.config, state.config.channels_last and state.device.type == "cuda"
    train_loader = BatchLoader(
        splits.train, config.batch_size, shuffle=True, augment=True, pad=config.pad,
        drop_last=True, device=state.device, generator=state.data_gen,
        channels_last=channels_last,
    )  # fmt: skip
    test_loader = BatchLoader(
        splits.test, 500, shuffle=False, augment=False, device=state.device,
        channels_last=channels_last,
    )  # fmt: skip
    if len(train_loader) == 0:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the {len(splits.train)} training "
            "images (the last, partial batch is dropped): lower --batch-size or raise --n-train"
        )
    return train_loader, test_loader


# ------------------------------------------------------------------------ an epoch


def train_step(state: TrainingState, images: Tensor, labels: Tensor) -> LossParts:
    """One optimiser step of Algorithm 1 on a batch: mix (unchecked: the arguments were
    checked once), forward under autocast, backward, step. Nothing here reads a value
    back from the device, so a GPU never waits for the host: the mixing parameters are
    drawn on the CPU (``state.mix_gen``) and sent without blocking, tile plans are built
    once per grid and sent without blocking, and with fp16 the fused SGD takes the
    GradScaler's overflow flag on the device (``sgd_optimizer``). CUDA's sync debug
    mode checks it (``benchmarks/gpu.py``, ``tests/test_gpu_path.py``).

    The batch's method comes from ``state.batch_method()``. A method that mixes inside
    the model runs the uncompiled model: its forward hook is registered per batch.
    """
    method, mixed, second = state.batch_method(), None, None
    if method is not None and not method.in_model:
        mixed = method.mix(
            images, labels, state.num_classes, state.config, state.mix_gen, validate=False
        )
        if state.config.matched_compute:  # the clean term's pass, given to a second mix
            second = method.mix(
                images, labels, state.num_classes, state.config, state.mix_gen, validate=False
            )
    with torch.autocast(state.device.type, dtype=state.amp, enabled=state.amp is not None):
        if method is not None and method.in_model:
            loss = in_model_loss(state.model, state.config, method, images, labels,
                                 state.num_classes, state.mix_gen)  # fmt: skip
        else:
            loss = training_loss(state.forward, state.config, images, labels, mixed, second)
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss.total).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    return loss


def one_epoch(
    state: TrainingState,
    train_loader: BatchLoader,
    test_loader: BatchLoader,
    epoch: int,
    progress: bool = True,
) -> dict:
    """Train one epoch (no device-to-host sync before its end), step the lr schedule, and
    evaluate if due. The random streams are reseeded for ``epoch`` first. Returns the
    epoch's metrics: epoch, lr used, train losses (total, and the clean and mixed terms),
    test loss and accuracy, seconds."""
    started = time.perf_counter()
    config, dev = state.config, state.device
    state.start_epoch(epoch)
    lr = state.optimizer.param_groups[0]["lr"]
    sums = {name: torch.zeros((), device=dev) for name in ("total", "clean", "mixed")}
    counts = dict.fromkeys(sums, 0)  # batches that had each term
    state.model.train()
    batches = progress_bar(train_loader, leave=False, disable=not progress, desc="batches")
    for images, labels in batches:
        loss = train_step(state, images, labels)
        for name in sums:
            if getattr(loss, name) is not None:
                sums[name] += getattr(loss, name).detach()
                counts[name] += 1
    state.scheduler.step()

    batches = len(train_loader)
    record = {"epoch": epoch, "lr": lr, "train_loss": float(sums["total"]) / batches}
    # Each term is averaged over the batches that had it (the schedule may leave some
    # batches unmixed); a term no batch had is left out.
    if counts["clean"]:
        record["train_clean_loss"] = float(sums["clean"]) / counts["clean"]
    if counts["mixed"]:
        record["train_mixed_loss"] = float(sums["mixed"]) / counts["mixed"]
    if _scheduled(config):
        record["mixed_batches"] = counts["mixed"]
    if epoch % config.eval_every == 0 or epoch == config.epochs:
        record["test_loss"], record["test_acc"] = evaluate(state.model, test_loader)
    record["seconds"] = time.perf_counter() - started
    return record


def _scheduled(config: TrainConfig) -> bool:
    """Whether the run's schedule may leave batches unmixed or switch methods."""
    return config.mix_prob < 1 or config.mix_off_epoch is not None or bool(config.switch)


# ------------------------------------------------------------------------- a run


def train(
    config: TrainConfig,
    runs_dir: str | Path = "runs",
    data_dir: str | Path | None = None,
    device: str = "auto",
    *,
    splits: Splits | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    stop_after: int | None = None,
) -> RunResult:
    """Train (or resume, or skip) one run and return its metrics and model.

    Args:
        config: the run.
        runs_dir: root of the runs folders.
        data_dir: dataset folder (see ``data.data_root``).
        device: "auto", "cpu" or "cuda".
        splits: data to use instead of loading ``config.dataset`` (tests, notebooks),
            taken as the whole dataset: ``n_train`` and ``holdout`` still apply.
        progress: show progress bars.
        on_epoch: called with each epoch's metrics dict (live plots in notebooks).
        stop_after: stop after this epoch (1 to ``config.epochs``), on the schedule of
            the whole run, leaving a checkpoint that a later call resumes from; the
            result's metrics are those of the epochs trained so far, and the run is
            finished only when it is the last epoch (``reproduction`` retrains the first
            epochs of a run this way).
    Raises:
        RunBusyError: another process is training this run (``runs.Run.claimed``).
        ValueError: ``stop_after`` outside 1 to ``config.epochs``, or before the epoch an
            unfinished run has already reached.
    """
    if stop_after is not None and not 1 <= stop_after <= config.epochs:
        raise ValueError(f"stop_after must be in 1..{config.epochs} (the run's epochs), "
                         f"got {stop_after}")  # fmt: skip
    run = Run.of(runs_dir, config)
    if run.finished:  # reading needs no claim
        run.record_config(config)
        return RunResult(run.path, run.metrics(), skipped=True)
    with run.claimed():
        run.record_config(config)
        if run.finished:  # finished by another process while we waited
            return RunResult(run.path, run.metrics(), skipped=True)
        return _train_claimed(run, config, data_dir, device, splits, progress, on_epoch,
                              stop_after or config.epochs)  # fmt: skip


def training_splits(config: TrainConfig, data_dir=None, splits: Splits | None = None) -> Splits:
    """The images a run trains and tests on: the dataset's (or the given) splits, less
    the ``holdout`` sample of the training split, then the ``n_train`` / ``n_test``
    class-stratified samples. With ``config.download`` a dataset that is not on disk is
    downloaded first (``data.load_dataset``), saying so."""
    download = config.download
    if splits is None and not config.holdout:  # the subset straight from the loader
        return load_dataset(config.dataset, data_dir, download=download,
                            n_train=config.n_train, n_test=config.n_test)  # fmt: skip
    if splits is None:
        splits = load_dataset(config.dataset, data_dir, download=download, n_test=config.n_test)
    train_set = holdout_split(splits.train, config.holdout)[0] if config.holdout else splits.train
    if config.n_train is not None:
        train_set = train_set.subset(config.n_train)
    return Splits(splits.name, train_set, splits.test)


def _train_claimed(run, config, data_dir, device, splits, progress, on_epoch,
                   stop_after: int) -> RunResult:  # fmt: skip
    """``train`` once the run is claimed: build or restore, run the epochs up to
    ``stop_after``, save.

    ``last.pt`` and ``metrics.jsonl`` are written together every ``checkpoint_interval``
    epochs (epoch numbers divisible by it), so ``metrics.jsonl`` lists what a resume
    starts from; after the last epoch ``metrics.jsonl`` and ``final.pt`` are written, and
    ``last.pt`` removed. ``on_epoch`` sees every epoch.
    """
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

    epochs = progress_bar(
        range(len(metrics) + 1, stop_after + 1), initial=len(metrics), total=config.epochs,
        desc=f"{config.dataset}/{run_name(config)}/seed{config.seed}", disable=not progress,
    )  # fmt: skip
    every = checkpoint_interval(config, dev)
    for epoch in epochs:
        record = one_epoch(state, train_loader, test_loader, epoch, progress)
        metrics.append(record)
        if epoch == config.epochs:
            record |= training_fit(state, splits)
            _write_final(run, state, metrics)
        elif epoch % every == 0:
            atomic_torch_save(state.checkpoint(metrics), run.path / LAST)
            run.write_metrics(metrics)
        epochs.set_postfix(loss=f"{record['train_loss']:.3f}", acc=record.get("test_acc"))
        if on_epoch is not None:
            on_epoch(record)

    if stop_after < config.epochs:  # stopped early: resumable from here
        if len(metrics) > len(run.metrics()):
            atomic_torch_save(state.checkpoint(metrics), run.path / LAST)
            run.write_metrics(metrics)
        return RunResult(run.path, metrics, state.model)
    if not (run.path / FINAL).exists():  # resumed from a checkpoint of the last epoch
        _write_final(run, state, metrics)
    (run.path / LAST).unlink(missing_ok=True)
    return RunResult(run.path, metrics, state.model)


def training_fit(state: TrainingState, splits: Splits) -> dict:
    """How well the model fits the images it trained on: ``train_eval_loss`` and
    ``train_acc`` (%), in eval mode on the clean training images (no augmentation, no
    mixing), as ``evaluate`` measures the test split. Their gap to ``test_loss`` and
    ``test_acc`` says whether there was anything for a regulariser to do."""
    loader = BatchLoader(splits.train, 500, shuffle=False, augment=False, device=state.device)
    loss, acc = evaluate(state.model, loader)
    return {"train_eval_loss": loss, "train_acc": acc}


def _write_final(run: Run, state: TrainingState, metrics: list[dict]) -> None:
    """Every epoch's metrics, then ``final.pt`` (which marks the run finished)."""
    run.write_metrics(metrics)
    atomic_torch_save(state.model.state_dict(), run.path / FINAL)
