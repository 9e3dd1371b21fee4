"""The SUITS FeatCNN (``nets.suits``) from its trained-model config, and loading trained ones."""

from __future__ import annotations

import torch

from ...nets.suits import FeatCNN, count_parameters
from ..models import Family, load_cached_model, register_family
from .config import METHOD_ID, SuitsNetConfig


def build_net(config: SuitsNetConfig) -> FeatCNN:
    """The Y-shaped FeatCNN of ``config``."""
    return FeatCNN(config.dims, config.channels)


def describe(config: SuitsNetConfig) -> str:
    """One line: dims, channels, working voxel size, training λ."""
    return (f"SUITS FeatCNN {config.dims}D, {config.channels} channels @ "
            f"{config.voxel_size:g} mm (trained at λ = {config.lam:g})")


FAMILY = register_family(Family(METHOD_ID, SuitsNetConfig, build_net, describe))


def load_model(source: str, device: torch.device | str = "cpu") -> tuple[FeatCNN,
                                                                          SuitsNetConfig]:
    """``(FeatCNN in eval mode, its config)`` for a zoo id or a model file (cached)."""
    return load_cached_model(source, device, SuitsNetConfig, METHOD_ID)


__all__ = ["FAMILY", "FeatCNN", "build_net", "count_parameters", "describe", "load_model"]
