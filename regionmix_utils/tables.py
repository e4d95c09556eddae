"""The paper's Tables 1-4 from finished runs, our numbers beside the published ones, the
tables beyond the paper (5-7 and registered evaluations), as Markdown or LaTeX.

``paper_tables`` lays ``records.collect_runs`` rows out as the paper prints its tables:
datasets as rows, methods as columns in the paper's order (CutMix, Mixup k=1, Region
Mixup k=2, then no mixing and other settings), Table 2 with the rows "w/o standard CE" /
"with standard CE". Where the paper has a number for a cell, the cell shows ours
(``mean ± std (n seeds)``), the paper's (``mean ± std``, 3 runs) and the difference,
marked * when it is larger than two combined standard errors.

A column is one configuration: the method, its settings and every recipe field that
differs from the paper's (named in its label), so runs with other settings never share
a cell with the paper's setting, and quick runs never share one with full runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from regionmix_utils import paper
from regionmix_utils.config import TrainConfig
from regionmix_utils.evaluation.masking import FLAGS, flags_text, masking_check
from regionmix_utils.evaluation.registry import evaluation_kinds, get_evaluation
from regionmix_utils.evaluation.robustness import ATTACKS, DEFAULT_EPS, attack_label
from regionmix_utils.methods import method_names
from regionmix_utils.records import (
    EVALUATION_TABLES,
    _evaluation_records,
    column_label,
    dataset_title,
)
from regionmix_utils.runs import eps_text

__all__ = [
    "ACCURACY_WORDS",
    "CALIBRATION_MEASURES",
    "CE_ROWS",
    "CORRUPTION_MEASURES",
    "MASK",
    "Table",
    "paper_tables",
    "published_tables",
    "to_latex",
    "to_markdown",
]

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
        setting: the attack setting of Tables 3-4 and 7 (kind, eps, queries, ...,
            n_images), the measure of Table 5 (kind, measure, n_images); None for
            Tables 1-2.
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


def _masking_flags(records: dict[str, list[dict]]) -> dict[str, dict]:
    """Run path -> the gradient-masking check's flags on its records (``masking_check``),
    for each run with records (``records``: run path -> its evaluation records)."""
    return {path: masking_check(found)["flags"] for path, found in records.items() if found}


def _flagged(checks: dict[str, dict]) -> dict[str, bool]:
    """Run path -> whether the gradient-masking check fires any flag on its records
    (``checks``: ``_masking_flags``)."""
    return {path: any(flags.values()) for path, flags in checks.items()}


def _mark_flagged(cells: pd.DataFrame, rows: pd.DataFrame, flagged: dict[str, bool]):
    """``cells`` with a column ``flagged``: whether a run of the cell is flagged."""
    marked = rows.assign(flagged=rows["path"].map(flagged).fillna(False).astype(bool))
    per_cell = marked.groupby(["dataset", "label"])["flagged"].any().reset_index()
    return cells.merge(per_cell, on=["dataset", "label"], how="left")


_MASK_NOTE = f" {MASK} marks a cell with a run the gradient-masking check flags (Table 7)."


def _attack_tables(evaluations: pd.DataFrame, checks: dict[str, dict]) -> list[Table]:
    """Tables 3-4, one per attack setting, from ``collect_evaluations`` rows; ``checks``:
    ``_masking_flags`` of their runs (the † marks)."""
    if evaluations.empty:
        return []
    paper_kinds = [a.name for a in ATTACKS.values() if a.table in (3, 4)]
    attacks = evaluations[evaluations["kind"].isin(paper_kinds)]
    flagged = _flagged(checks)
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
    tables = [_table1(runs, accuracy), _table2(runs, accuracy)]
    # The tables beyond 1-2 all read the runs' evaluation records: each eval.json once.
    evaluations, records = _evaluation_records(runs)
    checks = _masking_flags(records)
    tables += _attack_tables(evaluations, checks)
    tables += _calibration_tables(evaluations) + _corruption_tables(evaluations)
    tables += _beyond_fgsm_tables(evaluations, checks)
    tables += _registered_tables(evaluations)
    return [t for t in tables if t is not None]


def _registered_tables(evaluations: pd.DataFrame) -> list[Table]:
    """A table for each registered evaluation made by ``registry.evaluate`` (one of
    its own: a plugin's): its accuracy per dataset and configuration, one table per
    setting and image count; numbered 0 (beyond the paper). ``evaluations``:
    ``collect_evaluations`` rows."""
    kinds = [k for k in evaluation_kinds() if get_evaluation(k).compute is not None]
    if evaluations.empty or not kinds:
        return []
    tables = []
    for kind in kinds:
        spec = get_evaluation(kind)
        rows = _beyond(evaluations[evaluations["kind"] == kind])
        if rows.empty:  # no record of this kind: its settings are no column of the frame
            continue
        for values, part in rows.groupby([*spec.keys, "n_images"], sort=True, dropna=False):
            values = values if isinstance(values, tuple) else (values,)
            setting = dict(zip([*spec.keys, "n_images"], values, strict=True))
            said = ", ".join(f"{k}={v}" for k, v in setting.items() if k != "n_images")
            cells = _in_paper_order(_cells(part, "accuracy", ["dataset"], None))
            caption = (f"{spec.title} (beyond the paper{', ' + said if said else ''}): "
                       f"{spec.caption}, on {int(setting['n_images'])} test images. "
                       f"{_recipe_caption(part)} {_OURS}")  # fmt: skip
            tables.append(Table(0, caption, _layout(cells, ["dataset"]), cells,
                                {"kind": kind, **setting}))  # fmt: skip
    return tables


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


def _beyond_fgsm_tables(evaluations: pd.DataFrame, checks: dict[str, dict]) -> list[Table]:
    """Table 7 (beyond the paper): robustness beyond one FGSM step, one table per ε > 0
    at which a Table-7 attack (PGD, APGD, AutoAttack) was run: rows dataset x attack
    (FGSM, PGD-10, PGD-50, APGD-CE, AutoAttack, Square-100, ... as found), then the
    gradient-masking flags of each column's runs; columns the configurations. Where a run
    has an attack at several image counts, the largest count is shown. ``evaluations``:
    ``collect_evaluations`` rows; ``checks``: ``_masking_flags`` of their runs."""
    if evaluations.empty or "eps" not in evaluations:
        return []
    found = evaluations[evaluations["kind"].isin(list(ATTACKS)) & (evaluations["eps"] > 0)]
    deep = found[found["kind"].map(lambda k: ATTACKS[k].table == 7)]
    if deep.empty:
        return []
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


def _calibration_tables(evaluations: pd.DataFrame) -> list[Table]:
    """Table 5 (beyond the paper): one table per calibration measure and test-set size,
    from ``collect_evaluations`` rows."""
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
            setting = {"kind": "calibration", "measure": measure, "n_images": int(n_images)}
            tables.append(Table(5, caption, _layout(cells, ["dataset"]), cells, setting))
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


def _corruption_tables(evaluations: pd.DataFrame) -> list[Table]:
    """Table 6 (beyond the paper): accuracy under common corruptions, the mean over the
    15 corruptions x 5 severities (where all were evaluated) and each family's mean over
    what was evaluated, per test-set size; the caption names what the records hold.
    ``evaluations``: ``collect_evaluations`` rows."""
    from regionmix_utils.evaluation.corruptions import summarise_corruptions

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
