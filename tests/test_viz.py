"""Figures and the mixing explorer's widget callbacks (plain functions, no kernel needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from regionmix_utils.data import shapes
from regionmix_utils.mixing import cutmix, region_mixup
from regionmix_utils.viz import (
    MixingExplorer,
    beta_figure,
    cam_figure,
    mixing_figure,
    training_curves,
)


@pytest.fixture(scope="module")
def batch():
    data = shapes(8, 32, seed=0)
    return data.images.float() / 255, data.labels, data.classes


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def grid_lines(ax) -> int:
    return sum(
        1
        for line in ax.get_lines()
        if len(set(line.get_xdata())) == 1 or len(set(line.get_ydata())) == 1
    )


def test_explorer_k_slider_changes_the_grid_and_the_lambdas(batch):
    explorer = MixingExplorer(*batch, k=2)
    assert explorer.mixed.lam.shape == (2, 2) and grid_lines(explorer.ax_image) == 2
    explorer.set_k(4)
    assert explorer.mixed.lam.shape == (4, 4) and grid_lines(explorer.ax_image) == 6
    assert explorer.ax_image.get_title().startswith("k = 4")
    # The histogram holds one count per tile.
    assert sum(p.get_height() for p in explorer.ax_lam.patches) == 16


def test_explorer_alpha_slider_changes_the_lambda_distribution(batch):
    explorer = MixingExplorer(*batch, k=8, alpha=0.05)
    extreme = ((explorer.mixed.lam < 0.05) | (explorer.mixed.lam > 0.95)).float().mean()
    explorer.set_alpha(20.0)
    middle = ((explorer.mixed.lam > 0.3) & (explorer.mixed.lam < 0.7)).float().mean()
    assert extreme > 0.7 and middle > 0.7
    assert "α = 20" in explorer.ax_image.get_title()


def test_explorer_soft_label_bars_show_the_mixed_target(batch):
    explorer = MixingExplorer(*batch, k=2)
    heights = torch.tensor([p.get_height() for p in explorer.ax_label.patches], dtype=torch.float32)
    torch.testing.assert_close(heights, explorer.mixed.targets[0])


def test_resample_draws_new_parameters_and_seeds_replay(batch):
    explorer = MixingExplorer(*batch, k=2, seed=5)
    first = explorer.mixed.lam.clone()
    explorer.resample()
    assert not torch.equal(first, explorer.mixed.lam)
    explorer.seed = 5
    explorer.redraw()
    assert torch.equal(first, explorer.mixed.lam)


def test_widgets_are_wired_to_the_callbacks(batch):
    explorer = MixingExplorer(*batch, k=2)
    controls, _figure_output = explorer.widget().children
    k_slider, alpha_slider, button = controls.children
    k_slider.value = 3
    assert explorer.mixed.lam.shape == (3, 3)
    alpha_slider.value = 0.1
    assert explorer.alpha == pytest.approx(0.1)
    seed = explorer.seed
    button.click()
    assert explorer.seed == seed + 1


def test_mixing_figure_rows_and_cutmix_box(batch):
    images, labels, classes = batch
    gen = torch.Generator().manual_seed(0)
    results = {
        "CutMix": cutmix(images, labels, 1.0, 10, gen),
        "Region k=2": region_mixup(images, labels, 2, 1.0, 10, gen),
    }
    fig = mixing_figure(images, results, classes, n_show=3)
    assert len(fig.axes) == 9
    cut_ax = fig.axes[3]
    assert len(cut_ax.patches) == 1  # the pasted box
    assert "λ=" in " ".join(t.get_text() for t in fig.axes[6].texts)


def test_other_figures():
    assert len(beta_figure([0.2, 1.0, 4.0], n_samples=200).axes[0].get_lines()) == 3
    images = torch.rand(2, 3, 8, 8)
    fig = cam_figure(
        images,
        {"mixup": torch.rand(2, 8, 8), "region": torch.rand(2, 8, 8)},
        torch.tensor([[0, 0, 4, 4]] * 2),
    )
    assert len(fig.axes) == 6
    rows = [{"epoch": 1, "train_loss": 2.0, "test_acc": 30.0}, {"epoch": 2, "train_loss": 1.5}]
    loss_ax, acc_ax = training_curves({"region": rows}).axes
    assert (
        len(loss_ax.get_lines()[0].get_xdata()) == 2 and len(acc_ax.get_lines()[0].get_xdata()) == 1
    )
