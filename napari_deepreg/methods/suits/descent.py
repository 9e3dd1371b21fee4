"""SUITS iterative descent: updates on a 4× coarser grid, quadratic B-spline upsampling.

Every iteration (eq. 2): features of the fixed image and of the moving image warped by the
current field, both brought to the update grid; ``Δu`` from the Gauss-Newton layer (eq. 6,
:mod:`.solver`); ``u ← u + γ Δu``. The coarse field becomes a dense one by linear interpolation
followed by a box filter of 5 voxels (a quadratic B-spline with knots every 4th voxel, as in
the paper). The feature extractor is a callable, so the same loop serves MIND-SSC (no learning),
label maps (training) and the FeatCNN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...core.warp import warp_image
from ...losses.functional import box_mean
from .solver import gauss_newton_step

FACTOR = 4


def coarse_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """Update grid: ``ceil((n - 1) / 4) + 1`` per axis (corners shared with the image grid)."""
    return tuple(max(2, -(-(int(n) - 1) // FACTOR) + 1) for n in shape)


def to_coarse(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Box-average over 5 voxels, then sample at the update grid's points."""
    mode = "bilinear" if x.ndim == 4 else "trilinear"
    return F.interpolate(box_mean(x, FACTOR + 1), size=tuple(shape), mode=mode,
                         align_corners=True)


def upsample_field(u: Tensor, shape: Sequence[int], spacing: Sequence[float]) -> Tensor:
    """Coarse field in update-grid voxels → dense field in mm on ``shape`` (linear + box 5)."""
    mode = "bilinear" if u.ndim == 4 else "trilinear"
    dense = box_mean(F.interpolate(u, size=tuple(shape), mode=mode, align_corners=True),
                     FACTOR + 1)
    scale = [(n - 1) / (m - 1) * s for n, m, s in zip(shape, u.shape[2:], spacing, strict=True)]
    return dense * torch.tensor(scale, dtype=u.dtype, device=u.device).view(1, -1,
                                                                            *[1] * (u.ndim - 2))


def descend(
    fixed_features: Tensor,
    moving: Tensor,
    moving_features: Callable[[Tensor], Tensor],
    spacing: Sequence[float],
    iterations: int,
    lam: float,
    gamma: float,
    u: Tensor | None = None,
    tol: float = 1e-3,
):
    """Generator of the iterations: yields ``(k, u)`` after each update, ``u`` coarse (voxels).

    ``fixed_features`` are already on the update grid; ``moving_features(warped)`` maps the
    moving image warped onto the full grid to update-grid features. ``moving`` is
    ``(N, C, *spatial)`` in the fixed grid, ``spacing`` its voxel size in mm.
    """
    shape = moving.shape[2:]
    cshape = fixed_features.shape[2:]
    if u is None:
        u = fixed_features.new_zeros((moving.shape[0], len(shape), *cshape))
    for k in range(1, iterations + 1):
        warped = warp_image(moving, upsample_field(u, shape, spacing), spacing)
        du = gauss_newton_step(fixed_features, moving_features(warped), u, lam, tol=tol)
        u = u + gamma * du
        yield k, u
