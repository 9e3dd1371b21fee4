"""The AVSM network from its config, and loading trained ones (zoo or file)."""

from __future__ import annotations

import torch

from ...nets.avsm import AvsmNet
from ..models import Family, load_cached_model, register_family
from .config import METHOD_ID, AvsmNetConfig


def build_net(config: AvsmNetConfig) -> AvsmNet:
    """The network of ``config`` (no momentum net for a ``stage: affine`` model)."""
    return AvsmNet(
        config.dims,
        config.affine_shape,
        config.affine_channels,
        config.unet_channels if config.stage == "vsvf" else (),
        config.sigmas,
        config.sigma_weights,
        config.time_steps,
    )


def build_model(config: AvsmNetConfig) -> AvsmNet:
    """:func:`build_net` with the ``pairs_seen`` buffer every AVSM model file holds.

    The buffer counts training pairs for the epoch-dependent ``lambda_ar`` and is saved with
    the weights, so a resumed or fine-tuned run continues the schedule.
    """
    model = build_net(config)
    model.register_buffer("pairs_seen", torch.zeros((), dtype=torch.long))
    return model


def describe(config: AvsmNetConfig) -> str:
    """One line: stage, working grid."""
    shape = "x".join(str(n) for n in config.working_shape)
    kind = "affine network" if config.stage == "affine" else "affine + vSVF"
    return f"AVSM {kind} {config.dims}D, {shape} @ {config.voxel_size:g} mm"


FAMILY = register_family(Family(METHOD_ID, AvsmNetConfig, build_model, describe))


def load_model(source: str, device: torch.device | str = "cpu") -> tuple[AvsmNet, AvsmNetConfig]:
    """``(network in eval mode, its AvsmNetConfig)`` for a zoo id or a model file (cached)."""
    return load_cached_model(source, device, AvsmNetConfig, METHOD_ID)


__all__ = ["FAMILY", "build_model", "build_net", "describe", "load_model"]
