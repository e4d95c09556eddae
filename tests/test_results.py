"""Runs on disk -> tables of mean ± std over seeds."""

from __future__ import annotations

import dataclasses
import json

import pytest

from regionmix_utils.data import load_dataset
from regionmix_utils.results import (
    attack_results,
    collect_runs,
    summarise,
    to_latex,
    to_markdown,
)
from regionmix_utils.train import run_dir, train

from .conftest import tiny_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    splits = load_dataset("shapes", n_train=128, n_test=50)
    base = tiny_config(epochs=1, n_train=128, n_test=50)
    for method in ("mixup", "region"):
        for seed in (0, 1):
            config = dataclasses.replace(base, method=method, seed=seed)
            train(config, root, device="cpu", splits=splits, progress=False)
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
    assert long.to_dict("records") == [
        {"dataset": "shapes", "method": "Region Mixup (k=2)", "seed": 0, "accuracy": 12.5,
         "attack": "fgsm", "eps": 0.03}
    ]  # fmt: skip
