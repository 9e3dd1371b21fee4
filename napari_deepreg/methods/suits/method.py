"""SUITS estimators: the regularised iterative descent on MIND-SSC (``suits_mind``, no
learning) or on a trained FeatCNN's features (the ``suits`` zoo models).

Both resample the pair to the working voxel size (same field of view), run the descent of
:mod:`.descent` for ``iterations`` updates (one Progress per update), and bring the field back to
the input grid. A FeatCNN sees the fixed image through its stem 1 and the warped moving image
through its stem 0, as in training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import torch
from torch import Tensor

from ...core.smooth import resize
from ...losses.functional import mind_ssc
from ...result import Progress
from ..base import Estimate, MethodSpec
from ..learned import check_model_dims, check_pair, learned_method_spec, model_source, target_device
from ..models import model_file_notes
from ..refine import maybe_refine, refine_steps, refined_affine
from .config import METHOD_ID, SuitsConfig, SuitsLearnedConfig
from .descent import coarse_shape, descend, to_coarse, upsample_field
from .model import load_model

Features = Callable[[Tensor, int], Tensor]


def working_shape(shape, spacing, voxel_size: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Grid of voxel size ``max(spacing, voxel_size)`` spanning the same extent (corners kept)."""
    out, sp = [], []
    for n, s in zip(shape, spacing, strict=True):
        extent = (n - 1) * s
        m = min(n, max(int(round(extent / max(s, voxel_size))) + 1, min(n, 5)))
        out.append(m)
        sp.append(extent / max(m - 1, 1) if m > 1 else s)
    return tuple(out), tuple(sp)


def run_descent(
    fixed: Tensor, moving: Tensor, spacing: Sequence[float], voxel_size: float,
    features: Features, iterations: int, lam: float, gamma: float, tol: float,
    step_offset: int = 0, total: int | None = None,
) -> Generator[Progress, None, Tensor]:
    """The descent on ``features(image, modality)`` (1: fixed, 0: moving) at ``voxel_size``;
    yields one Progress per update, returns the ``(1, D, *S)`` field in mm on the input grid."""
    shape = tuple(fixed.shape[2:])
    total = iterations if total is None else total
    wshape, wsp = working_shape(shape, spacing, voxel_size)
    f = resize(fixed.float(), wshape)
    m = resize(moving.float(), wshape)
    cshape = coarse_shape(wshape)
    with torch.no_grad():
        fix_feat = to_coarse(features(f, 1), cshape)
        u = None
        for k, coarse in descend(fix_feat, m, lambda w: to_coarse(features(w, 0), cshape), wsp,
                                 iterations, lam, gamma, tol=tol):
            u = coarse
            yield Progress(step_offset + k, total, f"SUITS update {k}/{iterations}")
        return resize(upsample_field(u, wshape, wsp), shape, antialias=False)


def estimate_mind(
    fixed: Tensor, moving: Tensor, spacing, config: SuitsConfig, device=None
) -> Generator[Progress, None, Estimate]:
    """MIND-SSC features (12 channels in 3D, 4 in 2D) with the SUITS descent."""
    start = time.perf_counter()
    field = yield from run_descent(fixed, moving, spacing, config.voxel_size,
                                   lambda image, _: mind_ssc(image), config.iterations,
                                   config.lam, config.gamma, config.cg_tolerance)
    return Estimate(field=field, info={"iterations": config.iterations,
                                       "seconds": time.perf_counter() - start})


def normalise(image: Tensor) -> Tensor:
    """The image's 0.5 / 99.5 % quantiles to [0, 1], clipped (what the training pairs are)."""
    flat = image.flatten().float()
    q = torch.quantile(flat[:: max(1, flat.numel() // (1 << 22))],
                       torch.tensor([0.005, 0.995], device=image.device))
    span = q[1] - q[0] if q[1] > q[0] else torch.ones_like(q[0])
    return ((image - q[0]) / span).clamp(0, 1)


def estimate(
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    config: SuitsLearnedConfig | None = None,
    device: torch.device | str | None = None,
    model_id: str | None = None,
) -> Generator[Progress, None, Estimate]:
    """Register ``moving`` to ``fixed`` with a trained FeatCNN in the SUITS descent.

    Args:
        fixed, moving: ``(1, 1, *S)`` float images on one grid (any two contrasts).
        spacing: voxel size in mm.
        config: inference settings (defaults if None).
        device: where to run (default: the device of ``fixed``).
        model_id: the zoo model; ``config.model_file`` overrides it.
    """
    cfg = config if config is not None else SuitsLearnedConfig()
    start = time.perf_counter()
    ndim = check_pair(fixed, moving)
    dev = target_device(fixed, device)
    source = model_source(cfg, model_id, METHOD_ID)
    total = 1 + cfg.iterations + refine_steps(cfg)
    yield Progress(0, total, "loading model")
    net, net_config = load_model(source, dev)
    check_model_dims(source, net_config.dims, ndim)
    f, m = normalise(fixed.to(dev)), normalise(moving.to(dev))
    field = yield from run_descent(f, m, spacing, net_config.voxel_size, net, cfg.iterations,
                                   cfg.lam, cfg.gamma, cfg.cg_tolerance, 0, total)
    info: dict[str, Any] = {"model": str(source), "notes": model_file_notes(source),
                            "iterations": cfg.iterations, "lam": cfg.lam, "gamma": cfg.gamma,
                            "seconds": time.perf_counter() - start}
    field = yield from maybe_refine(cfg, f, m, spacing, field, info, dev, cfg.iterations, total)
    yield Progress(total, total, "done")
    return Estimate(field=field, affine=refined_affine(info), info=info)


def zoo_method_spec(entry: Any) -> MethodSpec:
    """The :class:`MethodSpec` of one zoo model of this method (called by the methods registry)."""
    dims = "/".join(f"{int(d)}D" for d in entry.dims)
    return learned_method_spec(
        entry, estimate, SuitsLearnedConfig,
        title=f"SUITS, learned multi-modal features ({dims}, {entry.id})",
        description="Blendowski et al. 2020: a Y-shaped FeatCNN trained end to end through a "
        "diffusion-regularised Gauss-Newton descent (label-guided); any two contrasts.",
    )


SPEC = MethodSpec(
    id="suits_mind",
    title="MIND-SSC + regularised iterative descent (SUITS baseline, no training)",
    config_class=SuitsConfig,
    estimate=estimate_mind,
    dims=(2, 3),
    description="Blendowski et al. 2020 without learning: MIND-SSC features, diffusion-"
    "regularised Gauss-Newton updates (conjugate gradients) on a 4x coarser grid.",
)

__all__ = ["SPEC", "estimate", "estimate_mind", "normalise", "run_descent", "working_shape",
           "zoo_method_spec"]
