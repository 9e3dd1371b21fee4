"""Losses of the FlowNet + ROI family (Shan et al. 2018, Eq. 1-6), per output scale.

Fields are ``(N, 2, h, w)`` in mm on a scale of the input grid; images are resized to that
scale (area average), so one field and its resized pair give each scale's terms:

* photometric: ``mean |I_M^s(x + u^s(x)) - I_F^s(x)|`` (L1, Eq. 2);
* smoothness N: ``mean |d_x u| + |d_y u|`` (Eq. 3), E: the same weighted by
  ``exp(-|d I_F^s|)`` along each axis (Eq. 4); gradients per mm of the field in mm (unitless);
* overlap M: ``mean |D_M^s(x + u^s(x)) - D_F^s(x)|`` of the ROI masks (Eq. 6);
* HNN: binary cross-entropy of each side output and of the fusion (Eq. 5).

Means replace the paper's sums so the weights (alpha 1, beta 0.05, gamma 1) do not depend on
the image size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...core import warp_image

SMOOTHNESS = ("N", "E")


def to_scale(image: Tensor, shape: Sequence[int]) -> Tensor:
    """``(N, C, H, W)`` resized to ``shape`` by area averaging (identity if already there)."""
    if tuple(image.shape[2:]) == tuple(shape):
        return image
    return F.interpolate(image, size=tuple(shape), mode="area")


def scale_spacing(spacing: Sequence[float], full: Sequence[int], shape: Sequence[int]) -> list:
    """The voxel size (mm) of a ``shape`` grid covering the ``full`` grid's field of view."""
    return [float(s) * n / m for s, n, m in zip(spacing, full, shape, strict=True)]


def photometric(fixed: Tensor, warped: Tensor) -> Tensor:
    """Mean L1 difference of the warped moving image and the fixed image."""
    return (warped - fixed).abs().mean()


def _gradients(x: Tensor, spacing: Sequence[float]) -> list[Tensor]:
    """Forward differences per mm along y and x."""
    return [(x[:, :, 1:, :] - x[:, :, :-1, :]) / spacing[0],
            (x[:, :, :, 1:] - x[:, :, :, :-1]) / spacing[1]]


def smoothness(field: Tensor, spacing: Sequence[float], kind: str = "N",
               fixed: Tensor | None = None) -> Tensor:
    """L1 of the field gradient (``"N"``), or edge-aware (``"E"``: weighted by
    ``exp(-|d I_F|)``, the fixed image's gradient per voxel along the same axis)."""
    if kind not in SMOOTHNESS:
        raise ValueError(f"smoothness must be one of {SMOOTHNESS}, got {kind!r}")
    grads = _gradients(field, spacing)
    if kind == "N":
        return sum(g.abs().mean() for g in grads)
    if fixed is None:
        raise ValueError("edge-aware smoothness needs the fixed image")
    edges = _gradients(fixed, (1.0, 1.0))
    return sum((g.abs() * torch.exp(-e.abs())).mean() for g, e in zip(grads, edges, strict=True))


def overlap(fixed_mask: Tensor, warped_mask: Tensor) -> Tensor:
    """Mean L1 difference of the warped moving ROI mask and the fixed ROI mask."""
    return (warped_mask - fixed_mask).abs().mean()


def hnn_loss(roi: dict, target: Tensor) -> Tensor:
    """Deep supervision of the HNN: mean BCE of the 5 side outputs plus BCE of the fusion
    (``L_side + L_fuse``); ``target`` ``(N, 1, H, W)`` in {0, 1}."""
    side = sum(F.binary_cross_entropy_with_logits(s, target) for s in roi["sides"])
    return side / len(roi["sides"]) + F.binary_cross_entropy_with_logits(roi["fuse"], target)


def multiscale_loss(
    fields: Sequence[Tensor],
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    smooth: str = "N",
    fixed_mask: Tensor | None = None,
    moving_mask: Tensor | None = None,
    alpha: float = 1.0,
    beta: float = 0.05,
    gamma: float = 1.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``sum_s alpha L_photo^s + beta L_smooth^s + gamma L_overlap^s`` over the fields' scales.

    Args:
        fields: ``(N, 2, h_s, w_s)`` fields in mm, one per scale.
        fixed, moving: ``(N, 1, H, W)`` images at full resolution (spacing ``spacing`` mm).
        smooth: ``"N"`` or ``"E"``.
        fixed_mask, moving_mask: ROI masks ``(N, 1, H, W)`` in [0, 1]; the overlap term is
            used when both are given (the "M" variants).

    Returns:
        ``(total, {"photo", "smooth", "overlap"})``, each term summed over the scales.
    """
    full = tuple(fixed.shape[2:])
    photo = fixed.new_zeros(())
    smooth_sum = fixed.new_zeros(())
    over = fixed.new_zeros(())
    use_overlap = fixed_mask is not None and moving_mask is not None
    for field in fields:
        shape = tuple(field.shape[2:])
        sp = scale_spacing(spacing, full, shape)
        f_s, m_s = to_scale(fixed, shape), to_scale(moving, shape)
        photo = photo + photometric(f_s, warp_image(m_s, field, sp))
        smooth_sum = smooth_sum + smoothness(field, sp, smooth, f_s)
        if use_overlap:
            warped_mask = warp_image(to_scale(moving_mask, shape), field, sp)
            over = over + overlap(to_scale(fixed_mask, shape), warped_mask)
    total = alpha * photo + beta * smooth_sum + gamma * over
    return total, {"photo": photo, "smooth": smooth_sum, "overlap": over}


__all__ = ["SMOOTHNESS", "hnn_loss", "multiscale_loss", "overlap", "photometric",
           "scale_spacing", "smoothness", "to_scale"]
