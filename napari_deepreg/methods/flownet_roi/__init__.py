"""Unsupervised FlowNet-style registration with an ROI segmentation module (Shan et al. 2018),
2D only.

* :mod:`.config` — :class:`FlowNetROIConfig` (inference) and :class:`FlowNetROINetConfig`
  (the trained model; its ``variant`` is one of the paper's PN, PE, PN+mask, PE+mask,
  PMN+mask, PME+mask);
* :mod:`.model` — the network (``nets.flownet_roi``) from its config, trained models by id/file;
* :mod:`.losses` — per-scale photometric, smoothness (N / E), ROI overlap, HNN deep supervision;
* :mod:`.method` — :func:`estimate` and :func:`zoo_method_spec`.

Training: ``napari_deepreg.training.tasks.flownet_roi``.
"""

from .config import METHOD_ID, VARIANTS, FlowNetROIConfig, FlowNetROINetConfig
from .losses import hnn_loss, multiscale_loss, overlap, photometric, smoothness
from .method import NOT_3D, estimate, predict_field, zoo_method_spec
from .model import FAMILY, build_net, describe, load_model

__all__ = ["FAMILY", "METHOD_ID", "NOT_3D", "VARIANTS", "FlowNetROIConfig",
           "FlowNetROINetConfig", "build_net", "describe", "estimate", "hnn_loss", "load_model",
           "multiscale_loss", "overlap", "photometric", "predict_field", "smoothness",
           "zoo_method_spec"]
