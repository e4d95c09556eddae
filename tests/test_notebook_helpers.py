"""The notebooks' helpers: set-up (device, Colab's Drive) and finding the runs they need."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from regionmix_utils import __version__, notebook
from regionmix_utils.config import TrainConfig, quick_config
from regionmix_utils.notebook import ensure_runs, example_batch, setup, sweep_commands
from regionmix_utils.runs import Run, run_dir

from .conftest import tiny_config


def test_setup_prints_versions_and_returns_the_device(capsys):
    device = setup()
    out = capsys.readouterr().out
    assert f"regionmix_utils {__version__}" in out and f"torch {torch.__version__}" in out
    assert device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert ("No GPU" in out) == (device == "cpu")
    setup(needs_gpu=False)
    assert "No GPU:" not in capsys.readouterr().out


@pytest.fixture
def colab(monkeypatch):
    """Stands in for the ``google.colab`` module, which only exists on Colab: records mounts."""
    mounts = []
    drive = types.SimpleNamespace(mount=mounts.append)
    colab_module = types.ModuleType("google.colab")
    colab_module.drive = drive
    monkeypatch.setitem(sys.modules, "google.colab", colab_module)
    monkeypatch.setattr(notebook, "IN_COLAB", True)
    return mounts


def test_setup_mounts_google_drive_only_for_runs_on_it(colab, capsys):
    setup("../runs")
    setup("/content/drive-other/runs")
    assert colab == []
    setup("/content/drive/MyDrive/regionmix/runs")
    assert colab == ["/content/drive"]
    if not torch.cuda.is_available():
        assert "Runtime > Change runtime type > GPU" in capsys.readouterr().out


def test_no_drive_outside_colab(capsys):
    setup("/content/drive/MyDrive/regionmix/runs")  # a plain folder here: nothing to mount
    assert "regionmix_utils" in capsys.readouterr().out


def test_example_batch_falls_back_to_the_embedded_data(tmp_path):
    images, labels, classes, source = example_batch(4, tmp_path, download=False)
    assert source.startswith("the embedded shapes data") and images.shape == (4, 3, 32, 32)
    assert len(classes) == 10 and 0 <= images.min() and images.max() <= 1 and labels.shape == (4,)


def test_example_batch_shows_real_photos_of_different_classes_when_it_can(real_data):
    images, labels, classes, source = example_batch(8, real_data, download=False)
    assert images.shape == (8, 3, 32, 32)
    assert source == "CIFAR-10 test images (cifar10-subset.npz)" and classes[0] == "airplane"
    assert len(set(labels.tolist())) == 8  # a stratified sample: eight classes


def test_example_batch_downloads_only_when_asked(tmp_path, monkeypatch):
    asked = []

    def fake_load(name, root=None, download=False, **kwargs):
        asked.append((name, download))
        raise OSError("offline")  # what torchvision's download raises without a network

    monkeypatch.setattr(notebook, "load_dataset", fake_load)
    with pytest.raises(OSError):  # the shapes fallback goes through the same stand-in
        example_batch(2, tmp_path, download=True)
    assert asked[:3] == [("cifar10", False), ("cifar10", True), ("cifar10-subset", False)]
    asked.clear()
    with pytest.raises(OSError):
        example_batch(2, tmp_path, download=False)
    assert ("cifar10", True) not in asked


def test_ensure_runs_never_trains_silently_outside_quick_mode(tmp_path):
    configs = [TrainConfig(dataset="shapes", method="cutmix", seed=1, clean_ce=False)]
    with pytest.raises(FileNotFoundError) as err:
        ensure_runs(configs, tmp_path, quick=False)
    message = str(err.value)
    assert (
        f"regionmix sweep --datasets shapes --methods cutmix --seeds 1 --no-clean-ce "
        f"--runs-dir {tmp_path}"
    ) in message
    assert not any(tmp_path.iterdir())


def test_sweep_commands_name_exactly_what_is_missing():
    configs = [
        TrainConfig(dataset="cifar10", method="region", k=4, alpha=0.4, seed=s) for s in (0, 1)
    ] + [TrainConfig(dataset="cifar100", method="mixup", k=8)]
    assert sweep_commands(configs, "runs") == [
        "regionmix sweep --datasets cifar10 --methods region --seeds 0 1 --k 4 --alpha 0.4 "
        "--runs-dir runs",
        "regionmix sweep --datasets cifar100 --methods mixup --seeds 0 --runs-dir runs",
    ]


def test_every_printed_command_trains_exactly_the_missing_runs(tmp_path, capsys):
    """Each command ``ensure_runs`` prints for missing runs, run as printed, trains those
    runs and no others: holdout, label smoothing, mix_prob, epochs and the clean-CE
    ablation included (the runs notebook 07 asks for hold 5,000 images out)."""
    import shlex

    from regionmix_utils.cli import main
    from regionmix_utils.runs import find_runs

    tiny = {"dataset": "shapes", "epochs": 1, "width": 4, "n_train": 96, "n_test": 20,
            "batch_size": 32}  # fmt: skip
    missing = [
        TrainConfig(method="region", holdout=32, seed=1, **tiny),
        TrainConfig(method="mixup", label_smoothing=0.1, mix_prob=0.5, **tiny),
        TrainConfig(method="region", clean_ce=False, matched_compute=True, k=4, **tiny),
        TrainConfig(method="region-random", sides=(2, 4), lr=0.05, **tiny),
    ]
    assert ensure_runs(missing, tmp_path, quick=False, missing="report") == []
    printed = [line.strip() for line in capsys.readouterr().out.splitlines()
               if line.strip().startswith("regionmix sweep")]  # fmt: skip
    assert len(printed) == len(missing)
    for command in printed:
        assert main([*shlex.split(command)[1:], "--no-progress"]) == 0
    trained = {run.path for run in find_runs(tmp_path)}
    assert trained == {Run.of(tmp_path, c).path for c in missing}
    assert ensure_runs(missing, tmp_path, quick=False) == [Run.of(tmp_path, c) for c in missing]


# A value other than the default for every field of a run's identity, over four runs.
VARIED = [
    TrainConfig(dataset="shapes", method="region", k=4, alpha=0.4, lam_mode="sample",
                clean_ce=False, matched_compute=True, epochs=7, batch_size=16, lr=0.05,
                momentum=0.8, nesterov=True, weight_decay=1e-4, milestones=(3, 5), lr_gamma=0.2,
                pad=4, stem_stride=2, width=16, n_train=96, n_test=20, holdout=8, mix_prob=0.5,
                switch=(("cutmix", 0.25),), mix_off_epoch=3, label_smoothing=0.1, seed=3),
    TrainConfig(dataset="cifar10", method="region-random", sides=(2, 4), concat_forward=True,
                lr_schedule="hold-cosine"),
    TrainConfig(dataset="cifar100", method="fmix", params={"decay_power": 2.0}),
    quick_config(TrainConfig(dataset="shapes", method="mixup", alpha=0.123456789)),
]  # fmt: skip


def test_every_field_of_a_run_is_an_option_that_gives_the_run_back():
    """Each printed command, parsed by the command line, makes exactly its run: for every
    field of a run's identity, and every field is covered (a new one must be added)."""
    import shlex

    from regionmix_utils.cli import build_parser, sweep_configs
    from regionmix_utils.config import identity

    for config in VARIED:
        (command,) = sweep_commands([config], "runs")
        args = build_parser().parse_args(shlex.split(command)[1:])
        assert [identity(c) for c in sweep_configs(args)] == [identity(config)], command
    assert "--milestones 3 5 --lr-gamma 0.2 --pad 4" in sweep_commands(VARIED[:1], "runs")[0]
    default = identity(TrainConfig())
    varied = {n for c in VARIED for n, v in identity(c).items() if v != default[n]}
    assert varied == set(default)


def test_ensure_runs_can_report_what_is_missing_and_go_on(tmp_path, capsys):
    from regionmix_utils.train import train

    done = tiny_config(epochs=1, n_train=64, n_test=20)
    train(done, tmp_path, device="cpu", progress=False)
    missing = TrainConfig(dataset="shapes", method="region-random", sides=(2, 8))
    runs = ensure_runs([done, missing], tmp_path, quick=False, missing="report")
    assert runs == [Run.of(tmp_path, done)]
    out = capsys.readouterr().out
    assert "1 of 2 run(s) are missing" in out
    assert "--methods region-random --seeds 0 --sides 2 8" in out


def test_ensure_runs_returns_finished_runs_without_training_them_again(tmp_path):
    from regionmix_utils.train import train

    config = tiny_config(epochs=1, n_train=64, n_test=20)
    train(config, tmp_path, device="cpu", progress=False)
    final = run_dir(tmp_path, config) / "final.pt"
    stamp = final.stat().st_mtime_ns
    assert ensure_runs([config], tmp_path, quick=False) == [Run.of(tmp_path, config)]
    assert final.stat().st_mtime_ns == stamp


# ------------------------------------------------------------------ the data folder


def test_data_dir_is_the_same_from_any_working_directory(monkeypatch, tmp_path):
    """The kind of fault reported in jupyterlab/jupyterlab#12063: a notebook's kernel runs
    in the notebook's folder, so a data path relative to the working directory is a
    different folder in the notebook, on the command line and for a download."""
    from regionmix_utils.files import data_dir

    monkeypatch.delenv("REGIONMIX_DATA", raising=False)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path)
    from_root = data_dir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert data_dir() == from_root and from_root.is_absolute()
    assert data_dir("data") == tmp_path / "notebooks" / "data"  # an explicit path is the user's


def test_data_dir_tries_the_argument_the_environment_the_checkout_then_the_shared_folder(
    monkeypatch, tmp_path
):
    from regionmix_utils import files

    checkout, shared = tmp_path / "repo", tmp_path / "shared-data"
    (checkout / "data").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    (checkout / "data" / "README.md").write_text("downloads go here")
    shared.mkdir()
    monkeypatch.setattr(files, "_CHECKOUT", checkout)
    monkeypatch.delenv("REGIONMIX_DATA", raising=False)
    monkeypatch.setenv("REGIONMIX_SHARED_DATA", str(shared))
    assert files.data_dir() == shared  # the checkout's data/ holds no dataset yet
    (checkout / "data" / "cifar10-subset.npz").write_bytes(b"")
    assert files.data_dir() == checkout / "data"  # now it does: downloads and reads agree
    monkeypatch.setenv("REGIONMIX_DATA", str(tmp_path / "mine"))
    assert files.data_dir() == tmp_path / "mine"
    assert files.data_dir(tmp_path / "given") == tmp_path / "given"


def test_data_dir_without_a_checkout_or_shared_folder(monkeypatch, tmp_path):
    from regionmix_utils import files

    monkeypatch.setattr(files, "_CHECKOUT", tmp_path / "site-packages")  # an installed package
    monkeypatch.delenv("REGIONMIX_DATA", raising=False)
    monkeypatch.setenv("REGIONMIX_SHARED_DATA", str(tmp_path / "absent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert files.data_dir() == tmp_path / ".cache" / "regionmix" / "data"


def test_setup_prints_the_data_folder_once(capsys, tmp_path):
    setup(data_dir=tmp_path)
    out = capsys.readouterr().out
    assert out.count("Data folder:") == 1 and str(tmp_path) in out


# ------------------------------------------------------------------ what the notebooks say


@pytest.fixture(scope="module")
def bundle_runs():
    """The committed reference runs, as notebooks 03-08 read them in quick mode."""
    from regionmix_utils.runs import find_runs
    from regionmix_utils.study import find_bundle

    bundle = find_bundle()
    if bundle is None:
        pytest.skip("the reference study's bundle is not here")
    return find_runs(bundle)


def _cells(**rows) -> object:
    """A ``results.Comparison`` whose cells hold ``rows`` (column -> values): the columns
    the notebooks read, as ``Comparison`` documents them."""
    import pandas as pd

    from regionmix_utils.results import Comparison

    n = len(next(iter(rows.values())))
    base = {"dataset": ["cifar10-subset"] * n, "seeds": [5] * n, "p": [0.01] * n,
            "p_holm": [0.04] * n, "low": [0.5] * n, "high": [3.0] * n,
            "plan": [None] * n}  # fmt: skip
    return Comparison("", pd.DataFrame(), pd.DataFrame({**base, **rows}))


def test_ce_findings_quote_the_runs_and_no_verdict_stronger_than_judged(bundle_runs):
    import numpy as np

    from regionmix_utils.notebook import ce_findings
    from regionmix_utils.results import collect_runs

    runs = collect_runs(runs=[r for r in bundle_runs if r.config.method == "region"])
    with_term = [r.accuracy() for r in bundle_runs if r.config.method == "region"
                 and r.config.clean_ce]  # fmt: skip
    number = f"{np.mean(with_term):.2f} ± {np.std(with_term, ddof=1):.2f}%"
    alone = ce_findings(runs)
    assert number in alone and "descriptive" in alone and "supported" not in alone
    labels = sorted(set(runs["label_ce"]), key=len)
    judged = _cells(a=[labels[0]], b=[labels[1]], metric=["clean test"], delta=[6.16],
                    verdict=["not resolved"])  # fmt: skip
    text = ce_findings(runs, judged)
    assert "+6.16 points [+0.50, +3.00]" in text and "**not resolved**" in text
    assert "**supported**" not in text


def test_attacks_ran_names_each_attack_at_the_eps_and_image_counts_of_its_records(bundle_runs):
    from regionmix_utils.notebook import attacks_ran
    from regionmix_utils.results import collect_evaluations, collect_runs

    region = [r for r in bundle_runs if r.config.method == "region" and r.config.clean_ce]
    text = attacks_ran(collect_evaluations(collect_runs(runs=region)))
    ran = {(r["kind"], round(r["eps"] * 255), r["n_images"]) for run in region
           for r in run.evaluations() if "eps" in r}  # fmt: skip
    for clause in text.split("; "):
        kind = clause.split(" ")[0].split("-")[0].lower()
        n = int(clause.rsplit(" on ", 1)[1].split(" ")[0].replace(",", ""))
        eps = [int(e.split("/")[0]) for e in clause.split("ε = ")[1].split(" on ")[0]
               .replace(" and ", ", ").split(", ")]  # fmt: skip
        assert {(kind, e, n) for e in eps} <= ran, clause
        ran -= {(kind, e, n) for e in eps}
    assert not ran, f"records the text leaves out: {ran}"


def test_robustness_findings_read_the_records_and_the_verdicts(bundle_runs):
    from regionmix_utils.evaluation.masking import masking_check
    from regionmix_utils.notebook import robustness_findings
    from regionmix_utils.results import collect_evaluations, collect_runs

    runs = [r for r in bundle_runs if r.config.clean_ce and r.config.method in ("mixup", "region")]
    evaluations = collect_evaluations(collect_runs(runs=runs))
    checks = {str(r.path): masking_check(r.evaluations()) for r in runs}
    labels = sorted(set(evaluations["label_ce"]))
    judged = _cells(a=[labels[1]], b=[labels[0]], metric=["FGSM ε=2/255"], delta=[-1.61],
                    verdict=["not resolved"])  # fmt: skip
    text = robustness_findings(evaluations, 2 / 255, checks, judged)
    fgsm = evaluations[(evaluations["kind"] == "fgsm") & (evaluations["eps"] == 2 / 255)]
    low = fgsm.groupby("label_ce")["accuracy"].mean().min()
    assert "At ε = 2/255 on 1,017 test images" in text and f"from {low:.2f}%" in text
    assert "No gradient-masking flag fired on any of the 10 runs" in text
    assert "cannot tell the methods apart" in text and "**supported**" not in text
    unjudged = robustness_findings(evaluations, 2 / 255, checks)
    assert "descriptive" in unjudged and "cannot tell" not in unjudged


def test_ablation_findings_say_what_the_grid_cannot_answer(bundle_runs):
    from regionmix_utils.ablations import ablation_frame
    from regionmix_utils.notebook import ablation_findings

    runs = [r for r in bundle_runs if r.config.method in ("mixup", "region")
            and not r.config.matched_compute]  # fmt: skip
    text = ablation_findings(ablation_frame(runs, 2 / 255), 2 / 255)
    assert text.startswith("The runs here hold k = 1 and 2 at α = 1: they cannot say")
    assert "on α" in text and "on random grids" in text and "descriptive" in text
    region = [r.accuracy() for r in runs if r.config.method == "region" and not r.config.clean_ce]
    assert f"Without the term: {sum(region) / len(region):.2f} ±" in text


def test_claims_findings_count_the_verdicts_and_quote_only_the_resolved(bundle_runs):
    from regionmix_utils.notebook import claims_findings

    judged = _cells(a=["A (k=2)", "A (k=2)", "C"], b=["B", "C", "B"],
                    metric=["clean test"] * 3, delta=[6.0, -1.0, 0.2],
                    verdict=["supported", "not resolved", "not resolved"],
                    plan=[None, "about 14 (range 8-87)", "about 7 (range 5-27)"])  # fmt: skip
    text = claims_findings(judged)
    assert text.startswith("Of the 3 declared claims judged here, 1 supported, 0 contradicted "
                           "and 2 not resolved.")  # fmt: skip
    assert "A (k=2) − B = +6.00 points" in text and "about 7 to 14 seeds" in text
    assert text.count("**supported**") == 1


def test_cam_findings_count_right_predictions_and_blank_maps():
    from regionmix_utils.notebook import cam_findings

    labels = torch.tensor([0, 1, 2, 3])
    maps = {"Mixup": torch.rand(4, 8, 8), "Region": torch.zeros(4, 8, 8)}
    maps["Mixup"][0] = 0  # one blank map
    predictions = {"Mixup": torch.tensor([0, 1, 0, 0]), "Region": labels}
    text = cam_findings(maps, labels, predictions)
    assert "classify 2 (Mixup) and 4 (Region) correctly" in text
    assert "on 1 (Mixup) and 4 (Region) of them" in text and "by eye" in text
    scores = {m: {"pointing_game": 0.5, "n_maps": 4, "blank_maps": b, "energy_in_box": 0.3}
              for m, b in (("Mixup", 1), ("Region", 0))}  # fmt: skip
    scored = cam_findings(maps, labels, predictions, scores)
    assert "Mixup 0.50 (0.67 of its 3 non-blank maps)" in scored


def test_show_tables_says_the_shared_recipe_once_and_not_in_the_headers(bundle_runs, capsys):
    from regionmix_utils.notebook import show_tables
    from regionmix_utils.results import collect_runs

    runs = collect_runs(runs=[r for r in bundle_runs if r.config.clean_ce
                              and r.config.method in ("mixup", "region")])  # fmt: skip
    show_tables(runs, numbers=(1,))
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| dataset"))
    assert "epochs=20" not in header and "Region Mixup (k=2) ours" in header
    assert out.count("Every column of ours shares epochs=20") == 1


def test_label_cam_figure_names_classes_and_adds_a_colour_bar():
    import matplotlib

    matplotlib.use("Agg")
    from regionmix_utils.notebook import label_cam_figure
    from regionmix_utils.viz import cam_figure

    images = torch.rand(2, 3, 8, 8)
    fig = cam_figure(images, {"A": torch.rand(2, 8, 8), "B": torch.rand(2, 8, 8)})
    predictions = {"A": torch.tensor([0, 0]), "B": torch.tensor([1, 1])}
    label_cam_figure(fig, torch.tensor([0, 1]), predictions, ["cat", "dog"])
    assert [fig.axes[i].get_ylabel() for i in (0, 3)] == ["true: cat", "true: dog"]
    assert fig.axes[4].get_xlabel() == "predicted: cat" and len(fig.axes) == 7  # + colour bar
    assert "Grad-CAM++" in fig.axes[-1].get_ylabel()


def test_calibration_findings_quote_the_means_over_seeds_and_give_no_verdict():
    """Notebook 07's words come from the records: the mean ECE before -> after scaling
    per configuration, in how many seeds scaling raised it, and no verdict (no claim
    about calibration is declared); the OOD sentence is said to describe one model."""
    from regionmix_utils.config import TrainConfig
    from regionmix_utils.notebook import calibration_findings

    class FakeRun:  # what the text reads of a run: its config
        def __init__(self, method, seed):
            self.config = TrainConfig(dataset="shapes", method=method, seed=seed)

    run = FakeRun

    ece = {("region", 0): (4.0, 6.0), ("region", 1): (5.0, 4.0), ("none", 0): (9.0, 4.0)}
    stored = {run(m, s): ({"ece": b, "ece_scaled": a, "n_images": 1017}, None, None)
              for (m, s), (b, a) in ece.items()}  # fmt: skip
    text = calibration_findings(stored)
    assert "Region Mixup (k=2) 4.50 → 5.00% (raised in 1 of 2 seeds)" in text
    assert "No mixing 9.00 → 4.00% (raised in 0 of 1 seed)" in text
    assert "on 1,017 test images" in text and "no verdict" in text
    assert "supported" not in text and "first seed" not in text
    assert "describes these models" in calibration_findings(stored, "By the MSP, ...")
