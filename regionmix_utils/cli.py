"""The ``regionmix`` command: train, sweep, study, report, attack, evaluate, cam, table,
download, demo.

Method names and their settings' options come from the method registry, so a
registered method is a ``--method`` choice, and every setting it reads (its own
parameters too) an option; dataset choices come from the dataset registry, and
``evaluate``'s kinds from the evaluation registry. Modules named in
``$REGIONMIX_PLUGINS`` (comma-separated, importable from the current folder) are
imported first, so the methods, datasets and evaluations they register are there too.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import itertools
import os
import sys
from fractions import Fraction
from pathlib import Path

from regionmix_utils.config import LR_SCHEDULES, TrainConfig, quick_config
from regionmix_utils.data import dataset_names
from regionmix_utils.methods import (
    SETTINGS,
    declaration,
    get_method,
    method_names,
    methods,
    setting_names,
)
from regionmix_utils.runs import ACCURACY_CHOICES


def _fraction(text: str) -> float:
    """``8/255`` or ``0.03`` as a float."""
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError) as err:
        raise argparse.ArgumentTypeError(f"not a number or fraction: {text!r}") from err


def _positive_int(text: str) -> int:
    """An integer >= 1 (attack steps, image counts)."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def _add_setting_options(parser: argparse.ArgumentParser, several: bool) -> None:
    """One option per method setting, shared (``--k``, ``--alpha``, ``--sides``) or a
    method's own (``--decay-power``), from the declarations in the method registry; a
    sweep takes several values of a number (a grid), one set of a set-valued setting."""
    for name in setting_names():
        setting = declaration(name)
        readers = [m.name for m in methods() if name in m.setting_names]
        default = setting.default
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=setting.type,
            nargs="+" if several or setting.several else None,
            default=[default] if several and not setting.several else default,
            help=f"{setting.help} (read by: {', '.join(readers) or 'none'}; "
            f"default {setting.format(default, sep=' ')})",
        )


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    from regionmix_utils.train import GPU_CHECKPOINT_EVERY

    defaults = TrainConfig()
    parser.add_argument(
        "--no-clean-ce", action="store_true", help="drop CE(f(x_A), y_A) (Table 2 ablation)"
    )
    parser.add_argument(
        "--concat-forward", action="store_true", help="one forward pass over [x_A; x~]"
    )
    parser.add_argument(
        "--matched-compute",
        action="store_true",
        help="with --no-clean-ce: a second mixed pass in the clean term's place (the same "
        "forward/backward passes a step as with the term; folder suffix -2mix)",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--momentum", type=float, default=defaults.momentum)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--nesterov", action="store_true", help="Nesterov momentum (paper: off)")
    parser.add_argument(
        "--lr-schedule", default=defaults.lr_schedule, choices=LR_SCHEDULES,
        help="step: lr times --lr-gamma after each of --milestones (the paper's); "
        "hold-cosine: lr held for half the epochs, then cosine towards zero",
    )  # fmt: skip
    parser.add_argument(
        "--milestones", type=int, nargs="+", default=list(defaults.milestones), metavar="EPOCH",
        help="epochs after which the step schedule multiplies lr by --lr-gamma",
    )  # fmt: skip
    parser.add_argument("--lr-gamma", type=float, default=defaults.lr_gamma)
    parser.add_argument(
        "--pad", type=int, default=defaults.pad,
        help="zero padding before the random crop, pixels on each side",
    )  # fmt: skip
    parser.add_argument(
        "--stem-stride", type=int, default=defaults.stem_stride, choices=[1, 2],
        help="stride of the first conv: 1 (ours; layer4 at 8x8 on Tiny ImageNet) or 2 "
        "(PuzzleMix / Co-Mixup on 64 px images)",
    )  # fmt: skip
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--width", type=int, default=defaults.width, help="first-stage channels")
    parser.add_argument(
        "--n-train", type=int, default=None, help="a class-stratified sample of N train images"
    )
    parser.add_argument("--n-test", type=int, default=None, help="likewise for the test split")
    parser.add_argument(
        "--holdout", type=int, default=defaults.holdout,
        help="keep N training images out of training, to fit a temperature on",
    )  # fmt: skip
    parser.add_argument(
        "--mix-prob", type=float, default=defaults.mix_prob,
        help="mix a batch with this probability, else train it on the clean loss only",
    )  # fmt: skip
    parser.add_argument(
        "--switch", nargs="+", default=[], metavar="METHOD:P",
        help="use METHOD for a batch with probability P (the rest use the run's method)",
    )  # fmt: skip
    parser.add_argument("--mix-off-epoch", type=int, default=None, help="no mixing from epoch N on")
    parser.add_argument(
        "--label-smoothing", type=float, default=defaults.label_smoothing,
        help="ε: targets (1 - ε) y + ε / K, clean and mixed",
    )  # fmt: skip
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--data-dir", default=None, help="default: $REGIONMIX_DATA, else the "
                        "checkout's data/ (the same from any working directory)")  # fmt: skip
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--quick", action="store_true",
        help="a CPU smoke test: 4 epochs, width 8, 2000 train / 500 test images",
    )  # fmt: skip
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=defaults.amp)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument(
        "--checkpoint-every", type=_positive_int, default=None, metavar="N",
        help="epochs between checkpoints (last.pt); default: every epoch on the CPU, every "
        f"{GPU_CHECKPOINT_EVERY} on a GPU. final.pt is always written",
    )  # fmt: skip
    parser.add_argument(
        "--download", action="store_true",
        help="download the dataset into --data-dir when it is not there (CIFAR through "
        "torchvision, MD5-checked; Tiny ImageNet's official zip)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true")


def _config(args, dataset: str, method: str, seed: int, **settings) -> TrainConfig:
    """The run the options describe: every ``TrainConfig`` field that has an option of
    its name, the shared settings, and the own parameters of the method (and of the
    methods it switches to); the other methods' parameters are left out."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - set(SETTINGS) - {
        "params", "dataset", "method", "seed"}  # fmt: skip
    values = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    values |= {"clean_ce": not args.no_clean_ce, "switch": tuple(args.switch)}
    for name in ("milestones",):  # several values on the command line, a tuple in a config
        values[name] = tuple(values[name])
    own = {n for m in (method, *(e.partition(":")[0] for e in args.switch))
           for n in get_method(m).params}  # fmt: skip
    config = TrainConfig(
        **values, dataset=dataset, method=method, seed=seed,
        **{name: value for name, value in settings.items() if name in SETTINGS},
        params={name: value for name, value in settings.items() if name in own},
    )  # fmt: skip
    return quick_config(config) if args.quick else config


def sweep_configs(args) -> list[TrainConfig]:
    """datasets x methods x every setting's values x seeds; a method that ignores a
    setting gets one run, not one per value (configs are normalised, then deduplicated)."""
    names = setting_names()
    values = [
        [tuple(getattr(args, name))] if declaration(name).several else getattr(args, name)
        for name in names
    ]
    configs = [
        _config(args, dataset, method, seed, **dict(zip(names, combo, strict=True)))
        for dataset, method, *combo, seed in itertools.product(
            args.datasets, args.methods, *values, args.seeds
        )
    ]
    return list(dict.fromkeys(configs))


def _cmd_train(args) -> int:
    from regionmix_utils.train import train

    settings = {name: getattr(args, name) for name in setting_names()}
    config = _config(args, args.dataset, args.method, args.seed, **settings)
    result = train(config, args.runs_dir, args.data_dir, args.device, progress=not args.no_progress)
    state = "already finished" if result.skipped else "finished"
    print(f"{result.path}: {state}, test accuracy {result.final_acc:.2f}%")
    return 0


def _worker_argv(argv: list[str]) -> list[str]:
    """The sweep command line for one local worker: ``--workers`` set to 1, no bars."""
    kept, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--workers":
            skip = True
        elif not word.startswith("--workers="):
            kept.append(word)
    return [*kept, "--workers", "1", "--no-progress"]


def _cmd_sweep(args) -> int:
    from regionmix_utils import sweeps

    configs = sweep_configs(args)
    if args.status:
        print(sweeps.format_status(sweeps.status(configs, args.runs_dir)))
        return 0
    if args.slurm_partition:
        executor = sweeps.slurm_executor(
            Path(args.runs_dir) / ".submitit", args.slurm_partition, args.slurm_time,
            args.gpus_per_node, args.max_parallel,
        )  # fmt: skip
        jobs = sweeps.submit(configs, args.runs_dir, args.data_dir, executor)
        print(f"submitted {len(jobs)} of {len(configs)} runs (the others are finished)")
        if jobs:
            print(f"job array {str(jobs[0].job_id).split('_')[0]}; follow it with the same "
                  "command and --status")  # fmt: skip
        return 0
    workers = args.workers or sweeps.default_workers()
    if workers > 1 and args.download:  # once, before the workers would race for it
        from regionmix_utils.data import load_dataset

        for dataset in dict.fromkeys(c.dataset for c in configs):
            load_dataset(dataset, args.data_dir, download=True, n_train=1, n_test=1)
    if workers > 1:
        print(f"{len(configs)} runs on {workers} workers")
        argv = _worker_argv(args.argv)
        return sweeps.run_workers(argv, workers, configs, args.runs_dir, not args.no_progress)
    print(f"{len(configs)} runs")
    report = sweeps.sweep(configs, args.runs_dir, args.data_dir, args.device, not args.no_progress)
    for r in report.results:
        print(f"{r.path}: test accuracy {r.final_acc:.2f}%")
    if not report.ok:
        print(f"{len(report.failures)} of {len(configs)} runs failed (see above); the others "
              "went on", file=sys.stderr)  # fmt: skip
    return 0 if report.ok else 1


def _cmd_study(args) -> int:
    import time

    from regionmix_utils import study as studies
    from regionmix_utils import sweeps

    study = studies.get_study(args.name)
    runs_dir = args.runs_dir or f"runs/{study.name}"
    configs = study.configs(args.dataset)
    if args.status:
        print(sweeps.format_status(sweeps.status(configs, runs_dir)))
        return 0
    workers = args.workers
    print(f"study {study.name}: {len(configs)} runs ({study.describe()}) under {runs_dir}, "
          f"{workers} worker(s)")  # fmt: skip
    # An interrupted invocation counts too: the study's time is the sum of its invocations,
    # each written as it runs (``study.timed``), so a kill loses at most a minute of it.
    timing = contextlib.nullcontext(time.time()) if args.as_worker else studies.timed(
        runs_dir, workers)  # fmt: skip
    with timing as started:
        code = _study_invocation(args, study, runs_dir, configs, workers)
    if not args.as_worker:
        total = studies.study_timing(runs_dir)
        minutes, count = total["seconds"] / 60, total["invocations"]
        print(f"study {study.name}: this invocation {time.time() - started:.0f} s; the "
              f"study {minutes:.1f} min over {count} invocation(s)")  # fmt: skip
    if code == 0 and args.export:
        bundle = studies.export_bundle(study, runs_dir, args.export, args.dataset, args.data_dir)
        print(f"bundle: {bundle}")
    return code


def _study_invocation(args, study, runs_dir: str, configs: list, workers: int) -> int:
    """The pilot (on all the cores, before any worker), then the study's runs."""
    from regionmix_utils import study as studies
    from regionmix_utils import sweeps

    if not args.as_worker:
        try:
            plan = studies.run_pilot(study, runs_dir, args.data_dir, args.device,
                                     args.dataset, not args.no_progress)  # fmt: skip
        except studies.StudyGateError as error:
            print(error, file=sys.stderr)
            return 1
        if plan is not None:
            print(studies.gate_message(plan))
            if "primary_eps" in plan:
                print(f"primary ε = {plan['primary_eps'] * 255:g}/255: {plan['rule']}")
    if workers > 1:
        argv = ["study", study.name, "--runs-dir", runs_dir, "--workers", "1",
                "--no-progress", "--as-worker",
                *(["--dataset", args.dataset] if args.dataset else []),
                *(["--data-dir", args.data_dir] if args.data_dir else [])]  # fmt: skip
        return sweeps.run_workers(argv, workers, configs, runs_dir, not args.no_progress, gpus=0)
    studies.run_study(study, runs_dir, args.data_dir, args.device, args.dataset,
                      not args.no_progress)  # fmt: skip
    return 0


def _cmd_report(args) -> int:
    from regionmix_utils.report import study_report, write_study_report
    from regionmix_utils.study import get_study

    study = get_study(args.study)
    report = study_report(study, args.bundle)
    out = write_study_report(study, args.out, report=report)
    print(f"report: {out}")
    if args.readme:
        from regionmix_utils.report import update_readme

        changed = update_readme(args.readme, report)
        print(f"{args.readme}: results {'updated' if changed else 'unchanged'}")
    return 0


def _cmd_download(args) -> int:
    from regionmix_utils.data import cifar, data_root, download_tinyimagenet
    from regionmix_utils.evaluation.corruptions import SOURCES, download_corruptions

    print(f"data folder: {data_root(args.data_dir)}")
    for name in args.datasets:
        if name in SOURCES:
            print(download_corruptions(name, args.data_dir))
        elif name == "tinyimagenet":
            print(download_tinyimagenet(args.data_dir))
        else:
            cifar(name, args.data_dir, download=True)
            print(f"{name}: ready")
    return 0


def _finished_runs(args):
    from regionmix_utils.runs import find_runs

    runs = find_runs(args.runs_dir, getattr(args, "dataset", None))
    if not runs:
        raise FileNotFoundError(f"no finished runs (final.pt) under {args.runs_dir}")
    return runs


def _cmd_calibration(args) -> int:
    from regionmix_utils.evaluation.calibration import evaluate_calibration
    from regionmix_utils.train import resolve_device

    device = resolve_device(args.device)
    for run in _finished_runs(args):
        r = evaluate_calibration(run, args.n_images, args.data_dir, device)
        scaled = "" if r["temperature"] is None else (
            f"; T = {r['temperature']:.2f}: ECE {r['ece_scaled']:.2f}%"
        )  # fmt: skip
        print(f"{run.path} ({r['n_images']} test images): ECE {r['ece']:.2f}%, NLL "
              f"{r['nll']:.3f}, Brier {r['brier']:.3f}{scaled}")  # fmt: skip
    return 0


def _setting_value(text: str) -> int | float | str:
    """An ``evaluate --setting`` value: an int ("3"), else a float ("0.5", "1e-3",
    "8/255"), else the text itself. "1e-3", "1E-3" and "0.001" are one float, so they
    name one stored record."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return text


def _cmd_evaluate(args) -> int:
    from regionmix_utils.evaluation.registry import evaluate
    from regionmix_utils.progress import progress
    from regionmix_utils.train import resolve_device

    device = resolve_device(args.device)
    settings = {}
    for word in args.setting:
        key, sep, value = word.partition("=")
        if not sep:
            raise ValueError(f"--setting takes KEY=VALUE, got {word!r}")
        settings[key] = _setting_value(value)
    runs = _finished_runs(args)
    for run in progress(runs, desc=args.kind, disable=args.no_progress):
        r = evaluate(run, args.kind, args.n_images, args.data_dir, device, **settings)
        print(f"{run.path} ({r['n_images']} test images): {args.kind} {r['accuracy']:.2f}%")
    return 0


def _cmd_corruptions(args) -> int:
    from regionmix_utils.evaluation.corruptions import (
        SOURCES,
        evaluate_corruptions,
        summarise_corruptions,
    )
    from regionmix_utils.train import resolve_device

    device = resolve_device(args.device)
    corrupted = {source.clean for source in SOURCES.values()}
    runs = [run for run in _finished_runs(args) if run.config.dataset in corrupted]
    if not runs:
        raise FileNotFoundError(
            f"no finished runs on {sorted(corrupted)} under {args.runs_dir}: the corrupted "
            "test sets exist for those datasets only"
        )
    for run in runs:
        records = evaluate_corruptions(run, tuple(args.corruptions), tuple(args.severities),
                                       args.n_images, args.data_dir, device,
                                       not args.no_progress)  # fmt: skip
        summary = ", ".join(f"{k} {v:.2f}%" for k, v in summarise_corruptions(records).items())
        print(f"{run.path}: {summary}")
    return 0


def _cmd_attack(args) -> int:
    from regionmix_utils.evaluation.masking import flags_text, masking_check
    from regionmix_utils.evaluation.robustness import attack_configs, evaluate_run, record_name
    from regionmix_utils.train import resolve_device

    configs = attack_configs(
        args.attack, args.eps, steps=args.steps, queries=args.queries, seed=args.seed,
        p_init=args.p_init, loss=args.square_loss, step_size=args.step_size,
        random_start=not args.no_random_start,
    )  # fmt: skip
    device = resolve_device(args.device)
    for run in _finished_runs(args):
        records = evaluate_run(run, configs, args.n_images, args.data_dir, device,
                               not args.no_progress, args.capped_images)  # fmt: skip
        for n_images in dict.fromkeys(r["n_images"] for r in records):
            scores = ", ".join(f"{record_name(r)}: {r['accuracy']:.2f}%" for r in records
                               if r["n_images"] == n_images)  # fmt: skip
            print(f"{run.path} ({n_images} test images): {scores}")
        flags = masking_check(run.evaluations())["flags"]
        print(f"{run.path}: gradient-masking flags (see Table 7): {flags_text(flags)}")
    return 0


def _cmd_cam(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from regionmix_utils.data import load_dataset
    from regionmix_utils.evaluation.cam import cam_maps, score_maps
    from regionmix_utils.results import column_label
    from regionmix_utils.runs import find_runs
    from regionmix_utils.train import resolve_device
    from regionmix_utils.viz import cam_figure

    runs = [
        run for run in find_runs(args.runs_dir, args.dataset)
        if run.config.seed == args.seed and run.config.clean_ce
        and run.config.quick == args.quick
    ]  # fmt: skip
    if not runs:
        kind = "quick " if args.quick else ""
        raise FileNotFoundError(
            f"no finished {kind}{args.dataset} runs with seed {args.seed} and the clean CE term "
            f"under {args.runs_dir}" + ("" if args.quick else " (quick runs need --quick)")
        )
    test = load_dataset(args.dataset, args.data_dir, n_train=1, n_test=args.n_images).test
    images, labels = test.images.float() / 255, test.labels
    device = resolve_device(args.device)  # grad-cam moves each batch to the model's device
    maps = {}
    for run in runs:
        label = column_label(run.config)
        model = run.load_model(device)
        maps[label] = cam_maps(model, images, labels if args.explain == "true" else None)
        if test.boxes is not None:
            scores = score_maps(maps[label], test.boxes)
            print(
                f"{label}: energy in box {scores['energy_in_box']:.3f}, "
                f"pointing game {scores['pointing_game']:.3f} (blank maps, scored as misses: "
                f"{scores['blank_maps']} of {scores['n_maps']})"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cam_figure(images, maps, test.boxes).savefig(args.out, dpi=100)
    print(f"figure: {args.out}")
    return 0


def _cmd_table(args) -> int:
    from regionmix_utils.results import collect_runs, paper_tables, to_latex, to_markdown

    runs = collect_runs(args.runs_dir, accuracy=args.accuracy)
    if runs.empty:
        raise FileNotFoundError(f"no finished runs (final.pt) under {args.runs_dir}")
    n_quick = int(runs["quick"].sum())
    if not args.include_quick:
        runs = runs[~runs["quick"]]
        if runs.empty:
            raise ValueError(
                f"all {n_quick} runs under {args.runs_dir} are quick runs; "
                "add --include-quick to tabulate them"
            )
    export = to_latex if args.format == "latex" else to_markdown
    if args.compare:
        from regionmix_utils.results import compare

        comparison = compare(runs, args.compare, args.runs_dir)
        print(f"{comparison.caption}\n\n{export(comparison.frame)}\n")
        return 0
    tables = paper_tables(runs, accuracy=args.accuracy)
    for table in tables:
        print(f"{table.caption}\n\n{export(table.frame)}\n")
    if n_quick and not args.include_quick:
        print(f"({n_quick} quick run(s) left out; --include-quick adds them)")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        from regionmix_utils.viz import comparison_figure

        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        comparison_figure(tables).savefig(args.figure, dpi=120)
        print(f"figure: {args.figure}")
    return 0


def _cmd_demo(args) -> int:
    from regionmix_utils.demo import run_demo

    run_demo(Path(args.out), quick_epochs=args.epochs, progress=not args.no_progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regionmix", description="Region Mixup (Saha & Garain, ICLR 2024 Tiny Papers)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    method_help = "; ".join(f"{m.name}: {m.help}" for m in methods())

    p = sub.add_parser("train", help="train (or resume) one run")
    p.add_argument("--dataset", required=True, choices=dataset_names())
    p.add_argument("--method", required=True, choices=method_names(), help=method_help)
    p.add_argument("--seed", type=int, default=0)
    _add_setting_options(p, several=False)
    _add_train_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sweep", help="train datasets x methods x settings x seeds, run after run")
    p.add_argument("--datasets", nargs="+", required=True, choices=dataset_names())
    p.add_argument(
        "--methods", nargs="+", default=["cutmix", "mixup", "region"], choices=method_names(),
        help=method_help,
    )  # fmt: skip
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    _add_setting_options(p, several=True)
    _add_train_options(p)
    p.add_argument(
        "--workers", type=int, default=None,
        help="worker processes sharing the runs (default: one per visible GPU, else 1)",
    )  # fmt: skip
    p.add_argument("--status", action="store_true", help="say where each run stands, and stop")
    p.add_argument("--slurm-partition", default=None, help="submit to SLURM as a job array")
    p.add_argument("--slurm-time", type=int, default=24 * 60, help="minutes a job may run")
    p.add_argument("--gpus-per-node", type=int, default=1, help="GPUs a job asks for")
    p.add_argument("--max-parallel", type=int, default=32, help="array jobs running at once")
    p.set_defaults(func=_cmd_sweep)

    from regionmix_utils.study import STUDIES

    p = sub.add_parser(
        "study", help="train and evaluate a named study (resumable), and export its bundle"
    )
    p.add_argument("name", choices=sorted(STUDIES))
    p.add_argument("--runs-dir", default=None, help="default: runs/<name>")
    p.add_argument(
        "--dataset", default=None, choices=["cifar10-subset", "cifar10"],
        help="the study's own (default), or the full CIFAR-10 sampled to the same sizes",
    )  # fmt: skip
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="processes sharing the runs (2 on a 2-core CPU)")  # fmt: skip
    p.add_argument(
        "--export", default=None, metavar="DIR",
        help="when every run is finished and evaluated, copy the bundle here",
    )  # fmt: skip
    p.add_argument("--status", action="store_true", help="say where each run stands, and stop")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--as-worker", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_study)

    p = sub.add_parser(
        "report", help="the Markdown report (tables, verdicts, figures) of a study's bundle"
    )
    p.add_argument("--study", default="cpu-gated", choices=sorted(STUDIES))
    p.add_argument("--bundle", default=None, help="default: the study's committed bundle")
    p.add_argument("--out", default="docs/reference-study.md", help="figures go beside it")
    p.add_argument(
        "--readme", default=None, metavar="README",
        help="also put the report's Table 1 and its verdicts on the declared claims between "
             "this README's markers",
    )  # fmt: skip
    p.set_defaults(func=_cmd_report)

    from regionmix_utils.evaluation.robustness import ATTACKS, PRESETS, preset_text

    p = sub.add_parser("attack", help="accuracy under attack (FGSM, Square, PGD, APGD, "
                       "AutoAttack) of every finished run")  # fmt: skip
    p.add_argument("--runs-dir", default="runs")
    p.add_argument(
        "--attack", nargs="+", default=["paper"], choices=[*ATTACKS, *PRESETS],
        help="; ".join([f"{a.name}: {a.help}" for a in ATTACKS.values()]
                       + [f"{name}: {preset_text(name)}" for name in PRESETS]),
    )  # fmt: skip
    p.add_argument(
        "--eps", type=_fraction, nargs="+", default=[8 / 255],
        help="pixel units, e.g. 8/255; several make a sweep (0 1/255 2/255 4/255 8/255 ...)",
    )  # fmt: skip
    p.add_argument(
        "--steps", type=_positive_int, nargs="+", default=[10],
        help="PGD / APGD iterations; several run one PGD each (table7 adds 50)",
    )  # fmt: skip
    p.add_argument("--step-size", type=_fraction, default=None, help="PGD's step (default ε/4)")
    p.add_argument("--no-random-start", action="store_true", help="PGD from the clean image")
    p.add_argument(
        "--capped-images", type=_positive_int, default=None,
        help="test images for the slow attacks (" + ", ".join(
            f"{a.name}: {a.default_images}" for a in ATTACKS.values() if a.default_images
        ) + " by default, class-stratified)",
    )  # fmt: skip
    p.add_argument("--queries", type=int, default=100, help="Square's query budget")
    p.add_argument("--seed", type=int, default=0, help="the seed of Square, PGD, APGD, AutoAttack")
    p.add_argument("--p-init", type=float, default=0.8, help="Square's p_init (torchattacks')")
    p.add_argument("--square-loss", default="margin", choices=["margin", "ce"])
    p.add_argument(
        "--n-images", type=int, default=None,
        help="a class-stratified sample of N test images (default: the whole test split)",
    )  # fmt: skip
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_attack)

    p = sub.add_parser("cam", help="Grad-CAM++ maps of each configuration's run, same images")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--dataset", required=True, choices=dataset_names())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-images", type=int, default=16)
    p.add_argument(
        "--explain", default="true", choices=["true", "predicted"],
        help="the class each map explains: the true one (default) or the prediction",
    )  # fmt: skip
    p.add_argument("--quick", action="store_true", help="the quick runs instead of full ones")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", default="runs/cam.png")
    p.set_defaults(func=_cmd_cam)

    p = sub.add_parser("table", help="the paper's Tables 1-4 from the runs, paper beside ours")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--format", default="markdown", choices=["markdown", "latex"])
    p.add_argument(
        "--accuracy", default="final", choices=ACCURACY_CHOICES,
        help="test accuracy of the final epoch (default), the best, or the median of the "
        "last 10",
    )  # fmt: skip
    p.add_argument(
        "--include-quick", action="store_true", help="tabulate quick (smoke-test) runs too"
    )
    p.add_argument("--figure", default=None, help="also draw ours vs the paper into this PNG")
    p.add_argument(
        "--compare", default=None, metavar="A:B",
        help="paired comparison instead of the tables: A:B (method names, e.g. region:mixup; "
        "region/no-ce for runs without the clean CE term), or 'all': each of the paper's "
        "claims, with Δ [95%% CI], p and a verdict",
    )  # fmt: skip
    p.set_defaults(func=_cmd_table)

    p = sub.add_parser(
        "calibration", help="ECE, NLL, Brier (and after temperature scaling) of every run"
    )
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--n-images", type=int, default=None, help="default: the whole test split")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=_cmd_calibration)

    from regionmix_utils.evaluation.registry import evaluation_kinds, get_evaluation

    p = sub.add_parser(
        "evaluate", help="a registered evaluation (a plugin's, say) of every finished run"
    )
    # The kinds ``registry.evaluate`` makes; the built-in ones have commands of their own.
    kinds = [k for k in evaluation_kinds() if get_evaluation(k).compute is not None]
    p.add_argument(
        "--kind",
        required=True,
        choices=kinds,
        help="a registered evaluation (none is built in: plugins register them)",
    )
    p.add_argument("--setting", nargs="*", default=[], metavar="KEY=VALUE",
                   help="the evaluation's settings (its keys)")  # fmt: skip
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--n-images", type=int, default=None, help="default: the whole test split")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    from regionmix_utils.evaluation.corruptions import BENCHMARK, SEVERITIES, SOURCES

    p = sub.add_parser("corruptions", help="accuracy under common corruptions of every run")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument(
        "--dataset", default=None, choices=sorted(s.clean for s in SOURCES.values()),
        help="only this dataset's runs (default: every run whose dataset has a -C set)",
    )  # fmt: skip
    p.add_argument("--corruptions", nargs="+", default=list(BENCHMARK), choices=BENCHMARK)
    p.add_argument("--severities", nargs="+", type=int, default=list(SEVERITIES),
                   choices=SEVERITIES)  # fmt: skip
    p.add_argument("--n-images", type=int, default=None, help="default: all 10,000")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_corruptions)

    p = sub.add_parser("download", help="download datasets into --data-dir")
    p.add_argument("datasets", nargs="+",
                   choices=["cifar10", "cifar100", "tinyimagenet", *SOURCES])  # fmt: skip
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("demo", help="offline demo on the embedded shapes data")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


def load_plugins() -> list[str]:
    """Import the modules named in ``$REGIONMIX_PLUGINS`` (they register methods)."""
    names = [n.strip() for n in os.environ.get("REGIONMIX_PLUGINS", "").split(",") if n.strip()]
    if names and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise SystemExit(f"regionmix: cannot import plugin {name!r} from $REGIONMIX_PLUGINS: "
                             f"{err}") from err  # fmt: skip
    return names


def main(argv: list[str] | None = None) -> int:
    load_plugins()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"regionmix {args.command}: interrupted; unfinished runs resume where they "
              "stopped", file=sys.stderr)  # fmt: skip
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"regionmix {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
