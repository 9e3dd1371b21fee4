"""Checks around a method's run: a memory estimate before it, a finite field after it.

A geometry that is legal but absurd (a spacing of 1e-9 mm) or an image too large for the machine
used to end in a 160 GB allocation error, a traceback, or the machine swapping; a method whose
optimisation diverged used to hand back an all-NaN field and a NaN image with exit code 0.
:func:`check_memory` refuses the first before anything is allocated, with the setting to change;
:func:`check_finite_field` refuses the second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .volume import InputError

# bytes of the arrays the pipeline keeps per voxel of the fixed grid, per float32 value: the two
# images raw and normalised (numpy + torch), warped image, Jacobian, and the field, its numpy copy
# and the sampling grid (D values each), plus room for temporaries
_NATIVE_VALUES = 12
_NATIVE_VALUES_PER_DIM = 4
# float32 values per working voxel that instance optimisation keeps alive through one iteration
# (pyramid, similarity moments, warped image, field, gradients and Adam state), measured roughly
_WORKING_VALUES = 40
_WORKING_VALUES_PER_DIM = 12
# share of the free memory a run may plan to use
_USABLE = 0.8
_GB = 1024**3


def available_bytes(device: torch.device | None = None) -> int:
    """Free memory where the run will allocate: the GPU's for CUDA, else the system's."""
    if device is not None and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def _bspline_bytes(shape: Sequence[int], stride: Sequence[int]) -> int:
    """Largest intermediate of ``core.bspline_to_field`` (separable transposed convolutions)."""
    ndim = len(shape)
    ctrl = [(n - 1) // s + 4 for n, s in zip(shape, stride, strict=True)]
    largest = 0
    for axis in range(ndim):
        length = (ctrl[axis] + 3) * stride[axis] + 1
        lead = math.prod(shape[:axis]) * math.prod(ctrl[axis + 1:])
        largest = max(largest, ndim * lead * length)
    return 4 * 3 * largest  # the output, its gradient and the autograd copy


def _instance_opt_bytes(shape: Sequence[int], spacing: Sequence[float], config: Any
                        ) -> tuple[int, int]:
    """``(working-grid bytes, B-spline bytes)`` of instance optimisation with ``config``."""
    from .methods.instance_opt import level_shapes

    ndim = len(shape)
    shapes = level_shapes(shape, int(config.levels), int(config.max_working_size))
    working = math.prod(shapes[-1]) * 4 * (_WORKING_VALUES + _WORKING_VALUES_PER_DIM * ndim)
    spline = 0
    if getattr(config, "transform", "") == "bspline":
        for level, lshape in enumerate(shapes):
            lspacing = [s * (n - 1) / max(m - 1, 1)
                        for s, n, m in zip(spacing, shape, lshape, strict=True)]
            coarse = 2 ** (len(shapes) - 1 - level)
            stride = [max(1, round(min(config.control_spacing * coarse / s, 1e15)))
                      for s in lspacing]
            spline = max(spline, _bspline_bytes(lshape, stride))
    return working, spline


def estimate_bytes(shape: Sequence[int], spacing: Sequence[float], config: Any) -> dict[str, int]:
    """Memory a run needs, by part: ``native`` (the fixed grid), ``working``, ``bspline``.

    The working parts are known for instance optimisation (its config has ``max_working_size``
    and ``control_spacing``) and for a learned method's test-time refinement (``refine``: an
    instance optimisation on a grid of at most ``refine.MAX_WORKING_SIZE`` voxels a side, bounded);
    a learned network's own grid is fixed by its model and small (at most 96x112x96 here).
    """
    ndim = len(shape)
    parts = {"native": math.prod(shape) * 4 * (_NATIVE_VALUES + _NATIVE_VALUES_PER_DIM * ndim)}
    if hasattr(config, "max_working_size") and hasattr(config, "control_spacing"):
        parts["working"], parts["bspline"] = _instance_opt_bytes(shape, spacing, config)
    elif getattr(config, "refine", False) is True:
        from .methods.refine import MAX_WORKING_SIZE

        factor = min(1.0, MAX_WORKING_SIZE / max(shape))
        grid = [max(2, round(n * factor)) for n in shape]
        parts["refine"] = math.prod(grid) * 4 * (_WORKING_VALUES + _WORKING_VALUES_PER_DIM * ndim)
    return parts


def check_memory(
    shape: Sequence[int], spacing: Sequence[float], config: Any, method_id: str,
    device: torch.device | None = None, available: int | None = None,
) -> None:
    """Refuse a run whose estimated memory exceeds what is free, naming the setting to change.

    Args:
        shape, spacing: the fixed grid (voxels, mm per axis).
        config: the method's config.
        method_id: for the message.
        device: where the run allocates (CUDA: the GPU's free memory).
        available: free bytes (default: measured now).
    """
    parts = estimate_bytes(shape, spacing, config)
    need = sum(parts.values())
    free = available_bytes(device) if available is None else int(available)
    if need <= _USABLE * free:
        return
    worst = max(parts, key=parts.get)
    if worst == "bspline":
        hint = (f"the spacing {tuple(float(s) for s in spacing)} mm makes the B-spline control "
                f"spacing of {config.control_spacing:g} mm span billions of voxels: check the "
                "image spacing (mm) or lower --param control_spacing")
    elif worst == "refine":
        hint = "run without test-time refinement (--param refine=false)"
    elif worst == "working":
        size = int(config.max_working_size)
        while size > 16 and sum(estimate_bytes(shape, spacing, _with(config, size)).values()) \
                > _USABLE * free:
            size //= 2
        hint = f"set a lower working resolution, e.g. --param max_working_size={max(size, 16)}"
    else:
        factor = math.ceil((need / (_USABLE * free)) ** (1 / len(shape)))
        hint = (f"the fixed image has {math.prod(shape):,} voxels: resample it to a coarser grid "
                f"first (about {factor}x the spacing)")
    raise InputError(
        f"{method_id} would need about {need / _GB:.3g} GB of memory but {free / _GB:.3g} GB "
        f"are free; {hint}"
    )


def _with(config: Any, max_working_size: int) -> Any:
    import dataclasses

    return dataclasses.replace(config, max_working_size=max_working_size)


def check_finite_field(field: torch.Tensor, method_id: str) -> None:
    """Refuse a displacement field with NaN/Inf values (a diverged optimisation, a bad model)."""
    if not bool(torch.isfinite(field).all()):
        bad = int((~torch.isfinite(field)).sum())
        raise InputError(
            f"{method_id} produced a displacement field with {bad} NaN/Inf values; nothing was "
            "written: check that the images overlap and have sensible intensities, or lower the "
            "learning rate"
        )


__all__ = ["available_bytes", "check_finite_field", "check_memory", "estimate_bytes"]
