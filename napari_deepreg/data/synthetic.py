"""Seeded synthetic transformations and images.

* random smooth diffeomorphisms (:func:`random_svf_field`, an SVF integrated by scaling and
  squaring) and their inverses (:func:`invert_field`);
* random affines about a centre (:func:`random_affine`, :func:`random_affine_field`);
* mild intensity changes (:func:`random_intensity_change`, :func:`random_bias_field`);
* label-map -> image synthesis with random contrasts (:func:`synthesize_image`,
  :func:`draw_contrast`) and a random label phantom (:func:`random_label_map`).

Registration pairs built from these live in :mod:`napari_deepreg.data.pairs`.

Every random draw is made on the CPU with a ``torch.Generator`` seeded by the caller, so the same
seed gives the same field or image on every device (only the arithmetic after the draw runs on
``device``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core import (
    affine_to_field,
    as_spacing,
    exp_svf,
    gaussian_smooth,
    resize,
    resized_spacing,
    warp_image,
)

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
    voxels_per_sigma: float = 4.0,
) -> Tensor:
    """White Gaussian noise smoothed by a Gaussian of ``smoothness_mm`` (standard deviation, mm).

    The noise is drawn on a grid padded by three standard deviations and cropped after smoothing,
    so the borders are as random as the centre (replicate padding would stretch the edge samples).
    For large kernels it is drawn on a coarser grid and resized linearly: at four or more coarse
    voxels per standard deviation (``voxels_per_sigma``) the result is indistinguishable and much
    cheaper; two are plenty for a bias field.

    Returns:
        ``(1, channels, *shape)`` float32, zero mean, unnormalised amplitude.
    """
    gen = make_generator(generator)
    ndim = len(shape)
    sp = as_spacing(spacing, ndim)
    sigma_vox = [smoothness_mm / s for s in sp]
    # coarsening factor per axis keeps >= voxels_per_sigma coarse voxels per standard deviation
    factor = [max(1, int(sv // voxels_per_sigma)) for sv in sigma_vox]
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


def random_bias_field(
    shape: Sequence[int],
    spacing: float | Sequence[float] | None = None,
    strength: float = 0.1,
    smoothness_mm: float = 40.0,
    generator: Seed = None,
    device: torch.device | str = "cpu",
    voxels_per_sigma: float = 4.0,
) -> Tensor:
    """Smooth multiplicative bias ``exp(b)`` with ``max |b| = strength``: ``(1, 1, *shape)``.

    ``voxels_per_sigma`` is passed to :func:`smooth_noise` (2 is four to eight times cheaper)."""
    noise = smooth_noise(shape, spacing, smoothness_mm, 1, generator, device, voxels_per_sigma)
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
    voxels_per_sigma: float = 4.0,
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
        voxels_per_sigma: resolution of the bias field's noise (see :func:`smooth_noise`).

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
        image.shape[2:], spacing, bias_strength, bias_smoothness_mm, gen, image.device,
        voxels_per_sigma,
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


# ----------------------------------------------------------------------------- random affines

Range = float | tuple[float, float]


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


# ----------------------------------------------------------------------------- label synthesis


@dataclass
class LabelContrast:
    """An image contrast for label-map synthesis: a mean and a noise level per label value.

    Attributes:
        values: ``(K,)`` sorted label values (int64).
        means: ``(K,)`` mean intensity of each label.
        stds: ``(K,)`` standard deviation of the per-voxel noise inside each label.
        gamma: exponent applied after the intensities are normalised to [0, 1].
    """

    values: Tensor
    means: Tensor
    stds: Tensor
    gamma: float = 1.0

    def lookup(self, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Per-voxel mean and std of ``labels`` (any shape, on any device)."""
        values = self.values.to(labels.device)
        index = torch.bucketize(labels, values).clamp_max(len(values) - 1)
        if not bool((values[index] == labels).all()):
            missing = torch.unique(labels[values[index] != labels])[:5].tolist()
            raise ValueError(f"labels {missing} have no intensity in this contrast")
        return self.means.to(labels.device)[index], self.stds.to(labels.device)[index]


def _draw(gen: torch.Generator, value: Range) -> float:
    """A fixed ``value``, or a draw uniform in ``(low, high)``; always consumes one number."""
    u = float(torch.rand((), generator=gen, dtype=torch.float64))
    if isinstance(value, (int, float)):
        return float(value)
    low, high = (float(v) for v in value)
    if low > high:
        raise ValueError(f"range must satisfy low <= high, got {value}")
    return low + u * (high - low)


def draw_contrast(
    values: Tensor | Sequence[int],
    generator: Seed = None,
    intensity_range: tuple[float, float] = (0.0, 1.0),
    label_noise_std: Range = (0.0, 0.08),
    gamma_range: tuple[float, float] = (0.7, 1.4),
    zero_background: bool = False,
) -> LabelContrast:
    """A random contrast: each label's mean uniform in ``intensity_range``, its noise std drawn
    from ``label_noise_std`` (one draw per label), a gamma log-uniform in ``gamma_range``.

    With ``zero_background`` label 0 gets mean 0 and no noise (a skull-stripped look).
    """
    gen = make_generator(generator)
    values = torch.unique(torch.as_tensor(values).long().cpu())
    lo, hi = (float(v) for v in intensity_range)
    g_lo, g_hi = (float(v) for v in gamma_range)
    if not lo <= hi or not 0 < g_lo <= g_hi:
        raise ValueError(
            f"need intensity_range low <= high and 0 < gamma low <= high, got {intensity_range}, "
            f"{gamma_range}"
        )
    k = len(values)
    means = lo + torch.rand(k, generator=gen) * (hi - lo)
    stds = torch.tensor([_draw(gen, label_noise_std) for _ in range(k)], dtype=torch.float32)
    u = float(torch.rand((), generator=gen))
    gamma = math.exp(math.log(g_lo) + u * (math.log(g_hi) - math.log(g_lo)))
    if zero_background:
        means = torch.where(values == 0, 0.0, means)
        stds = torch.where(values == 0, 0.0, stds)
    return LabelContrast(values, means, stds, gamma)


def _unit_range(x: Tensor) -> Tensor:
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def synthesize_image(
    labels: Tensor,
    generator: Seed = None,
    spacing: float | Sequence[float] | None = None,
    intensity_range: tuple[float, float] = (0.0, 1.0),
    label_noise_std: Range = (0.0, 0.08),
    blur_sigma_mm: Range = (0.0, 1.5),
    bias_strength: Range = (0.0, 0.3),
    bias_smoothness_mm: float = 40.0,
    gamma_range: tuple[float, float] = (0.7, 1.4),
    noise_std: Range = (0.0, 0.04),
    zero_background: bool = False,
    contrast: LabelContrast | None = None,
) -> Tensor:
    """Label map -> image with a random contrast (SynthMorph-style synthesis).

    For each image of the batch: every label gets a random mean intensity and per-voxel Gaussian
    noise (:func:`draw_contrast`), the result is blurred by a Gaussian of ``blur_sigma_mm``,
    multiplied by a smooth bias field ``exp(b)`` with ``max |b| = bias_strength``, normalised to
    [0, 1], raised to the contrast's gamma, given additive Gaussian noise of ``noise_std`` and
    normalised to [0, 1] again. A range ``(low, high)`` is drawn uniformly per image; a number is
    used as is. Pass ``contrast`` to give several images the same contrast (the blur, bias and
    noise stay independent; ``intensity_range``, ``label_noise_std`` and ``gamma_range`` are
    then the contrast's business and unused); otherwise each image draws its own.

    Args:
        labels: ``(N, 1, *S)`` integer label map (any device; the work runs there).
        generator: int seed or CPU ``torch.Generator``; the same seed gives the same images.
        spacing: voxel size in mm (for the blur and the bias field).
        zero_background: label 0 is black in the result (mean 0, no noise of any kind).

    Returns:
        ``(N, 1, *S)`` float32 in [0, 1].
    """
    if labels.is_floating_point() or labels.ndim not in (4, 5) or labels.shape[1] != 1:
        raise ValueError(
            f"labels must be an integer (N, 1, *S) tensor with 2 or 3 spatial dims, got "
            f"{labels.dtype} {tuple(labels.shape)}"
        )
    gen = make_generator(generator)
    shape = labels.shape[2:]
    sp = as_spacing(spacing, len(shape))
    device = labels.device
    out = []
    for item in labels.long():
        con = contrast
        if con is None:
            con = draw_contrast(
                torch.unique(item), gen, intensity_range, label_noise_std, gamma_range,
                zero_background,
            )
        mean, std = con.lookup(item[None])
        noise = torch.randn(mean.shape, generator=gen).to(device)
        img = mean + std * noise
        sigma = _draw(gen, blur_sigma_mm)
        if sigma > 0:
            img = gaussian_smooth(img, [sigma / s for s in sp])
        strength = _draw(gen, bias_strength)
        img = img * random_bias_field(shape, sp, strength, bias_smoothness_mm, gen, device, 2.0)
        img = _unit_range(img) ** con.gamma
        img = img + _draw(gen, noise_std) * torch.randn(img.shape, generator=gen).to(device)
        if zero_background:
            img = torch.where(item[None] == 0, 0.0, img.clamp_min(0))
            img = img / img.max().clamp_min(1e-12)
        else:
            img = _unit_range(img)
        out.append(img[0])
    return torch.stack(out).float()


def random_label_map(
    shape: Sequence[int],
    n_labels: int = 8,
    spacing: float | Sequence[float] | None = None,
    smoothness_mm: float | None = None,
    generator: Seed = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """A random label phantom: ``n_labels`` compact regions filling an ellipsoid, 0 outside.

    The ellipsoid has semi-axes of 40 % of the extent. Inside it, ``n_labels`` centres are drawn
    uniformly and every voxel takes the nearest centre, with distances perturbed by smooth noise
    (``smoothness_mm``, default a tenth of the smallest extent; amplitude a quarter of the typical
    region radius) so that borders are curved rather than planar. Every label is present, as a
    compact blob of similar size. For tests and toy training without registry data.

    Returns:
        ``(1, 1, *shape)`` int64 with values in ``0 .. n_labels``.
    """
    if n_labels < 1:
        raise ValueError(f"n_labels must be >= 1, got {n_labels}")
    gen = make_generator(generator)
    ndim = len(shape)
    sp = as_spacing(spacing, ndim)
    extent = [(n - 1) * s for n, s in zip(shape, sp, strict=True)]
    semi = torch.tensor([0.4 * e for e in extent], dtype=torch.float64)
    if smoothness_mm is None:
        smoothness_mm = min(extent) / 10
    # candidates uniform in the ellipsoid (uniform direction, radius ~ u ** (1 / D)), then a
    # farthest-point pick among them spreads the centres evenly: regions of similar size
    n_cand = 16 * n_labels
    direction = torch.randn(n_cand, ndim, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
    radius = torch.rand(n_cand, 1, generator=gen, dtype=torch.float64) ** (1 / ndim)
    cand = torch.tensor([e / 2 for e in extent]) + 0.9 * radius * direction * semi
    chosen = [0]
    nearest = (cand - cand[0]).norm(dim=1)
    for _ in range(n_labels - 1):
        k = int(nearest.argmax())
        chosen.append(k)
        nearest = torch.minimum(nearest, (cand - cand[k]).norm(dim=1))
    centres = cand[chosen].float()
    noise = smooth_noise(shape, sp, smoothness_mm, n_labels, gen, device)
    noise = noise / noise.std().clamp_min(1e-12)
    volume = math.prod(float(v) for v in semi) * (math.pi if ndim == 2 else 4 * math.pi / 3)
    region_radius = (volume / n_labels) ** (1 / ndim)
    pos = []
    inside = torch.zeros(tuple(shape), device=device)
    for axis, (n, s) in enumerate(zip(shape, sp, strict=True)):
        view = [1] * ndim
        view[axis] = n
        x = (torch.arange(n, device=device, dtype=torch.float32) * s).view(view)
        pos.append(x)
        inside = inside + ((x - extent[axis] / 2) / float(semi[axis])) ** 2
    dist = torch.stack([
        sum((pos[a] - float(c[a])) ** 2 for a in range(ndim)).expand(tuple(shape)).sqrt()
        for c in centres
    ])[None]
    labels = (dist + 0.25 * region_radius * noise).argmin(1, keepdim=True) + 1
    return torch.where(inside[None, None] <= 1, labels, 0)


__all__ = [
    "LabelContrast",
    "apply_random_deformation",
    "draw_contrast",
    "grid_center",
    "invert_field",
    "make_generator",
    "random_affine",
    "random_affine_field",
    "random_bias_field",
    "random_intensity_change",
    "random_label_map",
    "random_svf_field",
    "rotation_planes",
    "smooth_noise",
    "svf_grid_factor",
    "synthesize_image",
]
