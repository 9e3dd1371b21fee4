"""Affine maps on physical grids: matrices, their fields, origin changes, composition.

Convention (as everywhere in ``core``): a ``(D+1, D+1)`` homogeneous matrix ``M = [A b; 0 1]``
acts on physical points in mm, in array axis order, and maps a fixed point ``x`` to the moving
point ``A x + b`` (pull-back). Written once here for instance optimisation, AVSM and the
pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .grid import world_grid


def homogeneous(linear: Tensor, translation: Tensor) -> Tensor:
    """``[A b; 0 1]`` from ``A`` ``(..., D, D)`` and ``b`` ``(..., D)``: ``(..., D+1, D+1)``."""
    d = linear.shape[-1]
    out = linear.new_zeros((*linear.shape[:-2], d + 1, d + 1))
    out[..., :d, :d] = linear
    out[..., :d, d] = translation
    out[..., d, d] = 1
    return out


def about_centre(linear: Tensor, centre: Tensor, shift: Tensor) -> Tensor:
    """Matrix of ``x -> A (x - c) + c + t``: a linear map about ``c`` followed by a shift ``t``.

    Args:
        linear: ``A``, ``(..., D, D)``.
        centre: ``c``, ``(D,)`` mm.
        shift: ``t``, ``(..., D)`` mm.

    Returns:
        ``(..., D+1, D+1)`` homogeneous matrix.
    """
    moved = centre - (linear @ centre.unsqueeze(-1)).squeeze(-1)
    return homogeneous(linear, moved + shift)


def shift_origin(matrix: Tensor, origin: Sequence[float] | Tensor) -> Tensor:
    """Rewrite a matrix written with voxel 0 at 0 mm for voxel 0 at ``origin``.

    With ``y = x - o``: ``A y + b + o = A x + (b + o - A o)``, i.e. ``T(o) M T(-o)``; the linear
    part is unchanged. ``matrix`` is ``(D+1, D+1)``; ``origin`` has D values in mm.
    """
    ndim = matrix.shape[-1] - 1
    o = torch.as_tensor(origin, dtype=matrix.dtype, device=matrix.device)
    if o.shape != (ndim,):
        raise ValueError(f"origin needs {ndim} values, got {tuple(o.shape)}")
    out = matrix.clone()
    out[:ndim, ndim] = matrix[:ndim, ndim] + o - matrix[:ndim, :ndim] @ o
    return out


def affine_to_field(
    matrix: Tensor,
    shape: Sequence[int],
    spacing: float | Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
) -> Tensor:
    """Displacement field of a physical affine map.

    Args:
        matrix: ``(D+1, D+1)`` or ``(N, D+1, D+1)`` homogeneous matrix acting on physical points
            (mm, array axis order): fixed point ``x`` maps to ``A x + b`` in the moving image.
        shape: spatial shape of the fixed grid.
        spacing, origin: fixed grid geometry (mm).

    Returns:
        ``(N, D, *shape)`` field ``u(x) = A x + b - x`` in mm.
    """
    ndim = len(shape)
    if matrix.ndim == 2:
        matrix = matrix.unsqueeze(0)
    if matrix.shape[1:] != (ndim + 1, ndim + 1):
        raise ValueError(
            f"matrix must be ({ndim + 1}, {ndim + 1}) or (N, {ndim + 1}, {ndim + 1}) for a "
            f"{ndim}D grid, got {tuple(matrix.shape)}"
        )
    x = world_grid(shape, spacing, origin, matrix.device, matrix.dtype).reshape(ndim, -1)
    a = matrix[:, :ndim, :ndim]
    b = matrix[:, :ndim, ndim:]
    mapped = a @ x.unsqueeze(0) + b
    return (mapped - x.unsqueeze(0)).reshape(matrix.shape[0], ndim, *shape)


def compose_affine_field(affine_field: Tensor, linear: Tensor, inner: Tensor) -> Tensor:
    """Field of ``phi_M o phi_u`` for an affine ``M``: ``a(x) + A u(x)``, exact (no resampling).

    Args:
        affine_field: ``(N, D, *S)`` field of ``M`` (:func:`affine_to_field`), mm.
        linear: ``A``, ``(D, D)`` or ``(N, D, D)``.
        inner: ``(N, D, *S)`` the displacement ``u`` applied first, mm.
    """
    if linear.ndim == 2:
        return affine_field + torch.einsum("ij,nj...->ni...", linear, inner)
    return affine_field + torch.einsum("nij,nj...->ni...", linear, inner)


__all__ = ["about_centre", "affine_to_field", "compose_affine_field", "homogeneous",
           "shift_origin"]
