"""The evaluation registry: every kind of record declared once, and a plugin's evaluation
evaluated, stored per image, tabulated and compared with no change to the package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from regionmix_utils.evaluation.registry import (
    Evaluation,
    evaluate,
    evaluation_kinds,
    get_evaluation,
    predict,
)
from regionmix_utils.runs import RECORD_KINDS, Run, evaluation_settings, find_runs
from regionmix_utils.train import train

from .conftest import tiny_config

PLUGIN = """
from regionmix_utils.evaluation.registry import Evaluation, predict, register_evaluation


def flipped(model, images, labels):
    return predict(model, images.flip(-1))  # [N] classes, on the mirrored images


register_evaluation(
    Evaluation(
        kind="flipped",
        title="Accuracy on horizontally flipped test images",
        caption="test accuracy (%) on the test images mirrored left to right",
        compute=flipped,
    )
)
"""


def test_every_kind_a_table_places_is_registered_with_what_it_measures():
    for kind in evaluation_kinds():
        spec = get_evaluation(kind)
        assert spec.title and spec.caption and "accuracy" in spec.measures
        assert spec.command.startswith("regionmix ")
    with pytest.raises(ValueError, match=r"^evaluation kind must be one of \('clean', .*'fgsm'"):
        get_evaluation("flipped")


def test_a_declared_measure_is_never_a_setting():
    record = {"kind": "clean", "n_images": 10, "accuracy": 50.0, "seconds": 1.0}
    assert evaluation_settings(record) == {"kind": "clean", "n_images": 10}
    spec = Evaluation("agreement", "Agreement", "share of images", measures=("accuracy", "agree"))
    with RECORD_KINDS.temporary(spec):
        record = {"kind": "agreement", "n_images": 10, "accuracy": 1.0, "agree": 0.3}
        assert evaluation_settings(record) == {"kind": "agreement", "n_images": 10}
    with pytest.raises(ValueError, match="both a setting and a measured value"):
        Evaluation("bad", "Bad", "bad", keys=("accuracy",))


def test_evaluate_stores_each_images_prediction_and_reuses_the_record(tmp_path, tiny_shapes):
    train(tiny_config(method="none", epochs=1), tmp_path, splits=tiny_shapes, progress=False)
    (run,) = [Run(p.parent) for p in tmp_path.rglob("final.pt")]
    calls = []

    def upside_down(model, images, labels, *, angle):
        calls.append(angle)
        return predict(model, images.flip(-2))

    spec = Evaluation("upside-down", "Upside down", "accuracy upside down", keys=("angle",),
                      compute=upside_down)  # fmt: skip
    with RECORD_KINDS.temporary(spec):
        record = evaluate(run, "upside-down", n_images=50, angle=180)
        assert set(record) == {"kind", "angle", "n_images", "accuracy", "seconds", "time"}
        settings = evaluation_settings(record)
        stored = run.predictions(settings)
        model = run.load_model()
        images, _ = _test_images(run, 50)
        model.eval()
        with torch.no_grad():
            expected = model(images.flip(-2)).argmax(1)
        assert torch.equal(torch.from_numpy(stored.predicted).long(), expected)
        assert record["accuracy"] == pytest.approx(100 * stored.correct().mean())
        assert evaluate(run, "upside-down", n_images=50, angle=180) == record  # reused
        assert calls == [180]
        with pytest.raises(ValueError, match=r"takes the settings \('angle',\)"):
            evaluate(run, "upside-down", n_images=50)


def test_a_record_stored_without_predictions_is_evaluated_again_with_them(
    tmp_path, tiny_shapes, capsys
):
    """A plugin's record written before per-image predictions were kept (or by hand):
    ``regionmix evaluate`` must not reuse it, since ``table --compare`` cannot pair it;
    it computes the evaluation again, stores the predictions, and replaces the record."""
    from regionmix_utils.cli import main

    train(tiny_config(method="none", epochs=1, n_train=64, n_test=40), tmp_path,
          splits=tiny_shapes, progress=False)  # fmt: skip
    (run,) = [Run(p.parent) for p in tmp_path.rglob("final.pt")]
    calls = []

    def upside_down(model, images, labels, *, angle):
        calls.append(len(labels))
        return predict(model, images.flip(-2))

    spec = Evaluation("upside-down", "Upside down", "accuracy upside down", keys=("angle",),
                      compute=upside_down)  # fmt: skip
    key = {"kind": "upside-down", "angle": 180, "n_images": 40}
    with RECORD_KINDS.temporary(spec):
        run.add_evaluation({**key, "accuracy": -1.0, "seconds": 0.0})  # no predictions
        assert run.find_evaluation(key) is not None and run.predictions(key) is None
        words = ["evaluate", "--kind", "upside-down", "--setting", "angle=180", "--runs-dir",
                 str(tmp_path), "--n-images", "40", "--device", "cpu", "--no-progress"]  # fmt: skip
        assert main(words) == 0
        assert calls == [40], "the record without predictions was reused"
        stored = run.predictions(key)
        assert stored is not None and len(stored) == 40
        (record,) = [r for r in run.evaluations() if evaluation_settings(r) == key]
        assert record["accuracy"] == pytest.approx(100 * stored.correct().mean())
        assert f"upside-down {record['accuracy']:.2f}%" in capsys.readouterr().out
        assert evaluate(run, "upside-down", n_images=40, angle=180) == record  # now reused
        assert calls == [40]


def test_the_compare_hint_counts_only_the_runs_without_predictions(tmp_path, tiny_shapes,
                                                                   capsys):  # fmt: skip
    """Of four runs evaluated on a plugin's evaluation, one holds a record without
    per-image predictions: ``table --compare`` says that one run needs the evaluation
    again, and gives the command that makes it."""
    from regionmix_utils.cli import main

    for method in ("region", "mixup"):
        for seed in (0, 1):
            train(tiny_config(method=method, seed=seed, epochs=1, n_train=64, n_test=40),
                  tmp_path, splits=tiny_shapes, progress=False)  # fmt: skip
    runs = find_runs(tmp_path)

    def flipped(model, images, labels):
        return predict(model, images.flip(-1))

    spec = Evaluation("flipped", "Accuracy on flipped images", "mirrored", compute=flipped)
    with RECORD_KINDS.temporary(spec):
        for run in runs[1:]:
            evaluate(run, "flipped", n_images=40)
        runs[0].add_evaluation({"kind": "flipped", "n_images": 40, "accuracy": 50.0})
        capsys.readouterr()
        assert main(["table", "--runs-dir", str(tmp_path), "--compare", "region:mixup"]) == 0
    out = capsys.readouterr().out
    assert (f"no per-image predictions in 1 run(s): re-run `regionmix evaluate --kind flipped "
            f"--runs-dir {tmp_path}` for paired numbers") in out  # fmt: skip


def _test_images(run, n):
    from regionmix_utils.evaluation.robustness import test_images

    return test_images(run, n)


def test_a_plugins_evaluation_is_evaluated_tabulated_and_compared(tmp_path, tiny_shapes):
    """The flipped-image accuracy of a module outside the package, named in
    $REGIONMIX_PLUGINS: the command line evaluates it on every run (stored with each
    image's prediction), tabulates it, and compares two methods on it, seed by seed."""
    runs = tmp_path / "runs"
    for method in ("region", "mixup"):
        for seed in (0, 1):
            train(tiny_config(method=method, seed=seed, epochs=1), runs, splits=tiny_shapes,
                  progress=False)  # fmt: skip
    guide = (Path(__file__).parent.parent / "docs" / "extending.md").read_text()
    assert PLUGIN in guide  # the test runs what the guide shows
    (tmp_path / "flip_eval.py").write_text(PLUGIN)
    env = {**os.environ, "REGIONMIX_PLUGINS": "flip_eval", "OMP_NUM_THREADS": "1"}

    def regionmix(*words):
        done = subprocess.run([sys.executable, "-m", "regionmix_utils.cli", *words],
                              cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = regionmix("evaluate", "--kind", "flipped", "--runs-dir", "runs", "--n-images", "60",
                    "--device", "cpu", "--no-progress")  # fmt: skip
    assert out.count("flipped") == 4
    for run in (Run(p.parent) for p in runs.rglob("final.pt")):
        (record,) = [r for r in run.evaluations() if r["kind"] == "flipped"]
        assert len(run.predictions(evaluation_settings(record))) == 60  # one per image

    table = regionmix("table", "--runs-dir", "runs")
    assert "Accuracy on horizontally flipped test images (beyond the paper)" in table
    assert "on 60 test images" in table
    compared = regionmix("table", "--runs-dir", "runs", "--compare", "region:mixup")
    header, _, row = [line for line in compared.splitlines() if line.startswith("|")]
    cells = dict(zip(header.split("|"), row.split("|"), strict=True))
    assert cells[" metric "].strip() == "Accuracy on horizontally flipped test images"
    assert cells[" seeds "].strip() == "2"  # paired seed by seed
    region = [r["accuracy"] for p in runs.rglob("region-*/seed*/eval.json")
              for r in Run(p.parent).evaluations()]  # fmt: skip
    assert float(cells[" A (%) "]) == pytest.approx(sum(region) / 2, abs=0.006)


def test_a_study_evaluates_a_registered_evaluation_and_its_report_tabulates_it(tmp_path):
    from regionmix_utils.report import write_report
    from regionmix_utils.study import Entry, Study, export_bundle, run_study

    spec = Evaluation(
        "flipped",
        "Accuracy on flipped images",
        "accuracy mirrored",
        compute=lambda model, images, labels: predict(model, images.flip(-1)),
    )
    study = Study(
        name="tiny-eval",
        title="shapes",
        dataset="shapes",
        seeds=(0,),
        width=4,
        epochs=1,
        n_train=200,
        n_test=60,
        fgsm_eps=(8 / 255,),
        noise_severities=(),
        entries=(Entry("none", attacked=False),),
        evaluations=(("flipped", ()),),
    )
    with RECORD_KINDS.temporary(spec):
        (run,) = run_study(study, tmp_path / "runs", progress=False)
        (record,) = [r for r in run.evaluations() if r["kind"] == "flipped"]
        assert run.predictions(evaluation_settings(record)) is not None
        bundle = export_bundle(study, tmp_path / "runs", tmp_path / "bundle")
        report = write_report(bundle, tmp_path / "report.md").read_text()
    heading = "## Accuracy on flipped images\n\n"
    assert heading + "Accuracy on flipped images (beyond the paper)" in report


def test_two_keyed_evaluations_one_without_records_leave_every_table_intact(
    tmp_path, tiny_shapes, capsys
):
    """With two evaluations that declare settings registered and only one of them
    evaluated, ``regionmix table`` crashed with ``KeyError`` on the other's setting: it
    grouped that evaluation's (absent) rows by columns no record has. Now it tabulates
    the one evaluated, at each of its settings."""
    from regionmix_utils.cli import main

    def shifted(model, images, labels, shift):
        return predict(model, images.roll(int(shift), dims=-1))

    def scaled(model, images, labels, quality):
        return predict(model, images * float(quality))

    runs = tmp_path / "runs"
    train(tiny_config(epochs=1), runs, splits=tiny_shapes, progress=False)
    (run,) = find_runs(runs)
    with (
        RECORD_KINDS.temporary(Evaluation("shifted", "Accuracy shifted", "shifted images",
                                         keys=("shift",), compute=shifted)),
        RECORD_KINDS.temporary(Evaluation("scaled", "Accuracy scaled", "scaled images",
                                         keys=("quality",), compute=scaled)),
    ):  # fmt: skip
        for shift in (1, 3):
            evaluate(run, "shifted", n_images=20, shift=shift)
        assert main(["table", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "Accuracy shifted (beyond the paper, shift=1)" in out
    assert "Accuracy shifted (beyond the paper, shift=3)" in out
    assert "Accuracy scaled" not in out
