"""The README's main job, without the notebooks (the notebook tests run those)."""

from __future__ import annotations

import pytest

from regionmix_utils.demo import run_demo
from regionmix_utils.methods import method_names


@pytest.mark.slow
def test_demo_writes_figures_runs_and_a_table_one(tmp_path, capsys):
    out = tmp_path / "demo"
    accuracy = run_demo(out, quick_epochs=1, progress=False, notebooks=False)
    assert list(accuracy) == list(method_names())
    assert all(0 <= a <= 100 for a in accuracy.values())
    for name in ("mixing_grids.png", "training_curves.png", "reliability.png"):
        assert (out / name).stat().st_size > 10_000
    results = (out / "results.md").read_text()
    assert "Table 1: Test accuracy (%)" in results and "Not the paper's setting" in results
    for label in ("No mixing", "Mixup (k=1", "CutMix", "Region Mixup (k=2"):
        assert f" {label}" in results
    assert len(list(out.glob("runs/shapes/*/seed0/final.pt"))) == len(method_names())
    assert not (out / "notebooks").exists()
    assert str(out.resolve()) in capsys.readouterr().out
