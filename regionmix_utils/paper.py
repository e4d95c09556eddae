"""The published numbers: Tables 1-4 of Saha & Garain, "Region Mixup", ICLR 2024 Tiny
Papers (arXiv:2409.15028), typed in by hand so that the package carries them (on Colab
too). ``tests/test_paper.py`` compares every value with ``../shared/paper/tables.csv``.

All numbers are test accuracy in percent, mean ± std over the paper's 3 runs, for
PreAct ResNet-18 trained 400 epochs. Mixup is the paper's "Vanilla Mixup, k = 1";
Region Mixup is k = 2. Tables 1, 3 and 4 use the loss with the clean CE term; Table 2
reports CIFAR-100 with and without it. The attacks are FGSM (white box, one step) and
the L-inf Square attack with 100 queries; the paper does not state ε.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CELLS", "CITATION", "DATASET_TITLES", "SEEDS", "TABLE_TITLES", "PaperCell", "lookup"]

CITATION = "Saha & Garain, Region Mixup, ICLR 2024 Tiny Papers (arXiv:2409.15028)"
SEEDS = 3  # "The results are averaged over 3 runs."
DATASET_TITLES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "tinyimagenet": "Tiny ImageNet"}
TABLE_TITLES = {
    1: "Test accuracy",
    2: "Test accuracy with and without the standard CE term",
    3: "Test accuracy on white-box FGSM adversarial examples",
    4: "Test accuracy under the black-box Square attack (L-inf), 100 queries",
}


@dataclass(frozen=True)
class PaperCell:
    """One published number.

    Attributes:
        table: 1-4.
        dataset: "cifar10", "cifar100" or "tinyimagenet".
        method: "cutmix", "mixup" or "region" (names in the method registry).
        clean_ce: whether the loss had the clean CE term.
        attack: None (clean test set), "fgsm" or "square" (100 queries).
        mean, std: test accuracy in percent over 3 runs.
    """

    table: int
    dataset: str
    method: str
    clean_ce: bool
    attack: str | None
    mean: float
    std: float


def _table(table: int, attack: str | None, clean_ce: bool, rows: dict) -> list[PaperCell]:
    """Cells of one table typed as the paper prints it: dataset -> (CutMix, Mixup k=1,
    Region Mixup k=2), each (mean, std)."""
    return [
        PaperCell(table, dataset, method, clean_ce, attack, mean, std)
        for dataset, values in rows.items()
        for method, (mean, std) in zip(("cutmix", "mixup", "region"), values, strict=True)
    ]


CELLS: tuple[PaperCell, ...] = tuple(
    _table(1, None, True, {
        "cifar10": ((95.82, 0.19), (95.89, 0.12), (96.19, 0.05)),
        "cifar100": ((79.03, 0.30), (78.10, 0.60), (78.75, 0.28)),
        "tinyimagenet": ((65.76, 0.12), (65.45, 0.42), (66.16, 0.50)),
    })
    + _table(2, None, False, {"cifar100": ((78.27, 0.34), (77.50, 0.22), (76.36, 0.26))})
    + _table(2, None, True, {"cifar100": ((79.03, 0.30), (78.10, 0.60), (78.75, 0.28))})
    + _table(3, "fgsm", True, {
        "cifar10": ((36.15, 2.73), (52.40, 6.60), (58.96, 5.23)),
        "cifar100": ((13.08, 0.87), (18.56, 1.22), (22.77, 1.20)),
        "tinyimagenet": ((2.69, 0.19), (1.71, 0.18), (2.20, 0.22)),
    })
    + _table(4, "square", True, {
        "cifar10": ((31.76, 1.70), (52.18, 1.18), (51.35, 1.99)),
        "cifar100": ((10.54, 0.59), (20.03, 0.46), (18.70, 1.05)),
        "tinyimagenet": ((17.03, 0.18), (24.78, 0.19), (25.02, 0.69)),
    })
)  # fmt: skip


def lookup(dataset: str, method: str, clean_ce: bool = True, attack: str | None = None):
    """The published cell for this dataset, method, loss and attack, or None.

    Table 2's "with standard CE" row repeats Table 1's CIFAR-100 numbers, so clean
    accuracy with the clean CE term comes from Table 1.
    """
    for cell in CELLS:
        if (cell.dataset, cell.method, cell.clean_ce, cell.attack) == (
            dataset, method, clean_ce, attack,
        ) and not (cell.table == 2 and clean_ce):  # fmt: skip
            return cell
    return None
