"""Test-time refinement of a learned method's field by instance optimisation.

Starting from a network's prediction, an affine correction (``refine_affine``: the networks'
global alignment is what fails first on anatomy they never saw) and then a B-spline correction
are optimised on the pair itself (LNCC + diffusion regulariser), the B-spline at half then at
full resolution with early stopping. Shared by the learned
families; the config fields have the same names in every method (``refine``,
``refine_iterations``, ``refine_regularisation``, ``refine_control_spacing``).

Speed on the 3D sample (83x99x81 at 2 mm, one CPU thread, shared machine): the earlier single
full-resolution level of 40 steps took about 10 s for Dice 0.875; 40 half-resolution steps
(stopping at the loss plateau) plus 10 full-resolution ones take about 4 s for 0.874.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..core import (
    affine_to_field,
    bspline_control_shape,
    bspline_to_field,
    compose_affine_field,
    resize,
    resized_spacing,
    warp_image,
)
from ..losses import functional as L
from ..result import Progress
from .instance_opt import affine_stage, level_shapes


@dataclass
class RefineSettingsFields:
    """The refinement's fields of a learned method's inference config (a dataclass base: a
    family's config inherits them, so every method names and documents them alike)."""

    refine: bool = field(
        # on by default: on the 3D sample (2 mm, 83x99x81) it lifts Dice from 0.705
        # (semantic_bspline_3d) / 0.806 (avsm_3d) to 0.874 in about 4 s of one CPU core, and
        # the models alone fall below no registration on anatomy unlike their training data
        default=True,
        metadata={"help": "Refine the predicted field on this pair (B-spline, LNCC + "
                  "diffusion, half then full resolution), starting from the prediction. On by "
                  "default: about 4 s on a CPU for a 2 mm brain, and much more accurate on "
                  "pairs unlike the training data; off gives the network's field alone "
                  "(under 1 s)."},
    )
    refine_iterations: int = field(
        default=40,
        metadata={"help": "Optimisation steps of the refinement at half resolution (a quarter "
                  "as many follow at full resolution; each level stops early when its loss "
                  "levels off).", "min": 1, "max": 1000},
    )
    refine_regularisation: float = field(
        # 0.3: mean Dice 0.942 on the benchmark's four 2D slice cases (1.0: 0.923, 0.1: 0.944
        # with a rougher field), no folds
        default=0.3,
        metadata={"help": "Diffusion regulariser weight of the refinement (higher: smoother).",
                  "min": 0.0, "max": 1e4},
    )
    refine_affine: bool = field(
        # on by default: on held-out label-map pairs with affine motion the networks' global
        # alignment is where they fail (instance_opt without its affine stage fell from 0.688 to
        # 0.530 Dice on one such pair), and a B-spline correction cannot make it up
        default=True,
        metadata={"help": "Start the refinement with an affine correction of the prediction "
                  "(60 steps on a 32-voxel grid in 3D, LNCC): it fixes a global misalignment "
                  "(rotation, scale, shift) the network missed; about 1 s on a CPU."},
    )
    refine_control_spacing: float = field(
        default=8.0,
        metadata={"help": "B-spline control point spacing of the refinement, in mm.",
                  "min": 1.0, "max": 100.0},
    )


#: longest axis (voxels) of the refinement's finest grid, by default
MAX_WORKING_SIZE = 128
#: steps of the affine correction (``refine_affine``), as instance_opt's affine stage
AFFINE_ITERATIONS = 60


@dataclass(frozen=True)
class RefineSettings:
    """What the refinement needs from a method's inference config.

    Attributes:
        iterations: the most optimisation steps of the coarsest level (a quarter as many at
            each finer one, :func:`level_iterations`; a level stops earlier when its loss
            levels off, see ``tolerance``).
        regularisation: diffusion regulariser weight (higher: smoother).
        control_spacing: B-spline control point spacing in mm at the finest level (doubled at
            the coarse level).
        levels: resolution levels, coarse to fine (each halves the grid; 2 by default: the
            coarse level costs an eighth of the fine one and does most of the work).
        max_working_size: longest axis of the finest grid in voxels (larger images are refined
            on a downsampled grid and the correction resampled).
        tolerance: a level stops when its best loss over the last ``patience`` steps improved
            the best before them by less than ``tolerance`` (relative); 0 runs every step.
        patience: steps over which the plateau is judged.
        learning_rate: Adam step size in mm per step.
        lncc_window: LNCC window in voxels of each level.
        affine_iterations: steps of an affine correction before the B-spline levels (0: none;
            :func:`instance_opt.affine_stage` with the prediction as its base).
        affine_learning_rate, similarity: that stage's Adam step size and similarity.
    """

    iterations: int
    regularisation: float
    control_spacing: float
    levels: int = 2
    max_working_size: int = MAX_WORKING_SIZE
    # 1 %: on the 3D sample the coarse level then stops after 27-40 steps with the same Dice;
    # 0.1 % never stopped (Adam keeps lowering the loss by about 1 % per 5 steps for long)
    tolerance: float = 1e-2
    patience: int = 5
    learning_rate: float = 0.5
    lncc_window: int = 7
    affine_iterations: int = 0
    affine_learning_rate: float = 0.01
    similarity: str = "lncc"  # of the affine stage (the B-spline levels use LNCC)

    @classmethod
    def of(cls, config: Any, **overrides: Any) -> RefineSettings:
        """The settings of an inference config with the ``refine_*`` fields."""
        affine = AFFINE_ITERATIONS if getattr(config, "refine_affine", False) else 0
        overrides.setdefault("affine_iterations", affine)
        return cls(int(config.refine_iterations), float(config.refine_regularisation),
                   float(config.refine_control_spacing), **overrides)


def level_iterations(iterations: int, levels: int) -> list[int]:
    """Steps of each level, coarsest first: ``iterations`` at the coarsest level and a quarter
    as many at each finer one (a step there costs about 8 times more in 3D, and the coarse
    level has done most of the work: on the 3D sample 40 + 10 steps reach the Dice of 40 steps
    at full resolution, 0.874 vs 0.875, in 40 % of the time)."""
    return [max(1, iterations // 4**k) for k in range(levels)]


class _Plateau:
    """Tells when a minimisation has levelled off: the best loss of the last ``patience`` steps
    improved the best loss before them by less than ``tolerance`` (relative)."""

    def __init__(self, tolerance: float, patience: int) -> None:
        self.tolerance, self.patience = tolerance, max(1, patience)
        self.losses: list[float] = []

    def update(self, loss: float) -> bool:
        self.losses.append(loss)
        if self.tolerance <= 0 or len(self.losses) <= 2 * self.patience:
            return False
        before = min(self.losses[: -self.patience])
        recent = min(self.losses[-self.patience:])
        return before - recent < self.tolerance * abs(before)


def refine_field(
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    field: Tensor,
    settings: RefineSettings,
    device: torch.device | str,
    step_offset: int = 0,
    total: int | None = None,
    affine_field: Tensor | None = None,
) -> Generator[Progress, None, tuple[Tensor, dict[str, Any]]]:
    """Refine ``field`` on the pair; yields Progress, returns ``(field, info)``.

    A B-spline correction ``c`` is added to the prediction and optimised with Adam on LNCC plus
    a diffusion regulariser, coarse to fine (``settings.levels``; the correction found on one
    level starts the next). Each level stops at its loss plateau. The prediction is resampled
    to each level once; the correction is evaluated from its control grid.

    Args:
        fixed, moving: ``(1, 1, *S)`` float images in [0, 1] on one grid.
        spacing: voxel size in mm.
        field: ``(1, D, *S)`` starting displacement in mm (the prediction).
        settings: iterations, regulariser weight, control spacing, levels, stopping rule.
        device: where to optimise.
        step_offset, total: the caller's progress numbering (the refinement's steps are
            reported as ``step_offset + i`` of ``total``, ``total`` defaulting to
            ``step_offset + levels * iterations``; a level that stops early skips its steps).
        affine_field: ``(1, D, *S)`` mm, the affine part of ``field`` (a model's affine
            stage), or None. The regulariser then sees ``field - affine_field`` only, so the
            refinement does not pull a correct scale or rotation back towards the identity.

    Returns:
        The refined ``(1, D, *S)`` field in mm and the optimiser's figures (final loss terms,
        steps run per level, level shapes, seconds).
    """
    start = time.perf_counter()
    dev = torch.device(device)
    ndim = fixed.ndim - 2
    shape = tuple(fixed.shape[2:])
    if tuple(field.shape) != (1, ndim, *shape):
        raise ValueError(f"field must be {(1, ndim, *shape)}, got {tuple(field.shape)}")
    spacing = tuple(float(s) for s in spacing)
    shapes = level_shapes(shape, settings.levels, settings.max_working_size)
    schedule = level_iterations(settings.iterations, len(shapes))
    total = total if total is not None else (step_offset + settings.affine_iterations
                                              + sum(schedule))
    field = field.to(dev, torch.float32)
    affine_field = None if affine_field is None else affine_field.to(dev, torch.float32)
    pair = torch.cat([fixed, moving], 1).to(dev, torch.float32)
    affine_info: dict[str, Any] = {}
    if settings.affine_iterations:
        # x -> A(x + field(x)): the displacement a + L field, and the affine part a + L affine
        matrix, affine_info["affine_loss"] = yield from affine_stage(
            pair[:, :1], pair[:, 1:], spacing, settings, base=field, step_offset=step_offset,
            total=total)
        step_offset += settings.affine_iterations
        with torch.no_grad():
            a = affine_to_field(matrix, shape, spacing)
            linear = matrix[:ndim, :ndim]
            field = compose_affine_field(a, linear, field)
            affine_field = a if affine_field is None else compose_affine_field(
                a, linear, affine_field)
        affine_info["affine_matrix"] = matrix.cpu().tolist()

    correction: Tensor | None = None  # dense correction of the previous level, mm
    steps: list[int] = []
    sim_value = reg_value = float("nan")
    for level, lshape in enumerate(shapes):
        lspacing = resized_spacing(shape, spacing, lshape)
        with torch.no_grad():
            images = resize(pair, lshape)
            f_l, m_l = images[:, :1], images[:, 1:]
            base = resize(field, lshape)
            if correction is not None:
                base = base + resize(correction, lshape, antialias=False)
            # the regulariser's view of the base: without the affine part (constant gradient)
            reg_base = base if affine_field is None else base - resize(affine_field, lshape)
            moments = L.local_moments(f_l, settings.lncc_window)
        coarse = 2 ** (len(shapes) - 1 - level)
        stride = [max(1, round(settings.control_spacing * coarse / sp)) for sp in lspacing]
        ctrl = base.new_zeros((1, ndim, *bspline_control_shape(lshape, stride)),
                              requires_grad=True)
        opt = torch.optim.Adam([ctrl], lr=settings.learning_rate)
        plateau = _Plateau(settings.tolerance, settings.patience)
        label = "x".join(str(n) for n in lshape)
        done = 0
        n_it = schedule[level]
        for it in range(n_it):
            opt.zero_grad(set_to_none=True)
            inc = bspline_to_field(ctrl, stride, lshape)
            warped = warp_image(m_l, base + inc, lspacing)
            sim = L.lncc(f_l, warped, settings.lncc_window, a_moments=moments)
            reg = L.diffusion(reg_base + inc, lspacing)
            loss = sim + settings.regularisation * reg
            loss.backward()
            opt.step()
            done = it + 1
            sim_value, reg_value = sim.item(), reg.item()
            yield Progress(step_offset + sum(schedule[:level]) + done, total,
                           f"level {level + 1}/{len(shapes)} ({label}) {done}/{n_it}: "
                           f"loss {loss.item():.4f}")
            if plateau.update(loss.item()):
                break
        steps.append(done)
        with torch.no_grad():
            inc = bspline_to_field(ctrl.detach(), stride, lshape)
            correction = base - resize(field, lshape) + inc
    with torch.no_grad():
        refined = field + resize(correction, shape, antialias=False)
    info = {**affine_info, "final_similarity": sim_value, "final_regulariser": reg_value,
            "iterations": sum(steps), "steps_per_level": steps,
            "level_shapes": [list(s) for s in shapes],
            "seconds": round(time.perf_counter() - start, 3)}
    return refined, info


def refine_steps(config: Any) -> int:
    """Progress steps the refinement of ``config`` adds at most (0 when ``refine`` is off)."""
    if not getattr(config, "refine", False):
        return 0
    settings = RefineSettings.of(config)
    return settings.affine_iterations + sum(level_iterations(settings.iterations,
                                                             settings.levels))


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
    affine_field: Tensor | None = None,
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
        affine_field: ``(1, D, *S)`` mm, the affine part of ``field``, or None (see
            :func:`refine_field`).
    """
    if not refine_steps(config):
        return field
    refined, info["refinement"] = yield from refine_field(
        fixed, moving, spacing, field, RefineSettings.of(config), device,
        step_offset=step_offset, total=total, affine_field=affine_field,
    )
    return refined


def refined_affine(info: dict[str, Any], matrix: Tensor | None = None) -> Tensor | None:
    """The global affine of a refined estimate, grid frame: the refinement's affine correction
    ``A`` (``info["refinement"]["affine_matrix"]``) after the model's ``matrix`` (``A @ M``), or
    ``matrix`` as it is when there was no correction."""
    correction = info.get("refinement", {}).get("affine_matrix")
    if correction is None:
        return matrix
    a = torch.tensor(correction, dtype=torch.float32)
    return a if matrix is None else a @ matrix.detach().float().cpu()


__all__ = ["RefineSettings", "RefineSettingsFields", "maybe_refine", "refine_field",
           "refine_steps", "refined_affine"]
