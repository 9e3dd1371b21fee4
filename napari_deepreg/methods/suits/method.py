"""SUITS estimators: MIND-SSC + regularised iterative descent (no learning)."""

from __future__ import annotations

import time
from collections.abc import Generator

import torch
from torch import Tensor

from ...core.smooth import resize
from ...losses.functional import mind_ssc
from ...result import Progress
from ..base import Estimate, MethodSpec
from .config import SuitsConfig
from .descent import coarse_shape, descend, to_coarse, upsample_field


def working_shape(shape, spacing, voxel_size: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Grid of voxel size ``max(spacing, voxel_size)`` spanning the same extent (corners kept)."""
    out, sp = [], []
    for n, s in zip(shape, spacing, strict=True):
        extent = (n - 1) * s
        m = min(n, max(int(round(extent / max(s, voxel_size))) + 1, min(n, 5)))
        out.append(m)
        sp.append(extent / max(m - 1, 1) if m > 1 else s)
    return tuple(out), tuple(sp)


def estimate_mind(
    fixed: Tensor, moving: Tensor, spacing, config: SuitsConfig, device=None
) -> Generator[Progress, None, Estimate]:
    """MIND-SSC features (12 channels in 3D, 4 in 2D) with the SUITS descent."""
    start = time.perf_counter()
    shape = tuple(fixed.shape[2:])
    wshape, wsp = working_shape(shape, spacing, config.voxel_size)
    f = resize(fixed.float(), wshape)
    m = resize(moving.float(), wshape)
    cshape = coarse_shape(wshape)
    with torch.no_grad():
        fix_feat = to_coarse(mind_ssc(f), cshape)
        u = None
        for k, coarse in descend(fix_feat, m, lambda w: to_coarse(mind_ssc(w), cshape), wsp,
                                 config.iterations, config.lam, config.gamma,
                                 tol=config.cg_tolerance):
            u = coarse
            yield Progress(k, config.iterations, f"SUITS update {k}/{config.iterations}")
        field = resize(upsample_field(u, wshape, wsp), shape, antialias=False)
    return Estimate(field=field, info={"iterations": config.iterations,
                                       "seconds": time.perf_counter() - start})


SPEC = MethodSpec(
    id="suits_mind",
    title="MIND-SSC + regularised iterative descent (SUITS baseline, no training)",
    config_class=SuitsConfig,
    estimate=estimate_mind,
    dims=(2, 3),
    description="Blendowski et al. 2020 without learning: MIND-SSC features, diffusion-"
    "regularised Gauss-Newton updates (conjugate gradients) on a 4x coarser grid.",
)
