"""Anatomical planes in radiological orientation, from a grid's direction cosines.

The package's physical frame is ITK's LPS in array axis order: physical axis 0 points to the
patient's Superior, 1 to Posterior, 2 to Left (in 2D: 0 Posterior, 1 Left). An array is first
brought to that frame (:class:`Canonical`: axes permuted to the nearest physical axis and flipped
so that indices grow toward S, P and L), then cut into the three planes shown the radiological
way:

* axial: anterior up, the patient's right on the image's left;
* coronal: superior up, the patient's right on the image's left;
* sagittal: superior up, anterior on the left.

An oblique direction is rounded to the nearest axes (the planes are then approximate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# per plane (3D): the canonical axis it cuts, and the letters at (top, bottom, left, right)
PLANES_3D = {
    "axial": (0, ("A", "P", "R", "L")),
    "coronal": (1, ("S", "I", "R", "L")),
    "sagittal": (2, ("S", "I", "A", "P")),
}
LETTERS_2D = ("A", "P", "R", "L")
ORIENTATION_NOTE_2D = "radiological orientation: anterior up, patient's right on the image's left"
ORIENTATION_NOTE = (
    "radiological orientation: patient's right on the image's left; axial anterior up, "
    "coronal and sagittal superior up, sagittal anterior left"
)


@dataclass(frozen=True)
class Canonical:
    """How to bring an array of a grid to S/P/L order (3D) or P/L (2D).

    Attributes:
        order: array axis that becomes canonical axis ``k`` (``np.transpose`` order).
        flip: per canonical axis, True where the array axis ran against it.
        spacing: voxel size per canonical axis (mm).
        shape: the canonical array's shape.
    """

    order: tuple[int, ...]
    flip: tuple[bool, ...]
    spacing: tuple[float, ...]
    shape: tuple[int, ...]

    @classmethod
    def of(cls, shape: Sequence[int], spacing: Sequence[float],
           direction: np.ndarray | None) -> Canonical:
        ndim = len(shape)
        d = np.eye(ndim) if direction is None else np.asarray(direction, dtype=float)
        order: list[int] = [-1] * ndim
        flip: list[bool] = [False] * ndim
        free = list(range(ndim))
        # assign the most clearly aligned array axes first, so an oblique one takes the rest
        for j in sorted(range(ndim), key=lambda j: -np.max(np.abs(d[:, j]))):
            p = max(free, key=lambda p: abs(d[p, j]))
            free.remove(p)
            order[p] = j
            flip[p] = bool(d[p, j] < 0)
        return cls(tuple(order), tuple(flip), tuple(float(spacing[j]) for j in order),
                   tuple(int(shape[j]) for j in order))

    def array(self, array: np.ndarray) -> np.ndarray:
        """``array`` (array axis order) in canonical order, indices growing toward S, P, L."""
        out = np.transpose(np.asarray(array), self.order)
        for axis, flipped in enumerate(self.flip):
            if flipped:
                out = np.flip(out, axis)
        return out

    def index(self, index: Sequence[float]) -> tuple[float, ...]:
        """A voxel index (array axis order) as a canonical index."""
        out = []
        for axis, (j, flipped) in enumerate(zip(self.order, self.flip, strict=True)):
            value = float(index[j])
            out.append(self.shape[axis] - 1 - value if flipped else value)
        return tuple(out)


def plane(canonical: np.ndarray, name: str, index: int | None = None) -> np.ndarray:
    """The 2D image of plane ``name`` (``axial``, ``coronal``, ``sagittal``; ``image`` for 2D)
    through canonical ``index`` (the middle by default), rows top to bottom as displayed."""
    if name == "image":
        return np.asarray(canonical)
    axis = PLANES_3D[name][0]
    i = canonical.shape[axis] // 2 if index is None else int(index)
    cut = np.take(canonical, int(np.clip(i, 0, canonical.shape[axis] - 1)), axis=axis)
    # axial rows run anterior -> posterior already; the others run inferior -> superior
    return cut if name == "axial" else cut[::-1]


def plane_point(canonical_index: Sequence[float], shape: Sequence[int],
                name: str) -> tuple[float, float, float]:
    """Where a canonical index falls in plane ``name``: ``(row, column, distance)`` (distance in
    voxels from the plane's cut axis index; 0 for 2D)."""
    if name == "image":
        return float(canonical_index[0]), float(canonical_index[1]), 0.0
    axis = PLANES_3D[name][0]
    rest = [a for a in range(3) if a != axis]
    row, col = float(canonical_index[rest[0]]), float(canonical_index[rest[1]])
    if name != "axial":
        row = shape[rest[0]] - 1 - row
    return row, col, float(canonical_index[axis])


def plane_aspect(spacing: Sequence[float], name: str) -> float:
    """Row/column pixel aspect (mm per row / mm per column) of plane ``name``."""
    if name == "image":
        return float(spacing[0]) / float(spacing[1])
    axis = PLANES_3D[name][0]
    rest = [spacing[a] for a in range(3) if a != axis]
    return float(rest[0]) / float(rest[1])


def plane_letters(name: str) -> tuple[str, str, str, str]:
    """The anatomical letters at the (top, bottom, left, right) edges of plane ``name``."""
    return LETTERS_2D if name == "image" else PLANES_3D[name][1]


__all__ = [
    "ORIENTATION_NOTE",
    "ORIENTATION_NOTE_2D",
    "PLANES_3D",
    "Canonical",
    "plane",
    "plane_aspect",
    "plane_letters",
    "plane_point",
]
