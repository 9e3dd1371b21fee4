"""Batch helpers: moving batches to a device and resampling them to a working resolution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..core import resize, resized_spacing


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor (in dicts, lists, tuples) moved to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _is_labels(key: str, value: Tensor) -> bool:
    return key.endswith("labels") or not torch.is_floating_point(value)


def _nearest_resize(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Nearest-neighbour resize with the corner voxels fixed (the geometry of ``core.resize``)."""
    for axis, m in enumerate(shape):
        n = x.shape[2 + axis]
        idx = torch.round(torch.linspace(0, n - 1, m, device=x.device)).long()
        x = x.index_select(2 + axis, idx)
    return x


def resample_batch(batch: dict[str, Any], shape: Sequence[int]) -> dict[str, Any]:
    """The batch on a grid of ``shape`` (same field of view: corner voxels fixed).

    Follows the key convention of :mod:`napari_deepreg.training.task`: float images and
    ``field`` (values stay in mm) are resized linearly with antialiasing when shrinking; keys
    ending in ``labels`` and integer tensors use nearest neighbour; ``spacing`` is updated.
    Other tensors whose trailing dims equal the image grid are resized linearly; everything else
    passes through unchanged.

    Args:
        batch: with at least ``fixed`` ``(N, C, *S)``.
        shape: new spatial shape, same length as ``S``.
    """
    if "fixed" not in batch:
        raise ValueError("resample_batch needs a batch with a 'fixed' image")
    old = tuple(batch["fixed"].shape[2:])
    shape = tuple(int(s) for s in shape)
    if len(shape) != len(old):
        raise ValueError(f"shape {shape} must have {len(old)} dims like the batch grid {old}")
    if shape == old:
        return dict(batch)
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if key == "spacing":
            out[key] = resized_spacing(old, value, shape)
        elif isinstance(value, Tensor) and value.ndim == len(old) + 2 and value.shape[2:] == old:
            if _is_labels(key, value):
                out[key] = _nearest_resize(value, shape)
            else:
                out[key] = resize(value, shape)
        else:
            out[key] = value
    return out
