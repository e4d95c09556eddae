"""The ``regionmix`` command. Options come from the declarations (config fields, method
settings, registries); modules in ``$REGIONMIX_PLUGINS`` are imported first."""

import argparse
import contextlib
import dataclasses
import functools
import importlib
import itertools
import os
import sys
import time
import typing
from fractions import Fraction
from pathlib import Path

import matplotlib  # loaded with the figures (viz), drawn off-screen

from regionmix_utils import data, demo, methods, progress, results, sweeps, viz
from regionmix_utils import study as studies
from regionmix_utils.config import TrainConfig, quick_config
from regionmix_utils.evaluation import calibration, cam, corruptions, masking, registry, robustness
from regionmix_utils.report import study_report, update_readme, write_study_report
from regionmix_utils.runs import ACCURACY_CHOICES, find_runs
from regionmix_utils.train import resolve_device, train

_PER_COMMAND = ("dataset", "method", "seed", "params", "plan", *methods.SETTINGS)  # not options


def _fraction(text: str) -> float:
    """``8/255``, ``1e-3`` or ``0.03`` as a float."""
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError) as err:
        raise argparse.ArgumentTypeError(f"not a number or fraction: {text!r}") from err


def _integer(text: str, low: int = 1) -> int:
    """An integer option's type: an integer >= ``low`` (1 unless given; argparse says which)."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from err
    if value < low:
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
    return value


def _field_option(parser: argparse.ArgumentParser, field: dataclasses.Field, hint) -> None:
    """The option of a ``TrainConfig`` field, from its annotation and metadata."""
    meta, args = field.metadata, typing.get_args(hint)
    kwargs = {"default": field.default, "help": meta.get("help"), "choices": meta.get("choices")}
    if hint is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(hint) is tuple:
        kwargs |= {"nargs": "+", "default": list(field.default),
                   "type": args[0] if args[0] in (int, float) else str}  # fmt: skip
    else:
        kind = next(a for a in (*args, hint) if a in (int, float, str))  # int | None: int
        integer = functools.partial(_integer, low=meta["low"]) if "low" in meta else int
        kwargs["type"] = {float: _fraction, str: str}.get(kind, integer)
    parser.add_argument(f"--{field.name.replace('_', '-')}", **kwargs)


def _setting_option(parser: argparse.ArgumentParser, name: str, several: bool) -> None:
    """A method setting's option; a sweep takes several values."""
    setting = methods.declaration(name)
    readers = ", ".join(m.name for m in methods.methods() if name in m.setting_names) or "none"
    parser.add_argument(
        f"--{name.replace('_', '-')}", type=setting.type,
        nargs="+" if several or setting.several else None,
        default=[setting.default] if several and not setting.several else setting.default,
        help=f"{setting.help} (read by: {readers}; default {setting.format(setting.default, ' ')})",
    )  # fmt: skip


def _common(runs_dir: str | None = "runs") -> argparse.ArgumentParser:
    """The options of every command that reads or writes runs."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--runs-dir", default=runs_dir)
    parent.add_argument("--data-dir", default=None, help="default: $REGIONMIX_DATA, else the "
                        "checkout's data/ (the same from any working directory)")  # fmt: skip
    parent.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parent.add_argument("--no-progress", action="store_true")
    return parent


def _run_options(several: bool) -> argparse.ArgumentParser:
    """Every ``TrainConfig`` field and method setting, as options."""
    parent = argparse.ArgumentParser(add_help=False, parents=[_common()])
    for name in methods.setting_names():
        _setting_option(parent, name, several)
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name not in _PER_COMMAND:
            _field_option(parent, field, hints[field.name])
    return parent


def _config(args, dataset: str, method: str, seed: int, **settings) -> TrainConfig:
    """The run the options describe, with the parameters of its methods."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
              if f.name not in _PER_COMMAND}  # fmt: skip
    used = (method, *(entry.partition(":")[0] for entry in args.switch))
    own = {name for m in used for name in methods.get_method(m).params}
    config = TrainConfig(
        **values, dataset=dataset, method=method, seed=seed,
        **{name: value for name, value in settings.items() if name in methods.SETTINGS},
        params={name: value for name, value in settings.items() if name in own})  # fmt: skip
    return quick_config(config) if config.quick else config


def sweep_configs(args) -> list[TrainConfig]:
    """datasets x methods x setting values x seeds, normalised and deduplicated."""
    names = methods.setting_names()
    values = [[tuple(getattr(args, n))] if methods.declaration(n).several else getattr(args, n)
              for n in names]  # fmt: skip
    grid = itertools.product(args.datasets, args.methods, *values, args.seeds)
    configs = [_config(args, dataset, method, seed, **dict(zip(names, combo, strict=True)))
               for dataset, method, *combo, seed in grid]  # fmt: skip
    return list(dict.fromkeys(configs))


def _cmd_train(args) -> None:
    settings = {name: getattr(args, name) for name in methods.setting_names()}
    config = _config(args, args.dataset, args.method, args.seed, **settings)
    result = train(config, args.runs_dir, args.data_dir, args.device, progress=not args.no_progress)
    state = "already finished" if result.skipped else "finished"
    print(f"{result.path}: {state}, test accuracy {result.final_acc:.2f}%")


def _cmd_sweep(args) -> int:
    configs = sweep_configs(args)
    if args.status:
        print(sweeps.format_status(sweeps.status(configs, args.runs_dir)))
        return 0
    if args.slurm_partition:
        folder = Path(args.runs_dir) / ".submitit"
        executor = sweeps.slurm_executor(folder, args.slurm_partition, args.slurm_time,
                                         args.gpus_per_node, args.max_parallel)  # fmt: skip
        jobs = sweeps.submit(configs, args.runs_dir, args.data_dir, executor)
        print(f"submitted {len(jobs)} of {len(configs)} runs (the others are finished)")
        if jobs:
            print(f"job array {str(jobs[0].job_id).split('_')[0]}; follow it with the same "
                  "command and --status")  # fmt: skip
        return 0
    workers = args.workers or sweeps.default_workers()
    if workers > 1:
        if args.download:  # once, before the workers would race for it
            for dataset in dict.fromkeys(c.dataset for c in configs):
                data.load_dataset(dataset, args.data_dir, download=True, n_train=1, n_test=1)
        print(f"{len(configs)} runs on {workers} workers")
        argv = [*args.argv, "--workers", "1", "--no-progress"]  # argparse takes the last value
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
    study = studies.get_study(args.name)
    runs_dir = args.runs_dir or f"runs/{study.name}"
    configs = study.configs(args.dataset)
    if args.status:
        print(sweeps.format_status(sweeps.status(configs, runs_dir)))
        return 0
    print(f"study {study.name}: {len(configs)} runs ({study.describe()}) under {runs_dir}, "
          f"{args.workers} worker(s)")  # fmt: skip
    if args.as_worker:
        code = _study_invocation(args, study, runs_dir, configs)
    else:  # the study's time sums its invocations, each written as it runs: a kill loses a minute
        with studies.timed(runs_dir, args.workers) as started:
            code = _study_invocation(args, study, runs_dir, configs)
        total = studies.study_timing(runs_dir)
        print(
            f"study {study.name}: this invocation {time.time() - started:.0f} s; the study "
            f"{total['seconds'] / 60:.1f} min over {total['invocations']} invocation(s)"
        )
    if code == 0 and args.export:
        print("bundle:", studies.export_bundle(study, runs_dir, args.export, args.dataset,
                                               args.data_dir, args.allow_uncommitted))  # fmt: skip
    return code


def _study_invocation(args, study, runs_dir: str, configs: list) -> int:
    """The pilot (on all the cores, before any worker), then the study's runs."""
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
        try:
            plan = studies.seal_plan(study, runs_dir, args.dataset, args.allow_uncommitted)
        except (studies.UncommittedError, ValueError) as error:
            print(error, file=sys.stderr)
            return 1
        sealed = plan["sealed"]
        print(f"plan {plan['hash']} sealed {sealed['time']}: {len(sealed['claims'])} claims, "
              f"commit {sealed['code']['commit']}")  # fmt: skip
    if args.workers > 1:
        argv = ["study", study.name, "--runs-dir", runs_dir, "--workers", "1", "--no-progress",
                "--as-worker", "--device", args.device,
                *(["--allow-uncommitted"] if args.allow_uncommitted else []),
                *(["--dataset", args.dataset] if args.dataset else []),
                *(["--data-dir", args.data_dir] if args.data_dir else [])]  # fmt: skip
        return sweeps.run_workers(argv, args.workers, configs, runs_dir, not args.no_progress,
                                  gpus=0)  # fmt: skip
    studies.run_study(study, runs_dir, args.data_dir, args.device, args.dataset,
                      not args.no_progress, allow_uncommitted=args.allow_uncommitted)  # fmt: skip
    return 0


def _cmd_report(args) -> None:
    study = studies.get_study(args.study)
    report, out = study_report(study, args.bundle), args.out or study.report
    print(f"report: {write_study_report(study, out, report=report)}")
    if args.readme:
        changed = update_readme(args.readme, report, Path(out).stem)
        print(f"{args.readme}: results {'updated' if changed else 'unchanged'}")


def _cmd_download(args) -> None:
    root = data.data_root(args.data_dir)
    print(f"data folder: {root}")
    for name in args.datasets:
        print(corruptions.download_corruptions(name, root) if name in corruptions.SOURCES
              else f"{name}: {data.get_dataset(name).download(root)}")  # fmt: skip


def _finished_runs(args) -> list:
    runs = find_runs(args.runs_dir, getattr(args, "dataset", None))
    if not runs:
        raise FileNotFoundError(f"no finished runs (final.pt) under {args.runs_dir}")
    return runs


def _cmd_calibration(args) -> None:
    device = resolve_device(args.device)
    for run in _finished_runs(args):
        r = calibration.evaluate_calibration(run, args.n_images, args.data_dir, device)
        scaled = ("" if r["temperature"] is None
                  else f"; T = {r['temperature']:.2f}: ECE {r['ece_scaled']:.2f}%")  # fmt: skip
        print(f"{run.path} ({r['n_images']} test images): ECE {r['ece']:.2f}%, NLL "
              f"{r['nll']:.3f}, Brier {r['brier']:.3f}{scaled}")  # fmt: skip


def _setting(word: str) -> tuple[str, int | float | str]:
    """``KEY=VALUE``: an int, else a float ("1e-3" and "8/255" too: one record), else text."""
    key, sep, text = word.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--setting takes KEY=VALUE, got {word!r}")
    for read in (int, _fraction):
        with contextlib.suppress(ValueError, argparse.ArgumentTypeError):
            return key, read(text)
    return key, text


def _cmd_evaluate(args) -> None:
    device, settings = resolve_device(args.device), dict(args.setting)
    measures = registry.get_evaluation(args.kind).measures
    for run in progress.progress(_finished_runs(args), desc=args.kind, disable=args.no_progress):
        r = registry.evaluate(run, args.kind, args.n_images, args.data_dir, device, **settings)
        said = ", ".join(f"{args.kind} {r[m]:.2f}%" if m == "accuracy" else f"{m} {r[m]:.4g}"
                         for m in measures if m in r)  # fmt: skip
        print(f"{run.path} ({r['n_images']} test images): {said}")


def _cmd_corruptions(args) -> None:
    device = resolve_device(args.device)
    corrupted = {source.clean for source in corruptions.SOURCES.values()}
    runs = [run for run in _finished_runs(args) if run.config.dataset in corrupted]
    if not runs:
        raise FileNotFoundError(
            f"no finished runs on {sorted(corrupted)} under {args.runs_dir}: "
            "the corrupted test sets exist for those datasets only"
        )
    for run in runs:
        summary = corruptions.summarise_corruptions(corruptions.evaluate_corruptions(
            run, tuple(args.corruptions), tuple(args.severities), args.n_images, args.data_dir,
            device, not args.no_progress))  # fmt: skip
        print(f"{run.path}: {', '.join(f'{k} {v:.2f}%' for k, v in summary.items())}")


def _cmd_attack(args) -> None:
    configs = robustness.attack_configs(args.attack, args.eps, steps=args.steps, seed=args.seed,
                                        queries=args.queries, p_init=args.p_init,
                                        loss=args.square_loss, step_size=args.step_size,
                                        random_start=not args.no_random_start)  # fmt: skip
    device = resolve_device(args.device)
    for run in _finished_runs(args):
        records = robustness.evaluate_run(run, configs, args.n_images, args.data_dir, device,
                                          not args.no_progress, args.capped_images)  # fmt: skip
        for n_images in dict.fromkeys(r["n_images"] for r in records):
            scores = ", ".join(f"{robustness.record_name(r)}: {r['accuracy']:.2f}%"
                               for r in records if r["n_images"] == n_images)  # fmt: skip
            print(f"{run.path} ({n_images} test images): {scores}")
        flags = masking.masking_check(run.evaluations())["flags"]
        print(f"{run.path}: gradient-masking flags (see Table 7): {masking.flags_text(flags)}")


def _cmd_cam(args) -> None:
    matplotlib.use("Agg")
    runs = [run for run in find_runs(args.runs_dir, args.dataset) if run.config.seed == args.seed
            and run.config.clean_ce and run.config.quick == args.quick]  # fmt: skip
    if not runs:
        hint = "" if args.quick else " (quick runs need --quick)"
        raise FileNotFoundError(f"no finished {'quick ' * args.quick}{args.dataset} runs with "
                                f"seed {args.seed} and the clean CE term under {args.runs_dir}"
                                f"{hint}")  # fmt: skip
    test = data.load_dataset(args.dataset, args.data_dir, n_train=1, n_test=args.n_images).test
    images, labels = test.images.float() / 255, test.labels
    device = resolve_device(args.device)  # grad-cam moves each batch to the model's device
    maps = {}
    for run in runs:
        label = results.column_label(run.config)
        maps[label] = cam.cam_maps(run.load_model(device), images,
                                   labels if args.explain == "true" else None)  # fmt: skip
        if test.boxes is not None:
            s = cam.score_maps(maps[label], test.boxes)
            print(f"{label}: energy in box {s['energy_in_box']:.3f}, pointing game "
                  f"{s['pointing_game']:.3f} (blank maps, scored as misses: {s['blank_maps']} "
                  f"of {s['n_maps']})")  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    viz.cam_figure(images, maps, test.boxes).savefig(args.out, dpi=100)
    print(f"figure: {args.out}")


def _cmd_table(args) -> None:
    runs = results.collect_runs(args.runs_dir, accuracy=args.accuracy)
    if runs.empty:
        raise FileNotFoundError(f"no finished runs (final.pt) under {args.runs_dir}")
    n_quick = int(runs["quick"].sum())
    if not args.include_quick:
        runs = runs[~runs["quick"]]
        if runs.empty:
            raise ValueError(f"all {n_quick} runs under {args.runs_dir} are quick runs; add "
                             "--include-quick to tabulate them")  # fmt: skip
    export = results.to_latex if args.format == "latex" else results.to_markdown
    tables = ([results.compare(runs, args.compare, args.runs_dir)] if args.compare
              else results.paper_tables(runs, accuracy=args.accuracy))  # fmt: skip
    for table in tables:
        print(f"{table.caption}\n\n{export(table.frame)}\n")
    if args.compare:
        return
    if n_quick and not args.include_quick:
        print(f"({n_quick} quick run(s) left out; --include-quick adds them)")
    if args.figure:
        matplotlib.use("Agg")
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        viz.comparison_figure(tables).savefig(args.figure, dpi=120)
        print(f"figure: {args.figure}")


def _cmd_demo(args) -> None:
    demo.run_demo(Path(args.out), quick_epochs=args.epochs, progress=not args.no_progress)


def build_parser() -> argparse.ArgumentParser:
    description = "Region Mixup (Saha & Garain, ICLR 2024 Tiny Papers)"
    parser = argparse.ArgumentParser(prog="regionmix", description=description)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func, help: str, *parents) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, parents=list(parents))
        p.set_defaults(func=func)
        return p

    def n_images(p, default=None, help="default: the whole test split") -> None:
        p.add_argument("--n-images", type=int, default=default, help=help)

    method_help = "; ".join(f"{m.name}: {m.help}" for m in methods.methods())
    p = command("train", _cmd_train, "train (or resume) one run", _run_options(several=False))
    p.add_argument("--dataset", required=True, choices=data.dataset_names())
    p.add_argument("--method", required=True, choices=methods.method_names(), help=method_help)
    p.add_argument("--seed", type=int, default=0)

    p = command("sweep", _cmd_sweep, "train datasets x methods x settings x seeds",
                _run_options(several=True))  # fmt: skip
    p.add_argument("--datasets", nargs="+", required=True, choices=data.dataset_names())
    p.add_argument("--methods", nargs="+", default=["cutmix", "mixup", "region"],
                   choices=methods.method_names(), help=method_help)  # fmt: skip
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=None, help="worker processes sharing the runs "
                   "(default: one per visible GPU, else 1)")  # fmt: skip
    p.add_argument("--status", action="store_true", help="say where each run stands, and stop")
    p.add_argument("--slurm-partition", default=None, help="submit to SLURM as a job array")
    p.add_argument("--slurm-time", type=int, default=24 * 60, help="minutes a job may run")
    p.add_argument("--gpus-per-node", type=int, default=1, help="GPUs a job asks for")
    p.add_argument("--max-parallel", type=int, default=32, help="array jobs running at once")

    p = command("study", _cmd_study, "train and evaluate a named study (resumable), and "
                "export its bundle", _common(runs_dir=None))  # fmt: skip
    p.add_argument("name", choices=studies.STUDIES.names())
    p.add_argument("--dataset", choices=["cifar10-subset", "cifar10"], help="the study's own "
                   "(default), or the full CIFAR-10 sampled to the same sizes")  # fmt: skip
    p.add_argument("--workers", type=_integer, default=1,
                   help="processes sharing the runs (2 on a 2-core CPU)")  # fmt: skip
    p.add_argument("--export", default=None, metavar="DIR",
                   help="once all runs are finished and evaluated, copy the bundle")  # fmt: skip
    p.add_argument("--status", action="store_true", help="say where each run stands, and stop")
    p.add_argument("--allow-uncommitted", action="store_true", help="train or export from code "
                   "with no git commit (the plan and the bundle record it)")  # fmt: skip
    p.add_argument("--as-worker", action="store_true", help=argparse.SUPPRESS)

    p = command("report", _cmd_report, "the Markdown report of a study's bundle")
    p.add_argument("--study", default="cpu-gated", choices=studies.STUDIES.names())
    p.add_argument("--bundle", default=None, help="default: the study's committed bundle")
    p.add_argument("--out", default=None, help="default: the study's (docs/reference-study.md "
                   "for cpu-gated); figures go beside it")  # fmt: skip
    p.add_argument("--readme", default=None, metavar="README", help="also put the report's "
                   "Table 1 and its verdicts between this README's markers")  # fmt: skip

    p = command("attack", _cmd_attack, "accuracy under attack of every finished run", _common())
    attacks, presets, defaults = robustness.ATTACKS, robustness.PRESETS, robustness.AttackConfig
    p.add_argument("--attack", nargs="+", default=["paper"], choices=[*attacks, *presets],
                   help="; ".join([f"{a.name}: {a.help}" for a in attacks.values()] + [
                       f"{name}: {robustness.preset_text(name)}" for name in presets]))  # fmt: skip
    p.add_argument("--eps", type=_fraction, nargs="+", default=[defaults.eps],
                   help="pixel units, e.g. 8/255; several make a sweep")  # fmt: skip
    p.add_argument("--steps", type=_integer, nargs="+", default=[defaults.steps],
                   help="PGD / APGD iterations; several run one PGD each")  # fmt: skip
    p.add_argument("--step-size", type=_fraction, default=None, help="PGD's step (default ε/4)")
    p.add_argument("--no-random-start", action="store_true", help="PGD from the clean image")
    capped = ", ".join(f"{a.name}: {a.default_images}" for a in attacks.values()
                       if a.default_images)  # fmt: skip
    p.add_argument("--capped-images", type=_integer, default=None,
                   help=f"test images for the slow attacks ({capped} by default)")  # fmt: skip
    p.add_argument("--queries", type=int, default=defaults.queries, help="Square's query budget")
    p.add_argument("--seed", type=int, default=defaults.seed,
                   help="the seed of Square, PGD, APGD, AutoAttack")  # fmt: skip
    p.add_argument("--p-init", type=float, default=defaults.p_init, help="Square's p_init")
    p.add_argument("--square-loss", default=defaults.loss, choices=robustness.SQUARE_LOSSES)
    n_images(p)

    p = command("cam", _cmd_cam, "Grad-CAM++ maps of each configuration's run", _common())
    p.add_argument("--dataset", required=True, choices=data.dataset_names())
    p.add_argument("--seed", type=int, default=0)
    n_images(p, 16, None)
    p.add_argument("--explain", default="true", choices=["true", "predicted"],
                   help="the class each map explains: the true one or the prediction")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="the quick runs instead of full ones")
    p.add_argument("--out", default="runs/cam.png")

    p = command("table", _cmd_table, "the paper's Tables 1-4 from the runs, paper beside ours")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--format", default="markdown", choices=["markdown", "latex"])
    p.add_argument("--accuracy", default="final", choices=ACCURACY_CHOICES,
                   help="of the final epoch, the best, or the median of the last 10")  # fmt: skip
    p.add_argument("--include-quick", action="store_true", help="tabulate quick runs too")
    p.add_argument("--figure", default=None, help="also draw ours vs the paper into this PNG")
    p.add_argument("--compare", default=None, metavar="A:B",
                   help="paired comparison instead of the tables: A:B (e.g. region:mixup; "
                   "region/no-ce for runs without the clean CE term), or 'all': each of the "
                   "paper's claims, with Δ [95%% CI], p and a verdict")  # fmt: skip

    p = command("calibration", _cmd_calibration, "ECE, NLL, Brier (and after temperature "
                "scaling) of every run", _common())  # fmt: skip
    n_images(p)

    kinds = [e for e in map(registry.get_evaluation, registry.evaluation_kinds()) if e.compute]
    p = command("evaluate", _cmd_evaluate, "a registered evaluation of every finished run",
                _common())  # fmt: skip
    p.add_argument("--kind", required=True, choices=[e.kind for e in kinds],
                   help="; ".join(f"{e.kind}: {e.title}" + (f" (settings {', '.join(e.keys)})"
                                  if e.keys else "") for e in kinds))  # fmt: skip
    p.add_argument("--setting", nargs="*", default=[], metavar="KEY=VALUE", type=_setting,
                   help="the evaluation's settings (its keys)")  # fmt: skip
    n_images(p)

    p = command("corruptions", _cmd_corruptions, "accuracy under common corruptions of every "
                "run", _common())  # fmt: skip
    p.add_argument("--dataset", choices=sorted(s.clean for s in corruptions.SOURCES.values()),
                   help="only this dataset's runs (default: those with a -C set)")  # fmt: skip
    p.add_argument("--corruptions", nargs="+", default=list(corruptions.BENCHMARK),
                   choices=corruptions.BENCHMARK)  # fmt: skip
    p.add_argument("--severities", nargs="+", type=int, default=list(corruptions.SEVERITIES),
                   choices=corruptions.SEVERITIES)  # fmt: skip
    n_images(p)

    p = command("download", _cmd_download, "download datasets into --data-dir")
    fetched = [n for n in data.dataset_names() if data.get_dataset(n).download]
    p.add_argument("datasets", nargs="+", choices=[*fetched, *corruptions.SOURCES])
    p.add_argument("--data-dir", default=None)

    p = command("demo", _cmd_demo, "offline demo on the embedded shapes data")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--no-progress", action="store_true")
    return parser


def load_plugins() -> list[str]:
    """Import the modules named in ``$REGIONMIX_PLUGINS`` (they register entries)."""
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
        return args.func(args) or 0  # a command that returns nothing succeeded
    except KeyboardInterrupt:
        print(f"regionmix {args.command}: interrupted; unfinished runs resume where they "
              "stopped", file=sys.stderr)  # fmt: skip
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"regionmix {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
