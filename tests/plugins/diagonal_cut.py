"""A method with a parameter of its own: one straight cut at ``angle`` degrees splits the
image; x_A keeps a share λ ~ Beta(α, α) of the pixels on one side, its partner the rest."""

import math

import torch

from regionmix_utils.methods import Method, Setting, register
from regionmix_utils.mixing import MaskParams, apply_mask_mix, sample_beta


def sample_diagonal(batch_size, height, width, generator, *, alpha, angle):
    lam = float(sample_beta(alpha, 1, generator))
    theta = math.radians(angle)
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    distance = (cols * math.cos(theta) + rows * math.sin(theta)).flatten()
    keep = torch.zeros(height * width)
    keep[distance.argsort()[: round(lam * height * width)]] = 1.0  # the λ nearest the corner
    partners = torch.randperm(batch_size, generator=generator)
    return MaskParams(mask=keep.view(height, width), partners=partners, lam_drawn=lam)


register(
    Method(
        name="diagonal",
        label="Diagonal cut",
        help="one straight cut at --angle degrees",
        reads=("alpha",),
        params={
            "angle": Setting(
                "angle of the cut (degrees)",
                "ang",
                "angle",
                float,
                default=45.0,
                low=0.0,
                high=180.0,
            )
        },
        shown=("angle",),
        sample=sample_diagonal,
        apply=apply_mask_mix,
    )
)
