"""Adversarial robustness: white-box FGSM and black-box Square (Appendix A.2 of the paper).

Both attacks come from torchattacks and work on images in [0, 1] (the models normalise
inside), with eps in the same pixel units. The paper states neither eps nor Square's
other settings: the defaults here are eps = 8/255 (the common choice on CIFAR), and
torchattacks' own p_init = 0.8 and margin loss, with one restart and the paper's
budget of 100 queries. Everything is recorded with each result.

Test-time work runs in eval mode and float32 (``models.evaluating``), on the whole test
split unless ``n_images`` asks for a class-stratified subset (the paper reports test
accuracy after attack). torchattacks' Square calls ``torch.manual_seed(seed)`` on every
batch; each call here runs inside ``torch.random.fork_rng``, so the global RNG is the
same afterwards as before, and the same seed gives the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from regionmix_utils.models import evaluating
from regionmix_utils.progress import progress as progress_bar
from regionmix_utils.runs import Run, eps_text, snap_eps

__all__ = [
    "ATTACKS",
    "DEFAULT_EPS",
    "AttackConfig",
    "accuracy",
    "adversarial_accuracy",
    "evaluate_run",
    "make_attack",
    "test_images",
]

ATTACKS = ("fgsm", "square")
DEFAULT_EPS = 8 / 255
SQUARE_LOSSES = ("margin", "ce")


@dataclass(frozen=True)
class AttackConfig:
    """One attack setting. eps is in [0, 1] pixel units (snapped to k/255 when it is one)."""

    attack: str = "fgsm"
    eps: float = DEFAULT_EPS
    queries: int = 100  # Square only: the query budget
    seed: int = 0  # Square only
    p_init: float = 0.8  # Square only: initial share of pixels changed (torchattacks' default)
    loss: str = "margin"  # Square only: "margin" or "ce" (torchattacks' default: margin)

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise ValueError(f"attack must be one of {ATTACKS}, got {self.attack!r}")
        if not 0 <= self.eps <= 1:
            raise ValueError(f"eps must be in [0, 1] (pixel units, e.g. 8/255), got {self.eps}")
        if self.queries < 1:
            raise ValueError(f"queries must be >= 1, got {self.queries}")
        if not 0 < self.p_init <= 1:
            raise ValueError(f"p_init must be in (0, 1], got {self.p_init}")
        if self.loss not in SQUARE_LOSSES:
            raise ValueError(f"loss must be one of {SQUARE_LOSSES}, got {self.loss!r}")
        object.__setattr__(self, "eps", snap_eps(self.eps))

    def settings(self) -> dict[str, Any]:
        """The record keys that identify this setting (n_images is added by the caller)."""
        if self.attack == "fgsm":
            return {"kind": "fgsm", "eps": self.eps}
        return {"kind": "square", "eps": self.eps, "queries": self.queries, "seed": self.seed,
                "p_init": self.p_init, "loss": self.loss}  # fmt: skip

    @property
    def name(self) -> str:
        """Short text for progress bars: "fgsm ε=8/255", "square ε=8/255 q=100"."""
        eps = eps_text(self.eps)
        return f"fgsm ε={eps}" if self.attack == "fgsm" else f"square ε={eps} q={self.queries}"


def _torchattacks():
    try:
        import torchattacks
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "torchattacks is not installed. Install it without its dependencies (its "
            "requests pin would downgrade JupyterLab): pip install --no-deps torchattacks==3.5.1"
        ) from err
    return torchattacks


def make_attack(model: nn.Module, config: AttackConfig):
    """The torchattacks object for ``config``, every setting passed explicitly."""
    ta = _torchattacks()
    if config.attack == "fgsm":
        return ta.FGSM(model, eps=config.eps)
    return ta.Square(
        model, norm="Linf", eps=config.eps, n_queries=config.queries, n_restarts=1,
        p_init=config.p_init, loss=config.loss, resc_schedule=True, seed=config.seed,
    )  # fmt: skip


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Accuracy in percent on images [N, 3, H, W] in [0, 1], in eval mode and float32."""
    with evaluating(model):
        correct = sum(
            int((model(x).argmax(1) == y).sum())
            for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True)
        )
    return 100.0 * correct / len(labels)


def adversarial_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    config: AttackConfig,
    batch_size: int = 500,
    progress: bool = True,
) -> float:
    """Accuracy in percent on adversarial versions of ``images`` (in [0, 1]) built by
    ``config``, in eval mode and float32; the model is left in the mode it had."""
    devices = [images.device.index or 0] if images.is_cuda else []
    correct = 0
    batches = zip(images.split(batch_size), labels.split(batch_size), strict=True)
    total = -(-len(labels) // batch_size)
    with evaluating(model):
        attack = make_attack(model, config)
        for x, y in progress_bar(batches, total=total, desc=config.name, disable=not progress):
            with torch.random.fork_rng(devices=devices):
                adversarial = attack(x, y)
            with torch.no_grad():
                correct += int((model(adversarial).argmax(1) == y).sum())
    return 100.0 * correct / len(labels)


def test_images(
    run: Run, n_images: int | None = None, data_dir=None, device: str | torch.device = "cpu"
) -> tuple[Tensor, Tensor]:
    """The run's test split as floats in [0, 1] on ``device``, and its labels: whole, or a
    class-stratified sample of ``n_images`` (fixed seed)."""
    from regionmix_utils.data import load_dataset

    test = load_dataset(run.config.dataset, data_dir, n_train=1, n_test=n_images).test
    return test.images.to(device).float() / 255, test.labels.to(device)


def evaluate_run(
    run: Run,
    configs: list[AttackConfig],
    n_images: int | None = None,
    data_dir=None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> list[dict]:
    """Clean and adversarial accuracy of a finished run, stored as records in its
    ``eval.json``; a record already there for the same settings and image count is
    reused, not recomputed.

    Args:
        run: a finished run.
        configs: the attack settings.
        n_images: None for the whole test split (as the paper reports), or a
            class-stratified sample of that many test images.
    Returns:
        The records, clean accuracy first: {"kind", settings..., "n_images",
        "accuracy" (%), "seconds"}.
    """
    images, labels = test_images(run, n_images, data_dir, device)
    model, records = None, []
    for config in [None, *configs]:  # None: clean accuracy
        settings = {"kind": "clean"} if config is None else config.settings()
        key = {**settings, "n_images": len(labels)}
        found = run.find_evaluation(key)
        if found is not None:
            records.append(found)
            continue
        if model is None:
            model = run.load_model(device)
        started = time.perf_counter()
        if config is None:
            value = accuracy(model, images, labels)
        else:
            value = adversarial_accuracy(model, images, labels, config, progress=progress)
        record = {**key, "accuracy": value, "seconds": round(time.perf_counter() - started, 3)}
        run.add_evaluation(record)  # after each, so a killed evaluation keeps what it finished
        records.append(record)
    return records
