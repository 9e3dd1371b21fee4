"""An anatomy (image + label map) brought to the working grid of a :class:`PairConfig`, once,
before pairs are drawn from it; 2D slices of a 3D anatomy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from ..core import resize
from ..core.device import resolve_device
from ..volume import Volume
from .pair_config import PairConfig
from .resample import downsample_labels


@dataclass
class Anatomy:
    """An anatomy on the working grid (see :func:`prepare_anatomy`).

    Attributes:
        image: ``(1, 1, *S)`` float32 in [0, 1], or None (label synthesis only).
        labels: ``(1, 1, *S)`` int64.
        spacing: voxel size (mm) per array axis.
        values: sorted label values present (int64, CPU).
        name: for messages.
        tissue_label: the value given to bright unlabelled voxels (``tissue_threshold``) in
            ``labels``; pairs show it as 0. None if there is none.
    """

    image: Tensor | None
    labels: Tensor
    spacing: tuple[float, ...]
    values: Tensor
    name: str = ""
    tissue_label: int | None = None

    @property
    def ndim(self) -> int:
        return self.labels.ndim - 2

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.labels.shape[2:])

    @cached_property
    def foreground_box(self) -> list[tuple[int, int]]:
        """Inclusive index range of labels > 0 per axis (computed once)."""
        return _foreground_box(self.labels[0, 0].cpu().numpy())


def _foreground_box(labels: np.ndarray) -> list[tuple[int, int]]:
    """``(low, high)`` inclusive index range of labels > 0 per axis (the whole axis if none)."""
    mask = labels > 0
    if not mask.any():
        return [(0, n - 1) for n in labels.shape]
    box = []
    for axis in range(labels.ndim):
        other = tuple(a for a in range(labels.ndim) if a != axis)
        hits = np.nonzero(mask.any(axis=other))[0]
        box.append((int(hits[0]), int(hits[-1])))
    return box


def _crop_or_pad(array: np.ndarray, shape: Sequence[int], box: list[tuple[int, int]]) -> np.ndarray:
    """``array`` cut or zero-padded to ``shape``, centred on ``box`` as far as the array allows."""
    out = np.zeros(tuple(shape), dtype=array.dtype)
    src, dst = [], []
    for n, m, (lo, hi) in zip(array.shape, shape, box, strict=True):
        if m >= n:  # pad: the whole axis, centred
            start = (m - n) // 2
            src.append(slice(0, n))
            dst.append(slice(start, start + n))
        else:  # crop: centred on the box, kept inside the array
            start = int(round((lo + hi) / 2 - (m - 1) / 2))
            start = min(max(start, 0), n - m)
            src.append(slice(start, start + m))
            dst.append(slice(0, m))
    out[tuple(dst)] = array[tuple(src)]
    return out


def _unit_intensities(array: np.ndarray) -> np.ndarray:
    """Intensities to [0, 1]: the minimum to 0, the 99.9th percentile to 1, clipped."""
    lo = float(array.min())
    hi = float(np.percentile(array, 99.9))
    if hi <= lo:
        hi = float(array.max())
    if hi <= lo:
        return np.zeros_like(array, dtype=np.float32)
    return np.clip((array - lo) / (hi - lo), 0, 1).astype(np.float32)


def prepare_anatomy(
    image: Volume | None,
    labels: Volume,
    config: PairConfig | None = None,
    device: torch.device | str = "cpu",
) -> Anatomy:
    """Bring an anatomy to the working grid of ``config`` (done once per anatomy).

    Labels are downsampled by majority vote (:func:`resample.downsample_labels`), the image by
    anti-aliased resizing (:func:`core.resize`); both are then cropped or zero-padded to
    ``working_shape`` about the centre of the labels' bounding box; intensities go to [0, 1].

    Args:
        image: the anatomy's intensities, or None when only label synthesis is wanted.
        labels: its label map, same grid as ``image``.
    """
    config = config or PairConfig()
    lab = np.asarray(labels.array)
    if lab.dtype.kind == "f":
        lab = np.rint(lab)
    lab = lab.astype(np.int64)
    if image is not None and tuple(image.shape) != lab.shape:
        raise ValueError(f"image {image.shape} and labels {lab.shape} must share a grid")
    factor = int(config.downsample)
    spacing = tuple(s * factor for s in labels.spacing)
    lab = downsample_labels(lab, factor)
    img = None
    if image is not None:
        x = torch.from_numpy(np.ascontiguousarray(image.array, dtype=np.float32))[None, None]
        img = resize(x, lab.shape, antialias=True)[0, 0].numpy() if factor > 1 else x[0, 0].numpy()
    if config.working_shape is not None:
        shape = tuple(int(n) for n in config.working_shape)
        if len(shape) != lab.ndim:
            raise ValueError(f"working_shape {shape} must have {lab.ndim} axes")
        box = _foreground_box(lab)
        if img is not None:
            # pad with the image's background (its minimum) before the intensities are scaled
            img = _crop_or_pad(img - img.min(), shape, box) + img.min()
        lab = _crop_or_pad(lab, shape, box)
    dev = resolve_device(device)
    image_t = tissue = None
    if img is not None:
        unit = _unit_intensities(img)
        image_t = torch.from_numpy(unit)[None, None].to(dev)
        if config.tissue_threshold is not None:
            bright = (lab == 0) & (unit > config.tissue_threshold)
            if bright.any():
                tissue = int(lab.max()) + 1
                lab = np.where(bright, tissue, lab)
    labels_t = torch.from_numpy(lab)[None, None].to(dev)
    values = torch.unique(torch.from_numpy(lab))
    return Anatomy(image_t, labels_t, spacing, values, labels.name, tissue)


def slice_anatomy(anatomy: Anatomy, axis: int, index: int) -> Anatomy:
    """The 2D slice ``index`` along array ``axis`` of a 3D anatomy."""
    if anatomy.ndim != 3:
        raise ValueError("only a 3D anatomy can be sliced")
    take = slice_index(axis, index)
    labels = anatomy.labels[take].contiguous()
    image = None if anatomy.image is None else anatomy.image[take].contiguous()
    spacing = tuple(s for a, s in enumerate(anatomy.spacing) if a != axis)
    return Anatomy(image, labels, spacing, torch.unique(labels.cpu()), anatomy.name,
                   anatomy.tissue_label)


def random_slice(anatomy: Anatomy, config: PairConfig, gen: torch.Generator) -> tuple[int, int]:
    """Axis and index of a random slice inside ``slice_range`` of the labels' extent."""
    u_axis, u_index = torch.rand(2, generator=gen, dtype=torch.float64).tolist()
    axis = config.slice_axis if config.slice_axis is not None else min(int(u_axis * 3), 2)
    if not 0 <= axis < 3:
        raise ValueError(f"slice_axis must be 0, 1 or 2 for a 3D anatomy, got {axis}")
    lo, hi = anatomy.foreground_box[axis]
    first = lo + config.slice_range[0] * (hi - lo)
    last = lo + config.slice_range[1] * (hi - lo)
    return axis, int(round(first + u_index * (last - first)))


def slice_index(axis: int, index: int, ndim: int = 3) -> tuple:
    """Index of slice ``index`` along spatial ``axis`` of an ``(N, C, *spatial)`` tensor."""
    return (slice(None), slice(None), *(index if a == axis else slice(None) for a in range(ndim)))


__all__ = ["Anatomy", "prepare_anatomy", "random_slice", "slice_anatomy", "slice_index"]
