"""Configs of the semantic B-spline family: inference settings and the trained model."""

from __future__ import annotations

from dataclasses import dataclass

from ...fields import validate
from ...nets.semantic_bspline import COMBINE
from ..learned import model_file_param
from ..net_config import TEMPLATE_ANATOMIES, check_net_config
from ..refine import RefineSettingsFields

METHOD_ID = "semantic_bspline"
ANATOMIES = TEMPLATE_ANATOMIES


@dataclass
class SemanticBSplineConfig(RefineSettingsFields):
    """Inference settings of a trained semantic B-spline model (every field has GUI metadata):
    the test-time refinement (:class:`~..refine.RefineSettingsFields`) and a model file.

    The network itself (its working voxel size, scales, how it combines the two fields) is fixed
    by the model it was trained as; see :class:`SemanticBSplineNetConfig`.
    """

    model_file: str = model_file_param()

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class SemanticBSplineNetConfig:
    """A trained model: architecture, working grid, losses and training data.

    Attributes:
        dims: 2 (slices) or 3 (volumes).
        working_shape: the training grid in voxels; use ``8 k + 1`` per axis so that the
            half-resolution features sit exactly on every other voxel. 2D models train on
            square slices of a ``(n, n, n)`` anatomy crop, so any slice axis fits one batch.
        voxel_size: working voxel size in mm (an integer multiple of the anatomies' 1 mm); at
            inference images are resampled to it.
        num_classes: labels of the training label set, background included (7: the tissue
            classes of ``data.anatomy.TISSUE_NAMES``).
        strides: B-spline knot spacing of each registration step in working voxels, coarse
            first (the paper's scales, about 5 % and 3 % of the largest image dimension); one
            value gives the single-step variant.
        combine: ``"add"`` or ``"compose"`` (see :class:`SemanticBSplineNet`).
        unet_channels, regnet_channels: widths (empty: the defaults for ``dims``).
        norm: normalisation in both nets (``"instance"``, ``"batch"``, ``"group"``, ``"none"``).
        lambda_semantic: weight of the semantic cross-entropy (0: the "no guidance" ablation).
        lambda_reg: weight of ``mean |(V - V_smooth) / voxel|^2`` (voxel units).
        reg_kernel: width of the two average poolings that make ``V_smooth``.
        train_anatomies, val_anatomies: templates pairs are drawn from (``TEMPLATE_ANATOMIES``).
            The bundled samples are MNI 2009a, held out by default.
        synth_fraction: share of pairs whose images are synthesised from the label maps with a
            random contrast (the rest keep the real T1 intensities with mild gamma / bias).
        svf_magnitude_mm, subject_magnitude_mm, svf_smoothness_mm, rotation_deg, scale,
            translation_mm: the random deformations (see ``data.pairs.PairConfig``).
        slice_axis: 2D only: the axis slices are taken along (None: any of the three).
    """

    dims: int = 2
    working_shape: tuple[int, ...] = (113, 113)
    voxel_size: float = 2.0
    num_classes: int = 7
    strides: tuple[int, ...] = (5, 3)
    combine: str = "add"
    unet_channels: tuple[int, ...] = ()
    regnet_channels: tuple[int, ...] = ()
    norm: str = "instance"
    lambda_semantic: float = 1.0
    lambda_reg: float = 1.0
    reg_kernel: int = 3
    train_anatomies: tuple[str, ...] = ("mni2009c", "cat12")
    val_anatomies: tuple[str, ...] = ("mni2009c", "cat12")
    synth_fraction: float = 0.5
    svf_magnitude_mm: tuple[float, float] = (2.0, 10.0)
    subject_magnitude_mm: tuple[float, float] = (0.0, 6.0)
    svf_smoothness_mm: float = 16.0
    rotation_deg: float = 5.0
    scale: float = 0.05
    translation_mm: float = 6.0
    slice_axis: int | None = None

    def __post_init__(self) -> None:
        check_net_config(self)
        if self.dims == 2 and len(set(self.working_shape)) != 1:
            raise ValueError(f"2D models train on square slices, got {self.working_shape}")
        if self.combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {self.combine!r}")
        if not self.strides or any(int(s) < 1 for s in self.strides):
            raise ValueError(f"strides must be positive voxel counts, got {self.strides}")
        if self.voxel_size <= 0 or not float(self.voxel_size).is_integer():
            raise ValueError(f"voxel_size must be a whole number of mm, got {self.voxel_size}")
        if not 0 <= self.synth_fraction <= 1:
            raise ValueError(f"synth_fraction must be in [0, 1], got {self.synth_fraction}")


__all__ = ["ANATOMIES", "METHOD_ID", "SemanticBSplineConfig", "SemanticBSplineNetConfig"]
