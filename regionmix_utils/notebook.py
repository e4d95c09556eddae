"""What the notebooks share: set-up, an example batch, and finding (or making) runs.

Train once, load everywhere: ``ensure_runs`` returns the folders of finished runs; in
quick mode it trains the missing ones (a few CPU minutes), otherwise it never trains
silently and says which command produces them.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from regionmix_utils import __version__
from regionmix_utils.config import TrainConfig, quick_config
from regionmix_utils.data import DatasetMissingError, load_dataset
from regionmix_utils.methods import SETTINGS
from regionmix_utils.runs import Run
from regionmix_utils.train import sweep

__all__ = [
    "IN_COLAB",
    "NOTEBOOKS",
    "ensure_runs",
    "example_batch",
    "execute_notebook",
    "setup",
    "show_tables",
    "sweep_commands",
]

IN_COLAB = "google.colab" in sys.modules
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"  # in a source checkout
COLAB_DRIVE = "/content/drive"  # where Colab mounts Google Drive


def setup(runs_dir: str | os.PathLike | None = None, needs_gpu: bool = True) -> str:
    """Print versions and the device the notebook will use; return "cuda" or "cpu".

    On Colab, a ``runs_dir`` under ``/content/drive`` mounts Google Drive first, so that
    checkpoints outlive the runtime. Without a GPU it says what the notebook will do.
    """
    if runs_dir is not None and IN_COLAB and _on_colab_drive(runs_dir):
        from google.colab import drive

        drive.mount(COLAB_DRIVE)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name() if device == "cuda" else "none"
    print(
        f"regionmix_utils {__version__}, torch {torch.__version__}, "
        f"Python {platform.python_version()}, GPU: {gpu}"
    )
    if device == "cpu" and needs_gpu:
        hint = " (Runtime > Change runtime type > GPU)" if IN_COLAB else ""
        print(
            f"No GPU{hint}: quick mode runs on the CPU in minutes; "
            "the paper's full runs need a GPU."
        )
    return device


def _on_colab_drive(path: str | os.PathLike) -> bool:
    return Path(path).resolve().is_relative_to(COLAB_DRIVE)


def example_batch(
    n: int = 8, data_dir: str | os.PathLike | None = None
) -> tuple[Tensor, Tensor, tuple[str, ...], str]:
    """The first ``n`` test images as floats in [0, 1], their labels, class names, source.

    CIFAR-10 when it is on disk (the torchvision download or ``cifar10-subset.npz``
    under the data folder), the embedded ``shapes`` data otherwise.
    """
    for name in ("cifar10", "cifar10-subset"):
        try:
            test = load_dataset(name, data_dir, n_train=1, n_test=n).test
            return test.images.float() / 255, test.labels, test.classes, name
        except DatasetMissingError:
            continue
    test = load_dataset("shapes", n_train=1, n_test=n).test
    return test.images.float() / 255, test.labels, test.classes, "shapes"


def sweep_commands(configs: list[TrainConfig], runs_dir: str | os.PathLike) -> list[str]:
    """``regionmix sweep`` commands that train ``configs`` (finished runs are skipped):
    one command per method and set of flags, with its datasets, seeds and settings."""
    groups: dict[tuple, list[TrainConfig]] = {}
    for c in configs:
        flags = (c.method, c.clean_ce, c.concat_forward, c.quick)
        groups.setdefault(flags, []).append(c)
    commands = []
    for (method, clean_ce, concat, quick), group in groups.items():
        words = ["regionmix sweep", "--datasets", *_unique(c.dataset for c in group),
                 "--methods", method, "--seeds", *_unique(str(c.seed) for c in group)]  # fmt: skip
        defaults = TrainConfig()
        for name in SETTINGS:
            values = _unique(str(getattr(c, name)) for c in group)
            if values != [str(getattr(defaults, name))]:
                words += [f"--{name}", *values]
        words += ["--no-clean-ce"] * (not clean_ce) + ["--concat-forward"] * concat
        words += ["--quick"] * quick + ["--runs-dir", str(runs_dir)]
        commands.append(" ".join(words))
    return commands


def _unique(values) -> list[str]:
    return list(dict.fromkeys(values))


def ensure_runs(
    configs: list[TrainConfig],
    runs_dir: str | os.PathLike,
    quick: bool,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
) -> list[Run]:
    """The finished runs for ``configs`` (quick versions in quick mode).

    In quick mode missing runs are trained; otherwise a missing run is an error that
    names the commands producing them.
    """
    if quick:
        configs = [quick_config(c) for c in configs]
    configs = list(dict.fromkeys(configs))
    missing = [c for c in configs if not Run.of(runs_dir, c).finished]
    if missing and not quick:
        raise FileNotFoundError(
            f"{len(missing)} run(s) are missing under {runs_dir}, e.g. "
            f"{Run.of(runs_dir, missing[0]).path}. Train them first:\n  "
            + "\n  ".join(sweep_commands(missing, runs_dir))
        )
    if missing:
        print(f"Training {len(missing)} quick run(s) that are not in {runs_dir} yet.")
        sweep(missing, runs_dir, data_dir, device)
    return [Run.of(runs_dir, c) for c in configs]


def show_tables(
    runs, numbers: tuple[int, ...], accuracy: str = "final", keep: Callable | None = None
) -> list:
    """Show our tables ``numbers`` (of the paper's 1-4) with the paper's numbers beside
    ours. Where no column of ours is in the paper's setting (quick runs, the embedded
    data), say so plainly and show the published tables after ours, for reference only.

    Args:
        runs: ``results.collect_runs`` rows.
        keep: which of our tables to show (e.g. ``lambda t: t.setting["eps"] == 8 / 255``).
    Returns:
        The tables shown (``results.Table``): ours, then any published ones.
    """
    from regionmix_utils.results import paper_tables, published_tables, to_markdown

    ours = [t for t in paper_tables(runs, accuracy) if t.number in numbers]
    ours = [t for t in ours if keep is None or keep(t)]
    shown = list(ours)
    if not any(t.has_paper for t in ours):
        datasets = ", ".join(sorted(set(runs["dataset"])))
        quick = " quick" if runs["quick"].any() else ""
        _show_markdown(
            f"**These are{quick} runs on {datasets}, not the paper's setting (PreAct ResNet-18, "
            "400 epochs, CIFAR-10/100 or Tiny ImageNet): they cannot be compared with the "
            "paper. Its published numbers follow for reference only.**"
        )
        shown += [t for t in published_tables() if t.number in numbers]
    for table in shown:
        _show_markdown(f"{table.caption}\n\n{to_markdown(table.frame)}")
    return shown


def _show_markdown(text: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(text))
            return
    except ImportError:
        pass
    print(text, end="\n\n")


def execute_notebook(
    notebook: str | os.PathLike,
    out_dir: str | os.PathLike,
    parameters: dict | None = None,
    html: bool = True,
    timeout: int = 1200,
) -> Path:
    """Run a notebook top to bottom with papermill, writing the executed copy (and HTML).

    Args:
        notebook: the .ipynb to run; it runs in its own folder.
        out_dir: where ``NAME.ipynb`` (executed) and ``NAME.html`` go.
        parameters: values injected after the cell tagged ``parameters``.
        timeout: seconds any one cell may take.
    Returns:
        The executed notebook's path. A failing cell raises papermill's execution error.
    """
    import papermill

    notebook, out_dir = Path(notebook), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / notebook.name
    papermill.execute_notebook(
        str(notebook),
        str(executed),
        parameters=parameters or {},
        cwd=str(notebook.parent),
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=timeout,
    )
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(executed))
        executed.with_suffix(".html").write_text(body)
    return executed
