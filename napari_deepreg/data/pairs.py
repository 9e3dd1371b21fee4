"""Synthetic registration pairs with a known answer, from an anatomy (image + label map).

How a pair is made (all draws from one seeded CPU generator; the work runs on ``device``):

1. The anatomy is brought to the working grid once (:func:`prepare_anatomy`: integer
   downsampling, label majority vote, centred crop / zero pad to ``working_shape``, intensities
   to [0, 1]). With ``random_slice`` a 2D slice of a 3D anatomy is taken here, and everything
   below happens in 2D.
2. The answer is drawn first: ``phi_u = B o exp(v)``, a random affine ``B`` about the grid
   centre after a random smooth diffeomorphism ``exp(v)`` (an SVF integrated by scaling and
   squaring). Its displacement ``u`` is the pair's ``field``.
3. A random "subject" warp ``phi_m = exp(v_m)`` gives the moving anatomy: ``moving = I o phi_m``.
4. The fixed anatomy is ``I o phi_m o phi_u`` (its field ``compose(m, u)``), so that
   ``moving(x + u(x)) = I(phi_m(phi_u(x))) = fixed(x)``: the true field needs no inversion and is
   exact up to the interpolation of the warps themselves. Both images are random warps of the
   anatomy, and the misalignment between them is what the config asks for (its affine ranges
   hold for ``B`` exactly).
5. Labels are warped alongside (:func:`~napari_deepreg.core.warp_labels`). Images by
   ``modality``: ``"same"`` warps the real intensities and gives each image its own mild gamma
   and bias change; ``"synth"`` synthesises both from their label maps with one random contrast;
   ``"multimodal"`` synthesises them with two independent contrasts.

Every determinant is positive: ``exp(v)`` is a diffeomorphism, ``B`` has a positive determinant
(rotations, positive scales, unit shears), so ``phi_u`` and ``phi_m o phi_u`` have no folds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core import affine_to_field, compose, warp_image, warp_labels
from ..core.device import resolve_device
from ..volume import Volume
from .appearance import LabelContrast, draw_contrast, random_intensity_change, synthesize_image
from .deform import grid_center, random_affine, random_svf_field
from .draws import Seed, draw_value, make_generator
from .pair_config import PairConfig
from .working_anatomy import Anatomy, prepare_anatomy, random_slice, slice_anatomy, slice_index


@dataclass
class SyntheticPair:
    """A registration pair with its answer, on one grid (origin 0, spacing ``spacing``).

    Attributes:
        fixed, moving: ``(1, 1, *S)`` float32 in [0, 1].
        fixed_labels, moving_labels: ``(1, 1, *S)`` int64.
        field: ``(1, D, *S)`` true displacement (mm, pull-back on the fixed grid):
            ``moving(x + field(x)) = fixed(x)``.
        spacing: voxel size (mm) per array axis.
        modality: ``"same"``, ``"synth"`` or ``"multimodal"``.
        affine: ``(D+1, D+1)`` float64, the true affine part ``B`` (mm, array axes, origin at
            voxel 0); the whole answer is ``B o exp(v)``. None for a slice of a 3D pair.
        info: what was drawn (seed, magnitudes, affine parameters, slice).
    """

    fixed: Tensor
    moving: Tensor
    fixed_labels: Tensor
    moving_labels: Tensor
    field: Tensor
    spacing: tuple[float, ...]
    modality: str
    affine: Tensor | None = None
    info: dict[str, Any] = dataclass_field(default_factory=dict)

    @property
    def ndim(self) -> int:
        return self.field.shape[1]

    def to_volumes(self) -> dict[str, Any]:
        """Numpy views for the pipeline and the viewer: ``fixed``, ``moving``, ``fixed_labels``,
        ``moving_labels`` as :class:`Volume` (int32 labels) and ``field`` ``(D, *S)``."""
        out: dict[str, Any] = {}
        for key in ("fixed", "moving", "fixed_labels", "moving_labels"):
            array = getattr(self, key)[0, 0].detach().cpu().numpy()
            if key.endswith("labels"):
                array = array.astype(np.int32)
            out[key] = Volume(array, self.spacing, name=key)
        out["field"] = self.field[0].detach().cpu().numpy()
        return out


# ----------------------------------------------------------------------------- pairs


def _warp_labels(labels: Tensor, field: Tensor, spacing, mode: str) -> Tensor:
    if mode == "nearest" and int(labels.max()) < 2**24:
        # label values are exact in float32 up to 2**24 (larger ones take the vote)
        return warp_image(labels.float(), field, spacing, mode="nearest").to(labels.dtype)
    return warp_labels(labels, field, spacing)


def _affine_after(matrix: Tensor, inner: Tensor, spacing: Sequence[float]) -> Tensor:
    """Field of ``B o phi_inner``: ``B(x + w(x)) - x = (A - I) x + b + A w(x)``, exactly."""
    ndim = inner.shape[1]
    matrix = matrix.to(device=inner.device, dtype=inner.dtype)
    outer = affine_to_field(matrix, inner.shape[2:], spacing)
    return outer + torch.einsum("ij,nj...->ni...", matrix[:ndim, :ndim], inner)


def _same_contrast(
    image: Tensor, spacing: Sequence[float], config: PairConfig, gen: torch.Generator
) -> Tensor:
    changed, _ = random_intensity_change(
        image, spacing, config.gamma_range, config.bias_strength, generator=gen,
        voxels_per_sigma=2.0,
    )
    changed = changed.clamp_min(0)
    return changed / changed.max().clamp_min(1e-12)


def _synthesize(
    labels: Tensor, spacing: Sequence[float], config: PairConfig, gen: torch.Generator,
    contrast: LabelContrast,
) -> Tensor:
    return synthesize_image(
        labels, gen, spacing, config.intensity_range, config.label_noise_std,
        config.blur_sigma_mm, config.synth_bias_strength, 40.0, config.synth_gamma_range,
        config.noise_std, config.zero_background, contrast,
    )


def pair_from_anatomy(
    anatomy: Anatomy, config: PairConfig | None = None, seed: Seed = None
) -> SyntheticPair:
    """One synthetic pair from a prepared anatomy (see the module docstring); runs on the
    anatomy's device. The same seed gives the same pair."""
    config = config or PairConfig()
    gen = make_generator(seed)
    info: dict[str, Any] = {"seed": seed if isinstance(seed, int) else None}
    if config.random_slice:
        if anatomy.ndim != 3:
            raise ValueError("random_slice needs a 3D anatomy; this one is 2D already")
        axis, index = random_slice(anatomy, config, gen)
        anatomy = slice_anatomy(anatomy, axis, index)
        info.update(slice_axis=axis, slice_index=index)
    if config.modality == "same" and anatomy.image is None:
        raise ValueError('modality "same" needs an anatomy image; use "synth" for labels only')
    shape, sp, device = anatomy.shape, anatomy.spacing, anatomy.labels.device
    ndim = len(shape)

    # the answer: phi_u = B o exp(v)
    magnitude = draw_value(gen, config.svf_magnitude_mm)
    svf = random_svf_field(
        shape, sp, magnitude, config.svf_smoothness_mm, gen, device, config.steps,
        grid_factor=config.svf_grid_factor,
    )
    matrix, params = random_affine(
        ndim, config.rotation_deg, config.scale, config.shear, config.translation_mm, gen,
        grid_center(shape, sp), return_params=True,
    )
    true_field = _affine_after(matrix, svf, sp)

    # the subject warp phi_m; fixed = I o phi_m o phi_u
    subject = config.svf_magnitude_mm if config.subject_magnitude_mm is None else (
        config.subject_magnitude_mm
    )
    subject_mag = draw_value(gen, subject)
    warp_m = random_svf_field(
        shape, sp, subject_mag, config.svf_smoothness_mm, gen, device, config.steps,
        grid_factor=config.svf_grid_factor,
    )
    moved = subject_mag > 0
    warp_f = compose(warp_m, true_field, sp) if moved else true_field

    mode = config.label_interpolation
    moving_labels = (
        _warp_labels(anatomy.labels, warp_m, sp, mode) if moved else anatomy.labels.clone()
    )
    fixed_labels = _warp_labels(anatomy.labels, warp_f, sp, mode)
    if config.modality == "same":
        moving = warp_image(anatomy.image, warp_m, sp) if moved else anatomy.image.clone()
        fixed = warp_image(anatomy.image, warp_f, sp)
        fixed = _same_contrast(fixed, sp, config, gen)
        moving = _same_contrast(moving, sp, config, gen)
    else:
        kw = (config.intensity_range, config.label_noise_std, config.synth_gamma_range,
              config.zero_background)
        contrast_f = draw_contrast(anatomy.values, gen, *kw)
        contrast_m = contrast_f if config.modality == "synth" else draw_contrast(
            anatomy.values, gen, *kw
        )
        fixed = _synthesize(fixed_labels, sp, config, gen, contrast_f)
        moving = _synthesize(moving_labels, sp, config, gen, contrast_m)
    if anatomy.tissue_label is not None:
        # the extra label served the synthesis only
        fixed_labels = torch.where(fixed_labels == anatomy.tissue_label, 0, fixed_labels)
        moving_labels = torch.where(moving_labels == anatomy.tissue_label, 0, moving_labels)
    info.update(
        svf_magnitude_mm=magnitude, subject_magnitude_mm=subject_mag, anatomy=anatomy.name,
        **params,
    )
    return SyntheticPair(
        fixed.float(), moving.float(), fixed_labels, moving_labels, true_field.float(), sp,
        config.modality, matrix, info,
    )


def make_pair(
    image: Volume | None,
    labels: Volume,
    config: PairConfig | None = None,
    seed: Seed = None,
    device: torch.device | str = "cpu",
) -> SyntheticPair:
    """A synthetic pair from an anatomy: :func:`prepare_anatomy` then
    :func:`pair_from_anatomy`. For many pairs from one anatomy use :class:`PairSampler`, which
    prepares it once."""
    return pair_from_anatomy(prepare_anatomy(image, labels, config, device), config, seed)


def slice_pair(pair: SyntheticPair, axis: int, index: int) -> SyntheticPair:
    """The 2D section ``index`` along array ``axis`` of a 3D pair.

    The field keeps its in-plane components. Unless the true motion stays in the plane this is
    not an exact 2D pair (the moving slice shows tissue that moved through the plane);
    ``info["out_of_plane_mm"]`` gives the largest out-of-plane displacement on the slice. For
    exact 2D pairs use ``PairConfig(random_slice=True)`` (slice first, then deform in 2D).
    """
    if pair.ndim != 3:
        raise ValueError(f"slice_pair needs a 3D pair, got {pair.ndim}D")
    if not 0 <= axis < 3 or not 0 <= index < pair.field.shape[2 + axis]:
        grid = tuple(pair.field.shape[2:])
        raise ValueError(f"no slice {index} along axis {axis} of a {grid} grid")
    take = slice_index(axis, index)
    in_plane = [a for a in range(3) if a != axis]
    field2 = pair.field[take][:, in_plane].contiguous()
    info = dict(pair.info, slice_axis=axis, slice_index=index,
                out_of_plane_mm=float(pair.field[take][:, axis].abs().max()))
    return SyntheticPair(
        pair.fixed[take].contiguous(), pair.moving[take].contiguous(),
        pair.fixed_labels[take].contiguous(), pair.moving_labels[take].contiguous(), field2,
        tuple(pair.spacing[a] for a in in_plane), pair.modality, None, info,
    )


class PairSampler:
    """Batches of synthetic pairs from a few anatomies, deterministic per seed.

    Each anatomy is prepared once (:func:`prepare_anatomy`, on ``device``); every pair then draws
    an anatomy and a per-pair seed from the sampler's generator, so the sequence of batches is
    the same for the same seed (and each pair can be remade from ``info["seed"]``).

    Args:
        anatomies: ``(image or None, labels)`` pairs of :class:`Volume`; on the working grid they
            must share a spacing (and a shape, unless 2D slices along a fixed axis agree).
        config: the :class:`PairConfig`.
        seed: int seed or CPU generator.
        device: where pairs are made (``"auto"`` picks CUDA, then MPS, then CPU).
    """

    def __init__(
        self,
        anatomies: Sequence[tuple[Volume | None, Volume]],
        config: PairConfig | None = None,
        seed: Seed = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if not anatomies:
            raise ValueError("PairSampler needs at least one (image, labels) anatomy")
        self.config = config or PairConfig()
        self.device = resolve_device(device)
        self.anatomies = [
            prepare_anatomy(img, lab, self.config, self.device) for img, lab in anatomies
        ]
        first = self.anatomies[0]
        for other in self.anatomies[1:]:
            if not np.allclose(other.spacing, first.spacing) or other.ndim != first.ndim:
                raise ValueError(
                    f"anatomies must share a working spacing, got {first.spacing} and "
                    f"{other.spacing}; resample them first"
                )
            if other.shape != first.shape and not self.config.random_slice:
                raise ValueError(
                    f"anatomies must share a working shape, got {first.shape} and "
                    f"{other.shape}; set PairConfig.working_shape"
                )
        self.generator = make_generator(seed)

    def pair(self, generator: torch.Generator | None = None) -> SyntheticPair:
        """One pair (advances the generator)."""
        gen = self.generator if generator is None else generator
        which = int(torch.randint(len(self.anatomies), (), generator=gen))
        seed = int(torch.randint(2**62, (), generator=gen))
        return pair_from_anatomy(self.anatomies[which], self.config, seed)

    def sample(
        self, batch_size: int = 1, generator: torch.Generator | None = None
    ) -> dict[str, Any]:
        """``batch_size`` pairs stacked: ``fixed``, ``moving`` ``(N, 1, *S)`` float32,
        ``fixed_labels``, ``moving_labels`` ``(N, 1, *S)`` int64, ``field`` ``(N, D, *S)`` mm,
        ``affine`` ``(N, D+1, D+1)`` float64, ``spacing`` tuple (mm)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        pairs = [self.pair(generator) for _ in range(batch_size)]
        shapes = {tuple(p.field.shape[2:]) for p in pairs}
        spacings = {tuple(round(s, 6) for s in p.spacing) for p in pairs}
        if len(shapes) > 1 or len(spacings) > 1:
            raise ValueError(
                f"pairs of one batch differ in grid ({sorted(shapes)}, {sorted(spacings)}); "
                "fix PairConfig.slice_axis or use a cubic working_shape"
            )
        batch: dict[str, Any] = {
            key: torch.cat([getattr(p, key) for p in pairs])
            for key in ("fixed", "moving", "fixed_labels", "moving_labels", "field")
        }
        batch["affine"] = torch.stack([p.affine for p in pairs])
        batch["spacing"] = pairs[0].spacing
        return batch


__all__ = [
    "PairSampler",
    "SyntheticPair",
    "make_pair",
    "pair_from_anatomy",
    "slice_pair",
]
