"""Jacobian of the deformation ``phi(x) = x + u(x)`` in physical units."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .grid import as_spacing, check_field


def jacobian_matrix(field: Tensor, spacing: float | Sequence[float] | None = None) -> Tensor:
    """``d phi_i / d x_j`` for ``phi = id + u``, by central differences (one-sided at borders).

    Args:
        field: ``(N, D, *spatial)`` displacement in mm.
        spacing: voxel size in mm along the array axes.

    Returns:
        ``(N, D, D, *spatial)``, dimensionless.
    """
    ndim = check_field(field)
    sp = as_spacing(spacing, ndim)
    rows = []
    for i in range(ndim):
        grads = torch.gradient(field[:, i], spacing=sp, dim=list(range(1, ndim + 1)))
        rows.append(torch.stack([g + (1.0 if i == j else 0.0) for j, g in enumerate(grads)], 1))
    return torch.stack(rows, 1)


def jacobian_determinant(field: Tensor, spacing: float | Sequence[float] | None = None) -> Tensor:
    """Determinant of the Jacobian of ``x + u(x)``, shape ``(N, *spatial)``.

    Values below or at 0 are folds; 1 means volume preserved.
    """
    ndim = check_field(field)
    sp = as_spacing(spacing, ndim)
    dims = list(range(1, ndim + 1))
    g = [torch.gradient(field[:, i], spacing=sp, dim=dims, edge_order=1) for i in range(ndim)]
    if ndim == 2:
        return (1 + g[0][0]) * (1 + g[1][1]) - g[0][1] * g[1][0]
    a, b, c = 1 + g[0][0], g[0][1], g[0][2]
    d, e, f = g[1][0], 1 + g[1][1], g[1][2]
    h, i_, k = g[2][0], g[2][1], 1 + g[2][2]
    return a * (e * k - f * i_) - b * (d * k - f * h) + c * (d * i_ - e * h)
