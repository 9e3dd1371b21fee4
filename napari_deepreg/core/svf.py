"""Stationary velocity fields: the exponential by scaling and squaring (written once here)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from .fields import compose
from .grid import check_field


def exp_svf(
    velocity: Tensor, spacing: float | Sequence[float] | None = None, steps: int = 7
) -> Tensor:
    """Displacement of the exponential of a stationary velocity field, by scaling and squaring.

    Args:
        velocity: ``(N, D, *spatial)`` velocity in mm (per unit time).
        spacing: voxel size in mm.
        steps: number of squarings; the velocity is divided by ``2**steps`` first.

    Returns:
        ``(N, D, *spatial)`` displacement of ``exp(v)`` in mm (diffeomorphic for smooth ``v``).
    """
    check_field(velocity, "velocity")
    u = velocity / (2**steps)
    for _ in range(steps):
        u = compose(u, u, spacing)
    return u


__all__ = ["exp_svf"]
