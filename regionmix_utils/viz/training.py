"""Training curves, static and live (notebook 02, the demo)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def training_curves(metrics: dict[str, list[dict]], epochs: int | None = None) -> Figure:
    """Training curves that compare like with like, one line per run (label -> metrics
    rows): the cross entropy on clean images, the cross entropy on mixed images (the
    total loss of a mixing run adds the two, so totals are not comparable across
    methods), and test accuracy. Every epoch is a marker, so a first epoch shows as a
    point; ``epochs`` (the run's length) fixes the x axis from 1 to it, so that the axes
    do not jump while a run trains."""
    fig, (ax_clean, ax_mixed, ax_acc) = plt.subplots(1, 3, figsize=(13, 3.5))
    style = {"marker": "o", "ms": 3}
    # One colour per run in every panel: a run without a term is missing from its panel,
    # and each axes' own colour cycle would shift the colours of the runs after it.
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (label, rows) in enumerate(metrics.items()):
        color = cycle[index % len(cycle)]
        xs = [r["epoch"] for r in rows]
        if "train_clean_loss" in rows[0]:
            ax_clean.plot(xs, [r["train_clean_loss"] for r in rows], label=label, color=color,
                          **style)  # fmt: skip
        if "train_mixed_loss" in rows[0]:
            ax_mixed.plot(xs, [r["train_mixed_loss"] for r in rows], label=label, color=color,
                          **style)  # fmt: skip
        if "train_clean_loss" not in rows[0] and "train_mixed_loss" not in rows[0]:
            # metrics written before the terms were recorded: the total alone, marked
            ax_clean.plot(xs, [r["train_loss"] for r in rows], ls="--", color=color,
                          label=f"{label} (total)", **style)  # fmt: skip
        evaluated = [r for r in rows if "test_acc" in r]
        ax_acc.plot([r["epoch"] for r in evaluated], [r["test_acc"] for r in evaluated],
                    marker="o", label=label, color=color)  # fmt: skip
    ax_clean.set(xlabel="epoch", ylabel="loss", title="train CE on clean images")
    ax_mixed.set(xlabel="epoch", ylabel="loss", title="train CE on mixed images")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    last = epochs or max((r["epoch"] for rows in metrics.values() for r in rows), default=1)
    for ax in (ax_clean, ax_mixed, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.5, last + 0.5)
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    return fig


class LiveCurves:
    """An ``on_epoch`` callback for ``train`` that redraws the training curves each epoch.

    In a notebook the figure is shown once and updated in place; elsewhere it is only
    kept up to date (``figure``). Its title reads the last epoch as the progress bar
    does: the loss it prints is the total, the two panels' terms added.

    Args:
        label: the run's name in the legend.
        epochs: the run's length: the x axes span it from the first epoch on.
    """

    def __init__(self, label: str, epochs: int | None = None) -> None:
        self.label, self.epochs = label, epochs
        self.rows, self.figure, self._handle = [], None, None

    def __call__(self, record: dict) -> None:
        self.rows.append(record)
        if self.figure is not None:
            plt.close(self.figure)
        self.figure = training_curves({self.label: self.rows}, self.epochs)
        self.figure.suptitle(epoch_title(record, self.epochs), fontsize=10)
        self.figure.tight_layout()
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                if self._handle is None:
                    self._handle = display(self.figure, display_id=True)
                else:
                    self._handle.update(self.figure)
        except ImportError:
            pass
        plt.close(self.figure)


def epoch_title(record: dict, epochs: int | None = None) -> str:
    """ "epoch 3 of 4: loss 3.007 = 1.204 on clean images + 1.803 on mixed ones, test
    accuracy 41.20%": one epoch's metrics row as the progress bar's loss (the total)
    and the terms the panels show."""
    of = f" of {epochs}" if epochs else ""
    terms = [f"{record[k]:.3f} {where}" for k, where in (("train_clean_loss", "on clean images"),
             ("train_mixed_loss", "on mixed ones")) if k in record]  # fmt: skip
    text = f"epoch {record['epoch']}{of}: loss {record['train_loss']:.3f}"
    if len(terms) > 1:
        text += " = " + " + ".join(terms)
    if "test_acc" in record:
        text += f", test accuracy {record['test_acc']:.2f}%"
    return text
