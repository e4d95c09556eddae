"""The ``regionmix`` command: train, sweep, attack, cam, table, download, demo."""

from __future__ import annotations

import argparse
import itertools
import sys
from fractions import Fraction
from pathlib import Path

from regionmix_utils.train import METHODS, TrainConfig, quick_config, resolve_device

DATASET_CHOICES = ("shapes", "cifar10", "cifar100", "tinyimagenet", "cifar10-subset")


def _fraction(text: str) -> float:
    """``8/255`` or ``0.03`` as a float."""
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError) as err:
        raise argparse.ArgumentTypeError(f"not a number or fraction: {text!r}") from err


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--k", type=int, default=defaults.k, help="tiles per side (region)")
    parser.add_argument("--alpha", type=float, default=defaults.alpha, help="Beta(alpha, alpha)")
    parser.add_argument(
        "--no-clean-ce", action="store_true", help="drop CE(f(x_A), y_A) (Table 2 ablation)"
    )
    parser.add_argument(
        "--concat-forward", action="store_true", help="one forward pass over [x_A; x~]"
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--width", type=int, default=defaults.width, help="first-stage channels")
    parser.add_argument("--n-train", type=int, default=None, help="use the first N train images")
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--data-dir", default=None, help="default: $REGIONMIX_DATA or ./data")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="3 epochs on little data")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=defaults.amp)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--no-progress", action="store_true")


def _config(args, dataset: str, method: str, seed: int) -> TrainConfig:
    config = TrainConfig(
        dataset=dataset,
        method=method,
        k=args.k,
        alpha=args.alpha,
        clean_ce=not args.no_clean_ce,
        concat_forward=args.concat_forward,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        eval_every=args.eval_every,
        width=args.width,
        n_train=args.n_train,
        n_test=args.n_test,
        amp=args.amp,
        compile=args.compile,
        seed=seed,
    )
    return quick_config(config) if args.quick else config


def _cmd_train(args) -> int:
    from regionmix_utils.train import train

    config = _config(args, args.dataset, args.method, args.seed)
    result = train(config, args.runs_dir, args.data_dir, args.device, progress=not args.no_progress)
    state = "already finished" if result.skipped else "finished"
    print(f"{result.path}: {state}, test accuracy {result.final_acc:.2f}%")
    return 0


def _cmd_sweep(args) -> int:
    from regionmix_utils.train import sweep

    configs = [
        _config(args, d, m, s)
        for d, m, s in itertools.product(args.datasets, args.methods, args.seeds)
    ]
    results = sweep(configs, args.runs_dir, args.data_dir, args.device, not args.no_progress)
    for r in results:
        print(f"{r.path}: test accuracy {r.final_acc:.2f}%")
    return 0


def _cmd_download(args) -> int:
    from regionmix_utils.data import cifar, download_tinyimagenet

    for name in args.datasets:
        if name == "tinyimagenet":
            print(download_tinyimagenet(args.data_dir))
        else:
            cifar(name, args.data_dir, download=True)
            print(f"{name}: ready")
    return 0


def _cmd_attack(args) -> int:
    from regionmix_utils.results import finished_runs
    from regionmix_utils.robustness import AttackConfig, evaluate_run

    attacks = ["fgsm", "square"] if args.attack == "all" else [args.attack]
    configs = [AttackConfig(a, args.eps, args.queries, args.seed) for a in attacks]
    runs = finished_runs(args.runs_dir)
    if not runs:
        raise FileNotFoundError(f"no finished runs (final.pt) under {args.runs_dir}")
    for path in runs:
        results = evaluate_run(
            path,
            configs,
            args.n_images,
            args.data_dir,
            resolve_device(args.device),
            not args.no_progress,
        )
        scores = ", ".join(f"{c.key}: {results[c.key]:.2f}%" for c in configs)
        print(f"{path}: clean {results['clean']:.2f}%, {scores}")
    return 0


def _cmd_cam(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from regionmix_utils.cam import cam_maps, score_maps
    from regionmix_utils.data import load_dataset
    from regionmix_utils.results import finished_runs
    from regionmix_utils.robustness import load_run_model
    from regionmix_utils.viz import cam_figure

    runs = [p for p in finished_runs(args.runs_dir, args.dataset) if p.name == f"seed{args.seed}"]
    if not runs:
        raise FileNotFoundError(
            f"no finished {args.dataset} runs with seed {args.seed} under {args.runs_dir}"
        )
    test = load_dataset(args.dataset, args.data_dir, n_train=1, n_test=args.n_images).test
    images, labels = test.images.float() / 255, test.labels
    maps = {}
    for path in runs:
        model, _ = load_run_model(path)
        method = path.parent.name
        maps[method] = cam_maps(model, images, labels)
        if test.boxes is not None:
            scores = score_maps(maps[method], test.boxes)
            print(
                f"{method}: energy in box {scores['energy_in_box']:.3f}, "
                f"pointing game {scores['pointing_game']:.3f}"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cam_figure(images, maps, test.boxes).savefig(args.out, dpi=100)
    print(f"figure: {args.out}")
    return 0


def _cmd_table(args) -> int:
    from regionmix_utils.results import collect_runs, paper_tables, to_latex, to_markdown

    runs = collect_runs(args.runs_dir)
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
    for caption, table in paper_tables(runs).items():
        print(f"{caption}, mean ± std (number of seeds)\n\n{export(table)}\n")
    if n_quick and not args.include_quick:
        print(f"({n_quick} quick runs left out; --include-quick adds them)")
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

    p = sub.add_parser("train", help="train (or resume) one run")
    p.add_argument("--dataset", required=True, choices=DATASET_CHOICES)
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--seed", type=int, default=0)
    _add_train_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sweep", help="train a grid of (dataset, method, seed) runs in turn")
    p.add_argument("--datasets", nargs="+", required=True, choices=DATASET_CHOICES)
    p.add_argument("--methods", nargs="+", default=["mixup", "cutmix", "region"], choices=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    _add_train_options(p)
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("attack", help="FGSM / Square accuracy of every finished run")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--attack", default="all", choices=["fgsm", "square", "all"])
    p.add_argument("--eps", type=_fraction, default=8 / 255, help="pixel units, e.g. 8/255")
    p.add_argument("--queries", type=int, default=100, help="Square's query budget")
    p.add_argument("--seed", type=int, default=0, help="Square's seed")
    p.add_argument("--n-images", type=int, default=1000, help="first N test images")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_attack)

    p = sub.add_parser("cam", help="Grad-CAM++ maps of each method's run on the same images")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--dataset", required=True, choices=DATASET_CHOICES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-images", type=int, default=16)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="runs/cam.png")
    p.set_defaults(func=_cmd_cam)

    p = sub.add_parser("table", help="the paper's Tables 1-4 from the finished runs")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--format", default="markdown", choices=["markdown", "latex"])
    p.add_argument(
        "--include-quick", action="store_true", help="tabulate quick (smoke-test) runs too"
    )
    p.set_defaults(func=_cmd_table)

    p = sub.add_parser("download", help="download datasets into --data-dir")
    p.add_argument("datasets", nargs="+", choices=["cifar10", "cifar100", "tinyimagenet"])
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("demo", help="offline demo on the embedded shapes data")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"regionmix {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
