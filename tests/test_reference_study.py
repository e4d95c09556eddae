"""The reference study: its definition, the committed bundle (its gate, its primary ε,
every evaluation with its predictions, every masking flag checked), its report, and that
a committed run can be retrained from its config to the same numbers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from regionmix_utils import reproduction
from regionmix_utils.config import TrainConfig
from regionmix_utils.report import write_report
from regionmix_utils.runs import (
    EXPORTED,
    WEIGHTS16,
    Predictions,
    Run,
    cpu_kernels,
    evaluation_settings,
    find_runs,
)
from regionmix_utils.study import (
    CPU_GATED,
    PLAN,
    Entry,
    Study,
    export_bundle,
    find_bundle,
    get_study,
    read_plan,
    run_study,
)
from regionmix_utils.train import train

from .conftest import REPO

STUDY = CPU_GATED
BUNDLE = REPO / STUDY.bundle
REPORT = REPO / "docs" / "reference-study.md"
BUNDLE_FILES = {"config.json", "metrics.jsonl", "eval.json", "predictions.npz", EXPORTED}


def test_the_study_is_the_papers_recipe_with_a_short_schedule():
    configs = STUDY.configs()
    assert len(configs) == len(set(configs)) == 6 * 5
    for config in configs:
        assert (config.dataset, config.width, config.holdout, config.n_train) == (
            "cifar10-subset",
            16,
            500,
            2000,
        )
        assert (config.lr, config.momentum, config.batch_size, config.weight_decay) == (
            0.1,
            0.9,
            128,
            5e-4,
        )
        assert (config.epochs, config.lr_schedule, config.pad, config.alpha) == (
            20,
            "hold-cosine",
            2,
            1.0,
        )
    kinds = {(c.method, c.clean_ce, c.matched_compute) for c in configs}
    assert kinds == {("none", True, False), ("mixup", True, False), ("cutmix", True, False),
                     ("region", True, False), ("region", False, False),
                     ("region", False, True)}  # fmt: skip
    assert len(STUDY.seeds) >= 5 and STUDY.gate_gap == 10.0
    # The full download gives the same design: the same sizes, sampled.
    full = STUDY.configs("cifar10")
    assert {(c.n_train, c.n_test, c.holdout) for c in full} == {(2000, 1017, 500)}


def test_its_claims_are_the_declared_family():
    family = STUDY.family(2 / 255)
    assert len(family) == 11 and {c.source for c in family} == {"cpu-gated"}
    # the paper's Table 1, added after every run was evaluated
    assert [(c.b, c.kind) for c in family[9:]] == [("cutmix", "clean"), ("mixup", "clean")]
    assert all(c.direction == 1 and c.effect == 2.0 for c in family)
    attacked = [c for c in family if c.kind != "clean"]
    assert {(c.b, c.kind, dict(c.settings)["eps"]) for c in attacked} == {
        (b, kind, 2 / 255) for b in ("cutmix", "mixup") for kind in ("fgsm", "square")
    }


def test_unknown_study_and_dataset_are_errors_that_name_the_choices():
    with pytest.raises(ValueError, match="cpu-gated"):
        get_study("gpu-reference")
    with pytest.raises(ValueError, match="cifar10"):
        STUDY.configs("tinyimagenet")


# ----------------------------------------------------------------- the committed bundle


def _bundle_runs() -> list[Run]:
    if not BUNDLE.is_dir():
        pytest.fail(f"{BUNDLE} is missing: the reference study's results are committed")
    return find_runs(BUNDLE)


def test_the_bundle_holds_every_run_of_the_study_and_nothing_else():
    runs = _bundle_runs()
    assert {r.config for r in runs} == set(STUDY.configs())
    total = 0
    for run in runs:
        weights = STUDY.entry_of(run.config).weights and run.config.seed == 0
        expected = BUNDLE_FILES | ({WEIGHTS16} if weights else set())
        assert {p.name for p in run.path.iterdir()} == expected, run.path
        total += sum(p.stat().st_size for p in run.path.iterdir())
        environment = run.record["environment"]
        assert environment["cpu_capability"] in ("AVX2", "AVX512", "DEFAULT")
        assert environment["threads"] >= 1
        assert len(run.metrics()) == run.config.epochs
    total += sum(p.stat().st_size for p in BUNDLE.iterdir() if p.is_file())
    assert total < 10e6, f"the bundle is {total / 1e6:.1f} MB"
    assert find_bundle() == BUNDLE


def test_the_gate_passed_and_the_primary_eps_followed_its_rule():
    """The plan in the bundle: the pilot's fit, the gate, and the primary ε (the ε of the
    FGSM sweep where the no-mixing pilot is nearest 30%), recorded before any other run
    was evaluated."""
    plan = read_plan(BUNDLE)
    assert plan is not None and (BUNDLE / PLAN).exists()
    pilot = plan["pilot"]
    run = Run(BUNDLE / pilot["run"])
    final = run.metrics()[-1]
    assert (pilot["train_acc"], pilot["test_acc"]) == (final["train_acc"], final["test_acc"])
    assert plan["passed"] and pilot["gap"] >= plan["required_gap"] == STUDY.gate_gap
    fgsm = {float(e): a for e, a in plan["fgsm"].items()}
    assert min(fgsm, key=lambda e: (abs(fgsm[e] - STUDY.primary_target), e)) == plan["primary_eps"]
    stored = {r["eps"]: r["accuracy"] for r in run.evaluations() if r["kind"] == "fgsm"}
    assert stored == fgsm  # the pilot's own records
    assert plan["sample_eps"] == STUDY.sample_eps(plan["primary_eps"])
    assert len(STUDY.family(plan["primary_eps"])) == 11


def test_every_run_has_each_evaluation_of_the_study_with_its_predictions():
    plan = read_plan(BUNDLE)
    primary, sample = plan["primary_eps"], plan["sample_eps"]
    for run in _bundle_runs():
        entry = STUDY.entry_of(run.config)
        records = run.evaluations()
        found = {(r["kind"], r.get("eps"), r["n_images"]) for r in records}
        expected = {("clean", None, 1017), ("calibration", None, 1017)}
        expected |= {("fgsm", e, 1017) for e in STUDY.fgsm_eps}
        if entry.attacked:
            expected |= {("pgd", primary, 1017), ("square", primary, 1017)}
            expected |= {("pgd", e, STUDY.sample_images) for e in sample}
            expected |= {("clean", None, STUDY.sample_images)}  # the sample's own clean pass
        assert found == expected, run.path
        for record in records:
            stored = run.predictions(evaluation_settings(record))
            assert isinstance(stored, Predictions) and len(stored) == record["n_images"]
            assert math.isclose(100 * stored.correct().mean(), record["accuracy"], abs_tol=1e-9)


def test_every_masking_flag_is_checked_on_every_attacked_run():
    from regionmix_utils.evaluation.masking import masking_check

    for run in _bundle_runs():
        if not STUDY.entry_of(run.config).attacked:
            continue
        flags = masking_check(run.evaluations())["flags"]
        assert len(flags) == 4 and all(f is not None for f in flags.values()), (run.path, flags)


def test_every_run_records_its_fit_to_the_training_images():
    for run in _bundle_runs():
        final = run.metrics()[-1]
        assert 0 <= final["test_acc"] <= final["train_acc"] <= 100, run.path


def test_bundle_runs_are_read_only():
    run = _bundle_runs()[0]
    with pytest.raises(PermissionError, match="bundle"):
        run.add_evaluation({"kind": "clean", "n_images": 1, "accuracy": 0.0})


def test_the_committed_weights_give_the_committed_accuracy(real_data):
    from regionmix_utils.evaluation.robustness import predictions, test_images

    for run in [r for r in _bundle_runs() if (r.path / WEIGHTS16).exists()][:2]:
        images, labels = test_images(run, None, real_data)
        predicted = predictions(run.load_model(), images)[0]
        accuracy = 100.0 * float((predicted == labels).double().mean())
        # float16 weights: a handful of the 1,017 test images may change their class.
        assert abs(accuracy - run.accuracy()) <= 0.5, run.path


# ----------------------------------------------------------------------- the report


def test_the_report_is_the_one_generated_from_the_bundle(tmp_path):
    from regionmix_utils.report import write_study_report

    out = write_study_report(STUDY, tmp_path / "reference-study.md", BUNDLE)
    assert out.read_text() == REPORT.read_text(), (
        "docs/reference-study.md differs from what the bundle generates: run "
        "`regionmix report --study cpu-gated`"
    )
    figures = sorted(p.name for p in (tmp_path / "reference-study").iterdir())
    assert figures == sorted(p.name for p in (REPO / "docs" / "reference-study").iterdir())


def test_the_report_shows_the_gate_the_fit_and_every_verdict():
    text = REPORT.read_text()
    pilot = read_plan(BUNDLE)["pilot"]
    assert f"training {pilot['train_acc']:.2f}%, test {pilot['test_acc']:.2f}%" in text
    assert "## Fit to the training images" in text and "## PGD at every ε" in text
    assert "attacked beyond FGSM: every flag was checked on every run." in text
    assert "unchecked" not in text.split("## Gradient-masking flags")[1].split("##")[0]
    assert "## Gaussian noise" not in text  # not run: it could not separate methods
    assert "The study this one replaces" in text


# -------------------------------------------------------------------- reproduction


def test_the_reproduction_reference_is_a_region_mixup_run_trained_with_one_thread():
    """The run the check retrains exercises the whole training path: mixing draws, both
    loss terms, the held-then-cosine schedule; one thread, as the study's workers ran."""
    reference = json.loads((BUNDLE / reproduction.REFERENCE).read_text())
    run = Run(BUNDLE / reference["run"])
    assert (run.config.method, run.config.clean_ce, run.config.lr_schedule) == (
        STUDY.reproduced,
        True,
        "hold-cosine",
    )
    assert reference["metrics_numerics"]["threads"] == 1 == run.record["environment"]["threads"]


def test_a_committed_run_retrains_its_first_steps_on_any_cpu(real_data):
    """The committed run of ``reproduction.json`` (Region Mixup), from its config alone:
    its first optimiser steps, bit for bit on the kernels that made the reference, to
    1e-4 on others (``reproduction``'s docstring measures both)."""
    found = reproduction.check(BUNDLE, real_data, epochs=False)
    assert found.ok, found.problems


def test_a_committed_run_retrains_to_its_committed_metrics_where_the_kernels_match(real_data):
    """Its first 2 epochs bit for bit, where this CPU's capability and the thread count
    are those its metrics were trained with; elsewhere the comparison cannot apply and
    the test says why (its first steps are checked above on every CPU)."""
    found = reproduction.check(BUNDLE, real_data)
    assert found.ok, found.problems
    if not found.epochs_checked:
        pytest.skip(f"bit for bit does not apply here: {found.why_not}")


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory):
    """A 2-epoch run trained here, in a bundle with its reproduction reference."""
    folder = tmp_path_factory.mktemp("bundle")
    config = TrainConfig(dataset="shapes", method="region", epochs=2, width=4, n_train=256,
                         n_test=100, batch_size=64)  # fmt: skip
    with reproduction._threads(1):
        result = train(config, folder, progress=False)
    reproduction.write_reference(folder, Run(result.path))
    return folder


def _edit(path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text())), indent=2))


def test_the_reproduction_check_passes_where_it_should_and_names_what_differs(small_bundle):
    assert reproduction.check(small_bundle) == reproduction.Reproduction(
        "bit for bit", True, "", ()
    )
    run = find_runs(small_bundle)[0]
    metrics = run.path / "metrics.jsonl"
    kept = metrics.read_text()
    try:  # one more test image right in epoch 2
        lines = [json.loads(line) for line in kept.splitlines()]
        lines[1]["test_acc"] += 1.0
        metrics.write_text("".join(json.dumps(m) + "\n" for m in lines))
        found = reproduction.check(small_bundle)
        assert not found.ok and "retrained" in found.problems[0]
    finally:
        metrics.write_text(kept)
    reference = small_bundle / reproduction.REFERENCE
    kept = reference.read_text()
    try:  # a reference made with other kernels: the steps are compared to 1e-4

        def other_kernels(ref):
            ref["first_steps"]["cpu_capability"] = "another"
            ref["first_steps"]["losses"][1] *= 1 + 2e-5
            return ref

        _edit(reference, other_kernels)
        assert reproduction.check(small_bundle, epochs=False).ok
        _edit(reference, lambda ref: {**ref, "first_steps": {
            **ref["first_steps"], "losses": [ref["first_steps"]["losses"][0] * (1 + 3e-4),
                                             ref["first_steps"]["losses"][1]]}})  # fmt: skip
        found = reproduction.check(small_bundle, epochs=False)
        assert found.steps == "to 0.0001" and found.problems[0].startswith("step 1:")
        # Metrics trained with other kernels: the epochs are not compared, and it says why.
        _edit(reference, lambda ref: {**ref, "metrics_numerics": {
            **ref["metrics_numerics"], "cpu_capability": "another"}})  # fmt: skip
        found = reproduction.check(small_bundle)
        assert not found.epochs_checked and "the another kernels" in found.why_not
    finally:
        reference.write_text(kept)


def test_a_forced_capability_is_not_taken_for_the_cpus(small_bundle, monkeypatch):
    """ATEN_CPU_CAPABILITY=avx2 on an AVX-512 CPU gave step 2 of the committed run 2e-7 away
    from the AVX2 CPU that made it (oneDNN and MKL pick by the CPU): a forced capability is
    another one, so its steps are compared to 1e-4 and its epochs not at all."""
    native = torch.backends.cpu.get_cpu_capability()
    reference = small_bundle / reproduction.REFERENCE
    kept = reference.read_text()
    try:  # the reference as a CPU of this capability, with no variable set, would make it
        _edit(reference, lambda ref: {
            **ref, "first_steps": {**ref["first_steps"], "cpu_capability": native},
            "metrics_numerics": {**ref["metrics_numerics"], "cpu_capability": native}})  # fmt: skip
        monkeypatch.setenv("ATEN_CPU_CAPABILITY", native.lower())
        assert cpu_kernels() == f"{native} (ATEN_CPU_CAPABILITY)"
        found = reproduction.check(small_bundle)
        assert found.ok and found.steps == "to 0.0001" and not found.epochs_checked
        assert "(ATEN_CPU_CAPABILITY) kernels" in found.why_not
    finally:
        reference.write_text(kept)


def test_every_run_records_the_numerics_it_ran_with_and_a_change_says_so(tmp_path):
    config = TrainConfig(dataset="shapes", method="none", epochs=2)
    run = Run.of(tmp_path, config)
    with reproduction._threads(1):
        run.record_config(config)
        run.log_start(config, 0, "cpu", "off")
    environment = run.record["environment"]
    assert environment["cpu_capability"] == cpu_kernels()
    assert environment["threads"] == 1
    with reproduction._threads(1):
        run.log_start(config, 1, "cpu", "off")
    with reproduction._threads(2), pytest.warns(UserWarning, match="not be bit for bit"):
        run.log_start(config, 1, "cpu", "off")
    history = run.record["history"]
    assert ["numerics_from" in entry for entry in history] == [False, False, True]
    assert history[2]["numerics_from"] == {"cpu_capability": environment["cpu_capability"],
                                           "threads": 1}  # fmt: skip


# ------------------------------------------------------------ a study, end to end


def test_a_small_study_runs_exports_and_reports(tmp_path):
    study = Study(
        name="tiny", title="shapes", dataset="shapes", seeds=(0,), width=4, epochs=2,
        milestones=(1,), holdout=50, n_train=200, n_test=60, fgsm_eps=(8 / 255,),
        noise_severities=(1, 5),
        entries=(Entry("none", weights=True), Entry("mixup", attacked=False)),
    )  # fmt: skip
    runs = run_study(study, tmp_path / "runs", progress=False)
    assert all(r.finished for r in runs)
    kinds = [sorted({e["kind"] for e in r.evaluations()}) for r in runs]
    assert kinds[0] == ["calibration", "clean", "corruption", "fgsm", "pgd", "square"]
    assert kinds[-1] == ["calibration", "clean", "corruption", "fgsm"]
    # A second call finds everything done: nothing is recomputed.
    stamps = [(r.path / "eval.json").stat().st_mtime_ns for r in runs]
    run_study(study, tmp_path / "runs", progress=False)
    assert stamps == [(r.path / "eval.json").stat().st_mtime_ns for r in runs]

    bundle = export_bundle(study, tmp_path / "runs", tmp_path / "bundle")
    exported = find_runs(bundle)
    assert {r.config for r in exported} == {r.config for r in runs}
    weighted = [r for r in exported if (r.path / WEIGHTS16).exists()]
    assert [(r.config.method, r.config.seed) for r in weighted] == [("none", 0)]
    state = torch.load(weighted[0].path / WEIGHTS16, weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    model = weighted[0].load_model()
    assert next(model.parameters()).dtype == torch.float32
    with pytest.raises(FileNotFoundError, match="without its weights"):
        next(r for r in exported if r not in weighted).load_model()
    assert json.loads((exported[0].path / EXPORTED).read_text())["study"] == "tiny"
    assert reproduction.check(bundle).ok  # its reference was written on export

    report = write_report(bundle, tmp_path / "report.md").read_text()
    assert "## Table 1" in report and "## Gaussian noise by severity" in report
    assert "No mixing" in report and report.count("epochs=2") == 1  # stated once, not in labels


def test_the_readme_shows_the_reports_table_1_and_verdicts():
    from regionmix_utils.report import README_END, README_START, readme_block, study_report

    readme = (REPO / "README.md").read_text()
    shown = readme.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert shown == readme_block(study_report(STUDY)), (
        "README.md's results differ from the report's: run `regionmix report --study "
        "cpu-gated --readme README.md`"
    )
