"""The DeepSim family's registration losses (Czolbe et al. 2021, eq. 1).

The DeepSim metric itself (eq. 5: ``feature_cosine``, ``deepsim``, ``deepsim_loss``) lives in
:mod:`napari_deepreg.losses.deepsim`, where ``instance_opt`` and other families use it too; it
is re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ...losses import functional as L
from ...losses.deepsim import EPS, deepsim, deepsim_loss, feature_cosine

#: the registration similarities of the family: the two DeepSim variants and the paper's
#: baselines trained the same way (MSE, NCC, NCC + supervised soft Dice)
SIMILARITIES = ("deepsim_ae", "deepsim_seg", "mse", "ncc", "ncc_sup")


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
