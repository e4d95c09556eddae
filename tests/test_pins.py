"""Pins for one-line bugs that the tests of these modules' own files let through: each
test here fails on its bug, on a fixture where the bug shows.

- ``--n-images N`` must be a class-stratified sample, not the first N test images
  (a class-grouped test split shows the difference);
- the CIFAR-C reader must turn HWC into CHW, not CWH (a non-square, asymmetric image);
- ``regionmix attack``'s default ε is 8/255 (the paper's);
- ``atomic_write_text`` must replace the file, never write into it;
- the GradScaler is on for float16 AMP only, never for bfloat16 (the AMP dtype choice
  patched, as no CPU picks an AMP dtype);
- ``predictions.npz`` is replaced atomically: a crash half-way through its write leaves
  the old file loadable;
- the computed Gaussian noise is drawn from (seed, severity), not from the seed alone: two
  severities draw different noise, and the committed noise records recompute;
- a custom ``labels_getter``'s labels are the ones mixed;
- clean predictions are made in eval mode (a model whose train-mode output differs).
"""

from __future__ import annotations

import copy
import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from regionmix_utils import RegionMixup, region_mixup
from regionmix_utils import train as train_module
from regionmix_utils.cli import build_parser
from regionmix_utils.config import TrainConfig
from regionmix_utils.data import ImageSet, load_dataset
from regionmix_utils.evaluation import robustness
from regionmix_utils.evaluation.calibration import predict_logits
from regionmix_utils.evaluation.corruptions import SEVERITIES, corrupted_images
from regionmix_utils.evaluation.robustness import AttackConfig, attack_configs, predictions
from regionmix_utils.files import atomic_write_text
from regionmix_utils.models import build_model
from regionmix_utils.runs import WEIGHTS16, Predictions, Run, evaluation_settings
from regionmix_utils.study import CPU_GATED, noise_images, read_plan
from regionmix_utils.train import TrainingState

from .conftest import REPO, tiny_config

# ------------------------------------------------------------------ --n-images N


def _class_grouped_cifar_npz(root: Path, per_class: int = 10) -> Path:
    """A cifar10-subset.npz whose test split is grouped by class (0, 0, ..., 9, 9), each
    image filled with its own index so that a sample can be traced back."""
    labels = np.repeat(np.arange(10), per_class)
    index = np.arange(len(labels), dtype=np.uint8)
    images = np.broadcast_to(index[:, None, None, None], (len(labels), 32, 32, 3)).copy()
    np.savez(root / "cifar10-subset.npz", x_train=images, y_train=labels, x_test=images,
             y_test=labels)  # fmt: skip
    return root


def test_n_images_takes_a_class_stratified_sample_of_the_test_split(tmp_path):
    data_dir = _class_grouped_cifar_npz(tmp_path)
    run = Run.of(tmp_path / "runs", TrainConfig(dataset="cifar10-subset"))
    run.record_config(TrainConfig(dataset="cifar10-subset"))
    images, labels = robustness.test_images(run, n_images=20, data_dir=data_dir)
    assert torch.equal(torch.bincount(labels, minlength=10), torch.full((10,), 2))
    # Each image keeps its own label (image i holds the value i; its class is i // 10).
    assert torch.equal((images[:, 0, 0, 0] * 255).round().long() // 10, labels)
    whole = load_dataset("cifar10-subset", data_dir, n_test=30).test
    assert torch.equal(torch.bincount(whole.labels, minlength=10), torch.full((10,), 3))


# ---------------------------------------------------------------------- CIFAR-C


def test_the_cifar_c_reader_turns_hwc_into_chw(tmp_path):
    """A non-square image with a different value at every pixel and channel: a swap of
    H and W changes the shape, a wrong channel axis the values."""
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    n, height, width = 4, 8, 6
    gen = np.random.default_rng(0)
    array = gen.integers(0, 256, (len(SEVERITIES) * n, height, width, 3), dtype=np.uint8)
    np.save(folder / "fog.npy", array)
    np.save(folder / "labels.npy", np.tile(np.arange(n), len(SEVERITIES)))
    data = corrupted_images("cifar10", "fog", 2, tmp_path)
    assert data.images.shape == (n, 3, height, width)
    expected = torch.from_numpy(array[n : 2 * n]).permute(0, 3, 1, 2)
    assert torch.equal(data.images, expected)
    assert data.labels.tolist() == list(range(n))


# ----------------------------------------------------------------- attack's ε


def test_regionmix_attack_defaults_to_the_papers_eps_of_8_over_255():
    args = build_parser().parse_args(["attack", "--runs-dir", "runs"])
    assert args.eps == [8 / 255]
    configs = attack_configs(args.attack, args.eps, steps=args.steps)
    assert configs and {c.eps for c in configs} == {8 / 255}
    assert AttackConfig("fgsm").eps == 8 / 255
    assert dataclasses.replace(AttackConfig("square"), queries=5).eps == 8 / 255


# ------------------------------------------------------------------ atomic writes


def test_atomic_write_text_replaces_the_file_and_never_writes_into_it(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old")
    with open(path) as reader:  # a reader that opened the file before the write
        atomic_write_text(path, "new")
        assert reader.read() == "old", "the write went into the file a reader had open"
    assert path.read_text() == "new"
    # A write that fails half-way leaves the old file whole, and no temporary file.
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(path, "half \ud800 written")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


# ------------------------------------------------------------------- GradScaler


@pytest.mark.parametrize(
    "amp, scaled", [(None, False), (torch.bfloat16, False), (torch.float16, True)]
)
def test_the_grad_scaler_is_on_for_float16_amp_only(monkeypatch, tiny_shapes, amp, scaled):
    """bf16 has float32's exponent range: its gradients never underflow, and a scaler
    would only cost a sync a step. No CPU picks an AMP dtype, so the choice is patched."""
    monkeypatch.setattr(train_module, "amp_dtype", lambda device, enabled: amp)
    state = TrainingState.build(tiny_config(amp=True), tiny_shapes, torch.device("cpu"))
    assert state.amp is amp
    assert state.scaler.is_enabled() is scaled
    assert (state.checkpoint([])["scaler"] != {}) is scaled


# ------------------------------------------------------------- predictions.npz


class _Crash(Exception):
    """The process dies here (power cut, SIGKILL, full disk)."""


def _crash_half_way_through_writes(monkeypatch) -> None:
    """Every write to a file (``Path.write_bytes``, ``np.savez_compressed`` to a path or
    an open file; not into memory) writes half of its bytes, then crashes."""
    real_savez = np.savez_compressed

    def write_half(target, payload: bytes) -> None:
        if hasattr(target, "write"):
            target.write(payload[: len(payload) // 2])
        else:
            with open(target, "wb") as out:
                out.write(payload[: len(payload) // 2])
        raise _Crash(f"crashed half-way through writing {target}")

    def savez(file, *args, **kwargs):
        if isinstance(file, io.BytesIO):
            return real_savez(file, *args, **kwargs)
        buffer = io.BytesIO()
        real_savez(buffer, *args, **kwargs)
        write_half(file, buffer.getvalue())

    monkeypatch.setattr(Path, "write_bytes", lambda self, data: write_half(self, bytes(data)))
    monkeypatch.setattr(np, "savez_compressed", savez)


def test_a_crash_half_way_through_writing_predictions_leaves_the_old_file(tmp_path, monkeypatch):
    run = Run.of(tmp_path / "runs", tiny_config())
    labels = np.arange(10) % 3
    first = {"kind": "clean", "n_images": 10, "accuracy": 50.0}
    run.add_evaluation(first, Predictions.from_outputs(labels, labels, np.eye(10, 3)))
    before = (run.path / "predictions.npz").read_bytes()
    with monkeypatch.context() as patch:
        _crash_half_way_through_writes(patch)
        second = {"kind": "fgsm", "eps": 8 / 255, "n_images": 10, "accuracy": 10.0}
        with pytest.raises(_Crash):
            run.add_evaluation(second, Predictions.from_outputs(labels[::-1].copy(), labels))
    assert (run.path / "predictions.npz").read_bytes() == before
    stored = run.predictions(evaluation_settings(first))
    assert stored is not None and np.array_equal(stored.predicted, labels)
    assert run.evaluations() == [first]
    assert sorted(p.name for p in run.path.iterdir() if p.name.startswith(".")) == []


# ----------------------------------------------------------------- Gaussian noise


def test_each_severity_draws_its_own_gaussian_noise():
    """On mid-grey images nothing is clipped, so (noisy - clean) / c is the standard
    normal draw itself (to rounding): drawn from the seed alone, severities 1 and 2
    would share it (correlation near 1)."""
    grey = ImageSet(torch.full((8, 3, 16, 16), 128, dtype=torch.uint8), torch.zeros(8).long(),
                    ("grey",))  # fmt: skip
    scale = {1: 0.04, 2: 0.06}

    def draw(severity: int, seed: int = 0) -> torch.Tensor:
        noisy = noise_images(grey, severity, seed).images.double()
        return ((noisy - 128) / (255 * scale[severity])).flatten()

    correlation = torch.corrcoef(torch.stack([draw(1), draw(2)]))[0, 1]
    assert abs(float(correlation)) < 0.1, f"severities 1 and 2 share their noise ({correlation})"
    assert not torch.equal(draw(1, seed=0), draw(1, seed=1))
    assert torch.equal(draw(2), draw(2))  # and each is reproducible


def test_the_committed_fgsm_records_recompute(real_data):
    """The committed Region Mixup run's per-image predictions under FGSM at the primary ε,
    recomputed from its float16 weights: at most a handful of the 1,017 images may change
    class (float16 weights); an attack at another ε changes far more."""
    bundle = REPO / CPU_GATED.bundle
    plan = read_plan(bundle)
    run = Run(bundle / "cifar10-subset" / "region-k2-a1-ho500" / "seed0")
    assert (run.path / WEIGHTS16).exists()
    model = run.load_model()
    images, labels = robustness.test_images(run, None, real_data)
    (record,) = [r for r in run.evaluations()
                 if r["kind"] == "fgsm" and r["eps"] == plan["primary_eps"]]  # fmt: skip
    stored = run.predictions(evaluation_settings(record))
    changed = {}
    for eps in (plan["primary_eps"], 2 * plan["primary_eps"]):
        (attack,) = attack_configs(["fgsm"], [eps])
        predicted = robustness.adversarial_predictions(model, images, labels, attack,
                                                       progress=False).numpy()  # fmt: skip
        changed[eps] = int((predicted != stored.predicted).sum())
    primary, other = changed.values()
    assert primary <= 10, f"{primary} of 1017 changed class at the primary ε"
    assert other > 5 * max(primary, 10), changed  # the check can see an ε off by 2x


# ------------------------------------------------------------------- labels_getter


def test_a_custom_labels_getters_labels_are_the_ones_mixed():
    """The sample holds a ``labels`` key that the default getter would take; the custom
    getter points at ``target``: ``target`` is mixed, ``labels`` passes through."""
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    real, decoy = torch.tensor([0, 3, 5, 9]), torch.tensor([1, 1, 2, 2])
    mix = RegionMixup(num_classes=10, generator=torch.Generator().manual_seed(1),
                      labels_getter=lambda sample: sample["target"])  # fmt: skip
    out = mix({"image": images, "labels": decoy, "target": real})
    expected = region_mixup(images, real, k=2, num_classes=10,
                            generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert torch.equal(out["labels"], decoy)
    torch.testing.assert_close(out["target"], expected.targets)
    torch.testing.assert_close(out["image"], expected.images)


# ------------------------------------------------------------ clean predictions


def test_clean_predictions_and_logits_are_made_in_eval_mode():
    """BatchNorm in train mode normalises by the batch: a model handed over in train mode
    must still predict with its running statistics, and be handed back in train mode."""
    torch.manual_seed(0)
    model = build_model("shapes", 10, width=4).eval()
    images = torch.rand(16, 3, 32, 32)
    with torch.no_grad():
        expected = model(images)
        in_train_mode = copy.deepcopy(model).train()(images)
    assert not torch.allclose(in_train_mode, expected, atol=1e-3), "the fixture shows nothing"
    model.train()
    predicted, logits = predictions(model, images, batch_size=8)
    torch.testing.assert_close(logits, expected)
    assert torch.equal(predicted, expected.argmax(1)) and model.training
    torch.testing.assert_close(predict_logits(model, images, batch_size=8), expected)
    assert robustness.accuracy(model, images, expected.argmax(1)) == 100.0 and model.training
