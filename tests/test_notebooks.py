"""The notebooks: stored clean, parameterised, and run top to bottom in quick mode."""

from __future__ import annotations

import json

import nbformat
import pytest

from regionmix_utils.notebook import NOTEBOOKS, execute_notebook
from regionmix_utils.runs import find_runs
from regionmix_utils.study import find_bundle

from .conftest import shared_data

PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def test_the_eight_notebooks_are_there():
    assert [p.stem for p in PATHS] == [
        "01_mixing_grids", "02_training", "03_ce_ablation", "04_adversarial_robustness",
        "05_cam_comparison", "06_ablations", "07_calibration_corruptions", "08_claims",
    ]  # fmt: skip


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_stored_without_outputs_or_widget_state(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell["outputs"] and cell["execution_count"] is None, "strip the outputs"
    assert "widgets" not in nb["metadata"], "widget state is stored"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_has_a_parameters_cell_with_quick(path):
    cells = nbformat.read(path, as_version=4).cells
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "QUICK = True" in tagged[0].source


def test_notebook_01_stores_the_metadata_jupyterlab_writes():
    """Opening a notebook, JupyterLab writes the kernel's kernelspec and language_info
    into it, and marks it modified unless they are already there, equal: then closing
    it asks to save. Stored as the project's python3 kernel reports them, they are.
    language_info's "version" is the kernel's Python version (3.11.7 stored, that of
    the project's environment): with another Python the notebook is still marked."""
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    metadata = json.loads((NOTEBOOKS / "01_mixing_grids.ipynb").read_text())["metadata"]
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert metadata["kernelspec"] == {
        "name": "python3", "display_name": spec.display_name, "language": spec.language
    }  # fmt: skip
    stored = dict(metadata["language_info"])
    assert stored.pop("version").count(".") == 2
    assert stored == {k: v for k, v in IPythonKernel.language_info.items() if k != "version"}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("notebook-runs")


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_runs_top_to_bottom_in_quick_mode(path, runs_dir, tmp_path):
    """In order: 02 trains a quick run that 03-05 then reuse (and add to)."""
    data = shared_data()
    parameters = {"QUICK": True, "RUNS_DIR": str(runs_dir), "DATA_DIR": str(data) if data else None}
    executed = execute_notebook(path, tmp_path, parameters, html=path.stem == "01_mixing_grids")
    cells = nbformat.read(executed, as_version=4).cells
    errors = [
        o for c in cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    if path.stem == "01_mixing_grids":
        assert executed.with_suffix(".html").stat().st_size > 10_000
    # Headless, progress is one line per loop: no frozen "0%" widget bars in the output.
    widgets = [
        o for c in cells if c.cell_type == "code" for o in c.outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        and "it/s]" in str(o["data"].get("text/plain", ""))
    ]  # fmt: skip
    assert not widgets
    if path.stem == "03_ce_ablation":
        assert _bundle_number() in _output_text(cells), "quick mode shows the reference runs"


def _output_text(cells) -> str:
    parts = []
    for cell in cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts += [str(v) for v in output.get("data", {}).values()]
    return "\n".join(parts)


def _bundle_number() -> str:
    """Table 2's cell for Region Mixup without the clean CE term (not the compute-matched
    arm, which has a column of its own), from the committed reference runs: "mean ± std
    (seeds)" of their final test accuracy."""
    import numpy as np

    bundle = find_bundle()
    assert bundle is not None, "the reference study's bundle is committed"
    accs = [r.accuracy() for r in find_runs(bundle) if r.config.method == "region"
            and not r.config.clean_ce and not r.config.matched_compute]  # fmt: skip
    return f"{np.mean(accs):.2f} ± {np.std(accs, ddof=1):.2f} ({len(accs)})"
