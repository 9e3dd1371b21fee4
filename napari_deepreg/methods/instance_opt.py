"""Instance optimisation: register one pair by gradient descent, no training.

An optional affine stage, then a coarse-to-fine optimisation (Adam) of either a cubic B-spline
control grid or a dense displacement, with an image similarity plus a diffusion regulariser. The
field found at one level starts the next (resampled; its values are mm, so they carry over as
they are). The deformable field ``u`` is composed with the affine map ``x -> A x + b`` exactly,
``w(x) = a(x) + L u(x)`` (``a`` the affine displacement, ``L`` its linear part), so the image is
interpolated once per evaluation and never twice.

Other methods use this as test-time refinement: pass ``initial_field`` to :func:`estimate`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..core import (
    about_centre,
    affine_to_field,
    bspline_control_shape,
    bspline_to_field,
    compose_affine_field,
    gaussian_smooth,
    resize,
    resized_spacing,
    shift_origin,
    warp_image,
)
from ..fields import validate
from ..losses import functional as L
from .base import Estimate, MethodSpec, Progress
from .extractors import (
    DEFAULT_EXTRACTOR,
    ZOO_EXTRACTORS,
    check_extractor_dims,
    deepsim_similarity,
    load_extractor,
)

TRANSFORMS = ("bspline", "dense")
SIMILARITIES = ("lncc", "ncc", "mse", "mind_ssc", "deepsim")
# longest axis (voxels) of the grid the affine stage works on, by dimension (2D pixels are cheap)
_AFFINE_WORKING_SIZE = {2: 64, 3: 32}
# smallest level size per axis (voxels), unless the image itself is smaller
_MIN_LEVEL_SIZE = 8
# The similarities differ in scale (MSE of [0, 1] images is ~100x smaller than 1 - LNCC), so each
# is multiplied by a factor that makes one regularisation weight give about equally smooth fields
# (same SDlogJ on the 3D brain sample with the default weight; measured with
# benchmarks/tune_instance_opt.py). Adam is invariant to the overall scale of the loss, so this
# only sets the balance with the regulariser.
# DeepSim (1 - mean feature cosine) has no 3D extractor yet, so its factor was matched on the
# 2D brain sample instead: SDlogJ 0.119 at 10 against LNCC's 0.112 (3: 0.093, 20: 0.137, 40:
# 0.154; Dice 0.918 / 0.936 / 0.935 / 0.936).
DEEPSIM_SCALE = 10.0
SIMILARITY_SCALE = {"lncc": 1.0, "ncc": 3.0, "mse": 20.0, "mind_ssc": 3.0,
                    "deepsim": DEEPSIM_SCALE}


@dataclass
class InstanceOptConfig:
    """Settings of instance optimisation (every field carries GUI metadata: help, choices, range).

    Defaults were chosen with ``benchmarks/tune_instance_opt.py`` on the 3D brain sample (83x99x81
    at 2 mm, built with DKT labels: 94 structures), one torch thread on the shared 2-core CPU.
    With them: mean Dice 0.597 -> 0.872 (0.875 with the true field), 0 % folds, SDlogJ 0.078,
    endpoint error in the brain 2.58 -> 0.48 mm, about 5.5 s of CPU (7-16 s wall on the shared
    machine). The tissue-label sample that ships: Dice 0.683 -> 0.874. One change at a time
    (Dice, endpoint error mm, SDlogJ, CPU s):

    - regularisation 0.1 / 1 / 3: .872 / .859 / .818, EPE .43 / .70 / 1.04, SDlogJ .093 / .065
      / .050 (0.3 is where Dice stops rising while SDlogJ keeps growing);
    - iterations 10 / 40: .870 / .872 at 3.4 / 10.2 s (20 is as good as 40);
    - control spacing 6 / 14 mm: .871 / .871; LNCC window 5 / 9: .873 / .870; 2 levels: .872;
      learning rate 0.25 / 1: .871 / .870;
    - max working size 64 (half resolution): .857, EPE .79, 2.1 s;
    - similarity MSE / NCC / MIND-SSC: .849 / .845 / .857 (MIND 11 s); dense transform: .869 at
      24 s (its Gaussian smoothing is the cost);
    - similarity DeepSim (``deepsim_extractor``: a zoo model's frozen feature extractor, 2D
      only, so not on this sample): on the bundled 2D pair Dice 0.702 -> 0.936 (LNCC 0.953);
      on 24 held-out 2D pairs (``benchmarks/deepsim_2d.py``) as good as LNCC clean (0.937 /
      0.937), worse with noise (0.835 / 0.860, rougher fields), 2-3x slower;
    - no affine stage: .872 (the sample has no global offset). With an added 8 degree rotation,
      5 % scaling and 8 mm shift, Dice 0.234 -> 0.831 (0.830 without it) and the affine matrix
      is within 0.02 of the true inverse: the stage is cheap (a grid of at most 32 voxels a side)
      and real pairs need it, so it stays on.
    """

    transform: str = field(
        default="bspline",
        metadata={
            "help": "Deformation model: cubic B-spline control grid (smooth) or dense "
            "displacement (one vector per voxel, Gaussian-smoothed).",
            "choices": list(TRANSFORMS),
        },
    )
    similarity: str = field(
        default="lncc",
        metadata={
            "help": "Image similarity: local NCC (same modality, robust to bias), global NCC, "
            "MSE (same intensities), MIND-SSC (different modalities), DeepSim (1 - cosine "
            "similarity of a frozen learned feature extractor's features, Czolbe et al. 2021; "
            "2D pairs only: the zoo's extractors are 2D).",
            "choices": list(SIMILARITIES),
        },
    )
    deepsim_extractor: str = field(
        default=DEFAULT_EXTRACTOR,
        metadata={"help": "similarity=deepsim only: the zoo model whose frozen feature "
                  "extractor gives the features (deepsim_ae_2d: auto-encoder; deepsim_seg_2d: "
                  "segmentation net).", "choices": list(ZOO_EXTRACTORS)},
    )
    levels: int = field(
        default=3,
        metadata={"help": "Resolution levels, coarse to fine (each halves the grid).", "min": 1,
                  "max": 5},
    )
    iterations: int = field(
        default=20,
        metadata={"help": "Optimisation steps per level.", "min": 1, "max": 2000},
    )
    learning_rate: float = field(
        default=0.5,
        metadata={"help": "Adam step size for the deformation (mm per step).", "min": 1e-4,
                  "max": 50.0},
    )
    regularisation: float = field(
        default=0.3,
        metadata={"help": "Weight of the diffusion regulariser (mean squared gradient of the "
                  "displacement); higher gives smoother fields. The similarities are scaled so "
                  "that one weight suits all of them.", "min": 0.0, "max": 1e4},
    )
    control_spacing: float = field(
        default=10.0,
        metadata={"help": "B-spline control point spacing at the finest level, in mm (doubles "
                  "at each coarser level).", "min": 1.0, "max": 200.0},
    )
    smoothing_sigma: float = field(
        default=1.0,
        metadata={"help": "Gaussian smoothing of the dense displacement, in voxels of each "
                  "level (dense transform only; 0 for none).", "min": 0.0, "max": 10.0},
    )
    affine_first: bool = field(
        default=True,
        metadata={"help": "Run an affine registration first (coarse grid)."},
    )
    affine_iterations: int = field(
        default=60,
        metadata={"help": "Optimisation steps of the affine stage.", "min": 1, "max": 2000},
    )
    affine_learning_rate: float = field(
        default=0.01,
        metadata={"help": "Adam step size of the affine stage (relative: 0.01 is about 1% "
                  "scaling or 1% of the half-extent in translation per step).", "min": 1e-5,
                  "max": 1.0},
    )
    lncc_window: int = field(
        default=7,
        metadata={"help": "LNCC window in voxels of each level.", "min": 3, "max": 31},
    )
    max_working_size: int = field(
        default=128,
        metadata={"help": "Longest axis of the finest working grid in voxels; larger images "
                  "are optimised on a downsampled grid and the field is resampled.", "min": 16,
                  "max": 1024},
    )

    def __post_init__(self) -> None:
        validate(self)


# ----------------------------------------------------------------------------- helpers


def level_shapes(shape: Sequence[int], levels: int, max_working_size: int) -> list[tuple[int, ...]]:
    """Grid shapes of the levels, coarsest first; the finest fits in ``max_working_size``.

    Each coarser level halves the number of voxel intervals (``align_corners`` resizing), down to
    at least ``_MIN_LEVEL_SIZE`` voxels per axis; levels that would repeat a shape are dropped.
    """
    factor = min(1.0, max_working_size / max(shape))
    finest = tuple(max(2, round((n - 1) * factor) + 1) for n in shape)
    out: list[tuple[int, ...]] = []
    for k in reversed(range(levels)):
        s = tuple(
            max(min(n, _MIN_LEVEL_SIZE), round((m - 1) / 2**k) + 1)
            for n, m in zip(shape, finest, strict=True)
        )
        if not out or out[-1] != s:
            out.append(s)
    return out


def _pyramid(images: Tensor, shapes: list[tuple[int, ...]]) -> list[Tensor]:
    """``images`` resized to every shape (coarsest first), each from the next finer one.

    Smoothing a small image is much cheaper than smoothing the full one again for every level.
    """
    out = [resize(images, shapes[-1])]
    for s in reversed(shapes[:-1]):
        out.append(resize(out[-1], s))
    return out[::-1]


def check_inputs(config: InstanceOptConfig, ndim: int) -> None:
    """InputError before any work when ``config`` cannot register an ``ndim``-D pair (DeepSim
    needs an extractor of that dimensionality; the zoo's are 2D)."""
    if config.similarity == "deepsim":
        check_extractor_dims(config.deepsim_extractor, ndim)


def _similarity(config: InstanceOptConfig, fixed: Tensor, moving: Tensor,
                extractor: torch.nn.Module | None = None):
    """Return ``(fixed_features, moving_features, loss)``, called ``loss(warped, fixed)``.

    For MIND-SSC the descriptors are computed once and the moving descriptors are warped (their
    channels interpolate like an image), which is cheaper than describing each warped image.
    DeepSim (``extractor`` given) runs the frozen extractor on the warped image of the level's
    grid, and on the fixed image once.
    """
    name = config.similarity
    if name == "deepsim":
        return deepsim_similarity(extractor, fixed, moving)
    if name == "mind_ssc":
        return L.mind_ssc(fixed), L.mind_ssc(moving), L.mse
    if name == "lncc":
        window = config.lncc_window
        # the fixed image's windowed moments are computed once, not at every iteration
        moments = L.local_moments(fixed, window)
        return fixed, moving, lambda warped, f: L.lncc(f, warped, window, a_moments=moments)
    if name == "ncc":
        return fixed, moving, L.ncc
    return fixed, moving, L.mse


def _affine_matrix(lin: Tensor, trans: Tensor, centre: Tensor, half_extent: float) -> Tensor:
    """``(D+1, D+1)`` matrix of ``x -> (I + lin)(x - c) + c + t``, ``t = trans * half_extent``."""
    eye = torch.eye(lin.shape[0], device=lin.device, dtype=lin.dtype)
    return about_centre(eye + lin, centre, trans * half_extent)


def _compose_affine(u: Tensor, affine_field: Tensor | None, linear: Tensor | None) -> Tensor:
    """Field of ``phi_affine o phi_u`` (the identity without an affine stage)."""
    if affine_field is None:
        return u
    return compose_affine_field(affine_field, linear, u)


def _deformation(
    transform: str,
    base: Tensor,
    shape: tuple[int, ...],
    stride: list[int],
    sigma: float,
) -> tuple[Tensor, Callable[[], Tensor]]:
    """Parameters (zeros) and the function giving ``base + increment`` from them."""
    ndim = len(shape)
    if transform == "bspline":
        ctrl = base.new_zeros((1, ndim, *bspline_control_shape(shape, stride)), requires_grad=True)
        return ctrl, lambda: base + bspline_to_field(ctrl, stride, shape)
    param = base.new_zeros((1, ndim, *shape), requires_grad=True)
    if sigma > 0:
        return param, lambda: base + gaussian_smooth(param, sigma)
    return param, lambda: base + param


# ----------------------------------------------------------------------------- estimator


def affine_stage(
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    config: Any,
    base: Tensor | None = None,
    step_offset: int = 0,
    total: int | None = None,
    extractor: torch.nn.Module | None = None,
) -> Generator[Progress, None, tuple[Tensor, float]]:
    """Optimise an affine map ``A`` on a coarse grid (longest axis 32 voxels in 3D, 64 in 2D);
    yields Progress, returns ``(matrix, final loss)``.

    Without ``base`` the moving image is pulled back through ``A`` alone; with a ``base``
    displacement ``(1, D, *S)`` mm (a network's prediction) through ``A o (x + base(x))``, so
    that ``A`` corrects the global alignment the prediction missed. ``config`` needs
    ``similarity``, ``lncc_window``, ``affine_iterations``, ``affine_learning_rate`` and
    ``max_working_size`` (an :class:`InstanceOptConfig` has them); ``extractor``: DeepSim's
    frozen feature extractor when ``similarity`` is ``deepsim``. ``matrix`` is
    ``(D+1, D+1)`` in the grid frame (voxel 0 at 0 mm).
    """
    ndim = fixed.ndim - 2
    shape = tuple(fixed.shape[2:])
    dev = fixed.device
    # physical centre with voxel 0 at 0 mm: the affine is parameterised around it
    extent = [(n - 1) * s for n, s in zip(shape, spacing, strict=True)]
    centre = torch.tensor([e / 2 for e in extent], device=dev)
    half_extent = max(max(extent) / 2, 1.0)
    a_shape = level_shapes(shape, 1, min(config.max_working_size, _AFFINE_WORKING_SIZE[ndim]))[0]
    a_spacing = resized_spacing(shape, spacing, a_shape)
    pair = resize(torch.cat([fixed, moving], 1), a_shape)
    base_a = None if base is None else resize(base.to(dev, torch.float32), a_shape)
    feat_f, feat_m, sim = _similarity(config, pair[:, :1], pair[:, 1:], extractor)
    lin = torch.zeros(ndim, ndim, device=dev, requires_grad=True)
    trans = torch.zeros(ndim, device=dev, requires_grad=True)
    opt = torch.optim.Adam([lin, trans], lr=config.affine_learning_rate)
    iterations = int(config.affine_iterations)
    total = total if total is not None else step_offset + iterations
    loss = torch.zeros(())
    for it in range(iterations):
        opt.zero_grad(set_to_none=True)
        m = _affine_matrix(lin, trans, centre, half_extent)
        w = affine_to_field(m, a_shape, a_spacing)
        if base_a is not None:
            w = compose_affine_field(w, m[:ndim, :ndim], base_a)
        loss = sim(warp_image(feat_m, w, a_spacing), feat_f)
        loss.backward()
        opt.step()
        yield Progress(step_offset + it + 1, total,
                       f"affine {it + 1}/{iterations}: loss {loss.item():.4f}")
    with torch.no_grad():
        matrix = _affine_matrix(lin, trans, centre, half_extent).detach()
    return matrix, float(loss.item())


def estimate(
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    config: InstanceOptConfig | None = None,
    device: torch.device | str | None = None,
    initial_field: Tensor | None = None,
    origin: Sequence[float] | None = None,
) -> Generator[Progress, None, Estimate]:
    """Register ``moving`` to ``fixed`` by optimisation; yields Progress every iteration.

    Args:
        fixed, moving: ``(1, 1, *S)`` float images in [0, 1] on the same grid (2D or 3D).
        spacing: voxel size in mm along the array axes.
        config: settings (defaults if None).
        device: where to compute (default: the device of ``fixed``).
        initial_field: optional ``(1, D, *S)`` displacement in mm to start from (e.g. a learned
            method's prediction). The affine stage is skipped then: the field already holds the
            global alignment.
        origin: physical position (mm) of voxel 0; only changes the coordinates in which the
            returned affine matrix is written (the field does not depend on it).

    Returns:
        :class:`Estimate` with the ``(1, D, *S)`` field in mm on the input grid, the
        ``(D+1, D+1)`` affine matrix or None, and ``info``: final similarity / regulariser /
        loss, iterations run, level shapes. The matrix maps fixed physical points to moving ones
        (``x -> A x + b``, mm, array axis order) with voxel 0 at ``origin`` (at 0 mm if None).
    """
    cfg = config if config is not None else InstanceOptConfig()
    dev = torch.device(device) if device is not None else fixed.device
    ndim = fixed.ndim - 2
    if fixed.shape != moving.shape or fixed.shape[:2] != (1, 1) or ndim not in (2, 3):
        raise ValueError(
            f"fixed and moving must both be (1, 1, *spatial) 2D/3D, got {tuple(fixed.shape)} and "
            f"{tuple(moving.shape)}"
        )
    shape = tuple(fixed.shape[2:])
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ndim:
        raise ValueError(f"spacing needs {ndim} values, got {spacing}")
    if initial_field is not None and tuple(initial_field.shape) != (1, ndim, *shape):
        raise ValueError(
            f"initial_field must be {(1, ndim, *shape)}, got {tuple(initial_field.shape)}"
        )
    check_inputs(cfg, ndim)  # before any work (the pipeline asked already)
    extractor = (load_extractor(cfg.deepsim_extractor, dev).module
                 if cfg.similarity == "deepsim" else None)
    fixed = fixed.to(dev, torch.float32)
    moving = moving.to(dev, torch.float32)

    shapes = level_shapes(shape, cfg.levels, cfg.max_working_size)
    run_affine = cfg.affine_first and initial_field is None
    total = (cfg.affine_iterations if run_affine else 0) + len(shapes) * cfg.iterations
    step = 0
    info: dict = {"level_shapes": shapes, "similarity": cfg.similarity}

    matrix: Tensor | None = None

    if run_affine:
        matrix, info["affine_loss"] = yield from affine_stage(
            fixed, moving, spacing, cfg, total=total, extractor=extractor)
        step += cfg.affine_iterations

    sim_scale = SIMILARITY_SCALE[cfg.similarity]
    pyramid = _pyramid(torch.cat([fixed, moving], 1), shapes)
    u: Tensor | None = None
    sim_value = reg_value = loss_value = float("nan")
    for level, lshape in enumerate(shapes):
        lspacing = resized_spacing(shape, spacing, lshape)
        feat_f, feat_m, sim = _similarity(cfg, pyramid[level][:, :1], pyramid[level][:, 1:],
                                          extractor)
        with torch.no_grad():
            if u is not None:
                base = resize(u, lshape, antialias=False)
            elif initial_field is not None:
                base = resize(initial_field.to(dev, torch.float32), lshape)
            else:
                base = fixed.new_zeros((1, ndim, *lshape))
            if matrix is not None:
                a_field = affine_to_field(matrix, lshape, lspacing)
                linear = matrix[:ndim, :ndim]
            else:
                a_field = linear = None
        # the control spacing doubles at each coarser level, so the stride in voxels stays put
        coarse = 2 ** (len(shapes) - 1 - level)
        stride = [
            max(1, round(cfg.control_spacing * coarse / s)) for s in lspacing
        ]
        param, current = _deformation(cfg.transform, base, lshape, stride, cfg.smoothing_sigma)
        opt = torch.optim.Adam([param], lr=cfg.learning_rate)
        label = "x".join(str(n) for n in lshape)
        for it in range(cfg.iterations):
            opt.zero_grad(set_to_none=True)
            disp = current()
            w = _compose_affine(disp, a_field, linear)
            sim_loss = sim(warp_image(feat_m, w, lspacing), feat_f)
            reg_loss = L.diffusion(disp, lspacing)
            loss = sim_scale * sim_loss + cfg.regularisation * reg_loss
            loss.backward()
            opt.step()
            step += 1
            sim_value, reg_value, loss_value = sim_loss.item(), reg_loss.item(), loss.item()
            yield Progress(
                step,
                total,
                f"level {level + 1}/{len(shapes)} ({label}) {it + 1}/{cfg.iterations}: "
                f"loss {loss_value:.4f}",
            )
        with torch.no_grad():
            u = current().detach()

    with torch.no_grad():
        u = resize(u, shape, antialias=False)
        if matrix is not None:
            u = _compose_affine(u, affine_to_field(matrix, shape, spacing), matrix[:ndim, :ndim])
    info.update(
        final_similarity=sim_value,
        final_regulariser=reg_value,
        final_loss=loss_value,
        iterations=step,
    )
    if matrix is not None and origin is not None:
        matrix = shift_origin(matrix, origin)
    return Estimate(field=u, affine=matrix, info=info)


#: what the methods registry lists (registered by ``methods._load_builtin``: this module does
#: not import the registry, so the import graph has no cycle)
SPEC = MethodSpec(
    id="instance_opt",
    title="Instance optimisation (no training)",
    config_class=InstanceOptConfig,
    estimate=estimate,
    dims=(2, 3),
    description="Affine then coarse-to-fine B-spline or dense optimisation of one pair "
    "(LNCC / NCC / MSE / MIND-SSC / DeepSim (2D) + diffusion regulariser).",
    check=check_inputs,
)
