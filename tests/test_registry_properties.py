"""What every registry promises: a name registered for a block (``registered``,
``registered_dataset``, ``registered_evaluation``) is gone once the block ends, however it
ends, and a block whose registration is refused leaves the name that was there alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from regionmix_utils import data
from regionmix_utils.cli import build_parser
from regionmix_utils.data import (
    DatasetSpec,
    ImageSet,
    Splits,
    dataset_names,
    get_dataset,
    registered_dataset,
)
from regionmix_utils.evaluation.registry import (
    Evaluation,
    evaluation_kinds,
    get_evaluation,
    predict,
    registered_evaluation,
)
from regionmix_utils.methods import (
    Method,
    Setting,
    get_method,
    method_names,
    registered,
    setting_names,
)
from regionmix_utils.mixing import RegionParams, apply_region_mixup, sample_beta


class Boom(Exception):
    """Raised inside a registration block."""


def _sample_stripes(batch_size, height, width, generator, *, k, alpha, stripe_gap=0):
    lam = sample_beta(alpha, k, generator).view(1, k)
    keys = torch.rand(k, batch_size, generator=generator)
    return RegionParams(lam=lam, partners=keys.argsort(1).view(1, k, batch_size))


def _load_toy(root=None, *, n_train=None, n_test=None, size=None, seed=0) -> Splits:
    images = torch.zeros(6, 3, 16, 16, dtype=torch.uint8)
    split = ImageSet(images, torch.arange(6) % 3, ("a", "b", "c"))
    return Splits("toy", split, split)


@dataclass(frozen=True)
class Registry:
    """One registry seen from outside: its context manager, what it lists, and how a
    name is looked up (raising ValueError for a name it does not hold)."""

    make: Callable[[], object]  # a new entry named NAME
    clash: Callable[[], object]  # an entry named as a built-in one
    builtin: str
    registered: Callable  # registered(entry) -> context manager
    names: Callable[[], tuple[str, ...]]
    get: Callable[[str], object]


NAME = "toy-entry"
METHODS = Registry(
    make=lambda: Method(
        name=NAME, label="Toy stripes", help="a test's toy method", reads=("k", "alpha"),
        sample=_sample_stripes, apply=apply_region_mixup,
        params={"stripe_gap": Setting("gap between stripes", "g", "gap", int, default=0)},
    ),
    clash=lambda: Method(name="region", label="again", help="a clash"),
    builtin="region", registered=registered, names=method_names, get=get_method,
)  # fmt: skip
DATASETS = Registry(
    make=lambda: DatasetSpec(
        name=NAME, title="Toy", num_classes=3, image_size=(16, 16), split_sizes=(6, 6),
        mean=(0.5,) * 3, std=(0.25,) * 3, load=_load_toy, on_disk=lambda root: True,
    ),
    clash=lambda: DatasetSpec(
        name="shapes", title="again", num_classes=3, image_size=(16, 16), split_sizes=(6, 6),
        mean=(0.5,) * 3, std=(0.25,) * 3, load=_load_toy, on_disk=lambda root: True,
    ),
    builtin="shapes", registered=registered_dataset, names=dataset_names, get=get_dataset,
)  # fmt: skip
EVALUATIONS = Registry(
    make=lambda: Evaluation(NAME, "Toy", "toy accuracy",
                            compute=lambda model, images, labels: predict(model, images)),
    clash=lambda: Evaluation("fgsm", "again", "a clash"),
    builtin="fgsm", registered=registered_evaluation, names=evaluation_kinds,
    get=get_evaluation,
)  # fmt: skip
REGISTRIES = {"methods": METHODS, "datasets": DATASETS, "evaluations": EVALUATIONS}


@pytest.mark.parametrize("which", sorted(REGISTRIES))
def test_a_name_registered_for_a_block_that_raises_is_gone_after_it(which):
    """The fault of a temporary registration without ``try/finally``: an exception in the
    block leaves the toy entry registered for every later test (and CLI parser)."""
    registry = REGISTRIES[which]
    before = registry.names()
    with pytest.raises(Boom), registry.registered(registry.make()) as entry:
        assert registry.names() == (*before, NAME) and registry.get(NAME) is entry
        raise Boom
    assert registry.names() == before
    with pytest.raises(ValueError, match=f"got '{NAME}'"):
        registry.get(NAME)
    with registry.registered(registry.make()):  # the name is free again
        assert NAME in registry.names()
    assert registry.names() == before


@pytest.mark.parametrize("which", sorted(REGISTRIES))
def test_a_refused_registration_leaves_the_entry_already_there(which):
    registry = REGISTRIES[which]
    before, builtin = registry.names(), registry.get(registry.builtin)
    with pytest.raises(ValueError, match="already registered"):
        with registry.registered(registry.clash()):
            pytest.fail("the block ran though the registration was refused")
    assert registry.names() == before and registry.get(registry.builtin) is builtin


def test_what_a_registration_adds_to_the_command_line_goes_with_it():
    """A method's own parameter is a CLI option, a dataset a --dataset choice, an
    evaluation an ``evaluate --kind`` choice: after a block that raised, none is left."""
    words = ["train", "--dataset", NAME, "--method", NAME, "--stripe-gap", "2"]
    with pytest.raises(Boom):
        with registered(METHODS.make()), \
                registered_dataset(DATASETS.make()), \
                registered_evaluation(EVALUATIONS.make()):  # fmt: skip
            assert build_parser().parse_args(words).stripe_gap == 2
            assert build_parser().parse_args(["evaluate", "--kind", NAME]).kind == NAME
            assert NAME in data.DATASETS and "stripe_gap" in setting_names()
            raise Boom
    assert NAME not in data.DATASETS and "stripe_gap" not in setting_names()
    for argv in (words, ["evaluate", "--kind", NAME]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
