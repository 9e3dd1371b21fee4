"""Pure builders of what the viewer shows: grid lines, heatmaps, fold maps and layer styles.

numpy only (scipy is imported where a function needs it); nothing here imports napari or Qt. The
layer builders in ``_napari/_layers.py`` and the PNG report (:mod:`.report`) wrap these arrays
and styles. Conventions follow the package: arrays ``(z, y, x)`` / ``(y, x)``, ``spacing`` in mm
per array axis, a displacement field ``(D, *spatial)`` in mm along the array axes on the fixed
grid (pull-back).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.stats import unit_range as _unit_range

# Diverging map centred on J = 1: blue = compression, red = expansion (napari and matplotlib
# both know it by this name).
JACOBIAN_COLORMAP = "RdBu_r"
# the warped moving image, additive over the grey fixed image: aligned anatomy turns white
WARPED_COLORMAP = "magenta"
MAGNITUDE_COLORMAP = "viridis"
# napari's label-colour mapping: folded voxels (1) red, the rest transparent
FOLD_COLORMAP: dict[int | None, str] = {1: "red", None: "transparent"}
# opacity of the Jacobian and displacement heatmaps: the anatomy stays readable underneath
HEATMAP_OPACITY = 0.6
# grid line half-width in voxels: lines about one voxel wide, anti-aliased
GRID_WIDTH = 0.6
# napari colormap spec: transparent at 0, opaque yellow at 1 (readable over bright and dark
# tissue alike; additive yellow vanishes over white matter)
GRID_COLORMAP: dict[str, Any] = {
    "name": "deepreg grid",
    "colors": [[1.0, 0.85, 0.0, 0.0], [1.0, 0.85, 0.0, 1.0]],
}


# --------------------------------------------------------------------------- field pictures


def _check_field(field: np.ndarray) -> np.ndarray:
    field = np.asarray(field)
    if field.ndim not in (3, 4) or field.shape[0] != field.ndim - 1:
        raise ValueError(
            f"field must be (D, *spatial) with D = 2 or 3 spatial dims, got shape {field.shape}"
        )
    return field


def _spacing(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    if isinstance(spacing, (int, float)):
        return (float(spacing),) * ndim
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim or any(not s > 0 for s in values):
        raise ValueError(f"spacing must be {ndim} positive values, got {values}")
    return values


def deformation_grid(
    field: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    displayed_axes: Sequence[int] = (-2, -1),
    period_vox: float = 8,
    width: float = 1.0,
) -> np.ndarray:
    """Rasterise the deformed grid in fixed space.

    A grid drawn on the moving image every ``period_vox`` voxels, pulled back into the fixed
    grid: ``G(x) = max_a line(phi_a(x))`` over the displayed axes ``a``, where
    ``phi(x) = x + u(x) / spacing`` is the mapped position in voxels and ``line(t)`` is a hat of
    half-width ``width`` voxels around the multiples of ``period_vox`` (1 on a line, falling
    linearly to 0 at ``width`` away, so sub-voxel positions are anti-aliased).

    Only the displayed (in-plane) axes draw lines: a 3D grid sliced along the other axis shows a
    2D grid and no filled planes. Re-run it when the displayed axes change.

    Args:
        field: ``(D, *spatial)`` displacement in mm.
        spacing: voxel size in mm per array axis.
        displayed_axes: spatial axes (negative counts from the end) whose grid lines are drawn.
        period_vox: grid period in (moving) voxels.
        width: line half-width in voxels.

    Returns:
        ``(*spatial)`` float32 in ``[0, 1]``.
    """
    field = _check_field(field)
    ndim = field.shape[0]
    shape = field.shape[1:]
    sp = _spacing(spacing, ndim)
    if period_vox <= 0 or width <= 0:
        raise ValueError(f"period_vox and width must be positive, got {period_vox}, {width}")
    axes = sorted({int(a) % ndim for a in displayed_axes})
    if any(not -ndim <= int(a) < ndim for a in displayed_axes) or not axes:
        raise ValueError(f"displayed_axes must be axes of a {ndim}D field, got {displayed_axes}")

    out = np.zeros(shape, dtype=np.float32)
    buf = np.empty(shape, dtype=np.float32)
    nearest = np.empty(shape, dtype=np.float32)
    for a in axes:
        view = [1] * ndim
        view[a] = shape[a]
        index = np.arange(shape[a], dtype=np.float32).reshape(view)
        # t = phi_a(x) in voxels, in place to keep 193x229x193 volumes well under a second;
        # the nearest line is an exact multiple of the period so integer t stay exact
        np.divide(field[a], np.float32(sp[a]), out=buf, casting="unsafe")
        buf += index
        np.multiply(buf, np.float32(1.0 / period_vox), out=nearest)
        np.rint(nearest, out=nearest)
        nearest *= np.float32(period_vox)
        buf -= nearest  # signed distance to the nearest line, in voxels
        np.abs(buf, out=buf)
        buf *= np.float32(1.0 / width)  # ... in half-widths
        np.subtract(np.float32(1.0), buf, out=buf)
        np.maximum(out, buf, out=out)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def displacement_magnitude(field: np.ndarray) -> np.ndarray:
    """Length of the displacement, ``(*spatial)`` float32 in mm, from a ``(D, *spatial)`` field."""
    field = _check_field(field)
    out = np.zeros(field.shape[1:], dtype=np.float32)
    for component in field:
        out += np.square(component, dtype=np.float32)
    return np.sqrt(out, out=out)


# --------------------------------------------------------------------------- Jacobian and folds


def jacobian_display(
    jac: np.ndarray, percentile: float = 99.0, min_half_range: float = 0.05
) -> tuple[np.ndarray, tuple[float, float], str]:
    """How to show a Jacobian-determinant map: ``(array, contrast_limits, colormap name)``.

    The array keeps its true values (so the viewer's hover shows them); the contrast limits are
    symmetric around 1 (volume preserved) with a half-range given by the ``percentile`` of
    ``|J - 1|``, between ``min_half_range`` and 1, so a gentle field is not washed out and the
    limits never exceed ``[0, 2]``. Folds (J <= 0) saturate at the compression end; show them
    with :func:`fold_mask` on top.
    """
    jac = np.asarray(jac, dtype=np.float32)
    finite = jac[np.isfinite(jac)]
    spread = float(np.percentile(np.abs(finite - 1.0), percentile)) if finite.size else 1.0
    half = min(max(spread, min_half_range), 1.0)
    return jac, (1.0 - half, 1.0 + half), JACOBIAN_COLORMAP


def fold_mask(jac: np.ndarray) -> np.ndarray:
    """``uint8`` map, 1 where the deformation folds (Jacobian determinant <= 0), else 0."""
    return (np.asarray(jac) <= 0).astype(np.uint8)


def fold_clusters(
    jac: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Connected components of folding voxels (J <= 0), largest first.

    Voxels touching by a face, edge or corner belong to the same cluster.

    Returns:
        one dict per cluster: ``id`` (1-based, by decreasing size), ``size_vox``,
        ``volume_mm3``, ``centroid_vox`` and ``centroid_mm`` (physical, array axis order:
        ``origin + index * spacing``), ``min_jacobian``.
    """
    from scipy import ndimage  # only here: keeps `import napari_deepreg.qa` light

    jac = np.asarray(jac)
    ndim = jac.ndim
    sp = np.asarray(_spacing(spacing, ndim))
    org = np.zeros(ndim) if origin is None else np.asarray(origin, dtype=float)
    mask = jac <= 0
    labels, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(ndim, ndim))
    if count == 0:
        return []
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=count + 1)[1:]
    coords = np.nonzero(labels)
    ids = labels[coords]
    centroids = np.stack(
        [np.bincount(ids, weights=c, minlength=count + 1)[1:] / sizes for c in coords], axis=1
    )
    minima = ndimage.minimum(jac, labels, index=np.arange(1, count + 1))
    voxel_volume = float(np.prod(sp))
    order = np.argsort(-sizes, kind="stable")
    clusters = []
    for rank, k in enumerate(order, start=1):
        clusters.append(
            {
                "id": rank,
                "size_vox": int(sizes[k]),
                "volume_mm3": float(sizes[k] * voxel_volume),
                "centroid_vox": tuple(float(c) for c in centroids[k]),
                "centroid_mm": tuple(float(c) for c in org + centroids[k] * sp),
                "min_jacobian": float(minima[k]),
            }
        )
    return clusters


# --------------------------------------------------------------------------- image comparison


def checkerboard(
    a: np.ndarray, b: np.ndarray, tiles: int | Sequence[int] = 8, normalise: bool = True
) -> np.ndarray:
    """Interleave two images on the same grid in a checkerboard of ``tiles`` tiles per axis.

    Tile ``(i, j[, k])`` shows ``a`` where ``i + j (+ k)`` is even and ``b`` elsewhere. With
    ``normalise`` each image is first mapped to ``[0, 1]`` by its 0.5/99.5 percentiles, so two
    modalities or intensity ranges can be compared; the result is float32.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"checkerboard needs images of the same shape, got {a.shape} and {b.shape}"
        )
    n_tiles = (tiles,) * a.ndim if isinstance(tiles, int) else tuple(tiles)
    if len(n_tiles) != a.ndim or any(t < 1 for t in n_tiles):
        raise ValueError(f"tiles must be a positive count (per axis), got {tiles}")
    if normalise:
        a, b = _unit_range(a), _unit_range(b)
    parity = np.zeros((1,) * a.ndim, dtype=np.int64)
    for axis, (n, t) in enumerate(zip(a.shape, n_tiles, strict=True)):
        size = math.ceil(n / t)
        view = [1] * a.ndim
        view[axis] = n
        parity = parity + (np.arange(n) // size).reshape(view)
    return np.where(parity % 2 == 0, a, b).astype(np.float32)


# --------------------------------------------------------------------------- legend


def heatmap_legend(
    jacobian_limits: Sequence[float] | None = None,
    magnitude_limits: Sequence[float] | None = None,
    folds: bool = False,
    grid: bool = False,
) -> list[str]:
    """What the colours of the shown result layers mean, one short line per layer (the viewer's
    text overlay, which does not wrap): colormap and range (blue < 1 compresses, red > 1
    expands)."""
    lines = []
    if jacobian_limits is not None:
        lo, hi = (float(v) for v in jacobian_limits)
        lines.append(f"Jacobian ({JACOBIAN_COLORMAP}): {lo:.2f} blue, 1 white, {hi:.2f} red")
    if magnitude_limits is not None:
        lo, hi = (float(v) for v in magnitude_limits)
        lines.append(f"displacement ({MAGNITUDE_COLORMAP}): {lo:.1f} to {hi:.1f} mm")
    if folds:
        lines.append("folds: red, Jacobian <= 0")
    if grid:
        lines.append("grid: moving grid lines, pulled back")
    return lines


# --------------------------------------------------------------------------- layer styles


def intensity_limits(
    array: np.ndarray, low: float = 0.5, high: float = 99.5
) -> tuple[float, float]:
    """Contrast limits ``(lo, hi)`` of an image: its ``low``/``high`` percentiles (robust to a
    few hot voxels), widened to ``(min, max + 1)`` when those are equal."""
    array = np.asarray(array)
    lo, hi = np.percentile(array, [low, high]) if array.size else (0.0, 1.0)
    if not hi > lo:
        lo, hi = float(array.min()), float(array.max()) + 1.0
    return float(lo), float(hi)


def magnitude_display(field: np.ndarray) -> tuple[np.ndarray, tuple[float, float], str]:
    """How to show a field's length: ``(array in mm, contrast_limits, colormap name)``.

    The limits run from 0 to the largest displacement (1 mm for a zero field).
    """
    magnitude = displacement_magnitude(field)
    top = float(magnitude.max()) if magnitude.size else 0.0
    return magnitude, (0.0, top if top > 0 else 1.0), MAGNITUDE_COLORMAP


def normalise_axes(displayed_axes: Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """Displayed axes as sorted non-negative indices; the last two axes when None."""
    if displayed_axes is None:
        return tuple(range(ndim))[-2:]
    axes = sorted({int(a) % ndim for a in displayed_axes if -ndim <= int(a) < ndim})
    return tuple(axes) if axes else tuple(range(ndim))[-2:]


def grid_period(shape: Sequence[int], displayed_axes: Sequence[int]) -> int:
    """Grid period in voxels: about 12 cells across the smaller displayed side, at least 5
    (denser grids hide the image underneath)."""
    sides = [shape[a] for a in displayed_axes] or list(shape)
    return max(5, round(min(sides) / 12))


def grid_lines(
    field: np.ndarray, spacing: Sequence[float], displayed_axes: Sequence[int] | None = None
) -> np.ndarray:
    """The viewer's deformation grid: ``(*spatial)`` float32 in [0, 1], lines in the displayed
    plane at :func:`grid_period`, :data:`GRID_WIDTH` wide.

    Args:
        field: ``(D, *spatial)`` displacement in mm (pull-back, fixed grid).
        spacing: voxel size in mm per array axis.
        displayed_axes: array axes shown on screen (default: the last two).
    """
    shape = np.asarray(field).shape[1:]
    axes = normalise_axes(displayed_axes, len(shape))
    return deformation_grid(
        field, spacing, displayed_axes=axes, period_vox=grid_period(shape, axes), width=GRID_WIDTH
    )


__all__ = [
    "FOLD_COLORMAP",
    "GRID_COLORMAP",
    "GRID_WIDTH",
    "HEATMAP_OPACITY",
    "JACOBIAN_COLORMAP",
    "MAGNITUDE_COLORMAP",
    "WARPED_COLORMAP",
    "checkerboard",
    "deformation_grid",
    "displacement_magnitude",
    "fold_clusters",
    "fold_mask",
    "grid_lines",
    "grid_period",
    "heatmap_legend",
    "intensity_limits",
    "jacobian_display",
    "magnitude_display",
    "normalise_axes",
]
