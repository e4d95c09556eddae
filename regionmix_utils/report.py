"""The report of a results bundle (``study.export_bundle``): ``templates/report.md.j2`` (layout
and fixed prose) rendered with the tables ``results`` makes from the bundle's records alone."""

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import jinja2
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from regionmix_utils import results, viz
from regionmix_utils.claims import paper_claims
from regionmix_utils.comparisons import p_text
from regionmix_utils.config import recipe_differences
from regionmix_utils.data import get_dataset
from regionmix_utils.evaluation.calibration import reliability, stored_calibration
from regionmix_utils.evaluation.masking import flags_text, masking_check
from regionmix_utils.evaluation.recalibration import KIND as RECALIBRATED
from regionmix_utils.evaluation.registry import get_evaluation
from regionmix_utils.evaluation.robustness import attack_label, attack_names
from regionmix_utils.files import atomic_write_text
from regionmix_utils.methods import get_method
from regionmix_utils.runs import Run, eps_text, find_runs
from regionmix_utils.study import TEMPLATES, Study, find_bundle, read_plan, study_plan, study_timing
from regionmix_utils.tables import CALIBRATION_MEASURES

README_START, README_END = "<!-- reference-study results -->", "<!-- /reference-study results -->"
_README_COLUMNS = ("status", "A vs B", "metric", "claim", "seeds", "Δ", "95% CI (seeds)", "p Holm",
                   "p sign-flip Holm", "verdict", "power")  # the report has them all  # fmt: skip
_TABLE1_METHODS = ("none", "mixup", "cutmix", "region", "region-random")  # reliability figures
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True,
                          lstrip_blocks=True, undefined=jinja2.StrictUndefined)  # fmt: skip
_ENV.filters |= {"eps": eps_text, "markdown": results.to_markdown, "thousands": "{:,}".format,
                 "sign": np.sign, "p": p_text}  # fmt: skip
_ENV.tests["missing"] = pd.isna
_ENV.globals |= {"get_evaluation": get_evaluation, "get_method": get_method,
                 "CALIBRATION_MEASURES": CALIBRATION_MEASURES}  # fmt: skip


@dataclass
class Report:
    """A bundle's report data (``build_report``); ``comparison`` None: no claim applies."""

    bundle: Path
    runs: list[Run]
    frame: pd.DataFrame
    common: str
    tables: list
    comparison: object | None
    timing: dict


def _mean_sd(values: Iterable[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.2f} ± {sd:.2f}" if values else ""


def common_recipe(runs: list[Run]) -> str:
    """The recipe words every run shares (``config.recipe_differences``): "epochs=12, ..."."""
    words = [recipe_differences(run.config) for run in runs]
    return ", ".join(w for w in words[0] if all(w in other for other in words[1:]))


def shorten(text: str, common: str) -> str:
    """``text`` without the shared recipe: "Region Mixup (k=2, epochs=12)" -> "... (k=2)"."""
    if not common:
        return text
    return (text.replace(f" ({common})", "").replace(f", {common}", "")
            .replace(f"({common}, ", "("))  # fmt: skip


def _label(run: Run, common: str, with_ce: bool = True) -> str:
    return shorten(results.column_label(run.config, with_ce=with_ce), common)


def _by_configuration(runs: list[Run], common: str, values: Callable, sort: bool = False,
                      name: Callable = str) -> pd.DataFrame:  # fmt: skip
    """Mean ± std, a row per configuration, a column per key ``values(run)`` yields (``sort``)."""
    rows: dict[str, dict] = {}
    for run in runs:
        for key, value in values(run):
            rows.setdefault(_label(run, common), {}).setdefault(key, []).append(value)
    keys = list(dict.fromkeys(k for found in rows.values() for k in found))
    return pd.DataFrame(
        {name(k): [_mean_sd(found.get(k, [])) for found in rows.values()]
         for k in (sorted(keys) if sort else keys)},
        index=pd.Index(list(rows), name="configuration"))  # fmt: skip


def _accuracy_table(runs: list[Run], common: str, keep: Callable, key: Callable,
                    name: Callable) -> pd.DataFrame:  # fmt: skip
    """Accuracy (%) of the records ``keep`` selects, a column per ``key(record)``, sorted."""
    return _by_configuration(runs, common, lambda run: [(key(r), r["accuracy"]) for r in
                             run.evaluations() if keep(r)], True, name)  # fmt: skip


def fit_table(runs: list[Run], common: str = "") -> pd.DataFrame:
    """Final training (clean, eval mode) and test accuracy and their gap; empty if unrecorded."""

    def values(run: Run):
        final = run.metrics()[-1]
        if "train_acc" in final:
            yield "training accuracy (%)", final["train_acc"]
            yield "test accuracy (%)", final["test_acc"]
            yield "gap (points)", final["train_acc"] - final["test_acc"]

    return _by_configuration(runs, common, values)


def masking_table(runs: list[Run], common: str = "") -> pd.DataFrame:
    """The gradient-masking flags (``evaluation.masking``): a row per configuration and seed."""
    cells: dict[str, dict[str, str]] = {}
    for run in runs:
        flags = masking_check(run.evaluations())["flags"]
        cells.setdefault(_label(run, common), {})[f"seed {run.config.seed}"] = flags_text(flags)
    frame = pd.DataFrame.from_dict(cells, orient="index").sort_index(axis=1)
    return frame.rename_axis("configuration")


def _recalibration(report: Report) -> dict | None:
    """Clean accuracy before and after BatchNorm recalibration per configuration, and each
    gap a claim judges both ways (clean and recalibrated): None without such records."""

    def values(run: Run):
        found = {r["kind"]: r for r in run.evaluations() if r["kind"] == RECALIBRATED}
        clean = [r for r in run.evaluations() if r["kind"] == "clean" and found
                 and r["n_images"] == found[RECALIBRATED]["n_images"]]  # fmt: skip
        if clean:
            after, before = found[RECALIBRATED]["accuracy"], clean[0]["accuracy"]
            yield from (("clean (%)", before), ("recalibrated (%)", after),
                        ("change (points)", after - before))  # fmt: skip

    table = _by_configuration(report.runs, report.common, values)
    if table.empty:
        return None
    cells, gaps = report.comparison.cells if report.comparison else pd.DataFrame(), []
    title = get_evaluation(RECALIBRATED).title
    for row in cells[cells["metric"].eq(title)].itertuples() if len(cells) else ():
        same = cells["metric"].eq("clean test") & cells["a"].eq(row.a) & cells["b"].eq(row.b)
        if same.any() and not pd.isna(row.delta):
            before = float(cells.loc[same, "delta"].iloc[0])
            gaps.append({"a": row.a, "b": row.b, "before": before, "after": row.delta,
                         "low": row.low, "high": row.high,
                         "closed": 1 - row.delta / before})  # fmt: skip
    return {"table": table, "gaps": gaps}


def recalibration_markdown(report: Report, judged: str) -> str | None:
    """The BatchNorm-recalibration section as Markdown (a table per configuration, each judged
    gap as trained and recalibrated, ``judged`` saying where); None: no run recalibrated."""
    if (found := _recalibration(report)) is None:
        return None
    return str(_ENV.get_template("recalibration.md.j2").module.section(found, judged))


def _masking(runs: list[Run], common: str) -> dict | None:
    """The masking section: runs attacked beyond FGSM, flags unchecked on some, any left out."""
    beyond = set(attack_names()) - {"fgsm"}
    attacked = [run for run in runs if any(r["kind"] in beyond for r in run.evaluations())]
    if not attacked:
        return None
    unchecked = sorted({flag for run in attacked
                        for flag, fired in masking_check(run.evaluations())["flags"].items()
                        if fired is None})  # fmt: skip
    return {"table": masking_table(attacked, common), "unchecked": unchecked,
            "left_out": len(attacked) < len(runs)}  # fmt: skip


def _figures(report: Report, folder: Path) -> dict[str, str]:
    """Draw the report's figures into ``folder``: file name -> shows the paper's numbers."""
    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    runs, common, drawn = report.runs, report.common, {}

    def save(fig, name: str, paper: bool = False) -> None:
        fig.savefig(folder / name, dpi=90, bbox_inches="tight")
        plt.close(fig)
        drawn[name] = bool(paper)

    first = [run for run in runs if run.config.seed == min(r.config.seed for r in runs)]
    curves = viz.training_curves({_label(r, common): r.metrics() for r in first})
    save(curves, "training-curves.png")
    evaluations = results.collect_evaluations(report.frame)
    attacked = evaluations[evaluations["kind"].isin(["fgsm", "pgd"])]
    if not attacked.empty:
        save(viz.eps_curves(attacked), "eps-curves.png")
    before, after = {}, {}
    for run in [r for r in first if r.config.method in _TABLE1_METHODS and r.config.clean_ce]:
        try:
            record, logits, labels = stored_calibration(run)
        except LookupError:
            continue
        label, temperature = _label(run, common, with_ce=False), record["temperature"]
        before[label] = reliability(logits, labels)
        if temperature is not None:
            after[f"{label}, T = {temperature:.2f}"] = reliability(logits, labels, temperature)
    for diagrams, name in ((before, "reliability.png"), (after, "reliability-scaled.png")):
        if diagrams:
            save(viz.reliability_figure(diagrams), name)
    noisy: dict[str, list] = {}
    for run in runs:
        if records := [e for e in run.evaluations() if e["kind"] == "corruption"]:
            noisy.setdefault(_label(run, common), []).extend(records)
    if noisy:
        save(viz.corruption_figure(list(noisy.values()), list(noisy)), "gaussian-noise.png")
    if paper := [t for t in report.tables if t.number in (1, 2, 3, 4)]:
        save(viz.comparison_figure(paper), "ours-vs-paper.png", any(t.has_paper for t in paper))
    if report.comparison is not None:
        cells = report.comparison.cells
        try:
            figure = viz.claims_forest(cells)
        except ValueError:  # no claim has paired numbers
            return drawn
        save(figure, "claims.png", cells["paper_delta"].notna().any())
    return drawn


def design_text(study: Study, plan: dict | None = None, runs: list[Run] | None = None) -> str:
    """The study's design (``design.md.j2``) from it, its plan and runs; ValueError: no plan."""
    if study.gate_gap is not None and plan is None:
        raise ValueError(f"study {study.name!r} has a gate: pass its plan (read_plan)")
    config, spec = study.configs()[0], get_dataset(study.dataset)
    primary, pilot = (plan or {}).get("primary_eps"), (plan or {}).get("pilot", {}).get("run")
    threads = [((r.record.get("environment") or {}).get("threads"),
                bool(pilot) and r.path.as_posix().endswith(pilot)) for r in runs or []]  # fmt: skip
    return _ENV.get_template("design.md.j2").render(
        study=study, config=config, spec=spec, plan=plan, primary=primary,
        claims=study.family(primary, plan), n_test=config.n_test or spec.split_sizes[1],
        others=sorted({n for n, is_pilot in threads if not is_pilot} - {None}),
        pilot_threads=next((n for n, is_pilot in threads if is_pilot), None)).strip()  # fmt: skip


def build_report(bundle: str | os.PathLike, eps: float = 8 / 255,
                 claims: list | None = None) -> Report:  # fmt: skip
    """Tables at ``eps``, verdicts on ``claims`` (None: the paper's); FileNotFoundError: no runs."""
    runs = find_runs(bundle)
    if not runs:
        raise FileNotFoundError(f"no finished runs under {bundle}: export a study there first")
    frame, common = results.collect_runs(runs=runs), common_recipe(runs)
    for column in ("label", "label_ce"):  # the figures' labels too
        frame[column] = frame[column].map(lambda text: shorten(text, common))
    tables = [t for t in results.paper_tables(frame)
              if t.setting is None or t.setting.get("eps") in (None, eps)]  # fmt: skip
    try:
        comparison = results.judge(frame, paper_claims() if claims is None else claims, str(bundle))
    except ValueError:  # no claim is about these runs' datasets
        comparison = None
    if comparison is not None:  # the forest plot's labels, as the tables'
        for column in ("a", "b"):
            comparison.cells[column] = comparison.cells[column].map(lambda t: shorten(t, common))
    return Report(Path(bundle), runs, frame, common, tables, comparison, study_timing(bundle))


def study_report(study: Study, bundle: str | os.PathLike | None = None) -> Report:
    """``build_report`` of its bundle, family and primary ε (else 8/255); FileNotFoundError."""
    bundle = bundle or find_bundle(study)
    if bundle is None:
        raise FileNotFoundError(f"no bundle of study {study.name!r}: pass --bundle DIR "
                                f"(from `regionmix study {study.name} --export DIR`)")  # fmt: skip
    plan = study_plan(study, bundle) or {}
    return build_report(bundle, eps=plan.get("primary_eps") or 8 / 255,
                        claims=study.family(plan=plan))  # fmt: skip


def write_study_report(study: Study, out: str | os.PathLike,
                       bundle: str | os.PathLike | None = None,
                       report: Report | None = None) -> Path:  # fmt: skip
    """``write_report`` of a study's bundle with its title, design and claims note."""
    report = report or study_report(study, bundle)
    return write_report(
        report.bundle, out, preamble=design_text(study, read_plan(report.bundle), report.runs),
        title=f"Study `{study.name}`: Region Mixup on real CIFAR-10, on a CPU",
        claims_note=study.claims_note, report=report)  # fmt: skip


def write_report(bundle: str | os.PathLike, out: str | os.PathLike,
                 title: str = "Reference study", preamble: str = "", eps: float = 8 / 255,
                 claims: list | None = None, claims_note: str = "",
                 report: Report | None = None) -> Path:  # fmt: skip
    """Write ``bundle``'s report to ``out``, figures into its stem folder; ``preamble`` under
    the title; ``eps``, ``claims``: ``build_report``'s."""
    out = Path(out)
    report = report or build_report(bundle, eps, claims)
    runs, common, comparison = report.runs, report.common, report.comparison
    figures_dir, recalibration = out.parent / out.stem, _recalibration(report)
    hidden = {RECALIBRATED} if recalibration else set()  # its section shows it, and more
    tables = [t for t in report.tables if (t.setting or {}).get("kind") not in hidden]
    text = _ENV.get_template("report.md.j2").render(
        title=title, preamble=preamble.strip(), common=common, timing=report.timing,
        comparison=comparison, claims_note=claims_note, tables=tables,
        fit=fit_table(runs, common), masking=_masking(runs, common),
        figures=_figures(report, figures_dir), link=os.path.relpath(figures_dir, out.parent),
        pgd=_accuracy_table(runs, common, lambda r: r["kind"] == "pgd",
                            lambda r: (r["eps"], r["n_images"], attack_label(r)),
                            lambda c: f"{c[2]} at {eps_text(c[0])} ({c[1]:,} images)"),
        recalibration=recalibration,
        noise=_accuracy_table(runs, common, lambda r: r["kind"] == "clean"
                              or r.get("corruption") == "gaussian_noise",
                              lambda r: r.get("severity", 0),
                              lambda s: f"severity {s}" if s else "clean"))  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, shorten(text, common).rstrip() + "\n")
    return out


def readme_block(report: Report) -> str:
    """The README's headline: Table 1, then the verdicts on every declared claim."""
    (table1,) = [t for t in report.tables if t.number == 1]
    blocks = [results.to_markdown(table1.frame)]
    if report.comparison is not None:
        frame = report.comparison.frame
        declared = frame[frame["claim"] != ""] if "claim" in frame else frame[:0]
        blocks.append(results.to_markdown(declared[[c for c in _README_COLUMNS if c in frame]]))
    return shorten("\n\n".join(blocks), report.common)


def update_readme(readme: str | os.PathLike, report: Report, name: str = "reference-study") -> bool:
    """Put ``readme_block`` between the README's markers of ``name`` (the report's file stem;
    ValueError without them); changed?"""
    text, block = Path(readme).read_text(), readme_block(report)
    start, end = (marker.replace("reference-study", name) for marker in (README_START, README_END))
    if start not in text or end not in text:
        raise ValueError(f"{readme} lacks the markers {start} ... {end}")
    head, rest = text.split(start, 1)
    new = f"{head}{start}\n{block}\n{end}{rest.split(end, 1)[1]}"
    if new != text:
        atomic_write_text(readme, new)
    return new != text
