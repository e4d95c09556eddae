"""Project files agree with each other: CI runs the README's test command, conda users
get the same installation as `make venv`, every notebook opens in Colab and installs the
package there, and the package builds into a wheel that works outside the checkout."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_PATHS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


def test_environment_yml_leaves_torchattacks_to_a_no_deps_step():
    env = (REPO / "environment.yml").read_text()
    pip_lines = env.split("- pip:")[1]
    assert "torchattacks" not in pip_lines, "torchattacks with deps drags JupyterLab to 3.x"
    assert "pip install --no-deps torchattacks" in env
    assert "--no-deps" in (REPO / "Makefile").read_text()


def _repository() -> str:
    """The repository URL in pyproject.toml, e.g. https://github.com/OWNER/NAME."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def _colab_url(notebook: Path) -> str:
    github = _repository().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{github}/blob/main/notebooks/{notebook.name}"


def _torchattacks_pin() -> str:
    return re.search(r"^TORCHATTACKS := (\S+)$", (REPO / "Makefile").read_text(), re.M)[1]


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_notebook_opens_in_colab_and_installs_what_it_needs_there(path):
    cells = json.loads(path.read_text())["cells"]
    assert cells[0]["cell_type"] == "markdown"
    assert f"[![Open In Colab]({COLAB_BADGE})]({_colab_url(path)})" in "".join(cells[0]["source"])
    first_code = next("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert 'find_spec("regionmix_utils") is None' in first_code, "install only when missing"
    assert f'%pip install --quiet "regionmix-utils @ git+{_repository()}"' in first_code
    assert f"%pip install --quiet --no-deps {_torchattacks_pin()}" in first_code


def test_make_lab_starts_jupyter_as_root_where_it_runs_as_root():
    out = subprocess.run(["make", "-n", "lab"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if "jupyter lab notebooks/" in x)
    assert ("--allow-root" in line) == (os.getuid() == 0)


@pytest.mark.parametrize("script", sorted((REPO / "benchmarks").glob("*.py")), ids=lambda p: p.stem)
def test_every_benchmark_still_starts(script):
    """Benchmarks are never run as tests (they time things), but they must not rot: each
    imports what it uses and parses its options."""
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                          text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_readme_has_a_colab_badge_for_every_notebook():
    readme = (REPO / "README.md").read_text()
    for path in NOTEBOOK_PATHS:
        assert f"[![Open In Colab]({COLAB_BADGE})]({_colab_url(path)})" in readme, path.name


def test_the_torchattacks_pin_is_the_same_everywhere():
    pin = _torchattacks_pin()
    for name in ("environment.yml", "README.md", "regionmix_utils/evaluation/robustness.py"):
        pins = re.findall(r"torchattacks==[\w.]+", (REPO / name).read_text())
        assert pins and set(pins) == {pin}, name


@pytest.mark.slow
def test_the_wheel_installs_and_imports_outside_the_checkout(tmp_path):
    """What `pip install git+URL` builds on Colab: every module, the command, no JupyterLab."""
    source = tmp_path / "source"  # a copy, so that the build leaves the checkout alone
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source)
    shutil.copytree(REPO / "regionmix_utils", source / "regionmix_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
                    source], check=True, capture_output=True)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("regionmix_utils-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    modules = {f"regionmix_utils/{p.name}" for p in (REPO / "regionmix_utils").glob("*.py")}
    assert modules <= names
    assert "regionmix = regionmix_utils.cli:main" in entry_points
    assert f"Project-URL: Repository, {_repository()}" in metadata
    assert "License-Expression: MIT" in metadata  # the SPDX form, not the deprecated table
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert all("extra ==" in line for line in requires if "jupyterlab" in line)

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True,
                   capture_output=True)  # fmt: skip
    code = "import regionmix_utils.cli, regionmix_utils.notebook as n; print(n.__file__)"
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    assert Path(out.strip()).is_relative_to(site)
