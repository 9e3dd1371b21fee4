"""How synthetic registration pairs are drawn: :class:`PairConfig` (read by
:mod:`.working_anatomy` and :mod:`.pairs`)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from .draws import Range

MODALITIES = ("same", "synth", "multimodal")


@dataclass
class PairConfig:
    """How synthetic pairs are drawn. Ranges are ``(low, high)`` (uniform) or a fixed number.

    Attributes:
        modality: ``"same"`` (real intensities, mild independent intensity changes), ``"synth"``
            (both images synthesised from their labels with one random contrast) or
            ``"multimodal"`` (two independent random contrasts).
        svf_magnitude_mm: largest displacement (mm) of the true deformable part; a range draws
            it per pair.
        svf_smoothness_mm: standard deviation (mm) of the Gaussian smoothing the velocity noise.
        subject_magnitude_mm: largest displacement of the random warp applied to the anatomy
            before the pair is made (variety of anatomy; 0 keeps the moving image the anatomy
            itself); ``None``: the same as ``svf_magnitude_mm``.
        rotation_deg: largest rotation per plane (degrees) of the true affine part.
        scale: scale range of the true affine part (see :func:`random_affine`).
        shear: largest shear coefficient.
        translation_mm: largest translation per axis (mm).
        gamma_range, bias_strength: intensity change of ``"same"`` pairs (per image).
        intensity_range, label_noise_std, blur_sigma_mm, synth_bias_strength, synth_gamma_range,
            noise_std, zero_background: label-map synthesis (:func:`synthesize_image`).
        tissue_threshold: unlabelled voxels (label 0) brighter than this (image scaled to
            [0, 1]) get a label of their own for synthesis, e.g. the white matter of a cortical
            atlas such as DKT, which would otherwise look like the background; the returned label
            maps show them as 0 still. ``None`` (or no image) turns this off.
        downsample: integer factor from the anatomy's grid to the working grid.
        working_shape: centred crop / zero pad (about the labels' bounding box) after
            downsampling; ``None`` keeps the downsampled shape.
        random_slice: make 2D pairs from random slices of a 3D anatomy (slice, then deform).
        slice_axis: array axis the slices are taken along (``None``: a random axis per pair).
        slice_range: slices are drawn in this fraction of the labels' extent along the axis.
        steps: scaling-and-squaring steps.
        svf_grid_factor: coarsening of the SVF integration (``None``: automatic, see
            :func:`random_svf_field`).
        label_interpolation: ``"vote"`` (:func:`~napari_deepreg.core.warp_labels`, the label of
            largest linear-interpolation weight) or ``"nearest"`` (nearest voxel; on a CPU about
            ten times faster, borders up to half a voxel rougher).
    """

    modality: str = "same"
    svf_magnitude_mm: Range = 6.0
    svf_smoothness_mm: float = 16.0
    subject_magnitude_mm: Range | None = None
    rotation_deg: float | tuple[float, ...] = 0.0
    scale: Range = 0.0
    shear: float = 0.0
    translation_mm: float | tuple[float, ...] = 0.0
    gamma_range: tuple[float, float] = (0.85, 1.18)
    bias_strength: float = 0.1
    intensity_range: tuple[float, float] = (0.0, 1.0)
    label_noise_std: Range = (0.0, 0.08)
    blur_sigma_mm: Range = (0.0, 1.5)
    synth_bias_strength: Range = (0.0, 0.3)
    synth_gamma_range: tuple[float, float] = (0.7, 1.4)
    noise_std: Range = (0.0, 0.04)
    zero_background: bool = False
    tissue_threshold: float | None = 0.1
    downsample: int = 1
    working_shape: tuple[int, ...] | None = None
    random_slice: bool = False
    slice_axis: int | None = 0
    slice_range: tuple[float, float] = (0.25, 0.75)
    steps: int = 7
    svf_grid_factor: int | None = None
    label_interpolation: str = "vote"

    def __post_init__(self) -> None:
        # lists from JSON / YAML configs become tuples
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if int(self.downsample) < 1:
            raise ValueError(f"downsample must be a positive integer, got {self.downsample}")
        if self.label_interpolation not in ("vote", "nearest"):
            raise ValueError(
                f'label_interpolation must be "vote" or "nearest", got {self.label_interpolation!r}'
            )
        if self.svf_smoothness_mm <= 0:
            raise ValueError(f"svf_smoothness_mm must be > 0, got {self.svf_smoothness_mm}")
        low, high = self.slice_range
        if not 0 <= low <= high <= 1:
            raise ValueError(f"slice_range must satisfy 0 <= low <= high <= 1, got {low, high}")


__all__ = ["MODALITIES", "PairConfig"]
