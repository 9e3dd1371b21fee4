"""Seeded random deformations: smooth diffeomorphisms (SVFs), their inverses, random affines.

* random smooth diffeomorphisms (:func:`random_svf_field`, an SVF integrated by scaling and
  squaring) and their inverses (:func:`invert_field`);
* random affines about a centre (:func:`random_affine`, :func:`random_affine_field`).

Draws come from a seeded CPU generator (:mod:`.draws`): the same seed gives the same field on
every device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..core import affine_to_field, as_spacing, exp_svf, resize, resized_spacing, warp_image
from .draws import Range, Seed, make_generator, smooth_noise


def random_svf_field(
    shape: Sequence[int],
    spacing: float | Sequence[float] | None = None,
    magnitude_mm: float = 6.0,
    smoothness_mm: float = 16.0,
    generator: Seed = None,
    device: torch.device | str = "cpu",
    steps: int = 7,
    return_velocity: bool = False,
    grid_factor: int | None = 1,
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
        grid_factor: draw and integrate on a grid this many times coarser (corner voxels
            shared) and resize the result linearly; ``None`` picks the largest factor that keeps
            two coarse voxels per standard deviation of the smoothing. A smooth field loses
            nothing that matters and the integration gets ``factor**D`` times cheaper; the dense
            field's largest displacement is then at most ``magnitude_mm`` (within about 1 %).

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
    factor = svf_grid_factor(sp, smoothness_mm) if grid_factor is None else int(grid_factor)
    if factor < 1:
        raise ValueError(f"grid_factor must be a positive integer or None, got {grid_factor}")
    if factor > 1:
        coarse = tuple(int(math.ceil((n - 1) / factor)) + 1 for n in shape)
        if coarse != tuple(shape):
            coarse_sp = resized_spacing(shape, sp, coarse)
            field, velocity = random_svf_field(
                coarse, coarse_sp, magnitude_mm, smoothness_mm, generator, device, steps,
                return_velocity=True, grid_factor=1,
            )
            field = resize(field, shape, antialias=False)
            if not return_velocity:
                return field
            return field, resize(velocity, shape, antialias=False)
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


def svf_grid_factor(spacing: Sequence[float], smoothness_mm: float) -> int:
    """Coarsening factor for :func:`random_svf_field` (``grid_factor=None``): the largest that
    keeps at least two coarse voxels per standard deviation of the smoothing along every axis."""
    return max(1, int(min(smoothness_mm / s for s in spacing) // 2))


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


# ----------------------------------------------------------------------------- random affines


def _per_item(value: float | Sequence[float], count: int, what: str) -> list[float]:
    """A scalar repeated ``count`` times, or a sequence of exactly ``count`` values (all >= 0)."""
    if isinstance(value, (int, float)):
        values = [float(value)] * count
    else:
        values = [float(v) for v in value]
    if len(values) != count:
        raise ValueError(f"{what} needs 1 or {count} values, got {len(values)}")
    if any(v < 0 for v in values):
        raise ValueError(f"{what} must be >= 0, got {values}")
    return values


def _scale_bounds(scale: Range) -> tuple[float, float]:
    """``s`` -> ``(1 / (1 + s), 1 + s)``; ``(low, high)`` stays, with ``0 < low <= high``."""
    if isinstance(scale, (int, float)):
        if scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale}")
        return 1.0 / (1.0 + scale), 1.0 + scale
    low, high = (float(v) for v in scale)
    if not 0 < low <= high:
        raise ValueError(f"scale range must satisfy 0 < low <= high, got {scale}")
    return low, high


def _symmetric(gen: torch.Generator, count: int) -> list[float]:
    """``count`` draws uniform in [-1, 1]."""
    return (torch.rand(count, generator=gen, dtype=torch.float64) * 2 - 1).tolist()


def rotation_planes(ndim: int) -> list[tuple[int, int]]:
    """The rotation planes (array axes) of :func:`random_affine`: ``[(0, 1)]`` in 2D, ``[(0, 1),
    (0, 2), (1, 2)]`` in 3D (rotations about array axes 2, 1 and 0)."""
    return [(i, j) for i in range(ndim) for j in range(i + 1, ndim)]


def random_affine(
    ndim: int,
    rotation_deg: float | Sequence[float] = 0.0,
    scale: Range = 0.0,
    shear: float = 0.0,
    translation_mm: float | Sequence[float] = 0.0,
    generator: Seed = None,
    center_mm: Sequence[float] | None = None,
    return_params: bool = False,
) -> Tensor | tuple[Tensor, dict[str, list[float]]]:
    """A random physical affine map about ``center_mm`` (mm, array axis order).

    ``x -> R Sh S (x - c) + c + t`` with ``S`` a diagonal scaling, ``Sh`` a unit upper-triangular
    shear, ``R`` a product of plane rotations and ``t`` a translation. In the package's
    convention the fixed point ``x`` maps to ``A x + b`` in the moving image
    (:func:`~napari_deepreg.core.affine_to_field`). Every parameter is drawn (even for a zero
    range), so the generator advances by the same amount whatever the ranges.

    Args:
        ndim: 2 or 3.
        rotation_deg: largest angle per rotation plane (:func:`rotation_planes`), one value for
            all or one per plane; angles are uniform in ``[-r, r]``.
        scale: ``s`` draws each axis' factor log-uniformly in ``[1 / (1 + s), 1 + s]``; a pair
            ``(low, high)`` draws it log-uniformly in ``[low, high]``.
        shear: largest off-diagonal shear coefficient (uniform in ``[-shear, shear]``).
        translation_mm: largest translation per axis (mm), uniform in ``[-t, t]``.
        generator: int seed or CPU ``torch.Generator``.
        center_mm: fixed point of the rotation, scaling and shear (default: the origin); use the
            image centre, ``(shape - 1) * spacing / 2`` for a grid with origin 0.
        return_params: also return the drawn parameters.

    Returns:
        ``(D+1, D+1)`` float64 homogeneous matrix, or ``(matrix, {"angles_deg", "scales",
        "shears", "translation_mm"})``.
    """
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim}")
    gen = make_generator(generator)
    planes = rotation_planes(ndim)
    max_angles = _per_item(rotation_deg, len(planes), "rotation_deg")
    low, high = _scale_bounds(scale)
    if shear < 0:
        raise ValueError(f"shear must be >= 0, got {shear}")
    max_shift = _per_item(translation_mm, ndim, "translation_mm")
    n_shear = ndim * (ndim - 1) // 2
    angles = [a * r for a, r in zip(_symmetric(gen, len(planes)), max_angles, strict=True)]
    unit = torch.rand(ndim, generator=gen, dtype=torch.float64)
    scales = torch.exp(math.log(low) + unit * (math.log(high) - math.log(low))).tolist()
    shears = [shear * v for v in _symmetric(gen, n_shear)]
    shift = [t * v for t, v in zip(max_shift, _symmetric(gen, ndim), strict=True)]

    linear = torch.eye(ndim, dtype=torch.float64)
    for (i, j), angle in zip(planes, angles, strict=True):
        rot = torch.eye(ndim, dtype=torch.float64)
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
        linear = linear @ rot
    shear_m = torch.eye(ndim, dtype=torch.float64)
    for (i, j), value in zip(planes, shears, strict=True):
        shear_m[i, j] = value
    linear = linear @ shear_m @ torch.diag(torch.tensor(scales, dtype=torch.float64))
    center = torch.zeros(ndim, dtype=torch.float64) if center_mm is None else torch.tensor(
        [float(c) for c in center_mm], dtype=torch.float64
    )
    matrix = torch.eye(ndim + 1, dtype=torch.float64)
    matrix[:ndim, :ndim] = linear
    matrix[:ndim, ndim] = center + torch.tensor(shift, dtype=torch.float64) - linear @ center
    if not return_params:
        return matrix
    params = {"angles_deg": angles, "scales": scales, "shears": shears, "translation_mm": shift}
    return matrix, params


def grid_center(shape: Sequence[int], spacing: float | Sequence[float] | None = None) -> list:
    """Physical centre (mm) of a grid with origin 0: ``(shape - 1) * spacing / 2``."""
    sp = as_spacing(spacing, len(shape))
    return [(n - 1) * s / 2 for n, s in zip(shape, sp, strict=True)]


def random_affine_field(
    shape: Sequence[int],
    spacing: float | Sequence[float] | None = None,
    rotation_deg: float | Sequence[float] = 0.0,
    scale: Range = 0.0,
    shear: float = 0.0,
    translation_mm: float | Sequence[float] = 0.0,
    generator: Seed = None,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """A random affine about the grid centre (:func:`random_affine`) and its displacement.

    The grid's origin is taken as 0 (the field does not depend on it once the centre is the
    grid's).

    Returns:
        ``(field (1, D, *shape) float32 mm, matrix (D+1, D+1) float64)``.
    """
    matrix = random_affine(
        len(shape), rotation_deg, scale, shear, translation_mm, generator,
        grid_center(shape, spacing),
    )
    field = affine_to_field(matrix.to(device), shape, spacing).float()
    return field, matrix


__all__ = [
    "apply_random_deformation",
    "grid_center",
    "invert_field",
    "random_affine",
    "random_affine_field",
    "random_svf_field",
    "rotation_planes",
    "svf_grid_factor",
]
