"""A fast preview of a registration at reduced resolution, to choose the smoothness setting.

A user trades smoothness for accuracy by the method's regulariser weight (``regularisation``
for instance optimisation, ``refine_regularisation`` for a learned model's refinement, ``lam``
for SUITS). :func:`preview` runs the method on the pair downsampled to at most ``max_size``
voxels along its longest axis (:func:`downsample`: block means of the images, the block-centre
voxel of the labels, the grid's physical extent kept) with one value of that weight, and
returns the result on that coarse grid: its Jacobian, warped labels, Dice, SDlogJ and fold %
say within a second or two what the full-resolution run would look like. The guard (never
worse than no registration) is off in a preview: it would hide the very roughness being
looked at.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from .methods import get_method
from .pipeline import PreparedInputs, register_prepared
from .result import Progress, RegistrationResult
from .volume import Volume

#: the regulariser weight of each kind of config, by field name, in the order looked for
SMOOTHNESS_FIELDS = ("regularisation", "refine_regularisation", "lam")

#: default longest axis (voxels) of the preview grid
PREVIEW_SIZE = 64


def smoothness_field(config: Any) -> str | None:
    """The name of ``config``'s regulariser weight (a config instance or class), or None when
    the method has none (:data:`SMOOTHNESS_FIELDS`)."""
    names = {f.name for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) \
        else set()
    return next((name for name in SMOOTHNESS_FIELDS if name in names), None)


def preview_factor(shape: tuple[int, ...], max_size: int = PREVIEW_SIZE) -> int:
    """The integer downsampling factor that brings ``shape``'s longest axis to ``max_size`` or
    below (1: already small enough)."""
    return max(1, math.ceil(max(shape) / max(int(max_size), 8)))


def downsample(volume: Volume, factor: int, labels: bool = False) -> Volume:
    """``volume`` on a grid ``factor`` times coarser along every axis, same physical extent.

    Images take the mean of each ``factor``-wide block (float32); labels take the voxel nearest
    the block's centre (no new label values). Voxels past the last whole block are dropped. The
    coarse voxel 0 sits at the centre of block 0, so both grids overlay in physical space.
    """
    if factor <= 1:
        return volume
    array = np.asarray(volume.array)
    shape = tuple(n // factor for n in array.shape)
    if min(shape) < 4:
        raise ValueError(f"a {array.shape} volume is too small to preview at 1/{factor}")
    crop = array[tuple(slice(0, n * factor) for n in shape)]
    if labels:
        centre = factor // 2
        small = crop[tuple(slice(centre, None, factor) for _ in shape)]
    else:
        blocks = crop.astype(np.float32).reshape(
            [v for n in shape for v in (n, factor)])
        small = blocks.mean(axis=tuple(range(1, 2 * len(shape), 2)))
    # voxel 0 of the coarse grid: the centre of the first block (for labels, its chosen voxel)
    shift = (factor // 2) if labels else (factor - 1) / 2
    offset = volume.direction_matrix() @ (np.asarray(volume.spacing) * shift)
    return dataclasses.replace(
        volume, array=np.ascontiguousarray(small),
        spacing=tuple(s * factor for s in volume.spacing),
        origin=tuple(float(o) for o in np.asarray(volume.origin) + offset))


def downsample_inputs(inputs: PreparedInputs, max_size: int = PREVIEW_SIZE) -> PreparedInputs:
    """:class:`PreparedInputs` on the preview grid (:func:`downsample` of each part; landmarks
    are physical and stay as they are)."""
    factor = preview_factor(inputs.fixed.shape, max_size)
    if factor == 1:
        return inputs

    def small(volume: Volume | None, labels: bool = False) -> Volume | None:
        return None if volume is None else downsample(volume, factor, labels)

    # the fixed image's labels sit on its grid: all parts share one coarse grid (the images'
    # block centres and the labels' chosen voxels differ by under half a fine voxel)
    fixed = small(inputs.fixed)
    return dataclasses.replace(
        inputs, fixed=fixed, moving=dataclasses.replace(small(inputs.moving), origin=fixed.origin),
        fixed_labels=None if inputs.fixed_labels is None else dataclasses.replace(
            small(inputs.fixed_labels, True), origin=fixed.origin),
        moving_labels=None if inputs.moving_labels is None else dataclasses.replace(
            small(inputs.moving_labels, True), origin=fixed.origin))


def preview(
    inputs: PreparedInputs,
    method: str,
    config: Any,
    value: float,
    max_size: int = PREVIEW_SIZE,
    device: str | torch.device = "cpu",
) -> Generator[Progress, None, RegistrationResult]:
    """Run ``method`` on the downsampled pair with its regulariser weight set to ``value``.

    Args:
        inputs: the pair as :func:`napari_deepreg.pipeline.prepare` returns it.
        method: a method id with a regulariser weight (:func:`smoothness_field`).
        config: that method's config (instance, dict of overrides or None); the weight replaces
            its own.
        value: the regulariser weight to preview (>= 0).
        max_size: longest axis of the preview grid in voxels.
        device: where the method runs.

    Returns:
        A :class:`RegistrationResult` on the coarse grid (its ``grid`` says which), metrics
        without HD95; ``parameters`` holds the weight previewed. Progress is the method's.

    Raises:
        ValueError: the method has no regulariser weight, or ``value`` is negative.
    """
    spec = get_method(method)
    cfg = spec.make_config(config)
    name = smoothness_field(cfg)
    if name is None:
        raise ValueError(f"method {spec.id!r} has no regularisation setting to preview")
    if not value >= 0:
        raise ValueError(f"the regularisation weight must be >= 0, got {value}")
    cfg = dataclasses.replace(cfg, **{name: float(value)})
    small = downsample_inputs(inputs, max_size)
    return (yield from register_prepared(small, spec.id, cfg, device, hausdorff=False,
                                         guard=False))


__all__ = ["PREVIEW_SIZE", "SMOOTHNESS_FIELDS", "downsample", "downsample_inputs", "preview",
           "preview_factor", "smoothness_field"]
