"""Runs on disk -> tables of mean ± std over seeds."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from regionmix_utils.cli import main
from regionmix_utils.data import load_dataset
from regionmix_utils.results import (
    _eps_text,
    _method_label,
    attack_results,
    collect_runs,
    paper_tables,
    summarise,
    to_latex,
    to_markdown,
)
from regionmix_utils.train import run_dir, train

from .conftest import tiny_config

FGSM_8 = "fgsm eps=0.0313725"
SQUARE_8 = "square eps=0.0313725 queries=100 seed=0"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    splits = load_dataset("shapes", n_train=128, n_test=50)
    base = tiny_config(epochs=1, n_train=128, n_test=50)
    for method in ("mixup", "region"):
        for seed in (0, 1):
            config = dataclasses.replace(base, method=method, seed=seed)
            train(config, root, device="cpu", splits=splits, progress=False)
    (run_dir(root, dataclasses.replace(base, seed=0)) / "eval.json").write_text(
        json.dumps({"n_images": 50, "clean": 41.0, FGSM_8: 20.0, SQUARE_8: 30.0})
    )
    ablated = dataclasses.replace(base, clean_ce=False)
    train(ablated, root, device="cpu", splits=splits, progress=False)
    (run_dir(root, ablated) / "eval.json").write_text(
        json.dumps({"n_images": 50, "clean": 40.0, "fgsm eps=0.03": 12.5})
    )
    (root / "shapes" / "unfinished" / "seed0").mkdir(parents=True)  # no final.pt: ignored
    return root


def test_collect_runs_reads_every_finished_run(runs):
    table = collect_runs(runs)
    assert len(table) == 5
    assert set(table["method"]) == {"Mixup", "Region Mixup (k=2)"}
    assert table["clean_ce"].sum() == 4
    assert table["fgsm eps=0.03"].dropna().tolist() == [12.5]


def test_summary_is_mean_std_and_seed_count(runs):
    table = collect_runs(runs)
    clean = table[table["clean_ce"]]
    summary = summarise(clean)
    accs = clean[clean["method"] == "Mixup"]["test_acc"]
    cell = summary.loc["Mixup", "shapes"]
    assert cell == f"{accs.mean():.2f} ± {accs.std():.2f} (2)"
    ablation = summarise(table, by=("dataset", "method", "clean_ce"))
    assert ablation.loc[("Region Mixup (k=2)", False), "shapes"].endswith("± 0.00 (1)")
    assert "(1)" in summarise(table, value="fgsm eps=0.03").loc["Region Mixup (k=2)", "shapes"]


def test_exports(runs):
    summary = summarise(collect_runs(runs))
    markdown = to_markdown(summary)
    assert markdown.splitlines()[0] == "| method | shapes |" and "Region Mixup (k=2)" in markdown
    assert r"$\pm$" in to_latex(summary) and "\\toprule" in to_latex(summary)


def test_empty_runs_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no finished runs"):
        summarise(collect_runs(tmp_path))


def test_attack_results_in_long_form(runs):
    long = attack_results(collect_runs(runs))
    records = sorted(long.to_dict("records"), key=lambda r: r["accuracy"])
    region = {"dataset": "shapes", "method": "Region Mixup (k=2)", "seed": 0}
    assert records == [
        {**region, "accuracy": 12.5, "attack": "fgsm", "eps": 0.03},
        {**region, "accuracy": 20.0, "attack": "fgsm", "eps": 0.0313725},
        {**region, "accuracy": 30.0, "attack": "square", "eps": 0.0313725},
    ]


def test_method_labels_name_settings_that_differ_from_the_paper():
    paper = {"k": 2, "alpha": 1.0, "concat_forward": False}
    assert _method_label({**paper, "method": "mixup"}) == "Mixup"
    assert _method_label({**paper, "method": "region"}) == "Region Mixup (k=2)"
    assert _method_label({**paper, "method": "none", "alpha": 0.2}) == "No mixing"
    changed = {"method": "region", "k": 4, "alpha": 0.4, "concat_forward": True}
    assert _method_label(changed) == "Region Mixup (k=4, α=0.4, one forward pass)"
    assert _method_label({**paper, "method": "cutmix", "alpha": 0.5}) == "CutMix (α=0.5)"


def test_methods_come_in_the_papers_order():
    labels = ["Region Mixup (k=4)", "CutMix", "Mixup", "No mixing", "Region Mixup (k=2)"]
    rows = [
        {"dataset": "d", "method": m, "clean_ce": c, "test_acc": 50.0}
        for m in [*labels, "Mixup (α=0.5)"]
        for c in (True, False)
    ]
    order = ["No mixing", "Mixup", "Mixup (α=0.5)", "CutMix", "Region Mixup (k=2)"]
    assert summarise(pd.DataFrame(rows)).index.tolist() == [*order, "Region Mixup (k=4)"]
    ablation = summarise(pd.DataFrame(rows), by=("dataset", "method", "clean_ce"))
    assert ablation.index.get_level_values("method").unique().tolist()[:2] == order[:2]


def test_eps_is_written_in_255ths_where_it_is_one():
    assert [_eps_text(e) for e in (8 / 255, 0.0313725, 1 / 255, 0.0, 0.03)] == [
        "8/255", "8/255", "1/255", "0", "0.03",
    ]  # fmt: skip


def test_paper_tables(runs):
    tables = paper_tables(collect_runs(runs))
    assert list(tables) == [
        "Table 1: test accuracy (%)",
        "Table 2: test accuracy (%) with and without CE(f(x_A), y_A)",
        "Table 3: accuracy (%) under FGSM, ε = 8/255",
        "Table 4: accuracy (%) under Square, ε = 8/255, 100 queries",
    ]  # the ε = 0.03 FGSM result belongs to an ablated run: not in Table 3
    table1, table2, table3, table4 = tables.values()
    assert table1.index.tolist() == ["Mixup", "Region Mixup (k=2)"]
    assert table1.loc["Mixup", "shapes"].endswith("(2)")
    assert table2.index.names == ["method", "clean CE"]
    assert table2.index.tolist() == [("Region Mixup (k=2)", False), ("Region Mixup (k=2)", True)]
    assert table3.loc["Region Mixup (k=2)", "shapes"] == "20.00 ± 0.00 (1)"
    assert table4.loc["Region Mixup (k=2)", "shapes"] == "30.00 ± 0.00 (1)"
    with pytest.raises(ValueError, match="no finished runs"):
        paper_tables(collect_runs(runs / "nowhere"))


def test_table_command(runs, tmp_path, capsys):
    assert main(["table", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert out.count("Table ") == 4 and "| method | clean CE | shapes |" in out
    assert main(["table", "--runs-dir", str(runs), "--format", "latex"]) == 0
    assert capsys.readouterr().out.count("\\toprule") == 4

    quick = dataclasses.replace(tiny_config(epochs=1, n_train=64, n_test=20), quick=True)
    train(quick, tmp_path, device="cpu", progress=False)
    assert main(["table", "--runs-dir", str(tmp_path)]) == 2
    assert "--include-quick" in capsys.readouterr().err
    assert main(["table", "--runs-dir", str(tmp_path), "--include-quick"]) == 0
    assert "Region Mixup (k=2)" in capsys.readouterr().out
    assert main(["table", "--runs-dir", str(tmp_path / "empty")]) == 2
