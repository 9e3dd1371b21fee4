"""The DeepSim similarity (Czolbe et al. 2021, eq. 5) and the family's registration losses.

``DeepSim(I o Phi, J) = 1/L sum_l 1/|Omega_l| sum_p cos(F_l,p(I o Phi), F_l,p(J))``: the mean
over the extractor's encoder stages of the mean over positions of the cosine similarity of the
two images' feature vectors. 1 for identical inputs; the loss is ``1 - DeepSim`` (0 best, the
same gradient as the paper's ``-DeepSim``). Feature vectors are not mean-centred: the extractor
is trained to ignore the brightness changes of its training data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...losses import functional as L

#: the registration similarities of the family: the two DeepSim variants and the paper's
#: baselines trained the same way (MSE, NCC, NCC + supervised soft Dice)
SIMILARITIES = ("deepsim_ae", "deepsim_seg", "mse", "ncc", "ncc_sup")
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


def deepsim_loss(extractor: nn.Module, warped: Tensor, fixed: Tensor) -> Tensor:
    """``1 - DeepSim`` (0 for identical images)."""
    return 1.0 - deepsim(extractor, warped, fixed)


def similarity_loss(kind: str, warped: Tensor, fixed: Tensor,
                    extractor: nn.Module | None = None) -> Tensor:
    """The image term of ``kind`` (one of :data:`SIMILARITIES`), 0 best. ``ncc_sup`` gives its
    NCC part here; its Dice part needs labels (:func:`registration_loss`)."""
    if kind in ("deepsim_ae", "deepsim_seg"):
        if extractor is None:
            raise ValueError(f"{kind} needs the model's feature extractor")
        return deepsim_loss(extractor, warped, fixed)
    if kind == "mse":
        return L.mse(warped, fixed)
    if kind in ("ncc", "ncc_sup"):
        return L.ncc(warped, fixed)
    raise ValueError(f"similarity must be one of {SIMILARITIES}, got {kind!r}")


def registration_loss(kind: str, warped: Tensor, fixed: Tensor, field: Tensor,
                      spacing: Sequence[float], lambda_diffusion: float,
                      extractor: nn.Module | None = None,
                      label_term: Tensor | None = None,
                      lambda_labels: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """``D(I o Phi, J) + lambda R(Phi)`` (eq. 1) with the diffusion regulariser (derivatives per
    mm, :func:`~napari_deepreg.losses.functional.diffusion`); ``ncc_sup`` adds ``lambda_labels
    * label_term`` (a soft Dice loss of the warped labels). Returns ``(total, terms)``."""
    sim = similarity_loss(kind, warped, fixed, extractor)
    reg = L.diffusion(field, spacing)
    total = sim + lambda_diffusion * reg
    terms = {"sim": sim, "reg": reg}
    if kind == "ncc_sup":
        if label_term is None:
            raise ValueError("ncc_sup needs the labels' Dice term")
        total = total + lambda_labels * label_term
        terms["labels"] = label_term
    return total, terms


__all__ = ["EPS", "SIMILARITIES", "deepsim", "deepsim_loss", "feature_cosine",
           "registration_loss", "similarity_loss"]
