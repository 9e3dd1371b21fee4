"""Inference of the AVSM family: the methods ``avsm`` (affine + vSVF) and ``avsm_affine``.

The pair is resampled to the model's working voxel size (same field of view) and zero-padded to
a multiple of 8; the affine is moved back to the input grid frame exactly, the non-affine part
is resized and composed with it analytically at the input resolution.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core import affine_to_field, compose_affine_field, resize, shift_origin
from ...nets.avsm import AvsmNet, affine_matrix_mm
from ...volume import InputError
from ..base import Estimate, MethodSpec, Progress
from ..learned import (
    check_model_dims,
    check_pair,
    learned_method_spec,
    model_source,
    target_device,
)
from ..models import model_file_notes
from ..refine import maybe_refine, refine_steps, refined_affine
from ..working_grid import WorkingGrid
from ..working_grid import working_grid as fit_working_grid
from .config import GRID_MULTIPLE, METHOD_ID, AvsmAffineConfig, AvsmConfig, AvsmNetConfig
from .model import load_model


def working_grid(shape: Sequence[int], spacing: Sequence[float], voxel_size: float,
                 min_shape: Sequence[int] | None = None) -> WorkingGrid:
    """``(resampled shape, its spacing, padded shape)`` of an input grid at ``voxel_size`` mm
    (field of view kept, padded to a multiple of 8 per axis and at least ``min_shape``, the
    training grid, centred).

    The voxel count comes from the extent (``n s / v``): a 2 mm 96x112x96 brain becomes the
    48x56x48 grid the 4 mm models trained on, where the corner count (49x57x49, padded to
    56x64x56) showed them a smaller brain and made the affine invent a scale (about 3-14 %
    on held-out label-map pairs without any motion).
    """
    return fit_working_grid(shape, spacing, voxel_size, GRID_MULTIPLE, min_shape=min_shape,
                            corners=False)


def predict(
    model: AvsmNet,
    net_config: AvsmNetConfig,
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    affine_steps: int,
    vsvf_steps: int,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """``(field (1, D, *S) mm, affine (D+1, D+1) grid-frame mm, info)`` on the input grid.

    The pair is resampled to the model's voxel size (same field of view) and zero-padded to a
    multiple of 8; the affine is moved back to the input grid frame exactly, the non-affine part
    is resized and composed with it analytically at the input resolution.
    """
    shape = tuple(fixed.shape[2:])
    grid = working_grid(shape, spacing, net_config.voxel_size, net_config.working_shape)
    pair = grid.to_working(torch.cat([fixed, moving], 0))
    w_spacing = grid.spacing
    with torch.no_grad():
        a, b = model.predict_affine(pair[:1], pair[1:], w_spacing, affine_steps)[-1]
        m_pad = affine_matrix_mm(a, b, grid.padded, w_spacing)[0].double()
        # padded voxel 0 sits at -off in the input grid frame: M_in = T(-off) M_pad T(off)
        off = [-lo * s for lo, s in zip(grid.before, w_spacing, strict=True)]
        matrix = shift_origin(m_pad, off)
        d = len(shape)
        info: dict[str, Any] = {"working_shape": list(grid.resampled),
                                "working_spacing": list(w_spacing),
                                "padded_shape": list(grid.padded)}
        outer = affine_to_field(matrix.to(fixed), shape, spacing)
        if vsvf_steps > 0:
            steps = model.vsvf(pair[:1], pair[1:], w_spacing, a, b, vsvf_steps)
            deform = resize(steps[-1]["deform"], grid.padded, antialias=False)
            deform = resize(deform[(slice(None), slice(None), *grid.crop())], shape,
                            antialias=False)
            field = compose_affine_field(outer, matrix[:d, :d].to(fixed), deform)
            info["momentum_rms"] = float(steps[-1]["momentum"].pow(2).mean().sqrt())
        else:
            field = outer
    return field, matrix, info


def estimate(
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    config: AvsmConfig | AvsmAffineConfig | None = None,
    device: torch.device | str | None = None,
    model_id: str | None = None,
) -> Generator[Progress, None, Estimate]:
    """Register ``moving`` to ``fixed`` with a trained AVSM model; yields Progress.

    Args:
        fixed, moving: ``(1, 1, *S)`` float images in [0, 1] on the same grid.
        spacing: voxel size (mm) along the array axes.
        config: :class:`AvsmConfig` (affine + vSVF) or :class:`AvsmAffineConfig` (affine only).
        device: where to run (default: the device of ``fixed``).
        model_id: the zoo model (bound by :func:`zoo_method_spec`); ``config.model_file`` wins.

    Returns:
        :class:`Estimate`: field ``(1, D, *S)`` mm (the affine included, refined when
        ``config.refine``), the predicted affine ``(D+1, D+1)`` in the grid frame, ``info`` with
        the working grid, the affine and the refinement's figures.
    """
    cfg = config if config is not None else AvsmConfig()
    dev = target_device(fixed, device)
    source = model_source(cfg, model_id, METHOD_ID)
    ndim = check_pair(fixed, moving)
    vsvf_steps = int(getattr(cfg, "vsvf_steps", 0))
    total = 2 + refine_steps(cfg)
    yield Progress(0, total, "loading model")
    model, net_config = load_model(source, dev)
    check_model_dims(source, net_config.dims, ndim)
    if vsvf_steps and model.momentum is None:
        raise InputError(f"model {source} is affine-only; use vsvf_steps 0 or an avsm model")
    yield Progress(1, total, f"{cfg.affine_steps} affine + {vsvf_steps} vSVF steps")
    field, matrix, info = predict(
        model, net_config, fixed.to(dev).float(), moving.to(dev).float(), spacing,
        cfg.affine_steps, vsvf_steps,
    )
    info["model"] = str(source)
    info["notes"] = model_file_notes(source)  # a file, not a zoo model: its sha256
    info["affine_steps"] = cfg.affine_steps
    info["vsvf_steps"] = vsvf_steps
    info["affine_matrix"] = matrix.cpu().tolist()
    # the refinement starts from the whole map (affine included) and keeps the affine in it
    if refine_steps(cfg):
        affine = affine_to_field(matrix.to(field), tuple(fixed.shape[2:]), spacing)
        field = yield from maybe_refine(cfg, fixed, moving, spacing, field, info, dev, 2, total,
                                        affine_field=affine)
    yield Progress(total, total, "done")
    return Estimate(field=field, affine=refined_affine(info, matrix.float().cpu()), info=info)


def zoo_method_spec(entry: Any) -> MethodSpec:
    """The :class:`MethodSpec` of one zoo model (ids starting ``avsm_affine``: affine only)."""
    if entry.id.startswith("avsm_affine"):
        return learned_method_spec(
            entry, estimate, AvsmAffineConfig, title=f"AVSM affine network ({entry.id})",
            description="Multi-step affine network of AVSM (Shen et al. 2019): a fast learned "
            "affine pre-alignment.",
        )
    return learned_method_spec(
        entry, estimate, AvsmConfig, title=f"AVSM affine + vSVF ({entry.id})",
        description="AVSM (Shen et al. 2019): multi-step affine network then a momentum-"
        "parameterised stationary velocity field, one forward pass.",
    )


__all__ = ["estimate", "predict", "working_grid", "zoo_method_spec"]
