"""Collect finished runs into tables shaped like the paper's (mean ± std over seeds).

Each finished run (``final.pt``) under ``runs/<dataset>/<run-name>/seed<seed>/`` gives
one row: its configuration, final test accuracy, and any attack results in its
``eval.json``. ``summarise`` groups rows by dataset and method and reports
``mean ± std (n)`` where n is the number of seeds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

__all__ = ["attack_results", "collect_runs", "summarise", "to_latex", "to_markdown"]

METHOD_LABELS = {
    "none": "No mixing",
    "mixup": "Mixup",
    "cutmix": "CutMix",
    "region": "Region Mixup",
}


def _method_label(config: dict) -> str:
    label = METHOD_LABELS[config["method"]]
    if config["method"] == "region":
        label += f" (k={config['k']})"
    return label


def collect_runs(runs_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per finished run under ``runs_dir``.

    Columns: dataset, method (a label such as "Region Mixup (k=2)"), clean_ce, alpha,
    quick, seed, test_acc (final epoch, %), epochs, path, and one column per attack
    setting found in the runs' ``eval.json`` (e.g. "fgsm eps=0.0313725", in %).
    """
    rows = []
    for final in sorted(Path(runs_dir).glob("*/*/seed*/final.pt")):
        path = final.parent
        config = json.loads((path / "config.json").read_text())
        metrics = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines() if x]
        row = {
            "dataset": config["dataset"],
            "method": _method_label(config),
            "clean_ce": config["clean_ce"] or config["method"] == "none",
            "alpha": config["alpha"],
            "quick": config.get("quick", False),
            "seed": config["seed"],
            "test_acc": metrics[-1]["test_acc"],
            "epochs": metrics[-1]["epoch"],
            "path": str(path),
        }
        if (path / "eval.json").exists():
            evaluation = json.loads((path / "eval.json").read_text())
            row.update({k: v for k, v in evaluation.items() if k not in ("n_images", "clean")})
        rows.append(row)
    return pd.DataFrame(rows)


def attack_results(runs: pd.DataFrame) -> pd.DataFrame:
    """Attack columns of ``collect_runs`` in long form: one row per run and setting.

    Columns: dataset, method, seed, attack ("fgsm" / "square"), eps, accuracy (%).
    """
    columns = [c for c in runs.columns if c.startswith(("fgsm ", "square "))]
    long = runs.melt(
        id_vars=["dataset", "method", "seed"], value_vars=columns, var_name="setting",
        value_name="accuracy",
    ).dropna(subset=["accuracy"])  # fmt: skip
    long["attack"] = long["setting"].str.split(" ").str[0]
    long["eps"] = long["setting"].str.extract(r"eps=([0-9.e-]+)", expand=False).astype(float)
    return long.drop(columns="setting").reset_index(drop=True)


def summarise(
    runs: pd.DataFrame, value: str = "test_acc", by=("dataset", "method")
) -> pd.DataFrame:
    """``mean ± std (n)`` of ``value`` per group, datasets as columns.

    The std is the sample standard deviation over seeds (0 for a single seed).
    """
    if runs.empty or value not in runs:
        raise ValueError(f"no finished runs with a {value!r} value to summarise")
    rows = runs.dropna(subset=[value])
    group_cols = [c for c in by if c != "dataset"]
    stats = rows.groupby(["dataset", *group_cols])[value].agg(["mean", "std", "count"])
    stats["std"] = stats["std"].fillna(0.0)
    cells = stats.apply(lambda r: f"{r['mean']:.2f} ± {r['std']:.2f} ({int(r['count'])})", axis=1)
    return cells.unstack("dataset")


def to_markdown(table: pd.DataFrame) -> str:
    """A pipe table (no extra dependency)."""
    index = table.index.names
    header = [*index, *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, row in table.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        cells = [str(k) for k in keys] + ["" if pd.isna(v) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_latex(table: pd.DataFrame) -> str:
    """A LaTeX tabular (booktabs) of the table, with ± as $\\pm$."""
    body = table.fillna("").map(lambda v: str(v).replace("±", r"$\pm$"))
    return body.to_latex(escape=False)
