"""Training of the semantic B-spline family: ``napari-deepreg train semantic_bspline``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...core import jacobian_determinant, warp_image, warp_labels
from ...data.anatomy import TISSUE_NAMES
from ...methods.semantic_bspline.config import METHOD_ID, SemanticBSplineNetConfig
from ...methods.semantic_bspline.losses import (
    label_alignment,
    label_weights,
    one_hot,
    smoothness_penalty,
    weighted_cross_entropy,
)
from ...methods.working_grid import normalise_batch
from ...nets.semantic_bspline import half_grid
from ..task import Batch, TrainTask, register_task
from . import label_maps as lm
from .template_pairs import template_pair_config, template_sampler

# the label-map batch keys the losses use (the fine and synthesis labels stay behind)
_LABEL_KEYS = ("fixed", "moving", "fixed_labels", "moving_labels", "has_affine", "spacing")


@dataclass
class SemanticBSplineTrainConfig(SemanticBSplineNetConfig, lm.LabelDataFields):
    """:class:`SemanticBSplineNetConfig` plus the training-data fields of
    :class:`~.label_maps.LabelDataFields` (model files keep the family's fields only). The
    family's loss is on labels already (no image term: ``image_similarity`` is unused)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        lm.check_label_fields(self)


@register_task
class SemanticBSplineTask(TrainTask):
    """Training of :class:`SemanticBSplineNet` on synthetic pairs from real templates.

    Pairs: ``data.pairs.PairSampler`` on the tissue-labelled templates (random affine + smooth
    diffeomorphism as the answer, a random subject warp for anatomical variety), real T1
    intensities with mild gamma/bias, or (``synth_fraction``) images synthesised from the
    labels with a random contrast. 2D models take random slices (``slice_axis``).
    Loss: label alignment + ``lambda_semantic`` x weighted CE of both images +
    ``lambda_reg`` x smoothness (see the paper's Eq. 4).
    """

    method_id = METHOD_ID
    config_class = SemanticBSplineTrainConfig
    default_train = {
        "lr": 1e-3,
        "batch_size": 4,
        "steps": 4000,
        "val_every": 200,
        "val_pairs": 16,
        "checkpoint_every": 200,
        "num_threads": 1,
    }

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._samplers: dict[tuple[str, str], Any] = {}
        self._weights: Tensor | None = None

    # -- data ------------------------------------------------------------------------------------

    def _pair_config(self, modality: str):
        cfg = self.config
        shape = tuple(cfg.working_shape)
        return template_pair_config(
            cfg,
            modality=modality,
            # 2D models slice square crops of an (n, n, n) anatomy: any axis fits one batch
            working_shape=shape if cfg.dims == 3 else (shape[0],) * 3,
            random_slice=cfg.dims == 2,
            slice_axis=cfg.slice_axis,
            slice_range=(0.2, 0.8),
        )

    def _labelmaps(self) -> bool:
        return self.config.data == "labelmaps"

    def _sampler(self, split: str, modality: str):
        key = (split, "labelmaps" if self._labelmaps() else modality)
        if key not in self._samplers:
            if self._labelmaps():
                self._samplers[key] = lm.label_sampler(self.config, split, self.config.dims)
            else:
                self._samplers[key] = template_sampler(self.config, split,
                                                       self._pair_config(modality))
        return self._samplers[key]

    def train_validation_pairs(self) -> int:
        return self.config.train_val_pairs if self._labelmaps() else 0

    def config_dict(self) -> dict[str, Any]:
        return lm.model_fields(self.config, SemanticBSplineNetConfig)

    def setup(self, device: torch.device) -> None:
        self.weights()

    def set_label_weights(self, weights: Tensor) -> None:
        """Use these ``(num_classes,)`` label weights instead of the training anatomies' ones."""
        if weights.shape != (self.config.num_classes,):
            raise ValueError(f"weights must have shape ({self.config.num_classes},)")
        self._weights = weights.float()

    def weights(self) -> Tensor:
        """Label weights (:func:`label_weights`) from the training anatomies on the working grid."""
        if self._weights is None and self._labelmaps():
            # the coarse labels of the training atlases (0 .. 6, the same set as the templates')
            self._weights = label_weights(
                lm.label_counts([self._sampler("train", "")], self.config.num_classes))
        if self._weights is None:
            counts = torch.zeros(self.config.num_classes, dtype=torch.float64)
            for anatomy in self._sampler("train", "same").anatomies:
                lab = anatomy.labels.flatten().cpu().clamp_max(self.config.num_classes - 1)
                counts += torch.bincount(lab, minlength=self.config.num_classes).double()
            self._weights = label_weights(counts)
        return self._weights

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        if self._labelmaps():
            cfg = self.config
            batch = self._sampler("val" if split == "val" else "train", "").sample(
                batch_size, generator)
            shape = tuple(cfg.working_shape)
            batch = lm.fit_batch({k: batch[k] for k in _LABEL_KEYS}, shape)
            batch["fixed"] = normalise_batch(batch["fixed"])
            batch["moving"] = normalise_batch(batch["moving"])
            return batch
        synth = float(torch.rand((), generator=generator)) < self.config.synth_fraction
        sampler = self._sampler("val" if split == "val" else "train", "synth" if synth else "same")
        batch = sampler.sample(batch_size, generator)
        batch["fixed"] = normalise_batch(batch["fixed"])
        batch["moving"] = normalise_batch(batch["moving"])
        batch.pop("affine", None)
        return batch

    # -- model and loss --------------------------------------------------------------------------

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Mapping[str, Any]]:
        out = model(batch["fixed"], batch["moving"], batch["spacing"])
        return self._loss_terms(out, batch)

    def _loss_terms(self, out: dict, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        w = self.weights().to(out["field"].device)
        spacing = batch["spacing"]
        fixed_oh = one_hot(batch["fixed_labels"], cfg.num_classes)
        moving_oh = one_hot(batch["moving_labels"], cfg.num_classes)
        warped_oh = warp_image(moving_oh, out["field"], spacing)
        deform = label_alignment(fixed_oh, warped_oh, w)
        semantic = 0.5 * (
            weighted_cross_entropy(out["logits_fixed"], half_grid(batch["fixed_labels"]), w)
            + weighted_cross_entropy(out["logits_moving"], half_grid(batch["moving_labels"]), w)
        )
        reg = smoothness_penalty(out["field"], spacing, cfg.reg_kernel)
        total = deform + cfg.lambda_semantic * semantic + cfg.lambda_reg * reg
        return total, {"deform": deform, "semantic": semantic, "reg": reg}

    def validate(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        from ... import metrics

        out = model(batch["fixed"], batch["moving"], batch["spacing"])
        total, terms = self._loss_terms(out, batch)
        spacing = batch["spacing"]
        field = out["field"]
        warped = warp_labels(batch["moving_labels"], field, spacing)
        fixed_lab = batch["fixed_labels"][0, 0].cpu().numpy()
        jac = jacobian_determinant(field, spacing)[0].cpu().numpy()
        mask = fixed_lab > 0
        seg = out["logits_fixed"].argmax(1)[0].cpu().numpy()
        return {
            "loss": float(total),
            **{k: float(v) for k, v in terms.items()},
            "dice": metrics.mean_dice(fixed_lab, warped[0, 0].cpu().numpy()),
            "dice_before": metrics.mean_dice(
                fixed_lab, batch["moving_labels"][0, 0].cpu().numpy()
            ),
            "seg_dice": metrics.mean_dice(half_grid(batch["fixed_labels"])[0, 0].cpu().numpy(),
                                          seg),
            "fold_percent": metrics.fold_percent(jac),
            "sdlogj": metrics.sdlogj(jac, mask),
            # label-map pairs have no true field
            "epe": metrics.endpoint_error(
                field[0].cpu().numpy(), batch["field"][0].cpu().numpy(), mask
            ) if "field" in batch else float("nan"),
        }

    def info(self) -> dict[str, Any]:
        cfg = self.config
        shape = "x".join(str(n) for n in cfg.working_shape)
        anatomies = ", ".join(cfg.train_anatomies)
        kind = "2D slices (any axis)" if cfg.dims == 2 and cfg.slice_axis is None else (
            f"2D slices along axis {cfg.slice_axis}" if cfg.dims == 2 else "3D volumes"
        )
        if self._labelmaps():
            return {
                "dims": [cfg.dims],
                "modality": "MR brain, skull-stripped (contrast-randomised training)",
                "working_resolution": f"{shape} @ {cfg.voxel_size:g} mm",
                "training_data": lm.describe(cfg, f"{kind}; label alignment, smoothness"),
                "label_names": {str(k): v for k, v in TISSUE_NAMES.items()},
            }
        return {
            "dims": [cfg.dims],
            "modality": "MR T1 brain, skull-stripped (contrast-randomised training)",
            "working_resolution": f"{shape} @ {cfg.voxel_size:g} mm",
            "training_data": (
                f"synthetic pairs ({kind}) from the templates {anatomies} with tissue labels "
                f"(GM/WM/CSF left/right): random affine + smooth diffeomorphism up to "
                f"{max(cfg.svf_magnitude_mm):g} mm, {100 * cfg.synth_fraction:g}% label-"
                "synthesised random contrasts; MNI 2009a (the bundled samples) held out"
            ),
            "label_names": {str(k): v for k, v in TISSUE_NAMES.items()},
        }


__all__ = ["SemanticBSplineTask", "SemanticBSplineTrainConfig"]
