"""Operations on displacement fields: composition, inversion, cubic B-splines, magnitudes.

Affine maps live in :mod:`.affine`, the SVF exponential in :mod:`.svf`.

A field ``u`` is ``(N, D, *spatial)`` in mm and stands for the map ``phi_u(x) = x + u(x)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .grid import as_spacing, check_field
from .warp import warp_image


def compose(u: Tensor, v: Tensor, spacing: float | Sequence[float] | None = None) -> Tensor:
    """Field of ``phi_u o phi_v``: ``w(x) = v(x) + u(x + v(x))``.

    Warping with ``w`` equals warping with ``u`` first and then with ``v`` (pull-back fields), but
    interpolates the image once. Both fields live on the same grid.
    """
    if u.shape != v.shape:
        raise ValueError(
            f"fields must have the same shape, got {tuple(u.shape)} and {tuple(v.shape)}"
        )
    return v + warp_image(u, v, spacing, padding="border")


def invert_field(
    u: Tensor, spacing: float | Sequence[float] | None = None, iterations: int = 50,
    tolerance: float = 1e-4,
) -> tuple[Tensor, Tensor]:
    """Field ``v`` of the inverse map, ``phi_u(phi_v(x)) = x``, by fixed-point iteration.

    ``v(x) = -u(x + v(x))`` is iterated from ``v = -u`` until the largest change is below
    ``tolerance`` mm or ``iterations`` are done; it converges where ``phi_u`` is invertible with
    ``|grad u| < 1`` (no folds). Outside the grid ``u`` takes its border value.

    Returns:
        ``(v, residual)``: the inverse field ``(N, D, *S)`` and the per-voxel error
        ``|v(x) + u(x + v(x))|`` (mm, ``(N, *S)``), the distance of ``phi_u(phi_v(x))`` from
        ``x``: the accuracy to state.
    """
    check_field(u)
    v = -u
    for _ in range(iterations):
        new = -warp_image(u, v, spacing, padding="border")
        change = (new - v).norm(dim=1).max()
        v = new
        if float(change) < tolerance:
            break
    return v, compose(u, v, spacing).norm(dim=1)


def _bspline_kernel(stride: int, device, dtype) -> Tensor:
    """Cubic B-spline sampled at ``j / stride - 2`` for ``j = 0 .. 4 * stride`` (length 4s+1)."""
    t = (torch.arange(4 * stride + 1, device=device, dtype=dtype) / stride - 2).abs()
    k = torch.where(t < 1, 2 / 3 - t**2 + t**3 / 2, ((2 - t).clamp_min(0)) ** 3 / 6)
    return k


def bspline_control_shape(shape: Sequence[int], stride: int | Sequence[int]) -> tuple[int, ...]:
    """Control grid shape for a dense grid ``shape`` with control points every ``stride`` voxels.

    Control point ``i`` sits at voxel ``(i - 1) * stride``, so one point lies outside each border
    and the cubic support of every voxel is covered.
    """
    strides = [int(stride)] * len(shape) if isinstance(stride, int) else [int(s) for s in stride]
    return tuple((n - 1) // s + 4 for n, s in zip(shape, strides, strict=True))


def bspline_to_field(control: Tensor, stride: int | Sequence[int], shape: Sequence[int]) -> Tensor:
    """Dense field from cubic B-spline control point values (exact, separable evaluation).

    Args:
        control: ``(N, C, *control_shape)`` with ``control_shape = bspline_control_shape(shape,
            stride)``; values are whatever the dense field holds (mm for a displacement).
        stride: control point spacing in voxels (scalar or per axis).
        shape: dense spatial shape.

    Returns:
        ``(N, C, *shape)``; constant control values give that constant exactly.
    """
    ndim = len(shape)
    strides = [int(stride)] * ndim if isinstance(stride, int) else [int(s) for s in stride]
    expected = bspline_control_shape(shape, strides)
    if tuple(control.shape[2:]) != expected:
        raise ValueError(
            f"control grid for shape {tuple(shape)} and stride {strides} must be {expected}, "
            f"got {tuple(control.shape[2:])}"
        )
    out = control
    for axis in range(ndim):
        s = strides[axis]
        dim = 2 + axis
        moved = out.movedim(dim, -1)
        lead = moved.shape[:-1]
        flat = moved.reshape(-1, 1, moved.shape[-1])
        kernel = _bspline_kernel(s, out.device, out.dtype).view(1, 1, -1)
        dense = F.conv_transpose1d(flat, kernel, stride=s)
        dense = dense[..., 3 * s : 3 * s + shape[axis]]
        out = dense.reshape(*lead, shape[axis]).movedim(-1, dim)
    return out


def field_magnitude(field: Tensor) -> Tensor:
    """Euclidean norm of a field ``(N, D, *spatial)`` -> ``(N, *spatial)`` (mm)."""
    return field.norm(dim=1)


def scale_field_to_voxels(field: Tensor, spacing: float | Sequence[float] | None) -> Tensor:
    """Field in voxels along each axis (mm divided by spacing)."""
    ndim = check_field(field)
    sp = torch.tensor(as_spacing(spacing, ndim), device=field.device, dtype=field.dtype)
    return field / sp.view((1, ndim) + (1,) * ndim)
