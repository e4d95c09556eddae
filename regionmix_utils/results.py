"""Collect finished runs into tables shaped like the paper's (mean ± std over seeds).

Each finished run (``final.pt``) under ``runs/<dataset>/<run-name>/seed<seed>/`` gives
one row: its configuration, final test accuracy, and any attack results in its
``eval.json``. ``summarise`` groups rows by dataset and method and reports
``mean ± std (n)`` where n is the number of seeds; ``paper_tables`` lays them out as
the paper's Tables 1-4.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd

__all__ = [
    "attack_results",
    "collect_runs",
    "finished_runs",
    "paper_tables",
    "summarise",
    "to_latex",
    "to_markdown",
]

METHOD_LABELS = {
    "none": "No mixing",
    "mixup": "Mixup",
    "cutmix": "CutMix",
    "region": "Region Mixup",
}


def _method_label(config: dict) -> str:
    """A label such as "Region Mixup (k=2)", naming settings that differ from the paper."""
    label = METHOD_LABELS[config["method"]]
    details = [f"k={config['k']}"] if config["method"] == "region" else []
    if config["method"] != "none" and config["alpha"] != 1.0:
        details.append(f"α={config['alpha']:g}")
    if config.get("concat_forward"):
        details.append("one forward pass")
    return f"{label} ({', '.join(details)})" if details else label


def finished_runs(runs_dir: str | os.PathLike, dataset: str | None = None) -> list[Path]:
    """Folders ``runs_dir/<dataset>/<run-name>/seed<seed>/`` that hold a ``final.pt``, sorted."""
    pattern = f"{dataset or '*'}/*/seed*/final.pt"
    return sorted(final.parent for final in Path(runs_dir).glob(pattern))


def collect_runs(runs_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per finished run under ``runs_dir``.

    Columns: dataset, method (a label such as "Region Mixup (k=2)"), clean_ce, alpha,
    quick, seed, test_acc (final epoch, %), epochs, path, and one column per attack
    setting found in the runs' ``eval.json`` (e.g. "fgsm eps=0.0313725", in %).
    """
    rows = []
    for path in finished_runs(runs_dir):
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


_SETTING = re.compile(r"^(fgsm|square) eps=([0-9.e+-]+)(?: queries=(\d+) seed=(\d+))?$")


def _parse_setting(column: str) -> tuple[str, float, int, int] | None:
    """(attack, eps, queries, seed) of an ``eval.json`` key; None for other columns.

    "fgsm eps=0.0313725" -> ("fgsm", 0.0313725, 0, 0).
    """
    match = _SETTING.match(column)
    if match is None:
        return None
    attack, eps, queries, seed = match.groups()
    return attack, float(eps), int(queries or 0), int(seed or 0)


def attack_results(runs: pd.DataFrame) -> pd.DataFrame:
    """Attack columns of ``collect_runs`` in long form: one row per run and setting.

    Columns: dataset, method, seed, attack ("fgsm" / "square"), eps, accuracy (%).
    """
    settings = {c: s for c in runs.columns if (s := _parse_setting(c)) is not None}
    long = runs.melt(
        id_vars=["dataset", "method", "seed"], value_vars=list(settings), var_name="setting",
        value_name="accuracy",
    ).dropna(subset=["accuracy"])  # fmt: skip
    long["attack"] = long["setting"].map(lambda c: settings[c][0])
    long["eps"] = long["setting"].map(lambda c: settings[c][1])
    return long.drop(columns="setting").reset_index(drop=True)


def summarise(
    runs: pd.DataFrame, value: str = "test_acc", by=("dataset", "method")
) -> pd.DataFrame:
    """``mean ± std (n)`` of ``value`` per group, datasets as columns.

    The std is the sample standard deviation over seeds (0 for a single seed). Methods
    come in the paper's order: no mixing, Mixup, CutMix, Region Mixup.
    """
    if runs.empty or value not in runs:
        raise ValueError(f"no finished runs with a {value!r} value to summarise")
    rows = runs.dropna(subset=[value])
    group_cols = [c for c in by if c != "dataset"]
    stats = rows.groupby(["dataset", *group_cols])[value].agg(["mean", "std", "count"])
    stats["std"] = stats["std"].fillna(0.0)
    cells = stats.apply(lambda r: f"{r['mean']:.2f} ± {r['std']:.2f} ({int(r['count'])})", axis=1)
    table = cells.unstack("dataset")
    if "method" in group_cols:
        table = table.sort_index(level="method", key=lambda labels: labels.map(_method_order))
    return table


def _method_order(label: str) -> tuple[int, str]:
    """Sort key of a method label: the paper's order of methods, then the label."""
    ranks = [i for i, name in enumerate(METHOD_LABELS.values()) if label.startswith(name)]
    return (ranks[-1] if ranks else len(METHOD_LABELS), label)


def _eps_text(eps: float) -> str:
    """8/255 for 0.0313725, the plain number otherwise (0 for 0)."""
    n = eps * 255
    return f"{round(n)}/255" if eps > 0 and abs(n - round(n)) < 1e-3 else f"{eps:g}"


def paper_tables(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The paper's tables from ``collect_runs`` rows: caption -> ``mean ± std (n)`` table.

    - Table 1: test accuracy of the runs trained with the clean CE term;
    - Table 2: with and without the clean CE term, for methods that have ablated runs;
    - Table 3: accuracy under FGSM, one table per ε found in ``eval.json``;
    - Table 4: accuracy under Square, one table per (ε, queries) found.

    Attacks are reported for runs with the clean CE term (Table 1's models). Tables
    with no runs are left out; an empty ``runs`` is an error.
    """
    if runs.empty:
        raise ValueError("no finished runs to tabulate")
    clean = runs[runs["clean_ce"]]
    tables = {}
    if not clean.empty:
        tables["Table 1: test accuracy (%)"] = summarise(clean)
    ablated = runs[~runs["clean_ce"]]
    if not ablated.empty:
        both = runs[runs["method"].isin(set(ablated["method"]))]
        table = summarise(both, by=("dataset", "method", "clean_ce"))
        tables["Table 2: test accuracy (%) with and without CE(f(x_A), y_A)"] = table.rename_axis(
            index={"clean_ce": "clean CE"}
        )
    settings = sorted((s, c) for c in runs.columns if (s := _parse_setting(c)) is not None)
    for (attack, eps, queries, seed), column in settings:
        if not clean[column].notna().any():
            continue
        if attack == "fgsm":
            name = f"Table 3: accuracy (%) under FGSM, ε = {_eps_text(eps)}"
        else:
            name = f"Table 4: accuracy (%) under Square, ε = {_eps_text(eps)}, {queries} queries"
            name += f", attack seed {seed}" if seed else ""
        tables[name] = summarise(clean, value=column)
    return tables


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
