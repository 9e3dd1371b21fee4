"""AVSM: networks for joint affine and non-parametric registration (Shen et al., CVPR 2019).

A multi-step affine network (one network, weights shared over the steps like a recurrent net)
predicts an affine map by composing updates ``A_t = A~ A_{t-1}``, ``b_t = A~ b_{t-1} + b~``,
each seeing the target and the source resampled *from the original* with the current affine.
Then a momentum U-Net predicts a low-resolution vector momentum, smoothed into a velocity by a
multi-Gaussian kernel; the map is advected by it for unit time from the affine map (multi-step:
the next step starts from the previous map), upsampled, and the source interpolated once.
See :mod:`napari_deepreg.nets.avsm` for the geometry.

The family:

* :mod:`.config` — :class:`AvsmConfig`, :class:`AvsmAffineConfig` (inference settings of the
  methods ``avsm`` and ``avsm_affine``) and :class:`AvsmNetConfig` (the trained model; the
  ``method:`` section of ``configs/avsm_*.yaml``);
* :mod:`.model` — the network from its config, and trained models by zoo id or file;
* :mod:`.losses` — the paper's losses (Eq. 3-13) and the inverse-consistency figure;
* :mod:`.method` — :func:`estimate` (both methods) and :func:`zoo_method_spec` (ids
  ``avsm_affine*``: affine only).

Training (``napari-deepreg train avsm``) and the step evaluation of the ablation live in
``napari_deepreg.training.tasks.avsm``.
"""

from ...nets.avsm import compose_affine_field
from .config import (
    ANATOMIES,
    METHOD_ID,
    SIMILARITIES,
    STAGES,
    AvsmAffineConfig,
    AvsmConfig,
    AvsmNetConfig,
)
from .losses import (
    affine_regularity,
    affine_symmetry,
    inverse_consistency_log,
    lambda_ar,
    momentum_energy,
    normalised_symmetry,
    similarity_loss,
)
from .method import estimate, predict, working_grid, zoo_method_spec
from .model import FAMILY, build_model, build_net, load_model

__all__ = [
    "ANATOMIES",
    "FAMILY",
    "METHOD_ID",
    "SIMILARITIES",
    "STAGES",
    "AvsmAffineConfig",
    "AvsmConfig",
    "AvsmNetConfig",
    "affine_regularity",
    "affine_symmetry",
    "build_model",
    "build_net",
    "compose_affine_field",
    "estimate",
    "inverse_consistency_log",
    "lambda_ar",
    "load_model",
    "momentum_energy",
    "normalised_symmetry",
    "predict",
    "similarity_loss",
    "working_grid",
    "zoo_method_spec",
]
