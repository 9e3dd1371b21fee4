"""Seeded random draws shared by the synthetic generators: the generator, ranges and smooth noise.

Every random draw is made on the CPU with a ``torch.Generator`` seeded by the caller, so the same
seed gives the same field or image on every device (only the arithmetic after the draw runs on
``device``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..core import as_spacing, gaussian_smooth, resize

Seed = int | torch.Generator | None
# a fixed number, or ``(low, high)`` to draw from
Range = float | tuple[float, float]


def make_generator(seed: Seed) -> torch.Generator:
    """A CPU generator from an int seed (None: seed 0), or ``seed`` itself if it is one."""
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device="cpu")
    gen.manual_seed(0 if seed is None else int(seed))
    return gen


def draw_value(gen: torch.Generator, value: Range) -> float:
    """A fixed ``value``, or a draw uniform in ``(low, high)``; always consumes one number, so
    the draws after it do not depend on whether a range was fixed."""
    u = float(torch.rand((), generator=gen, dtype=torch.float64))
    if isinstance(value, (int, float)):
        return float(value)
    low, high = (float(v) for v in value)
    if low > high:
        raise ValueError(f"range must satisfy low <= high, got {value}")
    return low + u * (high - low)


def log_uniform(gen: torch.Generator, low: float, high: float) -> float:
    """A draw log-uniform in ``[low, high]`` (both > 0) from one float32 uniform number."""
    u = float(torch.rand((), generator=gen))
    return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def smooth_noise(
    shape: Sequence[int],
    spacing: float | Sequence[float] | None,
    smoothness_mm: float,
    channels: int = 1,
    generator: Seed = None,
    device: torch.device | str = "cpu",
    voxels_per_sigma: float = 4.0,
) -> Tensor:
    """White Gaussian noise smoothed by a Gaussian of ``smoothness_mm`` (standard deviation, mm).

    The noise is drawn on a grid padded by three standard deviations and cropped after smoothing,
    so the borders are as random as the centre (replicate padding would stretch the edge samples).
    For large kernels it is drawn on a coarser grid and resized linearly: at four or more coarse
    voxels per standard deviation (``voxels_per_sigma``) the result is indistinguishable and much
    cheaper; two are plenty for a bias field.

    Returns:
        ``(1, channels, *shape)`` float32, zero mean, unnormalised amplitude.
    """
    gen = make_generator(generator)
    ndim = len(shape)
    sp = as_spacing(spacing, ndim)
    sigma_vox = [smoothness_mm / s for s in sp]
    # coarsening factor per axis keeps >= voxels_per_sigma coarse voxels per standard deviation
    factor = [max(1, int(sv // voxels_per_sigma)) for sv in sigma_vox]
    coarse_sigma = [sv / f for sv, f in zip(sigma_vox, factor, strict=True)]
    pad = [int(math.ceil(3 * cs)) + 1 for cs in coarse_sigma]
    coarse = [int(math.ceil((n - 1) / f)) + 1 for n, f in zip(shape, factor, strict=True)]
    padded = [c + 2 * p for c, p in zip(coarse, pad, strict=True)]
    noise = torch.randn((1, channels, *padded), generator=gen, dtype=torch.float32)
    noise = gaussian_smooth(noise.to(device), coarse_sigma)
    crop = tuple(slice(p, p + c) for p, c in zip(pad, coarse, strict=True))
    noise = noise[(slice(None), slice(None), *crop)]
    if any(f > 1 for f in factor):
        # the coarse grid spans ((c - 1) * f) voxels >= (n - 1); resize then trim to ``shape``
        span = [(c - 1) * f + 1 for c, f in zip(coarse, factor, strict=True)]
        noise = resize(noise, span, antialias=False)
        noise = noise[(slice(None), slice(None), *(slice(0, n) for n in shape))]
    return noise.contiguous()


__all__ = ["Range", "Seed", "draw_value", "log_uniform", "make_generator", "smooth_noise"]
