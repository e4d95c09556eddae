"""Paired comparisons from per-image predictions (``compare``), verdicts on claims (``judge``)."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from regionmix_utils import records
from regionmix_utils.claims import MATCHED, NO_CE, Claim, claims_between, paper_claims, side, status
from regionmix_utils.config import recipe_differences
from regionmix_utils.evaluation import statistics
from regionmix_utils.evaluation.registry import RECORD_KINDS, evaluation_kinds, get_evaluation
from regionmix_utils.evaluation.robustness import ATTACKS, DEFAULT_EPS, attack_label
from regionmix_utils.runs import Run, eps_text, evaluation_settings
from regionmix_utils.tables import _signed, caption

COMPARE_RESAMPLES = 2000
LEVEL = 0.05  # the family-wise level of a judged family of claims (Holm)
POWER = 0.8  # the seed planner's
# Our datasets that stand for one of the paper's, for its claims (a subset of its images).
PAPER_DATASET = {"cifar10-subset": "cifar10"}
_METRICS = {"clean": "clean test", "corruption": "common corruptions (mean)"}
_NUMBERS = ("delta", "low", "high", "p", "p_holm", "p_signflip", "p_signflip_holm", "power",
            "image_low", "image_high", "mean_a", "mean_b", "seed_sd")  # fmt: skip


def _pairs(runs: pd.DataFrame, a: str, b: str) -> list[tuple[str, dict, dict]]:
    """(dataset, seed -> Run of A, seed -> Run of B) per pair with the same recipe."""

    def matching(spec: str) -> pd.DataFrame:
        found = runs[(runs[["method", "clean_ce", "matched_compute"]] == [*side(spec)]).all(axis=1)]
        return found if not found.empty else runs[runs["label_ce"] == spec]

    def recipe(rows: pd.DataFrame) -> tuple:
        # The second mixed pass is a side's loss, as the clean CE term is, not its recipe.
        config = dataclasses.replace(Run(Path(rows["path"].iloc[0])).config, matched_compute=False)
        return (*recipe_differences(config), f"holdout={config.holdout}")

    side_a, side_b, out = matching(a), matching(b), []
    for dataset in side_a["dataset"].unique():
        part_b = side_b[side_b["dataset"] == dataset]
        for _, rows_a in side_a[side_a["dataset"] == dataset].groupby("label_ce", sort=False):
            for _, rows_b in part_b.groupby("label_ce", sort=False):
                if recipe(rows_b) == recipe(rows_a):
                    out.append((dataset, *({int(r.seed): Run(Path(r.path))
                                            for r in rows.itertuples()}
                                           for rows in (rows_a, rows_b))))  # fmt: skip
    return out


def _kind(settings: dict) -> str:
    """The metric a record's predictions measure: a calibration record's are the clean ones."""
    return "clean" if settings["kind"] == "calibration" else settings["kind"]


def _settings(runs: pd.DataFrame) -> dict[str, list[dict]]:
    """Run path -> the settings of its evaluation records."""
    found = records._evaluation_records(runs)[1]
    return {path: [evaluation_settings(r) for r in those] for path, those in found.items()}


def _metric_groups(runs: list[Run], kind: str | None, settings: dict) -> list[list[dict]]:
    """Settings every run has (of ``kind``), grouped per metric: the clean one on the most
    images, each other record, the corruptions of one source and image count together."""
    per_run = [[s for s in settings[str(run.path)] if kind in (None, _kind(s))] for run in runs]
    found = [s for s in per_run[0] if all(s in other for other in per_run[1:])]
    groups, corruption = [], {}
    for s in sorted(found, key=lambda s: (-s.get("n_images", 0), s["kind"] == "calibration")):
        if s["kind"] == "corruption":
            corruption.setdefault((s["source"], s["n_images"]), []).append(s)
        elif _kind(s) != "clean" or not any(_kind(g[0]) == "clean" for g in groups):
            groups.append([s])
    return groups + list(corruption.values())


def _rerun_hint(kind: str, runs_dir: str) -> str:
    return f"`{get_evaluation(kind).command} --runs-dir {runs_dir}`"


def _row(dataset, runs_a, runs_b, group, claim: Claim | None, runs_dir, evaluated=True) -> dict:
    """A against B on ``group``, paired per seed and image; ``evaluated`` False: no records."""
    nan, settings, kind = math.nan, group[0], _kind(group[0])
    title = _METRICS.get(kind) or (get_evaluation(kind).title if kind in RECORD_KINDS else kind)
    metric = f"{attack_label(settings)} ε={eps_text(settings['eps'])}" if kind in ATTACKS else title
    both = [*runs_a.values(), *runs_b.values()]
    paper_regime = all(run.config.dataset in records.PAPER_DATASETS
                       and records._is_paper_recipe(run.config) for run in both)  # fmt: skip
    row = {
        "table": claim.table if claim and claim.table else None, "dataset": dataset,
        "a": records.column_label(next(iter(runs_a.values())).config, with_ce=True),
        "b": records.column_label(next(iter(runs_b.values())).config, with_ce=True),
        "metric": metric, "n_images": settings.get("n_images"),
        "seeds": len(set(runs_a) & set(runs_b)), "source": claim.source if claim else "",
        "direction": claim.direction if claim else nan,
        "paper_delta": claim.paper_delta if claim and claim.paper_delta is not None else nan,
        "effect": claim.effect if claim and claim.effect is not None else nan,
        "paper_regime": paper_regime, **dict.fromkeys(_NUMBERS, nan), "plan": "", "verdict": "",
        "sided": claim.sided if claim else "two-sided", "declared": claim and claim.declared,
        "status": status(claim, both) if claim and claim.source != "paper" else ""}  # fmt: skip
    if not evaluated:
        return row | {"verdict": f"not evaluated: run {_rerun_hint(claim.kind, runs_dir)}"}
    try:
        parts = [statistics.paired_correct(runs_a, runs_b, part) for part in group]
    except statistics.MissingPredictions as missing:
        hint = _rerun_hint(settings["kind"], runs_dir)
        return row | {"verdict": f"no per-image predictions in {len(missing.runs)} run(s): "
                                 f"re-run {hint} for paired numbers"}  # fmt: skip
    # Per side, seed -> [N] right: the mean over the group's records (a corruption group's).
    a, b = ({s: sum(p[s] / len(group) for p in side) for s in side[0]}
            for side in zip(*parts, strict=True))  # fmt: skip
    alternative = claim.alternative if claim else "two-sided"
    result = statistics.compare_paired(a, b, n_resamples=COMPARE_RESAMPLES, alternative=alternative)
    return row | {
        **{f"mean_{x}": float(np.mean([getattr(s, x) for s in result.per_seed])) for x in "ab"},
        "delta": result.delta, "low": result.low, "high": result.high, "p": result.p_value,
        "p_signflip": result.p_signflip, "image_low": result.image_low, "_result": result,
        "image_high": result.image_high, "seed_sd": result.seed_sd}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Paired comparisons: ``frame`` (text) and ``cells`` (numbers: direction +1 A > B, -1
    A < B, NaN no claim; low, high the t-interval over seeds; p the paired t-test, p_holm
    over the judged family; image_low, image_high with the test images resampled)."""

    caption: str
    frame: pd.DataFrame
    cells: pd.DataFrame
    level: float = LEVEL


def judge(runs: pd.DataFrame, claims: list[Claim], runs_dir: str = "runs",
          level: float = LEVEL) -> Comparison:  # fmt: skip
    """``claims`` on ``collect_runs`` rows per pair (``PAPER_DATASET`` maps ours onto the paper's):
    paired t-test over seeds, Holm at ``level``. ValueError: no claim has runs of both sides."""
    rows, settings = [], _settings(runs)
    for claim in claims:
        for dataset, runs_a, runs_b in _pairs(runs, claim.a, claim.b):
            if claim.dataset not in (dataset, PAPER_DATASET.get(dataset)):
                continue
            groups = _metric_groups([*runs_a.values(), *runs_b.values()], claim.kind, settings)
            groups = [g for g in groups if claim.matches(g[0])]
            if not groups:
                eps = {"eps": DEFAULT_EPS} if claim.kind in ATTACKS else {}  # unless it names one
                asked = {"kind": claim.kind, **eps, **dict(claim.settings)}
                rows.append(_row(dataset, runs_a, runs_b, [asked], claim, runs_dir, False))
            rows += [_row(dataset, runs_a, runs_b, g, claim, runs_dir) for g in groups]
    return _comparison(rows, level, f"any of the {len(claims)} claims")


def compare(runs: pd.DataFrame, spec: str, runs_dir: str = "runs",
            level: float = LEVEL) -> Comparison:  # fmt: skip
    """``spec`` "all": the paper's claims; "A:B" (sides as ``Claim`` takes them): A against B on
    every evaluation both have, with the paper's claims. ValueError: a bad spec, no pair of runs."""
    if spec == "all":
        return judge(runs, paper_claims(), runs_dir, level)
    if spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"--compare takes A:B (e.g. region:mixup) or all, got {spec!r}")
    a, b = spec.split(":")
    rows, settings, pairs = [], _settings(runs), _pairs(runs, a, b)
    for dataset, runs_a, runs_b in pairs:
        claims = claims_between(a, b, PAPER_DATASET.get(dataset, dataset))
        for group in _metric_groups([*runs_a.values(), *runs_b.values()], None, settings):
            claim = next((c for c in claims if c.kind == _kind(group[0]) and
                          c.matches(group[0])), None)  # fmt: skip
            rows.append(_row(dataset, runs_a, runs_b, group, claim, runs_dir))
    if pairs and not rows:  # runs of both sides, no evaluation both have: what to run
        counts = []
        for name, i in ((a, 1), (b, 2)):
            paths = {str(run.path) for pair in pairs for run in pair[i].values()}
            counts.append(f"{len(paths)} run(s) of {name!r} ({sum(not settings[p] for p in paths)}"
                          " with no evaluation records)")  # fmt: skip
        kinds, clean = evaluation_kinds(), _rerun_hint("clean", runs_dir)
        attacks = [k for k in kinds if k in ATTACKS]
        others = dict.fromkeys(_rerun_hint(k, runs_dir) for k in kinds if k not in ATTACKS)
        raise ValueError(
            f"{' and '.join(counts)} on {', '.join(sorted({p[0] for p in pairs}))} with the same "
            f"recipe, but no evaluation record both sides have to compare {spec!r} on: run {clean}"
            " (clean test accuracy with each image's prediction), or on both sides: "
            f"{', '.join(h for h in others if h != clean)}, `regionmix attack --attack ATTACK "
            f"--runs-dir {runs_dir}` (ATTACK: {', '.join(attacks)})")  # fmt: skip
    return _comparison(rows, level, f"{spec!r} on the same dataset and recipe")


def _comparison(rows: list[dict], level: float, asked: str) -> Comparison:
    """Holm over the rows that judge a claim, verdicts, and the seeds an unresolved needs."""
    if not rows:
        raise ValueError(f"no runs of both sides of {asked} (sides: a method such as region, "
                         f"with {NO_CE} for runs without the clean CE term, {MATCHED} for those "
                         "with a second mixed pass in its place)")  # fmt: skip
    results = [row.pop("_result", None) for row in rows]
    cells = pd.DataFrame(rows)
    # One seed gives no t-test (p NaN): such a row has no verdict, and is not in a family.
    # A family: the claims declared together (Holm within it), the paper's being one.
    claimed = cells["direction"].notna() & cells["p"].notna()
    families = cells["source"] + " " + cells["declared"].fillna("").astype(str)
    sizes = families[claimed].value_counts()
    for _, members in cells[claimed].groupby(families[claimed]):
        for p, holm_p in (("p", "p_holm"), ("p_signflip", "p_signflip_holm")):
            cells.loc[members.index, holm_p] = statistics.holm(members[p].to_numpy(), level)
    for i, result in enumerate(results):
        row = cells.loc[i]
        if result is None or pd.isna(row["direction"]):
            continue
        p_holm = None if pd.isna(row["p_holm"]) else float(row["p_holm"])
        said = statistics.verdict(result, int(row["direction"]), p_holm, level)
        cells.at[i, "verdict"] = said
        paper_effect = pd.isna(row["effect"]) and row["paper_regime"]
        effect = row["paper_delta"] if paper_effect else row["effect"]
        family = int(sizes.get(families[i], 1))
        planned = (effect, row["seed_sd"], int(row["seeds"]), level / family)
        if not pd.isna(effect):
            alternative = "two-sided" if row["sided"] == "two-sided" else "greater"
            cells.at[i, "power"] = statistics.power_at(*planned, alternative)
        if said in ("supported", "contradicted"):
            continue
        if pd.isna(effect):
            cells.at[i, "plan"] = "no effect declared"
        elif np.sign(row["delta"]) != row["direction"]:
            cells.at[i, "plan"] = "none: Δ is against the claim"
        else:
            cells.at[i, "plan"] = statistics.plan_seeds(*planned, POWER).text
    declared = cells["direction"].notna()
    paper = cells["source"].eq("paper") & declared
    text = caption("comparison", level=f"{level:g}", resamples=COMPARE_RESAMPLES, power=POWER,
                   seeds=int(cells["seeds"].max()), family=int(claimed.sum()), paper=paper.any(),
                   named=[f"the {s} study's" if s != "paper" else "the paper's"
                          for s in sorted(set(cells.loc[declared, "source"]))],
                   corruptions=cells["metric"].str.startswith("common corruptions").any(),
                   stands=[(records.dataset_title(d), records.dataset_title(PAPER_DATASET[d]))
                           for d in sorted(set(cells.loc[paper, "dataset"]) & set(PAPER_DATASET))],
                   statuses=cells["status"].ne("").any())  # fmt: skip
    return Comparison(text, _frame(cells), cells, level)


def p_text(p: float) -> str:
    """A p-value as the tables print it: "0.016", "< 0.001"."""
    return f"{p:.3f}" if p >= 0.001 else "< 0.001"


def _frame(cells: pd.DataFrame) -> pd.DataFrame:
    def text(form):  # NaN as an empty cell
        return lambda v: "" if pd.isna(v) else form(v)

    def interval(low, high):
        return "" if pd.isna(low) else f"[{_signed(low)}, {_signed(high)}]"

    number, signed, p = text(lambda v: f"{v:.2f}"), text(_signed), text(p_text)
    claimed = cells["direction"].notna()
    frame = pd.DataFrame({
        "paper table": cells["table"].map(text(lambda t: str(int(t)))),
        "dataset": cells["dataset"].map(records.dataset_title), "status": cells["status"],
        "A vs B": cells["a"] + " vs " + cells["b"], "metric": cells["metric"],
        "claim": cells["direction"].map(text(lambda d: "A > B" if d > 0 else "A < B")),
        "test": cells["sided"].where(claimed, ""),
        "seeds": cells["seeds"].astype(str), "A (%)": cells["mean_a"].map(number),
        "B (%)": cells["mean_b"].map(number), "Δ": cells["delta"].map(signed),
        "95% CI (seeds)": list(map(interval, cells["low"], cells["high"])),
        "p": cells["p"].map(p), "p Holm": cells["p_holm"].map(p),
        "p sign-flip": cells["p_signflip"].map(p),
        "p sign-flip Holm": cells["p_signflip_holm"].map(p),
        "95% CI (these models)": list(map(interval, cells["image_low"], cells["image_high"])),
        "paper Δ": cells["paper_delta"].map(signed), "verdict": cells["verdict"],
        "power": cells["power"].map(text(lambda v: f"{v:.0%}")), "seeds to resolve": cells["plan"],
    })  # fmt: skip
    empty = [c for c in ("paper table", "status", "paper Δ", "claim", "test", "p Holm",
                         "p sign-flip Holm", "power", "seeds to resolve")
             if frame[c].eq("").all()]  # fmt: skip
    return frame.drop(columns=empty).set_index("dataset")
