"""A study that can answer: the short-training schedule, the training fit every run
records, the pilot's gate, the primary ε chosen from the pilot alone, and the
compute-matched arm as a side of a claim."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from regionmix_utils.claims import MATCHED, NO_CE, Claim, side
from regionmix_utils.config import TrainConfig, recipe_differences, run_name
from regionmix_utils.evaluation.masking import masking_check
from regionmix_utils.report import readme_block, study_report, write_study_report
from regionmix_utils.results import collect_runs, judge
from regionmix_utils.runs import Run, eps_text
from regionmix_utils.study import (
    PLAN,
    PRIMARY_EPS,
    Entry,
    Study,
    StudyGateError,
    export_bundle,
    read_plan,
    run_pilot,
    run_study,
    study_plan,
)
from regionmix_utils.train import TrainingState, hold_cosine_factor, train

from .conftest import tiny_config


def test_hold_cosine_holds_the_lr_for_half_the_epochs_then_anneals_towards_zero():
    factors = [hold_cosine_factor(e, 20) for e in range(1, 21)]
    assert factors[:10] == [1.0] * 10
    assert all(a > b for a, b in itertools.pairwise(factors[10:]))
    assert 0 < factors[-1] < 0.03  # the last epoch still learns
    assert factors[10] == pytest.approx(0.5 * (1 + math.cos(math.pi / 11)))


def test_the_trainer_follows_the_schedule_and_resumes_it(tmp_path, tiny_shapes):
    config = tiny_config(method="none", epochs=4, lr_schedule="hold-cosine", lr=0.2)
    result = train(config, tmp_path, splits=tiny_shapes, progress=False)
    assert [m["lr"] for m in result.metrics] == pytest.approx(
        [0.2 * hold_cosine_factor(e, 4) for e in range(1, 5)]
    )
    state = TrainingState.build(config, tiny_shapes, torch.device("cpu"))
    saved = state.scheduler.state_dict()  # a weights_only checkpoint must hold it
    torch.save(saved, tmp_path / "s.pt")
    torch.load(tmp_path / "s.pt", weights_only=True)


def test_stopping_after_an_epoch_keeps_the_whole_runs_schedule_and_resumes(tmp_path, tiny_shapes):
    """``stop_after`` trains the first epochs of a run as the whole run trains them (the
    reproduction check retrains a committed run's first epochs so), and a later call
    finishes it to the same numbers as an uninterrupted run."""
    config = tiny_config(
        method="region", epochs=4, lr_schedule="hold-cosine", checkpoint_every=2
    )  # the stop saves what the interval did not
    whole = train(config, tmp_path / "whole", splits=tiny_shapes, progress=False).metrics
    part = train(config, tmp_path / "part", splits=tiny_shapes, progress=False, stop_after=3)
    assert part.metrics == [{**m, "seconds": p["seconds"]} for m, p in
                            zip(whole[:3], part.metrics, strict=True)]  # fmt: skip
    run = Run.of(tmp_path / "part", config)
    assert not run.finished and len(run.metrics()) == 3
    rest = train(config, tmp_path / "part", splits=tiny_shapes, progress=False).metrics

    def timeless(metrics):
        return [{k: v for k, v in m.items() if k != "seconds"} for m in metrics]

    assert timeless(rest) == timeless(whole) and run.finished
    with pytest.raises(ValueError, match=r"stop_after must be in 1\.\.4"):
        train(config, tmp_path / "other", splits=tiny_shapes, progress=False, stop_after=5)
    train(config, tmp_path / "again", splits=tiny_shapes, progress=False, stop_after=3)
    with pytest.raises(ValueError, match="already trained 3 epochs"):
        train(config, tmp_path / "again", splits=tiny_shapes, progress=False, stop_after=2)


def test_the_schedule_is_part_of_the_recipe_and_resets_what_it_does_not_read():
    config = TrainConfig(lr_schedule="hold-cosine", milestones=(3, 5), lr_gamma=0.5)
    assert (config.milestones, config.lr_gamma) == (TrainConfig().milestones, 0.1)
    assert "lr held, then cosine" in recipe_differences(config)
    assert run_name(config) == run_name(TrainConfig())  # the folder name is the method's
    with pytest.raises(ValueError, match=r"lr_schedule must be one of .*'step'.*'cosine'"):
        TrainConfig(lr_schedule="cosine")


def test_the_final_metrics_line_holds_the_fit_to_the_training_images(tmp_path, tiny_shapes):
    result = train(tiny_config(method="none"), tmp_path, splits=tiny_shapes, progress=False)
    first, last = result.metrics
    assert "train_acc" not in first
    assert 0 <= last["train_acc"] <= 100 and last["train_eval_loss"] > 0
    # Eval mode on clean training images: what the trainer's own evaluate gives.
    from regionmix_utils.train import BatchLoader, evaluate

    loader = BatchLoader(tiny_shapes.train, 500, shuffle=False, augment=False,
                         device=torch.device("cpu"))  # fmt: skip
    assert evaluate(result.model, loader) == (last["train_eval_loss"], last["train_acc"])


@pytest.fixture(autouse=True)
def small_shapes():
    """A registered dataset of 400 / 60 shapes images: the study's evaluations attack
    every test image, and the embedded set has 2,000."""
    import dataclasses

    from regionmix_utils.data import get_dataset, registered_dataset

    spec = get_dataset("shapes")
    small = dataclasses.replace(spec, name="shapes-small", split_sizes=(400, 60), load=_small_load)
    with registered_dataset(small):
        yield small


def _small_load(root, *, size=None, n_train=None, n_test=None, seed=0):
    from regionmix_utils.data import get_dataset

    return get_dataset("shapes").load(root, size=size, n_train=n_train or 400,
                                      n_test=n_test or 60, seed=seed)  # fmt: skip


def gated(**changes) -> Study:
    base = {
        "name": "tiny-gated", "title": "shapes", "dataset": "shapes-small", "seeds": (0, 1),
        "width": 4, "epochs": 3, "lr_schedule": "hold-cosine", "holdout": 50,
        "n_train": 300, "n_test": None, "fgsm_eps": (2 / 255, 8 / 255, 16 / 255),
        "noise_severities": (), "gate_gap": -100.0, "primary_target": 30.0,
        "sample_images": 40, "with_paper_claims": False,
        "entries": (Entry("none"), Entry("mixup"),
                    Entry("mixup", (("matched_compute", True),), clean_ce=False,
                          attacked=False)),
        "claims": (Claim("shapes-small", "mixup", "none", "fgsm", (("eps", PRIMARY_EPS),),
                         source="tiny-gated"),
                   Claim("shapes-small", "mixup", "mixup" + MATCHED, "clean",
                         source="tiny-gated")),
    }  # fmt: skip
    return Study(**(base | changes))


def test_a_failing_gate_stops_the_study_before_any_other_run(tmp_path):
    study = gated(gate_gap=101.0)  # no model beats this gap
    with pytest.raises(StudyGateError, match=r"gate failed: .*nothing to regularise.*epochs"):
        run_study(study, tmp_path, progress=False)
    assert [r.config.method for r in (Run(p.parent) for p in tmp_path.rglob("config.json"))] == [
        "none"
    ]
    plan = read_plan(tmp_path)
    assert plan["passed"] is False and "primary_eps" not in plan
    with pytest.raises(StudyGateError):  # the recorded verdict stands on a rerun
        run_pilot(study, tmp_path, progress=False)


def test_the_pilot_chooses_the_primary_eps_by_its_rule_before_the_others_run(tmp_path):
    study = gated()
    plan = run_pilot(study, tmp_path, progress=False)
    assert plan["passed"] and (tmp_path / PLAN).exists()
    fgsm = {float(e): a for e, a in plan["fgsm"].items()}
    assert set(fgsm) == set(study.fgsm_eps)
    nearest = min(abs(a - 30.0) for a in fgsm.values())
    assert abs(fgsm[plan["primary_eps"]] - 30.0) == nearest
    assert plan["sample_eps"] == study.sample_eps(plan["primary_eps"])
    assert len(list(tmp_path.rglob("config.json"))) == 1  # only the pilot so far
    pilot = Run.of(tmp_path, study.pilot())
    assert plan["pilot"]["train_acc"] == pilot.metrics()[-1]["train_acc"]

    runs = run_study(study, tmp_path, progress=False)
    stored = json.loads((tmp_path / PLAN).read_text())
    assert {k: stored[k] for k in plan} == plan  # chosen once, then sealed beside it
    assert {r.config.plan for r in runs if r.path != pilot.path} == {stored["hash"]}
    assert pilot.config.plan is None  # it trained before the plan was sealed
    attacked = [r for r in runs if study.entry_of(r.config).attacked]
    for run in attacked:  # every masking flag checked on every attacked run
        assert None not in masking_check(run.evaluations())["flags"].values()
        square = [e for e in run.evaluations() if e["kind"] == "square"]
        assert [e["eps"] for e in square] == [plan["primary_eps"]]
    family = study.family(plan["primary_eps"])
    assert family[0].settings == (("eps", plan["primary_eps"]),)
    verdicts = judge(collect_runs(tmp_path), family, str(tmp_path)).cells
    assert verdicts["seeds"].tolist() == [2, 2]  # one row each; the matched arm pairs

    # Its report: the gate, the primary ε with its rule, the fit, PGD at every ε, the flags.
    out = tmp_path.with_name(tmp_path.name + "-out")  # not shared with other tests
    bundle = export_bundle(study, tmp_path, out / "bundle")
    text = write_study_report(study, out / "report.md", bundle).read_text()
    pilot = plan["pilot"]
    assert (f"training {pilot['train_acc']:.2f}%, test {pilot['test_acc']:.2f}%, a gap of "
            f"{pilot['gap']:+.2f} points: passed") in text  # fmt: skip
    assert f"Chosen: ε = {eps_text(plan['primary_eps'])}" in text and plan["rule"] in text
    fit = text.split("## Fit to the training images")[1].split("##")[0]
    assert all(f"| {label} |" in fit for label in ("No mixing", "Mixup (k=1)"))
    pgd = text.split("## PGD at every ε")[1].split("##")[0]
    assert "64/255 (40 images)" in pgd and f"{eps_text(plan['primary_eps'])} (" in pgd
    assert "attacked beyond FGSM: every flag was checked on every run." in text
    assert "Gaussian noise" not in text  # not run by this study
    block = readme_block(study_report(study, bundle))
    assert block.count("| A > B |") == 2  # both declared claims, with their verdicts


def test_a_gated_studys_plan_must_be_there(tmp_path):
    with pytest.raises(FileNotFoundError, match=PLAN):
        study_plan(gated(), tmp_path)
    assert study_plan(gated(gate_gap=None), tmp_path) is None


def test_a_claim_at_the_primary_eps_needs_it():
    with pytest.raises(ValueError, match=r"primary ε.*read_plan"):
        gated().family()


def test_sample_eps_takes_the_sweeps_neighbours_and_an_unbounded_eps():
    study = gated(fgsm_eps=(1 / 255, 2 / 255, 4 / 255, 8 / 255))
    assert study.sample_eps(2 / 255) == [1 / 255, 4 / 255, 64 / 255]
    assert study.sample_eps(1 / 255) == [2 / 255, 4 / 255, 64 / 255]
    assert study.sample_eps(8 / 255) == [2 / 255, 4 / 255, 64 / 255]


def test_sides_name_the_compute_matched_arm():
    assert side("region") == ("region", True, False)
    assert side("region" + NO_CE) == ("region", False, False)
    assert side("region" + MATCHED) == ("region", False, True)


def test_a_killed_invocation_keeps_its_wall_time(tmp_path):
    """The study's wall time is written as it runs: a process killed (SIGKILL, as a
    session's end does) leaves its invocation's time, to within the beat."""
    import signal
    import subprocess
    import sys
    import time

    from regionmix_utils.study import study_timing

    code = ("import time\nfrom regionmix_utils.study import timed\n"
            f"with timed({str(tmp_path)!r}, workers=2, every_s=0.2):\n"
            "    time.sleep(60)\n")  # fmt: skip
    spawned = time.time()
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 120
    while not (tmp_path / "study-timing.json").exists() and time.time() < deadline:
        time.sleep(0.05)  # the child imports torch first
    time.sleep(2.0)
    child.send_signal(signal.SIGKILL)
    child.wait()
    lived = time.time() - spawned
    timing = study_timing(tmp_path)
    # Beats after the first write (0 s) were kept, and none outlived the process.
    assert timing["invocations"] == 1 and 0.5 < timing["seconds"] <= lived


def _trained_pilot(study: Study, runs_dir) -> float:
    """Train ``study``'s pilot into ``runs_dir`` (``run_pilot`` then finds it finished);
    its gap, training minus test accuracy of its final epoch (points)."""
    train(study.pilot(), runs_dir, progress=False)
    final = Run.of(runs_dir, study.pilot()).metrics()[-1]
    return final["train_acc"] - final["test_acc"]


def test_a_pilot_whose_gap_equals_the_threshold_passes(tmp_path):
    """The gate asks for a gap of *at least* ``gate_gap`` points: a pilot exactly at it
    passes, one the smallest float short of it fails."""
    import shutil

    study = gated(primary_target=None)  # the gate alone: no FGSM sweep to run
    gap = _trained_pilot(study, tmp_path / "at")
    shutil.copytree(tmp_path / "at", tmp_path / "above")
    plan = run_pilot(gated(primary_target=None, gate_gap=gap), tmp_path / "at", progress=False)
    assert plan["passed"] and plan["pilot"]["gap"] == plan["required_gap"] == gap
    short = math.nextafter(gap, math.inf)
    with pytest.raises(StudyGateError, match="gate failed"):
        run_pilot(gated(primary_target=None, gate_gap=short), tmp_path / "above",
                  progress=False)  # fmt: skip


@pytest.mark.parametrize(
    ("below", "above"),
    [
        (28.0, 32.0),
        # 3,488 and 2,512 of 10,000 images right, as the attacks compute a percentage:
        # 4.88 points either side of 30 exactly, 4.880000000000003 and 4.879999999999999
        # in floating point; the rule must not let that rounding choose.
        (100.0 * 3488 / 10000, 100.0 * 2512 / 10000),
    ],
)
def test_a_tie_in_the_primary_eps_rule_goes_to_the_smaller_eps(tmp_path, monkeypatch, below,
                                                                  above):  # fmt: skip
    """A pilot at ``below`` % under FGSM at 2/255 and ``above`` % at 8/255 is as near a 30%
    target at both: the rule written in the plan chooses the smaller ε, whatever order
    the sweep's records come in. The pilot's FGSM accuracies are given (an attack
    cannot be made to hit them)."""
    from regionmix_utils.evaluation import robustness

    accuracy = {2 / 255: below, 8 / 255: above, 16 / 255: 5.0}

    def sweep(run, configs, n_images, *args, **kwargs):
        assert sorted(c.eps for c in configs) == sorted(accuracy)
        return [{"kind": "fgsm", "eps": e, "n_images": 10000, "accuracy": accuracy[e]}
                for e in sorted(accuracy, reverse=True)]  # fmt: skip

    monkeypatch.setattr(robustness, "evaluate_run", sweep)
    plan = run_pilot(gated(), tmp_path, progress=False)
    assert plan["primary_eps"] == 2 / 255 and "the smaller ε on a tie" in plan["rule"]
    assert plan["sample_eps"] == [8 / 255, 16 / 255, 64 / 255]


def test_sample_eps_takes_the_nearest_eps_on_each_side_of_the_primary():
    study = gated(fgsm_eps=(1 / 255, 2 / 255, 4 / 255, 8 / 255))
    assert study.sample_eps(4 / 255) == [2 / 255, 8 / 255, 64 / 255]
    sweep = (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
    wide = gated(fgsm_eps=sweep)
    for i in range(1, len(sweep) - 1):  # every inner ε: its two neighbours in the sweep
        assert wide.sample_eps(sweep[i]) == [sweep[i - 1], sweep[i + 1], 64 / 255]
