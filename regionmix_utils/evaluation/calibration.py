"""Calibration beyond the paper: ECE, NLL and Brier score, before and after temperature
scaling, and the numbers behind reliability diagrams.

Mixup is known to look well calibrated before temperature scaling and worse after it
(Wang et al., "On the pitfall of mixup for uncertainty calibration", CVPR 2023); these
measures ask the same of Region Mixup. ECE is torchmetrics' calibration error with 15
equal-width bins (L1), fed the top-label confidence and whether the top label is right
(``binary_calibration_error``), with every confidence capped at the largest float32
below 1: torchmetrics bins in float32, where a confidence within 6e-8 of 1 (a logit
margin above about 17) rounds to 1.0 and would land in a 16th bin of its own; capped, it
lands in the last of the 15, so ECE is exactly what the reliability diagram's bins show
(``reliability`` bins the same capped float32 confidences the same way). The
temperature is fitted on training images held out of training (``TrainConfig.holdout``),
never on the test split; runs trained on the whole training set (the paper's recipe) get
no scaled numbers.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regionmix_utils.runs import Predictions

__all__ = [
    "N_BINS",
    "calibration_metrics",
    "evaluate_calibration",
    "fit_temperature",
    "predict_logits",
    "reliability",
    "stored_calibration",
    "top_label",
]

N_BINS = 15
_BELOW_ONE = float(torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)))  # 1 - 2**-24


def _class_indices(labels: Tensor) -> Tensor:
    """``labels`` [N] of any integer dtype (CIFAR-10-C's are uint8) as int64, the dtype
    ``F.one_hot`` and ``F.cross_entropy`` take.

    Raises:
        TypeError: ``labels`` is not a tensor of integers (float, bool and complex are
            refused: they are no class indices).
    """
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a torch.Tensor of class indices, got "
                        f"{type(labels).__name__}")  # fmt: skip
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices (any integer dtype), got "
                        f"{labels.dtype}")  # fmt: skip
    return labels.long()


def top_label(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """The top-label confidence of ``logits / T`` as float32, capped below 1 (see the
    module docstring), and whether the top label is right, both [N].

    Args:
        logits: [N, K]; labels: [N] class indices of any integer dtype.
    Raises:
        TypeError: labels that are not integers.
    """
    labels = _class_indices(labels)
    confidence, predicted = (logits.double() / temperature).softmax(1).max(1)
    return confidence.float().clamp(max=_BELOW_ONE), predicted == labels


@torch.no_grad()
def predict_logits(model: nn.Module, images: Tensor, batch_size: int = 500) -> Tensor:
    """[N, K] float32 logits of images [N, 3, H, W] in [0, 1] (eval mode, float32), in
    batches (``robustness.predictions``)."""
    from regionmix_utils.evaluation.robustness import predictions

    return predictions(model, images, batch_size)[1]


def calibration_metrics(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> dict:
    """ECE (15 bins, top label, %), NLL, Brier score and accuracy (%) of ``logits / T``.

    Args:
        logits: [N, K]; labels: [N] class indices of any integer dtype.
    Raises:
        TypeError: labels that are not integers.
    """
    from torchmetrics.functional.classification import binary_calibration_error

    labels = _class_indices(labels)
    confidence, correct = top_label(logits, labels, temperature)
    ece = binary_calibration_error(confidence, correct.long(), n_bins=N_BINS, norm="l1")
    logits = logits.double() / temperature
    probs = logits.softmax(1)
    one_hot = F.one_hot(labels, logits.shape[1]).double()
    return {
        "ece": 100.0 * float(ece),
        "nll": float(F.cross_entropy(logits, labels)),
        "brier": float(((probs - one_hot) ** 2).sum(1).mean()),
        "accuracy": 100.0 * float((probs.argmax(1) == labels).double().mean()),
    }


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The temperature T > 0 that minimises the NLL of ``logits / T`` (Guo et al., 2017),
    by LBFGS on log T.

    Args:
        logits: [N, K]; labels: [N] class indices of any integer dtype.
    Raises:
        TypeError: labels that are not integers.
    """
    labels = _class_indices(labels)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    logits = logits.double()
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp())


def reliability(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> dict:
    """Per bin (15 equal-width bins [i/15, (i+1)/15) of top-label confidence, binned as
    ``calibration_metrics`` bins them for ECE): lower edge, mean confidence, accuracy
    (NaN where empty) and count; for reliability diagrams. ``labels``: [N] class
    indices of any integer dtype."""
    confidence, right = top_label(logits, labels, temperature)
    edges = torch.linspace(0, 1, N_BINS + 1)  # float32, as torchmetrics makes them
    index = torch.bucketize(confidence, edges, right=True) - 1
    count = torch.bincount(index, minlength=N_BINS).double()
    correct = torch.bincount(index, right.double(), minlength=N_BINS)
    conf_sum = torch.bincount(index, confidence.double(), minlength=N_BINS)
    nan = torch.full_like(count, float("nan"))
    return {
        "lower": torch.arange(N_BINS, dtype=torch.float64) / N_BINS,
        "confidence": torch.where(count > 0, conf_sum / count.clamp(min=1), nan),
        "accuracy": torch.where(count > 0, correct / count.clamp(min=1), nan),
        "count": count,
    }


def evaluate_calibration(run, n_images: int | None = None, data_dir=None, device="cpu") -> dict:
    """Calibration of a finished run on its test split (whole, or a class-stratified
    sample of ``n_images``), stored as a record in its ``eval.json`` and reused:
    {"kind": "calibration", "n_images", "holdout", "ece", "nll", "brier", "accuracy",
    "temperature", "ece_scaled", "nll_scaled", "brier_scaled", "seconds"}. The scaled
    values and the temperature are None for runs trained without a holdout.

    Each image's prediction and float16 logits are stored with the record
    (``Run.add_evaluation``), and the same predictions as the clean-accuracy record
    {"kind": "clean", "n_images"} when that has none yet, for paired comparisons
    (``evaluation.statistics``). A record stored before predictions were kept is
    evaluated again, to add them."""
    from regionmix_utils.data import holdout_split, load_dataset
    from regionmix_utils.evaluation.robustness import test_images

    images, labels = test_images(run, n_images, data_dir, device)
    config = run.config
    key = {"kind": "calibration", "n_images": len(labels), "holdout": config.holdout}
    found = run.find_evaluation(key)
    if found is not None and run.predictions(key) is not None:
        return found
    started = time.perf_counter()
    model = run.load_model(device)
    logits = predict_logits(model, images).cpu()
    record = {**key, **calibration_metrics(logits, labels.cpu())}
    scaled = {"temperature": None, "ece_scaled": None, "nll_scaled": None, "brier_scaled": None}
    if config.holdout:
        held = holdout_split(load_dataset(config.dataset, data_dir).train, config.holdout)[1]
        held_logits = predict_logits(model, held.images.to(device).float() / 255).cpu()
        temperature = fit_temperature(held_logits, held.labels)
        after = calibration_metrics(logits, labels.cpu(), temperature)
        scaled = {"temperature": temperature, "ece_scaled": after["ece"],
                  "nll_scaled": after["nll"], "brier_scaled": after["brier"]}  # fmt: skip
    seconds = round(time.perf_counter() - started, 3)
    record |= scaled | {"seconds": seconds}
    predicted = logits.argmax(1)
    run.add_evaluation(record, Predictions.from_outputs(predicted, labels.cpu(), logits))
    clean = {"kind": "clean", "n_images": len(labels)}
    if run.predictions(clean) is None:
        run.add_evaluation({**clean, "accuracy": record["accuracy"], "seconds": seconds},
                           Predictions.from_outputs(predicted, labels.cpu()))  # fmt: skip
    return record


def stored_calibration(run) -> tuple[dict, Tensor, Tensor]:
    """A run's stored calibration record (on the most test images evaluated) with the
    float16 logits stored beside it, without the model or the images (a results
    bundle's runs keep no weights but these).

    Returns:
        (record, logits [N, K] float32, labels [N] int64).
    Raises:
        LookupError: the run has no calibration record with logits; run
            ``evaluate_calibration`` (``regionmix calibration``) first.
    """
    records = [r for r in run.evaluations() if r.get("kind") == "calibration"]
    for record in sorted(records, key=lambda r: -r["n_images"]):
        key = {k: record[k] for k in ("kind", "n_images", "holdout")}
        stored = run.predictions(key)
        if stored is not None and stored.logits is not None and stored.labels is not None:
            logits = torch.from_numpy(stored.logits.astype("float32"))
            return record, logits, torch.from_numpy(stored.labels.astype("int64"))
    raise LookupError(
        f"{run.path} has no calibration record with stored logits: run "
        f"`regionmix calibration --runs-dir {run.path.parents[2]}` first"
    )
