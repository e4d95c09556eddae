"""Finished runs -> the paper's Tables 1-4, our numbers beside the published ones.

``collect_runs`` reads one row per finished run; ``collect_evaluations`` one row per
evaluation record (attacks); ``paper_tables`` lays them out as the paper prints its
tables: datasets as rows, methods as columns in the paper's order (CutMix, Mixup k=1,
Region Mixup k=2, then no mixing and other settings), Table 2 with the rows "w/o
standard CE" / "with standard CE". Where the paper has a number for a cell, the cell
shows ours (``mean ± std (n seeds)``), the paper's (``mean ± std``, 3 runs) and the
difference, marked * when it is larger than two combined standard errors.

A column is one configuration: the method, its settings and every recipe field that
differs from the paper's (named in its label), so runs with other settings never share
a cell with the paper's setting, and quick runs never share one with full runs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from regionmix_utils import paper
from regionmix_utils.config import TrainConfig, recipe_differences
from regionmix_utils.evaluation.robustness import DEFAULT_EPS
from regionmix_utils.methods import SETTINGS, get_method, method_names
from regionmix_utils.runs import Run, eps_text, find_runs

__all__ = [
    "EVALUATION_TABLES",
    "Table",
    "collect_evaluations",
    "collect_runs",
    "column_label",
    "dataset_title",
    "paper_tables",
    "published_tables",
    "to_latex",
    "to_markdown",
]

# Where each kind of evaluation record goes: its table number (5 and 6 go beyond the
# paper). "clean" is the clean accuracy of the attacked images, the reference of Tables
# 3-4 (Table 1 reports the final epoch's test accuracy). A kind missing here is an
# error, never dropped.
EVALUATION_TABLES = {"clean": None, "fgsm": 3, "square": 4, "calibration": 5, "corruption": 6}
CALIBRATION_MEASURES = {
    "ece": "ECE (%) before temperature scaling (15 equal-width bins, top label, torchmetrics)",
    "ece_scaled": "ECE (%) after temperature scaling (15 equal-width bins, top label)",
    "nll": "NLL (before scaling)",
    "brier": "Brier score (before scaling)",
}
CORRUPTION_MEASURES = ("mean", "noise", "blur", "weather", "digital")
CE_ROWS = {False: "w/o standard CE", True: "with standard CE"}  # Table 2's row names
ACCURACY_WORDS = {
    "final": "final epoch",
    "best": "best epoch",
    "last10": "median of the last 10 epochs",
}
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
    "w/o clean CE"), clean_ce, quick,
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
            "quick": config.quick,
            "seed": config.seed,
            "test_acc": run.accuracy(accuracy),
            "epochs": config.epochs,
            "alpha": config.alpha,
            "paper_recipe": _is_paper_recipe(config),
            "path": str(run.path),
        })  # fmt: skip
    columns = ["dataset", "method", "label", "label_ce", "clean_ce", "quick", "seed",
               "test_acc", "epochs", "alpha", "paper_recipe", "path"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def collect_evaluations(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluation record of the given runs (``collect_runs`` rows): the run's
    columns (but test_acc) and the record's keys (kind, eps, queries, seed → attack_seed,
    p_init, loss, n_images, accuracy, seconds). A record of a kind the tables cannot
    place (``EVALUATION_TABLES``) is an error."""
    rows = []
    for run_row in runs.drop(columns="test_acc").to_dict("records"):
        run = Run(Path(run_row["path"]))
        for record in run.evaluations():
            if record.get("kind") not in EVALUATION_TABLES:
                raise ValueError(
                    f"{run.path / 'eval.json'} holds an evaluation of kind "
                    f"{record.get('kind')!r}, which no table places (known: "
                    f"{sorted(EVALUATION_TABLES)}); add it to results.EVALUATION_TABLES"
                )
            values = {("attack_seed" if k == "seed" else k): v for k, v in record.items()}
            rows.append({**run_row, **values})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------ the cells


def _stats(values: pd.Series) -> tuple[float, float, int]:
    n = int(values.count())
    return float(values.mean()), float(values.std()) if n > 1 else math.nan, n


def _ours_text(mean: float, std: float, n: int) -> str:
    return f"{mean:.2f} ± {std:.2f} ({n})" if n > 1 else f"{mean:.2f} ({n})"


def _cells(rows: pd.DataFrame, value: str, row_keys: list[str], attack: str | None) -> pd.DataFrame:
    """Long form: one row per (row keys, column label) with ours and the paper's numbers.

    Columns: *row_keys, label, method, paper_recipe, mean, std, n, paper_mean,
    paper_std, diff, significant (|diff| > 2 combined standard errors, n >= 2).
    """
    out = []
    keys = [*row_keys, "label", "method", "paper_recipe"]
    for group, part in rows.dropna(subset=[value]).groupby(keys, sort=False):
        cell = dict(zip(keys, group, strict=True))
        mean, std, n = _stats(part[value])
        found = None
        if cell["paper_recipe"]:
            clean_ce = bool(part["clean_ce"].iloc[0])
            found = paper.lookup(part["dataset"].iloc[0], cell["method"], clean_ce, attack)
        diff = mean - found.mean if found else math.nan
        se = math.sqrt(std**2 / n + found.std**2 / paper.SEEDS) if found and n > 1 else math.nan
        out.append({
            **cell, "mean": mean, "std": std, "n": n,
            "paper_mean": found.mean if found else math.nan,
            "paper_std": found.std if found else math.nan,
            "diff": diff, "significant": bool(n > 1 and abs(diff) > 2 * se),
        })  # fmt: skip
    return pd.DataFrame(out)


def _signed(value: float) -> str:
    """+1.05, -0.03, and +0.00 for a difference that rounds to zero (never -0.00)."""
    return f"{round(value, 2) + 0.0:+.2f}"


_PAPER_METHODS = {cell.method for cell in paper.CELLS}


def _column_order(cells: pd.DataFrame) -> list[str]:
    """Paper columns first, in the paper's order (CutMix, Mixup, Region Mixup), then the
    others by method (registration order) and label."""
    order = {name: i for i, name in enumerate(method_names())}
    columns = cells.drop_duplicates("label")
    ranked = sorted(
        columns.itertuples(),
        key=lambda c: (
            not (c.paper_recipe and c.method in _PAPER_METHODS),
            order.get(c.method, len(order)),
            c.label,
        ),
    )
    return [c.label for c in ranked]


def _layout(cells: pd.DataFrame, row_keys: list[str]) -> pd.DataFrame:
    """Rows ``row_keys`` (in the order of ``cells``), columns (label, ours / paper / Δ);
    paper and Δ only for columns where the paper has a number."""
    texts = cells.assign(
        ours=[_ours_text(r.mean, r.std, r.n) if r.n else "" for r in cells.itertuples()],
        paper=["" if math.isnan(r.paper_mean) else f"{r.paper_mean:.2f} ± {r.paper_std:.2f}"
               for r in cells.itertuples()],
        delta=["" if math.isnan(r.diff) else _signed(r.diff) + ("*" if r.significant else "")
               for r in cells.itertuples()],
    )  # fmt: skip
    row_order = pd.MultiIndex.from_frame(cells[row_keys].drop_duplicates())
    parts = []
    for label in _column_order(cells):
        part = texts[texts["label"] == label].set_index(row_keys)
        has_ours, has_paper = (part["n"] > 0).any(), part["paper_mean"].notna().any()
        sub = {"ours": has_ours, "paper": has_paper, "Δ": has_ours and has_paper}
        part = part[[{"Δ": "delta"}.get(k, k) for k, shown in sub.items() if shown]]
        part.columns = pd.MultiIndex.from_product([[label], [k for k, v in sub.items() if v]])
        parts.append(part)
    table = pd.concat(parts, axis=1)
    if len(row_keys) == 1:
        row_order = row_order.get_level_values(0)
    table = table.reindex(row_order).fillna("")
    table.index.names = [
        "" if name in ("ce_row", "measure") else name for name in table.index.names
    ]
    return table


_DATASET_ORDER = {name: i for i, name in enumerate(paper.DATASET_TITLES)}


def _in_paper_order(cells: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted as the paper's (CIFAR-10, CIFAR-100, Tiny ImageNet, then others;
    Table 2: w/o before with), datasets under the paper's names."""
    rank = cells["dataset"].map(lambda d: (_DATASET_ORDER.get(d, len(_DATASET_ORDER)), d))
    cells = cells.assign(_rank=rank).sort_values("_rank", kind="stable")
    for key, order in (("ce_row", list(CE_ROWS.values())), ("measure", CORRUPTION_MEASURES)):
        if key in cells:
            second = cells[key].map({v: i for i, v in enumerate(order)})
            cells = cells.assign(_ce=second).sort_values(["_rank", "_ce"], kind="stable")
    cells = cells.drop(columns=[c for c in ("_rank", "_ce") if c in cells])
    return cells.assign(dataset=cells["dataset"].map(dataset_title)).reset_index(drop=True)


@dataclass(frozen=True)
class Table:
    """One of the paper's tables from our runs.

    Attributes:
        number: the paper's table number (1-4).
        caption: what the numbers are and how they were made.
        frame: the table as text cells: rows datasets (Table 2: dataset and CE row),
            columns (label, "ours" / "paper" / "Δ").
        cells: the numbers in long form (see ``_cells``), for figures.
        setting: the attack setting of Tables 3-4 (kind, eps, queries, ..., n_images);
            None for Tables 1-2.
    """

    number: int
    caption: str
    frame: pd.DataFrame
    cells: pd.DataFrame
    setting: dict | None = None

    @property
    def has_paper(self) -> bool:
        """Whether any cell has a published number beside it."""
        return bool(self.cells["paper_mean"].notna().any())


_OURS = "Ours: mean ± std over seeds (number of seeds)."
_PAPER = (
    " Paper: mean ± std over its 3 runs. Δ = ours − paper; * marks |Δ| > 2 combined "
    "standard errors (needs >= 2 seeds)."
)


def _footnote(cells: pd.DataFrame) -> str:
    return _OURS + (_PAPER if cells["paper_mean"].notna().any() else "")


def _recipe_caption(rows: pd.DataFrame) -> str:
    """How the runs were made, where they agree (columns name what differs)."""
    epochs = sorted(set(rows["epochs"]))
    alphas = sorted(set(rows.loc[rows["method"] != "none", "alpha"]))
    parts = ["PreAct ResNet-18"]
    if len(epochs) == 1:
        parts.append(f"{epochs[0]} epochs")
    if len(alphas) == 1:
        unstated = " (not stated by the paper)" if alphas[0] == 1 else ""
        parts.append(f"α = {alphas[0]:g}{unstated}")
    parts.append("k as in each column")
    return "Our runs: " + ", ".join(parts) + "."


def _table1(runs: pd.DataFrame, accuracy: str) -> Table | None:
    rows = runs[runs["clean_ce"]]
    if rows.empty:
        return None
    cells = _in_paper_order(_cells(rows, "test_acc", ["dataset"], None))
    caption = (
        f"Table 1: {paper.TABLE_TITLES[1]} (%), {ACCURACY_WORDS[accuracy]}. "
        f"{_recipe_caption(rows)} {_footnote(cells)}"
    )
    return Table(1, caption, _layout(cells, ["dataset"]), cells)


def _table2(runs: pd.DataFrame, accuracy: str) -> Table | None:
    ablated = runs[~runs["clean_ce"]]
    if ablated.empty:
        return None
    pairs = ablated[["dataset", "label"]].drop_duplicates()
    rows = runs.merge(pairs, on=["dataset", "label"])
    rows = rows.assign(ce_row=rows["clean_ce"].map(CE_ROWS))
    cells = _in_paper_order(_cells(rows, "test_acc", ["dataset", "ce_row"], None))
    caption = (
        f"Table 2: {paper.TABLE_TITLES[2]} CE(f(x_A), y_A) (%), {ACCURACY_WORDS[accuracy]}. "
        f"{_recipe_caption(rows)} {_footnote(cells)}"
    )
    return Table(2, caption, _layout(cells, ["dataset", "ce_row"]), cells)


_SETTING_COLUMNS = ["kind", "eps", "queries", "attack_seed", "p_init", "loss", "n_images"]


def _attack_caption(number: int, setting: dict) -> str:
    how = f"ε = {eps_text(setting['eps'])}"
    how += " (not stated by the paper)" if setting["eps"] == DEFAULT_EPS else ""
    if setting["kind"] == "square":
        how += (
            f", {int(setting['queries'])} queries, p_init {setting['p_init']:g}, "
            f"{setting['loss']} loss, attack seed {int(setting['attack_seed'])}"
        )
    title = paper.TABLE_TITLES[number].split(",")[0]
    return f"Table {number}: {title} (%): {how}, on {int(setting['n_images'])} test images."


def _attack_tables(runs: pd.DataFrame) -> list[Table]:
    evaluations = collect_evaluations(runs)
    if evaluations.empty:
        return []
    attacks = evaluations[evaluations["kind"].isin(["fgsm", "square"])]
    tables = []
    present = [c for c in _SETTING_COLUMNS if c in attacks]
    for setting, rows in attacks.groupby(present, dropna=False, sort=True):
        setting = dict(zip(present, setting, strict=True))
        number = EVALUATION_TABLES[setting["kind"]]
        comparable = setting["eps"] == DEFAULT_EPS and (
            setting["kind"] == "fgsm" or setting["queries"] == 100
        )
        rows = rows.assign(label=rows["label_ce"], paper_recipe=rows["paper_recipe"] & comparable)
        cells = _in_paper_order(_cells(rows, "accuracy", ["dataset"], setting["kind"]))
        caption = f"{_attack_caption(number, setting)} {_recipe_caption(rows)} {_footnote(cells)}"
        tables.append(Table(number, caption, _layout(cells, ["dataset"]), cells, setting))
    return sorted(tables, key=lambda t: t.number)


def published_tables() -> list[Table]:
    """The paper's Tables 1-4 alone, in the same layout (for reference where our runs
    are not comparable, e.g. quick runs on the embedded data)."""
    rows = []
    for cell in paper.CELLS:
        if cell.table == 2 and cell.clean_ce:
            continue  # the "with standard CE" row is Table 1's CIFAR-100 row
        config = TrainConfig(dataset=cell.dataset, method=cell.method)
        rows.append({
            "table": cell.table, "dataset": cell.dataset, "ce_row": CE_ROWS[cell.clean_ce],
            "label": column_label(config), "method": cell.method, "paper_recipe": True,
            "mean": math.nan, "std": math.nan, "n": 0, "paper_mean": cell.mean,
            "paper_std": cell.std, "diff": math.nan, "significant": False,
        })  # fmt: skip
    cells = pd.DataFrame(rows)
    tables = []
    for number in (1, 2, 3, 4):
        part, keys = cells[cells["table"] == number], ["dataset"]
        if number == 2:  # with its "with standard CE" row, from Table 1
            with_ce = cells[(cells["table"] == 1) & cells["dataset"].isin(part["dataset"])]
            part, keys = pd.concat([part, with_ce]), ["dataset", "ce_row"]
        part = _in_paper_order(part.drop(columns="table"))
        title = paper.TABLE_TITLES[number]
        caption = f"Table {number}: {title} (%), as published ({paper.CITATION})."
        tables.append(Table(number, caption, _layout(part, keys), part))
    return tables


def paper_tables(runs: pd.DataFrame, accuracy: str = "final") -> list[Table]:
    """The paper's Tables 1-4 from ``collect_runs`` rows (one Table 3 or 4 per attack
    setting found); tables with no runs are left out, an empty ``runs`` is an error.

    Table 1: runs with the clean CE term. Table 2: every dataset and configuration that
    has runs without it, both rows. Tables 3-4: attacks on every run; runs without the
    clean term get columns of their own.
    """
    if runs.empty:
        raise ValueError("no finished runs to tabulate")
    tables = [_table1(runs, accuracy), _table2(runs, accuracy), *_attack_tables(runs)]
    tables += _calibration_tables(runs) + _corruption_tables(runs)
    return [t for t in tables if t is not None]


def _beyond(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows for tables the paper has no numbers for: every configuration its own column."""
    return rows.assign(label=rows["label_ce"], paper_recipe=False)


def _calibration_tables(runs: pd.DataFrame) -> list[Table]:
    """Table 5 (beyond the paper): one table per calibration measure and test-set size."""
    evaluations = collect_evaluations(runs)
    if evaluations.empty or "calibration" not in set(evaluations["kind"]):
        return []
    rows = _beyond(evaluations[evaluations["kind"] == "calibration"])
    tables = []
    for n_images, part in rows.groupby("n_images", sort=True):
        holdouts = sorted(set(part["holdout"]))
        for measure, title in CALIBRATION_MEASURES.items():
            values = part.assign(value=pd.to_numeric(part[measure], errors="coerce"))
            if values["value"].isna().all():
                continue  # no run was trained with a holdout: no scaled numbers
            cells = _in_paper_order(_cells(values, "value", ["dataset"], None))
            held = ", ".join(str(h) for h in holdouts)
            caption = (
                f"Table 5 (beyond the paper): calibration, {title}, on {int(n_images)} test "
                f"images; the temperature is "
                f"fitted on training images held out of training ({held}), never on the "
                f"test split. {_recipe_caption(part)} {_OURS}"
            )
            tables.append(Table(5, caption, _layout(cells, ["dataset"]), cells))
    return tables


def _corruption_tables(runs: pd.DataFrame) -> list[Table]:
    """Table 6 (beyond the paper): accuracy under common corruptions, the mean over the
    15 corruptions x 5 severities and each family's mean, per test-set size."""
    from regionmix_utils.evaluation.corruptions import summarise_corruptions

    evaluations = collect_evaluations(runs)
    if evaluations.empty or "corruption" not in set(evaluations["kind"]):
        return []
    found = _beyond(evaluations[evaluations["kind"] == "corruption"])
    tables = []
    for (source, n_images), part in found.groupby(["source", "n_images"], sort=True):
        rows = []
        for _, records in part.groupby("path", sort=False):
            first = records.iloc[0].to_dict()
            summary = summarise_corruptions(records.to_dict("records"))
            rows += [{**first, "measure": m, "value": v} for m, v in summary.items()]
        cells = _in_paper_order(_cells(pd.DataFrame(rows), "value", ["dataset", "measure"], None))
        caption = (
            f"Table 6 (beyond the paper): accuracy (%) under common corruptions (Hendrycks & "
            f"Dietterich, 2019; {'the released files' if source == 'released' else 'computed here'}"
            f"), on {int(n_images)} test images: mean over the 15 corruptions "
            f"x 5 severities (where all were evaluated), and the mean of each family (noise, "
            f"blur, weather, digital). {_recipe_caption(part)} {_OURS}"
        )
        tables.append(Table(6, caption, _layout(cells, ["dataset", "measure"]), cells))
    return tables


# ------------------------------------------------------------------------- exports


def to_markdown(table: pd.DataFrame) -> str:
    """A pipe table; two-level column headers are joined ("CutMix ours")."""
    index = [name or "" for name in table.index.names]
    columns = [
        " ".join(str(part) for part in c if part) if isinstance(c, tuple) else str(c)
        for c in table.columns
    ]
    header = [*index, *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, row in table.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        cells = [str(k) for k in keys] + ["" if pd.isna(v) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_latex(table: pd.DataFrame) -> str:
    """A booktabs tabular, ± as $\\pm$, Δ as $\\Delta$, two-level headers as multicolumns."""

    def tex(value) -> str:
        return str(value).replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("α", r"$\alpha$")

    body = table.map(tex).rename(columns=tex)
    return body.to_latex(escape=False, multicolumn=True, multicolumn_format="c")
