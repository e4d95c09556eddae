"""The transforms in the pipelines researchers already have: real DataLoaders with workers
over epochs, and the torchvision, timm and Lightning examples of docs/pipelines.md, run as
written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

import regionmix_utils
from regionmix_utils import MixChoice, RegionMixup, mixing
from regionmix_utils.mixing import transforms

ROOT = Path(__file__).resolve().parent.parent
README, PIPELINES = ROOT / "README.md", ROOT / "docs" / "pipelines.md"
BATCH, K = 8, 10


class RepeatingImages(Dataset):
    """Every batch of ``BATCH`` holds the same images and labels, so two batches mixed
    with the same draws are equal, and different draws show."""

    def __init__(self, batches: int = 4):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.rand(BATCH, 3, 8, 8, generator=generator)
        self.labels = torch.arange(BATCH) % K
        self.batches = batches

    def __len__(self) -> int:
        return self.batches * BATCH

    def __getitem__(self, index: int):
        return self.images[index % BATCH], int(self.labels[index % BATCH])


class MixCollate:
    """torchvision's reference pattern, ``lambda batch: mix(default_collate(batch))``,
    as a class so that it pickles into workers under any start method."""

    def __init__(self, mix):
        self.mix = mix

    def __call__(self, batch):
        return self.mix(default_collate(batch))


def epochs_of_batches(mix_seed=0, loader_seed=0, epochs=2, **loader_options):
    """The mixed image batches of ``epochs`` epochs, epoch by epoch."""
    mix = RegionMixup(k=2, num_classes=K, generator=torch.Generator().manual_seed(mix_seed))
    options = {"num_workers": 2, **loader_options}
    loader = DataLoader(
        RepeatingImages(),
        batch_size=BATCH,
        collate_fn=MixCollate(mix),
        generator=torch.Generator().manual_seed(loader_seed),
        **options,
    )
    return [[images for images, _ in loader] for _ in range(epochs)]


def all_distinct(batches) -> bool:
    return all(not torch.equal(a, b) for i, a in enumerate(batches) for b in batches[i + 1 :])


def test_workers_and_epochs_draw_different_mixes():
    first, second = epochs_of_batches()
    assert len(first) == len(second) == 4  # batches 0 and 2 from worker 0, 1 and 3 from worker 1
    assert all_distinct(first + second)


def test_persistent_workers_carry_their_streams_into_the_next_epoch():
    first, second = epochs_of_batches(persistent_workers=True)
    assert all_distinct(first + second)


def test_the_same_seeds_give_the_same_batches_and_another_loader_seed_other_ones():
    run = epochs_of_batches(mix_seed=3, loader_seed=5)
    again = epochs_of_batches(mix_seed=3, loader_seed=5)
    pairs = [pair for epochs in zip(run, again, strict=True) for pair in zip(*epochs, strict=True)]
    assert len(pairs) == 8 and all(torch.equal(a, b) for a, b in pairs)
    other = epochs_of_batches(mix_seed=3, loader_seed=6)
    assert all_distinct(run[0] + other[0])


def test_without_the_derivation_every_worker_and_epoch_repeats_the_same_draws(monkeypatch):
    """The fault the derivation removes: each worker mixes with a copy of one generator
    state, every epoch. (fork, so that the workers inherit the patched module.)"""
    monkeypatch.setattr(transforms, "worker_generator", lambda generator: generator)
    first, second = epochs_of_batches(multiprocessing_context="fork")
    assert torch.equal(first[0], first[1]) and torch.equal(first[2], first[3])
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_outside_workers_the_generator_is_used_as_it_is():
    (batches,) = epochs_of_batches(mix_seed=4, epochs=1, num_workers=0)
    mix = RegionMixup(k=2, num_classes=K, generator=torch.Generator().manual_seed(4))
    data = RepeatingImages()
    for images in batches:
        direct, _ = mix(data.images, data.labels)
        assert torch.equal(images, direct)


def test_a_mix_choice_and_its_methods_draw_per_worker_too():
    choice = MixChoice(
        [RegionMixup(k=1, num_classes=K, generator=torch.Generator().manual_seed(1)),
         RegionMixup(k=4, num_classes=K, generator=torch.Generator().manual_seed(2))],
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    loader = DataLoader(RepeatingImages(8), batch_size=BATCH, num_workers=2,
                        collate_fn=MixCollate(choice))  # fmt: skip
    assert all_distinct([images for images, _ in loader])


# ----------------------------------------------------------------------------- README


def pipeline_blocks() -> list[str]:
    """The python blocks of the guide to one's own pipeline: torchvision, timm, Lightning."""
    return python_blocks(PIPELINES.read_text())


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def tiny_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, K))


def tiny_train_set(n: int = 64) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, 3, 8, 8, generator=generator), torch.arange(n) % K)


def test_the_guides_torchvision_collate_example_runs_with_two_workers():
    torchvision_block = pipeline_blocks()[0]
    assert "collate_fn" in torchvision_block and "num_workers=2" in torchvision_block
    namespace = {"train_set": tiny_train_set()}
    exec(torchvision_block, namespace)
    images, targets = namespace["images"], namespace["targets"]
    assert targets.dtype == torch.float32 and targets.shape[1] == K
    torch.testing.assert_close(targets.sum(1), torch.ones(len(targets)))
    assert images.shape[1:] == (3, 8, 8)


def test_the_guides_timm_example_trains_with_soft_target_cross_entropy():
    pytest.importorskip("timm")
    timm_block = pipeline_blocks()[1]
    assert "SoftTargetCrossEntropy" in timm_block
    model = tiny_model()
    loader = DataLoader(tiny_train_set(), batch_size=16, shuffle=True)
    namespace = {"model": model, "loader": loader}
    exec(timm_block, namespace)
    loss = namespace["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model[1].weight.grad.abs().sum() > 0


def test_the_guides_lightning_example_fits():
    lightning = pytest.importorskip("lightning")
    lightning_block = pipeline_blocks()[2]
    assert "training_step" in lightning_block and "combined_loss" in lightning_block
    namespace: dict = {}
    exec(lightning_block, namespace)
    model = tiny_model()
    before = model[1].weight.detach().clone()
    module = namespace["MixedTraining"](model, num_classes=K)
    trainer = lightning.Trainer(
        max_steps=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, DataLoader(tiny_train_set(), batch_size=16, shuffle=True))
    assert trainer.global_step == 3
    assert torch.isfinite(trainer.callback_metrics["train_loss"])
    assert not torch.equal(model[1].weight, before)


def readme_names() -> set[str]:
    """Public names of ``mixing`` and ``losses`` that the README's and the docs' code uses:
    imported in their python blocks, or called in their inline code."""
    text = "\n".join(p.read_text() for p in (README, *sorted((ROOT / "docs").glob("*.md"))))
    public = set(mixing.__all__) | set(regionmix_utils.losses.__all__)
    code = "\n".join(python_blocks(text)) + "\n" + "\n".join(re.findall(r"`([^`\n]+)`", text))
    imported = {
        name.strip()
        for names in re.findall(r"from regionmix_utils[\w.]* import \(?([\w, \n]+)\)?", code)
        for name in names.split(",")
    }
    called = set(re.findall(r"\b([A-Za-z_]\w*)\(", code))
    return (imported | called) & public


def test_every_public_name_the_docs_use_imports_from_the_package():
    names = readme_names()
    assert {"RegionMixup", "region_mixup", "combined_loss"} <= names
    missing = [name for name in sorted(names) if not hasattr(regionmix_utils, name)]
    assert not missing, f"not importable from regionmix_utils: {missing}"


def test_the_top_level_reexports_every_public_name_of_mixing_and_losses():
    expected = set(mixing.__all__) | set(transforms.__all__) | set(regionmix_utils.losses.__all__)
    assert expected <= set(regionmix_utils.__all__)
    assert all(hasattr(regionmix_utils, name) for name in regionmix_utils.__all__)
