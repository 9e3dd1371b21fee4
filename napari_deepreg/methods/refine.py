"""Test-time refinement of a learned method's field by instance optimisation.

Starting from a network's prediction, a B-spline displacement is optimised on the pair itself
(LNCC + diffusion regulariser, one level, no affine stage: the prediction already holds the
global alignment). Shared by the learned families; the config fields have the same names in
every method (``refine``, ``refine_iterations``, ``refine_regularisation``).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..result import Progress


@dataclass
class RefineSettingsFields:
    """The refinement's fields of a learned method's inference config (a dataclass base: a
    family's config inherits them, so every method names and documents them alike)."""

    refine: bool = field(
        default=False,
        metadata={"help": "Refine the predicted field by instance optimisation (LNCC + "
                  "diffusion, B-spline) on this pair, starting from the prediction: slower, "
                  "often more accurate on pairs unlike the training data."},
    )
    refine_iterations: int = field(
        default=40,
        metadata={"help": "Optimisation steps of the refinement.", "min": 1, "max": 1000},
    )
    refine_regularisation: float = field(
        # 0.3: mean Dice 0.942 on the benchmark's four 2D slice cases (1.0: 0.923, 0.1: 0.944
        # with a rougher field), no folds
        default=0.3,
        metadata={"help": "Diffusion regulariser weight of the refinement (higher: smoother).",
                  "min": 0.0, "max": 1e4},
    )
    refine_control_spacing: float = field(
        default=8.0,
        metadata={"help": "B-spline control point spacing of the refinement, in mm.",
                  "min": 1.0, "max": 100.0},
    )


@dataclass(frozen=True)
class RefineSettings:
    """What the refinement needs from a method's inference config.

    Attributes:
        iterations: optimisation steps.
        regularisation: diffusion regulariser weight (higher: smoother).
        control_spacing: B-spline control point spacing in mm.
    """

    iterations: int
    regularisation: float
    control_spacing: float

    @classmethod
    def of(cls, config: Any) -> RefineSettings:
        """The settings of an inference config with the ``refine_*`` fields."""
        return cls(int(config.refine_iterations), float(config.refine_regularisation),
                   float(config.refine_control_spacing))


def refine_field(
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    field: Tensor,
    settings: RefineSettings,
    device: torch.device | str,
    step_offset: int = 0,
    total: int | None = None,
) -> Generator[Progress, None, tuple[Tensor, dict[str, Any]]]:
    """Refine ``field`` on the pair; yields Progress, returns ``(field, info)``.

    Args:
        fixed, moving: ``(1, 1, *S)`` float images in [0, 1] on one grid.
        spacing: voxel size in mm.
        field: ``(1, D, *S)`` starting displacement in mm (the prediction).
        settings: iterations, regulariser weight, control spacing.
        device: where to optimise.
        step_offset, total: the caller's progress numbering (the refinement's steps are
            reported as ``step_offset + i`` of ``total``).

    Returns:
        The refined ``(1, D, *S)`` field in mm and the optimiser's figures (final loss terms,
        iterations run).
    """
    from .instance_opt import InstanceOptConfig
    from .instance_opt import estimate as optimise

    total = total if total is not None else step_offset + settings.iterations
    config = InstanceOptConfig(
        transform="bspline", similarity="lncc", levels=1,
        iterations=settings.iterations, regularisation=settings.regularisation,
        control_spacing=settings.control_spacing, affine_first=False,
    )
    gen = optimise(fixed, moving, spacing, config, device, initial_field=field)
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            refined = stop.value
            break
        yield Progress(step_offset + p.step, total, f"refining: {p.message}")
    info = {k: v for k, v in refined.info.items() if k != "level_shapes"}
    return refined.field, info


def refine_steps(config: Any) -> int:
    """Progress steps the refinement of ``config`` adds (0 when ``refine`` is off)."""
    return int(config.refine_iterations) if getattr(config, "refine", False) else 0


def maybe_refine(
    config: Any,
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    field: Tensor,
    info: dict[str, Any],
    device: torch.device | str,
    step_offset: int,
    total: int,
) -> Generator[Progress, None, Tensor]:
    """What every learned estimator does after its prediction: refine ``field`` if the config
    asks for it (its figures go to ``info["refinement"]``), else return it as it is.

    Args:
        config: an inference config with the :class:`RefineSettingsFields`.
        fixed, moving: ``(1, 1, *S)`` images in [0, 1] on one grid.
        spacing: voxel size in mm.
        field: ``(1, D, *S)`` predicted displacement in mm (an affine part included).
        info: the estimate's info, updated in place.
        device: where to optimise.
        step_offset, total: the caller's progress numbering.
    """
    if not refine_steps(config):
        return field
    refined, info["refinement"] = yield from refine_field(
        fixed, moving, spacing, field, RefineSettings.of(config), device,
        step_offset=step_offset, total=total,
    )
    return refined


__all__ = ["RefineSettings", "RefineSettingsFields", "maybe_refine", "refine_field",
           "refine_steps"]
