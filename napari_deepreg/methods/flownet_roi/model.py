"""The FlowNet + ROI network from its config, and loading trained ones (zoo or file)."""

from __future__ import annotations

import torch

from ...nets.flownet_roi import FlowNetROI
from ..models import Family, load_cached_model, register_family
from .config import METHOD_ID, FlowNetROINetConfig


def build_net(config: FlowNetROINetConfig) -> FlowNetROI:
    """The network of ``config`` (the HNN only for the "+mask" variants)."""
    return FlowNetROI(config.use_mask, config.channels, config.decoder_channels,
                      config.hnn_channels)


def describe(config: FlowNetROINetConfig) -> str:
    """One line: variant, working grid."""
    shape = "x".join(str(n) for n in config.working_shape)
    return f"FlowNet + ROI 2D ({config.variant}), {shape} @ {config.voxel_size:g} mm"


FAMILY = register_family(Family(METHOD_ID, FlowNetROINetConfig, build_net, describe))


def load_model(source: str, device: torch.device | str = "cpu") -> tuple[FlowNetROI,
                                                                          FlowNetROINetConfig]:
    """``(network in eval mode, its config)`` for a zoo id or a model file (cached)."""
    return load_cached_model(source, device, FlowNetROINetConfig, METHOD_ID)


__all__ = ["FAMILY", "build_net", "describe", "load_model"]
