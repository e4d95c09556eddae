"""The paper's published numbers, as typed into the package, against the paper's tables."""

from __future__ import annotations

import csv

import pytest

from regionmix_utils import paper
from regionmix_utils.methods import method_names

from .conftest import shared_data


@pytest.fixture(scope="module")
def published_rows() -> list[dict]:
    data = shared_data()
    path = None if data is None else data.parent / "paper" / "tables.csv"
    if path is None or not path.is_file():
        pytest.skip("../shared/paper/tables.csv not found: nothing to compare the module with")
    with path.open() as f:
        return list(csv.DictReader(f))


def test_every_value_equals_the_papers_tables(published_rows):
    typed = {
        (c.table, c.dataset, c.method, c.clean_ce, c.attack or ""): (c.mean, c.std)
        for c in paper.CELLS
    }
    attack_names = {"": "", "fgsm": "fgsm", "square100": "square"}
    published = {
        (int(r["table"]), r["dataset"], r["method"], r["clean_ce"] == "true",
         attack_names[r["attack"]]): (float(r["mean"]), float(r["std"]))
        for r in published_rows
    }  # fmt: skip
    assert typed == published
    assert len(paper.CELLS) == len(published_rows) == 33


def test_our_paper_columns_have_the_papers_k(published_rows):
    """The columns the paper's numbers sit beside are our default settings: Mixup is
    k = 1 and Region Mixup k = 2, as the published rows say."""
    from regionmix_utils.config import TrainConfig
    from regionmix_utils.results import column_label

    for row in published_rows:
        label = column_label(TrainConfig(dataset=row["dataset"], method=row["method"]))
        assert ("k=" + row["k"] in label) if row["k"] else ("k=" not in label), (row, label)
    assert {c.method for c in paper.CELLS} <= set(method_names())


def test_lookup():
    assert paper.lookup("cifar10", "region").mean == 96.19
    assert paper.lookup("cifar100", "mixup", clean_ce=False).mean == 77.50
    assert paper.lookup("cifar100", "cutmix", clean_ce=True).table == 1
    assert paper.lookup("tinyimagenet", "region", attack="square").mean == 25.02
    assert paper.lookup("cifar10", "none") is None
    assert paper.lookup("cifar10", "mixup", clean_ce=False) is None  # Table 2 is CIFAR-100
