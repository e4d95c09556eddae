"""Figures of evaluations: CAMs, adversarial examples, reliability diagrams, corruptions,
and the paper's tables beside ours."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from regionmix_utils.viz.mixing import _show


def cam_figure(
    images: Tensor,
    maps: dict[str, Tensor],
    boxes: Tensor | None = None,
    alpha: float = 0.5,
) -> Figure:
    """Images in the first column, then each method's CAM over them (like Figure 2).

    Args:
        images: [B, 3, H, W] in [0, 1].
        maps: method -> [B, H, W] maps in [0, 1] for the same images.
        boxes: optional [B, 4] object boxes (x0, y0, x1, y1) drawn on every panel.
        alpha: opacity of the heat map.
    """
    n = images.shape[0]
    fig, axes = plt.subplots(n, 1 + len(maps), figsize=(2 * (1 + len(maps)), 2 * n), squeeze=False)
    for row in range(n):
        panels = [("image", None), *maps.items()]
        for col, (title, method_maps) in enumerate(panels):
            ax = axes[row, col]
            _show(ax, images[row])
            if method_maps is not None:
                ax.imshow(method_maps[row].cpu().numpy(), cmap="jet", alpha=alpha, vmin=0, vmax=1)
            if boxes is not None:
                x0, y0, x1, y1 = boxes[row].tolist()
                ax.add_patch(
                    plt.Rectangle(
                        (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="white", lw=1
                    )
                )
            if row == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


PANELS_PER_ROW = 5  # more diagrams wrap onto further rows


def reliability_figure(curves: dict) -> Figure:
    """Reliability diagrams, one column per method, ``PANELS_PER_ROW`` to a row (label ->
    the dict of ``calibration.reliability``): accuracy per confidence bin against the diagonal of
    perfect calibration (the gap to the bin's mean confidence hatched red, above the bar
    where over-confident, inside it where under-confident), and below it how many test
    images fall in each bin. Panel titles keep only what differs between the labels; what
    they share (``results.column_label``'s recipe words) is said once above them."""
    from regionmix_utils.viz.mixing import split_labels

    titles, shared = split_labels(list(curves))
    columns = min(max(len(curves), 1), PANELS_PER_ROW)
    rows = -(-max(len(curves), 1) // columns)  # a row of diagrams, then their counts, per row
    fig, axes = plt.subplots(2 * rows, columns, figsize=(3.4 * columns, 5.2 * rows),
                             squeeze=False, height_ratios=[2.2, 1] * rows)  # fmt: skip
    for i in range(len(curves), rows * columns):  # the last row's empty places
        row, col = divmod(i, columns)
        axes[2 * row, col].set_visible(False)
        axes[2 * row + 1, col].set_visible(False)
    for i, (title, curve) in enumerate(zip(titles, curves.values(), strict=True)):
        row, col = divmod(i, columns)
        top, bottom = axes[2 * row, col], axes[2 * row + 1, col]
        width = 1.0 / len(curve["lower"])
        centres = (curve["lower"] + width / 2).numpy()
        accuracy, confidence = curve["accuracy"].numpy(), curve["confidence"].numpy()
        top.bar(centres, np.nan_to_num(accuracy), width=width, edgecolor="black", lw=0.5,
                color="tab:blue", alpha=0.8, label="accuracy")  # fmt: skip
        low, high = np.fmin(accuracy, confidence), np.fmax(accuracy, confidence)
        top.bar(centres, np.nan_to_num(high - low), bottom=np.nan_to_num(low), width=width,
                facecolor="none", edgecolor="tab:red", hatch="///", lw=0.8,
                label="gap to confidence")  # fmt: skip
        top.plot([0, 1], [0, 1], "k--", lw=1)
        top.set(xlim=(0, 1), ylim=(0, 1), xticklabels=[])
        top.set_title(textwrap.fill(title, 30), fontsize=10)
        bottom.bar(centres, curve["count"].numpy(), width=width, color="grey")
        bottom.set(xlim=(0, 1), xlabel="confidence")
        bottom.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        if col == 0:
            top.set_ylabel("accuracy")
            bottom.set_ylabel("test images")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    if shared:
        fig.suptitle(textwrap.fill(f"All runs: {shared}", 40 * columns), fontsize=9)
    fig.tight_layout()
    return fig


def corruption_figure(records: list[dict], labels: list[str]) -> Figure:
    """Accuracy against corruption severity, one line per method: for each severity the
    mean over the corruptions evaluated (``records[i]`` are the corruption records of
    the run labelled ``labels[i]``); one panel per corruption family found."""
    from regionmix_utils.evaluation.corruptions import FAMILIES, SEVERITIES

    families = [f for f, members in FAMILIES.items()
                if any(r["corruption"] in members for rs in records for r in rs)]  # fmt: skip
    fig, axes = plt.subplots(1, max(len(families), 1), figsize=(4 * max(len(families), 1), 3.4),
                             squeeze=False)  # fmt: skip
    for ax, family in zip(axes[0], families, strict=False):
        for label, rs in zip(labels, records, strict=True):
            means = [
                np.mean([r["accuracy"] for r in rs
                         if r["severity"] == s and r["corruption"] in FAMILIES[family]] or [np.nan])
                for s in SEVERITIES
            ]  # fmt: skip
            ax.plot(SEVERITIES, means, marker="o", label=label)
        ax.set(xlabel="severity", ylabel="accuracy (%)", title=family, xticks=SEVERITIES)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def adversarial_examples(
    images: Tensor, adversarial: Tensor, predictions: tuple[Tensor, Tensor], classes: Sequence[str]
) -> Figure:
    """Clean images, their adversarial versions and the (amplified) perturbation.

    Args:
        images, adversarial: [B, 3, H, W] in [0, 1].
        predictions: (clean predictions [B], adversarial predictions [B]).
    """
    n = images.shape[0]
    fig, axes = plt.subplots(3, n, figsize=(2 * n, 6.3), squeeze=False)
    delta = adversarial - images
    scale = float(delta.abs().max()) or 1.0
    for col in range(n):
        _show(axes[0, col], images[col])
        axes[0, col].set_title(classes[int(predictions[0][col])], fontsize=8)
        _show(axes[1, col], adversarial[col])
        axes[1, col].set_title(classes[int(predictions[1][col])], fontsize=8)
        _show(axes[2, col], delta[col] / (2 * scale) + 0.5)
    for row, name in enumerate(["clean", "adversarial", "perturbation (scaled)"]):
        axes[row, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


def comparison_figure(tables: Sequence) -> Figure:
    """Ours against the paper: one row of panels a table (``results.Table``), one panel
    a dataset (Table 2: a dataset and loss), methods along x, each panel on its own
    scale. Our mean ± std over seeds is filled, the paper's hollow.
    """
    import textwrap

    layouts = []
    for table in tables:
        keys = ["dataset", "ce_row"] if table.number == 2 else ["dataset"]
        rows = list(dict.fromkeys(map(tuple, table.cells[keys].to_numpy())))
        layouts.append((table, keys, rows))
    width = max(len(rows) for _, _, rows in layouts)
    fig = plt.figure(figsize=(4.2 * width, 3.6 * len(layouts)), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(layouts), 1))
    for subfig, (table, keys, rows) in zip(subfigs, layouts, strict=True):
        subfig.suptitle("\n".join(textwrap.wrap(table.caption.split(". ")[0], 110)), fontsize=9)
        axes = np.atleast_1d(subfig.subplots(1, width, squeeze=False)[0])
        labels = list(dict.fromkeys(table.frame.columns.get_level_values(0)))
        for ax, row in zip(axes, rows, strict=False):
            cells = table.cells[(table.cells[keys].apply(tuple, axis=1) == row)]
            for x, label in enumerate(labels):
                for r in cells[cells["label"] == label].itertuples():
                    if r.n > 0:
                        ax.errorbar(x - 0.12, r.mean, yerr=np.nan_to_num(r.std), fmt="o",
                                    color="C0", capsize=3)  # fmt: skip
                    if not np.isnan(r.paper_mean):
                        ax.errorbar(x + 0.12, r.paper_mean, yerr=r.paper_std, fmt="s",
                                    mfc="white", color="C1", capsize=3)  # fmt: skip
            crowded = len(labels) > 3
            ax.set_xticks(
                range(len(labels)),
                [lb if crowded else "\n".join(textwrap.wrap(lb, 14)) for lb in labels],
                fontsize=7, rotation=30 if crowded else 0, ha="right" if crowded else "center",
            )  # fmt: skip
            ax.set_xlim(-0.5, len(labels) - 0.5)
            ax.set_title(" · ".join(row), fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("accuracy (%)")
        for ax in axes[len(rows) :]:
            ax.set_visible(False)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color="C0", label="ours (mean ± std over seeds)"),
        plt.Line2D([], [], marker="s", ls="", mfc="white", color="C1", label="paper (3 runs)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
    return fig
