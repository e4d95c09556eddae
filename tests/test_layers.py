"""The package's layers: the import-linter contract in pyproject.toml (``lint-imports``,
run by ``make test``) names every module, and imports inside functions are kept for optional
heavy dependencies, each with its reason on the line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "regionmix_utils"
# Third-party packages that only some commands need, or that cost seconds to import.
HEAVY = {
    "IPython", "google", "ipywidgets", "jinja2", "matplotlib", "nbconvert", "nbformat", "pandas",
    "papermill",
    "pytorch_grad_cam", "scipy", "seaborn", "statsmodels", "submitit", "torchattacks",
}  # fmt: skip


def _layers() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if "containers" not in c]
    return [name.strip() for layer in contract["layers"] for name in layer.split("|")]


def test_the_layers_contract_names_every_module_once() -> None:
    modules = {f"regionmix_utils.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    modules |= {f"regionmix_utils.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    named = _layers()
    assert len(named) == len(set(named)), "a module is named twice"
    assert set(named) == modules, (
        f"not in the contract: {sorted(modules - set(named))}; "
        f"no such module: {sorted(set(named) - modules)}"
    )


def _function_imports(path: Path) -> list[tuple[int, str, str]]:
    lines = path.read_text().splitlines()
    tree = ast.parse(path.read_text())
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                name = node.names[0].name
            elif isinstance(node, ast.ImportFrom):
                name = "." * node.level + (node.module or "")
            else:
                continue
            text = " ".join(lines[node.lineno - 1 : node.end_lineno])
            found.append((node.lineno, name, text))
    return found


def test_imports_inside_functions_are_optional_heavy_dependencies_with_a_reason() -> None:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, name, text in _function_imports(path):
            where = f"{path.relative_to(REPO)}:{line} {name}"
            if name.split(".")[0] not in HEAVY:
                bad.append(f"{where}: a package module or light dependency; import it at the top")
            elif "#" not in text:
                bad.append(f"{where}: say why it is imported here (a trailing comment)")
    assert not bad, "\n".join(bad)


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from regionmix_utils import data\n    import scipy  # heavy\n")
    assert [name for _, name, _ in _function_imports(module)] == ["regionmix_utils", "scipy"]
