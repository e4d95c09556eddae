"""The registry of evaluations: the one place that says what an evaluation is.

An ``Evaluation`` declares the record ``kind`` it stores in a run's ``eval.json``, the
settings that identify a record (``keys``; ``kind`` and ``n_images`` always do), the
values it measures (``measures``), what it gives per test image for paired comparisons
(``per_image``), its table's title and caption, and the command that makes it. The
tables (``results``), the paired comparison (``--compare``), the command line
(``regionmix evaluate``) and ``runs.evaluation_settings`` read the registry.

The built-in evaluations (clean accuracy, the attacks, calibration, corruptions) are
registered with their own evaluate functions (``robustness.evaluate_run``,
``calibration.evaluate_calibration``, ``corruptions.evaluate_corruptions``). A new one
needs only ``compute``: ``evaluate`` loads the run's test images and model, runs it in
batches, checks and stores the record with each image's prediction, and reuses a record
already stored. A plugin (a module named in ``$REGIONMIX_PLUGINS``) registers one so::

    from regionmix_utils.evaluation.registry import Evaluation, predict, register_evaluation

    def flipped(model, images, labels):
        return predict(model, images.flip(-1))  # [N] predicted classes

    register_evaluation(Evaluation(
        kind="flipped", title="Accuracy on horizontally flipped test images",
        caption="test accuracy (%) on the test images mirrored left to right",
        compute=flipped,
    ))

after which ``regionmix evaluate --kind flipped`` evaluates every finished run,
``regionmix table`` tabulates it and ``regionmix table --compare region:mixup`` pairs it.
A ``compute`` that measures more than accuracy returns an ``Outcome`` (the classes, its
declared ``measures``, and per-image values to keep beside them); one that needs more
than the test images (another dataset, the run's config) declares ``context=True`` and
is given ``run=`` and ``data_dir=``. ``measure`` evaluates without storing anything.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from regionmix_utils.runs import Predictions

__all__ = [
    "COMMON_KEYS",
    "Evaluation",
    "Outcome",
    "evaluate",
    "evaluation_kinds",
    "get_evaluation",
    "measure",
    "predict",
    "register_evaluation",
    "registered_evaluation",
    "unregister_evaluation",
]

COMMON_KEYS = ("kind", "n_images")  # identify every record
TIMED = "seconds"  # every record may say how long it took; never a setting

# compute(model, images [N, C, H, W] float in [0, 1], labels [N], **settings) -> [N] classes
# or an Outcome
Compute = Callable[..., "Tensor | Outcome"]


@dataclass(frozen=True)
class Outcome:
    """What ``compute`` returns when it measures more than the accuracy.

    Attributes:
        predicted: [N] predicted classes of the test images.
        measures: further values of the record, each named in the evaluation's ``measures``.
        logits: [N, K] logits to keep per test image (stored as float16), or None.
        arrays: other per-image values to keep, by name, as CPU tensors or arrays of any
            length (scores of images beyond the test set, say).
    """

    predicted: Tensor
    measures: dict[str, float] = field(default_factory=dict)
    logits: Tensor | None = None
    arrays: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    """One kind of evaluation record.

    Attributes:
        kind: the record's ``kind`` ("fgsm", "calibration", "flipped").
        title: the table's title ("Accuracy on horizontally flipped test images").
        caption: what the numbers are, for the table's caption.
        keys: the settings that identify a record besides ``kind`` and ``n_images``
            (("eps",) for FGSM), in the order a command gives them.
        measures: the values a record measures (("accuracy",)); ``seconds`` too.
        per_image: what pairs two runs image by image: "correct" (each image right or
            wrong, from the stored predicted classes).
        rerun: the command that makes the record (``--runs-dir`` is added); default
            ``regionmix evaluate --kind <kind>``.
        compute: for ``evaluate``: the predicted classes [N] (or an ``Outcome``) of a
            model in eval mode on the test images [N, C, H, W] (floats in [0, 1]) with
            labels [N], under ``torch.no_grad``; None for a built-in evaluation with its
            own function.
        table: the number of its table (the paper's 3-4 for attacks, 5 calibration, 6
            corruptions; None: a table of its own titled ``title``).
        context: ``compute`` also takes ``run=`` (the ``runs.Run``) and ``data_dir=``
            (the data folder; None: ``data.data_root()``).
    """

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
        overlap = set(self.keys) & (set(self.measures) | set(COMMON_KEYS) | {TIMED})
        if overlap:
            raise ValueError(f"evaluation {self.kind!r}: {sorted(overlap)} cannot be both a "
                             "setting and a measured value")  # fmt: skip

    @property
    def command(self) -> str:
        """The command that makes its records."""
        return self.rerun or f"regionmix evaluate --kind {self.kind}"

    def settings(self, n_images: int, **values) -> dict:
        """The record's identifying settings: kind, ``keys`` (from ``values``), n_images.

        Raises:
            ValueError: a key is missing, or ``values`` has one it does not declare.
        """
        unknown = sorted(set(values) - set(self.keys))
        missing = [k for k in self.keys if k not in values]
        if unknown or missing:
            raise ValueError(f"evaluation {self.kind!r} takes the settings {self.keys}, got "
                             f"{tuple(values)}")  # fmt: skip
        return {"kind": self.kind, **{k: values[k] for k in self.keys}, "n_images": n_images}


_REGISTRY: dict[str, Evaluation] = {}


def register_evaluation(spec: Evaluation) -> Evaluation:
    """Add an evaluation; its kind must be new. Returns it."""
    if spec.kind in _REGISTRY:
        raise ValueError(f"an evaluation of kind {spec.kind!r} is already registered")
    _REGISTRY[spec.kind] = spec
    return spec


def unregister_evaluation(kind: str) -> None:
    """Remove an evaluation (tests register toy ones for a while)."""
    _REGISTRY.pop(kind, None)


@contextlib.contextmanager
def registered_evaluation(spec: Evaluation) -> Iterator[Evaluation]:
    """``with registered_evaluation(Evaluation(...)):`` it exists inside the block only."""
    register_evaluation(spec)
    try:
        yield spec
    finally:
        unregister_evaluation(spec.kind)


def get_evaluation(kind: str) -> Evaluation:
    """The evaluation of record kind ``kind``; a one-line error naming the kinds otherwise."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise ValueError(f"evaluation kind must be one of {evaluation_kinds()}, got "
                         f"{kind!r}") from None  # fmt: skip


def evaluation_kinds() -> tuple[str, ...]:
    """The registered kinds, in registration order (the built-in ones first)."""
    return tuple(_REGISTRY)


def measured_keys(kind: str | None) -> frozenset[str]:
    """What a record of ``kind`` measures (and ``seconds``); empty for a kind not
    registered."""
    spec = _REGISTRY.get(kind)
    return frozenset((*spec.measures, TIMED)) if spec else frozenset()


# ----------------------------------------------------------------------- evaluating


def predict(model: torch.nn.Module, images: Tensor, batch_size: int = 500) -> Tensor:
    """The predicted classes [N] (int64) of ``model`` on images [N, C, H, W] in [0, 1],
    in batches, in eval mode and float32 (``robustness.predictions``)."""
    from regionmix_utils.evaluation.robustness import predictions

    return predictions(model, images, batch_size)[0]


def evaluate(run, kind: str, n_images: int | None = None, data_dir=None,
             device: str | torch.device = "cpu", **settings) -> dict:  # fmt: skip
    """One evaluation of a finished run: its ``compute`` on the run's test images (whole,
    or a class-stratified sample of ``n_images``), stored in ``eval.json`` with each
    image's prediction (``Run.add_evaluation``); a record already stored with its
    predictions is returned instead.

    Returns:
        The record: {"kind", settings..., "n_images", "accuracy" (%), measures...,
        "seconds"}.
    Raises:
        ValueError: an unknown kind, a built-in kind (use its own function), settings
            the evaluation does not declare, or measured values it does not declare.
    """
    spec, images, labels, key = _prepare(run, kind, n_images, data_dir, device, settings)
    found = run.find_evaluation(key)
    if found is not None and run.predictions(key) is not None:
        return found
    record, predictions = _measure(spec, run, images, labels, key, data_dir, settings)
    run.add_evaluation(record, predictions)
    return record


def measure(
    run, kind: str, n_images: int | None = None, data_dir=None,
    device: str | torch.device = "cpu", **settings,
) -> tuple[dict, Predictions]:  # fmt: skip
    """``evaluate`` without storing or reusing anything, for a run that stays as it is (a
    results bundle's copy): the record and its ``runs.Predictions``."""
    spec, images, labels, key = _prepare(run, kind, n_images, data_dir, device, settings)
    return _measure(spec, run, images, labels, key, data_dir, settings)


def _prepare(run, kind, n_images, data_dir, device, settings):
    from regionmix_utils.evaluation.robustness import test_images

    spec = get_evaluation(kind)
    if spec.compute is None:
        raise ValueError(f"evaluation {kind!r} is made by its own command: {spec.command}")
    images, labels = test_images(run, n_images, data_dir, device)
    return spec, images, labels, spec.settings(len(labels), **settings)


def _measure(spec: Evaluation, run, images, labels, key, data_dir, settings):
    from regionmix_utils.models import evaluating
    from regionmix_utils.runs import Predictions

    started = time.perf_counter()
    model = run.load_model(images.device)
    context = {"run": run, "data_dir": data_dir} if spec.context else {}
    with evaluating(model), torch.no_grad():
        outcome = spec.compute(model, images, labels, **settings, **context)
    outcome = outcome if isinstance(outcome, Outcome) else Outcome(outcome)
    predicted, labels = outcome.predicted.cpu(), labels.cpu()
    if predicted.shape != labels.shape:
        raise ValueError(f"evaluation {spec.kind!r}: compute returned shape "
                         f"{tuple(predicted.shape)}, not one class per image "
                         f"{tuple(labels.shape)}")  # fmt: skip
    undeclared = sorted(set(outcome.measures) - set(spec.measures))
    if undeclared:
        raise ValueError(f"evaluation {spec.kind!r}: compute measured {undeclared}, which "
                         f"its measures {spec.measures} do not declare")  # fmt: skip
    record = {**key, "accuracy": 100.0 * (predicted == labels).double().mean().item(),
              **outcome.measures, TIMED: time.perf_counter() - started}  # fmt: skip
    logits = None if outcome.logits is None else outcome.logits.cpu()
    return record, Predictions.from_outputs(predicted, labels, logits, outcome.arrays)


def _register_builtins() -> None:
    from regionmix_utils.evaluation.robustness import ATTACKS

    register_evaluation(Evaluation(
        "clean", "Clean test accuracy", "test accuracy (%) on the clean test images",
        rerun="regionmix calibration",
    ))  # fmt: skip
    for attack in ATTACKS.values():
        register_evaluation(Evaluation(
            attack.name, f"Accuracy under {attack.name}",
            f"test accuracy (%) under the {attack.name} attack",
            keys=("eps", *attack.fields), measures=("accuracy", "stages"),
            rerun=f"regionmix attack --attack {attack.name}", table=attack.table,
        ))  # fmt: skip
    register_evaluation(Evaluation(
        "calibration", "Calibration", "ECE, NLL and Brier score before and after temperature "
        "scaling", keys=("holdout",),
        measures=("accuracy", "ece", "nll", "brier", "temperature", "ece_scaled", "nll_scaled",
                  "brier_scaled"),
        rerun="regionmix calibration", table=5,
    ))  # fmt: skip
    register_evaluation(Evaluation(
        "corruption", "Common corruptions", "test accuracy (%) under common corruptions",
        keys=("corruption", "severity", "source"), rerun="regionmix corruptions", table=6,
    ))  # fmt: skip
    # Written as a plugin is (it registers itself as it loads), on the names above.
    import regionmix_utils.evaluation.ood  # noqa: F401


_register_builtins()
