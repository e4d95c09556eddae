"""The registry of evaluations, and the one path that makes and stores their records
(``evaluated``); docs/extending.md shows a plugin's evaluation."""

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import torch
from torch import Tensor, nn

from regionmix_utils.data import load_dataset
from regionmix_utils.models import evaluating
from regionmix_utils.runs import RECORD_KINDS, TIMED, Predictions, Run

COMMON_KEYS = ("kind", "n_images")  # identify every record

# compute(model, images [N, C, H, W] in [0, 1], labels [N], **settings) -> [N] | Outcome
Compute = Callable[..., "Tensor | Outcome"]


@dataclass(frozen=True)
class Outcome:
    """What ``compute`` returns when it measures more than the accuracy: ``predicted`` [N],
    declared ``measures``, ``logits`` [N, K] kept as float16, other per-image ``arrays``."""

    predicted: Tensor
    measures: dict = field(default_factory=dict)
    logits: Tensor | None = None
    arrays: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    """One kind of evaluation record: ``keys`` identify a record besides ``kind`` and
    ``n_images``; ``measures`` it measures (``TIMED`` always too); ``per_image`` pairs two
    runs ("correct"); ``rerun`` makes its records (default ``regionmix evaluate --kind``);
    ``compute`` (None: made by its own command); ``table`` the paper's number (None: its
    own, titled ``title``); ``context``: ``compute`` also takes ``run=`` and ``data_dir=``."""

    kind: str
    title: str
    caption: str
    keys: tuple[str, ...] = ()
    measures: tuple[str, ...] = ("accuracy",)
    per_image: str = "correct"
    rerun: str = ""
    compute: Compute | None = None
    table: int | None = None
    context: bool = False

    def __post_init__(self) -> None:
        if not self.kind or not self.kind.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"kind must be a name such as 'flipped', got {self.kind!r}")
        if self.per_image != "correct":
            raise ValueError(f"per_image must be 'correct', got {self.per_image!r}")
        if overlap := set(self.keys) & {*self.measures, *COMMON_KEYS, *TIMED}:
            raise ValueError(f"evaluation {self.kind!r}: {sorted(overlap)} cannot be both a "
                             "setting and a measured value")  # fmt: skip

    @property
    def command(self) -> str:
        return self.rerun or f"regionmix evaluate --kind {self.kind}"

    def settings(self, n_images: int, **values) -> dict:
        """The record's identifying settings; ValueError unless ``values`` are the ``keys``."""
        if set(values) != set(self.keys):
            raise ValueError(f"evaluation {self.kind!r} takes the settings {self.keys}, got "
                             f"{tuple(values)}")  # fmt: skip
        return {"kind": self.kind, **{k: values[k] for k in self.keys}, "n_images": n_images}


register_evaluation = RECORD_KINDS.register
registered_evaluation = RECORD_KINDS.temporary
get_evaluation = RECORD_KINDS.get
evaluation_kinds = RECORD_KINDS.names


@torch.no_grad()
def predictions(model: nn.Module, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """Classes [N] and float32 logits [N, K] of images [N, 3, H, W] in [0, 1], batched."""
    with evaluating(model):
        logits = torch.cat([model(x).float() for x in images.split(batch_size)])
    return logits.argmax(1), logits


def predict(model: nn.Module, images: Tensor, batch_size: int = 500) -> Tensor:
    """The predicted classes [N] (int64) of images [N, C, H, W] in [0, 1]."""
    return predictions(model, images, batch_size)[0]


def test_images(run: Run, n_images: int | None = None, data_dir=None,
                device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:  # fmt: skip
    """The run's test images in [0, 1] and labels: whole, or a stratified ``n_images``."""
    test = load_dataset(run.config.dataset, data_dir, n_train=1, n_test=n_images).test
    return test.images.to(device).float() / 255, test.labels.to(device)


def clean_outcome(model: nn.Module, images: Tensor, labels: Tensor, **settings) -> Outcome:
    predicted, logits = predictions(model, images)
    return Outcome(predicted, logits=logits)


def evaluated(run: Run, spec: Evaluation, key: dict, images: Tensor, labels: Tensor, *,
              data_dir=None, compute: Compute | None = None,
              model: Callable[[], nn.Module] | None = None, store: bool = True,
              **options) -> tuple[dict, Predictions]:  # fmt: skip
    """The record of settings ``key`` and its per-image predictions: the stored ones when
    both are there, else ``compute`` (default ``spec.compute``) of ``model()`` (default the
    run's) on images [N, C, H, W], labels [N], plus ``options``; stored when ``store``.
    ValueError: ``compute`` returned other than one class per image [N], or measured a
    value the evaluation does not declare."""
    found = run.find_evaluation(key) if store else None
    if found is not None and (stored := run.predictions(key)) is not None:
        return found, stored
    started = time.perf_counter()
    net = (model or functools.partial(run.load_model, images.device))()
    settings = {k: v for k, v in key.items() if k not in COMMON_KEYS}
    context = {"run": run, "data_dir": data_dir} if spec.context else {}
    with evaluating(net), torch.no_grad():
        outcome = (compute or spec.compute)(net, images, labels, **settings, **context, **options)
    outcome = outcome if isinstance(outcome, Outcome) else Outcome(outcome)
    predicted, labels = outcome.predicted.cpu(), labels.cpu()
    logits = None if outcome.logits is None else outcome.logits.cpu()
    stored = Predictions.from_outputs(predicted, labels, logits, outcome.arrays)  # checks [N]
    if undeclared := sorted(set(outcome.measures) - set(spec.measures)):
        raise ValueError(f"evaluation {spec.kind!r}: compute measured {undeclared}, which "
                         f"its measures {spec.measures} do not declare")  # fmt: skip
    record = {**key, "accuracy": 100.0 * int((predicted == labels).sum()) / len(labels),
              **outcome.measures, "seconds": round(time.perf_counter() - started, 3),
              "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    if store:
        run.add_evaluation(record, stored)
    return record, stored


def measure(run: Run, kind: str, n_images: int | None = None, data_dir=None,
            device: str | torch.device = "cpu", store: bool = False, **settings,
            ) -> tuple[dict, Predictions]:  # fmt: skip
    """A registered evaluation with ``compute`` of a finished run on its test images (whole,
    or a stratified ``n_images``): record and ``Predictions``, stored and reused if ``store``.
    ValueError: an unknown kind, one made by its own command, or undeclared settings."""
    spec = get_evaluation(kind)
    if spec.compute is None:
        raise ValueError(f"evaluation {kind!r} is made by its own command: {spec.command}")
    images, labels = test_images(run, n_images, data_dir, device)
    key = spec.settings(len(labels), **settings)
    return evaluated(run, spec, key, images, labels, data_dir=data_dir, store=store)


def evaluate(run: Run, kind: str, n_images: int | None = None, data_dir=None,
             device: str | torch.device = "cpu", **settings) -> dict:  # fmt: skip
    """``measure``, stored (a stored record is reused): {"kind", settings..., "n_images",
    "accuracy" (%), measures..., "seconds", "time"}."""
    return measure(run, kind, n_images, data_dir, device, store=True, **settings)[0]


CLEAN = register_evaluation(Evaluation(
    "clean", "Clean test accuracy", "test accuracy (%) on the clean test images",
    rerun="regionmix calibration"))  # fmt: skip
