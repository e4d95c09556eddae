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
from regionmix_utils.config import TrainConfig, identity, quick_config
from regionmix_utils.data import DatasetMissingError, load_dataset
from regionmix_utils.methods import SETTINGS, declaration
from regionmix_utils.runs import Run
from regionmix_utils.sweeps import sweep

__all__ = [
    "IN_COLAB",
    "NOTEBOOKS",
    "ensure_runs",
    "example_batch",
    "execute_notebook",
    "reference_eps",
    "reference_family",
    "reference_label",
    "reference_runs",
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
    n: int = 8, data_dir: str | os.PathLike | None = None, download: bool | None = None
) -> tuple[Tensor, Tensor, tuple[str, ...], str]:
    """``n`` test images of different classes as floats in [0, 1], their labels, the
    class names, and a sentence saying where they come from.

    Real photos when they can be had: CIFAR-10 in torchvision's folder under the data
    folder; downloaded by torchvision when ``download`` (default: on Colab, which is
    online); the real ``cifar10-subset.npz`` under the data folder. The embedded
    ``shapes`` data otherwise (offline, nothing on disk).
    """
    download = IN_COLAB if download is None else download
    attempts = [("cifar10", False, "CIFAR-10 test images (torchvision's files on disk)")]
    if download:
        attempts.append(("cifar10", True, "CIFAR-10 test images, downloaded by torchvision"))
    attempts.append(("cifar10-subset", False, "CIFAR-10 test images (cifar10-subset.npz)"))
    for name, fetch, source in attempts:
        try:
            test = load_dataset(name, data_dir, download=fetch, n_train=1, n_test=n).test
        except (DatasetMissingError, OSError):  # OSError: offline download (URLError)
            continue
        return test.images.float() / 255, test.labels, test.classes, source
    test = load_dataset("shapes", n_train=1, n_test=n).test
    source = "the embedded shapes data (offline, and no CIFAR-10 on disk)"
    return test.images.float() / 255, test.labels, test.classes, source


def sweep_commands(configs: list[TrainConfig], runs_dir: str | os.PathLike) -> list[str]:
    """``regionmix sweep`` commands that train exactly ``configs`` (a sweep skips finished
    runs): one command per dataset and run identity (``config.identity``) but the seed,
    naming every field that differs from what the command line gives by default (the
    method's settings, the recipe, the schedule, the holdout, ``--quick``). Each command
    is parsed back by the command line itself and must give exactly its runs.

    Raises:
        ValueError: a run the command line cannot express (a field it has no option for,
            such as ``milestones``): the message names the field.
    """
    groups: dict[tuple, list[TrainConfig]] = {}
    for c in configs:
        key = tuple(_options(c))
        groups.setdefault((c.dataset, c.method, key), []).append(c)
    commands = []
    for (dataset, method, options), group in groups.items():
        seeds = _unique(str(c.seed) for c in group)
        words = ["regionmix", "sweep", "--datasets", dataset, "--methods", method, "--seeds",
                 *seeds, *options, "--runs-dir", str(runs_dir)]  # fmt: skip
        _check_round_trip(words, group)
        commands.append(" ".join(words))
    return commands


def _options(config: TrainConfig) -> list[str]:
    """The command-line options that turn the defaults of ``config``'s dataset, method
    and seed (quick ones for a quick run) into ``config``."""
    reference = TrainConfig(dataset=config.dataset, method=config.method, seed=config.seed)
    words = []
    if config.quick:
        reference, words = quick_config(reference), ["--quick"]
    for name, value in identity(config).items():
        default = getattr(reference, name)
        if name in ("dataset", "method", "seed", "quick") or value == default:
            continue
        flag = "--" + name.replace("_", "-")
        if name == "params":  # the method's own parameters, each its own option
            for own, own_value in value:
                if own_value != dict(default).get(own, declaration(own).default):
                    words += ["--" + own.replace("_", "-"),
                              *declaration(own).format(own_value, sep=" ").split()]
        elif name in SETTINGS:
            words += [flag, *SETTINGS[name].format(value, sep=" ").split()]
        elif isinstance(value, bool):
            words.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif name == "switch":
            words += [flag, *(f"{other}:{prob:g}" for other, prob in value)]
        elif isinstance(value, tuple):
            words += [flag, *map(str, value)]
        else:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return words


def _check_round_trip(words: list[str], group: list[TrainConfig]) -> None:
    """Parse ``words`` with the command line's own parser and require its runs to be
    exactly ``group``'s."""
    from regionmix_utils.cli import build_parser, sweep_configs

    try:
        args, unknown = build_parser().parse_known_args(words[1:])  # without "regionmix"
    except SystemExit:  # a value no option takes (argparse said which on stderr)
        args, unknown = None, []
    flags = [w for w in unknown if w.startswith("--")]
    made = set() if flags or args is None else {_identity_key(c) for c in sweep_configs(args)}
    if made != {_identity_key(c) for c in group}:
        missing = ", ".join(f.removeprefix("--").replace("-", "_") for f in flags)
        raise ValueError(
            f"no regionmix sweep command trains {Run.of('runs', group[0]).path.parent}: the "
            f"command line has no option for {missing or 'a field it sets'}"
        )


def _identity_key(config: TrainConfig) -> tuple:
    return tuple(sorted(identity(config).items()))


def _unique(values) -> list[str]:
    return list(dict.fromkeys(values))


def ensure_runs(
    configs: list[TrainConfig],
    runs_dir: str | os.PathLike,
    quick: bool,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    missing: str = "raise",
) -> list[Run]:
    """The finished runs for ``configs`` (quick versions in quick mode).

    In quick mode missing runs are trained. Otherwise nothing is trained silently: a
    missing run is an error that names the commands producing it (``missing="raise"``),
    or those commands are printed and the finished runs returned (``"report"``).
    """
    if missing not in ("raise", "report"):
        raise ValueError(f"missing must be 'raise' or 'report', got {missing!r}")
    if quick:
        configs = [quick_config(c) for c in configs]
    configs = list(dict.fromkeys(configs))
    absent = [c for c in configs if not Run.of(runs_dir, c).finished]
    if absent and not quick:
        message = (
            f"{len(absent)} of {len(configs)} run(s) are missing under {runs_dir}, e.g. "
            f"{Run.of(runs_dir, absent[0]).path}. Train them first:\n  "
            + "\n  ".join(sweep_commands(absent, runs_dir))
        )
        if missing == "raise":
            raise FileNotFoundError(message)
        print(message)
        return [Run.of(runs_dir, c) for c in configs if c not in set(absent)]
    if absent:
        print(f"Training {len(absent)} quick run(s) that are not in {runs_dir} yet.")
        report = sweep(absent, runs_dir, data_dir, device)
        if not report.ok:
            config, error = next(iter(report.failures.items()))
            raise RuntimeError(f"{Run.of(runs_dir, config).path} failed: {error}")
    return [Run.of(runs_dir, c) for c in configs]


def reference_label(runs: list[Run]) -> str:
    """What the committed reference runs are, in one line: e.g. "reference runs: real
    CIFAR-10, 2,000 training images, width 16, 20 epochs, 5 seeds, CPU" (and the commit
    they were trained at, where their configs record one)."""
    configs = [run.config for run in runs]
    commits = sorted({(run.record.get("environment") or {}).get("git_commit")
                      for run in runs} - {None})  # fmt: skip
    sizes = sorted({c.n_train for c in configs if c.n_train})
    images = (f"{', '.join(f'{n:,}' for n in sizes)} training images" if sizes
              else "every training image")  # fmt: skip
    widths = ", ".join(str(w) for w in sorted({c.width for c in configs}))
    epochs = ", ".join(str(e) for e in sorted({c.epochs for c in configs}))
    seeds = len({c.seed for c in configs})
    at = f" (commit {', '.join(c[:7] for c in commits)})" if commits else ""
    return (f"reference runs: real CIFAR-10, {images}, width {widths}, {epochs} epochs, "
            f"{seeds} seed{'s' * (seeds != 1)}, CPU{at}")  # fmt: skip


def reference_family(study: str = "cpu-gated") -> list:
    """The claims the committed study's report judges (``Study.family``), at the primary
    ε its pilot chose (``study.read_plan``): what notebook 08 judges in quick mode.

    Raises:
        FileNotFoundError: the study's bundle is not here, or a gated study's plan is not
            in it.
    """
    from regionmix_utils.study import find_bundle, get_study, study_plan

    bundle, found = find_bundle(study), get_study(study)
    if bundle is None:
        raise FileNotFoundError(f"the bundle of study {study!r} is not here")
    return found.family((study_plan(found, bundle) or {}).get("primary_eps"))


def reference_eps(study: str = "cpu-gated") -> float:
    """The ε the committed study attacked at with PGD and Square: the primary ε its pilot
    chose (``study.read_plan``), else its ``square_eps``."""
    from regionmix_utils.study import find_bundle, get_study, read_plan

    bundle = find_bundle(study)
    plan = None if bundle is None else read_plan(bundle)
    return plan["primary_eps"] if plan and "primary_eps" in plan else get_study(study).square_eps


def reference_runs(
    methods: tuple[str, ...] | None = None,
    clean_ce: bool | None = None,
    with_weights: bool = False,
    study: str = "cpu-gated",
    matched_compute: bool | None = None,
) -> list[Run] | None:
    """The committed reference runs (``results/``, see ``regionmix_utils.study``) that
    quick-mode notebooks show instead of training tiny ones, and say so in one line.

    Args:
        methods: only these registered methods (all when None).
        clean_ce: only runs with (True) or without (False) the clean CE term.
        with_weights: only the runs whose final weights the bundle keeps (seed 0).
        matched_compute: only runs with (True) or without (False) a second mixed pass in
            the clean term's place (``TrainConfig.matched_compute``).
    Returns:
        The runs, read-only (evaluating them again is an error), or None when the
        bundle is not here (a plain ``pip install``): the notebook then trains small
        runs as before.
    """
    from regionmix_utils.runs import WEIGHTS16, find_runs
    from regionmix_utils.study import find_bundle

    bundle = find_bundle(study)
    if bundle is None or not find_runs(bundle):
        print("The committed reference runs are not here (they come with a clone of the "
              "repository); training small runs instead.")  # fmt: skip
        return None
    runs = [
        run for run in find_runs(bundle)
        if (methods is None or run.config.method in methods)
        and (clean_ce is None or run.config.clean_ce == clean_ce)
        and (not with_weights or (run.path / WEIGHTS16).exists())
        and (matched_compute is None or run.config.matched_compute == matched_compute)
    ]  # fmt: skip
    if not runs:
        raise ValueError(f"the reference runs under {bundle} hold no run of methods={methods}, "
                         f"clean_ce={clean_ce}, with_weights={with_weights}, "
                         f"matched_compute={matched_compute}")  # fmt: skip
    print(f"{reference_label(runs)}: {len(runs)} runs from {bundle}")
    return runs


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
    in_paper = [n for n in numbers if n <= 4]  # 5 and 6 go beyond the paper
    if in_paper and not any(t.has_paper for t in ours):
        datasets = ", ".join(sorted(set(runs["dataset"])))
        quick = " quick" if runs["quick"].any() else ""
        _show_markdown(
            f"**These are{quick} runs on {datasets}, not the paper's setting (PreAct ResNet-18, "
            "400 epochs, CIFAR-10/100 or Tiny ImageNet): they cannot be compared with the "
            "paper. Its published numbers follow for reference only.**"
        )
        shown += [t for t in published_tables() if t.number in in_paper]
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
        Headless, progress bars print one line per loop and the explorers show their
        figure instead of widgets (see ``progress.headless``).
    """
    import papermill

    from regionmix_utils.progress import HEADLESS

    notebook, out_dir = Path(notebook), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / notebook.name
    before = os.environ.get(HEADLESS)
    os.environ[HEADLESS] = "1"  # the kernel inherits it: line progress, static explorers
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters or {},
            cwd=str(notebook.parent),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=timeout,
        )
    finally:
        if before is None:
            os.environ.pop(HEADLESS, None)
        else:
            os.environ[HEADLESS] = before
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(executed))
        executed.with_suffix(".html").write_text(body)
    return executed
