"""Calibration beyond the paper: ECE (15 bins, top label), NLL and Brier score, before and
after temperature scaling fitted on held-out training images (Guo et al., 2017), and
reliability diagrams' numbers (docs/reproducing.md)."""

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.functional.classification import binary_calibration_error

from regionmix_utils.data import holdout_split, load_dataset
from regionmix_utils.evaluation import registry
from regionmix_utils.runs import Run

N_BINS = 15
_BELOW_ONE = float(torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)))  # 1 - 2**-24
SCALED = ("temperature", "ece_scaled", "nll_scaled", "brier_scaled")


def _class_indices(labels: Tensor) -> Tensor:
    """Labels [N] of any integer dtype as int64; TypeError otherwise."""
    dtype = getattr(labels, "dtype", type(labels).__name__)
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.is_complex() \
            or dtype == torch.bool:  # fmt: skip
        raise TypeError(f"labels must be integer class indices (any integer dtype) in a "
                        f"torch.Tensor, got {dtype}")  # fmt: skip
    return labels.long()


def top_label(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """Top-label confidence [N] of ``logits / T`` [N, K], float32 capped below 1 (else
    torchmetrics bins a confidence within 6e-8 of 1 apart), and whether it is right [N]."""
    labels = _class_indices(labels)
    confidence, predicted = (logits.double() / temperature).softmax(1).max(1)
    return confidence.float().clamp(max=_BELOW_ONE), predicted == labels


def predict_logits(model: nn.Module, images: Tensor, batch_size: int = 500) -> Tensor:
    """[N, K] float32 logits of images [N, 3, H, W] in [0, 1], in eval mode."""
    return registry.predictions(model, images, batch_size)[1]


def calibration_metrics(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> dict:
    """ECE (%), NLL, Brier score and accuracy (%) of ``logits / T`` [N, K], labels [N]."""
    labels = _class_indices(labels)
    confidence, correct = top_label(logits, labels, temperature)
    ece = binary_calibration_error(confidence, correct.long(), n_bins=N_BINS, norm="l1")
    logits = logits.double() / temperature
    probs = logits.softmax(1)
    return {"ece": 100.0 * float(ece), "nll": float(F.cross_entropy(logits, labels)),
            "brier": float(((probs - F.one_hot(labels, logits.shape[1])) ** 2).sum(1).mean()),
            "accuracy": 100.0 * float((probs.argmax(1) == labels).double().mean())}  # fmt: skip


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The T > 0 minimising the NLL of ``logits / T`` [N, K] (LBFGS on log T)."""
    labels = _class_indices(labels)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    logits = logits.double()
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    with torch.enable_grad():  # also under an evaluation's no_grad
        optimiser.step(closure)
    return float(log_t.detach().exp())


def reliability(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> dict:
    """Per ECE bin [15]: ``lower`` edge, mean ``confidence``, ``accuracy`` (NaN: none), count."""
    confidence, right = top_label(logits, labels, temperature)
    edges = torch.linspace(0, 1, N_BINS + 1)  # float32, as torchmetrics makes them
    index = torch.bucketize(confidence, edges, right=True) - 1
    count = torch.bincount(index, minlength=N_BINS).double()
    correct = torch.bincount(index, right.double(), minlength=N_BINS)
    conf_sum = torch.bincount(index, confidence.double(), minlength=N_BINS)
    return {"lower": torch.arange(N_BINS, dtype=torch.float64) / N_BINS,
            "confidence": conf_sum / count,  # an empty bin's 0 / 0 is NaN
            "accuracy": correct / count, "count": count}  # fmt: skip


def _calibration(model, images, labels, *, holdout: int, run: Run, data_dir) -> registry.Outcome:
    logits = predict_logits(model, images).cpu()
    measures = calibration_metrics(logits, labels.cpu())
    del measures["accuracy"]  # the record's, from the predicted classes
    scaled = dict.fromkeys(SCALED)
    if holdout:
        held = holdout_split(load_dataset(run.config.dataset, data_dir).train, holdout)[1]
        held_logits = predict_logits(model, held.images.to(images.device).float() / 255).cpu()
        temperature = fit_temperature(held_logits, held.labels)
        after = calibration_metrics(logits, labels.cpu(), temperature)
        scaled = {"temperature": temperature} | {f"{m}_scaled": after[m] for m in measures}
    return registry.Outcome(logits.argmax(1), measures | scaled, logits)


CALIBRATION = registry.register_evaluation(registry.Evaluation(
    "calibration", "Calibration", "ECE, NLL and Brier score before and after temperature "
    "scaling", keys=("holdout",), measures=("accuracy", "ece", "nll", "brier", *SCALED),
    rerun="regionmix calibration", table=5, context=True))  # fmt: skip


def evaluate_calibration(run: Run, n_images: int | None = None, data_dir=None,
                         device="cpu") -> dict:  # fmt: skip
    """The calibration record of a finished run on its test split (whole, or a stratified
    ``n_images``), stored with logits (``registry.evaluated``); scaled values None without
    a holdout. The clean record of those images is stored from the same predictions."""
    images, labels = registry.test_images(run, n_images, data_dir, device)
    model = functools.cache(functools.partial(run.load_model, device))
    key = CALIBRATION.settings(len(labels), holdout=run.config.holdout)
    record, stored = registry.evaluated(run, CALIBRATION, key, images, labels, data_dir=data_dir,
                                        compute=_calibration, model=model)  # fmt: skip
    clean = {"kind": "clean", "n_images": len(labels)}
    if run.predictions(clean) is None:
        predicted = torch.from_numpy(stored.predicted).long()
        registry.evaluated(run, registry.CLEAN, clean, images, labels, model=model,
                           compute=lambda *args, **kwargs: predicted)  # fmt: skip
    return record


def stored_calibration(run: Run) -> tuple[dict, Tensor, Tensor]:
    """(record, logits [N, K] float32, labels [N] int64) of a run's stored calibration on
    the most images, without the model; LookupError if there is none with logits."""
    records = [r for r in run.evaluations() if r.get("kind") == "calibration"]
    for record in sorted(records, key=lambda r: -r["n_images"]):
        key = {k: record[k] for k in ("kind", "n_images", "holdout")}
        stored = run.predictions(key)
        if stored is not None and stored.logits is not None and stored.labels is not None:
            logits = torch.from_numpy(stored.logits.astype("float32"))
            return record, logits, torch.from_numpy(stored.labels.astype("int64"))
    raise LookupError(f"{run.path} has no calibration record with stored logits: run `regionmix "
                      f"calibration --runs-dir {run.path.parents[2]}` first")  # fmt: skip
