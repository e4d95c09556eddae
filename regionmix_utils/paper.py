"""The published numbers: Tables 1-4 of Saha & Garain, "Region Mixup" (arXiv:2409.15028),
from ``paper_tables.csv`` beside this module: test accuracy (%), mean ± std over 3 runs of
PreAct ResNet-18, 400 epochs; Mixup is k = 1, Region Mixup k = 2; the paper states no ε."""

import csv
from dataclasses import dataclass
from pathlib import Path

CITATION = "Saha & Garain, Region Mixup, ICLR 2024 Tiny Papers (arXiv:2409.15028)"
SEEDS = 3  # "The results are averaged over 3 runs."
TABLE_TITLES = {
    1: "Test accuracy", 2: "Test accuracy with and without the standard CE term",
    3: "Test accuracy on white-box FGSM adversarial examples",
    4: "Test accuracy under the black-box Square attack (L-inf), 100 queries"}  # fmt: skip


@dataclass(frozen=True)
class PaperCell:
    """One published number; ``attack`` None (clean), "fgsm" or "square"; accuracy (%)."""

    table: int
    dataset: str
    method: str
    clean_ce: bool
    attack: str | None
    mean: float
    std: float


with Path(__file__).with_name("paper_tables.csv").open(newline="") as _file:
    CELLS: tuple[PaperCell, ...] = tuple(
        PaperCell(int(r["table"]), r["dataset"], r["method"], r["clean_ce"] == "true",
                  r["attack"] or None, float(r["mean"]), float(r["std"]))
        for r in csv.DictReader(_file))  # fmt: skip


def lookup(dataset: str, method: str, clean_ce: bool = True, attack: str | None = None):
    """The published cell, or None; clean accuracy with the CE term from Table 1, not 2."""
    key = (dataset, method, clean_ce, attack)
    return next((c for c in CELLS if (c.dataset, c.method, c.clean_ce, c.attack) == key
                 and not (c.table == 2 and clean_ce)), None)  # fmt: skip
