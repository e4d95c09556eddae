"""Training curves, static and live (notebook 02, the demo, the report)."""

import matplotlib.pyplot as plt
from IPython import get_ipython
from IPython.display import display

TERMS = {"train_clean_loss": "on clean images", "train_mixed_loss": "on mixed ones"}


def training_curves(metrics: dict[str, list[dict]], epochs: int | None = None) -> plt.Figure:
    """A line per run (label -> metrics rows): clean CE, mixed CE (sums not comparable), test acc"""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5), layout="tight")
    # one colour per run in every panel: a run missing from a panel must not shift the rest
    for index, (label, rows) in enumerate(metrics.items()):
        style = {"marker": "o", "ms": 3, "color": f"C{index}"}  # "CN": the colour cycle's Nth
        xs = [r["epoch"] for r in rows]
        for ax, key in zip(axes, TERMS, strict=False):
            if key in rows[0]:
                ax.plot(xs, [r[key] for r in rows], label=label, **style)
        if not TERMS.keys() & rows[0].keys():  # written before the terms were recorded
            axes[0].plot(xs, [r["train_loss"] for r in rows], ls="--", label=f"{label} (total)",
                         **style)  # fmt: skip
        evaluated = [r for r in rows if "test_acc" in r]
        axes[2].plot([r["epoch"] for r in evaluated], [r["test_acc"] for r in evaluated],
                     marker="o", label=label, color=style["color"])  # fmt: skip
    titles = ("train CE on clean images", "train CE on mixed images", "test accuracy")
    last = epochs or max((r["epoch"] for rows in metrics.values() for r in rows), default=1)
    for ax, title in zip(axes, titles, strict=True):
        ax.set(xlabel="epoch", ylabel="loss", title=title, xlim=(0.5, last + 0.5))
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    axes[2].set_ylabel("test accuracy (%)")
    axes[2].legend(fontsize=8)
    return fig


class LiveCurves:
    """An ``on_epoch`` callback for ``train``: run ``label``'s curves, redrawn in place each
    epoch, titled as the progress bar ("epoch 3 of 4: loss 3.007 = 1.204 on clean ...")."""

    def __init__(self, label: str, epochs: int | None = None) -> None:
        self.label, self.epochs = label, epochs
        self.rows, self.figure, self._handle = [], None, None

    def __call__(self, record: dict) -> None:
        self.rows.append(record)
        self.figure = training_curves({self.label: self.rows}, self.epochs)
        title = f"epoch {record['epoch']}" + (f" of {self.epochs}" if self.epochs else "")
        title += f": loss {record['train_loss']:.3f}"
        terms = [f"{record[key]:.3f} {where}" for key, where in TERMS.items() if key in record]
        if len(terms) > 1:
            title += " = " + " + ".join(terms)
        if "test_acc" in record:
            title += f", test accuracy {record['test_acc']:.2f}%"
        self.figure.suptitle(title, fontsize=10)
        if self._handle is not None:
            self._handle.update(self.figure)
        elif get_ipython() is not None:
            self._handle = display(self.figure, display_id=True)
        plt.close(self.figure)
