"""Training of the SUITS family: ``napari-deepreg train suits`` (Blendowski et al. 2020).

Pairs: the label bank's multi-modal pairs (:mod:`.label_maps`: two synthetic subjects of one
atlas, or one subject moved, each image synthesised from its labels with its own random
contrast; whole template families held out for validation). Contrast inversions are left out of
training by default (``p_invert: 0``) so that the benchmark can test one the model never saw.

Two stages, one config field apart (``stage``):

* ``mind``: the FeatCNN learns to replicate MIND-SSC (L1, both stems, each on its own image of
  the pair; the paper's pre-training);
* ``guide`` (Algorithm 1): per pair batch a ``k_back`` is drawn in ``[0, iterations]``;
  ``k_back - 1`` untracked descent updates run on the one-hot coarse label maps as
  representations, then one tracked update on FeatCNN features (the CG layer's adjoint
  backward), and the loss is the cross-entropy of the moving one-hot labels warped by the
  result against the fixed labels (eq. 3). Start it from the ``mind`` stage's model
  (``train.init_from``).

Validation (both stages): the full descent (``iterations`` updates at the test λ, twice the
training one) on held-out pairs with the model's features and, for comparison, with MIND-SSC:
``dice``, ``dice_mind``, ``dice_before``, ``fold_percent``; and the MIND-replication L1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...core import jacobian_determinant, warp_labels
from ...data.anatomy import TISSUE_NAMES
from ...data.contrasts import ContrastConfig
from ...losses.functional import mind_ssc, one_hot
from ...methods.suits.config import METHOD_ID, SuitsNetConfig
from ...methods.suits.descent import coarse_shape, descend, to_coarse, upsample_field
from ...methods.suits.losses import guide_loss, mind_replication_loss
from ...methods.working_grid import normalise_batch
from ..task import Batch, TrainTask, register_task
from . import label_maps as lm

STAGES = ("mind", "guide")
_KEYS = ("fixed", "moving", "fixed_labels", "moving_labels", "has_affine", "spacing")


@dataclass
class SuitsTrainConfig(SuitsNetConfig, lm.LabelDataFields):
    """:class:`SuitsNetConfig` plus the label-map data fields and the training stage (model
    files keep the family's fields only).

    Attributes:
        stage: ``"mind"`` (MIND-replication pre-training) or ``"guide"`` (Algorithm 1).
        p_invert: probability of an inverted contrast per training image (0: never seen).
    """

    data: str = "labelmaps"
    stage: str = "guide"
    p_invert: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        lm.check_label_fields(self)
        if self.data != "labelmaps":
            raise ValueError("suits trains on label-map pairs only (data: labelmaps)")
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if not 0 <= self.p_invert <= 1:
            raise ValueError(f"p_invert must be in [0, 1], got {self.p_invert}")


def label_descent(fixed_onehot: Tensor, moving_onehot: Tensor, spacing, steps: int, lam: float,
                  gamma: float) -> Tensor:
    """The coarse field (update-grid voxels) after ``steps`` untracked descent updates on the
    one-hot label maps as representations (zeros for ``steps`` = 0)."""
    cshape = coarse_shape(fixed_onehot.shape[2:])
    u = fixed_onehot.new_zeros((fixed_onehot.shape[0], fixed_onehot.ndim - 2, *cshape))
    with torch.no_grad():
        return _last(descend(to_coarse(fixed_onehot, cshape), moving_onehot,
                             lambda w: to_coarse(w, cshape), spacing, steps, lam, gamma, u=u), u)


def _last(iterations, u: Tensor) -> Tensor:
    """The field of the descent's last ``(k, u)`` (``u`` when it yields none)."""
    for _, u in iterations:  # noqa: B007 (the last one is the answer)
        pass
    return u


def feature_descent(features, fixed: Tensor, moving: Tensor, spacing, iterations: int,
                    lam: float, gamma: float) -> Tensor:
    """The dense field (mm) of the full descent on ``features(image, modality)``."""
    shape = fixed.shape[2:]
    cshape = coarse_shape(shape)
    fix = to_coarse(features(fixed, 1), cshape)
    u = _last(descend(fix, moving, lambda w: to_coarse(features(w, 0), cshape), spacing,
                      iterations, lam, gamma), None)
    return upsample_field(u, shape, spacing)


@register_task
class SuitsTask(TrainTask):
    """MIND-replication pre-training and label-guided end-to-end training of the FeatCNN."""

    method_id = METHOD_ID
    config_class = SuitsTrainConfig
    default_train = {"lr": 1e-4, "batch_size": 3, "steps": 500, "val_every": 50,
                     "val_pairs": 16, "checkpoint_every": 50, "num_threads": 1}

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._samplers: dict[str, Any] = {}
        self._mind_dice: dict[tuple[float, float], float] = {}

    def _sampler(self, split: str) -> Any:
        if split not in self._samplers:
            cfg = self.config
            pairs = dataclasses.replace(lm.pair_config(cfg, cfg.dims),
                                        contrast=ContrastConfig(p_invert=cfg.p_invert))
            self._samplers[split] = lm.native_sampler(split, float(cfg.voxel_size), pairs)
        return self._samplers[split]

    def train_validation_pairs(self) -> int:
        return self.config.train_val_pairs

    def config_dict(self) -> dict[str, Any]:
        return lm.model_fields(self.config, SuitsNetConfig)

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        split = "val" if split == "val" else "train"
        raw = self._sampler(split).sample(batch_size, generator)
        batch = lm.fit_batch({k: raw[k] for k in _KEYS}, tuple(self.config.working_shape))
        batch["fixed"] = normalise_batch(batch["fixed"])
        batch["moving"] = normalise_batch(batch["moving"])
        # Algorithm 1: k_back in [0, iterations]; k_back - 1 untracked updates (none for 0, 1)
        k_back = int(torch.randint(self.config.iterations + 1, (), generator=generator))
        batch["untracked"] = torch.tensor(max(0, k_back - 1))
        return batch

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Mapping[str, Any]]:
        cfg = self.config
        if cfg.stage == "mind":
            fixed_l1 = mind_replication_loss(model, batch["fixed"], 1)
            moving_l1 = mind_replication_loss(model, batch["moving"], 0)
            return fixed_l1 + moving_l1, {"mind_l1_fixed": fixed_l1, "mind_l1_moving": moving_l1}
        spacing = batch["spacing"]
        fixed_oh = one_hot(batch["fixed_labels"], cfg.num_classes)
        moving_oh = one_hot(batch["moving_labels"], cfg.num_classes)
        u = label_descent(fixed_oh, moving_oh, spacing, int(batch["untracked"]), cfg.lam,
                          cfg.gamma)
        ce = guide_loss(model, batch["fixed"], batch["moving"], batch["fixed_labels"][:, 0],
                        moving_oh, u, spacing, cfg.lam, cfg.gamma)
        return ce, {"ce": ce, "k_back": float(batch["untracked"]) + 1}

    def validate(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        from ... import metrics

        cfg = self.config
        spacing = batch["spacing"]
        fixed, moving = batch["fixed"], batch["moving"]
        fixed_lab = batch["fixed_labels"][0, 0].cpu().numpy()
        moving_lab = batch["moving_labels"]
        lam = 2 * cfg.lam  # the paper's test : training ratio, 10 : 5

        def dice(field: Tensor) -> float:
            warped = warp_labels(moving_lab, field, spacing)[0, 0].cpu().numpy()
            return metrics.mean_dice(fixed_lab, warped)

        field = feature_descent(model, fixed, moving, spacing, cfg.iterations, lam, cfg.gamma)
        key = (float(fixed.sum()), float(moving.sum()))
        if key not in self._mind_dice:  # the baseline does not change during training
            self._mind_dice[key] = dice(feature_descent(
                lambda image, _: mind_ssc(image), fixed, moving, spacing, cfg.iterations, lam,
                cfg.gamma))
        jac = jacobian_determinant(field, spacing)[0].cpu().numpy()
        l1 = (mind_replication_loss(model, fixed, 1) + mind_replication_loss(model, moving, 0))
        return {
            "dice": dice(field),
            "dice_mind": self._mind_dice[key],
            "dice_before": metrics.mean_dice(fixed_lab, moving_lab[0, 0].cpu().numpy()),
            "fold_percent": metrics.fold_percent(jac),
            "mind_l1": float(l1) / 2,
        }

    def info(self) -> dict[str, Any]:
        cfg = self.config
        shape = "x".join(str(n) for n in cfg.working_shape)
        inverted = "never inverted" if cfg.p_invert == 0 else f"inverted in {cfg.p_invert:g}"
        return {
            "dims": [cfg.dims],
            "modality": "multi-modal MR brain (two independent random contrasts per pair)",
            "working_resolution": f"{shape} @ {cfg.voxel_size:g} mm",
            "training_data": lm.describe(
                cfg, f"{cfg.dims}D, two independent random contrasts per pair ({inverted})"),
            "label_names": {str(k): v for k, v in TISSUE_NAMES.items()},
        }


__all__ = ["STAGES", "SuitsTask", "SuitsTrainConfig", "feature_descent", "label_descent"]
