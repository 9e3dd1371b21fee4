"""Seeded image appearance: intensity changes, bias fields and label-map -> image synthesis.

* mild intensity changes of a real image (:func:`random_intensity_change`,
  :func:`random_bias_field`);
* label-map -> image synthesis with random contrasts (:func:`synthesize_image`,
  :func:`draw_contrast`), SynthMorph-style.

Draws come from a seeded CPU generator (:mod:`.draws`): the same seed gives the same image on
every device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core import as_spacing, gaussian_smooth
from .draws import Range, Seed, draw_value, log_uniform, make_generator, smooth_noise


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
    gamma = log_uniform(gen, low, high)
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
    stds = torch.tensor([draw_value(gen, label_noise_std) for _ in range(k)], dtype=torch.float32)
    gamma = log_uniform(gen, g_lo, g_hi)
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
        sigma = draw_value(gen, blur_sigma_mm)
        if sigma > 0:
            img = gaussian_smooth(img, [sigma / s for s in sp])
        strength = draw_value(gen, bias_strength)
        img = img * random_bias_field(shape, sp, strength, bias_smoothness_mm, gen, device, 2.0)
        img = _unit_range(img) ** con.gamma
        img = img + draw_value(gen, noise_std) * torch.randn(img.shape, generator=gen).to(device)
        if zero_background:
            img = torch.where(item[None] == 0, 0.0, img.clamp_min(0))
            img = img / img.max().clamp_min(1e-12)
        else:
            img = _unit_range(img)
        out.append(img[0])
    return torch.stack(out).float()


__all__ = [
    "LabelContrast",
    "draw_contrast",
    "random_bias_field",
    "random_intensity_change",
    "synthesize_image",
]
