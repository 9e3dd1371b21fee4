"""A volume (or 2D image) with its physical geometry, and checks of user input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


class InputError(ValueError):
    """Bad user input; the message is one sentence a user can act on."""


@dataclass
class Volume:
    """An image or label map on a physical grid.

    Attributes:
        array: ``(z, y, x)`` or ``(y, x)`` values.
        spacing: voxel size in mm per array axis.
        origin: physical position (mm) of voxel 0 per array axis.
        direction: ``(D, D)`` direction cosines in array axis order (identity if None).
        name: a label for messages and layer names.
    """

    array: np.ndarray
    spacing: tuple[float, ...] = ()
    origin: tuple[float, ...] = ()
    direction: np.ndarray | None = None
    name: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        nd = self.array.ndim
        self.spacing = tuple(float(s) for s in self.spacing) if len(self.spacing) else (1.0,) * nd
        self.origin = tuple(float(o) for o in self.origin) if len(self.origin) else (0.0,) * nd
        if self.direction is not None:
            self.direction = np.asarray(self.direction, dtype=float)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def same_grid(self, other: Volume, tol: float = 1e-4) -> bool:
        """True if both sit on the same voxel grid (shape, spacing, origin, direction)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, rtol=tol, atol=tol)
            and np.allclose(self.origin, other.origin, rtol=tol, atol=1e-3)
            and np.allclose(self.direction_matrix(), other.direction_matrix(), atol=tol)
        )

    def direction_matrix(self) -> np.ndarray:
        return np.eye(self.ndim) if self.direction is None else self.direction


def check_image(
    array: np.ndarray, what: str = "image", ndims: Sequence[int] = (2, 3)
) -> np.ndarray:
    """Validate an intensity image and return it as float32.

    Raises InputError for RGB/multichannel or 4D data, wrong dimensionality, NaN/Inf or a constant
    image.
    """
    arr = np.asarray(array)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{what} has unsupported dtype {arr.dtype}; expected a numeric image")
    # (y, x, 3|4) or (z, y, x, 3|4) with a short last axis: colour channels, not a volume
    looks_rgb = arr.ndim >= 3 and arr.shape[-1] in (3, 4) and min(arr.shape[:-1]) >= 16
    if looks_rgb and arr.ndim in (3, 4):
        raise InputError(
            f"{what} looks like an RGB(A) image of shape {arr.shape}; convert it to greyscale first"
        )
    if arr.ndim not in ndims:
        raise InputError(
            f"{what} must be 2D or 3D, got {arr.ndim}D with shape {arr.shape}"
            + ("; pick a single time point or channel first" if arr.ndim == 4 else "")
        )
    if min(arr.shape) < 2:
        raise InputError(f"{what} has a degenerate shape {arr.shape}; every axis needs 2+ voxels")
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        raise InputError(
            f"{what} contains {int((~finite).sum())} NaN/Inf values; fill or mask them first"
        )
    if float(arr.max()) == float(arr.min()):
        raise InputError(f"{what} is constant (all values {float(arr.min())}); nothing to register")
    return arr


def check_labels(array: np.ndarray, shape: Sequence[int], what: str = "labels") -> np.ndarray:
    """Validate a label map against the image shape it belongs to and return it as int32.

    Raises InputError for a shape mismatch, non-integer or negative values.
    """
    arr = np.asarray(array)
    if tuple(arr.shape) != tuple(shape):
        raise InputError(f"{what} have shape {arr.shape} but their image has shape {tuple(shape)}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"{what} contain NaN/Inf values")
        if not np.array_equal(arr, np.round(arr)):
            raise InputError(f"{what} hold non-integer values; a label map must be integer")
    elif arr.dtype.kind not in "biu":
        raise InputError(f"{what} have unsupported dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise InputError(f"{what} hold negative values (min {arr.min()}); labels must be >= 0")
    if arr.size and arr.max() > np.iinfo(np.int32).max:
        raise InputError(f"{what} hold values beyond int32")
    return arr.astype(np.int32)


def check_label_maps(fixed: np.ndarray | None, moving: np.ndarray | None,
                     names: tuple[str, str] = ("fixed labels", "moving labels")) -> None:
    """Refuse label maps (checked by :func:`check_labels`) on which no Dice can be measured.

    One that holds no label at all (every value 0: an empty mask, the wrong file), or two that
    share no label value (numbered differently, e.g. another atlas's table). One shared value
    is enough: a structure missing on one side is a real finding.
    """
    for array, what in zip((fixed, moving), names, strict=True):
        if array is not None and not np.any(array):
            raise InputError(f"{what} hold no label (every value is 0); give the label map of "
                             "this image")
    if fixed is None or moving is None:
        return
    f_values, m_values = (np.unique(a[a != 0]) for a in (fixed, moving))
    if not np.intersect1d(f_values, m_values).size:
        def show(values: np.ndarray) -> str:
            return ", ".join(str(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")

        raise InputError(
            f"{names[0]} ({show(f_values)}) and {names[1]} ({show(m_values)}) share no label "
            "value; both maps must number the same structures alike"
        )
