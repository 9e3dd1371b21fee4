"""DeepSim: registration trained with a learned semantic similarity (Czolbe, Krause, Feragen
2021), 2D and 3D.

* :mod:`.config` — :class:`DeepSimConfig` (inference) and :class:`DeepSimNetConfig` (a trained
  model: a feature ``extractor`` — auto-encoder or segmentation net — or a ``registration`` net
  trained with DeepSim-ae, DeepSim-seg or a baseline similarity);
* :mod:`.model` — the networks (``nets.deepsim``) from their config, trained models by id/file;
* :mod:`.losses` — DeepSim (eq. 5) and the registration loss (eq. 1, diffusion regulariser);
* :mod:`.method` — :func:`estimate` and :func:`zoo_method_spec`.

Training: ``napari_deepreg.training.tasks.deepsim`` (both roles).
"""

from .config import EXTRACTOR_TASKS, METHOD_ID, ROLES, DeepSimConfig, DeepSimNetConfig
from .losses import (
    SIMILARITIES,
    deepsim,
    deepsim_loss,
    feature_cosine,
    registration_loss,
    similarity_loss,
)
from .method import estimate, predict_field, zoo_method_spec
from .model import FAMILY, build_extractor, build_net, describe, load_model

__all__ = ["EXTRACTOR_TASKS", "FAMILY", "METHOD_ID", "ROLES", "SIMILARITIES", "DeepSimConfig",
           "DeepSimNetConfig", "build_extractor", "build_net", "deepsim", "deepsim_loss",
           "describe", "estimate", "feature_cosine", "load_model", "predict_field",
           "registration_loss", "similarity_loss", "zoo_method_spec"]
