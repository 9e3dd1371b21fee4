"""A seeded random label phantom, for tests and toy training without registry data."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..core import as_spacing
from .draws import Seed, make_generator, smooth_noise


def random_label_map(
    shape: Sequence[int],
    n_labels: int = 8,
    spacing: float | Sequence[float] | None = None,
    smoothness_mm: float | None = None,
    generator: Seed = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """A random label phantom: ``n_labels`` compact regions filling an ellipsoid, 0 outside.

    The ellipsoid has semi-axes of 40 % of the extent. Inside it, ``n_labels`` centres are drawn
    uniformly and every voxel takes the nearest centre, with distances perturbed by smooth noise
    (``smoothness_mm``, default a tenth of the smallest extent; amplitude a quarter of the typical
    region radius) so that borders are curved rather than planar. Every label is present, as a
    compact blob of similar size. For tests and toy training without registry data.

    Returns:
        ``(1, 1, *shape)`` int64 with values in ``0 .. n_labels``.
    """
    if n_labels < 1:
        raise ValueError(f"n_labels must be >= 1, got {n_labels}")
    gen = make_generator(generator)
    ndim = len(shape)
    sp = as_spacing(spacing, ndim)
    extent = [(n - 1) * s for n, s in zip(shape, sp, strict=True)]
    semi = torch.tensor([0.4 * e for e in extent], dtype=torch.float64)
    if smoothness_mm is None:
        smoothness_mm = min(extent) / 10
    # candidates uniform in the ellipsoid (uniform direction, radius ~ u ** (1 / D)), then a
    # farthest-point pick among them spreads the centres evenly: regions of similar size
    n_cand = 16 * n_labels
    direction = torch.randn(n_cand, ndim, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
    radius = torch.rand(n_cand, 1, generator=gen, dtype=torch.float64) ** (1 / ndim)
    cand = torch.tensor([e / 2 for e in extent]) + 0.9 * radius * direction * semi
    chosen = [0]
    nearest = (cand - cand[0]).norm(dim=1)
    for _ in range(n_labels - 1):
        k = int(nearest.argmax())
        chosen.append(k)
        nearest = torch.minimum(nearest, (cand - cand[k]).norm(dim=1))
    centres = cand[chosen].float()
    noise = smooth_noise(shape, sp, smoothness_mm, n_labels, gen, device)
    noise = noise / noise.std().clamp_min(1e-12)
    volume = math.prod(float(v) for v in semi) * (math.pi if ndim == 2 else 4 * math.pi / 3)
    region_radius = (volume / n_labels) ** (1 / ndim)
    pos = []
    inside = torch.zeros(tuple(shape), device=device)
    for axis, (n, s) in enumerate(zip(shape, sp, strict=True)):
        view = [1] * ndim
        view[axis] = n
        x = (torch.arange(n, device=device, dtype=torch.float32) * s).view(view)
        pos.append(x)
        inside = inside + ((x - extent[axis] / 2) / float(semi[axis])) ** 2
    dist = torch.stack([
        sum((pos[a] - float(c[a])) ** 2 for a in range(ndim)).expand(tuple(shape)).sqrt()
        for c in centres
    ])[None]
    labels = (dist + 0.25 * region_radius * noise).argmin(1, keepdim=True) + 1
    return torch.where(inside[None, None] <= 1, labels, 0)


__all__ = ["random_label_map"]
