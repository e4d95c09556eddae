"""The ablation layer of notebook 06: the grid of runs, one row per run, seeds combined,
and the explorer's callbacks through its real widgets."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import math

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from regionmix_utils.ablations import ablation_configs, ablation_frame, aggregate, k_order
from regionmix_utils.config import TrainConfig
from regionmix_utils.runs import Run
from regionmix_utils.viz import AblationExplorer, ablation_overview
from regionmix_utils.viz.ablations import lam_mode_figure

from .test_results import finished_run


def test_the_grid_holds_every_question():
    configs = ablation_configs(["cifar10"], (1, 2), (0.4, 1.0), (0, 1))
    region = [c for c in configs if c.method == "region" and c.clean_ce]
    assert {(c.k, c.alpha) for c in region} == {(1, 0.4), (1, 1.0), (2, 0.4), (2, 1.0)}
    ablated = [c for c in configs if not c.clean_ce]
    assert {(c.k, c.alpha) for c in ablated} == {(1, 1.0), (2, 1.0)}
    assert sum(c.method == "region-random" for c in configs) == 2  # one a seed
    assert len(configs) == 2 * (4 + 2 + 1) and all(c.epochs == 400 for c in configs)
    quick = ablation_configs(["shapes"], (2,), (1.0,), (0,), TrainConfig(epochs=2, n_train=500))
    assert {(c.epochs, c.n_train) for c in quick} == {(2, 500)}
    assert {c.lam_mode for c in configs} == {"batch"}  # the paper's Algorithm 1 by default
    both = ablation_configs(["cifar10"], (1, 2), (0.4, 1.0), (0,), lam_modes=("batch", "sample"))
    per_sample = [c for c in both if c.lam_mode == "sample"]
    assert {(c.k, c.alpha, c.clean_ce, c.method) for c in per_sample} == {
        (1, 1.0, True, "region"),
        (2, 1.0, True, "region"),
    }


@pytest.fixture(scope="module")
def ablation_runs(tmp_path_factory) -> list[Run]:
    """Finished runs written as training writes them, with known accuracies: test
    accuracy 50 + 10 k + 10 α (+1 for seed 1), 5 less without the clean term, 3 more
    with λ per sample, 70 for random grids; FGSM accuracy half of it."""
    root = tmp_path_factory.mktemp("ablation-runs")
    runs = []
    grid = ablation_configs(["cifar10", "shapes"], (1, 2, 4), (0.4, 1.0), (0, 1),
                            lam_modes=("batch", "sample"))  # fmt: skip
    for config in grid:
        if config.method == "region-random":
            acc = 70.0 + config.seed
        else:
            acc = 50 + 10 * config.k + 10 * config.alpha + config.seed - 5 * (not config.clean_ce)
            acc += 3 * (config.lam_mode == "sample")
        fgsm = [{"kind": "fgsm", "eps": 8 / 255, "n_images": 100, "accuracy": acc / 2}]
        runs.append(finished_run(root, config, acc, fgsm))
    return runs


def test_one_row_per_run_with_its_k_metric_and_fgsm(ablation_runs):
    frame = ablation_frame(ablation_runs)
    assert len(frame) == len(ablation_runs)
    row = frame[(frame["dataset"] == "cifar10") & (frame["k"] == "4") & (frame["alpha"] == 0.4)
                & frame["clean_ce"] & (frame["seed"] == 1)].iloc[0]  # fmt: skip
    assert row["test_acc"] == pytest.approx(95.0) and row["fgsm"] == pytest.approx(47.5)
    assert set(frame.loc[frame["method"] == "region-random", "k"]) == {"random"}
    assert k_order(frame["k"]) == ["1", "2", "4", "random"]


def test_seeds_combine_as_asked(ablation_runs):
    frame = ablation_frame(ablation_runs)
    frame = frame[frame["lam_mode"] == "batch"]
    mean = aggregate(frame[frame["clean_ce"]], ["dataset", "k", "alpha"], "test_acc")
    cell = mean[(mean["dataset"] == "shapes") & (mean["k"] == "2") & (mean["alpha"] == 1.0)]
    assert cell["value"].item() == pytest.approx(80.5) and cell["n"].item() == 2
    assert cell["std"].item() == pytest.approx(math.sqrt(0.5))
    best = aggregate(frame[frame["clean_ce"]], ["dataset", "k", "alpha"], "test_acc", "max")
    assert best["value"].max() == pytest.approx(101.0) and best["std"].isna().all()
    with pytest.raises(ValueError, match="how must be one of"):
        aggregate(frame, ["k"], "test_acc", "sum")


def _heatmap(explorer) -> list[list[str]]:
    return [t.get_text().split("\n")[0] for t in explorer.ax_heat.texts]


def test_the_explorers_widgets_drive_its_figure(ablation_runs):
    explorer = AblationExplorer(ablation_frame(ablation_runs))
    controls, seeds, _figure = explorer.widget().children
    dataset, metric = controls.children
    assert explorer.dataset == "cifar10"
    # k x α, clean CE on: 50 + 10 k + 10 α, mean of seeds 0 and 1.
    assert _heatmap(explorer) == ["64.5", "70.5", "74.5", "80.5", "94.5", "100.5"]
    metric.value = "fgsm"
    assert _heatmap(explorer)[0] == "32.2" and "FGSM" in explorer.ax_heat.get_title()
    seeds.value = "max"
    assert explorer.how == "max" and _heatmap(explorer)[0] == "32.5"
    dataset.value = "shapes"
    assert explorer.ax_heat.get_title().startswith("shapes")
    lines = explorer.ax_k.get_legend().get_texts()
    assert [t.get_text() for t in lines] == ["w/o clean CE", "with clean CE"]
    plt.close("all")


def test_an_explorer_without_runs_says_so():
    empty = pd.DataFrame(columns=["dataset", "method", "k", "alpha", "clean_ce", "seed",
                                  "test_acc", "fgsm"])  # fmt: skip
    explorer = AblationExplorer(empty)
    assert "no finished runs" in explorer.ax_heat.texts[0].get_text()


def test_the_overview_draws_every_dataset(ablation_runs):
    fig = ablation_overview(ablation_frame(ablation_runs))
    acc_ax, fgsm_ax = fig.axes
    assert [t.get_text() for t in acc_ax.get_legend().get_texts()] == ["cifar10", "shapes"]
    assert [t.get_text() for t in acc_ax.get_xticklabels()] == ["1", "2", "4", "random"]
    assert fgsm_ax.get_ylabel() == "FGSM accuracy (%)"
    plt.close(fig)


def test_lam_mode_rows_stay_out_of_the_grid_and_have_a_figure_of_their_own(ablation_runs):
    frame = ablation_frame(ablation_runs)
    assert set(frame["lam_mode"]) == {"batch", "sample"}
    # The explorer's heatmap is the per-tile grid: unchanged by the per-sample runs.
    explorer = AblationExplorer(frame)
    assert _heatmap(explorer) == ["64.5", "70.5", "74.5", "80.5", "94.5", "100.5"]
    fig = lam_mode_figure(frame)
    assert len(fig.axes) == 2
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["λ per tile (Algorithm 1)", "λ per tile and sample"]
    per_tile, per_sample = (bars.lines[0].get_ydata() for bars in fig.axes[0].containers)
    assert list(per_sample - per_tile) == pytest.approx([3.0, 3.0, 3.0])
    plt.close("all")
