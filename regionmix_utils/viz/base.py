"""What the figures share. Viz modules import matplotlib, ipywidgets and IPython at the top:
only the notebooks, the report and the command line's figure commands import viz."""

import re
import textwrap
from collections.abc import Sequence
from io import BytesIO

import ipywidgets as widgets
import matplotlib.pyplot as plt
from torch import Tensor

from regionmix_utils.progress import headless


def show(ax, image: Tensor) -> None:
    """One [3, H, W] image in [0, 1] on ``ax``, without ticks."""
    ax.imshow(image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
    ax.set(xticks=[], yticks=[])


def box(ax, top: float, left: float, bottom: float, right: float, **style) -> None:
    """An unfilled white box over pixel rows [top, bottom) and columns [left, right)."""
    ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                               fill=False, **{"ec": "white", "lw": 1.2, **style}))  # fmt: skip


def panels(rows: int, cols: int, width: float, height: float, **options):
    """(figure, axes [rows, cols]) of ``width`` x ``height``-inch panels, laid out tight."""
    size = (width * cols, height * rows)
    return plt.subplots(rows, cols, figsize=size, squeeze=False, **{"layout": "tight", **options})


def split_labels(labels: Sequence[str]) -> tuple[list[str], str]:
    """Labels "Name (word, ...)" less the words all share, and those: ["Mixup (k=1, e=2)",
    "CutMix (e=2)"] -> (["Mixup (k=1)", "CutMix"], "e=2"); unchanged if one has no brackets."""
    if not labels or not all(label.endswith(")") and " (" in label for label in labels):
        return list(labels), ""
    split = (label[:-1].split(" (", 1) for label in labels)
    parsed = [(name, re.split(r", (?![^()]*\))", inner)) for name, inner in split]  # not in (..)
    shared = [w for w in parsed[0][1] if all(w in words for _, words in parsed[1:])]
    kept = [(name, [w for w in words if w not in shared]) for name, words in parsed]
    return [f"{name} ({', '.join(ws)})" if ws else name for name, ws in kept], ", ".join(shared)


def say_shared(fig: plt.Figure, shared: str, heading: str, width: int, fontsize: float = 8) -> None:
    """The recipe every run shares (``split_labels``), said once above the panels."""
    if shared:
        fig.suptitle(textwrap.fill(f"{heading}: {shared}", width), fontsize=fontsize)


def figure_png(figure: plt.Figure, dpi: float = 100) -> bytes:
    """The figure as PNG bytes on white; no tight box, so an explorer keeps its size."""
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


class Explorer:
    """Panels (``draw()``) under ipywidgets (``controls()``), redrawn by ``update(**state)``;
    shown as an ``ipywidgets.Image``: Colab's ipywidgets 7.7.1 cannot make an Output."""

    def start(self, figsize: tuple[float, float], width_ratios: list[float]):
        """The explorer's one figure; returns its axes, which each redraw clears."""
        self.figure, self.axes = plt.subplots(1, len(width_ratios), figsize=figsize,
                                              width_ratios=width_ratios)  # fmt: skip
        plt.close(self.figure)  # shown by ``widget()``, not by the notebook's backend
        self._colorbar, self._image = None, None
        return self.axes

    def update(self, **state) -> None:
        vars(self).update(state)
        self.redraw()

    def bind(self, **controls) -> None:
        """Redraw with ``name=value`` whenever control ``name`` changes."""
        for name, control in controls.items():
            control.observe(lambda c, name=name: self.update(**{name: c["new"]}), names="value")

    def redraw(self) -> None:
        for ax in self.axes:
            ax.clear()
            ax.set_axis_on()
        self.draw()
        self.figure.tight_layout()  # once: run again, it moves the colour bar's axes each time
        if self._image is not None:
            self._image.value = figure_png(self.figure)

    def widget(self):
        """VBox([*controls, Image]); headless (``progress.headless``) the figure alone: nbclient
        can hang on widget messages (jupyter/nbclient#312)."""
        if headless():
            return self.figure
        self._image = widgets.Image(format="png", layout={"max_width": "100%", "height": "auto"})
        self.redraw()
        return widgets.VBox([*self.controls(), self._image])
