"""The semantic B-spline network from its config, and loading trained ones (zoo or file)."""

from __future__ import annotations

import torch

from ...nets.semantic_bspline import SemanticBSplineNet
from ..models import Family, load_cached_model, register_family
from .config import METHOD_ID, SemanticBSplineNetConfig


def build_net(config: SemanticBSplineNetConfig) -> SemanticBSplineNet:
    """The network of ``config``."""
    return SemanticBSplineNet(
        config.num_classes,
        config.dims,
        strides=config.strides,
        combine=config.combine,
        unet_channels=config.unet_channels or None,
        regnet_channels=config.regnet_channels or None,
        norm=config.norm,
    )


def describe(config: SemanticBSplineNetConfig) -> str:
    """One line: dims, working grid, scales."""
    shape = "x".join(str(n) for n in config.working_shape)
    return (f"semantic B-spline {config.dims}D, {shape} @ {config.voxel_size:g} mm, strides "
            f"{'/'.join(str(s) for s in config.strides)} ({config.combine})")


FAMILY = register_family(Family(METHOD_ID, SemanticBSplineNetConfig, build_net, describe))


def load_model(
    source: str, device: torch.device | str = "cpu"
) -> tuple[SemanticBSplineNet, SemanticBSplineNetConfig]:
    """``(network in eval mode, its SemanticBSplineNetConfig)`` for a zoo id or a model file.

    Cached per source and device (zoo weights are checked against their sha256 on first load).
    """
    return load_cached_model(source, device, SemanticBSplineNetConfig, METHOD_ID)


__all__ = ["FAMILY", "build_net", "describe", "load_model"]
