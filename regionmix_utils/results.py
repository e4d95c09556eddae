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

import numpy as np
import pandas as pd

from regionmix_utils import paper
from regionmix_utils.claims import NO_CE, Claim, claims_between, paper_claims, side
from regionmix_utils.config import TrainConfig, recipe_differences
from regionmix_utils.evaluation.masking import FLAGS, flags_text, masking_check
from regionmix_utils.evaluation.robustness import ATTACKS, DEFAULT_EPS, attack_label
from regionmix_utils.methods import SETTINGS, get_method, method_names
from regionmix_utils.runs import Run, eps_text, find_runs

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

# Where each kind of evaluation record goes: its table number (5-7 go beyond the paper;
# each attack's comes from the attack registry). "clean" is the clean accuracy of the
# attacked images, the reference of Tables 3-4 (Table 1 reports the final epoch's test
# accuracy). A kind missing here is an error, never dropped.
EVALUATION_TABLES = {
    "clean": None, **{a.name: a.table for a in ATTACKS.values()}, "calibration": 5,
    "corruption": 6,
}  # fmt: skip
MASK = "†"  # marks a cell of Tables 3, 4 and 7 holding a run the masking check flags
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
        ours=[(_ours_text(r.mean, r.std, r.n) + (MASK if getattr(r, "flagged", False) else ""))
              if r.n else "" for r in cells.itertuples()],
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


def _flagged(evaluations: pd.DataFrame) -> dict[str, bool]:
    """Run path -> whether the gradient-masking check fires any flag on its records."""
    return {
        path: any(masking_check(Run(Path(path)).evaluations())["flags"].values())
        for path in evaluations["path"].unique()
    }


def _mark_flagged(cells: pd.DataFrame, rows: pd.DataFrame, flagged: dict[str, bool]):
    """``cells`` with a column ``flagged``: whether a run of the cell is flagged."""
    marked = rows.assign(flagged=rows["path"].map(flagged).fillna(False).astype(bool))
    per_cell = marked.groupby(["dataset", "label"])["flagged"].any().reset_index()
    return cells.merge(per_cell, on=["dataset", "label"], how="left")


_MASK_NOTE = f" {MASK} marks a cell with a run the gradient-masking check flags (Table 7)."


def _attack_tables(runs: pd.DataFrame) -> list[Table]:
    evaluations = collect_evaluations(runs)
    if evaluations.empty:
        return []
    paper_kinds = [a.name for a in ATTACKS.values() if a.table in (3, 4)]
    attacks = evaluations[evaluations["kind"].isin(paper_kinds)]
    flagged = _flagged(evaluations)
    tables = []
    present = [c for c in _SETTING_COLUMNS if c in attacks]
    for setting, rows in attacks.groupby(present, dropna=False, sort=True):
        setting = dict(zip(present, setting, strict=True))
        number = EVALUATION_TABLES[setting["kind"]]
        comparable = setting["eps"] == DEFAULT_EPS and (
            setting["kind"] == "fgsm" or setting["queries"] == 100
        )
        rows = rows.assign(label=rows["label_ce"], paper_recipe=rows["paper_recipe"] & comparable)
        cells = _cells(rows, "accuracy", ["dataset"], setting["kind"])
        cells = _in_paper_order(_mark_flagged(cells, rows, flagged))
        caption = f"{_attack_caption(number, setting)} {_recipe_caption(rows)} {_footnote(cells)}"
        caption += _MASK_NOTE if cells["flagged"].any() else ""
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
    tables += _calibration_tables(runs) + _corruption_tables(runs) + _beyond_fgsm_tables(runs)
    return [t for t in tables if t is not None]


def _attack_settings_text(record: dict) -> str:
    """How one attack of Table 7 was run, for its caption."""
    spec = ATTACKS[record["kind"]]
    parts = []
    if record["kind"] == "pgd":
        start = "one random start" if record.get("random_start") else "no random start"
        parts.append(f"step {eps_text(record['step_size'])}, {start}")
    if "attack_seed" in spec.fields or "seed" in spec.fields:
        parts.append(f"seed {int(record['attack_seed'])}")
    if record["kind"] == "autoattack" and not pd.isna(record.get("steps")):
        parts.append(f"the reference settings (fra31/auto-attack \"{record['version']}\"): "
                     f"APGD-CE, APGD-T and FAB-T at {int(record['steps'])} iterations, "
                     f"{int(record['targets'])} target classes, then "
                     f"Square-{int(record['queries'])}, each on the images left")  # fmt: skip
    elif record["kind"] in ("autoattack", "autoattack-fast"):
        parts.append("torchattacks' own AutoAttack \"standard\": 10-step APGD-CE, APGD-T "
                     "and FAB-T (K - 1 targets), then Square-5000 (rescaled schedule)")  # fmt: skip
    extra = f" ({', '.join(parts)})" if parts else ""
    return f"{attack_label(record)}{extra} on {int(record['n_images'])} test images"


def _beyond_fgsm_tables(runs: pd.DataFrame) -> list[Table]:
    """Table 7 (beyond the paper): robustness beyond one FGSM step, one table per ε > 0
    at which a Table-7 attack (PGD, APGD, AutoAttack) was run: rows dataset x attack
    (FGSM, PGD-10, PGD-50, APGD-CE, AutoAttack, Square-100, ... as found), then the
    gradient-masking flags of each column's runs; columns the configurations. Where a run
    has an attack at several image counts, the largest count is shown."""
    evaluations = collect_evaluations(runs)
    if evaluations.empty or "eps" not in evaluations:
        return []
    found = evaluations[evaluations["kind"].isin(list(ATTACKS)) & (evaluations["eps"] > 0)]
    deep = found[found["kind"].map(lambda k: ATTACKS[k].table == 7)]
    if deep.empty:
        return []
    checks = {path: masking_check(Run(Path(path)).evaluations())["flags"]
              for path in found["path"].unique()}  # fmt: skip
    order = {name: i for i, name in enumerate(ATTACKS)}
    tables = []
    for eps, part in found[found["eps"].isin(set(deep["eps"]))].groupby("eps", sort=True):
        part = _beyond(part)
        part = part.assign(
            measure=[attack_label(r) for r in part.to_dict("records")],
            _order=part["kind"].map(order),
            _budget=part[[c for c in ("steps", "queries") if c in part]].max(axis=1),
        )
        part = part.sort_values(["n_images"]).drop_duplicates(["path", "measure"], keep="last")
        part = part.sort_values(["_order", "_budget", "measure"], kind="stable")
        flagged = {p: any(checks[p].values()) for p in part["path"].unique()}
        cells = _mark_flagged(_cells(part, "accuracy", ["dataset", "measure"], None), part,
                              flagged)  # fmt: skip
        cells = _in_paper_order(cells)
        frame = _with_flag_rows(_layout(cells, ["dataset", "measure"]), part, checks)
        how = "; ".join(
            _attack_settings_text(r)
            for r in part.drop_duplicates(["measure", "n_images"]).to_dict("records")
        )
        rules = " ".join(f"({n}) {text}." for n, text in FLAGS.items())
        caption = (
            f"Table 7 (beyond the paper): accuracy (%) under attack, robustness beyond one "
            f"FGSM step, ε = {eps_text(eps)} (L∞, inputs in [0, 1], float32, eval mode): "
            f"{how}. Masking flags per run, from every record of the run (all ε, same "
            f"test images): {rules} 'none': checked, none fired; 'unchecked': the records a "
            f"flag needs are missing. A flag says the FGSM number may reflect gradient "
            f"masking, not robustness; no flag is not a proof of robustness. "
            f"{_recipe_caption(part)} {_OURS}"
        )
        caption += _MASK_NOTE if cells["flagged"].any() else ""
        tables.append(Table(7, caption, frame, cells, {"kind": "beyond-fgsm", "eps": eps}))
    return tables


def _with_flag_rows(
    frame: pd.DataFrame, part: pd.DataFrame, checks: dict[str, dict]
) -> pd.DataFrame:
    """``frame`` with a "masking flags" row after each dataset's attacks: per column the
    flags text of its runs ("1, 3"; with several runs, how many share each text)."""
    frame = frame.copy()
    order = []
    for dataset in dict.fromkeys(frame.index.get_level_values(0)):
        order += [k for k in frame.index if k[0] == dataset] + [(dataset, "masking flags")]
    frame = frame.reindex(pd.MultiIndex.from_tuples(order, names=frame.index.names))
    for (dataset, label), rows in part.groupby(["dataset", "label"], sort=False):
        texts = [flags_text(checks[p]) for p in rows["path"].unique()]
        counts = pd.Series(texts).value_counts(sort=False)
        cell = "; ".join(
            text if len(texts) == 1 else f"{text} [{n}/{len(texts)} runs]"
            for text, n in counts.items()
        )
        frame.loc[(dataset_title(dataset), "masking flags"), (label, "ours")] = cell
    return frame.fillna("")


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
            held = ", ".join(str(int(h)) for h in holdouts)  # float where clean rows lack it
            caption = (
                f"Table 5 (beyond the paper): calibration, {title}, on {int(n_images)} test "
                f"images; the temperature is "
                f"fitted on training images held out of training ({held}), never on the "
                f"test split. {_recipe_caption(part)} {_OURS}"
            )
            tables.append(Table(5, caption, _layout(cells, ["dataset"]), cells))
    return tables


def _corruptions_held(part: pd.DataFrame) -> str:
    """What the corruption records hold, in words, and what each measure means."""
    from regionmix_utils.evaluation.corruptions import BENCHMARK, FAMILIES, SEVERITIES

    names = sorted(set(part["corruption"]))
    severities = sorted({int(s) for s in part["severity"]})
    span = (f"severities {severities[0]}-{severities[-1]}" if len(severities) > 1 and
            severities == list(range(severities[0], severities[-1] + 1))
            else "severity " + ", ".join(map(str, severities)))  # fmt: skip
    complete = set(BENCHMARK) <= set(names) and set(SEVERITIES) <= set(severities)
    families = [f for f, members in FAMILIES.items() if set(members) & set(names)]
    words = (f"Evaluated: {', '.join(n.replace('_', ' ') for n in names)} ({len(names)} of the "
             f"{len(BENCHMARK)} corruptions) at {span}. ")  # fmt: skip
    if complete:
        words += "mean: over the 15 corruptions x 5 severities. "
    return words + (f"{', '.join(families)}: the mean over the evaluated corruptions of that "
                    "family and their severities.")  # fmt: skip


def _corruption_tables(runs: pd.DataFrame) -> list[Table]:
    """Table 6 (beyond the paper): accuracy under common corruptions, the mean over the
    15 corruptions x 5 severities (where all were evaluated) and each family's mean over
    what was evaluated, per test-set size; the caption names what the records hold."""
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
            f"), on {int(n_images)} test images. {_corruptions_held(part)} {_recipe_caption(part)}"
            f" {_OURS}"
        )
        tables.append(Table(6, caption, _layout(cells, ["dataset", "measure"]), cells))
    return tables


# ------------------------------------------------------------------ paired comparisons

COMPARE_RESAMPLES = 2000
LEVEL = 0.05  # the family-wise level of a judged family of claims (Holm)
POWER = 0.8  # the seed planner's
# Our datasets that stand for one of the paper's, for its claims (a subset of its images).
PAPER_DATASET = {"cifar10-subset": "cifar10"}
_RERUN = {"clean": "regionmix calibration", "calibration": "regionmix calibration",
          "corruption": "regionmix corruptions"}  # fmt: skip


def _matching(runs: pd.DataFrame, spec: str) -> pd.DataFrame:
    """Runs of one side: a method (optionally "/no-ce") or a column label."""
    method, clean_ce = side(spec)
    by_method = runs[(runs["method"] == method) & (runs["clean_ce"] == clean_ce)]
    return by_method if not by_method.empty else runs[runs["label_ce"] == spec]


def _recipe(path: str) -> tuple:
    config = Run(Path(path)).config
    return (*recipe_differences(config), f"holdout={config.holdout}")


def _pairs(runs: pd.DataFrame, a: str, b: str) -> list[tuple[str, dict, dict]]:
    """(dataset, seed -> Run of A, seed -> Run of B) for each dataset and pair of
    configurations of the two sides trained with the same recipe."""
    side_a, side_b = _matching(runs, a), _matching(runs, b)
    out = []
    for dataset in side_a["dataset"].unique():
        part_b = side_b[side_b["dataset"] == dataset]
        for _, rows_a in side_a[side_a["dataset"] == dataset].groupby("label_ce", sort=False):
            recipe = _recipe(rows_a["path"].iloc[0])
            for _, rows_b in part_b.groupby("label_ce", sort=False):
                if _recipe(rows_b["path"].iloc[0]) == recipe:
                    out.append((dataset, *(
                        {int(r.seed): Run(Path(r.path)) for r in rows.itertuples()}
                        for rows in (rows_a, rows_b)
                    )))  # fmt: skip
    return out


def _metric_label(settings: dict) -> str:
    if settings["kind"] in ATTACKS:
        return f"{attack_label(settings)} ε={eps_text(settings['eps'])}"
    return {"clean": "clean test", "corruption": "common corruptions (mean)"}.get(
        _kind(settings), settings["kind"]
    )


def _kind(settings: dict) -> str:
    """The metric an evaluation's predictions measure: a calibration record's are the
    clean test predictions."""
    return "clean" if settings["kind"] == "calibration" else settings["kind"]


def _shared_settings(runs: list[Run], kind: str | None = None) -> list[dict]:
    """Evaluation settings every run has a record of (of kind ``kind``, a calibration
    record counting as clean), the largest image count first, clean before calibration."""
    from regionmix_utils.runs import evaluation_settings

    found = None
    for run in runs:
        mine = [evaluation_settings(r) for r in run.evaluations()]
        mine = [s for s in mine if kind is None or _kind(s) == kind]
        found = mine if found is None else [s for s in found if s in mine]
    return sorted(found or [], key=lambda s: (-s.get("n_images", 0), s["kind"] == "calibration"))


def _metric_groups(runs: list[Run], kind: str | None) -> list[list[dict]]:
    """The evaluations to compare: one group of settings per metric; the corruptions of
    one source and image count form one group (each image's share of them it gets right)."""
    groups, corruption = [], {}
    for settings in _shared_settings(runs, kind):
        if settings["kind"] == "corruption":
            corruption.setdefault((settings["source"], settings["n_images"]), []).append(settings)
        elif _kind(settings) == "clean" and any(_kind(g[0]) == "clean" for g in groups):
            continue  # the largest test set only; a clean record before a calibration one
        else:
            groups.append([settings])
    return groups + list(corruption.values())


def _compare_group(runs_a: dict, runs_b: dict, group: list[dict]):
    from regionmix_utils.evaluation.statistics import compare_paired, paired_correct

    a, b = {}, {}
    for settings in group:
        part_a, part_b = paired_correct(runs_a, runs_b, settings)
        for s in part_a:
            a[s] = a.get(s, 0) + part_a[s] / len(group)
            b[s] = b.get(s, 0) + part_b[s] / len(group)
    return compare_paired(a, b, n_resamples=COMPARE_RESAMPLES)


def _rerun_hint(kind: str, runs_dir: str) -> str:
    command = _RERUN.get(kind, f"regionmix attack --attack {kind}")
    return f"`{command} --runs-dir {runs_dir}`"


def _paper_regime(runs: dict) -> bool:
    """Whether every run is in the paper's setting: one of its datasets in full, its
    recipe (epochs, width, schedule, ...) and its method settings."""
    return all(run.config.dataset in paper.DATASET_TITLES and _is_paper_recipe(run.config)
               for run in runs.values())  # fmt: skip


def _compare_row(dataset, runs_a, runs_b, group, claim: Claim | None, runs_dir) -> dict:
    from regionmix_utils.evaluation.statistics import MissingPredictions

    row = _base_row(dataset, runs_a, runs_b, group[0], claim)
    try:
        result = _compare_group(runs_a, runs_b, group)
    except MissingPredictions as missing:
        row["verdict"] = (
            f"no per-image predictions in {len(missing.runs)} run(s): re-run "
            f"{_rerun_hint(group[0]['kind'], runs_dir)} for paired numbers"
        )
        return row
    row |= {
        "delta": result.delta, "low": result.low, "high": result.high, "p": result.p_value,
        "p_signflip": result.p_signflip, "image_low": result.image_low,
        "image_high": result.image_high, "seed_sd": result.seed_sd,
        "mean_a": float(np.mean([s.a for s in result.per_seed])),
        "mean_b": float(np.mean([s.b for s in result.per_seed])),
        "_result": result,
    }  # fmt: skip
    return row


def _base_row(dataset, runs_a, runs_b, settings: dict, claim: Claim | None) -> dict:
    first_a, first_b = next(iter(runs_a.values())), next(iter(runs_b.values()))
    nan = math.nan
    return {
        "table": claim.table if claim and claim.table else None, "dataset": dataset,
        "a": column_label(first_a.config, with_ce=True),
        "b": column_label(first_b.config, with_ce=True),
        "metric": _metric_label(settings), "n_images": settings.get("n_images"),
        "seeds": len(set(runs_a) & set(runs_b)),
        "direction": claim.direction if claim else nan,
        "source": claim.source if claim else "",
        "paper_delta": claim.paper_delta if claim and claim.paper_delta is not None else nan,
        "effect": claim.effect if claim and claim.effect is not None else nan,
        "paper_regime": _paper_regime(runs_a) and _paper_regime(runs_b),
        "delta": nan, "low": nan, "high": nan, "p": nan, "p_holm": nan, "p_signflip": nan,
        "image_low": nan, "image_high": nan, "mean_a": nan, "mean_b": nan, "seed_sd": nan,
        "plan": "", "verdict": "",
    }  # fmt: skip


def _not_evaluated(dataset, runs_a, runs_b, claim: Claim, runs_dir) -> dict:
    settings = {"kind": claim.kind, **dict(claim.settings)}
    if claim.kind in ATTACKS:
        settings.setdefault("eps", DEFAULT_EPS)
    row = _base_row(dataset, runs_a, runs_b, settings, claim)
    return row | {"verdict": f"not evaluated: run {_rerun_hint(claim.kind, runs_dir)}"}


@dataclass(frozen=True)
class Comparison:
    """Paired comparisons as a table: ``frame`` (text cells) and ``cells`` (numbers:
    table, dataset, a, b, metric, seeds, direction (the declared claim: +1 A > B, -1
    A < B, NaN none), mean_a, mean_b, delta, low, high (t-interval over seeds), p (paired
    t-test), p_holm (Holm over the judged family), p_signflip (exact), image_low,
    image_high (these models, test images resampled), seed_sd, plan, paper_delta,
    paper_regime, effect, verdict), for the forest plot and the report."""

    caption: str
    frame: pd.DataFrame
    cells: pd.DataFrame
    level: float = LEVEL


def _judged(rows: list[dict], level: float) -> pd.DataFrame:
    """The rows with Holm's correction over those that judge a declared claim, each
    claim's verdict, and for the unresolved ones the seeds the family would need."""
    from regionmix_utils.evaluation.statistics import holm, plan_seeds, verdict

    results = [row.pop("_result", None) for row in rows]
    cells = pd.DataFrame(rows)
    # One seed gives no t-test (p NaN): such a row has no verdict, and is not in the family.
    claimed = cells["direction"].notna() & cells["p"].notna()
    cells.loc[claimed, "p_holm"] = holm(cells.loc[claimed, "p"].to_numpy(), level)
    family = max(1, int(claimed.sum()))
    for i, result in enumerate(results):
        row = cells.loc[i]
        if result is None or pd.isna(row["direction"]):
            continue
        p_holm = None if pd.isna(row["p_holm"]) else float(row["p_holm"])
        said = verdict(result, int(row["direction"]), p_holm, level)
        cells.at[i, "verdict"] = said
        if said in ("supported", "contradicted"):
            continue
        effect = row["effect"]
        if pd.isna(effect) and row["paper_regime"]:
            effect = row["paper_delta"]
        cells.at[i, "plan"] = "no effect declared" if pd.isna(effect) else plan_seeds(
            effect, row["seed_sd"], int(row["seeds"]), level / family, POWER).text  # fmt: skip
    return cells


def judge(runs: pd.DataFrame, claims: list[Claim], runs_dir: str = "runs",
          level: float = LEVEL) -> Comparison:  # fmt: skip
    """Judge a declared family of claims on ``collect_runs`` rows: one row per claim and
    pair of configurations that can answer it (a paper claim about "cifar10" is judged on
    the datasets ``PAPER_DATASET`` maps to it too), the paired t-test over seeds, Holm's
    correction over the family at family-wise ``level``, and a verdict each
    (``statistics.verdict``). A claim whose runs lack its evaluation says what to run.

    Raises:
        ValueError: no claim has runs of both its sides.
    """
    rows = []
    for claim in claims:
        for dataset, runs_a, runs_b in _pairs(runs, claim.a, claim.b):
            if claim.dataset not in (dataset, PAPER_DATASET.get(dataset)):
                continue
            groups = _metric_groups([*runs_a.values(), *runs_b.values()], claim.kind)
            groups = [g for g in groups if claim.matches(g[0])]
            if not groups:
                rows.append(_not_evaluated(dataset, runs_a, runs_b, claim, runs_dir))
            rows += [_compare_row(dataset, runs_a, runs_b, g, claim, runs_dir) for g in groups]
    return _comparison(rows, level, f"any of the {len(claims)} claims")


def compare(
    runs: pd.DataFrame, spec: str, runs_dir: str = "runs", level: float = LEVEL
) -> Comparison:
    """Paired comparisons of ``collect_runs`` rows. ``spec`` "all" judges each of the
    paper's claims (``claims.paper_claims``) on the datasets we have runs of (``judge``);
    "A:B" (two sides: method names, "/no-ce" for the configuration without the clean CE
    term, or column labels) compares A with B on every evaluation both have, and judges
    the paper's claims about A and B among them; a metric no claim is declared for gets
    its numbers and no verdict.

    Raises:
        ValueError: a malformed spec, or no pair of runs that it selects.
    """
    if spec == "all":
        return judge(runs, paper_claims(), runs_dir, level)
    if spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"--compare takes A:B (e.g. region:mixup) or all, got {spec!r}")
    a, b = spec.split(":")
    rows = []
    for dataset, runs_a, runs_b in _pairs(runs, a, b):
        claims = claims_between(a, b, PAPER_DATASET.get(dataset, dataset))
        for group in _metric_groups([*runs_a.values(), *runs_b.values()], None):
            claim = next((c for c in claims if c.kind == _kind(group[0]) and
                          c.matches(group[0])), None)  # fmt: skip
            rows.append(_compare_row(dataset, runs_a, runs_b, group, claim, runs_dir))
    return _comparison(rows, level, f"{spec!r} on the same dataset and recipe")


def _comparison(rows: list[dict], level: float, asked: str) -> Comparison:
    if not rows:
        raise ValueError(
            f"no runs of both sides of {asked} (sides: a method such as region, with "
            f"{NO_CE} for runs without the clean CE term)"
        )
    cells = _judged(rows, level)
    return Comparison(_compare_caption(cells, level), _compare_frame(cells), cells, level)


def _interval(low: float, high: float) -> str:
    return "" if math.isnan(low) else f"[{_signed(low)}, {_signed(high)}]"


def _p_text(p: float) -> str:
    return "" if math.isnan(p) else f"{p:.3f}" if p >= 0.001 else "< 0.001"


def _compare_frame(cells: pd.DataFrame) -> pd.DataFrame:
    claimed = {1: "A > B", -1: "A < B"}
    frame = pd.DataFrame({
        "paper table": ["" if pd.isna(t) else str(int(t)) for t in cells["table"]],
        "dataset": cells["dataset"].map(dataset_title),
        "A vs B": cells["a"] + " vs " + cells["b"],
        "metric": cells["metric"],
        "claim": ["" if pd.isna(d) else claimed[int(d)] for d in cells["direction"]],
        "seeds": cells["seeds"].astype(str),
        "A (%)": ["" if math.isnan(v) else f"{v:.2f}" for v in cells["mean_a"]],
        "B (%)": ["" if math.isnan(v) else f"{v:.2f}" for v in cells["mean_b"]],
        "Δ": ["" if math.isnan(d) else _signed(d) for d in cells["delta"]],
        "95% CI (seeds)": [_interval(r.low, r.high) for r in cells.itertuples()],
        "p": [_p_text(p) for p in cells["p"]],
        "p Holm": [_p_text(p) for p in cells["p_holm"]],
        "p sign-flip": [_p_text(p) for p in cells["p_signflip"]],
        "95% CI (these models)": [_interval(r.image_low, r.image_high) for r in cells.itertuples()],
        "paper Δ": ["" if math.isnan(d) else _signed(d) for d in cells["paper_delta"]],
        "verdict": cells["verdict"],
        "seeds to resolve": cells["plan"],
    })  # fmt: skip
    for column in ("paper table", "paper Δ", "claim", "p Holm", "seeds to resolve"):
        if frame[column].eq("").all():
            frame = frame.drop(columns=column)
    return frame.set_index("dataset")


def _compare_caption(cells: pd.DataFrame, level: float) -> str:
    mapped = sorted(d for d in set(cells["dataset"]) if d in PAPER_DATASET)
    stands = "".join(
        f" {dataset_title(d)} is judged against the paper's "
        f"{dataset_title(PAPER_DATASET[d])} claims." for d in mapped
    )  # fmt: skip
    claimed = cells["direction"].notna() & cells["p"].notna()
    family = int(claimed.sum())
    sources = sorted(set(cells.loc[cells["direction"].notna(), "source"]))
    named = " and ".join("the paper's" if s == "paper" else f"the {s} study's" for s in sources)
    verdicts = (
        f" Verdicts on the family of {family} declared claim(s) ({named}), each in the "
        f"direction its declaration states: supported when Holm's adjusted p is below "
        f"{level:g} (family-wise) and Δ has the declared sign, contradicted when it is below "
        "with the other sign, otherwise not resolved; with the seeds the paired t-test "
        f"would need for the declared effect (the paper's Δ only in the paper's setting) "
        f"at {level:g} / {max(family, 1)} with {POWER:.0%} power, at the seeds' measured "
        "spread, and in brackets at the ends of that spread's 95% interval."
        if family else " No declared claim is among these comparisons: no verdicts."
    )
    return (
        "Paired comparisons: Δ = A − B in points, the mean over the seeds both have of "
        "the per-seed difference on the same test images. The trained model is the unit: "
        "95% CI (seeds) and p are the paired t-test over the seeds (S − 1 degrees of "
        "freedom); p sign-flip is the exact sign-flip test over the seeds, which assumes "
        "no normal distribution and cannot go below 2 / 2^S (0.25 with 3 seeds). 95% CI "
        f"(these models): the test images resampled ({COMPARE_RESAMPLES:,} times) with the "
        "trained models held fixed, which says how far these models' Δ would move on other "
        "test images, not how far another training would move it." + verdicts +
        " Common corruptions: each image's share of the corruptions x severities it gets "
        "right. A claim is left out where we have no runs of both sides on its dataset "
        "with the same recipe." + stands
    )


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
