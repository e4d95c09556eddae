"""Finished runs -> the paper's tables and the paired comparisons that judge its claims: the
names of ``records``, ``tables``, ``comparisons`` and ``claims`` in one place."""

from __future__ import annotations

from regionmix_utils.claims import Claim, paper_claims
from regionmix_utils.comparisons import PAPER_DATASET, Comparison, compare, judge
from regionmix_utils.records import (
    EVALUATION_TABLES,
    collect_evaluations,
    collect_runs,
    column_label,
    dataset_title,
)
from regionmix_utils.tables import Table, paper_tables, published_tables, to_latex, to_markdown

__all__ = ["EVALUATION_TABLES", "PAPER_DATASET", "Claim", "Comparison", "Table",
           "collect_evaluations", "collect_runs", "column_label", "compare", "dataset_title",
           "judge", "paper_claims", "paper_tables", "published_tables", "to_latex",
           "to_markdown"]  # fmt: skip
