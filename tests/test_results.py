"""Runs on disk -> the paper's tables, our numbers beside the published ones."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from regionmix_utils import paper
from regionmix_utils.cli import main
from regionmix_utils.config import TrainConfig, quick_config
from regionmix_utils.evaluation.registry import Evaluation
from regionmix_utils.records import PAPER_DATASETS
from regionmix_utils.results import (
    Claim,
    collect_evaluations,
    collect_runs,
    column_label,
    compare,
    judge,
    paper_tables,
    published_tables,
    to_latex,
    to_markdown,
)
from regionmix_utils.runs import RECORD_KINDS, Predictions, Run, find_runs

GOLDEN = Path(__file__).parent / "golden"
EPS = 8 / 255


def finished_run(root, config: TrainConfig, final_acc: float, evaluations=()) -> Run:
    """A finished run written as training writes one: config.json, two epochs of
    metrics (the last evaluated at ``final_acc``, the one before 1 point higher),
    final.pt, and evaluation records."""
    run = Run.of(root, config)
    run.record_config(config)
    epochs = config.epochs
    run.write_metrics([
        {"epoch": epochs - 1, "lr": 0.001, "train_loss": 1.0, "test_loss": 1.0,
         "test_acc": final_acc + 1.0},
        {"epoch": epochs, "lr": 0.001, "train_loss": 1.0, "test_loss": 1.0,
         "test_acc": final_acc},
    ])  # fmt: skip
    torch.save({}, run.path / "final.pt")
    for record in evaluations:
        run.add_evaluation(record)
    return run


# Our accuracies for the golden runs: the paper's mean ± 0.2 over three seeds, except
# a few cells moved on purpose (one far from the paper in each direction, one close).
MOVED = {
    ("cifar10", "region", True): (95.0, 95.1, 95.2),  # 1.09 below: more than 2 SE
    ("tinyimagenet", "mixup", True): (66.0, 66.5, 67.0),  # 1.05 above: more than 2 SE
    ("cifar100", "cutmix", True): (78.5, 79.0, 79.5),  # 0.03 below: within 2 SE
    ("cifar10", "mixup", True): (95.9, 96.1, 96.3),  # 0.21 above: more than 1 SE, within 2
}


def _accuracies(dataset, method, clean_ce, attack=None):
    moved = MOVED.get((dataset, method, clean_ce)) if attack is None else None
    if moved:
        return moved
    mean = paper.lookup(dataset, method, clean_ce, attack).mean
    return (mean - 0.2, mean, mean + 0.2)


@pytest.fixture(scope="module")
def golden_runs(tmp_path_factory):
    """3 datasets x 3 methods x 3 seeds in the paper's setting, with FGSM and Square on
    10,000 test images; CIFAR-100 without the clean CE term; and runs the paper has no
    numbers for (no mixing, k = 4, 200 epochs, a quick run)."""
    root = tmp_path_factory.mktemp("golden-runs")
    for dataset in PAPER_DATASETS:
        for method in ("cutmix", "mixup", "region"):
            fgsm = _accuracies(dataset, method, True, "fgsm")
            square = _accuracies(dataset, method, True, "square")
            for seed, acc in enumerate(_accuracies(dataset, method, True)):
                config = TrainConfig(dataset=dataset, method=method, seed=seed)
                finished_run(root, config, acc, [
                    {"kind": "clean", "n_images": 10000, "accuracy": acc, "seconds": 1.0},
                    {"kind": "fgsm", "eps": EPS, "n_images": 10000, "accuracy": fgsm[seed],
                     "seconds": 2.0},
                    {"kind": "square", "eps": EPS, "queries": 100, "seed": 0, "p_init": 0.8,
                     "loss": "margin", "n_images": 10000, "accuracy": square[seed],
                     "seconds": 3.0},
                ])  # fmt: skip
            if dataset == "cifar100":
                for seed, acc in enumerate(_accuracies(dataset, method, False)):
                    config = TrainConfig(dataset=dataset, method=method, seed=seed,
                                         clean_ce=False)  # fmt: skip
                    finished_run(root, config, acc)
    finished_run(root, TrainConfig(dataset="cifar10", method="none"), 94.9)
    finished_run(root, TrainConfig(dataset="cifar10", method="region", k=4), 95.9)
    finished_run(root, TrainConfig(dataset="cifar10", method="region", epochs=200, seed=9), 95.5)
    finished_run(root, quick_config(TrainConfig(dataset="cifar10", method="region")), 40.0)
    return root


def _table_output(root, *options) -> str:
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["table", "--runs-dir", str(root), *options]) == 0
    return out.getvalue()


def test_regionmix_table_golden(golden_runs):
    """The paper's layout, ours beside the paper's with differences and marks, captions
    that say how each number was made. Regenerate with REGIONMIX_GOLDEN=1 after a
    deliberate change, and read the diff."""
    import os

    got = _table_output(golden_runs)
    golden = GOLDEN / "regionmix_table.md"
    if os.environ.get("REGIONMIX_GOLDEN"):
        golden.write_text(got)
    assert got == golden.read_text()


def test_the_golden_numbers_are_right(golden_runs):
    """The golden file's cells, recomputed from first principles."""
    tables = {t.number: t for t in paper_tables(collect_runs(golden_runs))}
    cells = tables[1].cells.set_index(["dataset", "label"])
    region = cells.loc[("CIFAR-10", "Region Mixup (k=2)")]
    ours = pd.Series([95.0, 95.1, 95.2])
    assert region["mean"] == pytest.approx(ours.mean()) and region["n"] == 3
    assert region["diff"] == pytest.approx(95.1 - 96.19)
    se = (ours.std() ** 2 / 3 + 0.05**2 / 3) ** 0.5
    assert region["significant"] and abs(region["diff"]) > 2 * se
    close = cells.loc[("CIFAR-100", "CutMix")]
    assert close["diff"] == pytest.approx(-0.03) and not close["significant"]
    assert not cells.loc[("Tiny ImageNet", "CutMix"), "significant"]  # Δ = 0
    between = cells.loc[("CIFAR-10", "Mixup (k=1)")]
    se = (0.2**2 / 3 + 0.12**2 / 3) ** 0.5
    assert se < between["diff"] < 2 * se and not between["significant"]
    assert cells.loc[("Tiny ImageNet", "Mixup (k=1)"), "significant"]
    # Columns the paper has no number for carry ours alone.
    frame = tables[1].frame
    assert list(frame["No mixing"].columns) == ["ours"]
    assert frame.loc["CIFAR-10", ("Region Mixup (k=4)", "ours")] == "95.90 (1)"
    assert frame.loc["CIFAR-10", ("Region Mixup (k=2, epochs=200)", "ours")] == "95.50 (1)"
    # Table 2 as printed: CIFAR-100, w/o then with the clean CE term.
    assert tables[2].frame.index.tolist() == [
        ("CIFAR-100", "w/o clean CE"), ("CIFAR-100", "with clean CE"),
    ]  # fmt: skip
    assert tables[2].frame.loc[("CIFAR-100", "w/o clean CE"), ("Mixup (k=1)", "paper")] == (
        "77.50 ± 0.22"
    )


def test_columns_come_in_the_papers_order_then_the_others(golden_runs):
    runs = collect_runs(golden_runs)
    table = paper_tables(runs[~runs["quick"]])[0]
    assert list(dict.fromkeys(table.frame.columns.get_level_values(0))) == [
        "CutMix", "Mixup (k=1)", "Region Mixup (k=2)", "Region Mixup (k=2, epochs=200)",
        "Region Mixup (k=4)", "No mixing",
    ]  # fmt: skip
    assert table.frame.index.tolist() == ["CIFAR-10", "CIFAR-100", "Tiny ImageNet"]


def test_quick_runs_never_share_a_cell(golden_runs):
    runs = collect_runs(golden_runs)
    assert "Region Mixup (k=2, quick)" in set(runs["label"])
    table1 = paper_tables(runs)[0]
    assert table1.frame.loc["CIFAR-10", ("Region Mixup (k=2)", "ours")].endswith("(3)")
    assert table1.frame.loc["CIFAR-10", ("Region Mixup (k=2, quick)", "ours")] == "40.00 (1)"
    out = _table_output(golden_runs)
    assert "quick" not in out.split("(1 quick run(s) left out")[0]
    assert "Region Mixup (k=2, quick)" in _table_output(golden_runs, "--include-quick")


def test_best_epoch_accuracy_is_an_option(golden_runs):
    runs = collect_runs(golden_runs, accuracy="best")
    final = collect_runs(golden_runs)
    assert (runs["test_acc"] - final["test_acc"]).round(6).eq(1.0).all()
    assert "best epoch" in _table_output(golden_runs, "--accuracy", "best")


def test_attack_tables_say_how_the_numbers_were_made(golden_runs):
    tables = [t for t in paper_tables(collect_runs(golden_runs)) if t.number in (3, 4)]
    assert [t.number for t in tables] == [3, 4]
    fgsm, square = tables
    assert (
        "FGSM adversarial examples (%): ε = 8/255 (not stated by the paper), on 10000 test "
        "images" in fgsm.caption
    )
    assert "100 queries, p_init 0.8, margin loss, attack seed 0" in square.caption
    assert "on 10000 test images" in square.caption
    assert fgsm.frame.loc["CIFAR-100", ("Region Mixup (k=2)", "paper")] == "22.77 ± 1.20"
    assert fgsm.frame.loc["CIFAR-100", ("Region Mixup (k=2)", "Δ")] == "+0.00"


def test_attacks_with_other_settings_get_their_own_table_and_no_paper_column(tmp_path):
    config = TrainConfig(dataset="cifar10", method="region")
    finished_run(tmp_path, config, 96.0, [
        {"kind": "fgsm", "eps": 4 / 255, "n_images": 500, "accuracy": 60.0},
        {"kind": "fgsm", "eps": EPS, "n_images": 500, "accuracy": 50.0},
    ])  # fmt: skip
    tables = [t for t in paper_tables(collect_runs(tmp_path)) if t.number == 3]
    assert len(tables) == 2
    four, eight = sorted(tables, key=lambda t: "4/255" not in t.caption)
    assert "ε = 4/255, on 500 test images" in four.caption
    assert list(four.frame.columns.get_level_values(1)) == ["ours"]
    assert list(eight.frame.columns.get_level_values(1)) == ["ours", "paper", "Δ"]


def test_an_evaluation_no_table_places_is_an_error(tmp_path):
    run = finished_run(tmp_path, TrainConfig(dataset="cifar10"), 96.0,
                       [{"kind": "odd", "eps": EPS, "n_images": 10, "accuracy": 1.0}])  # fmt: skip
    with pytest.raises(
        ValueError, match=re.escape(f"{run.path / 'eval.json'}: evaluation kind 'odd'")
    ):
        paper_tables(collect_runs(tmp_path))


def test_the_committed_bundle_reads_as_records_once_each():
    """results/cifar10-cpu-gated (eval.json format 2): every record in the long-form frame
    once, the run's columns beside it, a record's seed as attack_seed."""
    bundle = Path(__file__).parent.parent / "results" / "cifar10-cpu-gated"
    runs = collect_runs(runs=find_runs(bundle))
    evaluations = collect_evaluations(runs)
    files = [json.loads((Path(p) / "eval.json").read_text()) for p in runs["path"]]
    assert {f["format"] for f in files} == {2} and len(runs) == 30
    assert len(evaluations) == sum(len(f["records"]) for f in files)
    assert evaluations["kind"].value_counts().to_dict() == {
        "fgsm": 150, "pgd": 80, "clean": 50, "calibration": 30, "square": 20,
    }  # fmt: skip
    square = evaluations[evaluations["kind"] == "square"]
    assert (square["attack_seed"] == 0).all() and (square["label"] != "").all()
    assert "seed" in evaluations and set(evaluations["seed"]) == {0, 1, 2, 3, 4}


def test_a_stored_record_replaces_the_one_with_its_settings(tmp_path):
    run = finished_run(tmp_path, TrainConfig(dataset="cifar10"), 96.0, [
        {"kind": "clean", "n_images": 1000, "accuracy": 95.0},
        {"kind": "fgsm", "eps": EPS, "n_images": 1000, "accuracy": 50.0},
    ])  # fmt: skip
    run.add_evaluation({"kind": "fgsm", "eps": EPS, "n_images": 1000, "accuracy": 51.0})
    stored = json.loads((run.path / "eval.json").read_text())
    assert stored["format"] == 2 and len(stored["records"]) == 2
    fgsm = collect_evaluations(collect_runs(tmp_path)).set_index("kind").loc["fgsm"]
    assert fgsm["accuracy"] == 51.0


def test_collect_evaluations_is_long_form(golden_runs):
    runs = collect_runs(golden_runs)
    evaluations = collect_evaluations(runs[runs["dataset"] == "cifar10"])
    assert set(evaluations["kind"]) == {"clean", "fgsm", "square"}
    assert len(evaluations) == 3 * 3 * 3
    assert (evaluations["n_images"] == 10000).all()


def test_exports(golden_runs):
    table = paper_tables(collect_runs(golden_runs))[1]
    markdown = to_markdown(table.frame)
    assert markdown.splitlines()[0].startswith(
        "| dataset | CE term | CutMix ours | CutMix paper | CutMix Δ"
    )
    latex = to_latex(table.frame)
    assert r"\multicolumn{3}{c}{CutMix}" in latex and r"$\pm$" in latex and r"$\Delta$" in latex


def test_published_tables_alone():
    tables = published_tables()
    assert [t.number for t in tables] == [1, 2, 3, 4]
    assert tables[0].frame.loc["CIFAR-10", ("Region Mixup (k=2)", "paper")] == "96.19 ± 0.05"
    assert list(tables[0].frame.columns.get_level_values(1)) == ["paper"] * 3


def test_column_labels_name_every_setting_that_differs_from_the_papers():
    assert column_label(TrainConfig(method="mixup")) == "Mixup (k=1)"
    assert column_label(TrainConfig(method="region")) == "Region Mixup (k=2)"
    assert column_label(TrainConfig(method="none", alpha=0.2)) == "No mixing"
    changed = TrainConfig(method="region", k=4, alpha=0.4, concat_forward=True, epochs=200)
    assert column_label(changed) == "Region Mixup (k=4, α=0.4, one forward pass, epochs=200)"
    assert column_label(TrainConfig(method="cutmix", alpha=0.5)) == "CutMix (α=0.5)"
    assert column_label(TrainConfig(clean_ce=False), with_ce=True) == (
        "Region Mixup (k=2, w/o clean CE)"
    )
    assert column_label(dataclasses.replace(quick_config(TrainConfig()), width=4)) == (
        "Region Mixup (k=2, quick, width=4)"
    )


def test_table_command_errors(tmp_path, capsys):
    assert main(["table", "--runs-dir", str(tmp_path / "empty")]) == 2
    finished_run(tmp_path, quick_config(TrainConfig(dataset="shapes")), 40.0)
    assert main(["table", "--runs-dir", str(tmp_path)]) == 2
    assert "--include-quick" in capsys.readouterr().err
    assert main(["table", "--runs-dir", str(tmp_path), "--include-quick"]) == 0
    assert len(find_runs(tmp_path)) == 1


def test_table_figure(golden_runs, tmp_path):
    figure = tmp_path / "tables.png"
    out = _table_output(golden_runs, "--figure", str(figure))
    assert f"figure: {figure}" in out and figure.stat().st_size > 20_000


# ------------------------------------------------------------------ paired comparisons


def paired_runs(root, n_images=2000, seeds=(0, 1, 2)) -> None:
    """CIFAR-10 runs of Region Mixup and Mixup whose clean-test predictions are stored:
    Mixup right on 95% of the images, Region Mixup on the same images and on 20 + 10 s
    more (seed s), so Δ = (20 + 10 s) / 2000 = 1.0, 1.5, 2.0 points."""
    labels = np.arange(n_images) % 10
    for seed in seeds:
        wrong = np.zeros(n_images, bool)
        wrong[: n_images // 20] = True  # Mixup wrong on the first 5%
        for method, extra in (("mixup", 0), ("region", 20 + 10 * seed)):
            missed = wrong.copy()
            missed[:extra] = False
            predicted = np.where(missed, (labels + 1) % 10, labels)
            acc = 100 * float((predicted == labels).mean())
            run = finished_run(root, TrainConfig(dataset="cifar10", method=method, seed=seed), acc)
            run.add_evaluation({"kind": "clean", "n_images": n_images, "accuracy": acc},
                               Predictions.from_outputs(predicted, labels))  # fmt: skip


def test_compare_gives_the_paired_difference_its_interval_and_a_verdict(tmp_path):
    paired_runs(tmp_path)
    comparison = compare(collect_runs(tmp_path), "region:mixup", str(tmp_path))
    (row,) = comparison.cells.to_dict("records")
    assert row["delta"] == pytest.approx(1.5) and row["seeds"] == 3
    assert row["low"] > 0 and row["p"] < 0.05
    assert row["paper_delta"] == pytest.approx(96.19 - 95.89)
    assert row["verdict"] == "supported"
    reverse = compare(collect_runs(tmp_path), "mixup:region").cells.iloc[0]
    assert reverse["delta"] == pytest.approx(-1.5) and reverse["verdict"] == "supported"
    text = _table_output(tmp_path, "--compare", "region:mixup")
    assert "| +1.50 | [" in text and "supported" in text and "paired t-test" in text


def test_a_claim_is_judged_in_its_declared_direction_never_the_datas(tmp_path):
    """The swap test: a declared "A > B" with no paper number, on runs where A < B
    clearly, is contradicted; the same runs with the claim reversed support it; no
    claim is supported both ways round."""
    paired_runs(tmp_path, seeds=(0, 1, 2, 3, 4))  # Region Mixup above Mixup by 1-3 points
    runs = collect_runs(tmp_path)

    def said(a, b, direction=1):
        claim = Claim("cifar10", a, b, "clean", direction=direction, source="swap test")
        (row,) = judge(runs, [claim]).cells.to_dict("records")
        assert row["p"] < 0.01 and row["paper_delta"] != row["paper_delta"]  # NaN: none
        return row["verdict"]

    assert said("mixup", "region") == "contradicted"
    assert said("region", "mixup") == "supported"
    assert said("mixup", "region", direction=-1) == "supported"
    assert said("region", "mixup", direction=-1) == "contradicted"


def test_a_family_of_claims_is_corrected_with_holm(tmp_path):
    paired_runs(tmp_path)  # 3 seeds: t-test p = 0.035 for Region Mixup > Mixup
    runs = collect_runs(tmp_path)
    one = Claim("cifar10", "region", "mixup", "clean", source="holm test")
    alone = judge(runs, [one]).cells.iloc[0]
    assert alone["p_holm"] == pytest.approx(alone["p"]) and alone["verdict"] == "supported"
    # The same claim twice more (FGSM, which these runs lack, adds no p to the family):
    fgsm = Claim("cifar10", "region", "mixup", "fgsm", (("eps", 8 / 255),), source="holm test")
    mirrored = Claim("cifar10", "mixup", "region", "clean", direction=-1, source="holm test")
    family = judge(runs, [one, fgsm, mirrored]).cells
    judged = family[family["p"].notna()]
    assert list(judged["p_holm"]) == pytest.approx([2 * alone["p"]] * 2)
    assert list(judged["verdict"]) == ["not resolved"] * 2  # 0.07: not below 0.05
    assert list(judged["plan"]) == ["no effect declared"] * 2
    assert family["verdict"].iloc[1].startswith("not evaluated: run `regionmix attack")
    planned = judge(runs, [dataclasses.replace(c, effect=1.0) for c in (one, mirrored)]).cells
    assert list(planned["plan"].str.match(r"about \d+ \(range \d+-[\d,]+\)")) == [True] * 2


def test_compare_all_judges_each_claim_and_says_what_is_not_evaluated(tmp_path):
    paired_runs(tmp_path)
    cells = compare(collect_runs(tmp_path), "all", str(tmp_path)).cells
    table1 = cells[cells["table"] == 1]
    assert list(table1["verdict"]) == ["supported"]  # Region > Mixup; no CutMix runs
    fgsm = cells[cells["table"] == 3].iloc[0]
    assert (
        fgsm["verdict"]
        == f"not evaluated: run `regionmix attack --attack fgsm --runs-dir {tmp_path}`"
    )


def test_runs_evaluated_before_predictions_were_kept_still_tabulate_and_say_what_to_rerun(
    golden_runs,
):
    assert "Table 1" in _table_output(golden_runs)
    text = _table_output(golden_runs, "--compare", "region:mixup")
    assert f"re-run `regionmix calibration --runs-dir {golden_runs}` for paired numbers" in text
    assert f"`regionmix attack --attack fgsm --runs-dir {golden_runs}`" in text


def test_compare_names_both_runs_when_their_test_images_differ(tmp_path, capsys):
    paired_runs(tmp_path, seeds=(0,))
    run = find_runs(tmp_path)[0]  # mixup seed 0
    labels = np.arange(2000)[::-1] % 10
    run.add_evaluation({"kind": "clean", "n_images": 2000, "accuracy": 0.0},
                       Predictions.from_outputs(labels, labels))  # fmt: skip
    assert main(["table", "--runs-dir", str(tmp_path), "--compare", "region:mixup"]) == 2
    error = capsys.readouterr().err
    assert "mixup-a1/seed0" in error and "region-k2-a1/seed0" in error
    assert "different test images" in error


def test_the_forest_plot_draws_one_row_per_paired_comparison(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from regionmix_utils.viz import claims_forest, seed_planner_figure

    paired_runs(tmp_path)
    cells = compare(collect_runs(tmp_path), "all", str(tmp_path)).cells
    figure = claims_forest(cells)
    assert len(figure.axes[0].get_yticks()) == int(cells["delta"].notna().sum()) == 1
    planner = seed_planner_figure({"ours": 0.3, "paper": 0.13}, marks={"paper Δ": 0.3})
    assert len(planner.axes[0].lines) == 3  # two curves and the mark


def test_compare_reads_calibration_as_clean_and_averages_corruptions_per_image(tmp_path):
    # Two seeds, 10 images. Clean (from calibration records): A right on all, B on 8.
    # Corruptions (2 settings): A right on images 0-5 under both; B on 0-5 under the
    # first, 0-3 under the second -> per image B's share is 1, .., 1, .5, .5, 0, ...:
    # Δ = (6 - 5) / 10 = 10 points.
    labels = np.arange(10) % 10
    for seed in (0, 1):
        for method in ("region", "mixup"):
            run = finished_run(tmp_path, TrainConfig(dataset="cifar10", method=method, seed=seed),
                               50.0)  # fmt: skip
            clean = labels.copy() if method == "region" else np.where(labels < 8, labels, 0)
            run.add_evaluation({"kind": "calibration", "n_images": 10, "holdout": 0, "ece": 1.0},
                               Predictions.from_outputs(clean, labels))  # fmt: skip
            for corruption, right in (("fog", 6), ("snow", 6 if method == "region" else 4)):
                predicted = np.where(np.arange(10) < right, labels, (labels + 1) % 10)
                record = {"kind": "corruption", "corruption": corruption, "severity": 1,
                          "source": "released", "n_images": 10, "accuracy": 0.0}  # fmt: skip
                run.add_evaluation(record, Predictions.from_outputs(predicted, labels))
    cells = compare(collect_runs(tmp_path), "region:mixup").cells.set_index("metric")
    assert cells.loc["clean test", "delta"] == pytest.approx(20.0)
    assert cells.loc["common corruptions (mean)", "delta"] == pytest.approx(10.0)
    assert cells.loc["common corruptions (mean)", "mean_b"] == pytest.approx(50.0)


def test_plugin_evaluations_get_tables_comparisons_and_rerun_hints_from_their_declaration(
    tmp_path,
):
    """Two registered evaluations with settings of their own, one with records and one
    without (which once crashed every table with KeyError on its setting): the one with
    records gets a table per setting and a paired comparison, and runs without per-image
    predictions are told the command its declaration gives."""
    labels = np.arange(20) % 10
    shifted = Evaluation("shifted", "Accuracy shifted", "shifted images", keys=("shift",),
                         rerun="regionmix shift-images")  # fmt: skip
    scaled = Evaluation("scaled", "Accuracy scaled", "scaled images", keys=("quality",))
    with RECORD_KINDS.temporary(shifted), RECORD_KINDS.temporary(scaled):
        for method, right in (("region", 15), ("mixup", 10)):
            for seed in (0, 1):
                config = TrainConfig(dataset="shapes", method=method, seed=seed)
                run = finished_run(tmp_path, config, 50.0)
                predicted = np.where(np.arange(20) < right + seed, labels, (labels + 1) % 10)
                for shift, kept in ((1, Predictions.from_outputs(predicted, labels)), (3, None)):
                    run.add_evaluation({"kind": "shifted", "shift": shift, "n_images": 20,
                                        "accuracy": 5.0 * (right + seed)}, kept)  # fmt: skip
        runs = collect_runs(tmp_path)
        tables = [t for t in paper_tables(runs) if t.number == 0]
        assert [t.setting for t in tables] == [
            {"kind": "shifted", "shift": shift, "n_images": 20} for shift in (1, 3)
        ]
        assert tables[0].caption.startswith(
            "Accuracy shifted (beyond the paper, shift=1): shifted images, on 20 test images."
        )
        # Rows are titled by the dataset's spec ("shapes" -> "Shapes").
        assert tables[1].frame.loc["Shapes", ("Region Mixup (k=2)", "ours")] == "77.50 ± 3.54 (2)"
        one, three = compare(runs, "region:mixup", "RUNS").cells.to_dict("records")
    assert one["metric"] == three["metric"] == "Accuracy shifted"
    assert one["delta"] == pytest.approx(25.0) and one["seeds"] == 2
    assert three["verdict"] == (
        "no per-image predictions in 4 run(s): re-run `regionmix shift-images --runs-dir RUNS` "
        "for paired numbers"
    )
