"""Losses of the semantic B-spline family (Ha et al. 2020, Eq. 1-3): label weights, weighted
cross-entropy of the segmentation, label alignment after warping, smoothness of the field."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...losses import functional as L


def label_weights(counts: Tensor) -> Tensor:
    """Square root of the inverse label frequency, scaled so the voxel-average weight is 1.

    Args:
        counts: ``(L,)`` voxel count of each label (absent labels get the largest weight).
    """
    freq = counts.double() / counts.sum().clamp_min(1)
    present = freq > 0
    w = torch.zeros_like(freq)
    w[present] = freq[present].rsqrt()
    if (~present).any():
        w[~present] = w[present].max() if present.any() else 1.0
    return (w / (freq * w).sum().clamp_min(1e-12)).float()


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """``(N, 1, *S)`` integer labels -> ``(N, L, *S)`` float one-hot (values >= L are dropped)."""
    # the shared one-hot refuses labels >= L; here they are background-free "unknown" voxels
    lab = labels.long()
    return L.one_hot(lab.clamp(0, num_classes - 1), num_classes) * (lab < num_classes)


def weighted_cross_entropy(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """Mean over voxels of ``-w[y] log softmax(logits)[y]`` (the paper's Eq. 1, averaged).

    Args:
        logits: ``(N, L, *S)``; labels: ``(N, 1, *S)`` integers in ``[0, L)``; weights: ``(L,)``.
    """
    ce = F.cross_entropy(logits, labels[:, 0].long(), weight=weights, reduction="none")
    return ce.mean()


def label_alignment(fixed_onehot: Tensor, warped_onehot: Tensor, weights: Tensor) -> Tensor:
    """``1/L sum_l w_l mean|S_f(l) - T(V, S_m(l))|`` over the foreground labels (Eq. 2)."""
    diff = (fixed_onehot - warped_onehot).abs()
    per_label = diff.flatten(2).mean(2).mean(0)  # (L,)
    return (weights[1:] * per_label[1:]).mean()


def smoothness_penalty(field: Tensor, spacing: Sequence[float], kernel: int = 3) -> Tensor:
    """``mean |V - V_smooth|^2`` in voxels, ``V_smooth`` = two average poolings (Eq. 3).

    Replicate padding keeps a constant field exactly unpenalised at the borders.
    """
    ndim = field.ndim - 2
    sp = torch.tensor(spacing, device=field.device, dtype=field.dtype).view(1, ndim, *[1] * ndim)
    v = field / sp
    pool = F.avg_pool2d if ndim == 2 else F.avg_pool3d
    r = kernel // 2
    smooth = v
    for _ in range(2):
        smooth = pool(F.pad(smooth, [r] * (2 * ndim), mode="replicate"), kernel, stride=1)
    return (v - smooth).pow(2).sum(1).mean()


__all__ = ["label_alignment", "label_weights", "one_hot", "smoothness_penalty",
           "weighted_cross_entropy"]
