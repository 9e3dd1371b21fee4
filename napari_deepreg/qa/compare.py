"""Pictures that compare the fixed image with the warped moving image, on the fixed grid.

A checkerboard whose tiles have a size in millimetres (so the same setting means the same
anatomy whatever the voxel size), a signed difference and a red / cyan overlay. Each image is
first put on ``[0, 1]`` by its 0.5 / 99.5 percentiles, so two contrasts can be compared. Arrays
``(z, y, x)`` / ``(y, x)``, ``spacing`` in mm per array axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.stats import unit_range as _unit_range

MODES = ("checkerboard", "difference", "red/cyan")


def unit_range(array: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """``array`` mapped to ``[0, 1]`` (float32) by its ``low`` / ``high`` percentiles."""
    return _unit_range(np.asarray(array, dtype=np.float32), low, high)


def tile_parity(shape: Sequence[int], spacing: Sequence[float], tile_mm: float) -> np.ndarray:
    """``(*shape)`` bool: True on the "first image" tiles of a checkerboard of ``tile_mm`` mm.

    The tile of voxel ``i`` along an axis is ``floor(i * spacing / tile_mm)``; a voxel shows the
    first image where the tile indices add up to an even number.
    """
    if not tile_mm > 0:
        raise ValueError(f"tile size must be positive (mm), got {tile_mm}")
    if len(shape) != len(spacing):
        raise ValueError(f"spacing {tuple(spacing)} does not match shape {tuple(shape)}")
    parity = np.zeros((1,) * len(shape), dtype=np.int64)
    for axis, (n, sp) in enumerate(zip(shape, spacing, strict=True)):
        view = [1] * len(shape)
        view[axis] = n
        tiles = np.floor(np.arange(n) * float(sp) / float(tile_mm) + 1e-9).astype(np.int64)
        parity = parity + tiles.reshape(view)
    return parity % 2 == 0


def checkerboard_mm(
    fixed: np.ndarray, warped: np.ndarray, spacing: Sequence[float], tile_mm: float = 10.0
) -> np.ndarray:
    """Fixed and warped in alternate tiles of ``tile_mm`` mm (float32 in ``[0, 1]``)."""
    fixed, warped = np.asarray(fixed), np.asarray(warped)
    if fixed.shape != warped.shape:
        raise ValueError(f"images must share a grid, got {fixed.shape} and {warped.shape}")
    return np.where(tile_parity(fixed.shape, spacing, tile_mm), unit_range(fixed),
                    unit_range(warped)).astype(np.float32)


def difference(fixed: np.ndarray, warped: np.ndarray) -> np.ndarray:
    """``warped - fixed`` after both are put on ``[0, 1]`` (float32 in ``[-1, 1]``; 0 = agree)."""
    return unit_range(warped) - unit_range(fixed)


def red_cyan(fixed: np.ndarray, warped: np.ndarray) -> np.ndarray:
    """RGB ``(*spatial, 3)`` float32: fixed in red, warped in cyan (grey where they agree)."""
    f, w = unit_range(fixed), unit_range(warped)
    return np.stack([f, w, w], axis=-1)


__all__ = ["MODES", "checkerboard_mm", "difference", "red_cyan", "tile_parity", "unit_range"]
