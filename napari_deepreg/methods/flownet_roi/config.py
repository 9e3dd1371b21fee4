"""Configs of the FlowNet + ROI family: inference settings and the trained model (2D only)."""

from __future__ import annotations

from dataclasses import dataclass

from ...fields import validate
from ..learned import model_file_param
from ..net_config import check_net_config
from ..refine import RefineSettingsFields
from .losses import SMOOTHNESS

METHOD_ID = "flownet_roi"

#: the paper's variants (Tables I and III): P photometric, M ROI overlap, N / E smoothness,
#: "+mask" the HNN ROI module in front of the field network
VARIANTS = {
    "PN": {"smoothness": "N", "use_mask": False, "overlap": False},
    "PE": {"smoothness": "E", "use_mask": False, "overlap": False},
    "PN+mask": {"smoothness": "N", "use_mask": True, "overlap": False},
    "PE+mask": {"smoothness": "E", "use_mask": True, "overlap": False},
    "PMN+mask": {"smoothness": "N", "use_mask": True, "overlap": True},
    "PME+mask": {"smoothness": "E", "use_mask": True, "overlap": True},
}


@dataclass
class FlowNetROIConfig(RefineSettingsFields):
    """Inference settings of a trained FlowNet + ROI model: the test-time refinement
    (:class:`~..refine.RefineSettingsFields`) and a model file. This is a 2D method: 3D volumes
    are refused."""

    model_file: str = model_file_param()

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class FlowNetROINetConfig:
    """A trained model: architecture, working grid, losses.

    Attributes:
        dims: 2 (the method is 2D).
        working_shape: training grid (multiples of 64: six stride-2 stages, 7 scales).
        voxel_size: working voxel size in mm; images are resampled to it at inference.
        variant: one of :data:`VARIANTS` (sets ``smoothness``, ``use_mask``, ``overlap``).
        channels, decoder_channels, hnn_channels: network widths.
        alpha, beta, gamma: weights of the photometric, smoothness and overlap terms (1, 0.05,
            1 as in the paper); eta: weight of the HNN loss.
        rotation_deg, scale, translation_mm: the training pairs' affine motion.
        train_anatomies, val_anatomies: unused by label-map training (kept for the shared
            checks).
        slice_axis: the axis 2D slices are taken along (None: any).
    """

    dims: int = 2
    working_shape: tuple[int, ...] = (128, 128)
    voxel_size: float = 2.0
    variant: str = "PN+mask"
    channels: tuple[int, ...] = (8, 16, 24, 32, 40, 48)
    decoder_channels: tuple[int, ...] = (32, 24, 16, 16, 8, 8)
    hnn_channels: tuple[int, ...] = (8, 16, 16, 24, 24)
    alpha: float = 1.0
    beta: float = 0.05
    gamma: float = 1.0
    eta: float = 1.0
    rotation_deg: float = 5.0
    scale: float = 0.05
    translation_mm: float = 6.0
    train_anatomies: tuple[str, ...] = ("cat12",)
    val_anatomies: tuple[str, ...] = ("mni2009c",)
    slice_axis: int | None = None

    def __post_init__(self) -> None:
        check_net_config(self)
        if self.dims != 2:
            raise ValueError(f"flownet_roi is a 2D method, got dims={self.dims}")
        if any(int(n) % 64 for n in self.working_shape):
            raise ValueError(f"working_shape must be multiples of 64, got {self.working_shape}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {self.variant!r}")
        if self.voxel_size <= 0:
            raise ValueError(f"voxel_size must be positive, got {self.voxel_size}")

    @property
    def smoothness(self) -> str:
        return VARIANTS[self.variant]["smoothness"]

    @property
    def use_mask(self) -> bool:
        return bool(VARIANTS[self.variant]["use_mask"])

    @property
    def overlap(self) -> bool:
        return bool(VARIANTS[self.variant]["overlap"])


assert all(v["smoothness"] in SMOOTHNESS for v in VARIANTS.values())

__all__ = ["METHOD_ID", "VARIANTS", "FlowNetROIConfig", "FlowNetROINetConfig"]
