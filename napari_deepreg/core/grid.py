"""Grids and voxel <-> world maps.

Conventions used throughout the package (see DESIGN.md):

* arrays are ``(z, y, x)`` in 3D and ``(y, x)`` in 2D; batched tensors are ``(N, C, *spatial)``;
* ``spacing`` is the voxel size in millimetres along the array axes, ``origin`` the physical
  position (mm) of voxel ``(0, ..., 0)``;
* a displacement field is ``(N, D, *spatial)`` in millimetres along the array axes, lives on the
  fixed grid and pulls back: ``warped(x) = moving(x + u(x))``.

Only this module converts to the normalised ``[-1, 1]`` coordinates of ``grid_sample``
(``align_corners=True``: -1 and +1 are the centres of the first and last voxels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def as_spacing(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Normalise ``spacing`` (a scalar, a sequence or None for 1 mm) to ``ndim`` positive floats."""
    if spacing is None:
        return (1.0,) * ndim
    if isinstance(spacing, (int, float)):
        values = (float(spacing),) * ndim
    else:
        values = tuple(float(s) for s in spacing)
    if len(values) != ndim:
        raise ValueError(f"spacing must have {ndim} values, got {len(values)}: {values}")
    if any(not s > 0 for s in values):
        raise ValueError(f"spacing must be positive, got {values}")
    return values


def check_field(field: Tensor, name: str = "field") -> int:
    """Check that ``field`` is ``(N, D, *spatial)`` with D = 2 or 3 spatial dims; return D."""
    if field.ndim not in (4, 5):
        raise ValueError(
            f"{name} must be (N, D, *spatial) with 2 or 3 spatial dims, "
            f"got shape {tuple(field.shape)}"
        )
    ndim = field.ndim - 2
    if field.shape[1] != ndim:
        raise ValueError(
            f"{name} has {field.shape[1]} components but {ndim} spatial dims: {tuple(field.shape)}"
        )
    return ndim


def voxel_grid(
    shape: Sequence[int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Voxel index coordinates, shape ``(D, *shape)``: ``grid[i]`` is the index along axis i."""
    axes = [torch.arange(n, device=device, dtype=dtype) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def world_grid(
    shape: Sequence[int],
    spacing: float | Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Physical coordinates (mm) of every voxel centre, shape ``(D, *shape)``."""
    ndim = len(shape)
    sp = torch.tensor(as_spacing(spacing, ndim), device=device, dtype=dtype)
    org = (
        torch.zeros(ndim, device=device, dtype=dtype)
        if origin is None
        else torch.as_tensor(origin, device=device, dtype=dtype)
    )
    view = (ndim,) + (1,) * ndim
    return voxel_grid(shape, device, dtype) * sp.view(view) + org.view(view)


def voxel_to_world(
    index: Tensor, spacing: Sequence[float], origin: Sequence[float] | None = None
) -> Tensor:
    """Map voxel indices ``(..., D)`` to physical points (mm) ``(..., D)``."""
    sp = torch.as_tensor(spacing, dtype=index.dtype, device=index.device)
    org = torch.zeros_like(sp) if origin is None else torch.as_tensor(origin, dtype=index.dtype)
    return index * sp + org.to(index.device)


def world_to_voxel(
    point: Tensor, spacing: Sequence[float], origin: Sequence[float] | None = None
) -> Tensor:
    """Map physical points (mm) ``(..., D)`` to continuous voxel indices ``(..., D)``."""
    sp = torch.as_tensor(spacing, dtype=point.dtype, device=point.device)
    org = torch.zeros_like(sp) if origin is None else torch.as_tensor(origin, dtype=point.dtype)
    return (point - org.to(point.device)) / sp


def sampling_grid(field: Tensor, spacing: float | Sequence[float] | None = None) -> Tensor:
    """Turn a displacement field (mm) into a ``grid_sample`` grid.

    Args:
        field: ``(N, D, *spatial)`` displacement in mm along the array axes.
        spacing: voxel size in mm along the array axes.

    Returns:
        ``(N, *spatial, D)`` normalised coordinates in grid_sample's (x, y[, z]) order, for
        ``align_corners=True``.
    """
    ndim = check_field(field)
    shape = field.shape[2:]
    sp = as_spacing(spacing, ndim)
    out = torch.empty((field.shape[0], *shape, ndim), device=field.device, dtype=field.dtype)
    for i, (n, s) in enumerate(zip(shape, sp, strict=True)):
        # voxel index along axis i plus the displacement in voxels, then normalised; adding in
        # voxel units first keeps integer shifts exact
        view = [1] * ndim
        view[i] = n
        index = torch.arange(n, device=field.device, dtype=field.dtype).view(view)
        slot = out[..., ndim - 1 - i]  # grid_sample wants (x, y[, z])
        slot.copy_(torch.add(index, field[:, i], alpha=1.0 / s))
        slot.mul_(2.0 / max(n - 1, 1)).sub_(1.0)
    return out


def resized_spacing(
    shape: Sequence[int], spacing: Sequence[float], new_shape: Sequence[int]
) -> tuple[float, ...]:
    """Spacing of a grid resized from ``shape`` to ``new_shape`` with the corner voxels fixed.

    The package resizes with ``align_corners=True`` semantics: the first and last voxel centres
    keep their physical positions, so the origin is unchanged.
    """
    return tuple(
        s * (n - 1) / (m - 1) if m > 1 else s * n
        for n, s, m in zip(shape, spacing, new_shape, strict=True)
    )
