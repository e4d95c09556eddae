"""A sealed plan (the claims, the test, the level and correction, the seeds, the code) written
before any run of a study trains; its hash in every run's config; a claim's status computed
from the times of its declaration and of its arms' first results; BatchNorm recalibration."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import torch
from torch import nn

from regionmix_utils import runs as runs_module
from regionmix_utils.claims import NO_CE, Claim, first_seen, status
from regionmix_utils.evaluation.recalibration import KIND, recalibrated
from regionmix_utils.evaluation.registry import evaluate
from regionmix_utils.report import design_text, study_report, write_study_report
from regionmix_utils.results import collect_runs, judge
from regionmix_utils.runs import Run
from regionmix_utils.study import (
    CPU_CONFIRM,
    CPU_GATED,
    PLAN,
    Entry,
    Study,
    UncommittedError,
    export_bundle,
    plan_hash,
    read_plan,
    run_study,
    seal_plan,
)
from regionmix_utils.train import train

from .test_study_gate import small_shapes  # noqa: F401  (the registered small dataset)


def tiny(**changes) -> Study:
    base = {
        "name": "tiny-confirm", "title": "shapes", "dataset": "shapes-small", "seeds": (0, 1),
        "width": 4, "epochs": 2, "lr_schedule": "hold-cosine", "holdout": 50, "n_train": 300,
        "fgsm_eps": (), "noise_severities": (), "with_paper_claims": False, "effect": 2.0,
        "entries": (Entry("mixup", attacked=False), Entry("mixup", clean_ce=False, attacked=False)),
        "claims": (Claim("shapes-small", "mixup", "mixup" + NO_CE, "clean", source="tiny-confirm"),
                   Claim("shapes-small", "mixup", "mixup" + NO_CE, KIND, source="tiny-confirm",
                         sided="one-sided")),
        "evaluations": ((KIND, ()),),
    }  # fmt: skip
    return Study(**(base | changes))


def _times(run: Run) -> list[datetime]:
    return [datetime.fromisoformat(r["time"]) for r in run.evaluations()]


def test_the_plan_is_sealed_before_any_run_trains_and_every_run_carries_its_hash(tmp_path):
    study = tiny()
    runs = run_study(study, tmp_path, progress=False)
    plan = read_plan(tmp_path)
    sealed = datetime.fromisoformat(plan["sealed"]["time"])
    assert plan["hash"] == plan_hash(plan) and plan["sealed"]["seeds"] == [0, 1]
    assert [c["sided"] for c in plan["sealed"]["claims"]] == ["two-sided", "one-sided"]
    assert plan["sealed"]["code"]["commit"] == runs[0].record["environment"]["git_commit"]
    for run in runs:
        assert run.config.plan == plan["hash"]
        assert {r["kind"] for r in run.evaluations()} >= {"clean", KIND}
        assert sealed <= first_seen(run) and all(sealed <= t for t in _times(run))
    cells = judge(collect_runs(tmp_path), study.family(plan=plan), str(tmp_path)).cells
    assert cells["status"].tolist() == ["confirmatory", "confirmatory"]
    assert cells["sided"].tolist() == ["two-sided", "one-sided"]
    out = tmp_path.with_name(tmp_path.name + "-out")  # the bundle, as the report reads it
    report = study_report(study, export_bundle(study, tmp_path, out / "bundle"))
    assert report.comparison.cells["status"].tolist() == ["confirmatory", "confirmatory"]
    text = write_study_report(study, out / "report.md", report=report).read_text()
    assert "## BatchNorm recalibration" in text and plan["hash"] in text
    assert "(confirmatory) clean test: Mixup" in text
    assert seal_plan(study, tmp_path) == plan  # sealed once
    # A claim added to the study after sealing is not in the plan: exploratory.
    added = Claim("shapes-small", "mixup" + NO_CE, "mixup", "clean", direction=-1, source="x")
    later = dataclasses.replace(study, claims=(*study.claims, added))
    assert [c.declared is None for c in later.family(plan=plan)] == [False, False, True]


def test_a_claim_declared_after_one_of_its_arms_was_evaluated_is_exploratory(tmp_path):
    study = tiny(evaluations=(), seeds=(0,))
    claim = study.claims[0]

    def trained(config) -> Run:
        train(config, tmp_path, progress=False)
        evaluate(Run.of(tmp_path, config), KIND)
        return Run.of(tmp_path, config)

    arm_a = trained(study.configs()[0])
    time.sleep(1.1)  # the records' times are to the second
    declared = datetime.now(timezone.utc).isoformat()
    time.sleep(1.1)
    arm_b = trained(study.configs()[1])
    assert max(_times(arm_a)) < datetime.fromisoformat(declared) < first_seen(arm_b)
    assert status(dataclasses.replace(claim, declared=declared), [arm_a, arm_b]) == "exploratory"
    assert status(dataclasses.replace(claim, declared=declared), [arm_b]) == "confirmatory"
    earlier = (first_seen(arm_a) - timedelta(seconds=1)).isoformat()
    assert status(dataclasses.replace(claim, declared=earlier), [arm_a, arm_b]) == "confirmatory"
    assert status(dataclasses.replace(claim, declared=None), [arm_a, arm_b]) == "exploratory"


def test_runs_begun_before_the_seal_and_code_without_a_commit_are_refused(tmp_path, monkeypatch):
    study = tiny(seeds=(0,))
    config = study.configs()[0]
    Run.of(tmp_path, config).record_config(config)
    with pytest.raises(ValueError, match=r"1 run\(s\) of study 'tiny-confirm' began before"):
        seal_plan(study, tmp_path)
    assert not (tmp_path / PLAN).exists()
    monkeypatch.setattr(runs_module, "_git", lambda *args: None)  # a copy, not a checkout
    with pytest.raises(UncommittedError, match="--allow-uncommitted"):
        seal_plan(study, tmp_path / "other")
    plan = seal_plan(study, tmp_path / "other", allow_uncommitted=True)
    assert plan["sealed"]["code"]["commit"] is None and plan["sealed"]["code"]["package_sha256"]
    assert "code with no git commit" in design_text(study, plan)  # the report says so
    with pytest.raises(UncommittedError, match="exporting study"):
        export_bundle(study, tmp_path / "other", tmp_path / "bundle")


def test_the_confirmatory_replication_is_declared_as_the_issue_of_its_design_says():
    assert CPU_CONFIRM.seeds == tuple(range(5, 15)) and len(CPU_CONFIRM.configs()) == 50
    assert {(e.method, e.clean_ce, dict(e.settings).get("matched_compute", False))
            for e in CPU_CONFIRM.entries} == {("region", True, False), ("mixup", True, False),
                                              ("cutmix", True, False), ("region", False, False),
                                              ("region", False, True)}  # fmt: skip
    assert all(e.weights and not e.attacked for e in CPU_CONFIRM.entries)
    assert CPU_CONFIRM.attack_configs(attacked=False) == []
    gated = {dataclasses.replace(c, seed=0) for c in CPU_GATED.configs()}
    assert {dataclasses.replace(c, seed=0) for c in CPU_CONFIRM.configs()} <= gated  # same recipe
    family = CPU_CONFIRM.family()
    assert {(c.b, c.kind) for c in family} == {("region" + NO_CE, "clean"), ("mixup", "clean"),
        ("region/no-ce-2mix", "clean"), ("cutmix", "clean"), ("region" + NO_CE, KIND)}  # fmt: skip
    assert all(c.a == "region" and c.direction == 1 and c.declared is None for c in family)


def test_the_gated_studys_claims_were_declared_when_their_commit_says():
    root = Path(__file__).resolve().parents[1]
    found = subprocess.run(["git", "show", "-s", "--format=%cI", "589a5f5"], cwd=root,
                           capture_output=True, text=True, check=False)  # fmt: skip
    if found.returncode:
        pytest.skip("no git history of commit 589a5f5 here (a shallow clone)")
    declared = {c.declared for c in CPU_GATED.claims[:9]}
    assert declared == {found.stdout.strip()}


def test_recalibration_re_estimates_every_running_statistic_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
    model[1].running_mean.fill_(5.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(64, 3, 8, 8)
    net = recalibrated(model, images, batch_size=32)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    features = model[0](images)
    halves = features.split(32)
    mean = torch.stack([h.mean((0, 2, 3)) for h in halves]).mean(0)
    var = torch.stack([h.var((0, 2, 3), unbiased=True) for h in halves]).mean(0)
    torch.testing.assert_close(net[1].running_mean, mean)
    torch.testing.assert_close(net[1].running_var, var)
    assert not net.training and torch.equal(net[0].weight, model[0].weight)
    with pytest.raises(ValueError, match="BatchNorm layers and images"):
        recalibrated(nn.Linear(2, 2), images)


def test_recalibration_is_a_registered_evaluation_stored_per_image(tmp_path):
    run = run_study(tiny(seeds=(0,), evaluations=()), tmp_path, progress=False)[0]
    record = evaluate(run, KIND)
    assert 0 <= record["accuracy"] <= 100 and run.predictions({"kind": KIND, "n_images": 60})
    assert evaluate(run, KIND)["time"] == record["time"]  # stored once, reused
