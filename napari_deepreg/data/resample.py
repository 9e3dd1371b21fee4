"""Downsampling of label maps and volumes by an integer factor (corner voxels fixed).

Every ``factor``-th voxel is kept, starting at voxel 0 (the ``align_corners`` geometry of
:func:`napari_deepreg.core.resize`): an axis of ``n`` voxels becomes ``(n - 1) // factor + 1``
voxels, the spacing grows by ``factor`` and the origin does not move.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import resize
from ..volume import Volume


def _tent_kernel(factor: int, ndim: int) -> Tensor:
    """Integer tent weights ``factor - |i|`` for ``|i| < factor``, as a ``(1, 1, *k)`` kernel.

    They are the linear interpolation weights times ``factor``; integers keep every score exact
    in float32, so ties are decided the same way whatever the order of the sums (first label in
    ascending order wins).
    """
    taps = torch.tensor([factor - abs(i) for i in range(-factor + 1, factor)], dtype=torch.float32)
    kernel = taps
    for _ in range(ndim - 1):
        kernel = kernel[..., None] * taps
    return kernel[None, None]


def _label_boxes(t: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """Per label value, the lowest and highest index along each axis: two ``(K, D)`` tensors."""
    inverse = torch.bucketize(t.reshape(-1), values)
    lows, highs = [], []
    for axis in range(t.ndim):
        view = [1] * t.ndim
        view[axis] = t.shape[axis]
        index = torch.arange(t.shape[axis]).view(view).expand(t.shape).reshape(-1)
        big = torch.full((len(values),), t.shape[axis], dtype=torch.long)
        lows.append(big.scatter_reduce(0, inverse, index, "amin"))
        highs.append(torch.full_like(big, -1).scatter_reduce(0, inverse, index, "amax"))
    return torch.stack(lows, 1), torch.stack(highs, 1)


def downsample_labels(labels: np.ndarray | Tensor, factor: int = 2) -> np.ndarray | Tensor:
    """Majority vote of a label map at every ``factor``-th voxel (align corners).

    Votes come from the ``(2 factor - 1)`` neighbourhood with tent weights (the weights linear
    interpolation would give), so a coarse voxel takes the label that covers most of it rather
    than whatever the one strided sample hits. Each label is scored only inside its bounding box,
    so many small labels cost little more than a few large ones.

    Args:
        labels: ``(z, y, x)`` or ``(y, x)`` integer label map (numpy or torch, any device).
        factor: integer downsampling factor, >= 1.

    Returns:
        ``((n - 1) // factor + 1, ...)`` labels, of the input's kind and dtype.
    """
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    is_tensor = isinstance(labels, Tensor)
    device = labels.device if is_tensor else None
    t = labels.detach().cpu() if is_tensor else torch.from_numpy(np.ascontiguousarray(labels))
    if t.is_floating_point():
        raise TypeError(f"labels must be integers, got {t.dtype}")
    ndim = t.ndim
    if ndim not in (2, 3):
        raise ValueError(f"labels must be 2D or 3D, got shape {tuple(t.shape)}")
    dtype = t.dtype
    t = t.long()
    out_shape = [(n - 1) // factor + 1 for n in t.shape]
    if factor == 1:
        winner = t.clone()
    else:
        conv = F.conv3d if ndim == 3 else F.conv2d
        kernel = _tent_kernel(factor, ndim)
        values = torch.unique(t)
        lows, highs = _label_boxes(t, values)
        best = torch.full(out_shape, -1.0)
        winner = torch.zeros(out_shape, dtype=torch.long)
        for k, value in enumerate(values.tolist()):
            # coarse voxels whose tent reaches the label's box: ceil((lo - f + 1) / f) ..
            # floor((hi + f - 1) / f); fine voxels feeding them start at c0 * f - (f - 1)
            c0 = [max(0, -((-(int(lo) - factor + 1)) // factor)) for lo in lows[k]]
            c1 = [
                min(m - 1, (int(hi) + factor - 1) // factor)
                for hi, m in zip(highs[k], out_shape, strict=True)
            ]
            f0 = [c * factor - (factor - 1) for c in c0]
            f1 = [c * factor + factor for c in c1]  # exclusive
            crop = tuple(
                slice(max(0, a), min(n, b)) for a, b, n in zip(f0, f1, t.shape, strict=True)
            )
            mask = (t[crop] == value).float()
            # zero padding stands for the voxels outside the crop: none of them carries the label
            pad = []
            for a, b, n in reversed(list(zip(f0, f1, t.shape, strict=True))):
                pad += [max(0, -a), max(0, b - n)]
            mask = F.pad(mask[None, None], pad)
            score = conv(mask, kernel, stride=factor)[0, 0]
            region = tuple(slice(a, b + 1) for a, b in zip(c0, c1, strict=True))
            score = score[tuple(slice(0, b - a + 1) for a, b in zip(c0, c1, strict=True))]
            better = score > best[region]
            winner[region] = torch.where(better, value, winner[region])
            best[region] = torch.where(better, score, best[region])
    winner = winner.to(dtype)
    if is_tensor:
        return winner.to(device)
    return winner.numpy().astype(labels.dtype, copy=False)


def downsample_volume(volume: Volume, factor: int = 2, labels: bool = False) -> Volume:
    """``volume`` at every ``factor``-th voxel: images anti-aliased (:func:`core.resize`), label
    maps by :func:`downsample_labels`. Spacing times ``factor``; origin and direction unchanged."""
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    spacing = tuple(s * factor for s in volume.spacing)
    if labels:
        array = downsample_labels(volume.array, factor)
    else:
        shape = [(n - 1) // factor + 1 for n in volume.shape]
        x = torch.from_numpy(np.ascontiguousarray(volume.array, dtype=np.float32))[None, None]
        array = resize(x, shape, antialias=True)[0, 0].numpy()
    return Volume(array, spacing, volume.origin, volume.direction, volume.name,
                  dict(volume.metadata))


__all__ = ["downsample_labels", "downsample_volume"]
