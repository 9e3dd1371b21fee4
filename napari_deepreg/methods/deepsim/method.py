"""Inference of the DeepSim family: a trained registration net registers a 2D or 3D pair.

The pair is resampled to the model's working voxel size (same field of view), padded to a
multiple of 4 and at least the training grid, normalised, and the predicted field comes back to
the input grid. Optional test-time refinement starts from the prediction (:mod:`..refine`); the
pipeline applies the never-worse guard. Extractor model files do not register (InputError).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ...nets.deepsim import GRID_MULTIPLE
from ...volume import InputError
from ..base import Estimate, MethodSpec, Progress
from ..learned import feed_forward_estimate, learned_method_spec
from ..working_grid import predict_on_grid, working_grid
from .config import METHOD_ID, DeepSimConfig, DeepSimNetConfig
from .model import load_model


def predict_field(model: nn.Module, net_config: DeepSimNetConfig, fixed: Tensor,
                  moving: Tensor, spacing: Sequence[float]) -> tuple[Tensor, dict[str, Any]]:
    """The model's field ``(1, D, *S)`` (mm) for a pair on one grid, at its resolution."""
    shape = tuple(fixed.shape[2:])
    grid = working_grid(shape, spacing, net_config.voxel_size, GRID_MULTIPLE,
                        min_shape=net_config.working_shape)
    field, info = predict_on_grid(model, grid, fixed, moving)
    return field, {**info, "similarity": net_config.similarity}


def _check_registration_model(source: str, net_config: DeepSimNetConfig) -> None:
    if net_config.role != "registration":
        raise InputError(f"{source} is a DeepSim feature extractor, not a registration model")


def estimate(
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    config: DeepSimConfig | None = None,
    device: torch.device | str | None = None,
    model_id: str | None = None,
) -> Generator[Progress, None, Estimate]:
    """Register ``moving`` to ``fixed`` with a trained DeepSim registration net.

    Args:
        fixed, moving: ``(1, 1, *S)`` float images on the same grid (2D or 3D, as the model).
        spacing: voxel size in mm.
        config: inference settings (defaults if None).
        device: where to run (default: the device of ``fixed``).
        model_id: the zoo model; ``config.model_file`` overrides it.
    """
    cfg = config if config is not None else DeepSimConfig()
    return (yield from feed_forward_estimate(cfg, fixed, moving, spacing, device, model_id,
                                             METHOD_ID, load_model, predict_field,
                                             _check_registration_model))


def zoo_method_spec(entry: Any) -> MethodSpec:
    """The :class:`MethodSpec` of one zoo model of this method (called by the methods registry)."""
    return learned_method_spec(
        entry, estimate, DeepSimConfig,
        title=f"DeepSim ({entry.id})",
        description="U-Net registration trained with a learned semantic similarity (DeepSim, "
        "Czolbe et al. 2021): cosine similarity of a frozen feature extractor's features.",
    )


__all__ = ["estimate", "predict_field", "zoo_method_spec"]
