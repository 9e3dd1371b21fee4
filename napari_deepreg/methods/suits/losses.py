"""SUITS training losses: MIND replication (pre-training) and the label guide (eq. 3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from ...core.warp import warp_image
from ...losses.functional import mind_ssc
from .descent import to_coarse, upsample_field
from .solver import gauss_newton_step


def mind_replication_loss(net, image: Tensor, modality: int) -> Tensor:
    """L1 between FeatCNN features and MIND-SSC of ``image`` brought to the same grid."""
    feat = net(image, modality)
    target = to_coarse(mind_ssc(image), feat.shape[2:]).detach()
    return (feat - target).abs().mean()


def guide_loss(
    net, fixed: Tensor, moving: Tensor, fixed_labels: Tensor, moving_onehot: Tensor,
    u: Tensor, spacing: Sequence[float], lam: float, gamma: float = 1.0,
) -> Tensor:
    """One tracked SUITS update on FeatCNN features, then cross-entropy (eq. 3).

    ``u`` is the coarse field after the untracked iterations (update-grid voxels), ``fixed``
    and ``moving`` ``(N, 1, *S)`` the images (modality 1 and 0), ``fixed_labels`` ``(N, *S)``
    integer, ``moving_onehot`` ``(N, L, *S)`` float. The warped one-hot labels are not one-hot
    any more (linear interpolation); their log is the cross-entropy's input.
    """
    shape = fixed.shape[2:]
    cshape = u.shape[2:]
    warped = warp_image(moving, upsample_field(u.detach(), shape, spacing), spacing)
    r_fix = to_coarse(net(fixed, 1), cshape)
    r_mov = to_coarse(net(warped, 0), cshape)
    u_new = u.detach() + gamma * gauss_newton_step(r_fix, r_mov, u.detach(), lam)
    probs = warp_image(moving_onehot, upsample_field(u_new, shape, spacing), spacing)
    return F.nll_loss(probs.clamp_min(1e-6).log(), fixed_labels.long())
