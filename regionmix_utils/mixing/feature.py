"""Mixing inside the model: a mix applied to the hidden state at one layer.

Manifold Mixup (Verma et al., "Manifold Mixup: Better Representations by Interpolating
Hidden States", ICML 2019) mixes the hidden state at a layer drawn uniformly per batch
from {input, after layer1, after layer2} (``layer_mix = random.randint(0, 2)`` in the
authors' PreAct ResNet, github.com/vikasverma1077/manifold_mixup,
``supervised/models/preresnet.py``), with one lambda and one partner per batch. Region
Manifold Mixup applies equation 1 of Region Mixup to that hidden state instead: its
feature map is cut into tiles, each with its own lambda and partner.

Any image-space mix (``apply(images, labels, params, num_classes, *, validate)``) works
on a feature map [B, C', H', W'] as on an image; what this module adds is where it is
applied. A model says where it can be mixed by a ``mix_layers`` attribute: a mapping
from layer names to the dotted paths of the submodules whose outputs are those hidden
states (``PreActResNet18.mix_layers``). "input" is always available: the mix is then
applied to the images before the forward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from regionmix_utils.mixing.core import MixedBatch

__all__ = ["INPUT", "draw_layer", "forward_mixed", "mixable_layers", "mixing_at"]

INPUT = "input"


def mixable_layers(model: nn.Module) -> tuple[str, ...]:
    """The layers ``model`` can be mixed at: "input", then its ``mix_layers`` in order."""
    declared = getattr(model, "mix_layers", None) or {}
    return (INPUT, *declared)


def _layer_module(model: nn.Module, layer: str) -> nn.Module:
    declared = getattr(model, "mix_layers", None) or {}
    if layer not in declared:
        raise ValueError(
            f"layer must be one of {mixable_layers(model)} for {type(model).__name__}, "
            f"got {layer!r}"
        )
    return model.get_submodule(declared[layer])


def draw_layer(
    layers: Sequence[str], model: nn.Module, generator: torch.Generator | None = None
) -> str:
    """One of ``layers`` that ``model`` declares, drawn uniformly from ``generator``.

    Raises:
        ValueError: none of ``layers`` is mixable in ``model``.
    """
    available = [layer for layer in layers if layer in mixable_layers(model)]
    if not available:
        raise ValueError(
            f"none of the layers {tuple(layers)} can be mixed in {type(model).__name__} "
            f"(it declares {mixable_layers(model)})"
        )
    device = generator.device if generator is not None else "cpu"
    index = int(torch.randint(len(available), (1,), generator=generator, device=device))
    return available[index]


@contextlib.contextmanager
def mixing_at(model: nn.Module, layer: str, mix: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Within the block, the output of ``layer`` is replaced by ``mix(output)`` in every
    forward pass of ``model``; the hook is removed on leaving, even on an error.

    Raises:
        ValueError: ``layer`` is not one of the model's ``mix_layers`` ("input" is not a
            module: mix the images instead).
    """
    module = _layer_module(model, layer)
    handle = module.register_forward_hook(lambda _module, _inputs, output: mix(output))
    try:
        yield
    finally:
        handle.remove()


def forward_mixed(
    model: nn.Module,
    images: Tensor,
    layer: str,
    mix: Callable[[Tensor], MixedBatch],
) -> tuple[Tensor, MixedBatch]:
    """The model's output on ``images`` with ``mix`` applied to the hidden state at
    ``layer`` ("input": to the images).

    Args:
        model: a model; for layers other than "input" it declares ``mix_layers``.
        images: [B, C, H, W].
        layer: where to mix.
        mix: maps a [B, C', H', W'] tensor to a ``MixedBatch`` of it (its ``targets``
            are the mixed labels).
    Returns:
        (logits, the MixedBatch of the hidden state: ``images`` is the mixed hidden
        state, ``targets`` [B, K] the mixed labels).
    """
    if layer == INPUT:
        mixed = mix(images)
        return model(mixed.images), mixed
    record: list[MixedBatch] = []

    def replace(hidden: Tensor) -> Tensor:
        record.append(mix(hidden))
        return record[-1].images

    with mixing_at(model, layer, replace):
        logits = model(images)
    if len(record) != 1:
        raise RuntimeError(f"layer {layer!r} ran {len(record)} times in one forward pass; "
                           "a mix layer must run exactly once")  # fmt: skip
    return logits, record[0]
