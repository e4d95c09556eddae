"""The notebooks: stored clean, parameterised, and run top to bottom in quick mode."""

from __future__ import annotations

import json
import re

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
    # papermill reads each parameter's name and default from its line (`papermill --help-notebook`,
    # the demo's runs): a line it cannot parse is a warning to the user and a missing parameter
    from papermill.translators import PythonTranslator

    assigned = [line.split("=")[0].strip() for line in tagged[0].source.splitlines()
                if line and not line.startswith("#")]  # fmt: skip
    parsed = [p.name for p in PythonTranslator.inspect({"source": tagged[0].source})]
    assert parsed == assigned


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_stores_the_metadata_jupyterlab_writes(path):
    """Opening a notebook, JupyterLab 4 writes the kernel's kernelspec and language_info
    into it and marks it modified unless they are already there, equal: then closing it
    asks to save. Seen in headless Chromium: an old "Python 3" display name, a
    language_info without "version", with only "name", or with another Python's version
    all mark it; only the kernel's own report, version included, leaves it clean. So every
    notebook stores what the project's python3 kernel reports (the version is that of the
    project's environment: with another Python the notebook is still marked)."""
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    metadata = json.loads(path.read_text())["metadata"]
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert metadata["kernelspec"] == {
        "name": "python3", "display_name": spec.display_name, "language": spec.language
    }  # fmt: skip
    stored = dict(metadata["language_info"])
    assert stored.pop("version").count(".") == 2
    assert stored == {k: v for k, v in IPythonKernel.language_info.items() if k != "version"}
    first = json.loads(PATHS[0].read_text())["metadata"]
    assert metadata == first, "every notebook stores the same kernel metadata"


EXECUTED = NOTEBOOKS.parent / "docs" / "notebooks"  # `make executed` writes them


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_the_executed_copy_holds_the_sources_cells_and_their_outputs(path):
    """A reader who does not run the notebooks sees them executed in quick mode in
    docs/notebooks/ (GitHub renders their figures and tables). Each copy must hold its
    source's cells, less the one papermill injects, with outputs and no error: a
    notebook changed without `make executed` fails here."""
    copy = EXECUTED / path.name
    assert copy.is_file(), f"{copy} is missing: run `make executed`"
    cells = [c for c in nbformat.read(copy, as_version=4).cells
             if "injected-parameters" not in c.metadata.get("tags", [])]  # fmt: skip
    source = nbformat.read(path, as_version=4).cells
    stale = [i for i, (a, b) in enumerate(zip(cells, source, strict=False))
             if (a.cell_type, a.source) != (b.cell_type, b.source)]  # fmt: skip
    assert len(cells) == len(source) and not stale, (
        f"{copy.name} is not {path.name} executed (cells {stale[:5]} differ, "
        f"{len(cells)} against {len(source)} cells): run `make executed`"
    )
    outputs = [o for c in cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was kept"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("notebook-runs")


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_runs_top_to_bottom_in_quick_mode(path, runs_dir, tmp_path, request):
    """In order: 02 trains a quick run that 03-05 then reuse (and add to). The real
    subsets are seen through ``real_data``'s folder of links, so that nothing a
    notebook writes beside them lands in the shared folder."""
    data = request.getfixturevalue("real_data") if shared_data() else None
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
    problems = stated_settings_problems(_shown_text(cells), _attack_records(runs_dir))
    assert not problems, "\n".join(["the text states settings no record has:", *problems])
    named = _named_settings(_shown_text(cells))
    missing = _shown_records(path.stem, runs_dir) - named
    assert not missing, f"attack settings shown but never named: {sorted(missing)}"


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


# ------------------------------------------------------------------ what the text says
# A notebook's text (Markdown cells, printed and displayed output) states the attacks it
# shows, at which ε and on how many test images. Read clause by clause, every such
# statement must be a setting of an evaluation record of the runs it shows, and the ε is
# a value, never a parameter's name.

ATTACK = re.compile(r"\b(FGSM|PGD-\d+|APGD-[A-Z]+|AutoAttack(?:-fast)?|Square(?:-\d+)?)")
EPS = re.compile(r"(\d+)/255")
IMAGES = re.compile(r"(\d[\d,]*) (?:test )?images")
NAMED_EPS = re.compile(r"ε\s*(?:=|at)\s*`?[A-Z_]{3,}`?|ε[^.;]*`[A-Z][A-Z0-9_]+`")


def _clauses(text: str) -> list[str]:
    """Sentences and the parts of a sentence between semicolons."""
    return [c for c in re.split(r"(?<=[.:!?])\s+(?=[A-Z*(])|;\s|\n", text) if c.strip()]


def _attack_of(clause: str) -> list[str]:
    return ATTACK.findall(clause)


def _named_settings(text: str) -> set[tuple[str, int, int | None]]:
    """(attack label, ε in 1/255, image count or None) of every clause that names an
    attack with an ε."""
    named = set()
    for clause in _clauses(text):
        counts = [int(n.replace(",", "")) for n in IMAGES.findall(clause)] or [None]
        for attack in _attack_of(clause):
            named |= {(attack, int(e), n) for e in EPS.findall(clause) for n in counts}
    return named


def _matches(attack: str, stated: str) -> bool:
    """A label as stated ("Square") names a record's label ("Square-100")."""
    return attack == stated or attack.startswith(stated + "-")


def stated_settings_problems(text: str, records: set[tuple[str, int, int]]) -> list[str]:
    """Every clause of ``text`` that states an attack setting no record has: an attack at
    an ε or on an image count it did not run at, an attack stated with an ε or image
    count that never ran at all, or an ε given by a parameter's name.

    Args:
        records: (attack label, ε in 1/255, image count) of the records shown.
    """
    problems = []
    for clause in _clauses(text):
        if NAMED_EPS.search(clause):
            problems.append(f"ε by name, not value: {clause!r}")
            continue
        eps = {int(e) for e in EPS.findall(clause)}
        counts = {int(n.replace(",", "")) for n in IMAGES.findall(clause)} if "training images" \
            not in clause else set()  # fmt: skip
        if not eps and not counts:
            continue
        for attack in _attack_of(clause):
            ran = {(e, n) for a, e, n in records if _matches(a, attack)}
            if not ran:
                problems.append(f"{attack} never ran: {clause!r}")
            elif eps - {e for e, _ in ran} or counts - {n for _, n in ran}:
                problems.append(f"{attack} did not run at that ε or image count: {clause!r}")
        if not _attack_of(clause) and eps - {e for _, e, _ in records}:
            problems.append(f"an ε no record has: {clause!r}")
    return problems


def _shown_text(cells) -> str:
    """The Markdown cells (their wrapped lines joined: a sentence can span lines) and the
    text, Markdown and plain outputs, as a reader sees them."""
    wrapped = re.compile(r"(?<!\n)\n(?![\n\-|#*])")
    parts = [wrapped.sub(" ", c.source) for c in cells if c.cell_type == "markdown"]
    for cell in cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            data = output.get("data", {})
            parts.append(data.get("text/markdown", "") or data.get("text/plain", ""))
    return "\n".join(parts)


def _record_settings(runs) -> set[tuple[str, int, int]]:
    from regionmix_utils.evaluation.robustness import ATTACKS, attack_label

    return {(attack_label(r), round(r["eps"] * 255), r["n_images"]) for run in runs
            for r in run.evaluations() if r.get("kind") in ATTACKS}  # fmt: skip


def _attack_records(runs_dir) -> set[tuple[str, int, int]]:
    """The attack settings of every record the notebooks can show: the committed
    reference runs' and those of the runs trained under ``runs_dir``."""
    return _record_settings([*find_runs(find_bundle()), *find_runs(runs_dir)])


def _shown_records(stem: str, runs_dir) -> set[tuple[str, int, int | None]]:
    """The attack settings a notebook shows in quick mode and so must name: 04 every
    attack of the runs it attacks; 06 FGSM at its ε; 08 the attacks of its claims."""
    from regionmix_utils.notebook import reference_eps, reference_family

    bundle = find_runs(find_bundle())
    if stem == "04_adversarial_robustness":
        shown = [r for r in bundle if r.config.clean_ce
                 and r.config.method in ("none", "cutmix", "mixup", "region")]  # fmt: skip
        return _record_settings(shown)
    if stem == "06_ablations":
        return {
            a
            for a in _record_settings(bundle)
            if a[0] == "FGSM" and a[1] == round(reference_eps() * 255) and a[2] == 1017
        }
    if stem == "08_claims":
        labels = {"fgsm": "FGSM", "square": "Square-100"}
        return {(labels[c.kind], round(dict(c.settings)["eps"] * 255), None)
                for c in reference_family() if c.kind in labels}  # fmt: skip
    return set()


def test_the_text_check_catches_settings_that_did_not_run():
    """Sentences as notebook 04 printed them before its text was read from the records:
    the committed runs were attacked at 2/255 (FGSM, PGD-10, Square-100) on 1,017 images."""
    records = {("FGSM", e, 1017) for e in (1, 2, 4, 8, 16)} | {("PGD-10", 2, 1017),
               ("PGD-10", 64, 500), ("Square-100", 2, 1017)}  # fmt: skip
    wrong = [
        "The paper states neither ε nor Square's other settings: ε = 8/255 (the common choice).",
        "Tables 3 and 4 as the paper prints them (at ε = `TABLE_EPS`), ours beside the paper's.",
        "Table 7: the same runs under FGSM, PGD-10, PGD-50, APGD-CE, AutoAttack and Square-100 "
        "at ε = 2/255.",
        "FGSM at ε = 2/255 on 10,000 test images.",
    ]
    for sentence in wrong:
        assert stated_settings_problems(sentence, records), sentence
    right = ("At ε = 2/255 on 1,017 test images, accuracy runs under FGSM from 28.28% to 30.78%; "
             "PGD-10 at ε = 64/255 on 500 test images leaves 0.00%.")  # fmt: skip
    assert not stated_settings_problems(right, records)
    assert _named_settings(right) == {("FGSM", 2, 1017), ("PGD-10", 64, 500)}


def test_a_headless_run_prints_no_kernel_start_up_warnings(tmp_path, capfd):
    """ipykernel 7.4 warns at every start that the kernel listens on plain TCP (localhost
    here): `make demo` printed it once a notebook."""
    notebook = tmp_path / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")]),
                   notebook)  # fmt: skip
    executed = execute_notebook(notebook, tmp_path / "out", html=False)
    (cell,) = nbformat.read(executed, as_version=4).cells
    assert cell.outputs[0]["text"] == "42\n"
    assert "[IPKernelApp] WARNING" not in capfd.readouterr().err
