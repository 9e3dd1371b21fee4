"""Warping images and label maps with a displacement field (pull-back, mm)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .grid import as_spacing, check_field, sampling_grid, voxel_grid

_MODES = {"linear": "bilinear", "nearest": "nearest", "cubic": "bicubic"}
_PADDINGS = ("border", "zeros", "reflection")


def _check_pair(image: Tensor, field: Tensor, what: str) -> int:
    ndim = check_field(field)
    if image.ndim != ndim + 2:
        raise ValueError(
            f"{what} must be (N, C, *spatial) with {ndim} spatial dims to match the field, "
            f"got shape {tuple(image.shape)}"
        )
    if image.shape[2:] != field.shape[2:] or image.shape[0] != field.shape[0]:
        raise ValueError(
            f"{what} {tuple(image.shape)} and field {tuple(field.shape)} must share batch size and "
            "spatial shape (resample the moving image into the fixed grid first)"
        )
    return ndim


def warp_image(
    image: Tensor,
    field: Tensor,
    spacing: float | Sequence[float] | None = None,
    mode: str = "linear",
    padding: str = "border",
) -> Tensor:
    """Resample ``image`` at ``x + u(x)``.

    Args:
        image: ``(N, C, *spatial)`` moving image on the fixed grid.
        field: ``(N, D, *spatial)`` displacement in mm.
        spacing: voxel size in mm along the array axes.
        mode: ``"linear"``, ``"nearest"`` or ``"cubic"`` (2D only).
        padding: ``"border"``, ``"zeros"`` or ``"reflection"``.

    Returns:
        ``(N, C, *spatial)`` warped image, same dtype as a float ``image``.
    """
    ndim = _check_pair(image, field, "image")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {sorted(_MODES)}, got {mode!r}")
    if padding not in _PADDINGS:
        raise ValueError(f"padding must be one of {_PADDINGS}, got {padding!r}")
    if mode == "cubic" and ndim == 3:
        raise ValueError("cubic interpolation is available in 2D only")
    grid = sampling_grid(field.to(image.dtype), spacing)
    return F.grid_sample(image, grid, mode=_MODES[mode], padding_mode=padding, align_corners=True)


def warp_labels(
    labels: Tensor,
    field: Tensor,
    spacing: float | Sequence[float] | None = None,
    chunk: int = 1 << 21,
) -> Tensor:
    """Warp an integer label map without boundary artefacts.

    Equivalent to linear interpolation of every label's one-hot channel followed by argmax, but
    computed from the ``2**D`` neighbouring voxels only, so the cost does not grow with the number
    of labels (no one-hot volume is ever built). Outside the image the border label is used.

    Args:
        labels: ``(N, 1, *spatial)`` integer labels on the fixed grid.
        field: ``(N, D, *spatial)`` displacement in mm.
        spacing: voxel size in mm along the array axes.
        chunk: voxels processed at a time (bounds the memory).

    Returns:
        ``(N, 1, *spatial)`` labels, same dtype as ``labels``; only input values occur.
    """
    ndim = _check_pair(labels, field, "labels")
    if labels.is_floating_point():
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    sp = torch.tensor(as_spacing(spacing, ndim), device=field.device, dtype=torch.float32)
    shape = labels.shape[2:]
    n_vox = labels[0, 0].numel()
    size = torch.tensor(shape, device=field.device)
    strides = [int(torch.tensor(shape[i + 1 :]).prod()) for i in range(ndim)]
    base = voxel_grid(shape, field.device).reshape(ndim, -1)
    out = torch.empty_like(labels)
    offsets = [
        [(k >> (ndim - 1 - i)) & 1 for i in range(ndim)] for k in range(2**ndim)
    ]  # corner k -> 0/1 offset per axis
    stride_t = torch.tensor(strides, device=field.device)
    corner_offset = [
        sum(strides[i] for i in range(ndim) if off[i] and shape[i] > 1) for off in offsets
    ]
    for b in range(labels.shape[0]):
        flat_labels = labels[b, 0].reshape(-1)
        flat_field = field[b].reshape(ndim, -1).float()
        flat_out = out[b, 0].view(-1)
        for start in range(0, n_vox, chunk):
            stop = min(start + chunk, n_vox)
            coords = base[:, start:stop] + flat_field[:, start:stop] / sp[:, None]
            hi_lim = (size - 1).to(coords)[:, None]
            coords = torch.minimum(coords.clamp_min(0), hi_lim)
            lo = torch.minimum(coords.floor(), (hi_lim - 1).clamp_min(0))
            frac = coords - lo
            lo = lo.long()
            # lo <= size - 2, so lo + 1 stays inside; an axis of size 1 has no upper neighbour
            base_index = (lo * stride_t[:, None]).sum(0)
            corner_index = [base_index + corner_offset[k] for k in range(len(offsets))]
            corner_labels = [flat_labels[index] for index in corner_index]
            best = corner_labels[0].clone()
            # most voxels see a single label among their corners: only the others need a vote
            mixed = torch.zeros_like(best, dtype=torch.bool)
            for lab in corner_labels[1:]:
                mixed |= lab != corner_labels[0]
            sel = mixed.nonzero().squeeze(1)
            if sel.numel():
                labs = [lab[sel] for lab in corner_labels]
                fr = frac[:, sel]
                weights = []
                for off in offsets:
                    weight = torch.ones_like(fr[0])
                    for i in range(ndim):
                        weight = weight * (fr[i] if off[i] else 1 - fr[i])
                    weights.append(weight)
                # score of corner k = total weight of the corners that carry the same label
                scores = list(weights)
                for k in range(len(offsets)):
                    for j in range(k + 1, len(offsets)):
                        same = labs[k] == labs[j]
                        scores[k] = scores[k] + weights[j] * same
                        scores[j] = scores[j] + weights[k] * same
                vote = labs[0]
                vote_score = scores[0]
                for k in range(1, len(offsets)):
                    better = scores[k] > vote_score
                    vote = torch.where(better, labs[k], vote)
                    vote_score = torch.where(better, scores[k], vote_score)
                best[sel] = vote
            flat_out[start:stop] = best
    return out
