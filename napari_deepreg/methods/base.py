"""What every registration method provides, and the records it exchanges with the pipeline."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from torch import Tensor


@dataclass(frozen=True)
class Progress:
    """One progress report: ``step`` out of ``total`` with a short human-readable message."""

    step: int
    total: int
    message: str = ""


@dataclass
class Estimate:
    """What a method returns: a displacement field on the grid it was given.

    ``field`` is ``(1, D, *spatial)`` in mm (pull-back: ``warped(x) = moving(x + u(x))``);
    ``affine`` is the ``(D+1, D+1)`` physical matrix of an affine stage already included in
    ``field``, or None, in the grid frame ``x = index * spacing`` (voxel 0 at 0 mm; the pipeline
    moves it to the image's origin); ``info`` carries method-specific figures (final loss,
    iterations...).
    """

    field: Tensor
    affine: Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)


# A method's estimator: (fixed, moving, spacing, config, device) -> generator of Progress that
# returns an Estimate. fixed and moving are (1, 1, *spatial) float32 tensors on ``device``,
# intensity-normalised to [0, 1], with moving already resampled onto the fixed grid.
Estimator = Callable[..., Generator[Progress, None, Estimate]]


@dataclass(frozen=True)
class MethodSpec:
    """A registration method as the pipeline, the CLI and the widget see it."""

    id: str
    title: str
    config_class: type
    estimate: Estimator
    dims: tuple[int, ...] = (2, 3)
    description: str = ""
    model_id: str | None = None

    def default_config(self) -> Any:
        return self.config_class()

    def make_config(self, **overrides: Any) -> Any:
        """Config with ``overrides`` applied; unknown names raise a ValueError naming valid ones."""
        names = {f.name for f in fields(self.config_class)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for method {self.id!r}; valid: {sorted(names)}"
            )
        return self.config_class(**overrides)


@dataclass
class RegistrationResult:
    """Everything a registration run produced, as numpy arrays on the fixed image's grid.

    Attributes:
        warped: moving image warped into the fixed grid, ``(*spatial)``.
        warped_labels: moving labels warped with the same field, or None.
        field: ``(D, *spatial)`` displacement in mm along the array axes (pull-back).
        jacobian: ``(*spatial)`` determinant of the Jacobian of ``x + u(x)``.
        spacing, origin: fixed grid geometry in mm (array axis order).
        affine: ``(D+1, D+1)`` physical affine of the method's affine stage, or None.
        metrics: figures such as ``dice_before``, ``dice_after``, ``fold_percent``, ``sdlogj``.
        label_metrics: per-label rows ``{"label": int, "dice_before": ..., "dice_after": ...}``.
        runtime: seconds spent in the method (wall clock).
        method, model: method id and zoo model id (None for optimisation methods).
        parameters: the config the method ran with, as a dict.
        notes: messages for the user (input resampled, direction matrix ignored...).
    """

    warped: np.ndarray
    warped_labels: np.ndarray | None
    field: np.ndarray
    jacobian: np.ndarray
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    affine: np.ndarray | None
    metrics: dict[str, float]
    label_metrics: list[dict[str, float]]
    runtime: float
    method: str
    model: str | None
    parameters: dict[str, Any]
    notes: list[str] = field(default_factory=list)
