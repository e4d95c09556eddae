"""The samplers: each method's parameters drawn from an explicit ``torch.Generator``."""

import math
import threading
from typing import Any

import numpy as np
import torch
from torch import Tensor

from regionmix_utils.mixing import core

__all__ = ["fourier_noise", "sample_beta", "sample_cutmix_params", "sample_fmix_params",
           "sample_gridmix_params", "sample_random_region_params", "sample_region_params",
           "sample_resizemix_params"]  # fmt: skip


def sample_beta(alpha: float, n: int, generator: torch.Generator | None = None,
                device=None) -> Tensor:  # fmt: skip
    """[n] float32 draws of Beta(alpha, alpha) = G1 / (G1 + G2), G ~ Gamma(alpha). Below 1
    in log space, Gamma(a) = Gamma(a + 1) U^(1/a) (Marsaglia & Tsang, 2000): the gammas
    would underflow (24% at 0.001). TypeError, ValueError: alpha not positive finite."""
    alpha = core.check_setting("alpha", alpha)
    n = int(n)
    device = generator.device if generator is not None else torch.device(device or "cpu")
    concentration = torch.full((2, n), alpha, dtype=torch.float64, device=device)
    if alpha >= 1:
        gammas = torch._standard_gamma(concentration, generator=generator)
        total = gammas.sum(0).clamp_min_(torch.finfo(torch.float64).tiny)
        return (gammas[0] / total).float()
    boosted = torch._standard_gamma(concentration + 1, generator=generator)
    uniform = 1 - torch.rand(2, n, generator=generator, dtype=torch.float64, device=device)
    log_gammas = boosted.log() + uniform.log() / alpha  # 1 - U in (0, 1]: a finite log
    return torch.sigmoid(log_gammas[0] - log_gammas[1]).float()


_SHUFFLERS = threading.local()  # one numpy generator per thread, its state set per call
_PCG_INCREMENT = 0xDA3E39CB94B95BDB  # any odd increment; fixed, so the stream is the seed's


def _permutations_by_shuffle(n: int, batch_size: int, generator) -> Tensor:
    """[n, B] int64: numpy's Fisher-Yates (3-4x faster than a sort), one torch draw set
    straight into PCG64's state (``default_rng`` hashes its seed: slower than the shuffle)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    if not hasattr(_SHUFFLERS, "bits"):
        _SHUFFLERS.bits = np.random.PCG64(0)
        _SHUFFLERS.generator = np.random.Generator(_SHUFFLERS.bits)
    _SHUFFLERS.bits.state = {"bit_generator": "PCG64", "has_uint32": 0, "uinteger": 0,
                             "state": {"state": seed, "inc": _PCG_INCREMENT}}  # fmt: skip
    rows = np.broadcast_to(np.arange(batch_size), (n, batch_size))
    return torch.from_numpy(_SHUFFLERS.generator.permuted(rows, axis=1))


def _permutations_by_sort(n: int, batch_size: int, generator, device) -> Tensor:
    """[n, B] int64: argsort of float64 uniforms, one GPU kernel (ties ~2^-53)."""
    keys = torch.rand(n, batch_size, generator=generator, device=device, dtype=torch.float64)
    return keys.argsort(dim=1)


def _random_permutations(n: int, batch_size: int, generator, device) -> Tensor:
    if torch.device(device or "cpu").type == "cpu":
        return _permutations_by_shuffle(n, batch_size, generator)
    return _permutations_by_sort(n, batch_size, generator, device)


def _region_params(batch_size, grid, alpha, generator, device, lam_mode, rows=None, cols=None):
    # lam [gh, gw] ("batch": Algorithm 1) or [gh, gw, B] ("sample", timm's "elem")
    per_sample = core.check_setting("lam_mode", lam_mode) == "sample"
    n = grid[0] * grid[1] * (batch_size if per_sample else 1)
    lam = sample_beta(alpha, n, generator, device).view(*grid, *((-1,) if per_sample else ()))
    partners = _random_permutations(grid[0] * grid[1], batch_size, generator, lam.device)
    return core.RegionParams(lam, partners.view(*grid, batch_size), rows, cols)


def resolve_grid(k: int, grid: tuple[int, int] | None) -> tuple[int, int]:
    """(gh, gw) from k, or ``grid``, which replaces k."""
    if grid is None:
        return (core.check_setting("k", k),) * 2
    if not isinstance(grid, (tuple, list)) or len(grid) != 2:
        raise TypeError(f"grid must be a pair (gh, gw) of integers >= 1, got {grid!r}")
    return (core.check_count(grid[0], "grid[0]"), core.check_count(grid[1], "grid[1]"))


def check_grid_fits(grid: tuple[int, int], height: int, width: int, k_given: bool) -> None:
    """ValueError when a gh x gw grid does not fit H x W images."""
    if grid[0] <= height and grid[1] <= width:
        return
    if k_given:
        raise ValueError(f"k must be between 1 and min(H, W) = {min(height, width)} for "
                         f"{height}x{width} images, got k={grid[0]}")  # fmt: skip
    raise ValueError(f"grid must fit the {height}x{width} images (1 <= gh <= {height}, "
                     f"1 <= gw <= {width}), got grid={grid}")  # fmt: skip


def sample_region_params(batch_size: int, grid: tuple[int, int] = (2, 2), alpha: float = 1.0,
                         generator: torch.Generator | None = None, device=None,
                         lam_mode: str = "batch") -> core.RegionParams:  # fmt: skip
    """One λ ~ Beta(alpha, alpha) (per sample too with ``lam_mode="sample"``) and one
    batch permutation per tile: lam [gh, gw] or [gh, gw, B], partners [gh, gw, B]."""
    batch_size, grid = core.check_count(batch_size, "batch_size"), resolve_grid(1, grid)
    return _region_params(batch_size, grid, alpha, generator, device, lam_mode)


def _random_cuts(size: int, parts: int, min_side: int, generator, device) -> tuple[int, ...]:
    """Edges 0 = e_0 < ... < e_parts = size, tiles >= ``min_side``, uniform over all such
    edges (stars and bars: cuts of size - parts * (min_side - 1), cut i moved i * extra)."""
    extra = min_side - 1
    keys = torch.rand(size - parts * extra - 1, generator=generator, device=device)
    cuts = (keys.argsort()[: parts - 1] + 1).sort().values.tolist()
    return (0, *(cut + i * extra for i, cut in enumerate(cuts, start=1)), size)


def sample_random_region_params(batch_size: int, height: int, width: int,
                                sides: tuple[int, ...] = (1, 2, 4), alpha: float = 1.0,
                                generator: torch.Generator | None = None, device=None,
                                lam_mode: str = "batch",
                                min_side: int = 1) -> core.RegionParams:  # fmt: skip
    """Stochastic Region Mixup (beyond the paper): gh, gw uniform from the ``sides`` that
    fit, edges uniform over cuts with tiles >= ``min_side`` (1 trained the runs; notebook
    01 uses 4), one λ and partner per tile. RegionParams with both edge tuples."""
    batch_size, height, width, device = _sizes(batch_size, height, width, generator, device)
    sides, min_side = core.check_setting("sides", sides), core.check_count(min_side, "min_side")
    fit_h, fit_w = ([s for s in sides if s * min_side <= size] for size in (height, width))
    if not fit_h or not fit_w:
        at_least = f" with tiles of at least {min_side} pixels" if min_side > 1 else ""
        raise ValueError(f"sides must hold a grid side that fits the {height}x{width} images"
                         f"{at_least}, got sides={sides}")  # fmt: skip
    keys = torch.rand(2, generator=generator, device=device, dtype=torch.float64).tolist()
    grid = (fit_h[int(keys[0] * len(fit_h))], fit_w[int(keys[1] * len(fit_w))])
    rows = _random_cuts(height, grid[0], min_side, generator, device)
    cols = _random_cuts(width, grid[1], min_side, generator, device)
    return _region_params(batch_size, grid, alpha, generator, device, lam_mode, rows, cols)


def _box(height: int, width: int, cut_h: int, cut_w: int, cy: int, cx: int) -> tuple:
    """A cut_h x cut_w box centred at (cy, cx), clipped to the image."""
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    return (top, max(cx - cut_w // 2, 0), bottom, min(cx + cut_w // 2, width))


def _sizes(batch_size, height, width, generator, device) -> tuple[int, int, int, Any]:
    """The sizes checked, and the generator's device (else ``device``)."""
    device = generator.device if generator is not None else device
    return (core.check_count(batch_size, "batch_size"), core.check_count(height, "height"),
            core.check_count(width, "width"), device)  # fmt: skip


def sample_cutmix_params(batch_size: int, height: int, width: int, alpha: float = 1.0,
                         generator: torch.Generator | None = None,
                         device=None) -> core.CutMixParams:  # fmt: skip
    """CutMix (Yun et al., 2019): λ ~ Beta(alpha, alpha), a box of sides int(H sqrt(1 - λ)),
    int(W sqrt(1 - λ)) centred uniformly, clipped; one permutation. A GPU generator syncs."""
    batch_size, height, width, device = _sizes(batch_size, height, width, generator, device)
    lam = float(sample_beta(alpha, 1, generator, device)[0])
    cut = math.sqrt(1.0 - lam)
    centre = torch.rand(2, generator=generator, device=device, dtype=torch.float64)
    box = _box(height, width, int(height * cut), int(width * cut), int(centre[0] * height),
               int(centre[1] * width))  # fmt: skip
    return core.CutMixParams(box, _random_permutations(1, batch_size, generator, device)[0], lam)


def sample_gridmix_params(batch_size: int, height: int, width: int, alpha: float = 1.0,
                          generator: torch.Generator | None = None, device=None,
                          n_holes: int = 4, crop_area: float = 1.0) -> core.MaskParams:  # fmt: skip
    """GridMix (Baek et al., 2021), as ``GridMixupLoss._get_gridmask`` of
    github.com/IlyaDobrynin/GridMixup: a square crop of ``crop_area`` H W at a uniform
    corner, patches of side ceil(crop width / n_holes), each with a top-left hole of side
    int(side sqrt(1 - λ)) in [1, side - 1]; mask [H, W] is 0 in the holes. ValueError:
    n_holes not in [1, crop width // 2], crop_area not in (0, 1]."""
    batch_size, height, width, device = _sizes(batch_size, height, width, generator, device)
    n_holes = core.check_count(n_holes, "n_holes")
    crop_area = core.check_fraction(crop_area, "crop_area")
    if crop_area == 0:
        raise ValueError("crop_area must lie in (0, 1], got 0")
    lam = float(sample_beta(alpha, 1, generator, device)[0])
    side = int(math.sqrt(height * width * crop_area))
    crop_h, crop_w = min(side, height), min(side, width)
    if not n_holes <= crop_w // 2:
        raise ValueError(f"n_holes must be between 1 and crop width // 2 = {crop_w // 2} for "
                         f"{height}x{width} images, got {n_holes}")  # fmt: skip
    corner = torch.rand(2, generator=generator, device=device, dtype=torch.float64).tolist()
    top, left = int((height - crop_h) * corner[0]), int((width - crop_w) * corner[1])
    patch = math.ceil(crop_w / n_holes)
    hole = min(max(int(patch * math.sqrt(1.0 - lam)), 1), patch - 1)
    # The holes are a product set: rows and columns whose offset in their patch is < hole.
    rows, cols = torch.zeros(height, dtype=torch.bool), torch.zeros(width, dtype=torch.bool)
    rows[top : top + crop_h] = torch.arange(crop_h) % patch < hole
    cols[left : left + crop_w] = torch.arange(crop_w) % patch < hole
    mask = 1.0 - (rows[:, None] & cols[None, :]).float()
    return core.MaskParams(mask, _random_permutations(1, batch_size, generator, device)[0], lam)


def fourier_noise(height: int, width: int, decay_power: float = 3.0, generator=None,
                  device=None) -> Tensor:  # fmt: skip
    """[H, W] float64 noise (FMix paper, section 3): inverse real FFT of complex Gaussians
    scaled by 1 / max(f, 1 / max(H, W)) ** decay_power."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    freqs = (fy * fy + fx * fx).sqrt()
    scale = 1.0 / freqs.clamp_min(1.0 / max(height, width)) ** decay_power
    parts = torch.randn(2, *freqs.shape, generator=generator, device=device, dtype=torch.float64)
    spectrum = torch.complex(parts[0], parts[1]) * scale.to(parts.device)
    return torch.fft.irfft2(spectrum, s=(height, width))


DECAY_POWER = core.Setting("FMix: d of the Fourier noise's 1/f^d decay (higher: smoother masks)",
                      "d", "decay power", float, unnamed=3.0, default=3.0, above=0.0)  # fmt: skip


def sample_fmix_params(batch_size: int, height: int, width: int, alpha: float = 1.0,
                       generator: torch.Generator | None = None, device=None,
                       decay_power: float = 3.0,
                       max_soft: float = 0.0) -> core.MaskParams:  # fmt: skip
    """FMix (Harris et al., 2020), as ``binarise_mask`` of github.com/ecs-vlc/FMix: the
    ceil or floor (a coin) of λ H W pixels of highest noise keep x_A. ``max_soft`` in
    [0, 0.5]: the 2 s pixels ranked around it (s = int(H W min(max_soft, λ, 1 - λ))) fall
    linearly from 1 to 0, keeping the mean."""
    batch_size, height, width, device = _sizes(batch_size, height, width, generator, device)
    decay_power = DECAY_POWER.check("decay_power", decay_power, strict=True)
    max_soft = core.check_fraction(max_soft, "max_soft", 0.5)
    lam = float(sample_beta(alpha, 1, generator, device)[0])
    noise = fourier_noise(height, width, decay_power, generator, device).flatten().cpu()
    coin = float(torch.rand(1, generator=generator, device=device, dtype=torch.float64))
    pixels = height * width
    count = math.ceil(lam * pixels) if coin > 0.5 else math.floor(lam * pixels)
    soft = int(pixels * min(max_soft, lam, 1.0 - lam))
    low, high = max(count - soft, 0), min(count + soft, pixels)
    ranked = torch.cat([torch.ones(low), torch.linspace(1.0, 0.0, high - low),
                        torch.zeros(pixels - high)])  # fmt: skip
    mask = torch.empty(pixels, dtype=torch.float32)
    mask[torch.argsort(noise, descending=True, stable=True)] = ranked
    partners = _random_permutations(1, batch_size, generator, device)[0]
    return core.MaskParams(mask.view(height, width), partners, lam)


def sample_resizemix_params(batch_size: int, height: int, width: int,
                            generator: torch.Generator | None = None, device=None,
                            scale_range: tuple[float, float] = (0.1, 0.8),
                            ) -> core.ResizeParams:  # fmt: skip
    """ResizeMix (Qin et al., 2020), as OpenMixup's ``resizemix``: tau ~ U(scale_range), a
    box of sides int(H tau), int(W tau) placed as CutMix's."""
    batch_size, height, width, device = _sizes(batch_size, height, width, generator, device)
    if not isinstance(scale_range, (tuple, list)) or len(scale_range) != 2:
        raise TypeError(f"scale_range must be a pair (low, high), got {scale_range!r}")
    low, high = (core.check_fraction(v, f"scale_range[{i}]") for i, v in enumerate(scale_range))
    if low > high:
        raise ValueError(f"scale_range must have low <= high, got {tuple(scale_range)}")
    draws = torch.rand(3, generator=generator, device=device, dtype=torch.float64).tolist()
    tau = low + (high - low) * draws[0]
    box = _box(height, width, int(height * tau), int(width * tau), int(draws[1] * height),
               int(draws[2] * width))  # fmt: skip
    return core.ResizeParams(box, _random_permutations(1, batch_size, generator, device)[0], tau)
