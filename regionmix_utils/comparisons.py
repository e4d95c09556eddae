"""Paired comparisons of configurations over the seeds both have, and the verdicts on
declared claims (Holm's correction over the family).

``compare`` pairs the runs of two sides (``claims.side``) trained with the same recipe on
the same dataset, and compares them on every evaluation both have, from their stored
per-image predictions; ``judge`` does so for a declared family of claims and says which
are supported, contradicted or not resolved (and how many seeds would resolve them).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from regionmix_utils import paper
from regionmix_utils.claims import MATCHED, NO_CE, Claim, claims_between, paper_claims, side
from regionmix_utils.config import recipe_differences
from regionmix_utils.evaluation.registry import evaluation_kinds, get_evaluation
from regionmix_utils.evaluation.robustness import ATTACKS, DEFAULT_EPS, attack_label
from regionmix_utils.records import _is_paper_recipe, column_label, dataset_title
from regionmix_utils.runs import Run, eps_text
from regionmix_utils.tables import _signed

__all__ = [
    "COMPARE_RESAMPLES",
    "LEVEL",
    "PAPER_DATASET",
    "POWER",
    "Comparison",
    "compare",
    "judge",
]

COMPARE_RESAMPLES = 2000
LEVEL = 0.05  # the family-wise level of a judged family of claims (Holm)
POWER = 0.8  # the seed planner's
# Our datasets that stand for one of the paper's, for its claims (a subset of its images).
PAPER_DATASET = {"cifar10-subset": "cifar10"}
_RERUN = {"clean": "regionmix calibration", "calibration": "regionmix calibration",
          "corruption": "regionmix corruptions"}  # fmt: skip


def _matching(runs: pd.DataFrame, spec: str) -> pd.DataFrame:
    """Runs of one side: a method (optionally "/no-ce") or a column label."""
    method, clean_ce, matched = side(spec)
    by_method = runs[(runs["method"] == method) & (runs["clean_ce"] == clean_ce)
                     & (runs["matched_compute"] == matched)]  # fmt: skip
    return by_method if not by_method.empty else runs[runs["label_ce"] == spec]


def _recipe(path: str) -> tuple:
    # The second mixed pass is a side's loss, as the clean CE term is, not its recipe.
    config = dataclasses.replace(Run(Path(path)).config, matched_compute=False)
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
    spec = _registered(settings["kind"])
    if spec is not None and spec.compute is not None:
        return spec.title
    if settings["kind"] in ATTACKS:
        return f"{attack_label(settings)} ε={eps_text(settings['eps'])}"
    return {"clean": "clean test", "corruption": "common corruptions (mean)"}.get(
        _kind(settings), settings["kind"]
    )


def _registered(kind: str):
    return get_evaluation(kind) if kind in evaluation_kinds() else None


def _kind(settings: dict) -> str:
    """The metric an evaluation's predictions measure: a calibration record's are the
    clean test predictions."""
    return "clean" if settings["kind"] == "calibration" else settings["kind"]


def _shared_settings(
    runs: list[Run], kind: str | None = None, read: dict[Path, list[dict]] | None = None
) -> list[dict]:
    """Evaluation settings every run has a record of (of kind ``kind``, a calibration
    record counting as clean), the largest image count first, clean before calibration.
    ``read``: run path -> the settings of its records, filled here as runs are read (a
    ``judge`` or ``compare`` call shares one, so that it reads each eval.json once)."""
    from regionmix_utils.runs import evaluation_settings

    read = {} if read is None else read
    found = None
    for run in runs:
        if run.path not in read:
            read[run.path] = [evaluation_settings(r) for r in run.evaluations()]
        mine = [s for s in read[run.path] if kind is None or _kind(s) == kind]
        found = mine if found is None else [s for s in found if s in mine]
    return sorted(found or [], key=lambda s: (-s.get("n_images", 0), s["kind"] == "calibration"))


def _metric_groups(
    runs: list[Run], kind: str | None, read: dict[Path, list[dict]] | None = None
) -> list[list[dict]]:
    """The evaluations to compare: one group of settings per metric; the corruptions of
    one source and image count form one group (each image's share of them it gets right).
    ``read``: as ``_shared_settings`` takes it."""
    groups, corruption = [], {}
    for settings in _shared_settings(runs, kind, read):
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
    spec = _registered(kind)
    command = spec.command if spec else _RERUN.get(kind, f"regionmix attack --attack {kind}")
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
    rows, read = [], {}  # read: the runs' evaluation settings, each eval.json read once
    for claim in claims:
        for dataset, runs_a, runs_b in _pairs(runs, claim.a, claim.b):
            if claim.dataset not in (dataset, PAPER_DATASET.get(dataset)):
                continue
            groups = _metric_groups([*runs_a.values(), *runs_b.values()], claim.kind, read)
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
    rows, read = [], {}  # read: the runs' evaluation settings, each eval.json read once
    pairs = _pairs(runs, a, b)
    for dataset, runs_a, runs_b in pairs:
        claims = claims_between(a, b, PAPER_DATASET.get(dataset, dataset))
        for group in _metric_groups([*runs_a.values(), *runs_b.values()], None, read):
            claim = next((c for c in claims if c.kind == _kind(group[0]) and
                          c.matches(group[0])), None)  # fmt: skip
            rows.append(_compare_row(dataset, runs_a, runs_b, group, claim, runs_dir))
    if pairs and not rows:
        raise ValueError(_unevaluated(spec, pairs, read, runs_dir))
    return _comparison(rows, level, f"{spec!r} on the same dataset and recipe")


def _unevaluated(spec: str, pairs: list, read: dict[Path, list[dict]], runs_dir: str) -> str:
    """The error for runs of both sides that share no evaluation: how many runs of each
    side, how many of them have no evaluation record, and the commands that make them.
    ``pairs``: ``_pairs``'s; ``read``: run path -> its records' settings, as
    ``_shared_settings`` filled it."""
    sides = spec.split(":")
    found = [{run.path for pair in pairs for run in pair[1 + i].values()} for i in (0, 1)]
    counts = [
        f"{len(paths)} run(s) of {name!r} ({sum(not read.get(p) for p in paths)} with no "
        "evaluation records)"
        for name, paths in zip(sides, found, strict=True)
    ]
    datasets = ", ".join(sorted({pair[0] for pair in pairs}))
    attacks = [kind for kind in evaluation_kinds() if kind in ATTACKS]
    # The registry's commands, in its order, one per command; the attacks as one.
    others = {_rerun_hint(k, runs_dir): None for k in evaluation_kinds() if k not in ATTACKS}
    others.pop(_rerun_hint("clean", runs_dir))
    if attacks:
        others[f"`regionmix attack --attack ATTACK --runs-dir {runs_dir}` (ATTACK: "
               f"{', '.join(attacks)})"] = None  # fmt: skip
    return (
        f"{counts[0]} and {counts[1]} on {datasets} with the same recipe, but no evaluation "
        f"record that both sides have, so nothing to compare {spec!r} on: run "
        f"{_rerun_hint('clean', runs_dir)} (clean test accuracy with each image's "
        f"prediction), or another evaluation on both sides: {', '.join(others)}"
    )


def _comparison(rows: list[dict], level: float, asked: str) -> Comparison:
    if not rows:
        raise ValueError(
            f"no runs of both sides of {asked} (sides: a method such as region, with "
            f"{NO_CE} for runs without the clean CE term, {MATCHED} for those with a second "
            "mixed pass in its place)"
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
    paper = cells["source"].eq("paper") & cells["direction"].notna()
    mapped = sorted(d for d in set(cells.loc[paper, "dataset"]) if d in PAPER_DATASET)
    stands = "".join(
        f" {dataset_title(d)} is judged against the paper's "
        f"{dataset_title(PAPER_DATASET[d])} claims." for d in mapped
    )  # fmt: skip
    claimed = cells["direction"].notna() & cells["p"].notna()
    family = int(claimed.sum())
    sources = sorted(set(cells.loc[cells["direction"].notna(), "source"]))
    named = " and ".join("the paper's" if s == "paper" else f"the {s} study's" for s in sources)
    effect = ("the declared effect (the paper's Δ only in the paper's setting)" if paper.any()
              else "the declared effect")  # fmt: skip
    verdicts = (
        f" Verdicts on the family of {family} declared claim(s) ({named}), each in the "
        f"direction its declaration states: supported when Holm's adjusted p is below "
        f"{level:g} (family-wise) and Δ has the declared sign, contradicted when it is below "
        "with the other sign, otherwise not resolved; with the seeds the paired t-test "
        f"would need for {effect} at {level:g} / {max(family, 1)} with {POWER:.0%} power, at "
        "the seeds' measured spread, and in brackets at the ends of that spread's 95% "
        "interval."
        if family
        else " No declared claim is among these comparisons: no verdicts."
    )
    seeds = int(cells["seeds"].max()) if len(cells) else 0
    floor = f" ({2 / 2**seeds:.3g} with {seeds} seeds)" if seeds else ""
    corruptions = (" Common corruptions: each image's share of the corruptions x severities "
                   "it gets right." if cells["metric"].str.startswith("common corruptions").any()
                   else "")  # fmt: skip
    return (
        "Paired comparisons: Δ = A − B in points, the mean over the seeds both have of "
        "the per-seed difference on the same test images. The trained model is the unit: "
        "95% CI (seeds) and p are the paired t-test over the seeds (S − 1 degrees of "
        "freedom); p sign-flip is the exact sign-flip test over the seeds, which assumes "
        f"no normal distribution and cannot go below 2 / 2^S{floor}. 95% CI "
        f"(these models): the test images resampled ({COMPARE_RESAMPLES:,} times) with the "
        "trained models held fixed, which says how far these models' Δ would move on other "
        "test images, not how far another training would move it."
        + verdicts
        + corruptions
        + " A claim is left out where we have no runs of both sides on its dataset "
        "with the same recipe." + stands
    )
