"""Similarities, regularisers and label losses: stateless functions and thin nn.Module wrappers.

``functional`` holds the maths; ``modules`` wraps it and ``new_loss(name, **params)`` builds a loss
by name (``"mse"``, ``"ncc"``, ``"lncc"``, ``"mk_lncc"``, ``"mind_ssc"``, ``"diffusion"``,
``"bending"``, ``"dice"``, ``"deepsim"`` with an ``extractor``). All return scalars where lower
is better. The submodule ``deepsim`` holds the learned DeepSim similarity (a frozen feature
extractor passed in).
"""

from .deepsim import deepsim_loss, feature_cosine
from .functional import (
    LocalMoments,
    bending_energy,
    box_mean,
    descriptor_distance,
    diffusion,
    lncc,
    local_moments,
    mind_ssc,
    mind_ssc_loss,
    mk_lncc,
    mse,
    ncc,
    one_hot,
    soft_dice,
)
from .modules import (
    LOSSES,
    REGULARISERS,
    SIMILARITIES,
    BendingEnergyLoss,
    DeepSimLoss,
    DiceLoss,
    DiffusionLoss,
    LNCCLoss,
    MINDSSCLoss,
    MSELoss,
    MultiKernelLNCCLoss,
    NCCLoss,
    new_loss,
)

__all__ = [
    "LOSSES",
    "LocalMoments",
    "REGULARISERS",
    "SIMILARITIES",
    "BendingEnergyLoss",
    "DeepSimLoss",
    "DiceLoss",
    "DiffusionLoss",
    "LNCCLoss",
    "MINDSSCLoss",
    "MSELoss",
    "MultiKernelLNCCLoss",
    "NCCLoss",
    "bending_energy",
    "box_mean",
    "deepsim_loss",
    "descriptor_distance",
    "diffusion",
    "feature_cosine",
    "lncc",
    "local_moments",
    "mind_ssc",
    "mind_ssc_loss",
    "mk_lncc",
    "mse",
    "ncc",
    "new_loss",
    "one_hot",
    "soft_dice",
]
