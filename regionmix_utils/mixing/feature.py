"""Mixing inside the model: Manifold Mixup (Verma et al., ICML 2019) and its region form
mix the hidden state at a layer a model names in ``mix_layers`` (name -> submodule path)."""

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from regionmix_utils.mixing.core import MixedBatch

__all__ = ["INPUT", "draw_layer", "forward_mixed", "mixable_layers", "mixing_at"]

INPUT = "input"


def mixable_layers(model: nn.Module) -> tuple[str, ...]:
    """ "input", then ``model.mix_layers`` in order."""
    return (INPUT, *(getattr(model, "mix_layers", None) or {}))


def draw_layer(layers: Sequence[str], model: nn.Module,
               generator: torch.Generator | None = None) -> str:  # fmt: skip
    """One of ``layers`` that ``model`` declares, drawn uniformly; ValueError if none is."""
    available = [layer for layer in layers if layer in mixable_layers(model)]
    if not available:
        raise ValueError(f"none of the layers {tuple(layers)} can be mixed in "
                         f"{type(model).__name__} (it declares "
                         f"{mixable_layers(model)})")  # fmt: skip
    device = generator.device if generator is not None else "cpu"
    return available[int(torch.randint(len(available), (1,), generator=generator, device=device))]


@contextlib.contextmanager
def mixing_at(model: nn.Module, layer: str, mix: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Within the block, ``layer``'s output is ``mix(output)``; ValueError: not a mix layer."""
    declared = getattr(model, "mix_layers", None) or {}
    if layer not in declared:
        raise ValueError(f"layer must be one of {mixable_layers(model)} for "
                         f"{type(model).__name__}, got {layer!r}")  # fmt: skip
    module = model.get_submodule(declared[layer])
    handle = module.register_forward_hook(lambda _module, _inputs, output: mix(output))
    try:
        yield
    finally:
        handle.remove()


def forward_mixed(model: nn.Module, images: Tensor, layer: str,
                  mix: Callable[[Tensor], MixedBatch]) -> tuple[Tensor, MixedBatch]:  # fmt: skip
    """(logits, the MixedBatch of the [B, C', H', W'] hidden state at ``layer``)."""
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
