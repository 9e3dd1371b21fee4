"""Label map -> image with a random contrast, wide enough that a network cannot learn one scanner.

:func:`synthesize_contrast` draws, per image (all from one CPU ``torch.Generator``):

* a mean intensity per label: with probability ``p_independent`` uniform in [0, 1] for every
  label (SynthMorph: any border may carry any contrast), else per tissue group (given ``groups``,
  e.g. the coarse GM / WM / CSF map) uniform in [0, 1] plus a small per-label deviation, so that
  the image looks like a brain with some contrast while parcels still differ a little; and a
  chance that a label shares another's mean (real tissues often do: a network must not rely on
  every border being visible);
* within-label texture: smooth or white noise of a per-label amplitude;
* a Gaussian blur of random width (partial volume), a smooth multiplicative bias field, a gamma;
* additive noise;
* a random resolution: with some probability a thick-slice acquisition along a random axis
  (slice-profile blur, downsampling by 1.5-4 along that axis, linear upsampling);
* a random sharpness: unsharp masking, which brings out single-subject-like detail;
* an inversion (T1 <-> T2-like) with some probability; a black background with some probability;
* a final normalisation to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..core import as_spacing, gaussian_smooth, resize
from . import random_bias_field, smooth_noise
from .subjects import Range, Seed, chance, make_generator, uniform


@dataclass
class ContrastConfig:
    """Ranges ``(low, high)`` are drawn uniformly per image; probabilities per image.

    Attributes:
        p_independent: probability that every label draws its mean independently (else per
            tissue group plus a deviation of ``parcel_std``; without groups always independent).
        parcel_std: standard deviation of a label's mean about its group's (drawn per image).
        min_tissue_contrast: grouped means: the smallest range of the GM, WM, CSF means.
        min_gm_wm_contrast: grouped means: the smallest difference of the GM and WM means.
        p_share: per label, the probability that it takes another label's mean.
        p_zero_background: probability of a black background (label 0 -> 0, skull-stripped).
        texture_std: per-label texture amplitude (drawn per label).
        texture_smoothness_mm: smoothing of the texture noise (0: white noise).
        blur_mm: Gaussian blur, standard deviation in mm.
        bias_strength: largest log-amplitude of the multiplicative bias field.
        bias_smoothness_mm: its smoothness (mm).
        gamma: exponent range, drawn log-uniformly.
        noise_std: additive Gaussian noise after normalisation.
        p_low_resolution: probability of a thick-slice acquisition along a random axis.
        thickness: slice thickness in voxels of the working grid (1.5 .. 4).
        p_sharpen: probability of unsharp masking.
        sharpen_amount, sharpen_sigma_mm: its strength and width.
        p_invert: probability that the intensities are inverted (background kept).
    """

    p_independent: float = 0.3
    parcel_std: Range = (0.0, 0.12)
    min_tissue_contrast: float = 0.3
    min_gm_wm_contrast: float = 0.12
    p_share: float = 0.15
    p_zero_background: float = 0.6
    texture_std: Range = (0.0, 0.06)
    texture_smoothness_mm: Range = (0.0, 3.0)
    blur_mm: Range = (0.0, 2.0)
    bias_strength: Range = (0.0, 0.5)
    bias_smoothness_mm: Range = (30.0, 60.0)
    gamma: tuple[float, float] = (0.5, 2.0)
    noise_std: Range = (0.0, 0.04)
    p_low_resolution: float = 0.3
    thickness: Range = (1.5, 3.0)
    p_sharpen: float = 0.3
    sharpen_amount: Range = (0.3, 1.2)
    sharpen_sigma_mm: Range = (1.0, 3.0)
    p_invert: float = 0.25


def _unit(x: Tensor) -> Tensor:
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def label_means(image: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of ``image`` inside each label of ``labels`` (same shape): ``(values, means)``."""
    values, index = torch.unique(labels, return_inverse=True)
    sums = torch.zeros(len(values), dtype=torch.float64, device=image.device)
    counts = torch.zeros_like(sums)
    sums.index_add_(0, index.reshape(-1), image.reshape(-1).double())
    counts.index_add_(0, index.reshape(-1), torch.ones_like(sums[:1]).expand(index.numel()))
    return values, (sums / counts.clamp_min(1)).float()


def majority_group(index: Tensor, groups: Tensor, k: int) -> Tensor:
    """For each of ``k`` label indices (``index``: per voxel, ``0 .. k-1``), the most frequent
    value of ``groups`` (small non-negative integers, same shape) among its voxels: ``(k,)``."""
    n_groups = int(groups.max()) + 1
    counts = torch.bincount((index * n_groups + groups).reshape(-1), minlength=k * n_groups)
    return counts.reshape(k, n_groups).argmax(1)


def synthesize_contrast(
    labels: Tensor,
    spacing: float | Sequence[float] | None = None,
    config: ContrastConfig | None = None,
    generator: Seed = None,
    groups: Tensor | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """One image from a label map with a random contrast (see the module docstring).

    Args:
        labels: ``(1, 1, *S)`` integer labels (any values; 0 is background), 2D or 3D, any
            device (the work runs there, the draws on the CPU).
        spacing: voxel size in mm per array axis.
        config: :class:`ContrastConfig` (defaults if None).
        generator: int seed or CPU ``torch.Generator``.
        groups: ``(1, 1, *S)`` small non-negative integer tissue groups (e.g. the coarse map;
            0 = background) for the grouped means; None: every label independent.

    Returns:
        ``(image (1, 1, *S) float32 in [0, 1], info)``; ``info`` records what was drawn
        (``inverted``, ``zero_background``, ``shared``, ``gamma``, ``blur_mm``, ``thickness_axis``,
        ``sharpen``...).
    """
    if labels.is_floating_point() or labels.ndim not in (4, 5) or labels.shape[:2] != (1, 1):
        raise ValueError(f"labels must be an integer (1, 1, *S) tensor, got {labels.dtype} "
                         f"{tuple(labels.shape)}")
    config = config or ContrastConfig()
    gen = make_generator(generator)
    device = labels.device
    shape = tuple(labels.shape[2:])
    ndim = len(shape)
    sp = as_spacing(spacing, ndim)
    values, index = torch.unique(labels, return_inverse=True)
    k = len(values)

    means = torch.rand(k, generator=gen)
    group_means = torch.rand(8, generator=gen)
    # GM, WM and CSF (groups 1-3) at least `min_tissue_contrast` apart end to end: no MR
    # sequence used for registration leaves all three tissues alike, and an image that is only
    # texture teaches nothing
    tissues = group_means[1:4]
    spread = float(tissues.max() - tissues.min())
    if spread < config.min_tissue_contrast:
        centre = float(tissues.mean())
        stretched = centre + (tissues - centre) * (config.min_tissue_contrast / max(spread, 1e-6))
        shift = float(stretched.min().clamp(max=0) + (stretched.max() - 1).clamp(min=0))
        group_means[1:4] = (stretched - shift).clamp(0, 1)
    # and GM / WM apart by at least `min_gm_wm_contrast`: their border is what registration of
    # brains is mostly about, and every structural sequence shows it (if faintly)
    gm, wm = float(group_means[1]), float(group_means[2])
    if abs(wm - gm) < config.min_gm_wm_contrast:
        sign = 1.0 if wm >= gm else -1.0
        half = config.min_gm_wm_contrast / 2
        centre = min(max((gm + wm) / 2, half), 1 - half)
        group_means[1], group_means[2] = centre - sign * half, centre + sign * half
    deviation = uniform(gen, config.parcel_std) * torch.randn(k, generator=gen)
    independent = chance(gen, config.p_independent) or groups is None
    if not independent:
        # hemispheres share a tissue's mean: coarse 1, 2 -> GM; 3, 4 -> WM; 5, 6 -> CSF
        tissue = majority_group(index, (groups.long().clamp(0, 6) + 1) // 2, k).cpu()
        grouped = (group_means[tissue] + deviation).clamp(0, 1)
        # background-group labels that are not background (clutter shapes) stay independent
        means = torch.where((tissue > 0) | (values.cpu() == 0), grouped, means)
    share = torch.rand(k, generator=gen) < config.p_share
    partner = torch.randint(k, (k,), generator=gen)
    means = torch.where(share, means[partner], means)
    stds = torch.tensor([uniform(gen, config.texture_std) for _ in range(k)])
    zero_bg = chance(gen, config.p_zero_background) and bool((values == 0).any())
    background = values == 0
    if zero_bg:
        means, stds = torch.where(background, 0.0, means), torch.where(background, 0.0, stds)
    texture_smooth = uniform(gen, config.texture_smoothness_mm)
    texture_seed = int(torch.randint(2**62, (), generator=gen))
    if texture_smooth > 0:
        texture = smooth_noise(shape, sp, texture_smooth, 1, texture_seed, device)
        texture = texture / texture.std().clamp_min(1e-12)
    else:
        texture = torch.randn((1, 1, *shape), generator=make_generator(texture_seed)).to(device)
    image = means.to(device)[index] + stds.to(device)[index] * texture

    blur = uniform(gen, config.blur_mm)
    if blur > 0:
        image = gaussian_smooth(image, [blur / s for s in sp])
    strength = uniform(gen, config.bias_strength)
    bias_smooth = uniform(gen, config.bias_smoothness_mm)
    bias_seed = int(torch.randint(2**62, (), generator=gen))
    image = image * random_bias_field(shape, sp, strength, bias_smooth, bias_seed, device, 2.0)
    g_lo, g_hi = config.gamma
    gamma = math.exp(uniform(gen, (math.log(g_lo), math.log(g_hi))))
    image = _unit(image) ** gamma
    noise = uniform(gen, config.noise_std)
    noise_seed = int(torch.randint(2**62, (), generator=gen))
    image = image + noise * torch.randn(image.shape, generator=make_generator(noise_seed)).to(
        device)

    thick_axis = int(torch.randint(ndim, (), generator=gen))
    thickness = uniform(gen, config.thickness)
    if chance(gen, config.p_low_resolution):
        # slice profile (FWHM = thickness), sampled every `thickness` voxels, read back linearly
        sigma = [0.0] * ndim
        sigma[thick_axis] = thickness / 2.355
        image = gaussian_smooth(image, sigma)
        coarse = list(shape)
        coarse[thick_axis] = max(2, int(round(shape[thick_axis] / thickness)))
        image = resize(resize(image, coarse, antialias=False), shape, antialias=False)
    else:
        thick_axis, thickness = -1, 1.0

    amount = uniform(gen, config.sharpen_amount)
    sharp_sigma = uniform(gen, config.sharpen_sigma_mm)
    if chance(gen, config.p_sharpen):
        image = image + amount * (image - gaussian_smooth(image, [sharp_sigma / s for s in sp]))
    else:
        amount = 0.0

    inverted = chance(gen, config.p_invert)
    # robust range: sharpening and noise overshoot by a few voxels, which must not squash the rest
    flat = image.reshape(-1)
    step = max(1, flat.numel() // 200_000)
    lo, hi = torch.quantile(flat[::step], torch.tensor([0.001, 0.999], device=device))
    image = ((image - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    if inverted:
        image = 1 - image
    if zero_bg:
        fg = labels != 0
        image = torch.where(fg, image, 0.0)
        if inverted:  # keep the darkest brain voxel above the black background
            image = torch.where(fg, 0.05 + 0.95 * image, 0.0)
    info = {
        "labels": k, "shared": int(share.sum()), "independent": independent,
        "zero_background": zero_bg, "gamma": gamma,
        "blur_mm": blur, "bias_strength": strength, "noise_std": noise,
        "thickness_axis": thick_axis, "thickness": thickness, "sharpen": amount,
        "inverted": inverted,
    }
    return image.float().contiguous(), info


def add_clutter(
    fixed: Tensor, moving: Tensor, fixed_roi: Tensor, moving_roi: Tensor,
    generator: torch.Generator, max_shift: int = 12, min_shift: int = 4, blob_sigma: float = 3.0,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Non-ROI content around the ROI that moves on its own: the case the ROI mask is for.

    Outside ``fixed_roi`` the fixed image gets a cluttered pattern (blobs of noise smoothed by
    ``blob_sigma`` pixels, at a random intensity in [0.2, 1], on a grey in [0, 0.3]); outside
    ``moving_roi`` the moving image gets the same pattern translated by a random whole-pixel
    shift (one random axis by ``min_shift`` .. ``max_shift`` pixels, the others by up to
    ``max_shift``; random signs), independent of the ROI's motion. Inside the ROIs nothing changes.
    Images ``(1, 1, *S)`` in [0, 1], ROIs bool of the same shape; returns ``(fixed, moving,
    info)``.
    """
    shape = fixed.shape[2:]
    blobs = gaussian_smooth(torch.randn(fixed.shape, generator=generator), blob_sigma)
    blobs = blobs / blobs.std().clamp_min(1e-6)
    level = float(torch.rand((), generator=generator)) * 0.6 - 0.3
    texture = gaussian_smooth(torch.randn(fixed.shape, generator=generator), 1.0)
    grey = 0.3 * float(torch.rand((), generator=generator))
    bright = 0.2 + 0.8 * float(torch.rand((), generator=generator))
    pattern = torch.where(blobs > level, bright + 0.1 * texture, grey).clamp(0, 1)
    shift = torch.randint(min_shift, max_shift + 1, (len(shape),), generator=generator)
    shift = torch.where(torch.rand(len(shape), generator=generator) < 0.5, -shift, shift)
    if len(shape) > 1:  # one axis may move less: any direction, at least min_shift overall
        keep = int(torch.randint(len(shape), (), generator=generator))
        small = torch.randint(-max_shift, max_shift + 1, (len(shape),), generator=generator)
        shift = torch.where(torch.arange(len(shape)) == keep, shift, small)
    shifted = torch.roll(pattern, [int(v) for v in shift], dims=list(range(2, fixed.ndim)))
    out_f = torch.where(fixed_roi, fixed, pattern)
    out_m = torch.where(moving_roi, moving, shifted)
    info = {"shift_px": [int(v) for v in shift], "blob_level": level, "grey": grey,
            "bright": bright}
    return out_f, out_m, info


__all__ = ["ContrastConfig", "add_clutter", "label_means", "synthesize_contrast"]
