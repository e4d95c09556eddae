"""The README's main job: an offline demo on the embedded ``shapes`` data.

Draws the mixing grids, trains each method briefly (no mixing, Mixup, CutMix, Region
Mixup; all with the clean CE term, as in Table 1), writes figures and a table, then
executes the five notebooks in quick mode on those runs (executed copies and HTML).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib

from regionmix_utils.data import load_dataset
from regionmix_utils.files import atomic_write_text
from regionmix_utils.mixing import cutmix, mixup, region_mixup
from regionmix_utils.notebook import NOTEBOOKS, execute_notebook
from regionmix_utils.results import collect_runs, paper_tables, to_markdown
from regionmix_utils.train import TrainConfig, quick_config, train

DEMO_METHODS = ("none", "mixup", "cutmix", "region")


def run_demo(
    out: Path, quick_epochs: int = 4, progress: bool = True, notebooks: bool = True
) -> dict[str, float]:
    """Write ``mixing_grids.png``, ``training_curves.png`` and ``results.md`` under ``out``,
    then (``notebooks``, in a source checkout) the executed notebooks under ``out/notebooks``.

    Returns:
        method -> final test accuracy (percent).
    """
    matplotlib.use("Agg")
    import torch

    from regionmix_utils.viz import mixing_figure, training_curves

    out.mkdir(parents=True, exist_ok=True)
    splits = load_dataset("shapes", n_train=2000, n_test=500)
    images = splits.test.images[:8].float() / 255
    labels = splits.test.labels[:8]

    def gen():
        return torch.Generator().manual_seed(0)

    n = splits.num_classes
    results = {
        "Mixup": mixup(images, labels, 1.0, n, gen()),
        "CutMix": cutmix(images, labels, 1.0, n, gen()),
        "Region k=2": region_mixup(images, labels, 2, 1.0, n, gen()),
        "Region k=4": region_mixup(images, labels, 4, 1.0, n, gen()),
    }
    mixing_figure(images, results, splits.train.classes).savefig(out / "mixing_grids.png", dpi=100)

    accuracy, curves, paths = {}, {}, []
    for method in DEMO_METHODS:
        config = quick_config(TrainConfig(dataset="shapes", method=method))
        config = dataclasses.replace(config, epochs=quick_epochs)
        result = train(config, out / "runs", device="auto", splits=splits, progress=progress)
        accuracy[method], curves[method] = result.final_acc, result.metrics
        paths.append(str(result.path))
    training_curves(curves).savefig(out / "training_curves.png", dpi=100)

    runs = collect_runs(out / "runs")
    runs = runs[runs["path"].isin(paths)]  # not other runs the notebooks left there
    caption, table = next(iter(paper_tables(runs).items()))
    atomic_write_text(
        out / "results.md",
        f"Quick runs on the embedded shapes data ({quick_epochs} epochs, 2000 images, "
        f"PreAct ResNet-18 of width 8). Not the paper's setting.\n\n"
        f"{caption}, mean ± std (number of seeds)\n\n{to_markdown(table)}\n",
    )
    print(to_markdown(table))

    executed = []
    if notebooks and NOTEBOOKS.is_dir():  # a source checkout: run them on the same runs
        import papermill  # the dev extra, installed in a checkout by `make venv`

        for notebook in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
            print(f"running {notebook.name} (quick mode)")
            parameters = {"QUICK": True, "RUNS_DIR": str((out / "runs").resolve())}
            declared = papermill.inspect_notebook(str(notebook))  # 01 has no RUNS_DIR
            parameters = {k: v for k, v in parameters.items() if k in declared}
            executed.append(execute_notebook(notebook, out / "notebooks", parameters))
    print(f"\nFigures and runs are in {out.resolve()}:")
    for name in ("mixing_grids.png", "training_curves.png", "results.md", "runs/"):
        print(f"  {out / name}")
    for path in executed:
        print(f"  {path.with_suffix('.html')}")
    return accuracy
