"""The README's offline demo on the embedded ``shapes`` data: mixing grids, every method
trained briefly, figures, a table, then the notebooks in quick mode on those runs."""

import dataclasses
from pathlib import Path

from regionmix_utils.config import TrainConfig, quick_config
from regionmix_utils.data import load_dataset
from regionmix_utils.evaluation.calibration import predict_logits, reliability
from regionmix_utils.files import atomic_write_text
from regionmix_utils.methods import method_names
from regionmix_utils.notebook import NOTEBOOKS, execute_notebook
from regionmix_utils.results import collect_runs, column_label, paper_tables, to_markdown
from regionmix_utils.runs import Run
from regionmix_utils.train import train
from regionmix_utils.viz import every_mix, mixing_figure, reliability_figure, training_curves

FIGURES = ("mixing_grids.png", "training_curves.png", "reliability.png", "results.md", "runs/")


def run_demo(out: Path, quick_epochs: int = 4, progress: bool = True,
             notebooks: bool = True) -> dict[str, float]:  # fmt: skip
    """Write ``FIGURES`` under ``out``, then (``notebooks``) the executed notebooks under
    ``out/notebooks``. Returns method name -> final test accuracy (%)."""
    import matplotlib  # heavy: only the figures need it

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    splits = load_dataset("shapes", n_train=2000, n_test=500)
    images, labels = splits.test.images[:8].float() / 255, splits.test.labels[:8]
    mixes = every_mix(images, labels, splits.num_classes)
    mixing_figure(images, mixes, splits.train.classes).savefig(out / FIGURES[0], dpi=100)

    accuracy, curves, runs = {}, {}, []
    for method in method_names():
        config = quick_config(TrainConfig(dataset="shapes", method=method))
        config = dataclasses.replace(config, epochs=quick_epochs)
        result = train(config, out / "runs", device="auto", splits=splits, progress=progress)
        accuracy[method], curves[method] = result.final_acc, result.metrics
        runs.append(Run(result.path))
    training_curves(curves).savefig(out / FIGURES[1], dpi=100)
    test_x, test_y = splits.test.images.float() / 255, splits.test.labels
    diagrams = {column_label(run.config): reliability(predict_logits(run.load_model(), test_x),
                                                      test_y) for run in runs}  # fmt: skip
    reliability_figure(diagrams).savefig(out / FIGURES[2], dpi=100)

    table = paper_tables(collect_runs(runs=runs))[0]  # the demo's runs only
    atomic_write_text(out / FIGURES[3], f"Quick runs on the embedded shapes data ({quick_epochs} "
                      "epochs, 2000 images, PreAct ResNet-18 of width 8). Not the paper's setting: "
                      "see `regionmix table` for the paper's numbers beside full runs.\n\n"
                      f"{table.caption}\n\n{to_markdown(table.frame)}\n")  # fmt: skip
    print(to_markdown(table.frame))

    executed = []
    if notebooks and NOTEBOOKS.is_dir():  # a source checkout: run them on the same runs
        import papermill  # heavy: the dev extra, installed in a checkout by `make venv`

        for notebook in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
            print(f"running {notebook.name} (quick mode)")
            declared = papermill.inspect_notebook(str(notebook))  # 01 has no RUNS_DIR
            parameters = {"QUICK": True, "RUNS_DIR": str((out / "runs").resolve())}
            parameters = {k: v for k, v in parameters.items() if k in declared}
            executed.append(execute_notebook(notebook, out / "notebooks", parameters))
    print(f"\nFigures and runs are in {out.resolve()}:")
    for path in [*(out / name for name in FIGURES), *(p.with_suffix(".html") for p in executed)]:
        print(f"  {path}")
    return accuracy
