"""The registration pipeline shared by the widget, the CLI, the benchmark and the tests.

``register`` checks the input, brings the moving image onto the fixed grid, normalises
intensities, runs the chosen method's estimator (a generator of :class:`Progress`), warps the
original moving image and labels once at native resolution and measures the result.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator
from typing import Any, TypeVar

import numpy as np
import torch

from . import metrics as _metrics
from .core import jacobian_determinant, warp_image, warp_labels
from .core.device import resolve_device
from .methods import get_method
from .result import Grid, Progress, RegistrationResult
from .volume import InputError, Volume, check_image, check_labels

T = TypeVar("T")


def run_to_end(gen: Generator[Any, None, T]) -> T:
    """Drive a generator to its end and return its return value (for scripts and tests)."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def normalise_intensity(array: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Map the ``[low, high]`` percentiles of ``array`` to ``[0, 1]`` and clip (float32)."""
    lo, hi = np.percentile(array, [low, high])
    if hi <= lo:  # very sparse images: fall back to the full range
        lo, hi = float(array.min()), float(array.max())
    return np.clip((array - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _affine_to_world(affine: torch.Tensor, origin: tuple[float, ...]) -> np.ndarray:
    """Move a method's affine from the grid frame (voxel 0 at 0 mm) to ``origin + index*spacing``.

    ``A_world = T(o) A T(-o)``: the linear part is unchanged, the translation picks up
    ``(I - L) o``.
    """
    mat = affine.detach().cpu().double().numpy().copy()
    ndim = mat.shape[0] - 1
    o = np.asarray(origin, dtype=float)
    mat[:ndim, ndim] += o - mat[:ndim, :ndim] @ o
    return mat


def _is_signed_permutation(direction: np.ndarray, tol: float = 1e-4) -> bool:
    """True for axis-aligned directions (identity up to axis flips and swaps)."""
    d = np.abs(np.asarray(direction))
    return bool(np.allclose(d.max(0), 1, atol=tol) and np.allclose(d.sum(0), 1, atol=tol))


def _as_volume(data: Volume | np.ndarray | None, name: str) -> Volume | None:
    if data is None or isinstance(data, Volume):
        return data
    return Volume(np.asarray(data), name=name)


def _prepare_labels(
    labels: Volume | np.ndarray | None, image: Volume, other: Volume, what: str
) -> Volume | None:
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
    return dataclasses.replace(
        labels, array=array, spacing=image.spacing, origin=image.origin, direction=image.direction
    )


def _prepare_points(points: np.ndarray | None, ndim: int, what: str) -> np.ndarray | None:
    if points is None:
        return None
    pts = np.asarray(points, dtype=float)
    if pts.size == 0:
        return None
    if pts.ndim != 2 or pts.shape[1] != ndim:
        raise InputError(f"{what} must be (K, {ndim}) physical coordinates, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise InputError(f"{what} contain NaN/Inf coordinates")
    return pts


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
) -> Generator[Progress, None, RegistrationResult]:
    """Register ``moving`` to ``fixed``; a generator of Progress returning a RegistrationResult.

    Args:
        fixed, moving: images with geometry (a bare array means 1 mm spacing, origin 0).
        method: a method id (``napari_deepreg.methods.available_methods()``).
        config: the method's config dataclass, a dict of overrides, or None for defaults.
        fixed_labels, moving_labels: optional integer label maps on their image's grid.
        fixed_points, moving_points: optional corresponding landmarks, ``(K, D)`` physical mm in
            array axis order, for TRE.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
        hausdorff: also compute HD95/ASSD (slower on big label maps).

    Raises:
        InputError: for input a user has to fix (shapes, NaN, constant images, bad labels).
    """
    fixed = _as_volume(fixed, "fixed")
    moving = _as_volume(moving, "moving")
    if fixed is None or moving is None:
        raise InputError("both a fixed and a moving image are needed")
    fixed_arr = check_image(fixed.array, "fixed image")
    moving_arr = check_image(moving.array, "moving image")
    if fixed_arr.ndim != moving_arr.ndim:
        raise InputError(
            f"fixed image is {fixed_arr.ndim}D but moving image is {moving_arr.ndim}D; "
            "both must be 2D or both 3D"
        )
    ndim = fixed_arr.ndim
    spec = get_method(method)
    if ndim not in spec.dims:
        raise InputError(
            f"method {spec.id!r} supports {'/'.join(f'{d}D' for d in spec.dims)} images, "
            f"not {ndim}D"
        )
    cfg = spec.make_config(config)
    dev = resolve_device(device)
    fixed = dataclasses.replace(fixed, array=fixed_arr)
    moving = dataclasses.replace(moving, array=moving_arr)
    f_labels = _prepare_labels(fixed_labels, fixed, moving, "fixed labels")
    m_labels = _prepare_labels(moving_labels, moving, fixed, "moving labels")
    f_points = _prepare_points(fixed_points, ndim, "fixed points")
    m_points = _prepare_points(moving_points, ndim, "moving points")
    if (f_points is None) != (m_points is None) or (
        f_points is not None and len(f_points) != len(m_points)
    ):
        raise InputError("fixed and moving points must both be given, with the same count")

    notes: list[str] = []
    if not fixed.same_grid(moving):
        from .io import describe_grid, resample_to_grid

        notes.append(
            f"moving image resampled onto the fixed grid ({describe_grid(moving)} -> "
            f"{describe_grid(fixed)})"
        )
        yield Progress(0, 1, "resampling moving image onto the fixed grid")
        moving = resample_to_grid(moving, fixed)
        if m_labels is not None:
            m_labels = resample_to_grid(m_labels, fixed, labels=True)
    if fixed.direction is not None and not _is_signed_permutation(fixed.direction):
        notes.append(
            "fixed image axes are oblique (rotated direction matrix): registration runs along "
            "its array axes; saved outputs keep its geometry"
        )

    spacing = fixed.spacing
    f_t = torch.from_numpy(normalise_intensity(fixed.array))[None, None].to(dev)
    m_t = torch.from_numpy(normalise_intensity(moving.array))[None, None].to(dev)

    start = time.perf_counter()
    estimate = yield from spec.estimate(f_t, m_t, spacing, cfg, dev)
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
    yield Progress(2, 2, "done")
    return RegistrationResult(
        warped=warped.astype(np.float32),
        warped_labels=warped_labels,
        field=field_np,
        jacobian=jac,
        grid=Grid.of(fixed),
        affine=None if estimate.affine is None else _affine_to_world(estimate.affine, fixed.origin),
        metrics=summary,
        label_metrics=label_rows,
        runtime=runtime,
        method=spec.id,
        model=spec.model_id,
        parameters=dataclasses.asdict(cfg),
        notes=notes,
    )
