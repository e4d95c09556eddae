"""FGSM and Square through torchattacks, Grad-CAM++ maps and localisation scores."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from regionmix_utils.cli import build_parser, main
from regionmix_utils.config import TrainConfig
from regionmix_utils.data import load_dataset
from regionmix_utils.evaluation.cam import (
    cam_maps,
    energy_in_box,
    localisation_scores,
    pointing_hits,
)
from regionmix_utils.evaluation.robustness import (
    AttackConfig,
    accuracy,
    evaluate_run,
    make_attack,
)
from regionmix_utils.results import collect_runs, paper_tables
from regionmix_utils.runs import Run
from regionmix_utils.train import train

from .conftest import tiny_config
from .test_attacks import adversarial_accuracy
from .test_data import make_tinyimagenet


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """A PreAct ResNet-18 (width 8) trained for 3 epochs on 1000 shapes images."""
    root = tmp_path_factory.mktemp("runs")
    config = tiny_config(
        epochs=3, width=8, batch_size=64, n_train=1000, n_test=200, milestones=(2,)
    )
    train(config, root, device="cpu", progress=False)
    return Run.of(root, config)


@pytest.fixture(scope="module")
def shapes_model(shapes_run):
    model = shapes_run.load_model()
    test = load_dataset("shapes", n_train=1, n_test=200).test
    return model, test.images.float() / 255, test.labels, test.boxes


def hand_written_fgsm(model, images, labels, eps):
    x = images.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), labels)
    (grad,) = torch.autograd.grad(loss, x)
    return (images + eps * grad.sign()).clamp(0, 1)


def test_fgsm_matches_a_hand_written_fgsm(shapes_model):
    model, images, labels, _ = shapes_model
    eps = 4 / 255
    expected = accuracy(model, hand_written_fgsm(model, images, labels, eps), labels)
    got = adversarial_accuracy(model, images, labels, AttackConfig("fgsm", eps), progress=False)
    assert got == expected
    assert got < accuracy(model, images, labels), "FGSM did not hurt at all"


def test_fgsm_with_eps_zero_is_clean_accuracy(shapes_model):
    model, images, labels, _ = shapes_model
    clean = accuracy(model, images, labels)
    assert clean > 20  # the model learned something
    assert (
        adversarial_accuracy(model, images, labels, AttackConfig("fgsm", 0.0), progress=False)
        == clean
    )


def test_square_is_bounded_reproducible_and_leaves_the_global_rng_alone(shapes_model):
    model, images, labels, _ = shapes_model
    images, labels = images[:64], labels[:64]
    config = AttackConfig("square", 8 / 255, queries=100, seed=3)
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    first = adversarial_accuracy(model, images, labels, config, batch_size=32, progress=False)
    assert torch.equal(torch.get_rng_state(), state), "Square changed the global RNG"
    second = adversarial_accuracy(model, images, labels, config, batch_size=32, progress=False)
    assert first == second
    assert first <= accuracy(model, images, labels)


def test_attacks_leave_the_model_mode_as_it_was(shapes_model):
    model, images, labels, _ = shapes_model
    model.train()
    adversarial_accuracy(model, images[:8], labels[:8], AttackConfig("fgsm"), progress=False)
    assert model.training
    model.eval()


def test_attack_settings_are_passed_to_torchattacks(shapes_model):
    model = shapes_model[0]
    square = make_attack(model, AttackConfig("square"))
    assert (square.norm, square.eps, square.n_queries, square.n_restarts) == ("Linf", 8 / 255,
                                                                               100, 1)  # fmt: skip
    assert (square.p_init, square.loss, square.seed, square.rescale_schedule) == (
        0.8, "margin", 0, True,
    )  # fmt: skip
    other = make_attack(model, AttackConfig("square", 4 / 255, 50, seed=7, p_init=0.3, loss="ce"))
    assert (other.eps, other.n_queries, other.seed, other.p_init, other.loss) == (
        4 / 255, 50, 7, 0.3, "ce",
    )  # fmt: skip
    assert make_attack(model, AttackConfig("fgsm", 2 / 255)).eps == 2 / 255
    assert AttackConfig("fgsm", 0.0313725).eps == 8 / 255  # snapped: one setting, one record


def test_squares_seed_is_used(shapes_model):
    """torchattacks returns the clean image where Square fails, so the budget here is
    large enough for some successes; their perturbations depend on the seed."""
    model, images, labels, _ = shapes_model
    x, y = images[:64], labels[:64]

    def adversarial(seed):
        with torch.random.fork_rng():
            return make_attack(model, AttackConfig("square", 16 / 255, queries=50, seed=seed))(x, y)

    first = adversarial(1)
    assert (first != x).any(), "Square changed nothing: the test would prove nothing"
    assert torch.equal(first, adversarial(1))
    assert not torch.equal(first, adversarial(2))


def test_bad_attack_settings():
    with pytest.raises(ValueError, match="attack must be one of"):
        AttackConfig("bim")
    with pytest.raises(ValueError, match=r"eps must be in \[0, 1\]"):
        AttackConfig("fgsm", eps=8)
    with pytest.raises(ValueError, match="queries must be >= 1"):
        AttackConfig("square", queries=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        AttackConfig("square", loss="hinge")


def test_evaluate_run_writes_records_and_reuses_them(shapes_run):
    configs = [AttackConfig("fgsm", 2 / 255), AttackConfig("square", 2 / 255, queries=5)]
    first = evaluate_run(shapes_run, configs, n_images=50, progress=False)
    assert [r["kind"] for r in first] == ["clean", "fgsm", "square"]
    assert all(r["n_images"] == 50 and r["seconds"] >= 0 for r in first)
    assert first[2] == {
        "kind": "square",
        "eps": 2 / 255,
        "queries": 5,
        "seed": 0,
        "p_init": 0.8,
        "loss": "margin",
        "n_images": 50,
        "accuracy": first[2]["accuracy"],
        "seconds": first[2]["seconds"],
        "time": first[2]["time"],  # ISO 8601, UTC
    }
    assert first[2]["time"].endswith("+00:00")
    stored = json.loads((shapes_run.path / "eval.json").read_text())["records"]
    assert stored == first
    stamp = (shapes_run.path / "eval.json").stat().st_mtime_ns
    assert evaluate_run(shapes_run, configs, n_images=50, progress=False) == first
    assert (shapes_run.path / "eval.json").stat().st_mtime_ns == stamp, "results were recomputed"
    more = evaluate_run(shapes_run, configs[:1], n_images=60, progress=False)
    assert [r["n_images"] for r in more] == [60, 60]
    assert len(shapes_run.evaluations()) == 5  # both image counts are kept


def test_attacks_are_evaluated_in_float32_under_autocast(shapes_model):
    model, images, labels, _ = shapes_model
    dtypes = []
    handle = model.conv1.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            accuracy(model, images[:8], labels[:8])
            adversarial_accuracy(model, images[:8], labels[:8], AttackConfig("fgsm"),
                                 progress=False)  # fmt: skip
            cam_maps(model, images[:2], labels[:2])
    finally:
        handle.remove()
    assert dtypes and set(dtypes) == {torch.float32}


# ------------------------------------------------------------------------------- CAMs


def test_cam_maps_have_the_input_size_lie_in_unit_range_and_release_hooks(shapes_model):
    model, images, labels, _ = shapes_model
    model.train()
    maps = cam_maps(model, images[:10], labels[:10], batch_size=4)
    assert maps.shape == (10, 32, 32) and maps.dtype == torch.float32
    assert maps.min() >= 0 and maps.max() <= 1
    assert model.training, "the CAM left the model in eval mode"
    layer = model.layer4[-1]
    assert not layer._forward_hooks and not layer._backward_hooks and not layer._forward_pre_hooks
    model.eval()


def test_localisation_scores_of_perfect_and_wrong_maps():
    boxes = torch.tensor([[2, 3, 6, 8], [0, 0, 4, 4]])
    inside = torch.zeros(2, 10, 10)
    inside[0, 3:8, 2:6] = 1.0
    inside[1, 0:4, 0:4] = torch.rand(4, 4) + 0.1
    torch.testing.assert_close(energy_in_box(inside, boxes), torch.ones(2))
    assert pointing_hits(inside, boxes).all()
    outside = torch.zeros(2, 10, 10)
    outside[:, 9, 9] = 1.0
    torch.testing.assert_close(energy_in_box(outside, boxes), torch.zeros(2))
    assert not pointing_hits(outside, boxes).any()
    half = torch.zeros(1, 10, 10)
    half[0, 0, 0] = half[0, 9, 9] = 1.0
    torch.testing.assert_close(energy_in_box(half, boxes[1:]), torch.tensor([0.5]))


def test_localisation_scores_on_shapes_are_in_range(shapes_model):
    model, images, labels, boxes = shapes_model
    scores = localisation_scores(model, images[:20], labels[:20], boxes[:20])
    assert 0 <= scores["energy_in_box"] <= 1 and 0 <= scores["pointing_game"] <= 1


def test_cli_attack_and_cam_on_the_runs_a_quick_sweep_leaves(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    sweep = ["sweep", "--datasets", "shapes", "--methods", "mixup", "region", "--seeds", "0",
             "--epochs", "1", "--width", "4", "--n-train", "128", "--n-test", "50",
             "--device", "cpu", "--runs-dir", runs, "--no-progress"]  # fmt: skip
    assert main(sweep) == 0
    quick = ["sweep", "--datasets", "shapes", "--methods", "region", "--seeds", "0", "--quick",
             "--epochs", "1", "--n-train", "128", "--n-test", "50", "--device", "cpu",
             "--runs-dir", runs, "--no-progress", "--no-clean-ce"]  # fmt: skip
    assert main(quick) == 0
    attack = ["attack", "--runs-dir", runs, "--eps", "4/255", "--queries", "5",
              "--n-images", "20", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(attack) == 0
    out = capsys.readouterr().out
    assert out.count("(20 test images): clean") == 3 and "fgsm" in out and "square" in out
    assert len(list((tmp_path / "runs").glob("shapes/*/seed0/eval.json"))) == 3
    figure = tmp_path / "cam.png"
    cam = ["cam", "--runs-dir", runs, "--dataset", "shapes", "--n-images", "3", "--out",
           str(figure)]  # fmt: skip
    assert main(cam) == 0
    out = capsys.readouterr().out
    # Only the full runs with the clean term: not the quick, ablated one.
    assert figure.stat().st_size > 1000 and out.count("pointing game") == 2
    assert "Mixup (k=1, epochs=1" in out
    assert main(["attack", "--runs-dir", str(tmp_path / "empty")]) == 2


def test_attack_without_n_images_uses_the_whole_test_split(tmp_path, capsys):
    """The paper reports test accuracy after attack: by default every test image (here
    the 4 of a Tiny ImageNet fixture in the real folder layout), and the table says so."""
    data = tmp_path / "data"
    make_tinyimagenet(data, wnids=("n01443537", "n01629819", "n01641577", "n01644900"),
                      per_class=4)  # fmt: skip
    config = TrainConfig(dataset="tinyimagenet", method="region", epochs=1, width=4,
                         batch_size=8)  # fmt: skip
    train(config, tmp_path / "runs", data, device="cpu", progress=False)
    command = ["attack", "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(data),
               "--attack", "fgsm", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert build_parser().parse_args(["attack"]).n_images is None  # whole split by default
    assert main(command) == 0
    assert "(4 test images)" in capsys.readouterr().out
    records = Run.of(tmp_path / "runs", config).evaluations()
    assert [(r["kind"], r["n_images"]) for r in records] == [("clean", 4), ("fgsm", 4)]
    fgsm = [t for t in paper_tables(collect_runs(tmp_path / "runs")) if t.number == 3]
    assert "on 4 test images." in fgsm[0].caption
