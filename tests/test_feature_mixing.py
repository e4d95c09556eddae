"""Manifold Mixup and Region Manifold Mixup: the mix happens at the drawn layer, and
nowhere else."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from regionmix_utils.config import TrainConfig, run_name
from regionmix_utils.methods import get_method
from regionmix_utils.mixing import draw_layer, mixable_layers, mixing_at, tile_bounds
from regionmix_utils.models import build_model

NEXT = {"layer1": "layer2", "layer2": "layer3"}  # the module that reads each hidden state


def model_and_batch(seed=0):
    torch.manual_seed(seed)
    model = build_model("shapes", 5, width=4).eval()
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(6, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 5, (6,), generator=gen)
    return model, images, labels


def oracle(hidden, labels, num_classes, lam, partners):
    """Equation 1 on a hidden state, tile by tile in float64 (k = 1 is mixup)."""
    x, y = hidden.double(), F.one_hot(labels, num_classes).double()
    gh, gw = lam.shape[:2]
    rows, cols = tile_bounds(x.shape[2], gh), tile_bounds(x.shape[3], gw)
    out, targets = torch.empty_like(x), torch.zeros_like(y)
    for i in range(gh):
        for j in range(gw):
            lam_ij, p = float(lam[i, j]), partners[i, j]
            tile = (slice(None), slice(None), slice(rows[i], rows[i + 1]),
                    slice(cols[j], cols[j + 1]))  # fmt: skip
            out[tile] = lam_ij * x[tile] + (1 - lam_ij) * x[p][tile]
            area = (rows[i + 1] - rows[i]) * (cols[j + 1] - cols[j]) / (x.shape[2] * x.shape[3])
            targets += area * (lam_ij * y + (1 - lam_ij) * y[p])
    return out, targets


def capture(module: nn.Module, output: bool = True) -> tuple[list, object]:
    seen: list = []
    if output:
        handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    else:
        handle = module.register_forward_pre_hook(
            lambda _m, inputs: seen.append(inputs[0].detach())
        )
    return seen, handle


@pytest.mark.parametrize("name", ["manifold", "region-manifold"])
@pytest.mark.parametrize("layer", ["layer1", "layer2"])
def test_the_next_layer_sees_the_oracle_mix_of_the_clean_features(name, layer):
    model, images, labels = model_and_batch()
    method = get_method(name)
    config = TrainConfig(method=name)
    with torch.no_grad():
        clean, handle = capture(model.get_submodule(layer))
        model(images)
        handle.remove()
        reached, handle = capture(model.get_submodule(NEXT[layer]), output=False)
        _, mixed, used = method.forward_mixed(
            model, images, labels, 5, config, torch.Generator().manual_seed(1), layer=layer
        )
        handle.remove()
    assert used == layer and len(reached) == 1
    want, targets = oracle(clean[0], labels, 5, mixed.lam, mixed.partners)
    torch.testing.assert_close(reached[0].double(), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed.targets.double(), targets, atol=1e-6, rtol=0)
    expected_grid = (1, 1) if name == "manifold" else (2, 2)
    assert tuple(mixed.lam.shape) == expected_grid


@pytest.mark.parametrize("name", ["manifold", "region-manifold"])
def test_mixing_at_the_input_is_the_image_mix(name):
    model, images, labels = model_and_batch(2)
    with torch.no_grad():
        logits, mixed, _ = get_method(name).forward_mixed(
            model, images, labels, 5, TrainConfig(method=name), torch.Generator(), layer="input"
        )
        want, _ = oracle(images, labels, 5, mixed.lam, mixed.partners)
        torch.testing.assert_close(mixed.images.double(), want, atol=1e-6, rtol=0)
        torch.testing.assert_close(logits, model(mixed.images), atol=0, rtol=0)


def test_the_model_is_unchanged_when_no_mix_is_requested():
    model, images, labels = model_and_batch(3)
    with torch.no_grad():
        before = model(images)
        for layer in ("input", "layer1", "layer2"):
            get_method("region-manifold").forward_mixed(
                model, images, labels, 5, TrainConfig(method="region-manifold"),
                torch.Generator(), layer=layer,
            )  # fmt: skip
        assert torch.equal(model(images), before)  # the hooks are gone
        with mixing_at(model, "layer2", lambda hidden: hidden):
            assert torch.equal(model(images), before)  # the hook itself changes nothing
        assert not model.layer2._forward_hooks


def test_layers_are_drawn_uniformly_among_those_the_model_declares():
    model, _, _ = model_and_batch()
    gen = torch.Generator().manual_seed(0)
    draws = [draw_layer(("input", "layer1", "layer2"), model, gen) for _ in range(3000)]
    counts = [draws.count(layer) for layer in ("input", "layer1", "layer2")]
    assert stats.chisquare(counts).pvalue > 1e-3
    assert mixable_layers(model) == ("input", "layer1", "layer2", "layer3", "layer4")


class Plain(nn.Module):
    """A model that declares no mix layers: only its input can be mixed."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


def test_a_model_without_mix_layers_mixes_its_input_only():
    model, gen = Plain(), torch.Generator().manual_seed(0)
    assert {draw_layer(("input", "layer1"), model, gen) for _ in range(20)} == {"input"}
    with pytest.raises(ValueError, match="none of the layers"):
        draw_layer(("layer1",), model, gen)
    with pytest.raises(ValueError, match="layer must be one of"):
        get_method("manifold").forward_mixed(
            model, torch.rand(2, 3, 8, 8), torch.zeros(2, dtype=torch.long), 5,
            TrainConfig(method="manifold"), gen, layer="layer1",
        )  # fmt: skip


class Declared(Plain):
    """A user's model declaring its own mix layer."""

    mix_layers: ClassVar[dict[str, str]] = {"conv": "conv"}


def test_a_users_model_declares_its_own_layer():
    model = Declared().eval()
    images, labels = torch.rand(4, 3, 8, 8), torch.arange(4) % 5
    with torch.no_grad():
        clean, handle = capture(model.conv)
        model(images)
        handle.remove()
        logits, mixed, _ = get_method("manifold").forward_mixed(
            model, images, labels, 5, TrainConfig(method="manifold"), torch.Generator(),
            layer="conv",
        )  # fmt: skip
    want, _ = oracle(clean[0], labels, 5, mixed.lam, mixed.partners)
    torch.testing.assert_close(logits, model.head(want.float().mean((2, 3))), atol=1e-6, rtol=0)


def test_gradients_flow_through_the_mixed_hidden_state():
    model, images, labels = model_and_batch()
    model.train()
    logits, mixed, _ = get_method("region-manifold").forward_mixed(
        model, images, labels, 5, TrainConfig(method="region-manifold"), torch.Generator(),
        layer="layer1",
    )  # fmt: skip
    F.cross_entropy(logits, mixed.targets).backward()
    grads = [p.grad for p in model.layer1.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_registry_entries_and_names():
    assert run_name(TrainConfig(method="manifold")) == "manifold-a1"
    assert run_name(TrainConfig(method="region-manifold", k=4)) == "region-manifold-k4-a1"
    # In-model methods mix in the forward pass: [x_A; x~] in one batch is not possible.
    assert TrainConfig(method="manifold", concat_forward=True) == TrainConfig(method="manifold")
    with pytest.raises(ValueError, match="mixes inside the model"):
        get_method("manifold").mix(torch.rand(2, 3, 8, 8), torch.zeros(2, dtype=torch.long), 5,
                                   {"alpha": 1.0})  # fmt: skip
    model, images, labels = model_and_batch()
    layers = [
        get_method("manifold").forward_mixed(
            model, images, labels, 5, {"alpha": 1.0}, torch.Generator().manual_seed(s)
        )[2]
        for s in range(12)
    ]
    assert set(layers) <= {"input", "layer1", "layer2"} and len(set(layers)) > 1
    assert np.all([layer != "layer3" for layer in layers])
