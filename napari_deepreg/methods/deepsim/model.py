"""DeepSim networks from their config, and loading trained ones (zoo or file)."""

from __future__ import annotations

import torch
from torch import nn

from ...nets.deepsim import DeepSimRegistration, DeepSimUNet
from ..models import Family, load_cached_model, register_family
from .config import METHOD_ID, DeepSimNetConfig


def build_extractor(config: DeepSimNetConfig, dropout: float = 0.0) -> DeepSimUNet:
    """The feature extractor of ``config.extractor_task``: the auto-encoder (no skips, sigmoid
    image out) or the segmentation U-Net (``num_classes`` logits)."""
    if config.extractor_task == "ae":
        return DeepSimUNet(1, 1, config.dims, config.extractor_channels, skips=False,
                           dropout=dropout, out_act="sigmoid")
    return DeepSimUNet(1, config.num_classes, config.dims, config.extractor_channels,
                       skips=True, dropout=dropout)


def build_net(config: DeepSimNetConfig) -> nn.Module:
    """An extractor (``role: extractor``) or a registration net (with its frozen extractor for
    the DeepSim similarities)."""
    if config.role == "extractor":
        return build_extractor(config, config.dropout)
    extractor = build_extractor(config) if config.uses_extractor else None
    return DeepSimRegistration(config.dims, config.channels, config.dropout, extractor)


def describe(config: DeepSimNetConfig) -> str:
    """One line: role, variant, working grid."""
    shape = "x".join(str(n) for n in config.working_shape)
    what = (f"{config.extractor_task} feature extractor" if config.role == "extractor"
            else f"registration net trained with {config.similarity}")
    return f"DeepSim {config.dims}D {what}, {shape} @ {config.voxel_size:g} mm"


FAMILY = register_family(Family(METHOD_ID, DeepSimNetConfig, build_net, describe))


def load_model(source: str, device: torch.device | str = "cpu") -> tuple[nn.Module,
                                                                          DeepSimNetConfig]:
    """``(network in eval mode, its config)`` for a zoo id or a model file (cached)."""
    return load_cached_model(source, device, DeepSimNetConfig, METHOD_ID)


__all__ = ["FAMILY", "build_extractor", "build_net", "describe", "load_model"]
