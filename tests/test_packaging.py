"""Project files agree with each other: CI runs the README's test command, conda users
get the same installation as `make venv`."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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
