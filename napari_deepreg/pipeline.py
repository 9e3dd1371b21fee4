"""The registration pipeline shared by the widget, the CLI, the benchmark and the tests.

``prepare`` checks the input and brings the moving image onto the fixed grid, once: the input
checks live there (and in ``volume.check_image`` / ``check_labels``) and nowhere else.
``register`` prepares, then ``register_prepared`` normalises intensities, runs the chosen
method's estimator (a generator of :class:`Progress`), warps the original moving image and labels
once at native resolution and measures the result. A caller that wants to report bad input before
starting a worker (the widget) calls ``prepare`` itself and hands its result to
``register_prepared``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from . import guard as _guard
from . import metrics as _metrics
from .core import jacobian_determinant, warp_image, warp_labels
from .core.affine import shift_origin
from .core.device import resolve_device
from .core.stats import unit_range
from .geometry import (
    check_overlap,
    check_points_range,
    check_shared_field_of_view,
    check_volume_geometry,
)
from .memory import check_finite_field, check_memory
from .methods import get_method
from .result import Grid, Progress, RegistrationResult
from .volume import InputError, Volume, check_image, check_label_maps, check_labels

T = TypeVar("T")


class _Clock:
    """Lap times of a run's phases: ``lap(name)`` books the seconds since the previous lap."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now


def run_to_end(gen: Generator[Any, None, T]) -> T:
    """Drive a generator to its end and return its return value (for scripts and tests)."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def normalise_intensity(array: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Map the ``[low, high]`` percentiles of ``array`` to ``[0, 1]`` and clip (float32)."""
    return unit_range(array, low, high)


def _affine_in_world(affine: torch.Tensor, origin: tuple[float, ...]) -> np.ndarray:
    """A method's affine (grid frame, voxel 0 at 0 mm) in the image's frame (voxel 0 at origin)."""
    return shift_origin(affine.detach().cpu().double(), origin).numpy()


def _is_signed_permutation(direction: np.ndarray, tol: float = 1e-4) -> bool:
    """True for axis-aligned directions (identity up to axis flips and swaps)."""
    d = np.abs(np.asarray(direction))
    return bool(np.allclose(d.max(0), 1, atol=tol) and np.allclose(d.sum(0), 1, atol=tol))


def _device(device: str | torch.device | None) -> torch.device:
    """``device`` resolved, an unknown or unavailable one refused as bad input."""
    if device is not None and not isinstance(device, (str, torch.device)):
        raise InputError(f"device must be a name such as 'auto', 'cpu' or 'cuda', got {device!r}")
    try:
        return resolve_device(device)
    except ValueError as error:
        raise InputError(str(error)) from None


def _as_volume(data: Volume | np.ndarray | None, name: str) -> Volume | None:
    if data is None or isinstance(data, Volume):
        return data
    return Volume(np.asarray(data), name=name)


def _checked_labels(
    labels: Volume | np.ndarray | None, image: Volume, other: Volume, what: str,
    notes: list[str],
) -> Volume | None:
    """``labels`` checked against ``image`` (shape, integer, >= 0), int32 on its grid.

    Labels take their image's geometry (a label file or layer saved without one is common); when
    they carried another one, a sentence saying so is appended to ``notes``.
    """
    given_array = not isinstance(labels, Volume)
    labels = _as_volume(labels, what)
    if labels is None:
        return None
    if labels.shape != image.shape:
        hint = (
            " (they match the other image: fixed and moving labels swapped?)"
            if (labels.shape == other.shape)
            else ""
        )
        raise InputError(
            f"{what} have shape {labels.shape} but the {what.split()[0]} image has shape "
            f"{image.shape}{hint}"
        )
    array = check_labels(labels.array, image.shape, what)
    on_grid = dataclasses.replace(
        labels, array=array, spacing=image.spacing, origin=image.origin, direction=image.direction
    )
    if not given_array and not labels.same_grid(on_grid):
        notes.append(
            f"{what} carry another geometry than their image; they are taken on the "
            f"{what.split()[0]} image's grid"
        )
    return on_grid


def _checked_points(points: np.ndarray | None, ndim: int, what: str) -> np.ndarray | None:
    """``(K, ndim)`` finite float64 points, or None for no (or zero) points."""
    if points is None:
        return None
    pts = np.asarray(points, dtype=float)
    if pts.size == 0:
        return None
    if pts.ndim != 2 or pts.shape[1] != ndim:
        raise InputError(f"{what} must be (K, {ndim}) physical coordinates, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise InputError(f"{what} contain NaN/Inf coordinates")
    check_points_range(pts, what)
    return pts


def _check_dims(ndim: int, ndims: Sequence[int], method: str | None) -> None:
    if ndim not in ndims:
        who = f"method {method!r}" if method else "the method"
        raise InputError(f"{who} supports {'/'.join(f'{d}D' for d in ndims)} images, not "
                         f"{ndim}D: pick a method marked [{ndim}D] (instance_opt takes both)")


@dataclass(frozen=True, eq=False)
class PreparedInputs:
    """Registration input, checked once and brought onto the fixed image's grid.

    Attributes:
        fixed: the fixed image, float32; its grid (shape, spacing, origin, direction) is the
            grid of every result.
        moving: the moving image, float32, on the fixed grid (resampled if it was elsewhere).
        fixed_labels, moving_labels: int32 label maps on the fixed grid, or None.
        fixed_points, moving_points: ``(K, D)`` corresponding landmarks in physical mm (array
            axis order), or None.
        notes: sentences for the user (what was resampled, what is ignored).
    """

    fixed: Volume
    moving: Volume
    fixed_labels: Volume | None = None
    moving_labels: Volume | None = None
    fixed_points: np.ndarray | None = None
    moving_points: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    @property
    def ndim(self) -> int:
        return self.fixed.ndim

    @property
    def grid(self) -> Grid:
        return Grid.of(self.fixed)


def prepare(
    fixed: Volume | np.ndarray | None,
    moving: Volume | np.ndarray | None,
    fixed_labels: Volume | np.ndarray | None = None,
    moving_labels: Volume | np.ndarray | None = None,
    fixed_points: np.ndarray | None = None,
    moving_points: np.ndarray | None = None,
    ndims: Sequence[int] = (2, 3),
    method: str | None = None,
) -> PreparedInputs:
    """Check registration input and bring it onto the fixed grid; the one place that does so.

    Args:
        fixed, moving: 2D / 3D images with geometry (a bare array means 1 mm spacing, origin 0).
        fixed_labels, moving_labels: optional integer label maps, each of its image's shape (they
            take their image's geometry).
        fixed_points, moving_points: optional corresponding landmarks, ``(K, D)`` physical mm in
            array axis order; both or neither, with the same K.
        ndims: the dimensionalities the chosen method supports.
        method: the method's name, for the message when ``ndims`` rules the images out.

    Returns:
        :class:`PreparedInputs`; the moving image and labels are resampled onto the fixed grid
        (through physical space) when their grid differs, with a note saying so. The inputs are
        never modified.

    Raises:
        InputError: for input a user has to fix (missing image, shapes, 2D vs 3D, NaN, constant
            images, RGB / 4D, bad labels or points).
    """
    fixed_v = _as_volume(fixed, "fixed")
    moving_v = _as_volume(moving, "moving")
    if fixed_v is None or moving_v is None:
        raise InputError("both a fixed and a moving image are needed")
    fixed_v = dataclasses.replace(fixed_v, array=check_image(fixed_v.array, "fixed image"))
    moving_v = dataclasses.replace(moving_v, array=check_image(moving_v.array, "moving image"))
    if fixed_v.ndim != moving_v.ndim:
        raise InputError(
            f"fixed image is {fixed_v.ndim}D but moving image is {moving_v.ndim}D; "
            "both must be 2D or both 3D"
        )
    check_volume_geometry(fixed_v, "fixed image")
    check_volume_geometry(moving_v, "moving image")
    check_overlap(fixed_v, moving_v)
    check_shared_field_of_view(fixed_v, moving_v)
    ndim = fixed_v.ndim
    _check_dims(ndim, ndims, method)
    notes: list[str] = []
    f_labels = _checked_labels(fixed_labels, fixed_v, moving_v, "fixed labels", notes)
    m_labels = _checked_labels(moving_labels, moving_v, fixed_v, "moving labels", notes)
    check_label_maps(*(None if v is None else v.array for v in (f_labels, m_labels)))
    f_points = _checked_points(fixed_points, ndim, "fixed points")
    m_points = _checked_points(moving_points, ndim, "moving points")
    if (f_points is None) != (m_points is None) or (
        f_points is not None and len(f_points) != len(m_points)
    ):
        raise InputError("fixed and moving points must both be given, with the same count")

    if not fixed_v.same_grid(moving_v):
        from .io import describe_grid, resample_to_grid

        notes.append(
            f"moving image resampled onto the fixed grid ({describe_grid(moving_v)} -> "
            f"{describe_grid(fixed_v)})"
        )
        moving_v = resample_to_grid(moving_v, fixed_v)
        if m_labels is not None:
            m_labels = resample_to_grid(m_labels, fixed_v, labels=True)
    if fixed_v.direction is not None and not _is_signed_permutation(fixed_v.direction):
        notes.append(
            "fixed image axes are oblique (rotated direction matrix): registration runs along "
            "its array axes; saved outputs keep its geometry"
        )
    return PreparedInputs(fixed_v, moving_v, f_labels, m_labels, f_points, m_points, tuple(notes))


def register(
    fixed: Volume | np.ndarray,
    moving: Volume | np.ndarray,
    method: str = "instance_opt",
    config: Any = None,
    fixed_labels: Volume | np.ndarray | None = None,
    moving_labels: Volume | np.ndarray | None = None,
    fixed_points: np.ndarray | None = None,
    moving_points: np.ndarray | None = None,
    device: str | torch.device = "auto",
    hausdorff: bool = True,
    guard: bool = True,
) -> Generator[Progress, None, RegistrationResult]:
    """Register ``moving`` to ``fixed``; a generator of Progress returning a RegistrationResult.

    :func:`prepare` then :func:`register_prepared`.

    Args:
        fixed, moving: images with geometry (a bare array means 1 mm spacing, origin 0).
        method: a method id (``napari_deepreg.methods.available_methods()``).
        config: the method's config dataclass, a dict of overrides, or None for defaults.
        fixed_labels, moving_labels: optional integer label maps on their image's grid.
        fixed_points, moving_points: optional corresponding landmarks, ``(K, D)`` physical mm in
            array axis order, for TRE.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
        hausdorff: also compute HD95/ASSD (slower on big label maps).
        guard: check the result against no registration (and the method's affine alone) and
            return the better one with a note (:mod:`napari_deepreg.guard`); False keeps the
            method's result whatever it is.

    Raises:
        InputError: for input a user has to fix (shapes, NaN, constant images, bad labels).
    """
    spec = get_method(method)
    cfg = spec.make_config(config)  # a bad parameter is reported before any work is done
    # no progress before the checks: bad input fails before anything was reported as started
    start = time.perf_counter()
    inputs = prepare(fixed, moving, fixed_labels, moving_labels, fixed_points, moving_points,
                     ndims=spec.dims, method=spec.id)
    prepared = time.perf_counter() - start
    result = yield from register_prepared(inputs, spec.id, cfg, device, hausdorff, guard)
    result.timings = {"prepare": prepared, **result.timings}
    return result


def register_prepared(
    inputs: PreparedInputs,
    method: str = "instance_opt",
    config: Any = None,
    device: str | torch.device = "auto",
    hausdorff: bool = True,
    guard: bool = True,
) -> Generator[Progress, None, RegistrationResult]:
    """Register input already checked by :func:`prepare` (e.g. on the GUI thread).

    Normalises intensities, runs the method's estimator, warps the moving image and labels once
    at native resolution on the fixed grid and measures the result; see :func:`register`.
    """
    spec = get_method(method)
    _check_dims(inputs.ndim, spec.dims, spec.id)  # prepared for another method?
    cfg = spec.make_config(config)
    if spec.check is not None:
        spec.check(cfg, inputs.ndim)  # e.g. a similarity that has no 3D form
    dev = _device(device)
    check_memory(inputs.fixed.shape, inputs.fixed.spacing, cfg, spec.id, dev)
    fixed, moving = inputs.fixed, inputs.moving
    f_labels, m_labels = inputs.fixed_labels, inputs.moving_labels
    f_points, m_points = inputs.fixed_points, inputs.moving_points
    ndim = inputs.ndim

    spacing = fixed.spacing
    clock = _Clock()
    f_t = torch.from_numpy(normalise_intensity(fixed.array))[None, None].to(dev)
    m_t = torch.from_numpy(normalise_intensity(moving.array))[None, None].to(dev)

    clock.lap("normalise")
    start = time.perf_counter()
    estimate = yield from spec.estimate(f_t, m_t, spacing, cfg, dev)
    check_finite_field(estimate.field, spec.id)  # before the guard compares it
    clock.lap("method")
    verdict = _guard.run(guard, estimate, f_t, m_t, spacing, f_labels, m_labels, spec.id)
    clock.lap("guard")
    estimate = verdict.estimate
    field = estimate.field.detach()
    if tuple(field.shape) != (1, ndim, *fixed.shape):
        raise RuntimeError(
            f"method {spec.id!r} returned a field of shape {tuple(field.shape)}, expected "
            f"{(1, ndim, *fixed.shape)}"
        )

    yield Progress(0, 2, "warping at native resolution")
    with torch.no_grad():
        moving_raw = torch.from_numpy(np.ascontiguousarray(moving.array))[None, None].to(dev)
        warped = warp_image(moving_raw, field, spacing)[0, 0].cpu().numpy()
        warped_labels = None
        if m_labels is not None:
            lab = torch.from_numpy(m_labels.array)[None, None].to(dev)
            warped_labels = warp_labels(lab, field, spacing)[0, 0].cpu().numpy()
        jac = jacobian_determinant(field, spacing)[0].cpu().numpy()
    runtime = time.perf_counter() - start
    field_np = field[0].cpu().numpy()
    clock.lap("warp")

    yield Progress(1, 2, "measuring")
    summary, label_rows = _metrics.registration_metrics(
        f_labels.array if f_labels is not None else None,
        m_labels.array if m_labels is not None else None,
        warped_labels,
        jac,
        spacing,
        fast=not hausdorff,
    )
    if f_points is not None:
        summary["tre_before"] = float(
            np.mean(_metrics.tre(f_points, m_points, None, spacing, fixed.origin))
        )
        summary["tre_after"] = float(
            np.mean(_metrics.tre(f_points, m_points, field_np, spacing, fixed.origin))
        )
    summary["runtime_s"] = runtime
    clock.lap("metrics")
    yield Progress(2, 2, "done")
    return RegistrationResult(
        warped=warped.astype(np.float32),
        warped_labels=warped_labels,
        field=field_np,
        jacobian=jac,
        grid=Grid.of(fixed),
        affine=None if estimate.affine is None else _affine_in_world(estimate.affine, fixed.origin),
        metrics={**summary, **verdict.metrics},
        label_metrics=label_rows,
        runtime=runtime,
        method=spec.id,
        model=spec.model_id,
        parameters=dataclasses.asdict(cfg),
        notes=[*inputs.notes, *estimate.info.get("notes", ()), *verdict.notes],
        timings=clock.laps,
    )
