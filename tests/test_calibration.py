"""Calibration: ECE against its definition, temperature scaling on held-out images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from regionmix_utils.cli import main
from regionmix_utils.data import holdout_split, load_dataset
from regionmix_utils.evaluation.calibration import (
    calibration_metrics,
    evaluate_calibration,
    fit_temperature,
    predict_logits,
    reliability,
)
from regionmix_utils.results import collect_runs, paper_tables
from regionmix_utils.runs import Run
from regionmix_utils.train import train, training_splits

from .conftest import tiny_config


def ece_by_definition(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE = sum over bins B of |B| / N * |accuracy(B) - confidence(B)|, bins of the
    top-label confidence: (0, 1/15], (1/15, 2/15], ... (written out, loop by loop)."""
    confidence, predicted = probs.max(1)
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [i for i in range(len(labels)) if low < float(confidence[i]) <= high]
        if inside:
            accuracy = sum(int(predicted[i] == labels[i]) for i in inside) / len(inside)
            mean_conf = sum(float(confidence[i]) for i in inside) / len(inside)
            total += len(inside) / len(labels) * abs(accuracy - mean_conf)
    return 100 * total


def test_ece_equals_its_definition_on_fixed_logits():
    # Four samples, three classes; confidences 0.9 (right), 0.9 (wrong), 0.5 (right),
    # 0.6 (wrong): by hand, bins (13/15, 14/15] holds two at accuracy 1/2, confidence
    # 0.9 -> 2/4 * 0.4; (7/15, 8/15] one right at 0.5 -> 1/4 * 0.5; (8/15, 9/15] one
    # wrong at 0.6 -> 1/4 * 0.6. ECE = 0.2 + 0.125 + 0.15 = 47.5 %.
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.5, 0.3, 0.2],
                          [0.2, 0.6, 0.2]], dtype=torch.float64)  # fmt: skip
    labels = torch.tensor([0, 0, 0, 2])
    metrics = calibration_metrics(probs.log(), labels)
    assert metrics["ece"] == pytest.approx(47.5)
    assert ece_by_definition(probs, labels) == pytest.approx(47.5)
    assert metrics["accuracy"] == pytest.approx(50.0)
    assert metrics["nll"] == pytest.approx(-(math.log(0.9) + math.log(0.05) + math.log(0.5)
                                             + math.log(0.2)) / 4)  # fmt: skip
    brier = ((probs - F.one_hot(labels, 3)) ** 2).sum(1).mean()
    assert metrics["brier"] == pytest.approx(float(brier))


def test_ece_matches_the_definition_and_torchmetrics_on_random_logits():
    from torchmetrics.classification import MulticlassCalibrationError

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 10, generator=gen) * 3
    labels = torch.randint(0, 10, (500,), generator=gen)
    ours = calibration_metrics(logits, labels)["ece"]
    # torchmetrics bins in float32: the same number to 1e-5 of a percentage point
    assert ours == pytest.approx(ece_by_definition(logits.double().softmax(1), labels), abs=1e-4)
    metric = MulticlassCalibrationError(num_classes=10, n_bins=15, norm="l1")
    assert ours == pytest.approx(100 * float(metric(logits.softmax(1), labels)), abs=1e-4)
    curve = reliability(logits, labels)
    filled = curve["count"] > 0
    weighted = (curve["count"][filled] / 500 * (curve["accuracy"][filled]
                - curve["confidence"][filled]).abs()).sum()  # fmt: skip
    assert 100 * float(weighted) == pytest.approx(ours, abs=1e-3)
    assert int(curve["count"].sum()) == 500


def test_a_confidence_that_rounds_to_one_lands_in_the_last_of_the_15_bins():
    # 100 predictions with a logit margin of 25 (confidence 1 - 3e-11: 1.0 in float32),
    # half of them right, and 50 at confidence 0.95, all right. All 150 belong in the
    # last bin [14/15, 1): confidence (100 + 47.5) / 150, accuracy 100 / 150, so ECE =
    # 31.67 %. Put in a 16th bin of their own they would give 2/3 * 0.5 + 1/3 * 0.05 =
    # 35.0 %, which no bin of the reliability diagram shows.
    logits = torch.zeros(150, 3)
    logits[:100, 0] = 25.0
    logits[100:, 0] = math.log(0.95 / 0.025)  # softmax: 0.95, 0.025, 0.025
    labels = torch.zeros(150, dtype=torch.long)
    labels[50:100] = 1
    ece = calibration_metrics(logits, labels)["ece"]
    assert ece == pytest.approx(100 * (147.5 / 150 - 100 / 150), abs=1e-3)  # 31.67
    curve = reliability(logits, labels)
    assert curve["count"].tolist() == [0.0] * 14 + [150.0]
    shown = curve["count"][-1] / 150 * (curve["accuracy"][-1] - curve["confidence"][-1]).abs()
    assert 100 * float(shown) == pytest.approx(ece, abs=1e-3)


def test_the_fitted_temperature_is_the_one_that_made_the_labels():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(20_000, 5, generator=gen) * 4
    labels = torch.multinomial((logits / 2.5).softmax(1), 1, generator=gen).squeeze(1)
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)
    assert (
        calibration_metrics(logits, labels, 2.5)["nll"] < calibration_metrics(logits, labels)["nll"]
    )


def test_held_out_images_are_never_trained_on(tiny_shapes):
    config = tiny_config(holdout=40)
    kept = training_splits(config, splits=tiny_shapes).train
    _, held = holdout_split(tiny_shapes.train, 40)
    assert len(kept) == 256 - 40 and len(held) == 40
    flat = lambda images: {bytes(x.numpy()) for x in images}  # noqa: E731
    assert not flat(kept.images) & flat(held.images)
    assert set(torch.bincount(held.labels, minlength=10).tolist()) == {4}  # stratified


@pytest.fixture(scope="module")
def held_out_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    config = tiny_config(epochs=2, n_train=None, holdout=200, n_test=100)
    train(config, root, device="cpu", splits=load_dataset("shapes", n_train=800, n_test=100),
          progress=False)  # fmt: skip
    return Run.of(root, config)


def test_calibration_is_stored_with_the_temperature_fitted_on_the_held_out_images(held_out_run):
    record = evaluate_calibration(held_out_run, n_images=100)
    assert record["kind"] == "calibration" and record["holdout"] == 200
    assert record["n_images"] == 100 and record["temperature"] > 0
    for key in ("ece", "ece_scaled", "nll", "nll_scaled", "brier", "brier_scaled"):
        assert record[key] >= 0
    assert held_out_run.find_evaluation({"kind": "calibration", "n_images": 100,
                                         "holdout": 200}) == record  # fmt: skip
    assert evaluate_calibration(held_out_run, n_images=100) == record  # reused
    # The temperature is the one fitted on the held-out training images, not the test.
    model = held_out_run.load_model()
    held = holdout_split(load_dataset("shapes").train, 200)[1]
    expected = fit_temperature(predict_logits(model, held.images.float() / 255), held.labels)
    assert record["temperature"] == pytest.approx(expected)


def test_calibration_stores_each_images_prediction_and_logits(held_out_run):
    key = {"kind": "calibration", "n_images": 100, "holdout": 200}
    record = evaluate_calibration(held_out_run, n_images=100)
    stored = held_out_run.predictions(key)
    assert stored.logits.dtype == np.float16 and stored.logits.shape == (100, 10)
    assert stored.predicted.tolist() == stored.logits.astype(np.float32).argmax(1).tolist()
    assert 100 * stored.correct().mean() == pytest.approx(record["accuracy"])
    recomputed = calibration_metrics(torch.from_numpy(stored.logits.astype(np.float32)),
                                     torch.from_numpy(stored.labels.astype(np.int64)))  # fmt: skip
    assert recomputed["ece"] == pytest.approx(record["ece"], abs=0.5)  # float16 logits
    clean = held_out_run.predictions({"kind": "clean", "n_images": 100})
    assert np.array_equal(clean.predicted, stored.predicted)


def test_a_record_stored_without_predictions_is_evaluated_again(tmp_path, tiny_shapes):
    config = tiny_config(epochs=1)
    train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    run = Run.of(tmp_path, config)
    key = {"kind": "calibration", "n_images": 50, "holdout": 0}
    run.add_evaluation({**key, "ece": 99.0})  # as written before predictions were kept
    record = evaluate_calibration(run, n_images=50)
    assert record["ece"] != 99.0 and run.predictions(key) is not None


def test_runs_without_a_holdout_get_no_scaled_numbers(tmp_path, tiny_shapes):
    config = tiny_config(epochs=1)
    train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False)
    record = evaluate_calibration(Run.of(tmp_path, config), n_images=50)
    assert record["temperature"] is None and record["ece_scaled"] is None
    tables = [t for t in paper_tables(collect_runs(tmp_path)) if t.number == 5]
    assert len(tables) == 3  # ECE, NLL and Brier score; no scaled ECE
    assert not any("after temperature scaling" in t.caption for t in tables)


def test_the_table_and_the_command(held_out_run, capsys):
    root = held_out_run.path.parent.parent.parent
    assert main(["calibration", "--runs-dir", str(root), "--n-images", "100",
                 "--device", "cpu"]) == 0  # fmt: skip
    assert "ECE" in capsys.readouterr().out
    tables = [t for t in paper_tables(collect_runs(root)) if t.number == 5]
    captions = " ".join(t.caption for t in tables)
    assert "after temperature scaling" in captions and "on 100 test images" in captions
    assert "held out of training (200)" in captions
