"""DeepSim (Czolbe, Krause, Feragen 2021, eq. 5): a learned similarity through a frozen feature
extractor, 2D and 3D alike.

``DeepSim(I, J) = 1/L sum_l 1/|Omega_l| sum_p cos(F_l,p(I), F_l,p(J))``: the mean over the
extractor's encoder levels of the mean over positions of the cosine similarity of the two
images' feature vectors. 1 for identical inputs; the loss is ``1 - DeepSim`` (0 best, the same
gradient as the paper's ``-DeepSim``). Feature vectors are not mean-centred: the extractor is
trained to ignore the brightness changes of its training data.

The extractor is any module with ``encode(x) -> [feature maps]`` (the DeepSim family's
auto-encoder or segmentation net, ``nets.deepsim.DeepSimUNet``); it is passed in, so this module
imports no network and no method: the DeepSim family's training, ``instance_opt`` and any other
family's loss use the same function. Load a zoo model's extractor with
``napari_deepreg.methods.extractors.load_extractor``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: the smallest feature norm the cosine divides by (a zero feature vector gives cosine 0)
EPS = 1e-6


def feature_cosine(features_a: Sequence[Tensor], features_b: Sequence[Tensor]) -> Tensor:
    """Eq. 5 from precomputed feature maps: the mean over levels of the mean over positions
    (and the batch) of the channel-wise cosine similarity. Each level ``(N, C_l, *S_l)``."""
    if len(features_a) != len(features_b) or not features_a:
        raise ValueError("feature_cosine needs the same, non-zero number of levels for both")
    total = features_a[0].new_zeros(())
    for fa, fb in zip(features_a, features_b, strict=True):
        if fa.shape != fb.shape:
            raise ValueError(f"feature maps differ in shape: {tuple(fa.shape)} {tuple(fb.shape)}")
        total = total + F.cosine_similarity(fa, fb, dim=1, eps=EPS).mean()
    return total / len(features_a)


def deepsim(extractor: nn.Module, warped: Tensor, fixed: Tensor,
            fixed_features: Sequence[Tensor] | None = None) -> Tensor:
    """DeepSim of ``warped`` and ``fixed`` ``(N, 1, *S)`` through ``extractor.encode`` (in [-1,
    1], 1 when identical). Gradients reach ``warped`` (and through it the field); the fixed
    image's features may be passed in (computed once, without a graph)."""
    if fixed_features is None:
        with torch.no_grad():
            fixed_features = extractor.encode(fixed)
    return feature_cosine(extractor.encode(warped), fixed_features)


def deepsim_loss(extractor: nn.Module, warped: Tensor, fixed: Tensor,
                 fixed_features: Sequence[Tensor] | None = None) -> Tensor:
    """``1 - DeepSim`` (0 for identical images)."""
    return 1.0 - deepsim(extractor, warped, fixed, fixed_features)


__all__ = ["EPS", "deepsim", "deepsim_loss", "feature_cosine"]
