"""The GPU path, checked where a CPU can see it, and on a GPU where there is one.

A host-device sync is a value read back from the GPU (``.item()``, ``int()``,
``.tolist()``, a blocking copy). On the CPU the "meta" device stands in for the GPU:
reading a meta tensor's value raises, as a sync would in CUDA's sync debug mode
"error", and ``Transfers`` records every copy to it and whether it blocks. The fp16
path (autocast with a GradScaler and the fused SGD) runs on the CPU as on a T4.
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch

from regionmix_utils.methods import method_names
from regionmix_utils.mixing import (
    core,
    cutmix,
    fmix,
    gridmix,
    mixup,
    random_region_mixup,
    region_mixup,
    resizemix,
)
from regionmix_utils.runs import Run
from regionmix_utils.train import TrainingState, loaders, train, train_step

from .conftest import tiny_config

META = torch.device("meta")


class Transfers:
    """Copies to a non-CPU device made inside the context: (how, non_blocking) pairs.

    ``Tensor.to`` is recorded with its ``non_blocking`` flag; ``torch.tensor`` and
    ``torch.as_tensor`` with a non-CPU ``device`` always copy blocking."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.copies: list[tuple[str, bool]] = []
        to, tensor, as_tensor = torch.Tensor.to, torch.tensor, torch.as_tensor

        def spy_to(t, *args, **kwargs):
            out = to(t, *args, **kwargs)
            if out.device.type != "cpu" and t.device.type == "cpu":
                self.copies.append(("Tensor.to", bool(kwargs.get("non_blocking", False))))
            return out

        def constructor(name, make):
            def spy(*args, **kwargs):
                out = make(*args, **kwargs)
                if out.device.type != "cpu":
                    self.copies.append((name, False))
                return out

            return spy

        monkeypatch.setattr(torch.Tensor, "to", spy_to)
        monkeypatch.setattr(torch, "tensor", constructor("torch.tensor", tensor))
        monkeypatch.setattr(torch, "as_tensor", constructor("torch.as_tensor", as_tensor))

    @property
    def blocking(self) -> list[str]:
        return [how for how, non_blocking in self.copies if not non_blocking]


# ------------------------------------------------------------------ the tile plans


def test_a_tile_plan_reaches_the_device_in_one_copy_that_does_not_block(monkeypatch):
    core._tile_plan.cache_clear()
    transfers = Transfers(monkeypatch)
    edges = ((0, 5, 17, 32), (0, 11, 32))
    plan = core._tile_plan(3, 32, 32, edges, True, META)
    assert transfers.copies == [("Tensor.to", True)]
    for tensor in (plan.run_tile, plan.pixel_tile, plan.area):
        assert tensor.device == META
    assert plan.pixel_tile.shape == (32 * 32,) and plan.area.dtype == torch.float64
    # The same plan built on the CPU holds the indices the packed copy carries.
    cpu = core._tile_plan(3, 32, 32, edges, True, torch.device("cpu"))
    rows = [0] * 5 + [1] * 12 + [2] * 15
    columns = [0] * 11 + [1] * 21  # run = gcd(0, 11, 32) = 1: a run per pixel
    assert cpu.run_tile.tolist() == [i * 2 + j for i in rows for j in columns]
    assert cpu.pixel_tile[6 * 32 + 12].item() == 1 * 2 + 1
    torch.testing.assert_close(cpu.area, core.tile_areas(32, 32, (3, 2), edges).view(-1, 1))
    core._tile_plan(3, 32, 32, edges, True, META)  # a hit: nothing more is sent
    assert len(transfers.copies) == 1


def test_the_random_grid_plan_is_built_once_per_distinct_grid():
    """300 random grids of the trainer's region-random draw (sides 1, 2, 4 on 32x32): a
    plan is built for each distinct grid and for nothing else (the cache keeps them all
    while they fit; it used to hold 64 and rebuilt grids it had evicted)."""
    core._tile_plan.cache_clear()
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.rand(8, 3, 32, 32), torch.arange(8) % 10
    grids = [random_region_mixup(images, labels, num_classes=10, generator=gen).edges
             for _ in range(300)]  # fmt: skip
    info = core._tile_plan.cache_info()
    assert info.misses == len(set(grids)) and info.hits == 300 - len(set(grids))
    assert len(set(grids)) > 200  # most random grids are new: a miss must cost no sync


# ------------------------------------------------------------ the one-call functions


def _soft_targets(n: int = 8, classes: int = 10) -> torch.Tensor:
    return torch.softmax(torch.randn(n, classes, generator=torch.Generator().manual_seed(3)), 1)


ONE_CALL = {
    "region_mixup": lambda x, y, g: region_mixup(x, y, k=2, generator=g),
    "region_mixup k=3 per sample": lambda x, y, g: region_mixup(x, y, k=3, generator=g,
                                                                 lam_mode="sample"),
    "mixup": lambda x, y, g: mixup(x, y, generator=g),
    "cutmix": lambda x, y, g: cutmix(x, y, generator=g),
    "gridmix": lambda x, y, g: gridmix(x, y, generator=g),
    "fmix": lambda x, y, g: fmix(x, y, generator=g),
    "resizemix": lambda x, y, g: resizemix(x, y, generator=g),
    "random_region_mixup": lambda x, y, g: random_region_mixup(x, y, generator=g),
}  # fmt: skip


@pytest.mark.parametrize("generator", ["none", "cpu"])
@pytest.mark.parametrize("name", list(ONE_CALL))
def test_one_call_mixes_read_nothing_back_from_the_device(name, generator, monkeypatch):
    """Images and soft targets on the device: the parameters are drawn on the host
    (a CPU generator, or torch's global CPU generator when there is none) and reach the
    device in copies that do not block; no value is read back (a meta tensor raises)."""
    core._tile_plan.cache_clear()
    images = torch.empty(8, 3, 32, 32, device=META)
    targets = _soft_targets().to(META)
    transfers = Transfers(monkeypatch)
    gen = torch.Generator().manual_seed(0) if generator == "cpu" else None
    out = ONE_CALL[name](images, targets, gen)
    assert out.images.device == META and out.targets.shape == (8, 10)
    assert transfers.blocking == [], transfers.copies


def test_a_random_grid_drawn_on_a_cpu_generator_reads_nothing_back(monkeypatch):
    core._tile_plan.cache_clear()
    images, targets = torch.empty(8, 3, 32, 32, device=META), _soft_targets().to(META)
    transfers = Transfers(monkeypatch)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        assert random_region_mixup(images, targets, generator=gen).images.device == META
    assert transfers.blocking == [], transfers.copies


# -------------------------------------------------------------- fp16 and the scaler


def test_the_fused_sgd_is_chosen_with_a_gradscaler(tiny_shapes):
    """fp16 (a T4's AMP): the GradScaler is on and the SGD is fused, so the scaler hands
    it the overflow flag on the device instead of reading it back every step."""
    config = tiny_config()
    for amp, fused in ((torch.float16, True), (torch.bfloat16, False), (None, False)):
        state = TrainingState.build(config, tiny_shapes, torch.device("cpu"), amp=amp)
        assert state.scaler.is_enabled() is fused
        assert bool(state.optimizer.defaults["fused"]) is fused
        assert getattr(state.optimizer, "_step_supports_amp_scaling", False) is fused
    with pytest.raises(ValueError, match="amp must be 'auto'"):
        TrainingState.build(config, tiny_shapes, torch.device("cpu"), amp="fp16")


def test_an_overflowed_first_step_leaves_the_fused_sgd_clean(tiny_shapes):
    """The GradScaler skips a first step whose gradients overflow. torch's fused SGD would
    then keep momentum buffers it never initialised (``torch.empty_like``); the trainer
    gives it zeros, so the next step is plain SGD's first step."""
    state = TrainingState.build(tiny_config(), tiny_shapes, torch.device("cpu"),
                                amp=torch.float16)  # fmt: skip
    state.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100)  # fp16 gradients overflow
    state.start_epoch(1)
    batches = iter(loaders(state, tiny_shapes)[0])
    before = {n: p.detach().clone() for n, p in state.model.named_parameters()}
    train_step(state, *next(batches))
    params = dict(state.model.named_parameters())
    for name, p in params.items():
        assert torch.equal(p, before[name]), f"{name} moved on a skipped step"
        assert torch.equal(state.optimizer.state[p]["momentum_buffer"], torch.zeros_like(p))
    state.scaler.update(new_scale=1.0)
    train_step(state, *next(batches))
    config = state.config
    for name, p in params.items():
        assert torch.isfinite(p).all(), name
        # First real step: buffer = g + wd * p0 and p1 = p0 - lr * buffer (SGD, momentum 0.9).
        step = p.grad + config.weight_decay * before[name]
        torch.testing.assert_close(state.optimizer.state[p]["momentum_buffer"], step)
        torch.testing.assert_close(p.detach(), before[name] - config.lr * step)


def test_a_run_moves_between_the_fused_and_the_plain_sgd(tmp_path, tiny_shapes, monkeypatch):
    """Saved with fp16 (fused SGD), resumed in float32 (plain SGD), then in fp16 again:
    each leg trains with the kernel its own AMP mode chose, though a state dict carries
    the ``fused`` flag it was saved with."""
    import regionmix_utils.train as train_module

    config = tiny_config(epochs=4, n_train=64, n_test=20)  # fp16 convolutions are slow on a CPU
    last = Run.of(tmp_path, config).path / "last.pt"
    fp16 = lambda device, enabled: torch.float16 if enabled else None  # noqa: E731
    saved = []

    class Stop(Exception):
        pass

    for leg, amp_dtype in enumerate((fp16, train_module.amp_dtype, fp16), start=1):

        def on_epoch(record, leg=leg):
            state = torch.load(last, weights_only=True)["optimizer"]
            saved.append(bool(state["param_groups"][0]["fused"]))
            if record["epoch"] == leg < 3:
                raise Stop

        with monkeypatch.context() as patch, contextlib.suppress(Stop):
            patch.setattr(train_module, "amp_dtype", amp_dtype)
            result = train(config, tmp_path, device="cpu", splits=tiny_shapes, progress=False,
                           on_epoch=on_epoch)  # fmt: skip
    # Epochs 1, 2, 3 saved by fp16, float32, fp16; epoch 4 (the last) writes final.pt.
    assert saved == [True, False, True, True]
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


# ------------------------------------------------------------------------ on a GPU

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _cuda_amp_paths() -> list[torch.dtype]:
    if not torch.cuda.is_available():
        return [torch.float16]
    native = torch.cuda.get_device_capability()[0] >= 8
    return [torch.bfloat16, torch.float16] if native else [torch.float16]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("amp", _cuda_amp_paths(), ids=str)
@pytest.mark.parametrize("method", method_names())
def test_no_training_step_waits_for_the_host_on_either_amp_path(tiny_shapes, method, amp):
    """CUDA's sync debug mode raises on any device-to-host sync inside the steps."""
    config = dataclasses.replace(tiny_config(method=method), batch_size=64)
    state = TrainingState.build(config, tiny_shapes, torch.device("cuda"), amp=amp)
    state.check_mixing(tiny_shapes)
    state.start_epoch(1)
    train_loader, _ = loaders(state, tiny_shapes)
    train_step(state, *next(iter(train_loader)))  # warm-up: lazy initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for images, labels in train_loader:
            train_step(state, images, labels)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", list(ONE_CALL))
def test_one_call_mixes_do_not_sync_on_cuda_tensors(name):
    images = torch.rand(64, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    targets = _soft_targets(64).cuda()
    ONE_CALL[name](images, targets, None)  # warm-up: the plan of the grid
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for generator in (None, torch.Generator().manual_seed(0)):
            ONE_CALL[name](images, targets, generator)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("mix", [region_mixup, cutmix, resizemix], ids=lambda f: f.__name__)
def test_classes_out_of_range_on_cuda_are_refused_before_any_kernel(mix):
    """CUDA's scatter would stop at a device-side assert: the labels are read back first."""
    labels = torch.arange(8, device="cuda") % 10
    labels[3] = 10
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes - 1\]"):
        mix(torch.rand(8, 3, 32, 32, device="cuda"), labels, num_classes=10)
