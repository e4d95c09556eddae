"""Finished runs -> tables and judged claims: the names of the modules under it in one place."""

# ruff: noqa: F401 (names re-exported)
from regionmix_utils.claims import Claim, paper_claims
from regionmix_utils.comparisons import PAPER_DATASET, Comparison, compare, judge
from regionmix_utils.records import collect_evaluations, collect_runs, column_label, dataset_title
from regionmix_utils.tables import Table, paper_tables, published_tables, to_latex, to_markdown
