"""The reference study: its definition, the committed bundle, its report, and that a
committed run can be retrained from its config to the same numbers."""

from __future__ import annotations

import json
import math
import re

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
    evaluation_settings,
    find_runs,
)
from regionmix_utils.study import (
    CPU_REFERENCE,
    Entry,
    Study,
    export_bundle,
    find_bundle,
    get_study,
    run_study,
)
from regionmix_utils.train import train

from .conftest import REPO

BUNDLE = REPO / CPU_REFERENCE.bundle
REPORT = REPO / "docs" / "reference-study.md"
BUNDLE_FILES = {"config.json", "metrics.jsonl", "eval.json", "predictions.npz", EXPORTED}


def test_the_study_is_the_papers_recipe_scaled():
    configs = CPU_REFERENCE.configs()
    assert len(configs) == len(set(configs)) == 7 * 3
    # The paper divides the learning rate after epochs 100 and 150 of 400.
    assert CPU_REFERENCE.milestones == tuple(
        math.ceil(CPU_REFERENCE.epochs * m / 400) for m in (100, 150)
    )
    for config in configs:
        assert (config.dataset, config.width, config.holdout) == ("cifar10-subset", 16, 500)
        assert (config.lr, config.batch_size, config.weight_decay) == (0.1, 128, 5e-4)
    kinds = {(c.method, c.clean_ce) for c in configs}
    assert {("none", True), ("region-random", True), ("mixup", False), ("region", False)} <= kinds
    # The full download gives the same design: the subset's sizes, sampled.
    full = CPU_REFERENCE.configs("cifar10")
    assert {(c.n_train, c.n_test, c.holdout) for c in full} == {(4585, 1017, 500)}


def test_unknown_study_and_dataset_are_errors_that_name_the_choices():
    with pytest.raises(ValueError, match="cpu-reference"):
        get_study("gpu-reference")
    with pytest.raises(ValueError, match="cifar10"):
        CPU_REFERENCE.configs("tinyimagenet")


# ----------------------------------------------------------------- the committed bundle


def _bundle_runs() -> list[Run]:
    if not BUNDLE.is_dir():
        pytest.fail(f"{BUNDLE} is missing: the reference study's results are committed")
    return find_runs(BUNDLE)


def test_the_bundle_holds_every_run_of_the_study_and_nothing_else():
    runs = _bundle_runs()
    assert {r.config for r in runs} == {c for c in CPU_REFERENCE.configs()}
    total = 0
    for run in runs:
        weights = CPU_REFERENCE.entry_of(run.config).weights and run.config.seed == 0
        expected = BUNDLE_FILES | ({WEIGHTS16} if weights else set())
        assert {p.name for p in run.path.iterdir()} == expected, run.path
        total += sum(p.stat().st_size for p in run.path.iterdir())
        commit = run.record["environment"]["git_commit"]
        assert re.fullmatch(r"[0-9a-f]{40}", commit), "the config names the commit"
        assert len(run.metrics()) == run.config.epochs
    assert total < 10e6, f"the bundle is {total / 1e6:.1f} MB"
    assert find_bundle() == BUNDLE


def test_every_run_has_each_evaluation_of_the_study_with_its_predictions():
    for run in _bundle_runs():
        entry = CPU_REFERENCE.entry_of(run.config)
        kinds = {r["kind"] for r in run.evaluations()}
        assert {"clean", "calibration", "corruption", "fgsm"} <= kinds
        if entry.attacked:
            assert {"pgd", "square"} <= kinds
        for record in run.evaluations():
            stored = run.predictions(evaluation_settings(record))
            assert isinstance(stored, Predictions) and len(stored) == record["n_images"] == 1017
            assert math.isclose(100 * stored.correct().mean(), record["accuracy"], abs_tol=1e-9)


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
    from regionmix_utils.report import design_text

    title = "Reference study `cpu-reference`: Region Mixup on real CIFAR-10, on a CPU"
    out = write_report(BUNDLE, tmp_path / "reference-study.md", title=title,
                       preamble=design_text(CPU_REFERENCE), claims=CPU_REFERENCE.family(),
                       claims_note=CPU_REFERENCE.claims_note)  # fmt: skip
    assert out.read_text() == REPORT.read_text(), (
        "docs/reference-study.md differs from what the bundle generates: run "
        "`regionmix report --study cpu-reference`"
    )
    figures = sorted(p.name for p in (tmp_path / "reference-study").iterdir())
    assert figures == sorted(p.name for p in (REPO / "docs" / "reference-study").iterdir())


# -------------------------------------------------------------------- reproduction


def test_a_committed_run_retrains_its_first_steps_on_any_cpu(real_data):
    """The committed no-mixing run, seed 0, from its config alone: its first optimiser
    steps, bit for bit on the kernels that made the reference, to 1e-4 on others
    (``reproduction``'s docstring measures both)."""
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
        "bit for bit", True, "", ())
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


def test_every_run_records_the_numerics_it_ran_with_and_a_change_says_so(tmp_path):
    config = TrainConfig(dataset="shapes", method="none", epochs=2)
    run = Run.of(tmp_path, config)
    with reproduction._threads(1):
        run.record_config(config)
        run.log_start(config, 0, "cpu", "off")
    environment = run.record["environment"]
    assert environment["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
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


def test_the_readme_shows_the_reports_table_1():
    from regionmix_utils.report import README_END, README_START, build_report, table1_block

    readme = (REPO / "README.md").read_text()
    shown = readme.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    report = build_report(BUNDLE, claims=CPU_REFERENCE.family())
    assert shown == table1_block(report), (
        "README.md's Table 1 differs from the report's: run `regionmix report --study "
        "cpu-reference --readme README.md`"
    )
