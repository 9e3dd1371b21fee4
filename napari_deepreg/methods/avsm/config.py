"""Configs of the AVSM family: inference settings (two methods) and the trained model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...fields import validate
from ..learned import model_file_param
from ..net_config import TEMPLATE_ANATOMIES, check_net_config
from ..refine import RefineSettingsFields

METHOD_ID = "avsm"
STAGES = ("affine", "vsvf")
SIMILARITIES = ("mk_lncc", "lncc", "ncc")
ANATOMIES = TEMPLATE_ANATOMIES
GRID_MULTIPLE = 8  # the momentum U-Net halves the grid three times


def _affine_steps() -> Any:
    return field(
        default=7,
        metadata={"help": "Steps of the multi-step affine network (each refines the affine "
                  "by composition; the paper trains with 5 and tests with 7).", "min": 1,
                  "max": 20},
    )


@dataclass
class AvsmAffineConfig(RefineSettingsFields):
    """Inference settings of the multi-step affine network alone (``avsm_affine``): the
    test-time refinement (:class:`~..refine.RefineSettingsFields`, a deformable refinement
    starting from the predicted affine), the affine steps and a model file."""

    affine_steps: int = _affine_steps()
    model_file: str = model_file_param()

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class AvsmConfig(RefineSettingsFields):
    """Inference settings of AVSM: multi-step affine network, then multi-step vSVF, then the
    optional test-time refinement (:class:`~..refine.RefineSettingsFields`) starting from the
    predicted map (affine included)."""

    affine_steps: int = _affine_steps()
    vsvf_steps: int = field(
        default=2,
        metadata={"help": "vSVF steps (each starts from the previous map): more steps align "
                  "more closely but may fold; 0 gives the affine alone.", "min": 0, "max": 10},
    )
    model_file: str = model_file_param()

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class AvsmNetConfig:
    """A trained AVSM model: architecture, working grid, losses, training data.

    Attributes:
        dims: 3 (2 works for tests and slices).
        stage: ``"affine"`` trains the affine net; ``"vsvf"`` trains the momentum net with the
            affine net frozen (its weights from ``init_from``).
        working_shape: training grid (voxels), divisible by 8; inference pads to a multiple of 8.
        voxel_size: working voxel size in mm (inputs are resampled to it).
        affine_shape: grid the affine net sees.
        affine_channels, unet_channels: network widths.
        affine_steps: steps of the affine net in training (1 first, then e.g. 5).
        vsvf_steps: vSVF steps in training.
        time_steps: advection steps per vSVF step.
        sigmas, sigma_weights: multi-Gaussian kernel (fractions of the largest image extent).
        similarity: ``"mk_lncc"`` (windows S/4 and S/2, weights 0.3/0.7, S the smallest grid
            size), ``"lncc"`` (window S/4) or ``"ncc"`` (global; the paper's ablation baseline).
        lambda_ar_c, lambda_ar_k: epoch-dependent affine regularisation (``C``, ``K``; C=0: off).
        lambda_as: affine symmetry weight. lambda_vr: vSVF regulariser. lambda_vs: vSVF symmetry.
        pairs_per_epoch: pairs that make one "epoch" ``n`` of ``lambda_ar`` (counted in the
            model, so resumed runs continue the schedule).
        init_from: model file whose matching weights initialise the net (training only).
        init_momentum_from: for ``stage: vsvf``, an avsm model file whose momentum-net weights
            replace those of ``init_from`` (training only): a vSVF trained on one affine net
            continues on another.
        train_anatomies, val_anatomies: templates pairs are drawn from.
        rotation_deg, scale, translation_mm, svf_magnitude_mm, subject_magnitude_mm,
            svf_smoothness_mm: the random deformations (``data.pairs.PairConfig``).
    """

    dims: int = 3
    stage: str = "affine"
    working_shape: tuple[int, ...] = (48, 56, 48)
    voxel_size: float = 4.0
    affine_shape: tuple[int, ...] = (32, 32, 32)
    affine_channels: tuple[int, ...] = (16, 32, 64, 64)
    unet_channels: tuple[int, ...] = (16, 32, 32, 32)
    affine_steps: int = 1
    vsvf_steps: int = 2
    time_steps: int = 10
    sigmas: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25)
    sigma_weights: tuple[float, ...] = (0.067, 0.133, 0.2, 0.267, 0.333)
    similarity: str = "mk_lncc"
    lambda_ar_c: float = 10.0
    lambda_ar_k: float = 4.0
    lambda_as: float = 10.0
    lambda_vr: float = 10.0
    lambda_vs: float = 1e-4
    pairs_per_epoch: int = 100
    init_from: str = ""
    init_momentum_from: str = ""
    train_anatomies: tuple[str, ...] = ("mni2009c", "cat12")
    val_anatomies: tuple[str, ...] = ("mni2009c", "cat12")
    rotation_deg: float = 20.0
    scale: float = 0.15
    translation_mm: float = 15.0
    svf_magnitude_mm: tuple[float, float] = (2.0, 8.0)
    subject_magnitude_mm: tuple[float, float] = (0.0, 6.0)
    svf_smoothness_mm: float = 16.0

    def __post_init__(self) -> None:
        check_net_config(self, ("working_shape", "affine_shape"))
        if any(n % GRID_MULTIPLE for n in self.working_shape):
            raise ValueError(f"working_shape must be divisible by 8, got {self.working_shape}")
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        if len(self.sigmas) != len(self.sigma_weights):
            raise ValueError("sigmas and sigma_weights must have the same length")
        if self.stage == "vsvf" and not self.unet_channels:
            raise ValueError("stage vsvf needs unet_channels")
        if self.init_momentum_from and self.stage != "vsvf":
            raise ValueError("init_momentum_from needs stage vsvf")
        if self.affine_steps < 1 or self.time_steps < 1 or self.vsvf_steps < 1:
            raise ValueError("affine_steps, vsvf_steps and time_steps must be >= 1")


__all__ = ["ANATOMIES", "GRID_MULTIPLE", "METHOD_ID", "SIMILARITIES", "STAGES",
           "AvsmAffineConfig", "AvsmConfig", "AvsmNetConfig"]
