"""Finished runs -> the paper's tables, our numbers beside the published ones, and the
paired comparisons that judge its claims: every name in one place. The code lives in
three modules, by concern (each imports only from those before it):

- ``records``: loading. ``collect_runs`` (one row per finished run),
  ``collect_evaluations`` (one row per evaluation record of those runs,
  ``EVALUATION_TABLES`` says where each kind goes), and the labels: ``column_label``
  (a configuration as the paper's headers name it), ``dataset_title``.
- ``tables``: the paper's Tables 1-4 and the tables beyond it (``paper_tables``,
  ``published_tables``, ``Table``), and their rendering (``to_markdown``, ``to_latex``).
- ``comparisons``: paired comparisons over seeds and the verdicts on declared claims
  (``compare``, ``judge``, ``Comparison``, ``PAPER_DATASET``); the claims themselves
  (``Claim``, ``paper_claims``) are ``claims``'.
"""

from __future__ import annotations

from regionmix_utils.claims import Claim, paper_claims
from regionmix_utils.comparisons import COMPARE_RESAMPLES as COMPARE_RESAMPLES
from regionmix_utils.comparisons import LEVEL as LEVEL
from regionmix_utils.comparisons import PAPER_DATASET as PAPER_DATASET
from regionmix_utils.comparisons import POWER as POWER
from regionmix_utils.comparisons import Comparison, compare, judge
from regionmix_utils.records import (
    EVALUATION_TABLES,
    collect_evaluations,
    collect_runs,
    column_label,
    dataset_title,
)
from regionmix_utils.tables import ACCURACY_WORDS as ACCURACY_WORDS
from regionmix_utils.tables import CALIBRATION_MEASURES as CALIBRATION_MEASURES
from regionmix_utils.tables import CE_ROWS as CE_ROWS
from regionmix_utils.tables import CORRUPTION_MEASURES as CORRUPTION_MEASURES
from regionmix_utils.tables import MASK as MASK
from regionmix_utils.tables import (
    Table,
    paper_tables,
    published_tables,
    to_latex,
    to_markdown,
)

__all__ = [
    "EVALUATION_TABLES",
    "Claim",
    "Comparison",
    "Table",
    "collect_evaluations",
    "collect_runs",
    "column_label",
    "compare",
    "dataset_title",
    "judge",
    "paper_claims",
    "paper_tables",
    "published_tables",
    "to_latex",
    "to_markdown",
]
