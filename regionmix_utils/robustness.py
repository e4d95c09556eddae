"""Adversarial robustness: white-box FGSM and black-box Square (Appendix A.2 of the paper).

Both attacks come from torchattacks and work on images in [0, 1] (the models normalise
inside), with eps in the same pixel units. The paper does not state eps; the default is
8/255, the common choice on CIFAR. Square uses the L-inf norm and the paper's budget of
100 queries.

torchattacks' Square calls ``torch.manual_seed(seed)`` on every batch; each call here
runs inside ``torch.random.fork_rng``, so the global RNG is the same afterwards as
before, and the same seed gives the same numbers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from regionmix_utils.files import atomic_write_text

__all__ = [
    "ATTACKS",
    "AttackConfig",
    "accuracy",
    "adversarial_accuracy",
    "evaluate_run",
    "load_run_model",
    "make_attack",
]

ATTACKS = ("fgsm", "square")
DEFAULT_EPS = 8 / 255


@dataclass(frozen=True)
class AttackConfig:
    """One attack setting. eps is in [0, 1] pixel units."""

    attack: str = "fgsm"
    eps: float = DEFAULT_EPS
    queries: int = 100  # Square only
    seed: int = 0  # Square only

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise ValueError(f"attack must be one of {ATTACKS}, got {self.attack!r}")
        if not 0 <= self.eps <= 1:
            raise ValueError(f"eps must be in [0, 1] (pixel units, e.g. 8/255), got {self.eps}")
        if self.queries < 1:
            raise ValueError(f"queries must be >= 1, got {self.queries}")

    @property
    def key(self) -> str:
        """Name of this setting in ``eval.json``."""
        if self.attack == "fgsm":
            return f"fgsm eps={self.eps:.6g}"
        return f"square eps={self.eps:.6g} queries={self.queries} seed={self.seed}"


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
    """The torchattacks object for ``config``."""
    ta = _torchattacks()
    if config.attack == "fgsm":
        return ta.FGSM(model, eps=config.eps)
    return ta.Square(
        model, norm="Linf", eps=config.eps, n_queries=config.queries, n_restarts=1, seed=config.seed
    )


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Accuracy in percent of ``model`` (in eval mode) on images [N, 3, H, W] in [0, 1]."""
    was_training = model.training
    model.eval()
    correct = sum(
        int((model(x).argmax(1) == y).sum())
        for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True)
    )
    model.train(was_training)
    return 100.0 * correct / len(labels)


def adversarial_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    config: AttackConfig,
    batch_size: int = 500,
    progress: bool = True,
) -> float:
    """Accuracy in percent on adversarial versions of ``images`` (in [0, 1]) built by ``config``.

    The model is evaluated in eval mode and left in the mode it had.
    """
    was_training = model.training
    model.eval()
    attack = make_attack(model, config)
    devices = [images.device.index or 0] if images.is_cuda else []
    correct = 0
    batches = zip(images.split(batch_size), labels.split(batch_size), strict=True)
    total = -(-len(labels) // batch_size)
    for x, y in tqdm(batches, total=total, desc=config.key, disable=not progress, leave=False):
        with torch.random.fork_rng(devices=devices):
            adversarial = attack(x, y)
        with torch.no_grad():
            correct += int((model(adversarial).argmax(1) == y).sum())
    model.train(was_training)
    return 100.0 * correct / len(labels)


def load_run_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict]:
    """The final model of a finished run and its config.json, in eval mode."""
    from regionmix_utils.models import build_model

    path = Path(path)
    final = path / "final.pt"
    if not final.exists():
        raise FileNotFoundError(f"{path} has no final.pt: the run is not finished")
    config = json.loads((path / "config.json").read_text())
    state = torch.load(final, map_location="cpu", weights_only=True)
    model = build_model(config["dataset"], state["linear.weight"].shape[0], config["width"])
    model.load_state_dict(state)
    return model.to(device).eval(), config


def evaluate_run(
    path: str | os.PathLike,
    configs: list[AttackConfig],
    n_images: int = 1000,
    data_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Clean and adversarial accuracy of a finished run on its first ``n_images`` test images.

    Results are kept in the run's ``eval.json`` (written atomically); settings already
    there for the same number of images are reused, not recomputed.
    """
    from regionmix_utils.data import load_dataset

    path = Path(path)
    eval_file = path / "eval.json"
    results = json.loads(eval_file.read_text()) if eval_file.exists() else {}
    if results.get("n_images") != n_images:
        results = {"n_images": n_images}
    todo = [c for c in configs if c.key not in results]
    if not todo and "clean" in results:
        return results
    model, config = load_run_model(path, device)
    splits = load_dataset(config["dataset"], data_dir, n_test=n_images, n_train=1)
    images = splits.test.images.to(device).float() / 255
    labels = splits.test.labels.to(device)
    results["clean"] = accuracy(model, images, labels)
    atomic_write_text(eval_file, json.dumps(results, indent=2) + "\n")
    for attack in todo:  # saved after each, so a killed evaluation keeps what it finished
        results[attack.key] = adversarial_accuracy(model, images, labels, attack, progress=progress)
        atomic_write_text(eval_file, json.dumps(results, indent=2) + "\n")
    return results
