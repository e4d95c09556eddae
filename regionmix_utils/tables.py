"""The paper's Tables 1-4 from finished runs, ours beside its numbers, and the tables beyond
it (5-7, and one per registered evaluation); captions are ``templates/captions.md.j2``."""

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pandas as pd

from regionmix_utils import paper
from regionmix_utils.config import TrainConfig
from regionmix_utils.evaluation import corruptions, masking
from regionmix_utils.evaluation.registry import evaluation_kinds, get_evaluation
from regionmix_utils.evaluation.robustness import DEFAULT_EPS, attack_label
from regionmix_utils.methods import method_names
from regionmix_utils.records import PAPER_DATASETS, _evaluation_records, column_label, dataset_title
from regionmix_utils.runs import eps_text

MASK = "†"  # marks a cell of Tables 3, 4 and 7 holding a run the masking check flags
# Table 5's measures, in its order, with the letter of each one's table (5a-5d)
CALIBRATION_MEASURES = {"ece": "a", "ece_scaled": "b", "nll": "c", "brier": "d"}
CORRUPTION_MEASURES = ("mean", *corruptions.FAMILIES)
CE_ROWS = {False: "w/o clean CE", True: "with clean CE"}  # Table 2's rows (its "standard CE")
ACCURACY_WORDS = {"final": "final epoch", "best": "best epoch",
                  "last10": "median of the last 10 epochs"}  # fmt: skip
_PAPER_METHODS = {cell.method for cell in paper.CELLS}
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                          undefined=jinja2.StrictUndefined)  # fmt: skip
_ENV.filters |= {"eps": eps_text, "attack_label": attack_label}


def caption(name: str, **values) -> str:
    """The ``name`` macro of ``templates/captions.md.j2``, its whitespace collapsed."""
    macro = getattr(_ENV.get_template("captions.md.j2").module, name)
    return " ".join(str(macro(**values)).split())


@dataclasses.dataclass(frozen=True)
class Table:
    """Table ``number`` (0: an evaluation's own): ``frame`` text, columns (label, ours / paper
    / Δ); ``cells`` numbers (``_cells``); ``setting`` the records shown (None: Tables 1, 2, 6)."""

    number: int
    caption: str
    frame: pd.DataFrame
    cells: pd.DataFrame
    setting: dict | None = None

    @property
    def has_paper(self) -> bool:
        return bool(self.cells["paper_mean"].notna().any())


def _cells(rows: pd.DataFrame, value: str, row_keys: list[str], attack: str | None) -> pd.DataFrame:
    """One row per (row keys, label): *row_keys, label, method, paper_recipe, mean, std, n,
    paper_mean, paper_std, diff, significant (|diff| > 2 combined standard errors)."""
    out, keys, nan = [], [*row_keys, "label", "method", "paper_recipe"], math.nan
    for group, part in rows.dropna(subset=[value]).groupby(keys, sort=False):
        cell = dict(zip(keys, group, strict=True))
        n, mean = int(part[value].count()), float(part[value].mean())
        std = float(part[value].std()) if n > 1 else nan
        found = cell["paper_recipe"] and paper.lookup(
            cell["dataset"], cell["method"], bool(part["clean_ce"].iloc[0]), attack)  # fmt: skip
        paper_mean, paper_std = (found.mean, found.std) if found else (nan, nan)
        se = math.sqrt(std**2 / n + paper_std**2 / paper.SEEDS)  # NaN: one seed or no paper
        out.append({**cell, "mean": mean, "std": std, "n": n, "paper_mean": paper_mean,
                    "paper_std": paper_std, "diff": mean - paper_mean,
                    "significant": bool(abs(mean - paper_mean) > 2 * se)})  # fmt: skip
    return pd.DataFrame(out)


def _signed(value: float) -> str:
    """+1.05, -0.03, +0.00 (never -0.00)."""
    return f"{round(value, 2) + 0.0:+.2f}"


def _layout(cells: pd.DataFrame, row_keys: list[str]) -> pd.DataFrame:
    """Rows ``row_keys``; the paper's columns first, then by method and label."""
    texts = cells.assign(
        ours=[(f"{r.mean:.2f} ± {r.std:.2f} ({r.n})" if r.n > 1 else f"{r.mean:.2f} ({r.n})")
              + (MASK if getattr(r, "flagged", False) else "") if r.n else ""
              for r in cells.itertuples()],
        paper=["" if math.isnan(r.paper_mean) else f"{r.paper_mean:.2f} ± {r.paper_std:.2f}"
               for r in cells.itertuples()],
        **{"Δ": ["" if math.isnan(r.diff) else _signed(r.diff) + ("*" if r.significant else "")
                 for r in cells.itertuples()]})  # fmt: skip
    order = {name: i for i, name in enumerate(method_names())}
    columns = sorted(cells.drop_duplicates("label").itertuples(), key=lambda c: (
        not (c.paper_recipe and c.method in _PAPER_METHODS), order.get(c.method, len(order)),
        c.label))  # fmt: skip
    parts = []
    for label in (c.label for c in columns):
        part = texts[texts["label"] == label].set_index(row_keys)
        has = {"ours": (part["n"] > 0).any(), "paper": part["paper_mean"].notna().any()}
        shown = [k for k, v in {**has, "Δ": all(has.values())}.items() if v]
        parts.append(part[shown].set_axis(pd.MultiIndex.from_product([[label], shown]), axis=1))
    rows = pd.MultiIndex.from_frame(cells[row_keys].drop_duplicates())
    table = pd.concat(parts, axis=1).reindex(rows.get_level_values(0) if len(row_keys) == 1
                                             else rows).fillna("")  # fmt: skip
    table.index.names = [{"ce_row": "CE term", "measure": ""}.get(n, n) for n in table.index.names]
    return table


def _in_paper_order(cells: pd.DataFrame) -> pd.DataFrame:
    """Rows in the paper's order (its datasets, then others by name; w/o CE first), titled."""
    rank = {name: i for i, name in enumerate(PAPER_DATASETS)}
    second = {v: i for i, v in enumerate([*CE_ROWS.values(), *CORRUPTION_MEASURES])}
    within = next((k for k in ("measure", "ce_row") if k in cells), "dataset")
    cells = cells.assign(_rank=cells["dataset"].map(lambda d: rank.get(d, len(rank))),
                         _second=cells[within].map(second))  # fmt: skip
    cells = cells.sort_values(["_rank", "dataset", "_second"], kind="stable")
    cells = cells.drop(columns=["_rank", "_second"])
    return cells.assign(dataset=cells["dataset"].map(dataset_title)).reset_index(drop=True)


def _table(number: int, head: str, rows: pd.DataFrame, value: str, keys: list[str],
           attack=None, flagged: dict | None = None, setting=None) -> Table:  # fmt: skip
    """``value`` over ``rows``; ``flagged`` (run path -> bool) marks cells with ``MASK``."""
    cells = _cells(rows, value, keys, attack)
    if flagged is not None:
        marked = rows.assign(flagged=rows["path"].map(flagged).fillna(False).astype(bool))
        per_cell = marked.groupby(["dataset", "label"])["flagged"].any().reset_index()
        cells = cells.merge(per_cell, on=["dataset", "label"], how="left")
    cells = _in_paper_order(cells)
    text = caption("table", head=head, epochs=sorted(set(rows["epochs"])),
                   alphas=sorted(set(rows.loc[rows["method"] != "none", "alpha"])),
                   paper=cells["paper_mean"].notna().any(),
                   mask=MASK if flagged is not None and cells["flagged"].any() else "")  # fmt: skip
    return Table(number, text, _layout(cells, keys), cells, setting)


def _of(evaluations: pd.DataFrame, *numbers: int) -> pd.DataFrame:
    """The records of kinds declared in tables ``numbers``, without paper numbers."""
    kinds = [k for k in evaluation_kinds() if get_evaluation(k).table in numbers]
    rows = evaluations[evaluations["kind"].isin(kinds)]
    return rows.assign(label=rows["label_ce"], paper_recipe=False)


def paper_tables(runs: pd.DataFrame, accuracy: str = "final") -> list[Table]:
    """Tables 1 (with the clean CE term), 2 (with and without), 3-7, then the evaluations' own,
    of ``collect_runs`` rows. ValueError: ``runs`` is empty, or a record's kind not registered."""
    if runs.empty:
        raise ValueError("no finished runs to tabulate")
    words, tables = ACCURACY_WORDS[accuracy], []
    if runs["clean_ce"].any():
        head = f"Table 1: {paper.TABLE_TITLES[1]} (%), {words}."
        tables.append(_table(1, head, runs[runs["clean_ce"]], "test_acc", ["dataset"]))
    if not runs["clean_ce"].all():
        rows = runs.merge(runs.loc[~runs["clean_ce"], ["dataset", "label"]].drop_duplicates())
        head = f"Table 2: {paper.TABLE_TITLES[2]} (the clean CE term) CE(f(x_A), y_A) (%), {words}."
        rows = rows.assign(ce_row=rows["clean_ce"].map(CE_ROWS))
        tables.append(_table(2, head, rows, "test_acc", ["dataset", "ce_row"]))
    evaluations, records = _evaluation_records(runs)
    if evaluations.empty:
        return tables
    checks = {p: masking.masking_check(found)["flags"] for p, found in records.items() if found}
    flagged = {path: any(flags.values()) for path, flags in checks.items()}
    tables += [*_setting_tables(evaluations, flagged), *_calibration_tables(evaluations)]
    tables += [*_corruption_tables(evaluations), *_beyond_fgsm_tables(evaluations, checks, flagged)]
    return sorted(tables, key=lambda t: t.number or 8)  # 1-7, then the evaluations' own


def _setting_tables(evaluations: pd.DataFrame, flagged: dict[str, bool]) -> Iterator[Table]:
    """Tables 3-4 and each evaluation's own (numbered 0), one per setting and image count."""
    for kind in evaluation_kinds():
        spec, rows = get_evaluation(kind), evaluations[evaluations["kind"] == kind]
        if spec.table not in (None, 3, 4) or kind == "clean" or rows.empty:
            continue  # no record: its keys are no column of the frame
        keys = [*({"seed": "attack_seed"}.get(k, k) for k in spec.keys), "n_images"]
        for values, part in rows.assign(label=rows["label_ce"]).groupby(keys, dropna=False):
            setting = {"kind": kind, **dict(zip(keys, values, strict=True))}
            head = caption("setting", spec=spec, s=setting, default_eps=DEFAULT_EPS,
                           title=paper.TABLE_TITLES.get(spec.table, "").split(",")[0])  # fmt: skip
            own = spec.table is None  # an evaluation's own: no paper numbers, no masking marks
            paper_setting = not own and setting["eps"] == DEFAULT_EPS  # FGSM, Square-100 at its ε
            paper_setting = paper_setting and setting.get("queries", 100) == 100
            part = part.assign(paper_recipe=part["paper_recipe"] & paper_setting)
            marks = (None, None) if own else (kind, flagged)  # attack for the paper, flags
            yield _table(spec.table or 0, head, part, "accuracy", ["dataset"], *marks, setting)


def _calibration_tables(evaluations: pd.DataFrame) -> Iterator[Table]:
    """Tables 5a-5d: one table per calibration measure (a-d) and test-set size."""
    for n_images, part in _of(evaluations, 5).groupby("n_images", sort=True):
        held = [str(int(h)) for h in sorted(set(part["holdout"]))]
        for measure, letter in CALIBRATION_MEASURES.items():
            values = part.assign(value=pd.to_numeric(part[measure], errors="coerce"))
            if values["value"].isna().all():
                continue  # no run was trained with a holdout: no scaled numbers
            head = caption("calibration", measure=measure, n_images=int(n_images), held=held,
                           letter=letter)  # fmt: skip
            setting = {"kind": "calibration", "measure": measure, "n_images": int(n_images)}
            yield _table(5, head, values, "value", ["dataset"], setting=setting)


def _corruption_tables(evaluations: pd.DataFrame) -> Iterator[Table]:
    """Table 6 per source and image count: the mean over all 15 x 5, each family's mean."""
    found = _of(evaluations, 6)
    for (source, n_images), part in found.groupby(["source", "n_images"]) if len(found) else ():
        rows = [{**records.iloc[0].to_dict(), "measure": m, "value": v}
                for _, records in part.groupby("path", sort=False) for m, v in
                corruptions.summarise_corruptions(records.to_dict("records")).items()]  # fmt: skip
        names = sorted(set(part["corruption"]))
        severities = sorted({int(s) for s in part["severity"]})
        families = [f for f, members in corruptions.FAMILIES.items() if set(members) & set(names)]
        complete = (set(corruptions.BENCHMARK) <= set(names)
                    and set(corruptions.SEVERITIES) <= set(severities))  # fmt: skip
        head = caption("corruption", n_images=int(n_images), severities=severities,
                       origin="the released files" if source == "released" else "computed here",
                       names=[n.replace("_", " ") for n in names], families=families,
                       complete=complete, total=len(corruptions.BENCHMARK))  # fmt: skip
        yield _table(6, head, pd.DataFrame(rows), "value", ["dataset", "measure"])


def _beyond_fgsm_tables(evaluations: pd.DataFrame, checks: dict, flagged: dict) -> Iterator[Table]:
    """Table 7 per ε > 0 at which a Table-7 attack ran: rows dataset x attack (on the most
    images a run has), then each column's masking flags (``checks``: run path -> flags)."""
    found = _of(evaluations, 3, 4, 7)
    if "eps" not in found:
        return
    found = found[found["eps"] > 0]
    seeded = {k for k in evaluation_kinds() if "seed" in get_evaluation(k).keys}
    deep = set(found.loc[found["kind"].map(lambda k: get_evaluation(k).table) == 7, "eps"])
    for eps, part in found[found["eps"].isin(deep)].groupby("eps"):
        part = part.assign(
            measure=[attack_label(r) for r in part.to_dict("records")],
            _order=part["kind"].map(evaluation_kinds().index),
            _budget=part[[c for c in ("steps", "queries") if c in part]].max(axis=1))  # fmt: skip
        part = part.sort_values(["n_images"]).drop_duplicates(["path", "measure"], keep="last")
        part = part.sort_values(["_order", "_budget", "measure"], kind="stable")
        shown = part.drop_duplicates(["measure", "n_images"]).to_dict("records")
        head = caption("beyond_fgsm", eps=eps, shown=shown, seeded=seeded, flags=masking.FLAGS)
        table = _table(7, head, part, "accuracy", ["dataset", "measure"], flagged=flagged,
                       setting={"kind": "beyond-fgsm", "eps": eps})  # fmt: skip
        # A "masking flags" row after each dataset's attacks: per column its runs' flags.
        frame, rows = table.frame, []
        for dataset in dict.fromkeys(frame.index.get_level_values(0)):
            rows += [k for k in frame.index if k[0] == dataset] + [(dataset, "masking flags")]
        frame = frame.reindex(pd.MultiIndex.from_tuples(rows, names=frame.index.names))
        for (dataset, label), runs in part.groupby(["dataset", "label"], sort=False):
            texts = [masking.flags_text(checks[p]) for p in runs["path"].unique()]
            frame.loc[(dataset_title(dataset), "masking flags"), (label, "ours")] = "; ".join(
                text if len(texts) == 1 else f"{text} [{n}/{len(texts)} runs]"
                for text, n in pd.Series(texts).value_counts(sort=False).items())  # fmt: skip
        yield dataclasses.replace(table, frame=frame.fillna(""))


def published_tables() -> list[Table]:
    """The paper's Tables 1-4 alone, in the same layout (where our runs are not comparable)."""
    # Table 2's "with clean CE" row is Table 1's CIFAR-100 row: taken from there.
    cells = pd.DataFrame([{
        "table": c.table, "dataset": c.dataset, "ce_row": CE_ROWS[c.clean_ce],
        "label": column_label(TrainConfig(dataset=c.dataset, method=c.method)),
        "method": c.method, "paper_recipe": True, "mean": math.nan, "std": math.nan, "n": 0,
        "paper_mean": c.mean, "paper_std": c.std, "diff": math.nan, "significant": False,
    } for c in paper.CELLS if not (c.table == 2 and c.clean_ce)])  # fmt: skip
    tables = []
    for number in (1, 2, 3, 4):
        part, keys = cells[cells["table"] == number], ["dataset"]
        if number == 2:
            with_ce = cells[(cells["table"] == 1) & cells["dataset"].isin(part["dataset"])]
            part, keys = pd.concat([part, with_ce]), ["dataset", "ce_row"]
        part = _in_paper_order(part.drop(columns="table"))
        text = f"Table {number}: {paper.TABLE_TITLES[number]} (%), as published ({paper.CITATION})."
        tables.append(Table(number, text, _layout(part, keys), part))
    return tables


def to_markdown(table: pd.DataFrame) -> str:
    """A pipe table; two-level column headers are joined ("CutMix ours")."""
    columns = [" ".join(str(p) for p in c if p) if isinstance(c, tuple) else str(c)
               for c in table.columns]  # fmt: skip
    header = [*(name or "" for name in table.index.names), *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, row in table.iterrows():
        cells = [str(k) for k in (key if isinstance(key, tuple) else (key,))]
        lines.append("| " + " | ".join(cells + ["" if pd.isna(v) else str(v) for v in row]) + " |")
    return "\n".join(lines)


def to_latex(table: pd.DataFrame) -> str:
    """A booktabs tabular, ± as $\\pm$, Δ as $\\Delta$, two-level headers as multicolumns."""

    def tex(value) -> str:
        return str(value).replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("α", r"$\alpha$")

    body = table.map(tex).rename(columns=tex)
    return body.to_latex(escape=False, multicolumn=True, multicolumn_format="c")
