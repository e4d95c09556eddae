"""The documented environment resolves to current JupyterLab despite torchattacks' pins.

torchattacks 3.5.1 declares requests~=2.25.1; installed with its dependencies it makes
pip fall back to JupyterLab 3.x. The Makefile installs it with --no-deps. These tests
check what that leaves installed.
"""

import importlib.metadata as md
import subprocess
import sys

import pytest
from packaging.version import Version


def version(name: str) -> Version:
    try:
        return Version(md.version(name))
    except md.PackageNotFoundError:
        pytest.fail(f"{name} is not installed; run `make venv` (see README)")


def test_jupyterlab_is_4_or_newer():
    assert version("jupyterlab") >= Version("4")


def test_requests_was_not_downgraded_to_torchattacks_pin():
    assert version("requests") >= Version("2.31")


def test_torchattacks_imports_with_the_attacks_we_use():
    torchattacks = pytest.importorskip("torchattacks")
    assert hasattr(torchattacks, "FGSM") and hasattr(torchattacks, "Square")


def test_the_only_broken_requirement_is_torchattacks_requests_pin():
    result = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    problems = [line for line in result.stdout.splitlines() if line.strip()]
    unexpected = [p for p in problems if not p.startswith("torchattacks ")]
    assert not unexpected, "\n".join(unexpected)
    for p in problems:
        assert "requests" in p, p
