"""Finished runs and their evaluation records as long-form tables; the runs' labels."""

import os
from pathlib import Path

import pandas as pd

from regionmix_utils import paper
from regionmix_utils.config import TrainConfig, recipe_differences
from regionmix_utils.data import DATASETS, get_dataset
from regionmix_utils.evaluation.registry import evaluation_kinds
from regionmix_utils.methods import SETTINGS, get_method
from regionmix_utils.runs import Run, find_runs

PAPER_DATASETS = tuple(dict.fromkeys(cell.dataset for cell in paper.CELLS))  # its row order
_PAPER_DEFAULTS = {name: getattr(TrainConfig(), name) for name in SETTINGS}
_RUN_COLUMNS = ["dataset", "method", "label", "label_ce", "clean_ce", "matched_compute",
                "quick", "seed", "test_acc", "epochs", "alpha", "paper_recipe", "path"]  # fmt: skip


def dataset_title(name: str) -> str:
    """A registered dataset's title ("CIFAR-10"); a name no spec declares, as it is."""
    return get_dataset(name).title if name in DATASETS else name


def column_label(config: TrainConfig, with_ce: bool = False) -> str:
    """ "Region Mixup (k=2)", "Mixup (k=1, α=0.4, epochs=200)": the method, its settings and
    what differs from the paper's recipe (``with_ce``: also "w/o clean CE")."""
    extra = recipe_differences(config)
    if with_ce and not config.clean_ce:
        extra.append("w/o clean CE")
    return get_method(config.method).table_label(config.settings(), _PAPER_DEFAULTS, extra)


def _is_paper_recipe(config: TrainConfig) -> bool:
    settings = config.settings().items()
    return not recipe_differences(config) and all(v == _PAPER_DEFAULTS[s] for s, v in settings)


def collect_runs(runs_dir: str | os.PathLike | None = None, accuracy: str = "final",
                 runs: list[Run] | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per finished run (under ``runs_dir``, or ``runs``); test_acc (%) at the
    "final" or "best" epoch, or the median of the "last10"."""
    rows = []
    for run in find_runs(runs_dir) if runs is None else runs:
        c = run.config
        rows.append((c.dataset, c.method, column_label(c), column_label(c, with_ce=True),
                     c.clean_ce, c.matched_compute, c.quick, c.seed, run.accuracy(accuracy),
                     c.epochs, c.alpha, _is_paper_recipe(c), str(run.path)))  # fmt: skip
    return pd.DataFrame(rows, columns=_RUN_COLUMNS)


def collect_evaluations(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per record of ``collect_runs`` rows (``seed`` as ``attack_seed``)."""
    return _evaluation_records(runs)[0]


def _evaluation_records(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[dict]]]:
    """``collect_evaluations(runs)``, run path -> its records; ValueError: a kind unknown."""
    rows, records = [], {}
    for run_row in runs.drop(columns="test_acc").to_dict("records"):
        run = Run(Path(run_row["path"]))
        records[run_row["path"]] = run.evaluations()
        for record in records[run_row["path"]]:
            if record.get("kind") not in evaluation_kinds():
                raise ValueError(f"{run.path / 'eval.json'}: evaluation kind "
                                 f"{record.get('kind')!r} is not registered (known: "
                                 f"{sorted(evaluation_kinds())})")  # fmt: skip
            values = {("attack_seed" if k == "seed" else k): v for k, v in record.items()}
            rows.append({**run_row, **values})
    return pd.DataFrame(rows), records
