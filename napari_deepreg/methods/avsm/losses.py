"""Losses of the AVSM family (Shen et al. 2019, Eq. 3-13).

Affine: ``sim(st) + sim(ts) + lambda_ar(n) (|A - I|^2 + |b|^2)`` for both directions
``+ lambda_as (|A^ts A - I|^2 + |A^ts b + b^ts|^2)``, with the epoch-dependent
``lambda_ar = C K / (K + exp(n / K))``. vSVF, summed over the steps:
``sim(st) + sim(ts) + lambda_vr (<m, v>_st + <m, v>_ts) + lambda_vs |Phi^-1 o (Phi^ts)^-1 - id|^2``.
Units (a choice the paper leaves open): ``b``, ``m``, ``v`` and the symmetry error are in the
normalised frame (fractions of the image's largest extent); ``<m, v>`` is the mean over the
voxels (an integral over the unit cube); the vSVF symmetry error is the *sum* over voxels of
the squared error (with a mean the paper's weight 1e-4 would have no effect at all).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ...losses import functional as L
from ...nets.avsm import grid_frame, inverse_consistency


def lambda_ar(epoch: float, c: float = 10.0, k: float = 4.0) -> float:
    """Epoch-dependent affine regularisation weight ``C K / (K + exp(n / K))`` (Eq. 13)."""
    if c == 0:
        return 0.0
    return c * k / (k + math.exp(min(epoch / k, 700.0)))


def affine_regularity(a: Tensor, b: Tensor) -> Tensor:
    """``|A - I|_F^2 + |b|^2`` per batch item ``(N,)``."""
    eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
    return (a - eye).pow(2).sum((-2, -1)) + b.pow(2).sum(-1)


def affine_symmetry(a: Tensor, b: Tensor, a_ts: Tensor, b_ts: Tensor) -> Tensor:
    """``|A^ts A - I|_F^2 + |A^ts b + b^ts|^2`` per batch item (Eq. 5; 0 for exact inverses)."""
    eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
    lin = (a_ts @ a - eye).pow(2).sum((-2, -1))
    shift = ((a_ts @ b.unsqueeze(-1)).squeeze(-1) + b_ts).pow(2).sum(-1)
    return lin + shift


def similarity_loss(kind: str, warped: Tensor, fixed: Tensor) -> Tensor:
    """The paper's similarities as losses (0 best): mk-LNCC windows S/4 and S/2 (0.3/0.7)."""
    s = min(fixed.shape[2:])
    if kind == "ncc":
        return L.ncc(warped, fixed)
    quarter, half = max(3, s // 4) | 1, max(3, s // 2) | 1
    if kind == "lncc":
        return L.lncc(warped, fixed, quarter)
    return L.mk_lncc(warped, fixed, (quarter, half), (0.3, 0.7))


def momentum_energy(momentum: Tensor, velocity: Tensor) -> Tensor:
    """``<m, v>`` (mean over voxels of ``m . v``, normalised units), averaged over the batch."""
    return (momentum * velocity).sum(1).mean()


def normalised_symmetry(u_st: Tensor, u_ts: Tensor, spacing: Sequence[float]) -> Tensor:
    """Sum over voxels of ``|Phi^-1 o (Phi^ts)^-1 - id|^2`` in units of the largest extent."""
    _, radius = grid_frame(u_st.shape[2:], spacing)
    err = inverse_consistency(u_st, u_ts, spacing) / (2 * radius)
    return err.pow(2).sum(1).flatten(1).sum(1).mean()


def inverse_consistency_log(
    u_st: Tensor, u_ts: Tensor, spacing: Sequence[float], margin: int = 2
) -> float:
    """``ln(mean |Phi^-1 o (Phi^ts)^-1 - id|^2)`` in the unit-extent frame, interior voxels
    (``margin`` voxels from the border, as the paper evaluates 10 voxels in at 192x192x80)."""
    _, radius = grid_frame(u_st.shape[2:], spacing)
    err = (inverse_consistency(u_st, u_ts, spacing) / (2 * radius)).pow(2).sum(1)
    if margin:
        err = err[(slice(None), *[slice(margin, -margin)] * (err.ndim - 1))]
    return float(torch.log(err.mean().clamp_min(1e-30)))


__all__ = ["affine_regularity", "affine_symmetry", "inverse_consistency_log", "lambda_ar",
           "momentum_energy", "normalised_symmetry", "similarity_loss"]
