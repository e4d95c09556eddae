"""Finished runs and their evaluation records as tables of rows, and their labels.

``collect_runs`` reads one row per finished run, ``collect_evaluations`` one row per
evaluation record of those runs; ``column_label`` names a run's configuration as the
paper's table headers do (the method, its settings and every recipe field that differs
from the paper's), ``dataset_title`` a dataset as the paper does. ``tables`` lays these
rows out as the paper's tables, ``comparisons`` pairs runs' per-image predictions.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from regionmix_utils import paper
from regionmix_utils.config import TrainConfig, recipe_differences
from regionmix_utils.evaluation.registry import evaluation_kinds
from regionmix_utils.evaluation.robustness import ATTACKS
from regionmix_utils.methods import SETTINGS, get_method
from regionmix_utils.runs import Run, find_runs

__all__ = [
    "EVALUATION_TABLES",
    "collect_evaluations",
    "collect_runs",
    "column_label",
    "dataset_title",
]

# Where each kind of evaluation record goes: its table number (5-7 go beyond the paper;
# each attack's comes from the attack registry). "clean" is the clean accuracy of the
# attacked images, the reference of Tables 3-4 (Table 1 reports the final epoch's test
# accuracy). A kind missing here is an error, never dropped.
EVALUATION_TABLES = {
    "clean": None, **{a.name: a.table for a in ATTACKS.values()}, "calibration": 5,
    "corruption": 6,
}  # fmt: skip
_PAPER_DEFAULTS = {name: getattr(TrainConfig(), name) for name in SETTINGS}


def dataset_title(name: str) -> str:
    """The paper's name of a dataset ("CIFAR-10"), or the name itself."""
    return paper.DATASET_TITLES.get(name, name)


def column_label(config: TrainConfig, with_ce: bool = False) -> str:
    """ "Region Mixup (k=2)", "Mixup (k=1, α=0.4, epochs=200)", "CutMix (quick)": the
    method, its settings shown as the paper's headers show them, and every setting
    that differs from the paper's recipe (``with_ce``: also "w/o clean CE")."""
    extra = recipe_differences(config)
    if with_ce and not config.clean_ce:
        extra.append("w/o clean CE")
    return get_method(config.method).table_label(config.settings(), _PAPER_DEFAULTS, extra)


def _is_paper_recipe(config: TrainConfig) -> bool:
    """The paper's setting for this method: its recipe, k = 2 for Region Mixup, α = 1."""
    settings = config.settings()
    return not recipe_differences(config) and all(
        v == _PAPER_DEFAULTS[s] for s, v in settings.items()
    )


def collect_runs(
    runs_dir: str | os.PathLike | None = None,
    accuracy: str = "final",
    runs: list[Run] | None = None,
) -> pd.DataFrame:
    """One row per finished run (under ``runs_dir``, or the given ``runs``).

    Columns: dataset, method (registry name), label (column label; label_ce also says
    "w/o clean CE"), clean_ce, matched_compute, quick,
    seed, test_acc (%, as ``accuracy`` says: "final", "best" or "last10"), epochs,
    alpha, paper_recipe (whether the paper's numbers apply), path.
    """
    if runs is None:
        runs = find_runs(runs_dir)
    rows = []
    for run in runs:
        config = run.config
        rows.append({
            "dataset": config.dataset,
            "method": config.method,
            "label": column_label(config),
            "label_ce": column_label(config, with_ce=True),
            "clean_ce": config.clean_ce,
            "matched_compute": config.matched_compute,
            "quick": config.quick,
            "seed": config.seed,
            "test_acc": run.accuracy(accuracy),
            "epochs": config.epochs,
            "alpha": config.alpha,
            "paper_recipe": _is_paper_recipe(config),
            "path": str(run.path),
        })  # fmt: skip
    columns = ["dataset", "method", "label", "label_ce", "clean_ce", "matched_compute", "quick",
               "seed", "test_acc", "epochs", "alpha", "paper_recipe", "path"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def collect_evaluations(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluation record of the given runs (``collect_runs`` rows): the run's
    columns (but test_acc) and the record's keys (kind, eps, queries, seed → attack_seed,
    p_init, loss, n_images, accuracy, seconds). A record of a kind the tables cannot
    place (``EVALUATION_TABLES``) is an error."""
    return _evaluation_records(runs)[0]


def _evaluation_records(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[dict]]]:
    """``collect_evaluations(runs)``, and each run's records as read for it (run path ->
    ``Run.evaluations()``), so that what else needs the records (the masking check) does
    not read every ``eval.json`` again.

    Raises:
        ValueError: a record of a kind the tables cannot place (``EVALUATION_TABLES``).
    """
    rows, records = [], {}
    for run_row in runs.drop(columns="test_acc").to_dict("records"):
        run = Run(Path(run_row["path"]))
        records[run_row["path"]] = run.evaluations()
        for record in records[run_row["path"]]:
            if record.get("kind") not in (*EVALUATION_TABLES, *evaluation_kinds()):
                raise ValueError(
                    f"{run.path / 'eval.json'} holds an evaluation of kind "
                    f"{record.get('kind')!r}, which no table places (known: "
                    f"{sorted(evaluation_kinds())}); register it (evaluation.registry)"
                )
            values = {("attack_seed" if k == "seed" else k): v for k, v in record.items()}
            rows.append({**run_row, **values})
    return pd.DataFrame(rows), records
