"""What every registry promises (methods, datasets, evaluations, attacks, studies: one
``Registry`` class): registration order, an error naming the known entries, a name
registered for a block gone once the block ends however it ends, and a refused
registration leaving the entry that was there alone."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from regionmix_utils.cli import build_parser
from regionmix_utils.data import DATASETS, DatasetSpec, ImageSet, Splits
from regionmix_utils.evaluation.registry import Evaluation, predict
from regionmix_utils.evaluation.robustness import ATTACK_REGISTRY
from regionmix_utils.methods import METHODS, Method, Setting, setting_names
from regionmix_utils.mixing import RegionParams, apply_region_mixup, sample_beta
from regionmix_utils.registry import Registry
from regionmix_utils.runs import RECORD_KINDS
from regionmix_utils.study import STUDIES


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


NAME = "toy-entry"
REGISTRIES = {"methods": METHODS, "datasets": DATASETS, "evaluations": RECORD_KINDS,
              "attacks": ATTACK_REGISTRY, "studies": STUDIES}  # fmt: skip
BUILTIN = {"methods": "region", "datasets": "shapes", "evaluations": "fgsm", "attacks": "fgsm",
           "studies": "cpu-gated"}  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """An entry any registry takes: it is named by ``name`` or, for evaluations, ``kind``."""

    name: str = NAME
    kind: str = NAME


def _toy_method() -> Method:
    gap = Setting("gap between stripes", "g", "gap", int, default=0)
    return Method(name=NAME, label="Toy stripes", help="a test's toy method",
                  reads=("k", "alpha"), sample=_sample_stripes, apply=apply_region_mixup,
                  params={"stripe_gap": gap})  # fmt: skip


def _toy_dataset() -> DatasetSpec:
    return DatasetSpec(name=NAME, title="Toy", num_classes=3, image_size=(16, 16),
                       split_sizes=(6, 6), mean=(0.5,) * 3, std=(0.25,) * 3, load=_load_toy,
                       on_disk=lambda root: True)  # fmt: skip


def _toy_evaluation() -> Evaluation:
    return Evaluation(NAME, "Toy", "toy accuracy",
                      compute=lambda model, images, labels: predict(model, images))  # fmt: skip


@pytest.mark.parametrize("which", sorted(REGISTRIES))
def test_every_registry_lists_in_order_and_names_the_known_entries_in_its_error(which):
    registry = REGISTRIES[which]
    assert isinstance(registry, Registry) and BUILTIN[which] in registry
    assert registry.names() == tuple(getattr(e, registry.key) for e in registry.entries())
    for unknown in ("no-such-entry", ["unhashable"]):
        with pytest.raises(ValueError, match=f"{registry.what} must be one of .*{BUILTIN[which]}"):
            registry.get(unknown)


@pytest.mark.parametrize("which", sorted(REGISTRIES))
def test_a_name_registered_for_a_block_that_raises_is_gone_after_it(which):
    """The fault of a temporary registration without ``try/finally``: an exception in the
    block leaves the toy entry registered for every later test (and CLI parser)."""
    registry = REGISTRIES[which]
    before = registry.names()
    with pytest.raises(Boom), registry.temporary(Entry()) as entry:
        assert registry.names() == (*before, NAME) and registry.get(NAME) is entry
        raise Boom
    assert registry.names() == before
    with pytest.raises(ValueError, match=f"got '{NAME}'"):
        registry.get(NAME)
    with registry.temporary(Entry()):  # the name is free again
        assert NAME in registry.names()
    assert registry.names() == before


@pytest.mark.parametrize("which", sorted(REGISTRIES))
def test_a_refused_registration_leaves_the_entry_already_there(which):
    registry = REGISTRIES[which]
    before, builtin = registry.names(), registry.get(BUILTIN[which])
    with pytest.raises(ValueError, match="already registered"):
        with registry.temporary(Entry(name=BUILTIN[which], kind=BUILTIN[which])):
            pytest.fail("the block ran though the registration was refused")
    assert registry.names() == before and registry.get(BUILTIN[which]) is builtin


def test_what_a_registration_adds_to_the_command_line_goes_with_it():
    """A method's own parameter is a CLI option, a dataset a --dataset choice, an
    evaluation an ``evaluate --kind`` choice: after a block that raised, none is left."""
    words = ["train", "--dataset", NAME, "--method", NAME, "--stripe-gap", "2"]
    with pytest.raises(Boom):
        with METHODS.temporary(_toy_method()), DATASETS.temporary(_toy_dataset()), \
                RECORD_KINDS.temporary(_toy_evaluation()):  # fmt: skip
            assert build_parser().parse_args(words).stripe_gap == 2
            assert build_parser().parse_args(["evaluate", "--kind", NAME]).kind == NAME
            assert NAME in DATASETS and "stripe_gap" in setting_names()
            raise Boom
    assert NAME not in DATASETS and "stripe_gap" not in setting_names()
    for argv in (words, ["evaluate", "--kind", NAME]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
