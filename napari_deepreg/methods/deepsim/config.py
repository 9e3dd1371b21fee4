"""Configs of the DeepSim family: inference settings and the trained model (2D and 3D).

A DeepSim model file is one of two roles: a feature ``extractor`` (the auto-encoder of
DeepSim-ae or the segmentation net of DeepSim-seg, trained on a surrogate task), or a
``registration`` net trained with one similarity (a DeepSim variant, whose frozen extractor it
carries, or a baseline: MSE, NCC, NCC + supervised Dice). Only registration models register.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...fields import validate
from ..learned import model_file_param
from ..net_config import check_net_config
from ..refine import RefineSettingsFields
from .losses import SIMILARITIES

METHOD_ID = "deepsim"
ROLES = ("extractor", "registration")
EXTRACTOR_TASKS = ("ae", "seg")


@dataclass
class DeepSimConfig(RefineSettingsFields):
    """Inference settings of a trained DeepSim registration model: the test-time refinement
    (:class:`~..refine.RefineSettingsFields`) and a model file."""

    model_file: str = model_file_param()

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class DeepSimNetConfig:
    """A trained DeepSim model: role, architecture, working grid, loss.

    Attributes:
        dims: 2 or 3.
        working_shape: training grid (multiples of 4: two poolings).
        voxel_size: working voxel size in mm; images are resampled to it at inference.
        role: ``"extractor"`` or ``"registration"``.
        extractor_task: ``"ae"`` (auto-encoder without skips, MSE) or ``"seg"`` (segmentation
            U-Net, cross-entropy over ``num_classes`` tissue classes); for a registration model
            it is set by ``similarity`` (baselines carry no extractor).
        similarity: the registration loss's image term, one of :data:`.losses.SIMILARITIES`.
        channels: widths of the registration U-Net's three stages; extractor_channels: the
            extractor's (the paper's 64/128/256 in 2D and 32/64/128 in 3D are too slow on the
            CPUs this project trains on: 16/32/64 and 8/16/32 by default, said in the configs).
        dropout: dropout probability of every stage of the network being trained.
        num_classes: segmentation classes (the tissue labels, background included).
        lambda_diffusion: weight of the diffusion regulariser (per similarity: tuned on
            validation).
        lambda_labels: weight of the supervised soft Dice term of ``ncc_sup``.
        extractor_file: training only: the trained extractor's model file (its weights are
            copied into the registration model).
        rotation_deg, scale, translation_mm: the training pairs' affine motion.
        train_anatomies, val_anatomies: unused by label-map training (kept for the shared
            checks).
        slice_axis: the axis 2D slices are taken along (None: any).
    """

    dims: int = 2
    working_shape: tuple[int, ...] = (112, 112)
    voxel_size: float = 2.0
    role: str = "registration"
    extractor_task: str = "ae"
    similarity: str = "deepsim_ae"
    channels: tuple[int, ...] = (16, 32, 64)
    extractor_channels: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.0
    num_classes: int = 7
    lambda_diffusion: float = 1.0
    lambda_labels: float = 1.0
    extractor_file: str = ""
    rotation_deg: float = 5.0
    scale: float = 0.05
    translation_mm: float = 6.0
    train_anatomies: tuple[str, ...] = ("cat12",)
    val_anatomies: tuple[str, ...] = ("mni2009c",)
    slice_axis: int | None = None

    def __post_init__(self) -> None:
        check_net_config(self)
        if any(int(n) % 4 for n in self.working_shape):
            raise ValueError(f"working_shape must be multiples of 4, got {self.working_shape}")
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if self.extractor_task not in EXTRACTOR_TASKS:
            raise ValueError(f"extractor_task must be one of {EXTRACTOR_TASKS}, "
                             f"got {self.extractor_task!r}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        if self.role == "registration" and self.uses_extractor:
            # the extractor a DeepSim variant carries follows from the variant
            self.extractor_task = self.similarity.removeprefix("deepsim_")
        for name in ("channels", "extractor_channels"):
            if len(getattr(self, name)) != 3:
                raise ValueError(f"{name} needs three widths, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.voxel_size <= 0 or self.lambda_diffusion < 0 or self.num_classes < 2:
            raise ValueError("voxel_size must be > 0, lambda_diffusion >= 0, num_classes >= 2")

    @property
    def uses_extractor(self) -> bool:
        """Whether a registration model of this config carries a DeepSim extractor."""
        return self.similarity.startswith("deepsim_")


__all__ = ["EXTRACTOR_TASKS", "METHOD_ID", "ROLES", "DeepSimConfig", "DeepSimNetConfig"]
