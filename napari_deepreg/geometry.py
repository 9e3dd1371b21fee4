"""Checks of an image's physical geometry (spacing, origin, direction): the one place they live.

The reader (``io.read_volume``), the conversion to SimpleITK (``io.to_sitk``) and the pipeline
(``pipeline.prepare``) call :func:`check_geometry`, so a zero or NaN spacing, a NaN origin or a
singular direction matrix is refused with one sentence wherever it comes from (a file header, a
napari layer's scale, a script's ``Volume``) instead of being repaired to 1.0 / 0 by a library or
ending in an ITK traceback or an all-NaN field.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .volume import InputError, Volume

# how far a direction matrix may be from orthonormal (ITK itself allows about 1e-6 relative; files
# written in single precision come back with ~1e-7 errors, hand-edited headers with rounding)
ORTHONORMAL_TOL = 1e-3
# physical coordinates beyond a kilometre are not medical images: they are corrupt headers, and
# their squares overflow the distance maths (a landmark at 1e308 mm gives an infinite TRE)
MAX_COORDINATE_MM = 1e6


def _numbers(values: Sequence[float] | np.ndarray, name: str, what: str, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{what} has a non-numeric {name} {values!r}") from None
    if arr.size != ndim:
        raise InputError(f"{what} is {ndim}D but its {name} has {arr.size} values: {values!r}")
    return arr


def check_geometry(
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: np.ndarray | None,
    ndim: int,
    what: str = "image",
) -> None:
    """Refuse a geometry no image can have.

    Args:
        spacing: voxel size per array axis in mm: finite and > 0.
        origin: physical position of voxel 0 in mm: finite, within +-1e6 mm.
        direction: ``(D, D)`` direction cosines, or None (identity): finite, orthonormal (columns
            of unit length at right angles, so a singular matrix is refused too).
        ndim: the image's number of axes.
        what: how messages name the image.

    Raises:
        InputError: one sentence naming the bad value.
    """
    sp = _numbers(spacing, "spacing", what, ndim)
    if not np.isfinite(sp).all() or (sp <= 0).any():
        raise InputError(
            f"{what} has spacing {tuple(float(s) for s in sp)} mm; every voxel size must be a "
            "finite number above 0 (fix the file header or the layer's scale)"
        )
    org = _numbers(origin, "origin", what, ndim)
    if not np.isfinite(org).all() or (np.abs(org) > MAX_COORDINATE_MM).any():
        raise InputError(
            f"{what} has origin {tuple(float(o) for o in org)} mm; it must be finite and within "
            f"{MAX_COORDINATE_MM:g} mm (fix the file header or the layer's translate)"
        )
    if direction is None:
        return
    d = np.asarray(direction, dtype=float)
    if d.shape != (ndim, ndim):
        raise InputError(f"{what} has a direction matrix of shape {d.shape}, expected "
                         f"{(ndim, ndim)}")
    if not np.isfinite(d).all():
        raise InputError(f"{what} has NaN/Inf in its direction matrix; fix the file header")
    if not np.allclose(d.T @ d, np.eye(ndim), atol=ORTHONORMAL_TOL):
        kind = "singular" if abs(np.linalg.det(d)) < ORTHONORMAL_TOL else "not orthonormal"
        raise InputError(
            f"{what} has a direction matrix that is {kind} ({d.round(4).tolist()}); its axes "
            "must be unit vectors at right angles (fix the file header)"
        )


def check_volume_geometry(volume: Volume, what: str = "image") -> None:
    """:func:`check_geometry` of a :class:`Volume`."""
    check_geometry(volume.spacing, volume.origin, volume.direction, volume.ndim, what)


def physical_bounds(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` corners (mm, array axis order) of the box holding ``volume``'s voxels.

    Voxel centres ``origin + direction @ (index * spacing)``, widened by half a voxel, so that
    two images touching edge to edge count as overlapping.
    """
    shape = np.asarray(volume.shape, dtype=float)
    spacing = np.asarray(volume.spacing, dtype=float)
    corners = np.array(np.meshgrid(*[[-0.5, n - 0.5] for n in shape], indexing="ij"))
    corners = corners.reshape(volume.ndim, -1) * spacing[:, None]
    points = volume.direction_matrix() @ corners + np.asarray(volume.origin, dtype=float)[:, None]
    return points.min(axis=1), points.max(axis=1)


def check_overlap(fixed: Volume, moving: Volume,
                  names: tuple[str, str] = ("fixed", "moving"), kind: str = "images") -> None:
    """Refuse a pair whose physical extents (bounding boxes) do not meet.

    Resampling such a moving image onto the fixed grid gives a constant image: nothing to
    register, and every method would return noise or NaN (a field resampled so gives no
    displacement at all).
    """
    f_low, f_high = physical_bounds(fixed)
    m_low, m_high = physical_bounds(moving)
    if (m_low > f_high).any() or (m_high < f_low).any():
        def box(low: np.ndarray, high: np.ndarray) -> str:
            return " x ".join(f"[{a:.4g}, {b:.4g}]" for a, b in zip(low, high, strict=True))

        raise InputError(
            f"{names[0]} and {names[1]} {kind} do not overlap in physical space ({names[0]} "
            f"{box(f_low, f_high)} mm, {names[1]} {box(m_low, m_high)} mm); check their origins"
            + (", or reset both to 0 to register them by their voxel grids"
               if kind == "images" else "")
        )


def shared_fraction(fixed: Volume, moving: Volume, max_points: int = 32**3) -> float:
    """Fraction of the fixed grid's voxels whose centres fall inside the moving image's voxels
    (estimated on a regular subsample of at most about ``max_points`` fixed voxels)."""
    step = max(1, int(np.ceil((np.prod(fixed.shape) / max_points) ** (1 / fixed.ndim))))
    axes = [np.arange(0, n, step, dtype=float) for n in fixed.shape]
    index = np.array(np.meshgrid(*axes, indexing="ij")).reshape(fixed.ndim, -1)
    spacing_f = np.asarray(fixed.spacing, dtype=float)[:, None]
    world = fixed.direction_matrix() @ (index * spacing_f) + np.asarray(fixed.origin)[:, None]
    rel = moving.direction_matrix().T @ (world - np.asarray(moving.origin, dtype=float)[:, None])
    m_index = rel / np.asarray(moving.spacing, dtype=float)[:, None]
    shape = np.asarray(moving.shape, dtype=float)[:, None]
    inside = ((m_index >= -0.5) & (m_index <= shape - 0.5)).all(axis=0)
    return float(inside.mean())


def check_shared_field_of_view(fixed: Volume, moving: Volume, minimum: float = 0.01) -> None:
    """Refuse a pair whose boxes meet but share less than ``minimum`` of the fixed field of
    view: on the fixed grid the moving image is (nearly) empty, typically because one header
    lost or changed its direction or origin, and every method would return noise or NaN."""
    fraction = shared_fraction(fixed, moving)
    if fraction < minimum:
        raise InputError(
            f"only {100 * fraction:.2g} % of the fixed image's field of view lies inside the "
            "moving image, so the moving image's content is outside the fixed image's field of "
            "view; check both images' origin and direction (orientation), or reset both to "
            "register them by their voxel grids"
        )


def check_same_grid(volume: Volume, reference: Volume, what: str, reference_what: str,
                    hint: str = "") -> None:
    """Refuse ``volume`` unless it lies on ``reference``'s voxel grid (shape, spacing, origin,
    direction): for comparisons made voxel by voxel."""
    if not volume.same_grid(reference):
        def grid(v: Volume) -> str:
            return (f"{'x'.join(str(n) for n in v.shape)} at {_mm(v.spacing)} mm spacing, "
                    f"origin {_mm(v.origin)}")

        raise InputError(f"{what} lie on another grid than the {reference_what} ({grid(volume)}"
                         f" vs {grid(reference)}){'; ' + hint if hint else ''}")


def _mm(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"


def check_points_range(points: np.ndarray, what: str) -> None:
    """Refuse landmark coordinates beyond +-1e6 mm (corrupt files; their distances overflow)."""
    if points.size and float(np.abs(points).max()) > MAX_COORDINATE_MM:
        raise InputError(
            f"{what} hold a coordinate of {float(np.abs(points).max()):.3g} mm, beyond "
            f"{MAX_COORDINATE_MM:g} mm; landmarks must be physical positions in mm"
        )


__all__ = ["MAX_COORDINATE_MM", "check_geometry", "check_overlap", "check_points_range",
           "check_same_grid", "check_shared_field_of_view", "check_volume_geometry",
           "physical_bounds", "shared_fraction"]
