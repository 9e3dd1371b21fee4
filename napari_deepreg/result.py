"""What a registration produces and passes around: progress reports, the grid, the result.

Pipeline, io, qa and the napari adapter all read these types; this module imports nothing from
``methods`` (nor from anything that does), so every layer of the package may use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Progress:
    """One progress report: ``step`` out of ``total`` with a short human-readable message."""

    step: int
    total: int
    message: str = ""


@dataclass(frozen=True, eq=False)
class Grid:
    """A voxel grid in physical space, in array axis order ``(z, y, x)`` / ``(y, x)``.

    Attributes:
        shape: voxels per axis.
        spacing: voxel size in mm per axis.
        origin: physical position (mm) of voxel 0 per axis.
        direction: ``(D, D)`` direction cosines (column ``j`` is the physical direction of array
            axis ``j``), or None for the identity.

    The physical position of index ``i`` is ``origin + direction @ (spacing * i)``.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        if self.direction is not None:
            object.__setattr__(self, "direction", np.asarray(self.direction, dtype=float))
        if not (len(self.shape) == len(self.spacing) == len(self.origin)):
            raise ValueError(
                f"grid shape {self.shape}, spacing {self.spacing} and origin {self.origin} "
                "must have one value per axis"
            )

    @classmethod
    def of(cls, volume: Any) -> Grid:
        """The grid of a :class:`~napari_deepreg.volume.Volume` (or anything with those fields)."""
        return cls(
            tuple(volume.array.shape), tuple(volume.spacing), tuple(volume.origin),
            getattr(volume, "direction", None),
        )

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def direction_matrix(self) -> np.ndarray:
        """``(D, D)`` direction cosines (the identity when none was given)."""
        return np.eye(self.ndim) if self.direction is None else self.direction

    def index_to_physical(self) -> np.ndarray:
        """``(D+1, D+1)`` homogeneous matrix from array index to physical mm (array axis order)."""
        mat = np.eye(self.ndim + 1)
        mat[: self.ndim, : self.ndim] = self.direction_matrix() * np.asarray(self.spacing)
        mat[: self.ndim, self.ndim] = self.origin
        return mat

    def layer_metadata(self) -> dict[str, Any]:
        """What a napari layer needs beyond ``scale``/``translate`` to be saved with this grid."""
        return {} if self.direction is None else {"direction": self.direction_matrix().tolist()}


@dataclass
class RegistrationResult:
    """Everything a registration run produced, as numpy arrays on the fixed image's grid.

    Attributes:
        warped: moving image warped into the fixed grid, ``(*spatial)``.
        warped_labels: moving labels warped with the same field, or None.
        field: ``(D, *spatial)`` displacement in mm along the array axes (pull-back).
        jacobian: ``(*spatial)`` determinant of the Jacobian of ``x + u(x)``.
        grid: the fixed image's grid (shape, spacing, origin, direction).
        affine: ``(D+1, D+1)`` physical affine of the method's affine stage, or None.
        metrics: figures such as ``dice_before``, ``dice_after``, ``fold_percent``, ``sdlogj``.
        label_metrics: per-label rows ``{"label": int, "dice_before": ..., "dice_after": ...}``.
        runtime: seconds spent in the method (wall clock).
        method, model: method id and zoo model id (None for optimisation methods).
        parameters: the config the method ran with, as a dict.
        notes: messages for the user (input resampled, direction matrix ignored...).
        label_names: ``{label: name}`` for the label rows of tables and reports (read from the
            lookup table beside the label file, a layer's features or the sample's
            ``labels.csv``); empty when the labels have no names.
        timings: where the run's wall clock went, seconds per phase in the order they ran
            (``prepare``, ``normalise``, ``method``, ``guard``, ``warp``, ``metrics``; a front
            end adds its own, e.g. the widget's ``worker start`` and ``layers``).
    """

    warped: np.ndarray
    warped_labels: np.ndarray | None
    field: np.ndarray
    jacobian: np.ndarray
    grid: Grid
    affine: np.ndarray | None
    metrics: dict[str, float | str]  # figures; "guard_returned" is the guard's candidate name
    label_metrics: list[dict[str, float]]
    runtime: float
    method: str
    model: str | None
    parameters: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    label_names: dict[int, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def spacing(self) -> tuple[float, ...]:
        return self.grid.spacing

    @property
    def origin(self) -> tuple[float, ...]:
        return self.grid.origin

    @property
    def direction(self) -> np.ndarray | None:
        return self.grid.direction


__all__ = ["Grid", "Progress", "RegistrationResult"]
