"""Inference of the FlowNet + ROI family: a trained 2D model registers a pair of slices.

The pair is resampled to the model's working voxel size (same field of view), padded to a
multiple of 64 and at least the training grid, normalised, registered (only the finest of the
7 fields is used, as in the paper), and the field comes back to the input grid. Optional
test-time refinement starts from the prediction (:mod:`..refine`); the pipeline applies the
never-worse guard. 3D volumes are refused: this is a 2D method.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import torch
from torch import Tensor

from ...nets.flownet_roi import GRID_MULTIPLE, FlowNetROI
from ..base import Estimate, MethodSpec, Progress
from ..learned import check_pair, feed_forward_estimate, learned_method_spec
from ..working_grid import predict_on_grid, working_grid
from .config import METHOD_ID, FlowNetROIConfig, FlowNetROINetConfig
from .model import load_model

NOT_3D = ("flownet_roi is a 2D method (Shan et al. register 2D slices): give it a 2D pair, "
          "or use a 3D method for volumes")


def predict_field(model: FlowNetROI, net_config: FlowNetROINetConfig, fixed: Tensor,
                  moving: Tensor, spacing: Sequence[float]) -> tuple[Tensor, dict[str, Any]]:
    """The model's field ``(1, 2, H, W)`` (mm) for a 2D pair on one grid, at its resolution."""
    shape = tuple(fixed.shape[2:])
    # voxels counted from the extent (256 px at 1 mm -> 128 at 2 mm): counted between the
    # corner voxels' centres they were 129, padded to 192, and the network ran on 2.25 times
    # the pixels (27.9 ms instead of ~12 ms per 256x256 pair, benchmarks/time_flownet_roi.py)
    grid = working_grid(shape, spacing, net_config.voxel_size, GRID_MULTIPLE,
                        min_shape=net_config.working_shape, corners=False)
    field, info = predict_on_grid(model, grid, fixed, moving)
    return field, {**info, "variant": net_config.variant}


def estimate(
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    config: FlowNetROIConfig | None = None,
    device: torch.device | str | None = None,
    model_id: str | None = None,
) -> Generator[Progress, None, Estimate]:
    """Register the 2D ``moving`` to ``fixed`` with a trained model; yields Progress.

    Args:
        fixed, moving: ``(1, 1, H, W)`` float images on the same grid (3D: ValueError).
        spacing: pixel size in mm.
        config: inference settings (defaults if None).
        device: where to run (default: the device of ``fixed``).
        model_id: the zoo model; ``config.model_file`` overrides it.
    """
    cfg = config if config is not None else FlowNetROIConfig()
    if check_pair(fixed, moving) != 2:
        raise ValueError(NOT_3D)
    return (yield from feed_forward_estimate(cfg, fixed, moving, spacing, device, model_id,
                                             METHOD_ID, load_model, predict_field))


def zoo_method_spec(entry: Any) -> MethodSpec:
    """The :class:`MethodSpec` of one zoo model of this method (called by the methods registry)."""
    return learned_method_spec(
        entry, estimate, FlowNetROIConfig,
        title=f"FlowNet + ROI (2D only, {entry.id})",
        description="Unsupervised FlowNet-style registration with an HNN ROI module (Shan et "
        "al. 2018). A 2D method: 3D volumes are refused (registering a volume slice by "
        "slice is not offered).",
    )


__all__ = ["NOT_3D", "estimate", "predict_field", "zoo_method_spec"]
