"""Semantically guided two-step B-spline registration (Ha, Wilms & Heinrich, Sensors 2020).

A feature U-Net shared by the fixed and the moving image predicts soft label maps (supervised
by a weighted cross-entropy); two registration networks turn the feature pair into cubic
B-spline fields, a coarse one first and a finer one on the moving features warped by it; the
fields are added or composed. Training needs label maps (label alignment loss + semantic loss +
a smoothness penalty); at inference any pair of the model's domain is registered without labels.

The family:

* :mod:`.config` — :class:`SemanticBSplineConfig` (inference: optional test-time refinement,
  an alternative model file) and :class:`SemanticBSplineNetConfig` (the trained model:
  architecture, working grid, losses, training data; the ``method:`` section of
  ``configs/semantic_bspline_*.yaml``);
* :mod:`.model` — the network from its config, and trained models by zoo id or file;
* :mod:`.losses` — the paper's losses;
* :mod:`.method` — :func:`estimate` and :func:`zoo_method_spec`.

Training lives in ``napari_deepreg.training.tasks.semantic_bspline`` (it imports this package,
never the reverse); the tissue labels of the training templates in ``data.anatomy``.
"""

from ...core import resize_separable
from .config import ANATOMIES, METHOD_ID, SemanticBSplineConfig, SemanticBSplineNetConfig
from .losses import (
    label_alignment,
    label_weights,
    one_hot,
    smoothness_penalty,
    weighted_cross_entropy,
)
from .method import estimate, normalise_batch, predict_field, working_grid, zoo_method_spec
from .model import FAMILY, build_net, load_model

__all__ = [
    "ANATOMIES",
    "FAMILY",
    "METHOD_ID",
    "SemanticBSplineConfig",
    "SemanticBSplineNetConfig",
    "build_net",
    "estimate",
    "label_alignment",
    "label_weights",
    "load_model",
    "normalise_batch",
    "one_hot",
    "predict_field",
    "resize_separable",
    "smoothness_penalty",
    "weighted_cross_entropy",
    "working_grid",
    "zoo_method_spec",
]
