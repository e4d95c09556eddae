"""What `regionmix table --compare` says when it has nothing to pair: no runs of a side,
or runs of both sides that have no evaluation to compare them on."""

from __future__ import annotations

from pathlib import Path

from regionmix_utils.cli import main

TINY = ["--datasets", "shapes", "--seeds", "0", "--epochs", "1", "--width", "4",
        "--batch-size", "32", "--n-train", "32", "--n-test", "20", "--device", "cpu",
        "--no-progress"]  # fmt: skip


def _sweep(runs_dir: Path, *methods: str) -> None:
    assert main(["sweep", "--methods", *methods, *TINY, "--runs-dir", str(runs_dir)]) == 0


def _compare(runs_dir: Path, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `regionmix table --compare region:mixup`."""
    capsys.readouterr()
    code = main(["table", "--runs-dir", str(runs_dir), "--compare", "region:mixup"])
    out, err = capsys.readouterr()
    return code, out, err


def _calibrate(runs_dir: Path) -> None:
    assert main(["calibration", "--runs-dir", str(runs_dir), "--n-images", "20"]) == 0


def test_comparing_runs_not_yet_evaluated_says_so_and_names_the_command(tmp_path, capsys):
    """Runs of both sides with the same recipe but no evaluation records used to be
    reported as "no runs of both sides", as if they did not exist."""
    _sweep(tmp_path, "mixup", "region")
    code, _, err = _compare(tmp_path, capsys)
    assert code == 2
    assert "no runs of both sides" not in err
    assert "1 run(s) of 'region' (1 with no evaluation records)" in err
    assert "1 run(s) of 'mixup' (1 with no evaluation records)" in err
    assert f"`regionmix calibration --runs-dir {tmp_path}`" in err
    # The registry's other evaluations too, the attacks as one command.
    assert f"`regionmix corruptions --runs-dir {tmp_path}`" in err
    assert f"`regionmix attack --attack ATTACK --runs-dir {tmp_path}` (ATTACK: fgsm," in err
    # The command it names is the one that makes the comparison possible.
    _calibrate(tmp_path)
    code, out, _ = _compare(tmp_path, capsys)
    assert code == 0 and "clean test" in out


def test_no_runs_of_a_side_keeps_its_error_and_unevaluated_runs_are_counted_per_side(
    tmp_path, capsys
):
    """With no run of one side the error says so, not that records are missing; with runs
    of both, it counts each side's runs without records apart, where one side was
    evaluated and the other not."""
    _sweep(tmp_path, "region")
    code, _, err = _compare(tmp_path, capsys)
    assert code == 2 and "no runs of both sides of 'region:mixup'" in err
    assert "evaluation record" not in err
    _calibrate(tmp_path)  # region's run only: mixup's is trained after
    _sweep(tmp_path, "mixup")
    code, _, err = _compare(tmp_path, capsys)
    assert code == 2
    assert "1 run(s) of 'region' (0 with no evaluation records)" in err
    assert "1 run(s) of 'mixup' (1 with no evaluation records)" in err
