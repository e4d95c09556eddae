"""What the notebooks share: set-up, an example batch, finding (or making) runs, and
what the runs show, in words.

Train once, load everywhere: ``ensure_runs`` returns the folders of finished runs; in
quick mode it trains the missing ones (a few CPU minutes), otherwise it never trains
silently and says which command produces them. The data folder is ``files.data_dir``'s,
the same from any working directory. The sentences a notebook prints about its results
(``attacks_ran``, the ``*_findings`` of its "What this shows") are computed from the
records it shows, never typed, and say no more than the verdicts on them.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from regionmix_utils import __version__, files
from regionmix_utils.config import TrainConfig, identity, quick_config
from regionmix_utils.data import DatasetMissingError, load_dataset
from regionmix_utils.methods import SETTINGS, declaration
from regionmix_utils.runs import Run
from regionmix_utils.sweeps import sweep

__all__ = [
    "IN_COLAB",
    "NOTEBOOKS",
    "ablation_findings",
    "attacks_ran",
    "cam_findings",
    "ce_findings",
    "claims_findings",
    "claims_table",
    "ensure_runs",
    "example_batch",
    "execute_notebook",
    "label_cam_figure",
    "reference_eps",
    "reference_family",
    "reference_label",
    "reference_runs",
    "reference_verdicts",
    "robustness_findings",
    "setup",
    "short_comparison",
    "show_markdown",
    "show_tables",
    "sweep_commands",
]

IN_COLAB = "google.colab" in sys.modules
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"  # in a source checkout
COLAB_DRIVE = "/content/drive"  # where Colab mounts Google Drive


def setup(
    runs_dir: str | os.PathLike | None = None,
    needs_gpu: bool = True,
    data_dir: str | os.PathLike | None = None,
) -> str:
    """Print versions, the device the notebook will use and its data folder (``data_dir``
    as ``files.data_dir`` resolves it: the same whatever the working directory); return
    "cuda" or "cpu".

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
    print(f"Data folder: {files.data_dir(data_dir)} (DATA_DIR, else $REGIONMIX_DATA, else the "
          "repository's data/ once it holds a dataset, else $REGIONMIX_SHARED_DATA or "
          "../shared/data)")  # fmt: skip
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
    ``shapes`` data otherwise (offline, nothing on disk). The data folder is
    ``files.data_dir(data_dir)``.
    """
    download = IN_COLAB if download is None else download
    data_dir = files.data_dir(data_dir)
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
                    words += [
                        "--" + own.replace("_", "-"),
                        *declaration(own).format(own_value, sep=" ").split(),
                    ]
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
        report = sweep(absent, runs_dir, files.data_dir(data_dir), device)
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
        show_markdown(
            f"**These are{quick} runs on {datasets}, not the paper's setting (PreAct ResNet-18, "
            "400 epochs, CIFAR-10/100 or Tiny ImageNet): they cannot be compared with the "
            "paper. Its published numbers follow for reference only.**"
        )
        shown += [t for t in published_tables() if t.number in in_paper]
    for table in shown:
        frame, shared = _short_headers(table.frame)
        said = f" Every column of ours shares {shared}: left out of the headers." if shared else ""
        show_markdown(f"{table.caption}{said}\n\n{to_markdown(frame)}")
    return shown


def _short_headers(frame):
    """``frame`` with the recipe words every column label shares taken out of its headers
    (the first level of its columns), and those words (``viz.mixing.split_labels``)."""
    from regionmix_utils.viz.mixing import split_labels

    labels = list(dict.fromkeys(frame.columns.get_level_values(0)))
    short, shared = split_labels(labels)
    return frame.rename(columns=dict(zip(labels, short, strict=True)), level=0), shared


def show_markdown(text: str) -> None:
    """Show ``text`` as Markdown in a notebook, or print it elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(text))
            return
    except ImportError:
        pass
    print(text, end="\n\n")


def label_cam_figure(fig, labels, predictions: dict, classes):
    """Name what a ``viz.cam_figure`` shows (the images, then one column of maps per
    model, in ``predictions``' order): each row's true class beside its image, under
    each map the class its model predicts (green right, red wrong), and a colour bar
    for the maps. Returns the figure.

    Args:
        labels: [B] true classes of the rows; predictions: model -> [B] predictions.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    columns = 1 + len(predictions)
    axes = fig.axes[: len(labels) * columns]
    for row, truth in enumerate(labels.tolist()):
        axes[row * columns].set_ylabel(f"true: {classes[truth]}", fontsize=9)
        for col, model in enumerate(predictions, start=1):
            said = int(predictions[model][row])
            axes[row * columns + col].set_xlabel(
                f"predicted: {classes[said]}", fontsize=8,
                color="tab:green" if said == truth else "tab:red",
            )  # fmt: skip
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), "jet"),
                       cax=fig.add_axes((0.89, 0.3, 0.025, 0.4)))  # fmt: skip
    bar.set_label("Grad-CAM++ map of the true class\n(0: no evidence; 1: its maximum)")
    return fig


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


# ------------------------------------------------------------------ what the data say
# Every number in these sentences is read from the records or the runs' rows: the
# notebooks show them as Markdown, and never type one.


def _mean_sd(values) -> str:
    """ "52.80 ± 1.72%" over seeds ("52.80%" for one)."""
    import numpy as np

    values = [float(v) for v in values]
    if len(values) < 2:
        return f"{values[0]:.2f}%"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}%"


def _and(words) -> str:
    """ "a", "a and b", "a, b and c"."""
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


def attacks_ran(evaluations) -> str:
    """What was attacked, read from the records (``results.collect_evaluations`` rows):
    each attack setting with the ε it ran at on each image count, e.g. "FGSM at ε =
    1/255, 2/255 and 4/255 on 1,017 test images; PGD-10 at ε = 2/255 on 1,017 test
    images; PGD-10 at ε = 1/255 and 64/255 on 500 test images". Empty without attacks.
    """
    from regionmix_utils.evaluation.robustness import ATTACKS, attack_label
    from regionmix_utils.runs import eps_text

    rows = evaluations[evaluations["kind"].isin(ATTACKS)] if len(evaluations) else evaluations
    done: dict[tuple[str, int], set[float]] = {}
    for record in rows.to_dict("records"):
        key = (attack_label(record), int(record["n_images"]))
        done.setdefault(key, set()).add(round(record["eps"] * 255, 4))
    order = list(dict.fromkeys(attack for attack, _ in done))
    clauses = [
        f"{attack} at ε = {_and(eps_text(e / 255) for e in sorted(eps))} on "
        f"{_count(n, 'test image')}"
        for (attack, n), eps in sorted(done.items(), key=lambda i: (order.index(i[0][0]), -i[0][1]))
    ]  # fmt: skip
    return "; ".join(clauses)


def _verdict_counts(cells) -> str:
    """ "2 supported, 0 contradicted and 7 not resolved" of the rows with a verdict."""
    said = cells["verdict"].dropna()
    return _and(f"{int((said == v).sum())} {v}" for v in ("supported", "contradicted",
                                                          "not resolved"))  # fmt: skip


def _delta_text(row) -> str:
    """ "+6.16 points [+4.41, +7.90] over 5 seeds, Holm-adjusted p = 0.006: supported"."""
    import math

    text = f"{row.delta:+.2f} points"
    if not math.isnan(row.low):
        text += f" [{row.low:+.2f}, {row.high:+.2f}]"
    text += f" over {int(row.seeds)} seeds"
    if isinstance(row.verdict, str):
        p = row.p_holm if not math.isnan(row.p_holm) else row.p
        text += f", Holm-adjusted p = {p:.3f}: **{row.verdict}**"
    else:
        text += " (no declared claim: no verdict)"
    return text


def ce_findings(runs, comparison=None) -> str:
    """What notebook 03 shows, in words: each configuration's test accuracy with and
    without the clean CE term (mean ± std over seeds, from ``collect_runs`` rows), and
    the paired verdicts on the claims about the term between configurations in ``runs``
    (``comparison``: ``results.judge`` or ``compare`` output, e.g. ``reference_verdicts``;
    None: the numbers are said to be descriptive only)."""
    from regionmix_utils.viz.ablations import ablated_from
    from regionmix_utils.viz.mixing import split_labels

    rows = runs.assign(base=[ablated_from(p) for p in runs["path"]])
    short = dict(zip(rows["base"], split_labels(list(rows["base"]))[0], strict=True))
    parts, only = [], []
    for base, group in rows.groupby("base", sort=False):
        without = group[~group["clean_ce"]]
        if without.empty:
            only.append(f"{short[base]} {_mean_sd(group['test_acc'])}")
            continue
        said = [f"{_mean_sd(group.loc[group['clean_ce'], 'test_acc'])} with the clean CE term"]
        for matched, part in without.groupby("matched_compute"):
            extra = " and a second mixed pass in its place" if matched else ""
            said.append(f"{_mean_sd(part['test_acc'])} without it{extra}")
        seeds = group["seed"].nunique()
        parts.append(f"{short[base]} reached {_and(said)} (test accuracy, {seeds} seeds)")
    text = "; ".join(parts) + "." if parts else "No configuration ran without the clean CE term."
    if only:
        text += f" Trained with the term only: {_and(only)}."
    cells = _ce_rows(comparison, set(runs["label_ce"]))
    if cells is None or cells.empty:
        return text + " No paired test was run on these runs: the differences are descriptive."
    family = int(comparison.cells["verdict"].notna().sum())
    pairs = [f"{' − '.join(split_labels([r.a, r.b])[0])} = {_delta_text(r)}"
             for r in cells.itertuples()]  # fmt: skip
    return text + f" Paired over the same seeds (Holm over {family} claims): {'; '.join(pairs)}."


def _ce_rows(comparison, labels):
    """The rows of ``comparison`` that compare a configuration with its own ablation of
    the clean CE term, on clean test accuracy, both sides among ``labels``."""
    cells = _rows_about(comparison, labels)
    if cells is None:
        return None
    return cells[cells["b"].str.contains("w/o clean CE") & ~cells["a"].str.contains("w/o clean CE")
                 & (cells["metric"] == "clean test")]  # fmt: skip


def robustness_findings(evaluations, eps: float, checks: dict, comparison=None) -> str:
    """What notebook 04 shows, in words, from ``collect_evaluations`` rows: each attack's
    accuracy range across the configurations at ``eps`` (means over seeds), whether the
    multi-step attack lies below FGSM and reaches zero at the largest ε, the masking
    flags (``checks``: run path -> ``masking_check``), and the verdicts on the declared
    claims about attacks between the configurations in ``evaluations`` (``comparison``;
    None: no claim judged)."""
    from regionmix_utils.evaluation.robustness import ATTACKS, attack_label
    from regionmix_utils.runs import eps_text
    from regionmix_utils.viz.mixing import split_labels

    rows = evaluations[evaluations["kind"].isin(ATTACKS)]
    rows = rows.assign(attack=[attack_label(r) for r in rows.to_dict("records")],
                       config=split_labels(list(rows["label_ce"]))[0])  # fmt: skip
    at = rows[(rows["eps"] - eps).abs() < 1e-9]
    at = at[at["n_images"] == at.groupby("path")["n_images"].transform("max")]
    means = at.groupby(["attack", "config"])["accuracy"].mean()
    ranges = [
        f"under {attack} from {part.min():.2f}% ({part.idxmin()[1]}) to {part.max():.2f}% "
        f"({part.idxmax()[1]})"
        for attack, part in means.groupby(level=0, sort=False)
    ]  # fmt: skip
    n = _and(f"{v:,}" for v in sorted(set(at["n_images"]), reverse=True))
    text = (f"At ε = {eps_text(eps)} on {n} test images, accuracy runs {'; '.join(ranges)}, "
            f"across the {means.index.get_level_values(1).nunique()} configurations (means "
            "over seeds).")  # fmt: skip
    text += _multistep_text(rows, means)
    flagged = [path for path, c in checks.items() if any(c["flags"].values())]
    unchecked = sorted({str(f) for c in checks.values() for f, on in c["flags"].items()
                        if on is None})  # fmt: skip
    text += (f" No gradient-masking flag fired on any of the {len(checks)} runs checked"
             if not flagged else f" {len(flagged)} of {len(checks)} runs carry a "
             "gradient-masking flag (the table above says which): their FGSM numbers "
             "should not be read as robustness")  # fmt: skip
    text += (f" (flag {_and(unchecked)} could not be checked everywhere: the attacks it "
             "needs did not run)." if unchecked else ".")  # fmt: skip
    cells = _rows_about(comparison, set(evaluations["label_ce"]))
    if cells is not None:
        cells = cells[cells["metric"] != "clean test"]
    if cells is None or cells.empty or cells["verdict"].isna().all():
        return (
            text + " No declared claim about these attacks was judged: the differences "
            "between methods are descriptive."
        )
    text += (f" Of the {len(cells)} declared claims about attacks, {_verdict_counts(cells)} "
             f"(paired Δ from {cells['delta'].min():+.2f} to {cells['delta'].max():+.2f} "
             "points; notebook 08 has each)")  # fmt: skip
    unresolved = (cells["verdict"] == "not resolved").all()
    return text + (": these runs cannot tell the methods apart under these attacks."
                   if unresolved else ".")  # fmt: skip


def calibration_findings(stored: dict, ood_sentence: str | None = None) -> str:
    """What notebook 07 shows, in words: per configuration, the expected calibration error
    before -> after temperature scaling (mean over its seeds, from ``stored``: run ->
    (calibration record, logits, labels), as ``calibration.stored_calibration`` gives)
    and in how many seeds scaling raised it; then ``ood_sentence`` (``ood.ood_summary``),
    said to describe one model per method. No claim about either is declared, so the
    text gives no verdict."""
    from regionmix_utils.results import column_label
    from regionmix_utils.viz.mixing import split_labels

    groups: dict[str, list[dict]] = {}
    for run, (record, *_) in stored.items():
        groups.setdefault(column_label(run.config), []).append(record)
    if not groups:
        return "No run has a calibration record."
    names, shared = split_labels(list(groups))
    parts = []
    for name, records in zip(names, groups.values(), strict=True):
        before = sum(r["ece"] for r in records) / len(records)
        after = sum(r["ece_scaled"] for r in records) / len(records)
        raised = sum(r["ece_scaled"] > r["ece"] for r in records)
        parts.append(f"{name} {before:.2f} → {after:.2f}% (raised in {raised} of "
                     f"{_count(len(records), 'seed')})")  # fmt: skip
    n_images = {int(r["n_images"]) for records in groups.values() for r in records}
    text = (f"Expected calibration error before → after temperature scaling, mean over "
            f"seeds on {_and(f'{n:,}' for n in sorted(n_images))} test images"
            f"{f' ({shared})' if shared else ''}: {'; '.join(parts)}. No claim about "
            "calibration is declared: these numbers describe the runs shown, with no "
            "verdict.")  # fmt: skip
    if ood_sentence:
        text += (f"\n\n{ood_sentence} One trained model per method (the first seed): this "
                 "describes these models, not the methods.")  # fmt: skip
    return text


def cam_findings(maps: dict, labels, predictions: dict, scores: dict | None = None) -> str:
    """What notebook 05 shows, in words: how often each model is right on the images its
    maps explain, how many of its Grad-CAM++ maps are blank (no positive evidence for the
    true class), and, with ``scores`` (method -> ``cam.localisation_scores``), the
    pointing game read with its blank maps taken out.

    Args:
        maps: method -> [B, H, W] maps of the true classes; labels: [B] true classes.
        predictions: method -> [B] predicted classes for the same images.
    """
    from regionmix_utils.evaluation.cam import blank_maps

    n = len(labels)
    right = _and(f"{int((predictions[m] == labels).sum())} ({m})" for m in maps)
    blank = _and(f"{int(blank_maps(maps[m]).sum())} ({m})" for m in maps)
    text = (f"Of the first {_count(n, 'test image')}, the models classify {right} correctly. "
            f"Grad-CAM++ finds no positive evidence for the true class anywhere (a blank "
            f"map) on {blank} of them.")  # fmt: skip
    if scores:
        reads = []
        for m, score in scores.items():
            seen = score["n_maps"] - score["blank_maps"]
            hits = score["pointing_game"] * score["n_maps"]
            over_seen = f"{hits / seen:.2f} of its {seen} non-blank maps" if seen else "none"
            reads.append(f"{m} {score['pointing_game']:.2f} ({over_seen})")
        blanks = any(score["blank_maps"] for score in scores.values())
        text += (f" Over {_count(int(next(iter(scores.values()))['n_maps']), 'scored image')}, "
                 f"the map's peak falls in the object box at a rate of {_and(reads)}"
                 + (": a blank map counts as a miss, so part of a low score is maps that point "
                    "nowhere, not maps that point elsewhere." if blanks else "."))  # fmt: skip
    else:
        text += " This dataset has no object boxes, so the maps can only be compared by eye."
    return text + " One trained model per method: no test separates the methods here."


def _multistep_text(rows, means) -> str:
    """Whether PGD lies below FGSM at the same ε for every configuration, and what PGD
    leaves at the largest ε it ran ("" without PGD records)."""
    from regionmix_utils.runs import eps_text

    pgd = rows[rows["kind"] == "pgd"]
    attacks = set(means.index.get_level_values(0))
    if pgd.empty:
        return ""
    name, text = pgd["attack"].iloc[0], ""
    if {"FGSM", name} <= attacks:
        gap = (means["FGSM"] - means[name]).dropna()
        text = (f" {name} lies below FGSM for every configuration, by {gap.min():.2f} to "
                f"{gap.max():.2f} points." if (gap > 0).all() else
                f" {name} is not below FGSM for {_and(gap[gap <= 0].index)}.")  # fmt: skip
    top = pgd[pgd["eps"] == pgd["eps"].max()]
    end = top.groupby("config")["accuracy"].mean()
    left = (f"{end.min():.2f}% for every configuration" if end.min() == end.max()
            else f"{end.min():.2f} to {end.max():.2f}%")  # fmt: skip
    return text + (
        f" {name} at ε = {eps_text(top['eps'].iloc[0])} on "
        f"{_count(int(top['n_images'].max()), 'test image')} leaves {left}."
    )


def ablation_findings(frame, eps: float, comparison=None, labels=None) -> str:
    """What notebook 06 shows, in words, from ``ablations.ablation_frame`` rows: what
    the grid holds and what it cannot answer, the metrics against k (clean CE term on, λ
    per tile; mean ± std over seeds, at each α), the clean CE term where it was ablated,
    and the verdicts of ``comparison`` on clean accuracy and FGSM at ``eps`` between the
    configurations named ``labels`` (``collect_runs``' label_ce of the runs shown; None:
    all rows). Without ``comparison`` the numbers are said to be descriptive only."""
    from regionmix_utils.ablations import RANDOM, k_order
    from regionmix_utils.runs import eps_text

    modes = set(frame["lam_mode"]) if "lam_mode" in frame else {"batch"}
    frame = frame[frame["lam_mode"] == "batch"] if "lam_mode" in frame else frame
    ks, alphas = k_order(frame["k"]), sorted(set(frame["alpha"]))
    numbers = [int(k) for k in ks if k != RANDOM]
    missing = [*(["on α"] if len(alphas) == 1 else []),
               *([f"on k beyond {max(numbers)}"] if numbers and max(numbers) < 4 else []),
               *(["on random grids"] if RANDOM not in ks else []),
               *(["on λ drawn per tile and sample"] if modes == {"batch"} else [])]  # fmt: skip
    held = f"k = {_and(ks)} at α = {_and(f'{a:g}' for a in alphas)}"
    text = f"The runs here hold {held}" + (
        f": they cannot say how accuracy depends {_and(missing).replace(' and on', ' or on')}."
        if missing else ".")  # fmt: skip
    on = frame[frame["clean_ce"]]
    for alpha, part in on.groupby("alpha"):
        said = [f"{_mean_sd(g['test_acc'])} at k = {k}" for k, g in _by_k(part)]
        fgsm = [f"{_mean_sd(g['fgsm'].dropna())} at k = {k}" for k, g in _by_k(part)
                if g["fgsm"].notna().any()]  # fmt: skip
        text += f" With the clean CE term at α = {alpha:g}, test accuracy is {_and(said)}"
        text += f"; under FGSM at ε = {eps_text(eps)}, {_and(fgsm)}." if fgsm else "."
    off = frame[~frame["clean_ce"]]
    if not off.empty:
        said = [f"{_mean_sd(g['test_acc'])} at k = {k}" for k, g in _by_k(off)]
        text += f" Without the term: {_and(said)}."
    cells = _rows_about(comparison, labels)
    keep = ("clean test", f"FGSM ε={eps_text(eps)}")
    cells = None if cells is None else cells[cells["metric"].isin(keep) & cells["verdict"].notna()]
    if cells is None or cells.empty:
        return text + " No declared claim covers these runs: the differences are descriptive."
    from regionmix_utils.viz.mixing import split_labels

    pairs = [f"{r.metric}, {' − '.join(split_labels([r.a, r.b])[0])} = {_delta_text(r)}"
             for r in cells.itertuples()]  # fmt: skip
    return text + f" The declared claims among these runs: {'; '.join(pairs)}."


def _rows_about(comparison, labels=None):
    """The comparison's rows (``Comparison.cells``) whose both sides are among
    ``labels`` (all rows when None); None without a comparison. The verdicts stay those
    of the whole family judged: taking rows out does not change their Holm correction."""
    if comparison is None:
        return None
    cells = comparison.cells
    if labels is None:
        return cells
    labels = set(labels)
    return cells[cells["a"].isin(labels) & cells["b"].isin(labels)]


def reference_verdicts(study: str = "cpu-gated"):
    """The verdicts of the committed study's report: its declared family
    (``reference_family``) judged on all its runs (``results.judge``), so that a
    notebook showing some of the runs quotes the same Holm-corrected verdicts. None when
    the bundle is not here."""
    from regionmix_utils.results import collect_runs, judge
    from regionmix_utils.runs import find_runs
    from regionmix_utils.study import find_bundle

    bundle = find_bundle(study)
    if bundle is None or not find_runs(bundle):
        return None
    return judge(collect_runs(runs=find_runs(bundle)), reference_family(study), str(bundle))


def _by_k(rows):
    """(k, rows) groups in ``ablations.k_order``."""
    from regionmix_utils.ablations import k_order

    groups = dict(tuple(rows.groupby("k")))
    return [(k, groups[k]) for k in k_order(rows["k"]) if k in groups]


def claims_findings(comparison) -> str:
    """What notebook 08 shows, in words, from a ``results.judge``/``compare`` output: how
    many declared claims are supported, contradicted or not resolved, the resolved ones
    with their Δ, the range of Δ of the rest and the seeds they would take."""
    import re

    from regionmix_utils.viz.mixing import split_labels

    cells = comparison.cells[comparison.cells["verdict"].notna()]
    if cells.empty:
        return ("No comparison here judges a declared claim (one seed gives no test): the "
                "numbers are descriptive.")  # fmt: skip
    text = f"Of the {len(cells)} declared claims judged here, {_verdict_counts(cells)}."
    resolved = cells[cells["verdict"] != "not resolved"]
    if not resolved.empty:
        said = [f"{r.metric}, {' − '.join(split_labels([r.a, r.b])[0])} = {_delta_text(r)}"
                for r in resolved.itertuples()]  # fmt: skip
        text += f" Resolved: {'; '.join(said)}."
    rest = cells[cells["verdict"] == "not resolved"]
    if not rest.empty:
        seeds = [int(m.group(1).replace(",", "")) for plan in rest["plan"].dropna()
                 if (m := re.match(r"about ([\d,]+)", str(plan)))]  # fmt: skip
        plan = (f"; at the measured spread, resolving one would take about {min(seeds)} to "
                f"{max(seeds)} seeds" if seeds else "")  # fmt: skip
        text += (f" The {len(rest)} not resolved have Δ from {rest['delta'].min():+.2f} to "
                 f"{rest['delta'].max():+.2f} points over {int(rest['seeds'].max())} "
                 f"seeds{plan}: the data neither support nor contradict them.")  # fmt: skip
    datasets = _and(sorted(set(cells["dataset"])))
    return text + f" The verdicts are about these runs on {datasets}, not the paper's setting."


def short_comparison(comparison) -> tuple[pd.DataFrame, str]:
    """A comparison's table (``Comparison.frame``) that names only what differs between
    its rows: "A vs B" without the recipe words every configuration shares, and without
    the dataset column when there is one dataset; and those shared words and the dataset,
    to say once in its caption ("" when none)."""
    from regionmix_utils.results import dataset_title
    from regionmix_utils.viz.mixing import split_labels

    cells, frame = comparison.cells, comparison.frame.copy()
    sides, shared = split_labels([*cells["a"], *cells["b"]])
    frame["A vs B"] = [f"{a} vs {b}" for a, b in zip(sides[: len(cells)], sides[len(cells) :],
                                                      strict=True)]  # fmt: skip
    datasets = sorted(set(cells["dataset"]))
    said = [shared] if shared else []
    if len(datasets) == 1:
        frame = frame.set_index("A vs B")
        said.insert(0, f"dataset {dataset_title(datasets[0])}")
    return frame, ", ".join(said)


def claims_table(claims: list) -> pd.DataFrame:
    """The declared claims as a table: the paper's table, dataset, the claim, the metric
    it is about with its settings ("FGSM ε=2/255", "Square-100 ε=8/255", "clean test"),
    who declared it and the paper's Δ (the table and Δ columns only where a claim has
    them)."""
    import pandas as pd

    from regionmix_utils.evaluation.robustness import ATTACKS, attack_label
    from regionmix_utils.results import dataset_title
    from regionmix_utils.runs import eps_text

    def metric(claim) -> str:
        settings = dict(claim.settings)
        if claim.kind not in ATTACKS:
            return "clean test" if claim.kind == "clean" else claim.kind
        eps = f" ε={eps_text(settings['eps'])}" if "eps" in settings else ""
        return attack_label({"kind": claim.kind, **settings}) + eps

    frame = pd.DataFrame({
        "table": ["" if c.table is None else str(c.table) for c in claims],
        "dataset": [dataset_title(c.dataset) for c in claims],
        "claim": [c.text for c in claims],
        "metric": [metric(c) for c in claims],
        "declared by": [c.source if c.source == "paper" else f"study {c.source}" for c in claims],
        "paper Δ": ["" if c.paper_delta is None else f"{c.paper_delta:+.2f}" for c in claims],
    })  # fmt: skip
    return frame[[column for column in frame if not frame[column].eq("").all()]]
