"""The report of a results bundle (``study.export_bundle``), generated, not typed.

``write_report`` writes a Markdown file and its figures from the bundle alone: the
paper's Tables 1-4 at the study's scale, the verdicts on a declared family of claims
(``results.judge``: paired t-tests over seeds, Holm),
Table 7, PGD at every ε it ran and the gradient-masking flags, calibration before and
after temperature scaling, the fit to the training images, Gaussian noise at each
severity where it was run, the training curves, ε curves and reliability diagrams, and
a reading whose every number comes from the tables above it.
``regionmix report`` calls it; ``docs/reference-study.md`` is its output for the
committed ``cpu-gated`` study.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from regionmix_utils.claims import paper_claims
from regionmix_utils.results import (
    collect_evaluations,
    collect_runs,
    column_label,
    judge,
    paper_tables,
    to_markdown,
)
from regionmix_utils.runs import Run, find_runs

__all__ = [
    "Report",
    "build_report",
    "bundle_runs",
    "common_recipe",
    "fit_table",
    "masking_table",
    "noise_table",
    "pgd_table",
    "reading",
    "readme_block",
    "shorten",
    "study_report",
    "update_readme",
    "write_report",
    "write_study_report",
]

TABLE1_METHODS = ("none", "mixup", "cutmix", "region", "region-random")


def bundle_runs(bundle: str | os.PathLike) -> tuple[list[Run], pd.DataFrame]:
    """The bundle's runs and their ``collect_runs`` rows.

    Raises:
        FileNotFoundError: the folder holds no finished runs.
    """
    runs = find_runs(bundle)
    if not runs:
        raise FileNotFoundError(f"no finished runs under {bundle}: export a study there first")
    return runs, collect_runs(runs=runs)


def _mean_sd(values) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return ""
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.2f} ± {sd:.2f}"


def noise_table(runs: list[Run], common: str = "") -> pd.DataFrame:
    """Accuracy (%) under computed Gaussian noise at each severity (columns 0 = clean,
    1-5), one row per configuration: mean ± std over seeds."""
    rows: dict[str, dict[int, list[float]]] = {}
    for run in runs:
        label = shorten(column_label(run.config, with_ce=True), common)
        found = rows.setdefault(label, {})
        for record in run.evaluations():
            if record["kind"] == "corruption" and record["corruption"] == "gaussian_noise":
                found.setdefault(record["severity"], []).append(record["accuracy"])
            elif record["kind"] == "clean":
                found.setdefault(0, []).append(record["accuracy"])
    severities = sorted({s for found in rows.values() for s in found})
    frame = pd.DataFrame(
        {f"severity {s}" if s else "clean": [_mean_sd(rows[label].get(s, [])) for label in rows]
         for s in severities},
        index=pd.Index(list(rows), name="configuration"),
    )  # fmt: skip
    return frame


def pgd_table(runs: list[Run], common: str = "") -> pd.DataFrame:
    """PGD accuracy (%) at every ε and image count it ran (columns "PGD-10 at 2/255
    (1,017 images)"), one row per attacked configuration: mean ± std over seeds. The numbers
    that the masking flags read (flag 3: ε ≥ 64/255; flag 4: accuracy against ε)."""
    from regionmix_utils.evaluation.robustness import attack_label
    from regionmix_utils.runs import eps_text

    rows: dict[str, dict[tuple, list[float]]] = {}
    for run in runs:
        label = shorten(column_label(run.config, with_ce=True), common)
        for record in run.evaluations():
            if record["kind"] == "pgd":
                column = (attack_label(record), record["eps"], record["n_images"])
                rows.setdefault(label, {}).setdefault(column, []).append(record["accuracy"])
    columns = sorted({c for found in rows.values() for c in found}, key=lambda c: (*c[1:], c[0]))
    return pd.DataFrame(
        {f"{attack} at {eps_text(eps)} ({n:,} images)":
         [_mean_sd(rows[label].get((attack, eps, n), [])) for label in rows]
         for attack, eps, n in columns},
        index=pd.Index(list(rows), name="configuration"),
    )  # fmt: skip


def _attacked_beyond_fgsm(run: Run) -> bool:
    from regionmix_utils.evaluation.robustness import attack_names

    return any(r["kind"] in attack_names() and r["kind"] != "fgsm" for r in run.evaluations())


def _masking_section(runs: list[Run], common: str) -> list[str]:
    """The report's masking flags: the runs attacked beyond FGSM (a run attacked by FGSM
    alone has no flag to check), and which flags could not be checked, if any."""
    from regionmix_utils.evaluation.masking import masking_check

    attacked = [run for run in runs if _attacked_beyond_fgsm(run)]
    if not attacked:
        return []
    unchecked = sorted({flag for run in attacked
                        for flag, fired in masking_check(run.evaluations())["flags"].items()
                        if fired is None})  # fmt: skip
    said = ("every flag was checked on every run" if not unchecked else
            f"flag(s) {', '.join(map(str, unchecked))} could not be checked on some runs "
            "(the attacks they need were not run; flag 3 needs PGD at ε ≥ 64/255)")  # fmt: skip
    if len(attacked) < len(runs):
        said += ". The configurations attacked by FGSM alone have no flag to check and are left out"
    return [
        "## Gradient-masking flags",
        "",
        f"The four flags of `regionmix_utils.evaluation.masking` for each run attacked beyond "
        f"FGSM: {said}.",
        "",
        to_markdown(masking_table(attacked, common)),
        "",
    ]


def masking_table(runs: list[Run], common: str = "") -> pd.DataFrame:
    """The gradient-masking flags (``evaluation.masking``) of each run, one row per
    configuration, one column per seed."""
    from regionmix_utils.evaluation.masking import flags_text, masking_check

    cells: dict[str, dict[str, str]] = {}
    for run in runs:
        label = shorten(column_label(run.config, with_ce=True), common)
        flags = masking_check(run.evaluations())["flags"]
        cells.setdefault(label, {})[f"seed {run.config.seed}"] = flags_text(flags)
    frame = pd.DataFrame.from_dict(cells, orient="index").sort_index(axis=1)
    frame.index.name = "configuration"
    return frame


def reading(comparison_cells: pd.DataFrame) -> list[str]:
    """One sentence per judged claim, from the paired comparison's numbers. The paper's
    Δ is weighed against ours only where the runs are in the paper's setting; elsewhere
    the sentence compares signs and says why no more."""
    lines = []
    for r in comparison_cells.itertuples():
        if pd.isna(r.direction) or math.isnan(r.delta):
            continue
        where = f"Table {int(r.table)}, " if not pd.isna(r.table) else ""
        spread = (f" [{r.low:+.2f}, {r.high:+.2f}], p = {r.p:.3f}, Holm-adjusted "
                  f"{r.p_holm:.3f}" if not math.isnan(r.p) else "")  # fmt: skip
        text = (f"{where}{r.metric}: {r.a} − {r.b} = {r.delta:+.2f} points{spread}, over "
                f"{int(r.seeds)} seeds: **{r.verdict}**")  # fmt: skip
        if r.plan and r.plan != "no effect declared":
            text += (f"; the paired t-test would need {r.plan} seeds to detect a "
                     f"{abs(_effect(r)):.2f}-point difference")  # fmt: skip
        if not math.isnan(r.paper_delta):
            same = np.sign(r.paper_delta) == np.sign(r.delta)
            sign = "the same" if same else "the other"
            text += f"; the paper's Δ ({r.paper_delta:+.2f}) has {sign} sign"
            if r.paper_regime:
                inside = r.low <= r.paper_delta <= r.high
                text += f" and lies {'inside' if inside else 'outside'} our interval"
            else:
                text += (", and its size does not carry over: these runs are not the paper's "
                         "setting (dataset, epochs, width)")  # fmt: skip
        lines.append(text + ".")
    return lines


def _effect(row) -> float:
    return row.effect if not math.isnan(row.effect) else row.paper_delta


def _figures(runs: list[Run], frame: pd.DataFrame, tables, comparison, folder: Path,
             common: str = "") -> dict:  # fmt: skip
    """Draw the report's figures into ``folder``; returns title -> file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from regionmix_utils.evaluation.calibration import reliability, stored_calibration
    from regionmix_utils.viz import (
        claims_forest,
        comparison_figure,
        corruption_figure,
        eps_curves,
        reliability_figure,
        training_curves,
    )

    folder.mkdir(parents=True, exist_ok=True)
    drawn = {}

    def save(fig, name: str, title: str) -> None:
        fig.savefig(folder / name, dpi=90, bbox_inches="tight")
        plt.close(fig)
        drawn[title] = name

    seed = min(run.config.seed for run in runs)
    first = [run for run in runs if run.config.seed == seed]
    curves = {shorten(column_label(r.config, with_ce=True), common): r.metrics() for r in first}
    save(training_curves(curves), "training-curves.png", "Training curves (seed 0)")
    evaluations = collect_evaluations(frame)
    attacked = evaluations[evaluations["kind"].isin(["fgsm", "pgd"])]
    if not attacked.empty:
        save(eps_curves(attacked), "eps-curves.png",
             "Accuracy against ε, FGSM and PGD-10 (mean ± std over seeds)")  # fmt: skip
    before, after = {}, {}
    for run in first:
        if run.config.method not in TABLE1_METHODS or not run.config.clean_ce:
            continue
        try:
            record, logits, labels = stored_calibration(run)
        except LookupError:
            continue
        label = shorten(column_label(run.config), common)
        before[label] = reliability(logits, labels)
        if record["temperature"] is not None:
            after[f"{label}, T = {record['temperature']:.2f}"] = reliability(
                logits, labels, record["temperature"])  # fmt: skip
    if before:
        save(reliability_figure(before), "reliability.png",
             "Reliability diagrams (seed 0), before temperature scaling")  # fmt: skip
    if after:
        save(reliability_figure(after), "reliability-scaled.png",
             "Reliability diagrams (seed 0), after temperature scaling")  # fmt: skip
    noisy = {}
    for run in runs:
        records = [e for e in run.evaluations() if e["kind"] == "corruption"]
        if records:
            label = shorten(column_label(run.config, with_ce=True), common)
            noisy.setdefault(label, []).extend(records)
    if noisy:
        save(corruption_figure(list(noisy.values()), list(noisy)), "gaussian-noise.png",
             "Accuracy under Gaussian noise by severity (mean over seeds)")  # fmt: skip
    paper = [t for t in tables if t.number in (1, 2, 3, 4)]
    if paper:
        title = (
            "Ours at this scale beside the paper's numbers"
            if any(t.has_paper for t in paper)
            else "The paper's Tables 1-4 at this scale (ours only: not its setting)"
        )
        save(comparison_figure(paper), "ours-vs-paper.png", title)
    try:
        if comparison is None:
            raise ValueError("no claims")
        with_paper = comparison.cells["paper_delta"].notna().any()
        save(claims_forest(comparison.cells), "claims.png",
             "Declared claims: paired Δ, its 95% interval over seeds"
             + (", the paper's Δ" if with_paper else ""))  # fmt: skip
    except ValueError:
        pass  # no claim has paired numbers
    return drawn


def common_recipe(runs: list[Run]) -> str:
    """The recipe words every run shares (``config.recipe_differences``), as they appear
    in column labels: e.g. "epochs=12, milestones=(3, 5), width=16, holdout=500"."""
    from regionmix_utils.config import recipe_differences

    words = [recipe_differences(run.config) for run in runs]
    shared = [w for w in words[0] if all(w in other for other in words[1:])]
    return ", ".join(shared)


def shorten(text: str, common: str) -> str:
    """``text`` with the shared recipe taken out of every label (the report states it
    once): "Region Mixup (k=2, epochs=12, width=16)" -> "Region Mixup (k=2)"."""
    if not common:
        return text
    return (text.replace(f" ({common})", "").replace(f", {common}", "")
            .replace(f"({common}, ", "("))  # fmt: skip


def _keep(table, eps: float) -> bool:
    """Tables 1-2, 5-6, and the attack tables at ``eps`` only (the ε curves show the
    rest of the sweep)."""
    return table.setting is None or table.setting.get("eps") in (None, eps)


def fit_table(runs: list[Run], common: str = "") -> pd.DataFrame:
    """How well each configuration fits its training images: final training accuracy
    (clean images, eval mode; ``train.training_fit``), test accuracy and their gap
    (points), mean ± std over seeds. Empty when the runs predate the record."""
    rows: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        final = run.metrics()[-1]
        if "train_acc" not in final:
            continue
        label = shorten(column_label(run.config, with_ce=True), common)
        found = rows.setdefault(label, {"train": [], "test": [], "gap": []})
        found["train"].append(final["train_acc"])
        found["test"].append(final["test_acc"])
        found["gap"].append(final["train_acc"] - final["test_acc"])
    frame = pd.DataFrame(
        {column: [_mean_sd(rows[label][key]) for label in rows] for key, column in
         (("train", "training accuracy (%)"), ("test", "test accuracy (%)"),
          ("gap", "gap (points)"))},
        index=pd.Index(list(rows), name="configuration"),
    )  # fmt: skip
    return frame


def _threads_text(runs: list[Run], pilot: str) -> str:
    """How many threads the runs trained with, from their environment records: ", one
    thread per run (the pilot, trained before the others: 2 threads)"; "" when no run
    records it."""

    def threads(run: Run):
        return (run.record.get("environment") or {}).get("threads")

    is_pilot = [run.path.as_posix().endswith(pilot) for run in runs]
    others = sorted({threads(r) for r, p in zip(runs, is_pilot, strict=True) if not p} - {None})
    if not others:
        return ""
    text = f", {' or '.join('one thread' if n == 1 else f'{n} threads' for n in others)} per run"
    first = [threads(r) for r, p in zip(runs, is_pilot, strict=True) if p]
    if first and first[0] is not None and first[0] not in others:
        text += f" (the pilot, trained before the others: {first[0]} threads)"
    return text


def _gated_design(study, plan: dict, runs: list[Run] | None = None) -> str:
    """The design of a study with a pilot gate (``study.run_pilot``): recipe, gate,
    primary ε (where its pilot chose one), evaluations and claims, from its definition,
    its plan and (for the thread counts) its runs."""
    from regionmix_utils.data import get_dataset
    from regionmix_utils.runs import eps_text

    config = study.configs()[0]
    spec = get_dataset(study.dataset)
    n_test = config.n_test or spec.split_sizes[1]
    images = (f"a class-stratified sample of {config.n_train:,} training images"
              if config.n_train else "the training images")  # fmt: skip
    schedule = (f"held for the first {study.epochs // 2} epochs and cosine-annealed towards "
                "zero over the rest" if config.lr_schedule == "hold-cosine" else
                f"multiplied by {config.lr_gamma:g} after epochs "
                f"{', '.join(map(str, study.milestones))}")  # fmt: skip
    pilot = plan["pilot"]
    chosen = "primary_eps" in plan
    family = study.family(plan.get("primary_eps"))
    attack_eps = eps_text(plan["primary_eps"]) if chosen else ", ".join(
        eps_text(e) for e in study.pgd_eps)  # fmt: skip

    def at(claim) -> str:
        eps = dict(claim.settings).get("eps")
        return "" if eps is None else f" at ε = {eps_text(eps)}"

    claims = "; ".join(f"{c.text} ({c.kind}{at(c)})" for c in family)
    paragraphs = [
        f"**{study.describe()}.** Generated by `regionmix report --study {study.name}` from "
        "its bundle; every number below is computed from its records.",
        f"**Design.** PreAct ResNet-18 at width {study.width} (the paper: 64) on the images "
        f"of `{study.dataset}` ({spec.title}): {images} ({study.holdout} others held out to "
        f"fit a temperature on) and {n_test:,} test images. SGD with momentum "
        f"{config.momentum}, learning rate {config.lr} {schedule}, {study.epochs} epochs, batch "
        f"{config.batch_size}, weight decay {config.weight_decay:g}, pad {config.pad} and "
        "random crop, horizontal flip, α = 1, float32 on the CPU"
        f"{_threads_text(runs or [], pilot['run'])}. Seeds "
        f"{', '.join(map(str, study.seeds))}. Configurations: {_entries_text(study)}.",
        f"**The gate.** Before any other run, seed {study.seeds[0]} of no mixing was trained "
        "with this recipe; the study was to go on only if its final accuracy on its own "
        "training images (clean, eval mode) exceeded its test accuracy by at least "
        f"{plan['required_gap']:g} points, so that a regulariser has something to do. The "
        f"pilot (`{pilot['run']}`): training {pilot['train_acc']:.2f}%, test "
        f"{pilot['test_acc']:.2f}%, a gap of {pilot['gap']:+.2f} points: "
        f"{'passed' if plan['passed'] else 'failed'}.",
    ]
    if chosen:
        fgsm = "; ".join(f"{eps_text(float(e))}: {a:.2f}%" for e, a in plan["fgsm"].items())
        paragraphs.append(
            f"**The primary ε**, chosen from the pilot alone by a rule written down before: "
            f"{plan['rule']}. The pilot's FGSM accuracy: {fgsm}. Chosen: ε = {attack_eps}, "
            f"recorded ({plan['decided']}) before any other run was evaluated.")  # fmt: skip
    sample = (f", and PGD-{study.pgd_steps} at ε = "
              f"{', '.join(eps_text(e) for e in plan['sample_eps'])} on a class-stratified "
              f"sample of {study.sample_images} test images, so that every gradient-masking "
              "flag is checked" if chosen else "")  # fmt: skip
    paragraphs += [
        f"**Evaluations**, on all {n_test:,} test images, each stored with every image's "
        "prediction: clean accuracy and calibration before and after temperature scaling; "
        f"FGSM at ε = {', '.join(eps_text(e) for e in study.fgsm_eps)}. The attacked "
        f"configurations also get PGD-{study.pgd_steps} (step ε/4, one random start) and "
        f"Square with {study.square_queries} queries at ε = {attack_eps}{sample}.",
        "**Claims, declared in the study's definition before its runs were evaluated** "
        f"(Holm over these {len(family)}): {claims}.",
    ]
    if study.replaces:
        paragraphs.append(f"**The study this one replaces.** {study.replaces}")
    redo = (
        "**Redo it** (it resumes where it stopped, and its wall time is the sum of its "
        f"""invocations):

```bash
regionmix study {study.name} --workers 2 --export DIR
regionmix report --study {study.name} --bundle DIR
```"""
    )
    return "\n\n".join([*paragraphs, redo])


def _entries_text(study) -> str:
    from regionmix_utils.methods import get_method

    def entry_text(entry) -> str:
        settings = dict(entry.settings)
        matched = settings.pop("matched_compute", False)
        shown = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "alpha")
        words = get_method(entry.method).label + (f" ({shown})" if shown else "")
        words += "" if entry.clean_ce else " without the clean CE term"
        return words + (", a second mixed pass in its place" if matched else "")

    return "; ".join(entry_text(e) for e in study.entries)


def design_text(study, plan: dict | None = None, runs: list[Run] | None = None) -> str:
    """The study's design in Markdown, from its definition (``study.Study``) and, for a
    study with a gate, its plan (``study.read_plan``) and runs (the thread counts they
    record): what was trained, how it was evaluated, and the commands that redo it."""
    from regionmix_utils.runs import eps_text

    if study.gate_gap is not None:
        if plan is None:
            raise ValueError(f"study {study.name!r} has a gate: pass its plan (read_plan)")
        return _gated_design(study, plan, runs)

    from regionmix_utils.config import TrainConfig
    from regionmix_utils.data import get_dataset
    from regionmix_utils.results import PAPER_DATASET

    config, paper = study.configs()[0], TrainConfig()
    n_train, n_test = get_dataset(study.dataset).split_sizes
    trained = config.n_train or n_train - study.holdout
    paper_train = get_dataset(PAPER_DATASET.get(study.dataset, study.dataset)).split_sizes[0]
    shares = {2: "half", 4: "a quarter", 8: "an eighth"}
    width = shares.get(paper.width // study.width, f"{study.width}/{paper.width}")
    held = f"{study.holdout} of the {n_train:,} training images"
    theirs = f"the paper's see {paper_train:,} for {paper.epochs}"
    fgsm = ", ".join(eps_text(e) for e in study.fgsm_eps)
    pgd = ", ".join(eps_text(e) for e in study.pgd_eps)
    return f"""\
**{study.describe()}.** Generated by `regionmix report --study {study.name}` from the
committed bundle `{study.bundle}`; every number below is computed from its records.

**Design.** PreAct ResNet-18 at width {study.width} (the paper: 64) on the real CIFAR-10
images of `{study.dataset}` ({held} held out to fit
a temperature on; the {n_test:,} test images). The paper's recipe scaled in epochs: SGD with
momentum {config.momentum}, learning rate {config.lr} divided by 10 after epochs
{" and ".join(map(str, study.milestones))} of {study.epochs} (the paper: after 100 and 150
of {paper.epochs}, the same proportions, rounded up), batch {config.batch_size}, weight decay
{config.weight_decay}, pad {config.pad} and random crop, horizontal flip, α = 1, float32 on
the CPU. Seeds {", ".join(map(str, study.seeds))}. Configurations:
{_entries_text(study)}.

**Evaluations**, on all {n_test:,} test images, each stored with every image's prediction:
clean accuracy and calibration (ECE, NLL, Brier) before and after temperature scaling;
Gaussian noise (CIFAR-10-C's parameters, computed) at severities
{", ".join(map(str, study.noise_severities))}; FGSM at ε = {fgsm}. The configurations with
the clean CE term also get PGD-{study.pgd_steps} (step ε/4, one random start) at ε = {pgd}
and Square with {study.square_queries} queries at ε = {eps_text(study.square_eps)}.

**Redo it** (the wall time is below; it resumes where it stopped):

```bash
regionmix study {study.name} --workers 2 --export {study.bundle}
regionmix report --study {study.name}
```

With the full CIFAR-10 downloaded, `--dataset cifar10` runs the same design on a
class-stratified sample of it of the same sizes.

**What this scale can and cannot say.** These networks see {trained:,} training images for
{study.epochs} epochs at {width} of the paper's width; {theirs}.
Their accuracies are far below the paper's and are not estimates of them. What the study
can say is whether a difference between methods in this low-data regime is larger than
the noise between seeds and test images, with its sign and size; a difference here need
not hold at the paper's scale, where the models fit the data far better and mixing
matters differently. The paper's schedule keeps the learning rate at 0.1 for a quarter of
training; at {study.epochs} epochs that is {study.milestones[0]} epochs, and the last
{study.epochs - study.milestones[-1]} run at a hundredth of it, so these networks stop
well short of fitting their training images (see the training curves). The attacks at
ε = 8/255 meet networks that are weak to begin with, so the robustness tables compare
small numbers."""


@dataclass
class Report:
    """What a report shows, computed once from a bundle (``build_report``): its runs and
    their ``collect_runs`` rows (labels without the shared recipe), the recipe they
    share, the tables, the verdicts on the declared claims (None: no claim concerns
    these runs) and the study's wall time."""

    bundle: Path
    runs: list[Run]
    frame: pd.DataFrame
    common: str
    tables: list
    comparison: object | None
    timing: dict


def build_report(bundle: str | os.PathLike, eps: float = 8 / 255,
                 claims: list | None = None) -> Report:  # fmt: skip
    """The numbers of the report of ``bundle``: every table made by ``results`` from its
    records, and the verdicts on ``claims`` (the study's declared family; None: the
    paper's claims about the bundle's datasets).

    Args:
        eps: the ε of the attack tables (the figures show every ε).
    Raises:
        FileNotFoundError: the folder holds no finished runs.
    """
    from regionmix_utils.study import study_timing

    runs, frame = bundle_runs(bundle)
    common = common_recipe(runs)
    for column in ("label", "label_ce"):  # the figures' labels too
        frame[column] = frame[column].map(lambda text: shorten(text, common))
    tables = [t for t in paper_tables(frame) if _keep(t, eps)]
    try:
        comparison = judge(frame, paper_claims() if claims is None else claims, str(bundle))
    except ValueError:  # no claim is about these runs' datasets
        comparison = None
    if comparison is not None:  # the forest plot's labels, as the tables'
        for column in ("a", "b"):
            comparison.cells[column] = comparison.cells[column].map(lambda t: shorten(t, common))
    return Report(Path(bundle), runs, frame, common, tables, comparison, study_timing(bundle))


def study_report(study, bundle: str | os.PathLike | None = None) -> Report:
    """``build_report`` of a study's bundle (``study.find_bundle`` when None), with the
    study's declared family; the attack tables at the primary ε its pilot chose
    (``study.read_plan``), at 8/255 for a study without a pilot.

    Raises:
        FileNotFoundError: no bundle of the study here, or a gated study's without its
            plan.
    """
    from regionmix_utils.study import find_bundle, study_plan

    bundle = bundle or find_bundle(study)
    if bundle is None:
        raise FileNotFoundError(
            f"no bundle of study {study.name!r} here: pass --bundle DIR (made by "
            f"`regionmix study {study.name} --export DIR`)"
        )
    primary = (study_plan(study, bundle) or {}).get("primary_eps")
    return build_report(bundle, eps=primary or 8 / 255, claims=study.family(primary))


def write_study_report(study, out: str | os.PathLike, bundle: str | os.PathLike | None = None,
                       report: Report | None = None) -> Path:  # fmt: skip
    """``write_report`` of a study's bundle: titled after it, its design (``design_text``)
    as the preamble, its claims note with the verdicts. ``report``: its
    ``study_report`` when the caller has it already."""
    from regionmix_utils.study import read_plan

    report = report or study_report(study, bundle)
    title = f"Reference study `{study.name}`: Region Mixup on real CIFAR-10, on a CPU"
    return write_report(report.bundle, out, title=title,
                        preamble=design_text(study, read_plan(report.bundle), report.runs),
                        claims_note=study.claims_note, report=report)  # fmt: skip


def write_report(
    bundle: str | os.PathLike,
    out: str | os.PathLike,
    title: str = "Reference study",
    preamble: str = "",
    eps: float = 8 / 255,
    claims: list | None = None,
    claims_note: str = "",
    report: Report | None = None,
) -> Path:
    """Write the Markdown report of ``bundle`` to ``out`` and its figures beside it (in
    a folder named after ``out``'s stem). Every table is made by ``results`` from the
    bundle's records; nothing is typed in. Labels leave out the recipe all runs share,
    which the report states once.

    Args:
        preamble: Markdown put under the title (the study's design).
        eps, claims: as ``build_report``.
        claims_note: printed with the verdicts (when and how the claims were declared).
        report: the ``build_report`` of ``bundle`` when the caller has it already.
    Returns:
        The path of the report.
    """
    out = Path(out)
    report = report or build_report(bundle, eps, claims)
    runs, frame, common = report.runs, report.frame, report.common
    tables, comparison, timing = report.tables, report.comparison, report.timing
    figures_dir = out.parent / out.stem
    figures = _figures(runs, frame, tables, comparison, figures_dir, common)
    link = os.path.relpath(figures_dir, out.parent)

    parts = [f"# {title}", ""]
    if preamble:
        parts += [preamble.strip(), ""]
    if common:
        parts += [f"Every run shares this recipe, left out of the labels below: {common}.", ""]
    if timing["invocations"]:
        parts += [
            f"Wall time of the whole study (training and every evaluation): "
            f"**{timing['seconds'] / 60:.0f} min** over {timing['invocations']} invocation(s) "
            f"on {', '.join(map(str, timing['cpus']))} CPU core(s).",
            "",
        ]
    parts += ["## Declared claims at this scale", ""]
    if comparison is None:
        parts += ["No declared claim concerns these runs' datasets.", ""]
    else:
        parts += [comparison.caption, ""]
        parts += [claims_note, ""] if claims_note else []
        parts += [to_markdown(comparison.frame), ""]
        parts += ["In words (generated from the rows above):", ""]
        parts += [f"- {line}" for line in reading(comparison.cells)] + [""]
    for table in tables:
        parts += [f"## {_heading(table)}", "", table.caption, "", to_markdown(table.frame), ""]
    fit = fit_table(runs, common)
    if not fit.empty:
        parts += [
            "## Fit to the training images",
            "",
            "Final accuracy on the clean training images (eval mode) and on the test images, "
            "and their gap: what a regulariser had to work on. Mean ± std over seeds.",
            "",
            to_markdown(fit),
            "",
        ]
    pgd = pgd_table(runs, common)
    if len(pgd.columns) > 1:
        parts += [
            "## PGD at every ε",
            "",
            "Accuracy (%) under PGD at each ε it ran, on the images named in each column (a "
            "class-stratified sample where it is not every test image), mean ± std over "
            "seeds: the records the masking flags below read.",
            "",
            to_markdown(pgd),
            "",
        ]
    parts += _masking_section(runs, common)
    noise = noise_table(runs, common)
    if any(column != "clean" for column in noise.columns):
        parts += [
            "## Gaussian noise by severity",
            "",
            "Accuracy (%) on the test images with CIFAR-10-C's Gaussian noise computed at "
            "each severity (the same noisy images for every run), mean ± std over seeds.",
            "",
            to_markdown(noise),
            "",
        ]
    parts += ["## Figures", ""]
    for caption, name in figures.items():
        parts += [f"### {caption}", "", f"![{caption}]({link}/{name})", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    from regionmix_utils.files import atomic_write_text

    atomic_write_text(out, shorten("\n".join(parts), common).rstrip() + "\n")
    return out


def _heading(table) -> str:
    """ "Table 3", "Table 5: NLL" (one table per calibration measure), or a registered
    evaluation's title for a table beyond the paper's."""
    if table.number:
        measure = (table.setting or {}).get("measure")
        return f"Table {table.number}" + (f": {CALIBRATION_HEADINGS[measure]}" if measure else "")
    from regionmix_utils.evaluation.registry import get_evaluation

    return get_evaluation(table.setting["kind"]).title


CALIBRATION_HEADINGS = {"ece": "ECE before temperature scaling",
                        "ece_scaled": "ECE after temperature scaling", "nll": "NLL",
                        "brier": "Brier score"}  # fmt: skip
README_START, README_END = "<!-- reference-study results -->", "<!-- /reference-study results -->"


def readme_block(report: Report) -> str:
    """The report's headline for the README, rendered from its numbers: Table 1 (clean
    accuracy), then the verdicts on every declared claim of the family (with the
    comparison's header)."""
    (table1,) = [t for t in report.tables if t.number == 1]
    blocks = [to_markdown(table1.frame)]
    if report.comparison is not None:
        frame = report.comparison.frame
        declared = frame[frame["claim"] != ""] if "claim" in frame else frame[:0]
        blocks.append(to_markdown(declared))
    return shorten("\n\n".join(blocks), report.common)


def update_readme(readme: str | os.PathLike, report: Report) -> bool:
    """Put ``readme_block`` of ``report`` between the README's markers; returns whether
    the README changed.

    Raises:
        ValueError: the README lacks the markers.
    """
    from regionmix_utils.files import atomic_write_text

    text, block = Path(readme).read_text(), readme_block(report)
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} lacks the markers {README_START} ... {README_END}")
    head, rest = text.split(README_START, 1)
    new = f"{head}{README_START}\n{block}\n{README_END}{rest.split(README_END, 1)[1]}"
    if new != text:
        atomic_write_text(readme, new)
    return new != text
