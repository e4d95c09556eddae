"""Training: the paper's configuration, the loop of Algorithm 1, checkpoints and resume.

A run lives in ``runs/<dataset>/<run-name>/seed<seed>/``:

- ``config.json``: the whole ``TrainConfig`` plus package version and environment;
- ``metrics.jsonl``: one JSON object an epoch (``epoch``, ``lr``, ``train_loss``,
  ``test_loss``, ``test_acc`` in percent, ``seconds``);
- ``last.pt``: written atomically after every epoch (model, optimiser, scheduler, AMP
  scaler, epoch, metrics so far and the RNG states); loaded with ``weights_only=True``;
- ``final.pt``: the final state dict. A run with ``final.pt`` is finished and skipped.

Starting a run whose folder holds ``last.pt`` resumes it; on the CPU the result is bit
for bit the same as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from regionmix_utils import __version__
from regionmix_utils.data import BatchLoader, Splits, load_dataset
from regionmix_utils.files import atomic_torch_save, atomic_write_text
from regionmix_utils.losses import combined_loss
from regionmix_utils.mixing import MixedBatch, cutmix, region_mixup
from regionmix_utils.models import build_model

__all__ = [
    "METHODS",
    "CheckpointError",
    "RunResult",
    "TrainConfig",
    "evaluate",
    "quick_config",
    "resolve_device",
    "run_dir",
    "run_name",
    "sweep",
    "train",
]

METHODS = ("none", "mixup", "cutmix", "region")


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used; it is left untouched."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are the paper's (Section 3, Appendix A.1).

    The paper does not state alpha; 1.0 is what the mixup and CutMix papers use on CIFAR.
    """

    dataset: str = "cifar10"
    method: str = "region"  # none | mixup | cutmix | region
    k: int = 2  # tiles per side (region only)
    alpha: float = 1.0  # Beta(alpha, alpha)
    clean_ce: bool = True  # the CE(f(x_A), y_A) term; False is Table 2's ablation
    concat_forward: bool = False  # one forward over [x_A; x~] instead of two calls
    epochs: int = 400
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = (100, 150)  # epochs after which lr is divided by 10
    lr_gamma: float = 0.1
    seed: int = 0
    eval_every: int = 1  # epochs between test evaluations (the last is always evaluated)
    amp: bool = True  # CUDA only: bf16 where supported natively, else fp16 + GradScaler
    channels_last: bool = True  # CUDA only
    compile: bool = False  # torch.compile the model
    width: int = 64  # channels of the first ResNet stage (64 in the paper)
    n_train: int | None = None  # use only the first n training images
    n_test: int | None = None
    quick: bool = False  # a few epochs on little data, for demos and tests

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(f"alpha must be a positive finite number, got {self.alpha}")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("epochs, batch_size and eval_every must be >= 1")
        object.__setattr__(self, "milestones", tuple(self.milestones))

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def quick_config(config: TrainConfig) -> TrainConfig:
    """The quick version of a run: 4 epochs (lr / 10 after 3), width 8, 2000/500 images."""
    return dataclasses.replace(
        config,
        quick=True,
        epochs=min(config.epochs, 4),
        milestones=(3,),
        width=8,
        batch_size=min(config.batch_size, 64),
        n_train=min(config.n_train or 2000, 2000),
        n_test=min(config.n_test or 500, 500),
    )


def run_name(config: TrainConfig) -> str:
    """Folder name of a run's method: e.g. ``region-k2-a1``, ``mixup-a1-noclean``."""
    name = {"none": "none", "mixup": "mixup", "cutmix": "cutmix", "region": f"region-k{config.k}"}[
        config.method
    ]
    if config.method != "none":
        name += f"-a{config.alpha:g}"
        if not config.clean_ce:
            name += "-noclean"
        if config.concat_forward:
            name += "-concat"
    return name + ("-quick" if config.quick else "")


def run_dir(runs_dir: str | os.PathLike, config: TrainConfig) -> Path:
    """``runs_dir/<dataset>/<run-name>/seed<seed>``."""
    return Path(runs_dir) / config.dataset / run_name(config) / f"seed{config.seed}"


@dataclass
class RunResult:
    """What a finished (or skipped) run left: its folder, metrics and final model."""

    path: Path
    metrics: list[dict]
    model: nn.Module | None = field(default=None, repr=False)
    skipped: bool = False

    @property
    def final_acc(self) -> float:
        return self.metrics[-1]["test_acc"]


# --------------------------------------------------------------------------- helpers


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


def mix_batch(
    config: TrainConfig, images: Tensor, labels: Tensor, num_classes: int, gen: torch.Generator
) -> MixedBatch:
    """The configured mixing of one batch (``method`` != "none")."""
    if config.method == "cutmix":
        return cutmix(images, labels, config.alpha, num_classes, gen)
    k = 1 if config.method == "mixup" else config.k
    return region_mixup(images, labels, k, config.alpha, num_classes, gen)


def training_loss(
    model: nn.Module, config: TrainConfig, images: Tensor, labels: Tensor, mixed: MixedBatch | None
) -> Tensor:
    """Algorithm 1's loss for one batch: CE(f(x_A), y_A) + CE(f(x~), y~).

    With ``method == "none"`` only the clean term; with ``concat_forward`` the clean and
    mixed images go through the model as one batch (BatchNorm then sees both at once).
    """
    if mixed is None:
        return F.cross_entropy(model(images).float(), labels)
    if not config.clean_ce:
        return combined_loss(model(mixed.images), mixed.targets, clean_ce=False).total
    if config.concat_forward:
        logits_clean, logits_mixed = model(torch.cat([images, mixed.images])).chunk(2)
    else:
        logits_clean, logits_mixed = model(images), model(mixed.images)
    return combined_loss(logits_mixed, mixed.targets, logits_clean, labels).total


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: BatchLoader, amp: torch.dtype | None = None
) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy in percent) of ``model`` over ``loader``."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for images, labels in loader:
        with torch.autocast(loader.device.type, dtype=amp, enabled=amp is not None):
            logits = model(images).float()
        total_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
        count += labels.numel()
    model.train(was_training)
    return total_loss / count, 100.0 * correct / count


def _environment() -> dict:
    commit = None
    try:
        import subprocess

        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                check=False,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or None
        )
    except OSError:
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "regionmix_utils": __version__,
        "git_commit": commit,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": gpu,
    }


def _load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} exists but cannot be read ({type(err).__name__}: {err}). It was left as "
            "it is. Move it away to restart this run from scratch, or restore a good copy."
        ) from err


# ------------------------------------------------------------------------------ train


def train(
    config: TrainConfig,
    runs_dir: str | os.PathLike = "runs",
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    *,
    splits: Splits | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> RunResult:
    """Train (or resume, or skip) one run and return its metrics and model.

    Args:
        config: the run.
        runs_dir: root of the runs folders.
        data_dir: dataset folder (see ``data.data_root``).
        device: "auto", "cpu" or "cuda".
        splits: data to use instead of loading ``config.dataset`` (tests, notebooks).
        progress: show progress bars.
        on_epoch: called with each epoch's metrics dict (live plots in notebooks).
    """
    path = run_dir(runs_dir, config)
    path.mkdir(parents=True, exist_ok=True)
    config_file = path / "config.json"
    if config_file.exists():
        stored = TrainConfig.from_json(json.loads(config_file.read_text()))
        if stored != config:
            raise ValueError(
                f"{config_file} holds a different configuration than the one asked for; "
                "use another --runs-dir or move the old run away"
            )
    metrics_file, final_file, last_file = (
        path / "metrics.jsonl",
        path / "final.pt",
        path / "last.pt",
    )
    if final_file.exists():
        metrics = [json.loads(line) for line in metrics_file.read_text().splitlines() if line]
        return RunResult(path, metrics, skipped=True)
    config_record = {**dataclasses.asdict(config), "environment": _environment()}
    atomic_write_text(config_file, json.dumps(config_record, indent=2) + "\n")

    dev = resolve_device(device)
    if splits is None:
        splits = load_dataset(
            config.dataset,
            data_dir,
            n_train=config.n_train,
            n_test=config.n_test,
        )
    amp = amp_dtype(dev, config.amp)
    channels_last = config.channels_last and dev.type == "cuda"

    torch.manual_seed(config.seed)
    gen = torch.Generator(dev).manual_seed(config.seed)
    model = build_model(config.dataset, splits.num_classes, config.width).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, list(config.milestones), config.lr_gamma
    )
    scaler = torch.amp.GradScaler(dev.type, enabled=amp == torch.float16)

    start_epoch, metrics = 0, []
    if last_file.exists():
        state = _load_checkpoint(last_file)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, metrics = state["epoch"], json.loads(state["metrics"])
    forward = torch.compile(model) if config.compile else model

    train_loader = BatchLoader(
        splits.train, config.batch_size, shuffle=True, augment=True, drop_last=True,
        device=dev, generator=gen, channels_last=channels_last,
    )  # fmt: skip
    test_loader = BatchLoader(
        splits.test, 500, shuffle=False, augment=False, device=dev, channels_last=channels_last
    )
    epochs = tqdm(
        range(start_epoch + 1, config.epochs + 1),
        desc=f"{config.dataset}/{run_name(config)}/seed{config.seed}",
        initial=start_epoch,
        total=config.epochs,
        disable=not progress,
    )
    for epoch in epochs:
        started = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=dev)
        for images, labels in tqdm(train_loader, leave=False, disable=not progress, desc="batches"):
            mixed = None
            if config.method != "none":
                mixed = mix_batch(config, images, labels, splits.num_classes, gen)
            with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                loss = training_loss(forward, config, images, labels, mixed)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach()
        scheduler.step()
        record = {
            "epoch": epoch,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": float(loss_sum) / len(train_loader),
        }
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            record["test_loss"], record["test_acc"] = evaluate(model, test_loader, amp)
        record["seconds"] = time.perf_counter() - started
        metrics.append(record)
        epochs.set_postfix(loss=f"{record['train_loss']:.3f}", acc=record.get("test_acc"))

        atomic_torch_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "epoch": epoch,
                "metrics": json.dumps(metrics),
            },
            last_file,
        )
        atomic_write_text(metrics_file, "".join(json.dumps(m) + "\n" for m in metrics))
        if on_epoch is not None:
            on_epoch(record)

    atomic_torch_save(model.state_dict(), final_file)
    last_file.unlink(missing_ok=True)
    return RunResult(path, metrics, model)


def sweep(
    configs: list[TrainConfig],
    runs_dir: str | os.PathLike = "runs",
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
) -> list[RunResult]:
    """Run configurations one after another; each resumes or is skipped if finished."""
    results = []
    for config in tqdm(configs, desc="sweep", disable=not progress):
        results.append(train(config, runs_dir, data_dir, device, progress=progress))
    return results
