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
from ..learned import check_model_dims, check_pair, learned_method_spec, model_source, target_device
from ..models import model_file_notes
from ..refine import maybe_refine, refine_steps
from ..semantic_bspline.method import normalise_batch
from ..working_grid import working_grid
from .config import METHOD_ID, DeepSimConfig, DeepSimNetConfig
from .model import load_model


def predict_field(model: nn.Module, net_config: DeepSimNetConfig, fixed: Tensor,
                  moving: Tensor, spacing: Sequence[float]) -> tuple[Tensor, dict[str, Any]]:
    """The model's field ``(1, D, *S)`` (mm) for a pair on one grid, at its resolution."""
    shape = tuple(fixed.shape[2:])
    grid = working_grid(shape, spacing, net_config.voxel_size, GRID_MULTIPLE,
                        min_shape=net_config.working_shape)
    pair = normalise_batch(grid.to_working(torch.cat([fixed, moving], 0)))
    with torch.no_grad():
        field = model(pair[:1], pair[1:], grid.spacing)
    info = {"working_shape": list(grid.resampled), "working_spacing": list(grid.spacing),
            "padded_shape": list(grid.padded), "similarity": net_config.similarity}
    return grid.from_working(field, shape), info


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
    ndim = check_pair(fixed, moving)
    dev = target_device(fixed, device)
    source = model_source(cfg, model_id, METHOD_ID)
    total = 2 + refine_steps(cfg)
    yield Progress(0, total, "loading model")
    model, net_config = load_model(source, dev)
    if net_config.role != "registration":
        raise InputError(f"{source} is a DeepSim feature extractor, not a registration model")
    check_model_dims(source, net_config.dims, ndim)
    yield Progress(1, total, "predicting the field")
    field, info = predict_field(model, net_config, fixed.to(dev), moving.to(dev), spacing)
    info["model"] = str(source)
    info["notes"] = model_file_notes(source)
    field = yield from maybe_refine(cfg, fixed, moving, spacing, field, info, dev, 2, total)
    yield Progress(total, total, "done")
    return Estimate(field=field, affine=None, info=info)


def zoo_method_spec(entry: Any) -> MethodSpec:
    """The :class:`MethodSpec` of one zoo model of this method (called by the methods registry)."""
    return learned_method_spec(
        entry, estimate, DeepSimConfig,
        title=f"DeepSim ({entry.id})",
        description="U-Net registration trained with a learned semantic similarity (DeepSim, "
        "Czolbe et al. 2021): cosine similarity of a frozen feature extractor's features.",
    )


__all__ = ["estimate", "predict_field", "zoo_method_spec"]
