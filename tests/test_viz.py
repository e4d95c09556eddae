"""Figures and the mixing explorer's widget callbacks (plain functions, no kernel needed)."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

from regionmix_utils.data import shapes
from regionmix_utils.mixing import (
    CutMixParams,
    RegionParams,
    apply_cutmix,
    apply_region_mixup,
    cutmix,
    fmix,
    gridmix,
    random_region_mixup,
    region_mixup,
    resizemix,
)
from regionmix_utils.viz import (
    AblationExplorer,
    MixingExplorer,
    beta_figure,
    cam_figure,
    every_mix,
    mixing_figure,
    mixing_story,
    tile_table,
    training_curves,
)
from regionmix_utils.viz.base import figure_png, split_labels
from regionmix_utils.viz.mixing import split_by_partners


@pytest.fixture(scope="module")
def batch():
    data = shapes(8, 32, seed=0)
    return data.images.float() / 255, data.labels, data.classes


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def self_paired(mixed, sample: int) -> bool:
    return bool((mixed.partners[..., sample] == sample).all())


def grid_lines(ax) -> int:
    return sum(
        1
        for line in ax.get_lines()
        if len(set(line.get_xdata())) == 1 or len(set(line.get_ydata())) == 1
    )


def test_explorer_k_slider_changes_the_grid_and_the_lambdas(batch):
    explorer = MixingExplorer(*batch, k=2)
    assert explorer.mixed.lam.shape == (2, 2) and grid_lines(explorer.ax_image) == 2
    explorer.update(k=4)
    assert explorer.mixed.lam.shape == (4, 4) and grid_lines(explorer.ax_image) == 6
    assert explorer.ax_image.get_title().startswith("k = 4")
    # The histogram holds one count per tile.
    assert sum(p.get_height() for p in explorer.ax_lam.patches) == 16


def test_explorer_alpha_slider_changes_the_lambda_distribution(batch):
    explorer = MixingExplorer(*batch, k=8, alpha=0.05)
    extreme = ((explorer.mixed.lam < 0.05) | (explorer.mixed.lam > 0.95)).float().mean()
    explorer.update(alpha=20.0)
    middle = ((explorer.mixed.lam > 0.3) & (explorer.mixed.lam < 0.7)).float().mean()
    assert extreme > 0.7 and middle > 0.7
    assert "α = 20" in explorer.ax_image.get_title()
    explorer.update(alpha=0.39810717)  # what a log slider step gives: titled as it reads
    assert explorer.ax_image.get_title().endswith("α = 0.398")


def test_explorer_tile_map_keeps_the_image_readable(batch):
    """At k >= 4 no text lies on the image; the tile map beside it carries λ (colour)
    and each tile's partner, and the λ histogram counts tiles in whole numbers."""
    explorer = MixingExplorer(*batch, k=4)
    assert len(explorer.ax_image.texts) == 0
    partners = [t.get_text() for t in explorer.ax_tiles.texts]
    drawn = explorer.mixed.partners[..., 0].flatten().tolist()
    assert partners == ["self" if p == 0 else f"#{p}" for p in drawn]
    assert "self" in partners  # this draw pairs a tile of #0 with #0: it keeps #0 whole
    shown = explorer.ax_tiles.images[0].get_array()
    own = drawn[0] == 0
    assert shown.shape == (32, 32) and float(shown[0, 0]) == (
        1.0 if own else float(explorer.mixed.lam[0, 0])
    )
    ticks = explorer.ax_lam.yaxis.get_major_locator()()
    assert all(float(t).is_integer() for t in ticks)


def test_explorer_toggles_stochastic_regions(batch):
    explorer = MixingExplorer(*batch, k=2, seed=1)
    explorer.update(random_grid=True)
    gh, gw = explorer.mixed.lam.shape
    assert gh in (1, 2, 4) and gw in (1, 2, 4) and explorer.mixed.edges is not None
    assert explorer.ax_image.get_title().startswith(f"random {gh} x {gw} grid")
    explorer.update(random_grid=False)
    assert explorer.mixed.lam.shape == (2, 2)


def tile_sizes(edges) -> list[int]:
    return [b - a for axis in edges for a, b in itertools.pairwise(axis)]


def test_explorer_min_side_keeps_strips_out_of_random_grids(batch):
    """Seed 0 draws one-pixel strips on 32 x 32 images when any tile is allowed; the min
    side control keeps every tile at least that thick, and the k x k grid ignores it."""
    explorer = MixingExplorer(*batch, seed=0, random_grid=True)
    assert explorer.min_side == 1 and min(tile_sizes(explorer.mixed.edges)) == 1
    explorer.update(min_side=4)
    assert min(tile_sizes(explorer.mixed.edges)) >= 4 and explorer.mixed.lam.shape == (4, 4)
    assert len(explorer.ax_tiles.texts) == 16  # every tile is wide enough for its partner
    explorer.update(random_grid=False)
    assert explorer.mixed.lam.shape == (2, 2) and explorer.mixed.edges == ((0, 16, 32),) * 2
    explorer.update(random_grid=True)
    started = MixingExplorer(*batch, seed=0, random_grid=True, min_side=4)  # from the start
    assert started.mixed.edges == explorer.mixed.edges


def test_explorer_colour_bar_says_lambda_is_the_weight_of_the_image_itself(batch):
    explorer = MixingExplorer(*batch, k=2, sample=3)
    assert explorer._colorbar.ax.get_ylabel() == "λ = weight of #3 itself"
    explorer.update(k=4)  # redrawn, still labelled once
    assert explorer._colorbar.ax.get_ylabel() == "λ = weight of #3 itself"


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
    regions, controls, _figure = explorer.widget().children
    grid, min_side = regions.children
    k_slider, alpha_slider, button = controls.children
    assert min_side.disabled and (min_side.min, min_side.max) == (1, 8)  # 4 x 8 = 32 pixels
    k_slider.value = 3
    assert explorer.mixed.lam.shape == (3, 3)
    grid.value = True
    assert explorer.random_grid and k_slider.disabled and not min_side.disabled
    min_side.value = 8
    assert explorer.min_side == 8 and min(tile_sizes(explorer.mixed.edges)) >= 8
    grid.value = False
    assert not explorer.random_grid and not k_slider.disabled and min_side.disabled
    alpha_slider.value = 0.1
    assert explorer.alpha == pytest.approx(0.1)
    seed = explorer.seed
    button.click()
    assert explorer.seed == seed + 1


def widget_tree(widget):
    """The widget and everything under it (``.children``, recursively)."""
    yield widget
    for child in getattr(widget, "children", ()):
        yield from widget_tree(child)


def ablation_rows() -> pd.DataFrame:
    """``ablation_frame`` rows of one dataset, k in (1, 2) x α in (0.4, 1.0), two seeds."""
    rows = [
        {"dataset": "shapes", "method": "region", "k": str(k), "alpha": alpha, "clean_ce": True,
         "lam_mode": "batch", "seed": seed, "test_acc": 50 + 10 * k + 10 * alpha + seed,
         "fgsm": 20 + 5 * k + seed}
        for k in (1, 2) for alpha in (0.4, 1.0) for seed in (0, 1)
    ]  # fmt: skip
    return pd.DataFrame.from_records(rows)


def explorer_widget(kind: str, batch):
    """(explorer, its widget, the control whose change must redraw, a new value for it)."""
    if kind == "mixing":
        explorer = MixingExplorer(*batch, k=2)
        widget = explorer.widget()
        return explorer, widget, widget.children[1].children[0], 4  # the k slider
    explorer = AblationExplorer(ablation_rows())
    widget = explorer.widget()
    return explorer, widget, widget.children[0].children[1], "fgsm"  # the metric dropdown


@pytest.mark.parametrize("kind", ["mixing", "ablation"])
def test_explorers_show_their_figure_as_an_image_widget_never_an_output(kind, batch):
    """Classic Notebook with ipywidgets 7.7.1 (Colab's) and widgetsnbextension 3.6.10 cannot
    create an Output widget's model: the whole explorer then renders as a static figure
    with no controls. The figure goes into an Image widget instead, updated in place."""
    explorer, widget, control, new_value = explorer_widget(kind, batch)
    tree = list(widget_tree(widget))
    assert not [w for w in tree if isinstance(w, widgets.Output)]
    images = [w for w in tree if isinstance(w, widgets.Image)]
    assert len(images) == 1 and images[0].format == "png"
    image = images[0]
    before = bytes(image.value)
    assert before.startswith(b"\x89PNG") and before == figure_png(explorer.figure)
    control.value = new_value
    after = bytes(image.value)
    assert after.startswith(b"\x89PNG") and after != before
    assert after == figure_png(explorer.figure)  # the figure as it is now
    assert widget.children[-1] is image  # updated in place, not replaced


def test_moving_the_k_slider_redraws_one_figure_in_place(batch):
    """Every move redraws the explorer's one figure (closed to pyplot, so the inline
    backend never shows it a second time) and refreshes the same Image: nothing leaks."""
    explorer = MixingExplorer(*batch, k=2)
    widget = explorer.widget()
    k_slider, image = widget.children[1].children[0], widget.children[2]
    figure, n_axes, open_figures = explorer.figure, len(explorer.figure.axes), plt.get_fignums()
    seen = set()
    for step in range(12):
        k_slider.value = 1 + step % 4
        seen.add(bytes(image.value))
        assert explorer.mixed.lam.shape == (k_slider.value, k_slider.value)
    assert len(seen) == 4  # one picture per k
    assert explorer.figure is figure and len(figure.axes) == n_axes  # one colorbar, too
    assert plt.get_fignums() == open_figures and widget.children[2] is image
    assert len(explorer.ax_lam.patches) == 20  # the histogram's bars, not 12 x 20


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
    four = mixing_figure(images, {"k=4": region_mixup(images, labels, 4, 1.0, 10, gen)}, classes)
    assert len(four.axes[4].texts) == 0  # 16 labels would cover a 32 px image


def test_mixing_figure_captions_the_originals_and_fits_row_titles_in_their_rows(batch):
    images, labels, classes = batch
    gen = torch.Generator().manual_seed(0)
    long_title = "Region Mixup, random grid (sides=1,2,4)"
    results = {
        "Mixup (k=1)": region_mixup(images, labels, 1, 1.0, 10, gen),
        long_title: random_region_mixup(images, labels, (1, 2, 4), 1.0, 10, gen),
    }
    fig = mixing_figure(images, results, classes, labels=labels)
    axes = fig.axes
    assert [ax.get_xlabel() for ax in axes[:4]] == [classes[int(y)] for y in labels[:4]]
    renderer = fig.canvas.get_renderer()
    for row in range(3):
        ax = axes[4 * row]
        label, box = ax.yaxis.label.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert box.y0 <= label.y0 and label.y1 <= box.y1, f"{ax.get_ylabel()!r} runs past its row"
    assert axes[8].get_ylabel().replace("\n", " ") == long_title
    unlabelled = mixing_figure(images, results, classes)  # as before: no captions
    assert [ax.get_xlabel() for ax in unlabelled.axes[:4]] == [""] * 4


def test_a_tile_paired_with_its_own_image_says_itself_and_no_lambda(batch):
    """RandomPermute can leave a sample in place: that tile is unchanged whatever its λ,
    so its label says so and gives no λ (a λ there would read as if it mattered)."""
    images, labels, classes = batch
    partners = torch.stack([torch.arange(8), torch.arange(8).roll(1)]).view(1, 2, 8)
    lam = torch.tensor([[0.3, 0.6]])
    mixed = apply_region_mixup(images, labels, RegionParams(lam, partners), 10)
    fig = mixing_figure(images, {"1 x 2": mixed}, classes, n_show=2)
    assert [t.get_text() for t in fig.axes[2].texts] == ["itself\nunchanged", "λ=0.60\n#7"]
    assert [t.get_text() for t in fig.axes[3].texts] == ["itself\nunchanged", "λ=0.60\n#0"]
    story = mixing_story(images, mixed, classes, labels, sample=0)
    assert [t.get_text() for t in story.axes[1].texts] == ["self", "#7"]


def test_split_by_partners_puts_tile_mixes_apart_from_pasting_ones(batch):
    images, labels, _ = batch
    results = every_mix(images, labels, 10, k_values=(2, 4))
    tiles, pasted = split_by_partners(results)
    assert list(tiles) == [t for t in results if "Mixup" in t]  # Mixup, k=2, k=4, random
    assert len(tiles) == 4 and list(pasted) == ["CutMix", "GridMix", "FMix", "ResizeMix"]
    assert set(tiles) | set(pasted) == set(results) and not set(tiles) & set(pasted)


@pytest.mark.parametrize("lam_mode", ["batch", "sample"])
def test_tile_table_adds_up_to_the_soft_label(batch, lam_mode):
    """k = 3 on 32 pixels: tiles of 10, 11 and 11 pixels a side. The image keeps
    sum a_j lam_j; each tile hands a_j (1 - lam_j) to its partner's class."""
    images, labels, classes = batch
    gen = torch.Generator().manual_seed(0)
    mixed = region_mixup(images, labels, 3, 1.0, 10, gen, lam_mode=lam_mode)
    table = tile_table(mixed, 1, 32, 32, labels, classes)
    sides = [10, 11, 11]
    assert list(table.area) == pytest.approx([a * b / 1024 for a in sides for b in sides], abs=1e-4)
    lam = mixed.lam[..., 1] if lam_mode == "sample" else mixed.lam
    assert list(table.lam) == pytest.approx(lam.flatten().tolist(), abs=1e-3)
    weights = table.groupby("partner_class").partner_weight.sum().to_dict()
    own = classes[int(labels[1])]
    weights[own] = weights.get(own, 0.0) + float((table.area * table.lam).sum())
    for name, weight in weights.items():
        assert weight == pytest.approx(float(mixed.targets[1, classes.index(name)]), abs=2e-3)


def test_cutmix_paired_with_itself_says_so_and_draws_no_box(batch):
    images, labels, classes = batch
    params = CutMixParams(box=(4, 4, 20, 20), partners=torch.tensor([0, 2, 1, 3, 4, 5, 6, 7]),
                          lam_drawn=0.5)  # fmt: skip
    mixed = apply_cutmix(images, labels, params, 10)
    fig = mixing_figure(images, {"CutMix": mixed}, classes, n_show=3)
    self_ax, paired_ax = fig.axes[3], fig.axes[4]
    assert len(self_ax.patches) == 0 and self_ax.get_xlabel().startswith("self-paired")
    assert len(paired_ax.patches) == 1 and "self-paired" not in paired_ax.get_xlabel()
    assert "0.00" not in self_ax.get_xlabel()  # no zero-weight class in the caption


def test_mixing_story_draws_every_image_mixing_method(batch):
    """Tile methods show partners tile by tile; box methods the box; mask methods its edge."""
    images, labels, classes = batch
    for title, mixed in every_mix(images, labels, 10, k_values=(2,)).items():
        partners_ax = mixing_story(images, mixed, classes, labels, sample=1).axes[1]
        if mixed.mask is not None:
            assert partners_ax.get_title().startswith("partner #") and partners_ax.collections
        elif mixed.box is not None:
            assert "its box" in partners_ax.get_title() and partners_ax.patches, title
        else:
            assert partners_ax.get_title() == "partners, tile by tile", title
        plt.close("all")


def test_mixing_story_shows_the_partners_tile_by_tile(batch):
    images, labels, classes = batch
    mixed = region_mixup(images, labels, 2, 1.0, 10, torch.Generator().manual_seed(0))
    fig = mixing_story(images, mixed, classes, labels, sample=1)
    x_a, partners_ax, result_ax, label_ax = fig.axes

    def shown(ax):
        return torch.from_numpy(ax.images[0].get_array()).permute(2, 0, 1).float()

    torch.testing.assert_close(shown(x_a), images[1])
    torch.testing.assert_close(shown(result_ax), mixed.images[1])
    for i, j in ((0, 0), (1, 1)):  # each tile comes from that tile's partner
        partner = int(mixed.partners[i, j, 1])
        tile = (slice(None), slice(16 * i, 16 * i + 16), slice(16 * j, 16 * j + 16))
        torch.testing.assert_close(shown(partners_ax)[tile], images[partner][tile])
    assert [t.get_text() for t in partners_ax.texts] == [
        "self" if p == 1 else f"#{int(p)}" for p in mixed.partners[..., 1].flatten()
    ]
    heights = torch.tensor([p.get_height() for p in label_ax.patches], dtype=torch.float32)
    torch.testing.assert_close(heights, mixed.targets[1])


def test_other_figures():
    assert len(beta_figure([0.2, 1.0, 4.0], n_samples=200).axes[0].get_lines()) == 3
    images = torch.rand(2, 3, 8, 8)
    fig = cam_figure(
        images,
        {"mixup": torch.rand(2, 8, 8), "region": torch.rand(2, 8, 8)},
        torch.tensor([[0, 0, 4, 4]] * 2),
    )
    assert len(fig.axes) == 6


def test_training_curves_compare_like_with_like():
    """Clean and mixed terms on panels of their own: a run without mixing has no mixed
    line, and totals (which add the two terms) are not plotted against each other."""
    region = [
        {"epoch": 1, "train_loss": 3.0, "train_clean_loss": 1.0, "train_mixed_loss": 2.0,
         "test_acc": 30.0},
        {"epoch": 2, "train_loss": 2.5, "train_clean_loss": 0.8, "train_mixed_loss": 1.7},
    ]  # fmt: skip
    none = [{"epoch": e, "train_loss": 1.0, "train_clean_loss": 1.0, "test_acc": 40.0}
            for e in (1, 2)]  # fmt: skip
    clean_ax, mixed_ax, acc_ax = training_curves({"region": region, "none": none}).axes
    assert [list(line.get_ydata()) for line in clean_ax.get_lines()] == [[1.0, 0.8], [1.0, 1.0]]
    assert [list(line.get_ydata()) for line in mixed_ax.get_lines()] == [[2.0, 1.7]]
    assert [len(line.get_xdata()) for line in acc_ax.get_lines()] == [1, 2]
    # A run missing from a panel leaves the others' colours as they are everywhere else.
    curves = training_curves({"none": none, "region": region}).axes
    colour = {line.get_label(): line.get_color() for line in curves[2].get_lines()}
    for ax in curves:
        assert all(line.get_color() == colour[line.get_label()] for line in ax.get_lines())
    assert colour["none"] != colour["region"]


def test_mixing_figure_outlines_masks_and_boxes_of_the_new_methods(batch):
    images, labels, classes = batch
    gen = torch.Generator().manual_seed(1)
    results = {
        "GridMix": gridmix(images, labels, 1.0, 10, gen),
        "FMix": fmix(images, labels, 1.0, 10, gen),
        "ResizeMix": resizemix(images, labels, 10, gen),
        "Region, λ per sample": region_mixup(images, labels, 2, 1.0, 10, gen, lam_mode="sample"),
    }
    fig = mixing_figure(images, results, classes, n_show=2)
    grid_ax, fmix_ax, resize_ax, sample_ax = fig.axes[2], fig.axes[4], fig.axes[6], fig.axes[8]
    for ax, mixed in ((grid_ax, results["GridMix"]), (fmix_ax, results["FMix"])):
        mixed_somewhere = 0 < float(mixed.mask.mean()) < 1 and not self_paired(mixed, 0)
        assert (len(ax.collections) > 0) == mixed_somewhere  # the mask's outline
    assert len(resize_ax.patches) == 1  # pasted even into itself (a shrunk copy)
    lam = results["Region, λ per sample"].lam
    texts = " ".join(t.get_text() for t in sample_ax.texts)
    assert f"λ={float(lam[0, 0, 0]):.2f}" in texts


def test_every_mix_shows_each_image_method_and_leaves_out_in_model_ones(batch):
    images, labels, _ = batch
    labels_of = every_mix(images, labels, 10, k_values=(2,))
    assert {"GridMix", "FMix", "ResizeMix"} <= set(labels_of)
    assert not any("Manifold" in label for label in labels_of)


# ------------------------------------------------------------------ labels that differ


def test_split_labels_takes_out_the_words_every_label_shares():
    labels = ["Mixup (k=1, epochs=20, milestones=(3, 5))", "CutMix (epochs=20, milestones=(3, 5))",
              "Region Mixup (k=2, epochs=20, milestones=(3, 5), w/o clean CE)"]  # fmt: skip
    short = ["Mixup (k=1)", "CutMix", "Region Mixup (k=2, w/o clean CE)"]
    assert split_labels(labels) == (short, "epochs=20, milestones=(3, 5)")
    assert split_labels(["No mixing", "CutMix (epochs=20)"]) == (
        ["No mixing", "CutMix (epochs=20)"], ""
    )  # fmt: skip


def _attack_rows() -> pd.DataFrame:
    """FGSM and PGD-10 records of two configurations that share their recipe."""
    rows = []
    for label in ("Mixup (k=1, epochs=20, width=16)", "Region Mixup (k=2, epochs=20, width=16)"):
        for seed in (0, 1):
            for kind, steps in (("fgsm", None), ("pgd", 10)):
                for eps in (1, 2, 4):
                    rows.append({"label_ce": label, "path": f"{label}/{seed}", "kind": kind,
                                 "steps": steps, "eps": eps / 255, "n_images": 100,
                                 "accuracy": 50.0 - 10 * eps - (steps or 0) / 10})  # fmt: skip
    return pd.DataFrame(rows)


def test_eps_curves_title_each_panel_by_what_differs_and_say_the_recipe_once():
    """Seen in JupyterLab at 1,400 px: panel titles that carry the whole recipe run into
    each other. They name the configuration; the shared recipe is said once above."""
    from regionmix_utils.viz import eps_curves

    fig = eps_curves(_attack_rows())
    assert [ax.get_title() for ax in fig.axes] == ["Mixup (k=1)", "Region Mixup (k=2)"]
    assert fig.get_suptitle() == "Every run: epochs=20, width=16"
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes)
    assert fig.get_figwidth() * fig.dpi <= 1400


def _claim_cells(paper_delta=float("nan")) -> pd.DataFrame:
    recipe = "epochs=20, lr held, then cosine, width=16, n_train=2000, holdout=500"
    return pd.DataFrame({
        "table": [None, None], "dataset": ["cifar10-subset"] * 2,
        "a": [f"Region Mixup (k=2, {recipe})"] * 2,
        "b": [f"Region Mixup (k=2, {recipe}, w/o clean CE)",
              f"Region Mixup (k=2, two mixed passes, {recipe}, w/o clean CE)"],
        "metric": ["clean test"] * 2, "delta": [6.16, 6.49], "low": [4.41, 4.0],
        "high": [7.9, 8.98], "verdict": ["supported", "not resolved"],
        "paper_delta": [paper_delta] * 2,
    })  # fmt: skip


def test_claims_forest_rows_read_apart_and_promise_only_what_is_drawn():
    """The two clean-CE rows once read the same ("[...]" cut both before they differed),
    and the axis promised the paper's diamond on rows that had none."""
    from regionmix_utils.viz import claims_forest

    fig = claims_forest(_claim_cells())
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(set(rows)) == 2 and not any("[...]" in r or "epochs" in r for r in rows)
    assert "two mixed passes" in rows[1]
    marked = claims_forest(_claim_cells().assign(status=["confirmatory", "exploratory"]))
    assert [t.get_text().split("\n")[0] for t in marked.axes[0].get_yticklabels()] == [
        "clean test, confirmatory", "clean test, exploratory"]  # fmt: skip
    assert "◇" not in fig.axes[0].get_xlabel() and "epochs=20" in fig.axes[0].get_title()
    with_paper = claims_forest(_claim_cells(paper_delta=2.0)).axes[0]
    assert "◇" in with_paper.get_xlabel()
    assert any(line.get_marker() == "D" for line in with_paper.get_lines())


def test_seed_planner_draws_the_range_its_text_promises():
    from regionmix_utils.viz import seed_planner_figure

    assert not seed_planner_figure(1.5, deltas=(0.5, 2.0)).axes[0].collections
    band = seed_planner_figure(1.5, deltas=(0.5, 2.0), n_seeds=5).axes[0]
    assert len(band.collections) == 1 and "95% interval (5 seeds)" in str(
        [t.get_text() for t in band.get_legend().get_texts()]
    )


def test_ce_figure_groups_each_configuration_with_and_without_the_term():
    from regionmix_utils.notebook import reference_runs
    from regionmix_utils.results import collect_runs
    from regionmix_utils.viz import ce_figure

    run_list = reference_runs(methods=("region",))
    if run_list is None:
        pytest.skip("the reference study's bundle is not here")
    runs = collect_runs(runs=run_list)
    fig = ce_figure(runs)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Region Mixup"]  # k=2 is shared
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "with the clean CE term", "without the clean CE term",
        "without it, a second mixed pass instead"]  # fmt: skip
    with_term = runs[runs["clean_ce"]]["test_acc"].mean()
    assert ax.patches[0].get_height() == pytest.approx(with_term)
    assert ax.get_ylim()[0] == 0 and "epochs=20" in fig.get_suptitle()


def test_attack_examples_name_the_true_class_and_mark_wrong_predictions():
    from regionmix_utils.viz import attack_examples

    images = torch.rand(2, 3, 8, 8)
    fig = attack_examples(images, images.clamp(0.1, 0.9), torch.tensor([0, 1]),
                          (torch.tensor([0, 0]), torch.tensor([1, 1])), ["bird", "dog"],
                          2 / 255)  # fmt: skip
    top = [fig.axes[i] for i in (0, 1)]
    assert [ax.get_title() for ax in top] == ["true: bird", "true: dog"]
    assert [ax.xaxis.label.get_color() for ax in top] == ["tab:green", "tab:red"]
    assert fig.axes[2].get_xlabel() == "predicted: dog" and "2/255" in fig.axes[2].get_ylabel()


def test_training_curves_show_the_first_epoch_and_the_progress_bars_loss():
    """After one epoch the loss panels were empty (a line of one point) over an x axis
    of 0.945-1.050, and the progress bar's loss (the total) matched neither panel."""
    from regionmix_utils.viz import LiveCurves

    live = LiveCurves("region", epochs=4)
    live({"epoch": 1, "train_loss": 3.007, "train_clean_loss": 1.204,
          "train_mixed_loss": 1.803, "test_acc": 41.2})  # fmt: skip
    clean, mixed, _ = live.figure.axes
    assert all(ax.get_lines()[0].get_marker() == "o" for ax in (clean, mixed))
    assert clean.get_xlim() == (0.5, 4.5)
    assert live.figure.get_suptitle().startswith(
        "epoch 1 of 4: loss 3.007 = 1.204 on clean images + 1.803 on mixed ones"
    )


def _ablation_rows(ks, alphas, random=False) -> pd.DataFrame:
    rows = [{"dataset": "cifar10-subset", "method": "mixup" if k == "1" else "region", "k": k,
             "alpha": a, "clean_ce": True, "lam_mode": "batch", "seed": s,
             "test_acc": 50.0 + s, "fgsm": 30.0}
            for k in ks for a in alphas for s in (0, 1)]  # fmt: skip
    if random:
        rows.append({**rows[-1], "method": "region-random", "k": "random"})
    return pd.DataFrame(rows)


def test_ablation_explorer_draws_no_heatmap_of_one_cell_and_names_only_runs_it_has():
    one = AblationExplorer(_ablation_rows(["1", "2"], [1.0]))
    assert not one.ax_heat.images and "heatmap needs" in one.ax_heat.texts[0].get_text()
    assert "random" not in one.ax_k.get_title() and one._colorbar is None
    grid = AblationExplorer(_ablation_rows(["2", "4"], [0.4, 1.0], random=True))
    assert grid.ax_heat.images and grid._colorbar is not None
    assert "random" in grid.ax_k.get_title()


def test_explorer_min_side_moves_the_edges_and_keeps_the_draw(batch):
    """Moving min side once redrew λ and the partners too: the same draw could not be
    compared at two minimums."""
    explorer = MixingExplorer(*batch, seed=0, random_grid=True)
    lam, partners = explorer.mixed.lam.clone(), explorer.mixed.partners.clone()
    edges = explorer.mixed.edges
    explorer.update(min_side=4)
    assert explorer.mixed.edges != edges
    assert torch.equal(explorer.mixed.lam, lam) and torch.equal(explorer.mixed.partners, partners)


def test_resizemix_paired_with_itself_is_outlined_dashed(batch):
    images, labels, classes = batch
    for seed in range(50):
        mixed = resizemix(images, labels, 10, torch.Generator().manual_seed(seed))
        if self_paired(mixed, 0):
            break
    else:
        pytest.fail("no seed under 50 pairs sample 0 with itself")
    ax = mixing_figure(images, {"ResizeMix": mixed}, classes, n_show=1).axes[1]
    assert len(ax.patches) == 1 and ax.patches[0].get_linestyle() == "--"
    assert ax.get_xlabel().startswith("self-paired")


def test_reliability_diagrams_wrap_and_name_only_what_differs():
    """Ten methods used to make one row 34 inches wide whose titles ran into each other:
    the diagrams wrap at five to a row, each title keeps what differs between the runs,
    and what they share is said once above them."""
    from regionmix_utils.evaluation.calibration import reliability
    from regionmix_utils.viz import reliability_figure

    g = torch.Generator().manual_seed(0)
    curves = {
        f"Method {i} (k={i}, epochs=20, width=16)": reliability(
            torch.randn(60, 10, generator=g), torch.randint(0, 10, (60,), generator=g)
        )
        for i in range(7)
    }
    fig = reliability_figure(curves)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 14  # a diagram and its counts per method, no empty panels
    assert max(ax.get_subplotspec().colspan.stop for ax in shown) == 5
    titles = [ax.get_title() for ax in shown if ax.get_title()]
    assert titles == [f"Method {i} (k={i})" for i in range(7)]
    assert fig._suptitle.get_text() == "All runs: epochs=20, width=16"
    plt.close(fig)
