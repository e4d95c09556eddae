"""What the notebooks share: set-up, an example batch, finding (or making) runs, and what
the runs show in words (every number read from the records; see docs/pipelines.md)."""

import contextlib
import os
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import jinja2
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from regionmix_utils import __version__, files, results
from regionmix_utils.ablations import RANDOM, k_order
from regionmix_utils.config import TrainConfig, identity, quick_config
from regionmix_utils.data import DatasetMissingError, load_dataset
from regionmix_utils.evaluation.cam import blank_maps
from regionmix_utils.evaluation.robustness import ATTACKS, attack_label
from regionmix_utils.methods import declaration
from regionmix_utils.progress import HEADLESS
from regionmix_utils.runs import WEIGHTS16, Run, eps_text, find_runs
from regionmix_utils.study import TEMPLATES, find_bundle, get_study, read_plan, study_plan
from regionmix_utils.sweeps import sweep
from regionmix_utils.viz.ablations import ablated_from
from regionmix_utils.viz.mixing import split_labels

IN_COLAB = "google.colab" in sys.modules
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"  # in a source checkout
COLAB_DRIVE = "/content/drive"  # where Colab mounts Google Drive


def setup(runs_dir: str | os.PathLike | None = None, needs_gpu: bool = True,
          data_dir: str | os.PathLike | None = None) -> str:  # fmt: skip
    """Print versions, device and data folder; return "cuda" or "cpu" (Colab: mount Drive)."""
    if runs_dir is not None and IN_COLAB and Path(runs_dir).resolve().is_relative_to(COLAB_DRIVE):
        from google.colab import drive  # only on Colab

        drive.mount(COLAB_DRIVE)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name() if device == "cuda" else "none"
    print(f"regionmix_utils {__version__}, torch {torch.__version__}, "
          f"Python {platform.python_version()}, GPU: {gpu}")  # fmt: skip
    if device == "cpu" and needs_gpu:
        hint = " (Runtime > Change runtime type > GPU)" if IN_COLAB else ""
        print(f"No GPU{hint}: quick mode runs on the CPU in minutes; the paper's full runs "
              "need a GPU.")  # fmt: skip
    print(f"Data folder: {files.data_dir(data_dir)} (DATA_DIR, else $REGIONMIX_DATA, else the "
          "repository's data/ once it holds a dataset, else $REGIONMIX_SHARED_DATA or "
          "../shared/data)")  # fmt: skip
    return device


def example_batch(
    n: int = 8, data_dir: str | os.PathLike | None = None, download: bool | None = None
) -> tuple[Tensor, Tensor, tuple[str, ...], str]:
    """``n`` test images [n, 3, H, W] in [0, 1], labels [n], class names, source (CIFAR-10 on
    disk, downloaded (default: on Colab), the subset, else shapes)."""
    download = IN_COLAB if download is None else download
    data_dir = files.data_dir(data_dir)
    attempts = [("cifar10", False, "CIFAR-10 test images (torchvision's files on disk)"),
                ("cifar10", True, "CIFAR-10 test images, downloaded by torchvision"),
                ("cifar10-subset", False, "CIFAR-10 test images (cifar10-subset.npz)")]  # fmt: skip
    for name, fetch, source in attempts:
        if fetch and not download:
            continue
        with contextlib.suppress(DatasetMissingError, OSError):  # OSError: offline (URLError)
            test = load_dataset(name, data_dir, download=fetch, n_train=1, n_test=n).test
            return test.images.float() / 255, test.labels, test.classes, source
    test = load_dataset("shapes", n_train=1, n_test=n).test
    source = "the embedded shapes data (offline, and no CIFAR-10 on disk)"
    return test.images.float() / 255, test.labels, test.classes, source


def _argv(name: str, value) -> list[str]:
    """One field of a run as the words of its option, every number in full (``repr``)."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else f"--no-{name.replace('_', '-')}"]
    if name == "switch":
        return [flag, *(f"{other}:{prob}" for other, prob in value)]
    return [flag, *map(str, value if isinstance(value, tuple) else [value])]


def _options(config: TrainConfig) -> list[str]:
    """The options that turn the defaults of ``config``'s dataset, method and seed into it."""
    reference = TrainConfig(dataset=config.dataset, method=config.method, seed=config.seed)
    reference = quick_config(reference) if config.quick else reference
    words = ["--quick"] if config.quick else []
    for name, value in identity(config).items():
        default = getattr(reference, name)
        if name == "params":  # the method's own parameters, each its own option
            for own, own_value in value:
                if own_value != dict(default).get(own, declaration(own).default):
                    words += _argv(own, own_value)
        elif name not in ("dataset", "method", "seed", "quick") and value != default:
            words += _argv(name, value)
    return words


def sweep_commands(configs: list[TrainConfig], runs_dir: str | os.PathLike) -> list[str]:
    """``regionmix sweep`` commands that train exactly ``configs``, seeds grouped."""
    groups: dict[tuple, list[str]] = {}
    for c in configs:
        groups.setdefault((c.dataset, c.method, *_options(c)), []).append(str(c.seed))
    return [" ".join(["regionmix", "sweep", "--datasets", dataset, "--methods", method,
                      "--seeds", *dict.fromkeys(seeds), *options, "--runs-dir", str(runs_dir)])
            for (dataset, method, *options), seeds in groups.items()]  # fmt: skip


def ensure_runs(configs: list[TrainConfig], runs_dir: str | os.PathLike, quick: bool,
                data_dir: str | os.PathLike | None = None, device: str = "auto",
                missing: str = "raise") -> list[Run]:  # fmt: skip
    """The finished runs for ``configs``; quick mode trains the missing ones, else the commands
    that make them are a FileNotFoundError (``missing="raise"``) or printed (``"report"``)."""
    if missing not in ("raise", "report"):
        raise ValueError(f"missing must be 'raise' or 'report', got {missing!r}")
    configs = list(dict.fromkeys(quick_config(c) if quick else c for c in configs))
    absent = [c for c in configs if not Run.of(runs_dir, c).finished]
    if absent and not quick:
        message = (f"{len(absent)} of {len(configs)} run(s) are missing under {runs_dir}, e.g. "
                   f"{Run.of(runs_dir, absent[0]).path}. Train them first:\n  "
                   + "\n  ".join(sweep_commands(absent, runs_dir)))  # fmt: skip
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


# ------------------------------------------------------------ the committed reference study


def reference_label(runs: list[Run]) -> str:
    """ "reference runs: real CIFAR-10, 2,000 training images, ..." """
    configs = [run.config for run in runs]
    commits = {(run.record.get("environment") or {}).get("git_commit") for run in runs} - {None}
    fields = {f: sorted({getattr(c, f) for c in configs} - {None})
              for f in ("n_train", "width", "epochs")}  # fmt: skip
    return _say("reference", **fields, seeds=len({c.seed for c in configs}),
                commits=[c[:7] for c in sorted(commits)])  # fmt: skip


def reference_family(study: str = "cpu-gated") -> list:
    """The committed study's claims at its primary ε; FileNotFoundError without the bundle."""
    bundle, found = find_bundle(study), get_study(study)
    if bundle is None:
        raise FileNotFoundError(f"the bundle of study {study!r} is not here")
    return found.family(plan=study_plan(found, bundle))


def reference_eps(study: str = "cpu-gated") -> float:
    """The committed study's attack ε: its pilot's primary ε, else its ``square_eps``."""
    bundle = find_bundle(study)
    plan = None if bundle is None else read_plan(bundle)
    return plan["primary_eps"] if plan and "primary_eps" in plan else get_study(study).square_eps


def reference_runs(methods: tuple[str, ...] | None = None, clean_ce: bool | None = None,
                   with_weights: bool = False, study: str = "cpu-gated",
                   matched_compute: bool | None = None) -> list[Run] | None:  # fmt: skip
    """The committed runs matching the filters (None: any), or None without the bundle.
    ``with_weights``: runs whose weights it keeps. ValueError: no match."""
    bundle = find_bundle(study)
    if bundle is None or not (found := find_runs(bundle)):
        print("The committed reference runs are not here (they come with a clone of the "
              "repository); training small runs instead.")  # fmt: skip
        return None
    runs = [run for run in found if clean_ce in (None, run.config.clean_ce)
            and matched_compute in (None, run.config.matched_compute)
            and (methods is None or run.config.method in methods)
            and (not with_weights or (run.path / WEIGHTS16).exists())]  # fmt: skip
    if not runs:
        raise ValueError(f"the reference runs under {bundle} hold no run of {methods=}, "
                         f"{clean_ce=}, {with_weights=}, {matched_compute=}")  # fmt: skip
    print(f"{reference_label(runs)}: {len(runs)} runs from {bundle}")
    return runs


def reference_verdicts(study: str = "cpu-gated"):
    """The committed study's family judged on all its runs; None without the bundle."""
    bundle = find_bundle(study)
    if bundle is None or not (runs := find_runs(bundle)):
        return None
    return results.judge(results.collect_runs(runs=runs), reference_family(study), str(bundle))


# ------------------------------------------------------------------------ showing things


def show_markdown(text: str) -> None:
    """``text`` as Markdown in a notebook, printed elsewhere."""
    with contextlib.suppress(ImportError):
        from IPython import get_ipython  # heavy: only inside a notebook
        from IPython.display import Markdown, display  # heavy: only inside a notebook

        if get_ipython() is not None:
            display(Markdown(text))
            return
    print(text, end="\n\n")


def show_tables(runs, numbers: tuple[int, ...], accuracy: str = "final",
                keep: Callable | None = None) -> list:  # fmt: skip
    """Show and return our tables ``numbers`` (``keep``-filtered), the published ones added
    where none is in the paper's setting."""
    shown = [t for t in results.paper_tables(runs, accuracy) if t.number in numbers
             and (keep is None or keep(t))]  # fmt: skip
    in_paper = [n for n in numbers if n <= 4]  # 5 and 6 go beyond the paper
    if in_paper and not any(t.has_paper for t in shown):
        show_markdown(_say("not_the_paper", quick=runs["quick"].any(),
                           datasets=sorted(set(runs["dataset"]))))  # fmt: skip
        shown += [t for t in results.published_tables() if t.number in in_paper]
    for table in shown:
        labels = list(dict.fromkeys(table.frame.columns.get_level_values(0)))
        short, shared = split_labels(labels)
        frame = table.frame.rename(columns=dict(zip(labels, short, strict=True)), level=0)
        said = f" Every column of ours shares {shared}: left out of the headers." if shared else ""
        show_markdown(f"{table.caption}{said}\n\n{results.to_markdown(frame)}")
    return shown


def label_cam_figure(fig, labels, predictions: dict, classes):
    """Label a ``viz.cam_figure``: true class [B], predictions (model -> [B]), colour bar."""
    from matplotlib import cm, colors  # heavy: only the figure needs it

    columns = 1 + len(predictions)
    for row, truth in enumerate(labels.tolist()):
        image, *cams = fig.axes[row * columns : (row + 1) * columns]
        image.set_ylabel(f"true: {classes[truth]}", fontsize=9)
        for ax, said in zip(cams, (int(p[row]) for p in predictions.values()), strict=True):
            ax.set_xlabel(f"predicted: {classes[said]}", fontsize=8,
                          color="tab:green" if said == truth else "tab:red")  # fmt: skip
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    bar = fig.colorbar(cm.ScalarMappable(colors.Normalize(0, 1), "jet"),
                       cax=fig.add_axes((0.89, 0.3, 0.025, 0.4)))  # fmt: skip
    bar.set_label("Grad-CAM++ map of the true class\n(0: no evidence; 1: its maximum)")
    return fig


def execute_notebook(notebook: str | os.PathLike, out_dir: str | os.PathLike,
                     parameters: dict | None = None, html: bool = True,
                     timeout: int = 1200) -> Path:  # fmt: skip
    """Run a notebook headless with papermill into ``out_dir/NAME.ipynb`` (and ``.html``)."""
    import papermill  # heavy: the dev extra

    notebook, out_dir = Path(notebook), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / notebook.name
    with mock.patch.dict(os.environ, {HEADLESS: "1"}):  # the kernel inherits it
        # The kernel listens on localhost only: its start-up warning about plain TCP (ipykernel
        # 7.4) is noise on every run, so the kernel logs errors only; cells' output is unchanged.
        papermill.execute_notebook(str(notebook), str(executed), parameters=parameters or {},
                                   cwd=str(notebook.parent), kernel_name="python3",
                                   progress_bar=False, execution_timeout=timeout,
                                   extra_arguments=["--IPKernelApp.log_level=ERROR"])  # fmt: skip
    if html:
        from nbconvert import HTMLExporter  # heavy: comes with papermill

        body, _ = HTMLExporter().from_filename(str(executed))
        executed.with_suffix(".html").write_text(body)
    return executed


def short_comparison(comparison) -> tuple[pd.DataFrame, str]:
    """A ``Comparison.frame`` naming only what differs, and what it left out, for its caption."""
    cells, frame = comparison.cells, comparison.frame.copy()
    sides, shared = split_labels([*cells["a"], *cells["b"]])
    n = len(cells)
    frame["A vs B"] = [f"{a} vs {b}" for a, b in zip(sides[:n], sides[n:], strict=True)]
    datasets, said = sorted(set(cells["dataset"])), [shared] if shared else []
    if len(datasets) == 1:
        frame = frame.set_index("A vs B")
        said.insert(0, f"dataset {results.dataset_title(datasets[0])}")
    return frame, ", ".join(said)


def _metric(claim) -> str:
    """ "clean test", "FGSM ε=2/255", "Square-100 ε=8/255"."""
    if claim.kind not in ATTACKS:
        return "clean test" if claim.kind == "clean" else claim.kind
    settings = dict(claim.settings)
    eps = f" ε={eps_text(settings['eps'])}" if "eps" in settings else ""
    return attack_label({"kind": claim.kind, **settings}) + eps


def claims_table(claims: list) -> pd.DataFrame:
    """The declared claims: table, dataset, claim, metric, who declared it, the paper's Δ."""
    frame = pd.DataFrame({
        "table": ["" if c.table is None else str(c.table) for c in claims],
        "dataset": [results.dataset_title(c.dataset) for c in claims],
        "claim": [c.text for c in claims],
        "metric": [_metric(c) for c in claims],
        "declared by": [c.source if c.source == "paper" else f"study {c.source}" for c in claims],
        "paper Δ": ["" if c.paper_delta is None else f"{c.paper_delta:+.2f}" for c in claims],
    })  # fmt: skip
    return frame[[column for column in frame if not frame[column].eq("").all()]]


# ------------------------------------ what the data say (sentences: templates/findings.md.j2)


def _and(words, last: str = "and") -> str:
    """ "a", "a and b", "a, b and c"."""
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


def _mean_sd(values) -> str:
    """ "52.80 ± 1.72%" over seeds ("52.80%" for one)."""
    values = [float(v) for v in values]
    spread = f" ± {np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
    return f"{np.mean(values):.2f}{spread}%"


_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                          undefined=jinja2.StrictUndefined)  # fmt: skip
_ENV.filters |= {"listed": _and, "eps": eps_text, "num": "{:.2f}".format,
                 "signed": "{:+.2f}".format, "thousands": "{:,}".format}  # fmt: skip
_ENV.globals |= {"count": _count, "split_labels": split_labels}


def _say(finding: str, **values) -> str:
    """The ``finding`` macro of ``templates/findings.md.j2``, its whitespace collapsed."""
    return " ".join(str(getattr(_ENV.get_template("findings.md.j2").module, finding)(**values))
                    .split())  # fmt: skip


def _rows_about(comparison, labels, keep: Callable) -> pd.DataFrame | None:
    """The rows with both sides among ``labels`` (None: all) that ``keep`` keeps, else None."""
    if comparison is None:
        return None
    cells = comparison.cells
    if labels is not None:
        cells = cells[cells["a"].isin(labels) & cells["b"].isin(labels)]
    cells = cells[keep(cells)]
    return None if cells.empty else cells


def attacks_ran(evaluations) -> str:
    """ "FGSM at ε = 1/255 and 2/255 on 1,017 test images; PGD-10 at ..." from
    ``results.collect_evaluations`` rows; "" without attacks."""
    rows = evaluations[evaluations["kind"].isin(ATTACKS)] if len(evaluations) else evaluations
    done: dict[str, dict[int, set[float]]] = {}  # attack -> test images -> ε x 255
    for record in rows.to_dict("records"):
        by_n = done.setdefault(attack_label(record), {})
        by_n.setdefault(int(record["n_images"]), set()).add(round(record["eps"] * 255, 4))
    return "; ".join(f"{attack} at ε = {_and(eps_text(e / 255) for e in sorted(eps))} on "
                     f"{_count(n, 'test image')}" for attack, by_n in done.items()
                     for n, eps in sorted(by_n.items(), reverse=True))  # fmt: skip


def ce_findings(runs, comparison=None) -> str:
    """Notebook 03: accuracy with and without the clean CE term, and the verdicts on it."""
    rows = runs.assign(base=[ablated_from(p) for p in runs["path"]])
    short = dict(zip(rows["base"], split_labels(list(rows["base"]))[0], strict=True))
    configs = [{"name": short[base], "seeds": group["seed"].nunique(),
                "with": _mean_sd(group.loc[group["clean_ce"], "test_acc"]),
                "without": [(_mean_sd(part["test_acc"]), matched) for matched, part
                            in group[~group["clean_ce"]].groupby("matched_compute")]}
               for base, group in rows.groupby("base", sort=False)]  # fmt: skip
    cells = _rows_about(comparison, set(runs["label_ce"]), lambda c: (c["metric"] == "clean test")
                        & c["b"].str.contains("w/o clean CE")  # against its own ablation
                        & ~c["a"].str.contains("w/o clean CE"))  # fmt: skip
    family = None if comparison is None else int(comparison.cells["verdict"].notna().sum())
    return _say("ce", configs=configs, cells=cells, family=family)


def robustness_findings(evaluations, eps: float, checks: dict, comparison=None) -> str:
    """Notebook 04: attacks at ``eps``, PGD vs FGSM, masking ``checks`` (path -> flags)."""
    rows = evaluations[evaluations["kind"].isin(ATTACKS)]
    rows = rows.assign(attack=[attack_label(r) for r in rows.to_dict("records")],
                       config=split_labels(list(rows["label_ce"]))[0])  # fmt: skip
    at = rows[(rows["eps"] - eps).abs() < 1e-9]
    at = at[at["n_images"] == at.groupby("path")["n_images"].transform("max")]
    means = at.groupby(["attack", "config"])["accuracy"].mean()
    pgd = rows[rows["kind"] == "pgd"]
    name = None if pgd.empty else pgd["attack"].iloc[0]
    gap = None  # is the multi-step attack below FGSM
    if name and {"FGSM", name} <= set(means.index.get_level_values(0)):
        gap = (means["FGSM"] - means[name]).dropna()
    cells = _rows_about(comparison, set(evaluations["label_ce"]),
                        lambda c: c["metric"] != "clean test")  # fmt: skip
    return _say("robustness", eps=eps, means=means, gap=gap, pgd=name, checks=len(checks),
                n_images=[f"{v:,}" for v in sorted(set(at["n_images"]), reverse=True)],
                cells=None if cells is None or cells["verdict"].isna().all() else cells,
                flagged=sum(any(c["flags"].values()) for c in checks.values()),
                unchecked=sorted({str(f) for c in checks.values()
                                  for f, on in c["flags"].items() if on is None}),
                top=pgd[pgd["eps"] == pgd["eps"].max()])  # fmt: skip


def calibration_findings(stored: dict, ood_sentence: str | None = None) -> str:
    """Notebook 07: mean ECE before -> after temperature scaling (``stored``: run -> (record,
    logits, labels)), then ``ood_sentence``."""
    groups: dict[str, list[dict]] = {}
    for run, (record, *_) in stored.items():
        groups.setdefault(results.column_label(run.config), []).append(record)
    names, shared = split_labels(list(groups))
    configs = [{"name": name, "before": np.mean([r["ece"] for r in records]),
                "after": np.mean([r["ece_scaled"] for r in records]), "seeds": len(records),
                "raised": sum(r["ece_scaled"] > r["ece"] for r in records)}
               for name, records in zip(names, groups.values(), strict=True)]  # fmt: skip
    n_images = [f"{n:,}" for n in sorted({int(r["n_images"]) for g in groups.values() for r in g})]
    text = _say("calibration", configs=configs, shared=shared, n_images=n_images)
    return f"{text}\n\n{_say('ood', sentence=ood_sentence)}" if ood_sentence and groups else text


def cam_findings(maps: dict, labels, predictions: dict, scores: dict | None = None) -> str:
    """Notebook 05: right predictions, blank maps ([B, H, W] per method), pointing game."""
    return _say("cam", n=len(labels), scores=scores,
                right=[f"{int((predictions[m] == labels).sum())} ({m})" for m in maps],
                blank=[f"{int(blank_maps(maps[m]).sum())} ({m})" for m in maps])  # fmt: skip


def _at_k(rows, column: str = "test_acc") -> list[tuple[str, object]]:
    """(mean ± std over seeds, k) in ``ablations.k_order``, groups without values left out."""
    groups = dict(tuple(rows.groupby("k")))
    return [(_mean_sd(groups[k][column].dropna()), k) for k in k_order(rows["k"])
            if k in groups and groups[k][column].notna().any()]  # fmt: skip


def ablation_findings(frame, eps: float, comparison=None, labels=None) -> str:
    """Notebook 06 (``ablation_frame`` rows): the grid's gaps, metrics vs k, verdicts."""
    modes = set(frame["lam_mode"]) if "lam_mode" in frame else {"batch"}
    frame = frame[frame["lam_mode"] == "batch"] if "lam_mode" in frame else frame
    ks, alphas = k_order(frame["k"]), sorted(set(frame["alpha"]))
    numbers = [int(k) for k in ks if k != RANDOM]
    missing = [*(["on α"] if len(alphas) == 1 else []),
               *([f"on k beyond {max(numbers)}"] if numbers and max(numbers) < 4 else []),
               *(["on random grids"] if RANDOM not in ks else []),
               *(["on λ drawn per tile and sample"] if modes == {"batch"} else [])]  # fmt: skip
    clean = [(f"{alpha:g}", _at_k(part), _at_k(part, "fgsm") if part["fgsm"].notna().any()
              else []) for alpha, part in frame[frame["clean_ce"]].groupby("alpha")]  # fmt: skip
    cells = _rows_about(comparison, labels, lambda c: c["verdict"].notna()
                        & c["metric"].isin(("clean test", f"FGSM ε={eps_text(eps)}")))  # fmt: skip
    return _say("ablation", ks=[str(k) for k in ks], alphas=[f"{a:g}" for a in alphas],
                missing=missing, clean=clean, off=_at_k(frame[~frame["clean_ce"]]), eps=eps,
                cells=cells)  # fmt: skip


def claims_findings(comparison) -> str:
    """Notebook 08: the verdict counts, the resolved claims and the seeds the rest would take."""
    cells = comparison.cells[comparison.cells["verdict"].notna()]
    rest = cells.loc[cells["verdict"] == "not resolved", "plan"].dropna()
    seeds = [int(m.group(1).replace(",", "")) for plan in rest
             if (m := re.match(r"about ([\d,]+)", str(plan)))]  # fmt: skip
    return _say("claims", cells=cells, seeds=seeds)
