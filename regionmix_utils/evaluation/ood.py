"""Out-of-distribution detection and selective classification (kind "ood"), by three
scores of the logits: MSP, max logit, energy; out-sets CIFAR-100, Tiny ImageNet, SVHN and
noise (docs/reproducing.md). ``regionmix evaluate --kind ood --setting outset=svhn``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.functional import classification
from torchvision.datasets import SVHN

from regionmix_utils import data
from regionmix_utils.evaluation import registry
from regionmix_utils.methods import get_method
from regionmix_utils.runs import EXPORTED, Predictions, Run

if TYPE_CHECKING:
    import pandas as pd

KIND = "ood"
SCORES = ("msp", "maxlogit", "energy")
TPR = 0.95  # FPR at 95% TPR
COVERAGES = {"risk80": 0.8, "risk90": 0.9}
PER_SCORE = ("auroc", "aupr_in", "aupr_out", "fpr95", "aurc", *COVERAGES)
MEASURES = tuple(f"{m}_{s}" for s in SCORES for m in PER_SCORE)

# Tiny ImageNet classes showing a CIFAR-10 class (wnid -> class); the file says why.
_TABLE = Path(__file__).parent.parent / "templates" / "tinyimagenet-cifar10.csv"
TINYIMAGENET_CIFAR10 = dict(line.split(",") for line in _TABLE.read_text().splitlines()
                            if line and not line.startswith(("#", "wnid,")))  # fmt: skip
_CIFAR10_LIKE = ("cifar10", "cifar10-subset")


def scores(logits: Tensor) -> dict[str, Tensor]:
    """Each score of ``SCORES`` of logits [N, K]: [N] float64, higher = more in-set."""
    logits = logits.double()
    return {"msp": logits.softmax(1).amax(1), "maxlogit": logits.amax(1),
            "energy": logits.logsumexp(1)}  # fmt: skip


def _ranked(in_scores: Tensor, out_scores: Tensor) -> tuple[Tensor, Tensor]:
    """Dense ranks [N + M] in [0, 1] and is-in [N + M]: torchmetrics squashes scores outside
    [0, 1] with a float32 sigmoid, which would tie every score above about 17."""
    if len(in_scores) == 0 or len(out_scores) == 0:
        raise ValueError(f"in_scores and out_scores must both hold scores, got "
                         f"{len(in_scores)} and {len(out_scores)}")  # fmt: skip
    values, rank = torch.unique(torch.cat([in_scores, out_scores]).double(), return_inverse=True)
    is_in = torch.cat([torch.ones(len(in_scores)), torch.zeros(len(out_scores))]).long()
    return rank.double() / max(len(values) - 1, 1), is_in


def roc_curve(in_scores: Tensor, out_scores: Tensor) -> tuple[Tensor, Tensor]:
    """FPR and TPR [T] of telling in-scores [N] (positive) from out-scores [M]."""
    return classification.binary_roc(*_ranked(in_scores, out_scores))[:2]


def detection(in_scores: Tensor, out_scores: Tensor) -> dict[str, float]:
    """AUROC, AUPR-In, AUPR-Out, FPR at 95% TPR (%) of in-scores [N] against out-scores
    [M] (higher: more in-distribution); ValueError if either is empty."""
    rank, is_in = _ranked(in_scores, out_scores)
    fpr, tpr, _ = classification.binary_roc(rank, is_in)
    return {"auroc": 100.0 * float(classification.binary_auroc(rank, is_in)),
            "aupr_in": 100.0 * float(classification.binary_average_precision(rank, is_in)),
            "aupr_out": 100.0 * float(classification.binary_average_precision(1 - rank, 1 - is_in)),
            "fpr95": 100.0 * float(fpr[tpr >= TPR][0])}  # fmt: skip


def risk_coverage(confidence: Tensor, correct: Tensor) -> tuple[Tensor, Tensor]:
    """Coverage and risk [T] (float64) of accepting images down to each distinct confidence
    [N] (ties together); risk: the share accepted that ``correct`` [N] marks wrong."""
    if len(confidence) == 0 or confidence.shape != correct.shape:
        raise ValueError(f"confidence and correct must be [N] with N >= 1, got shapes "
                         f"{tuple(confidence.shape)} and {tuple(correct.shape)}")  # fmt: skip
    order = confidence.argsort(descending=True)
    errors = (~correct[order].bool()).double().cumsum(0)
    # images accepted down to the last of each tied group
    accepted = torch.unique_consecutive(confidence[order], return_counts=True)[1].cumsum(0)
    return accepted.double() / len(order), errors[accepted - 1] / accepted.double()


def selective(confidence: Tensor, correct: Tensor) -> dict[str, float]:
    """AURC and the risk at 80% and 90% coverage (%), of confidence [N] and correct [N]."""
    coverage, risk = risk_coverage(confidence, correct)
    steps = torch.diff(coverage, prepend=coverage.new_zeros(1))
    return {"aurc": 100.0 * float((steps * risk).sum())} | {
        name: 100.0 * float(risk[coverage >= level - 1e-12][0]) for name, level in COVERAGES.items()
    }


@dataclass(frozen=True)
class OutSet:
    """An out-set: ``load(root, download)`` (None: noise), and ``overlaps``: per in-set
    checked, {out-set class: the in-set class it shows}."""

    name: str
    title: str
    distance: str
    load: Callable[[Path, bool], data.ImageSet] | None = None
    on_disk: Callable[[Path], bool] = lambda root: True
    overlaps: dict[str, dict[str, str]] | None = None


def _svhn(root: Path, download: bool) -> data.ImageSet:
    """SVHN's test split (torchvision checks its MD5); digit 0 is label 0."""
    try:
        svhn = SVHN(str(root / "svhn"), split="test", download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted."
        raise data.DatasetMissingError(
            f"SVHN's test split is missing or corrupt under {root / 'svhn'}: {err} Fix: "
            f'`python -c "from regionmix_utils.evaluation.ood import load_outset; '
            f"load_outset('svhn', '{root}', download=True)\"`.") from err  # fmt: skip
    images = torch.from_numpy(np.ascontiguousarray(svhn.data))  # [N, 3, 32, 32]
    return data.ImageSet(images, torch.from_numpy(svhn.labels).long(), tuple("0123456789"))


def _tinyimagenet(root: Path, download: bool) -> data.ImageSet:
    """Tiny ImageNet's validation images, classes named by wnid; writes nothing."""
    if download:
        data.download_tinyimagenet(root)
    wnids = data.tinyimagenet_classes(root)[0]
    notes = root / "tiny-imagenet-200" / "val" / "val_annotations.txt"
    if not notes.is_file():
        raise data.DatasetMissingError(f"{notes} is missing: Tiny ImageNet is incomplete. "
                                       f"Fix: `regionmix download tinyimagenet --data-dir "
                                       f"{root}`.")  # fmt: skip
    rows = [line.split("\t")[:2] for line in notes.read_text().splitlines() if line.strip()]
    paths = [notes.parent / "images" / name for name, _ in rows]
    images = data.read_jpegs(paths, progress=False)
    index = {wnid: i for i, wnid in enumerate(wnids)}
    return data.ImageSet(images, torch.tensor([index[w] for _, w in rows]), tuple(wnids))


_NONE = {name: {} for name in (*_CIFAR10_LIKE, "shapes")}  # checked: no class in common
OUTSETS = {
    "cifar100": OutSet("cifar100", "CIFAR-100", "near",
                       lambda root, dl: data.load_dataset("cifar100", root, download=dl).test,
                       lambda root: data.is_on_disk("cifar100", root), _NONE),
    "tinyimagenet": OutSet("tinyimagenet", "Tiny ImageNet", "near", _tinyimagenet,
                           lambda root: data.is_on_disk("tinyimagenet", root),
                           {**_NONE, **dict.fromkeys(_CIFAR10_LIKE, TINYIMAGENET_CIFAR10)}),
    "svhn": OutSet("svhn", "SVHN", "far", _svhn,
                   lambda root: (root / "svhn" / "test_32x32.mat").is_file(),
                   {**_NONE, "cifar100": {}, "tinyimagenet": {}}),
    "uniform": OutSet("uniform", "uniform noise", "noise"),
    "gaussian": OutSet("gaussian", "Gaussian noise", "noise"),
}  # fmt: skip


def _outset(name: str) -> OutSet:
    if name not in OUTSETS:
        raise ValueError(f"outset must be one of {tuple(OUTSETS)}, got {name!r}")
    return OUTSETS[name]


def available_outsets(root=None) -> tuple[str, ...]:
    """The out-sets on disk under ``root`` (noise always)."""
    return tuple(n for n, s in OUTSETS.items() if s.on_disk(data.data_root(root)))


def load_outset(name: str, root=None, download: bool = False) -> data.ImageSet:
    """A real out-set as stored (uint8 [N, 3, H, W]). ValueError: unknown or noise;
    DatasetMissingError: not on disk (and not ``download``)."""
    spec = _outset(name)
    if spec.load is None:
        raise ValueError(f"outset {name!r} is noise, made by out_images, not loaded")
    return spec.load(data.data_root(root), download)


@dataclass(frozen=True)
class OutImages:
    """Out-images [M, 3, H, W], indices [M] in the out-set, images dropped as overlap."""

    images: Tensor
    index: Tensor
    dropped: int


def out_images(name: str, dataset: str, size: tuple[int, int], n_out: int, out_seed: int = 0,
               root=None) -> OutImages:  # fmt: skip
    """``n_out`` images (uint8 [M, 3, H, W] at ``size``) of out-set ``name`` showing no
    class of ``dataset``: stratified by ``out_seed``, resized antialiased; or noise.
    ValueError: an unknown out-set, n_out < 1, or one not checked against ``dataset``;
    DatasetMissingError: a real out-set not on disk."""
    spec = _outset(name)
    if not isinstance(n_out, int) or n_out < 1:
        raise ValueError(f"n_out must be an integer >= 1, got {n_out!r}")
    if spec.load is None:
        generator = torch.Generator().manual_seed(out_seed)
        shape = (n_out, 3, *size)
        if name == "uniform":
            noise = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        else:  # N(0.5, 1) per pixel, clipped to [0, 1], as ODIN draws it (Liang et al., 2018)
            noise = ((0.5 + torch.randn(shape, generator=generator)).clamp(0, 1) * 255).round()
        return OutImages(noise.to(torch.uint8), torch.arange(n_out), 0)
    if dataset not in spec.overlaps:
        raise ValueError(f"outset {name!r} was not checked for classes in common with the "
                         f"run's dataset {dataset!r} (checked: {sorted(spec.overlaps)}): "
                         "declare its overlap in OutSet.overlaps")  # fmt: skip
    outset = load_outset(name, root)
    shown = [i for i, c in enumerate(outset.classes) if c in spec.overlaps[dataset]]
    kept = (~torch.isin(outset.labels, torch.tensor(shown, dtype=torch.long))).nonzero()[:, 0]
    index = kept[data.stratified_indices(outset.labels[kept], n_out, len(outset.classes), out_seed)]
    images = outset.images[index]
    if tuple(images.shape[-2:]) != tuple(size):
        images = F.interpolate(images.float(), size=tuple(size), mode="bilinear",
                               antialias=True).round().clamp(0, 255).to(torch.uint8)  # fmt: skip
    return OutImages(images, index, len(outset) - len(kept))


def ood_outcome(model: nn.Module, images: Tensor, labels: Tensor, *, outset: str, n_out: int,
                out_seed: int, run: Run, data_dir=None) -> registry.Outcome:  # fmt: skip
    """The model on the test images [N, 3, H, W] and ``out_images``: ``MEASURES``, logits,
    every score of every image (``in.msp``, ``out.energy``), ``out.index``, ``out.logits``."""
    out = out_images(outset, run.config.dataset, tuple(images.shape[-2:]), n_out, out_seed,
                     data_dir)  # fmt: skip
    predicted, in_logits = (t.cpu() for t in registry.predictions(model, images))
    out_logits = registry.predictions(model, out.images.to(images.device).float() / 255)[1].cpu()
    correct = predicted == labels.cpu()
    inside, outside = scores(in_logits), scores(out_logits)
    measures = {"out_images": len(out.index), "overlap_dropped": out.dropped}
    arrays = {"out.index": out.index, "out.logits": out_logits.half()}
    for score in SCORES:
        found = detection(inside[score], outside[score]) | selective(inside[score], correct)
        measures |= {f"{name}_{score}": value for name, value in found.items()}
        arrays |= {f"in.{score}": inside[score], f"out.{score}": outside[score]}
    return registry.Outcome(predicted, measures, in_logits, arrays)


OOD = registry.register_evaluation(registry.Evaluation(
    KIND, "Out-of-distribution detection and selective classification",
    "test accuracy (%) of the runs evaluated against this out-set (AUROC, AUPR, FPR at "
    "95% TPR, AURC and the error at 80% and 90% coverage per score are in each record: "
    "evaluation.ood.ood_table)", keys=("outset", "n_out", "out_seed"),
    measures=("accuracy", *MEASURES, "out_images", "overlap_dropped"),
    rerun="regionmix evaluate --kind ood --setting outset=svhn n_out=2000 out_seed=0",
    compute=ood_outcome, context=True))  # fmt: skip


def evaluate_ood(run: Run, outset: str, n_out: int = 2000, out_seed: int = 0,
                 n_images: int | None = None, data_dir=None,
                 device: str | torch.device = "cpu") -> tuple[dict, Predictions]:  # fmt: skip
    """A run against ``outset``: record and per-image values, stored (not for a bundle's)."""
    return registry.measure(run, KIND, n_images, data_dir, device,
                            not (run.path / EXPORTED).exists(), outset=outset, n_out=n_out,
                            out_seed=out_seed)  # fmt: skip


def evaluate_runs(runs: list[Run], outsets: tuple[str, ...], n_out: int = 2000,
                  out_seed: int = 0, n_images: int | None = None, data_dir=None,
                  device: str | torch.device = "cpu") -> dict[str, list[tuple]]:  # fmt: skip
    """Method label ("Region Mixup (k=2)", with the seed where two share one) -> a
    ``(record, predictions)`` per out-set (``evaluate_ood``)."""
    labels = [get_method(r.config.method).table_label(r.config.settings(), r.config.settings())
              for r in runs]  # fmt: skip
    labels = [f"{label}, seed {r.config.seed}" if labels.count(label) > 1 else label
              for label, r in zip(labels, runs, strict=True)]  # fmt: skip
    return {label: [evaluate_ood(run, o, n_out, out_seed, n_images, data_dir, device)
                    for o in outsets] for label, run in zip(labels, runs, strict=True)}  # fmt: skip


def ood_table(records: dict[str, list[dict]]) -> pd.DataFrame:
    """Method label -> "ood" records as rows (method, score): AUROC and FPR95 per out-set,
    AURC and error at 90% coverage (%)."""
    import pandas as pd  # heavy: only the table needs it

    rows = []
    for label, found in records.items():
        for score in SCORES:
            columns = {f"{OUTSETS[r['outset']].title} {m.upper()}": r[f"{m}_{score}"]
                       for r in found for m in ("auroc", "fpr95")}  # fmt: skip
            rows.append({"method": label, "score": score, **columns,
                         "AURC": found[0][f"aurc_{score}"],
                         "error@90%": found[0][f"risk90_{score}"]})  # fmt: skip
    return pd.DataFrame(rows).set_index(["method", "score"]).round(1)


def ood_summary(table: pd.DataFrame) -> str:
    """One sentence on ``ood_table``: by MSP, best and worst per out-set, extreme AURCs."""
    msp = table.xs("msp", level="score")
    parts = []
    for column in [c for c in msp.columns if c.endswith(" AUROC")]:
        best, worst, low = msp[column].idxmax(), msp[column].idxmin(), msp[column].min()
        parts.append(f"against {column.removesuffix(' AUROC')} {best} separates best "
                     f"(AUROC {msp[column].max():.1f}%) and {worst} worst ({low:.1f}%"
                     f"{', below chance' if low < 50 else ''})")  # fmt: skip
    parts.append(f"{msp['AURC'].idxmin()} has the lowest AURC ({msp['AURC'].min():.1f}%) and "
                 f"{msp['AURC'].idxmax()} the highest ({msp['AURC'].max():.1f}%)")  # fmt: skip
    return "By the maximum softmax probability, " + "; ".join(parts) + "."


def stored_scores(predictions: Predictions, score: str = "msp") -> dict[str, np.ndarray]:
    """A record's in- and out-images' ``score`` ("in", "out") and "correct" per image."""
    arrays = predictions.arrays
    return {"in": arrays[f"in.{score}"], "out": arrays[f"out.{score}"],
            "correct": predictions.correct()}  # fmt: skip
