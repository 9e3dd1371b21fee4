"""Seeded synthetic transformations: random smooth diffeomorphisms and mild intensity changes.

Every random draw is made on the CPU with a ``torch.Generator`` seeded by the caller, so the same
seed gives the same field or image on every device (only the arithmetic after the draw runs on
``device``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..core import as_spacing, exp_svf, gaussian_smooth, resize, warp_image

Seed = int | torch.Generator | None


def make_generator(seed: Seed) -> torch.Generator:
    """A CPU generator from an int seed (None: seed 0), or ``seed`` itself if it is one."""
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device="cpu")
    gen.manual_seed(0 if seed is None else int(seed))
    return gen


def smooth_noise(
    shape: Sequence[int],
    spacing: float | Sequence[float] | None,
    smoothness_mm: float,
    channels: int = 1,
    generator: Seed = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """White Gaussian noise smoothed by a Gaussian of ``smoothness_mm`` (standard deviation, mm).

    The noise is drawn on a grid padded by three standard deviations and cropped after smoothing,
    so the borders are as random as the centre (replicate padding would stretch the edge samples).
    For large kernels it is drawn on a coarser grid and resized linearly: at four or more coarse
    voxels per standard deviation the result is indistinguishable and much cheaper.

    Returns:
        ``(1, channels, *shape)`` float32, zero mean, unnormalised amplitude.
    """
    gen = make_generator(generator)
    ndim = len(shape)
    sp = as_spacing(spacing, ndim)
    sigma_vox = [smoothness_mm / s for s in sp]
    # coarsening factor per axis keeps >= 4 coarse voxels per standard deviation
    factor = [max(1, int(sv // 4)) for sv in sigma_vox]
    coarse_sigma = [sv / f for sv, f in zip(sigma_vox, factor, strict=True)]
    pad = [int(math.ceil(3 * cs)) + 1 for cs in coarse_sigma]
    coarse = [int(math.ceil((n - 1) / f)) + 1 for n, f in zip(shape, factor, strict=True)]
    padded = [c + 2 * p for c, p in zip(coarse, pad, strict=True)]
    noise = torch.randn((1, channels, *padded), generator=gen, dtype=torch.float32)
    noise = gaussian_smooth(noise.to(device), coarse_sigma)
    crop = tuple(slice(p, p + c) for p, c in zip(pad, coarse, strict=True))
    noise = noise[(slice(None), slice(None), *crop)]
    if any(f > 1 for f in factor):
        # the coarse grid spans ((c - 1) * f) voxels >= (n - 1); resize then trim to ``shape``
        span = [(c - 1) * f + 1 for c, f in zip(coarse, factor, strict=True)]
        noise = resize(noise, span, antialias=False)
        noise = noise[(slice(None), slice(None), *(slice(0, n) for n in shape))]
    return noise.contiguous()


def random_svf_field(
    shape: Sequence[int],
    spacing: float | Sequence[float] | None = None,
    magnitude_mm: float = 6.0,
    smoothness_mm: float = 16.0,
    generator: Seed = None,
    device: torch.device | str = "cpu",
    steps: int = 7,
    return_velocity: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """A random smooth diffeomorphic displacement field: the exponential of a smooth SVF.

    A stationary velocity field is drawn as smoothed white noise, integrated by scaling and
    squaring (:func:`~napari_deepreg.core.exp_svf`), and rescaled until the largest displacement
    of the result equals ``magnitude_mm`` (three rescalings; within about 1 %). Being the flow of
    a smooth velocity the map is invertible: ``exp(-v)`` is its inverse.

    Args:
        shape: spatial shape ``(z, y, x)`` or ``(y, x)``.
        spacing: voxel size in mm along the array axes.
        magnitude_mm: largest displacement length of the returned field (mm).
        smoothness_mm: standard deviation (mm) of the Gaussian that smooths the noise; larger is
            smoother (the Jacobian stays closer to 1).
        generator: int seed or ``torch.Generator`` (CPU); same seed, same field.
        device: where the smoothing and integration run.
        steps: scaling-and-squaring steps.
        return_velocity: also return the (rescaled) velocity, e.g. to build the inverse.

    Returns:
        ``(1, D, *shape)`` displacement in mm (pull-back convention), or ``(field, velocity)``.
    """
    ndim = len(shape)
    if ndim not in (2, 3):
        raise ValueError(f"shape must have 2 or 3 axes, got {tuple(shape)}")
    if magnitude_mm < 0 or smoothness_mm <= 0:
        raise ValueError(
            f"magnitude_mm must be >= 0 and smoothness_mm > 0, got {magnitude_mm}, {smoothness_mm}"
        )
    sp = as_spacing(spacing, ndim)
    velocity = smooth_noise(shape, sp, smoothness_mm, ndim, generator, device)
    peak = velocity.norm(dim=1).max()
    if magnitude_mm == 0 or peak == 0:
        zero = torch.zeros_like(velocity)
        return (zero, zero) if return_velocity else zero
    velocity = velocity * (magnitude_mm / peak)
    field = exp_svf(velocity, sp, steps)
    for _ in range(3):
        # the exponential's peak is not linear in the velocity's scale; a few secant-free
        # rescalings converge because the map is close to linear for mild deformations
        reached = field.norm(dim=1).max()
        velocity = velocity * (magnitude_mm / reached)
        field = exp_svf(velocity, sp, steps)
    return (field, velocity) if return_velocity else field


def invert_field(
    field: Tensor,
    spacing: float | Sequence[float] | None = None,
    iterations: int = 50,
    init: Tensor | None = None,
    tol_mm: float = 1e-4,
) -> Tensor:
    """Inverse of a smooth invertible displacement field by fixed-point iteration.

    Solves ``w(x) = -u(x + w(x))``, so that ``phi_u o phi_w = id`` (``compose(u, w) = 0``): if
    ``moving(x) = fixed(x + u(x))`` then ``moving(x + w(x)) = fixed(x)``. The iteration contracts
    where ``|grad u| < 1``, which holds for the mild fields of this module; a good ``init`` (for an
    SVF exponential ``exp(v)``: ``exp(-v)``) makes it converge in a few steps. Near the borders
    ``u`` is extended by its border values, as the warps do.

    Args:
        field: ``(N, D, *spatial)`` displacement ``u`` in mm.
        spacing: voxel size in mm.
        iterations: most fixed-point steps.
        init: starting guess (default ``-u``).
        tol_mm: stop once no voxel moves by more than this between steps.

    Returns:
        ``(N, D, *spatial)`` displacement ``w`` in mm.
    """
    w = -field if init is None else init.clone()
    for _ in range(iterations):
        new = -warp_image(field, w, spacing, padding="border")
        change = (new - w).abs().max()
        w = new
        if change <= tol_mm:
            break
    return w


def random_bias_field(
    shape: Sequence[int],
    spacing: float | Sequence[float] | None = None,
    strength: float = 0.1,
    smoothness_mm: float = 40.0,
    generator: Seed = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Smooth multiplicative bias ``exp(b)`` with ``max |b| = strength``: ``(1, 1, *shape)``."""
    noise = smooth_noise(shape, spacing, smoothness_mm, 1, generator, device)
    peak = noise.abs().max()
    if strength == 0 or peak == 0:
        return torch.ones_like(noise)
    return torch.exp(noise * (strength / peak))


def random_intensity_change(
    image: Tensor,
    spacing: float | Sequence[float] | None = None,
    gamma_range: tuple[float, float] = (0.85, 1.18),
    bias_strength: float = 0.1,
    bias_smoothness_mm: float = 40.0,
    generator: Seed = None,
) -> tuple[Tensor, dict[str, float]]:
    """A mild, seeded intensity change: a gamma curve and a smooth multiplicative bias field.

    The image is mapped to [0, 1] by its own range, raised to ``gamma`` (drawn log-uniformly from
    ``gamma_range``), multiplied by a bias field ``exp(b)`` with ``max |b| = bias_strength``
    (so 0.1 is about ±10 %), and mapped back to the original range. Zero stays zero when the
    minimum is zero (a skull-stripped background stays background).

    Args:
        image: ``(N, C, *spatial)`` float intensities.
        spacing: voxel size in mm (for the bias field's smoothness).
        gamma_range: ``(low, high)`` bounds of the gamma exponent, both > 0.
        bias_strength: largest log-amplitude of the bias field.
        bias_smoothness_mm: standard deviation (mm) of the smoothing of the bias field.
        generator: int seed or CPU ``torch.Generator``.

    Returns:
        ``(changed image, {"gamma": g, "bias_min": ..., "bias_max": ...})``; same shape and dtype.
    """
    if not image.is_floating_point():
        raise TypeError(f"image must be a float tensor, got {image.dtype}")
    low, high = gamma_range
    if not 0 < low <= high:
        raise ValueError(f"gamma_range must satisfy 0 < low <= high, got {gamma_range}")
    gen = make_generator(generator)
    u = torch.rand((), generator=gen).item()
    gamma = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    lo, hi = image.min(), image.max()
    scale = (hi - lo).clamp_min(1e-12)
    unit = ((image - lo) / scale).clamp(0, 1) ** gamma
    bias = random_bias_field(
        image.shape[2:], spacing, bias_strength, bias_smoothness_mm, gen, image.device
    ).to(image.dtype)
    out = (unit * bias) * scale + lo
    info = {"gamma": gamma, "bias_min": float(bias.min()), "bias_max": float(bias.max())}
    return out, info


def apply_random_deformation(
    image: Tensor,
    spacing: float | Sequence[float] | None = None,
    magnitude_mm: float = 6.0,
    smoothness_mm: float = 16.0,
    generator: Seed = None,
) -> tuple[Tensor, Tensor]:
    """Warp ``image`` ``(N, C, *S)`` with one random SVF field; return ``(warped, field)``."""
    field = random_svf_field(
        image.shape[2:], spacing, magnitude_mm, smoothness_mm, generator, image.device
    )
    field = field.expand(image.shape[0], *field.shape[1:])
    return warp_image(image, field.to(image.dtype), spacing), field


__all__ = [
    "apply_random_deformation",
    "make_generator",
    "random_bias_field",
    "random_intensity_change",
    "random_svf_field",
    "smooth_noise",
]
