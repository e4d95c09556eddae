"""FGSM and Square through torchattacks, Grad-CAM++ maps and localisation scores."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from regionmix_utils.cam import cam_maps, energy_in_box, localisation_scores, pointing_hits
from regionmix_utils.data import load_dataset
from regionmix_utils.robustness import (
    AttackConfig,
    accuracy,
    adversarial_accuracy,
    evaluate_run,
    load_run_model,
)
from regionmix_utils.train import TrainConfig, run_dir, train

from .conftest import tiny_config


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """A PreAct ResNet-18 (width 8) trained for 3 epochs on 1000 shapes images."""
    root = tmp_path_factory.mktemp("runs")
    config = tiny_config(
        epochs=3, width=8, batch_size=64, n_train=1000, n_test=200, milestones=(2,)
    )
    train(config, root, device="cpu", progress=False)
    return run_dir(root, config)


@pytest.fixture(scope="module")
def shapes_model(shapes_run):
    model, _ = load_run_model(shapes_run)
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


def test_bad_attack_settings():
    with pytest.raises(ValueError, match="attack must be one of"):
        AttackConfig("pgd")
    with pytest.raises(ValueError, match=r"eps must be in \[0, 1\]"):
        AttackConfig("fgsm", eps=8)
    with pytest.raises(ValueError, match="queries must be >= 1"):
        AttackConfig("square", queries=0)


def test_evaluate_run_writes_and_reuses_eval_json(shapes_run):
    configs = [AttackConfig("fgsm", 2 / 255), AttackConfig("square", 2 / 255, queries=5)]
    first = evaluate_run(shapes_run, configs, n_images=50, progress=False)
    stored = json.loads((shapes_run / "eval.json").read_text())
    assert stored == first and set(first) == {"n_images", "clean", *(c.key for c in configs)}
    stamp = (shapes_run / "eval.json").stat().st_mtime_ns
    assert evaluate_run(shapes_run, configs, n_images=50, progress=False) == first
    assert (shapes_run / "eval.json").stat().st_mtime_ns == stamp, "results were recomputed"


def test_fgsm_on_a_model_trained_on_real_cifar10(real_data, tmp_path):
    config = TrainConfig(dataset="cifar10-subset", method="mixup", epochs=1, width=8, batch_size=64,
                         n_train=1024, n_test=200)  # fmt: skip
    train(config, tmp_path, data_dir=real_data, device="cpu", progress=False)
    model, _ = load_run_model(run_dir(tmp_path, config))
    test = load_dataset("cifar10-subset", real_data, n_test=200).test
    images, labels = test.images.float() / 255, test.labels
    eps = 8 / 255
    expected = accuracy(model, hand_written_fgsm(model, images, labels, eps), labels)
    assert (
        adversarial_accuracy(model, images, labels, AttackConfig("fgsm", eps), progress=False)
        == expected
    )


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
    from regionmix_utils.cli import main

    runs = str(tmp_path / "runs")
    sweep = ["sweep", "--datasets", "shapes", "--methods", "mixup", "region", "--seeds", "0",
             "--epochs", "1", "--width", "4", "--n-train", "128", "--n-test", "50",
             "--device", "cpu", "--runs-dir", runs, "--no-progress"]  # fmt: skip
    assert main(sweep) == 0
    attack = ["attack", "--runs-dir", runs, "--eps", "4/255", "--queries", "5",
              "--n-images", "20", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(attack) == 0
    out = capsys.readouterr().out
    assert out.count("clean") == 2 and "fgsm eps=0.0156863" in out and "square" in out
    assert len(list((tmp_path / "runs").glob("shapes/*/seed0/eval.json"))) == 2
    figure = tmp_path / "cam.png"
    assert (
        main(
            [
                "cam",
                "--runs-dir",
                runs,
                "--dataset",
                "shapes",
                "--n-images",
                "3",
                "--out",
                str(figure),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert figure.stat().st_size > 1000 and out.count("pointing game") == 2
    assert main(["attack", "--runs-dir", str(tmp_path / "empty")]) == 2
