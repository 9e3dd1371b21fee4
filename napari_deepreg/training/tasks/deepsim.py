"""Training of the DeepSim family: ``napari-deepreg train deepsim`` (both of its steps).

Step 1, ``role: extractor``: the feature extractor on a surrogate task, on single images of
label-map slices (:mod:`.label_maps`, whole template families held out for validation):
``extractor_task: ae`` an auto-encoder without skips (MSE to its input), ``seg`` a segmentation
U-Net (cross-entropy against the tissue labels). Each image has a random contrast (one shared
intensity table per pair, :func:`~.flownet_roi.mono_contrast`) and a random brightness /
contrast change (:func:`brightness`), the variation the features should learn to ignore.

Step 2, ``role: registration``: the registration U-Net with ``1 - DeepSim + lambda
diffusion`` through the frozen extractor of ``extractor_file`` (copied into the model), or a
baseline trained the same way (``similarity: mse | ncc | ncc_sup``; ``ncc_sup`` adds a soft Dice
of the warped coarse labels). Pairs: two subjects of one atlas with an affine motion, one shared
random contrast (DeepSim, like the paper's baselines, is a mono-modal similarity).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...core import jacobian_determinant, warp_image, warp_labels
from ...data.anatomy import TISSUE_NAMES
from ...methods.deepsim.config import METHOD_ID, DeepSimNetConfig
from ...methods.deepsim.losses import registration_loss
from ...methods.deepsim.model import build_extractor, build_net
from ...methods.working_grid import normalise_batch
from ...nets.deepsim import freeze
from ..task import Batch, TrainTask, register_task
from . import label_maps as lm
from .flownet_roi import mono_contrast

_KEYS = ("fixed", "moving", "fixed_labels", "moving_labels", "fixed_fine_labels",
         "moving_fine_labels", "has_affine", "spacing")


def brightness(images: Tensor, generator: torch.Generator, gain: float = 0.3,
               offset: float = 0.15) -> Tensor:
    """``(N, 1, *S)`` images in [0, 1], each ``a x + b`` with ``a`` in ``[1 - gain, 1 +
    gain]`` and ``b`` in ``[-offset, offset]``, clipped to [0, 1]."""
    shape = (images.shape[0],) + (1,) * (images.ndim - 1)
    a = 1 + gain * (2 * torch.rand(shape, generator=generator) - 1)
    b = offset * (2 * torch.rand(shape, generator=generator) - 1)
    return (a * images + b).clamp(0, 1)


@dataclass
class DeepSimTrainConfig(DeepSimNetConfig, lm.LabelDataFields):
    """:class:`DeepSimNetConfig` plus the label-map data fields (``data`` must be
    ``"labelmaps"``; model files keep the family's fields only)."""

    data: str = "labelmaps"

    def __post_init__(self) -> None:
        super().__post_init__()
        lm.check_label_fields(self)
        if self.data != "labelmaps":
            raise ValueError("deepsim trains on label-map data only (data: labelmaps)")


def load_extractor(config: DeepSimNetConfig) -> nn.Module:
    """The trained extractor of ``config.extractor_file``, frozen; ValueError if it is not an
    extractor of the config's task and widths."""
    from ... import zoo
    from ...fields import from_mapping

    if not config.extractor_file:
        raise ValueError(f"similarity {config.similarity} needs extractor_file (a trained "
                         "deepsim extractor, role: extractor)")
    data = zoo.read_model_file(config.extractor_file)
    theirs = from_mapping(DeepSimNetConfig, data["config"], section="method")
    if data["method"] != METHOD_ID or theirs.role != "extractor":
        raise ValueError(f"{config.extractor_file} is not a deepsim extractor")
    mismatch = [k for k in ("dims", "extractor_task", "extractor_channels", "num_classes")
                if getattr(theirs, k) != getattr(config, k)]
    if mismatch:
        raise ValueError(f"{config.extractor_file} differs from the config in {mismatch}")
    extractor = build_extractor(config)
    extractor.load_state_dict(data["state_dict"])
    return freeze(extractor)


@register_task
class DeepSimTask(TrainTask):
    """Extractor pre-training or registration training, by ``role``."""

    method_id = METHOD_ID
    config_class = DeepSimTrainConfig
    default_train = {"lr": 1e-3, "batch_size": 4, "steps": 1000, "val_every": 100,
                     "val_pairs": 16, "checkpoint_every": 50, "num_threads": 1}

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._samplers: dict[str, Any] = {}

    @property
    def is_extractor(self) -> bool:
        return self.config.role == "extractor"

    def build_model(self, config: Any) -> nn.Module:
        model = build_net(config)
        if config.role == "registration" and config.uses_extractor:
            model.extractor.load_state_dict(load_extractor(config).state_dict())
        return model

    def _sampler(self, split: str) -> Any:
        if split not in self._samplers:
            self._samplers[split] = lm.label_sampler(self.config, split, self.config.dims)
        return self._samplers[split]

    def train_validation_pairs(self) -> int:
        return self.config.train_val_pairs

    def config_dict(self) -> dict[str, Any]:
        return lm.model_fields(self.config, DeepSimNetConfig)

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        split = "val" if split == "val" else "train"
        raw = self._sampler(split).sample(batch_size, generator)
        batch = lm.fit_batch({k: raw[k] for k in _KEYS}, tuple(self.config.working_shape))
        pairs = [mono_contrast(batch["fixed_fine_labels"][i: i + 1],
                               batch["moving_fine_labels"][i: i + 1], generator)
                 for i in range(batch_size)]
        fixed = normalise_batch(torch.cat([p[0] for p in pairs]))
        moving = normalise_batch(torch.cat([p[1] for p in pairs]))
        if self.is_extractor:  # single images: both of each pair, brightness-augmented
            images = brightness(torch.cat([fixed, moving]), generator)
            labels = torch.cat([batch["fixed_labels"], batch["moving_labels"]]).long()
            return {"image": images, "labels": labels, "spacing": batch["spacing"]}
        batch["fixed"], batch["moving"] = fixed, moving
        for key in ("fixed_fine_labels", "moving_fine_labels"):
            batch.pop(key)
        return batch

    # -- losses -----------------------------------------------------------------------------------

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Mapping[str, Any]]:
        if self.is_extractor:
            return self._extractor_loss(model, batch)
        field = model(batch["fixed"], batch["moving"], batch["spacing"])
        return self._registration_loss(model, batch, field)

    def _extractor_loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict]:
        out = model(batch["image"])
        if self.config.extractor_task == "ae":
            mse = F.mse_loss(out, batch["image"])
            return mse, {"mse": mse}
        ce = F.cross_entropy(out, batch["labels"][:, 0].clamp(0, self.config.num_classes - 1))
        return ce, {"ce": ce}

    def _registration_loss(self, model: nn.Module, batch: Batch,
                           field: Tensor) -> tuple[Tensor, dict]:
        cfg = self.config
        spacing = batch["spacing"]
        warped = warp_image(batch["moving"], field, spacing)
        label_term = None
        if cfg.similarity == "ncc_sup":
            label_term = lm.soft_label_loss(batch["fixed_labels"], batch["moving_labels"], field,
                                            spacing, cfg.num_classes)
        return registration_loss(cfg.similarity, warped, batch["fixed"], field, spacing,
                                 cfg.lambda_diffusion, getattr(model, "extractor", None),
                                 label_term, cfg.lambda_labels)

    def validate(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        from ... import metrics

        if self.is_extractor:
            total, terms = self._extractor_loss(model, batch)
            figures = {"loss": float(total)}
            if self.config.extractor_task == "seg":
                pred = model(batch["image"]).argmax(1)
                figures["seg_dice"] = metrics.mean_dice(batch["labels"][0, 0].numpy(),
                                                        pred[0].numpy())
            return figures
        field = model(batch["fixed"], batch["moving"], batch["spacing"])
        total, terms = self._registration_loss(model, batch, field)
        spacing = batch["spacing"]
        warped = warp_labels(batch["moving_labels"], field, spacing)
        fixed_lab = batch["fixed_labels"][0, 0].numpy()
        jac = jacobian_determinant(field, spacing)[0].numpy()
        return {
            "loss": float(total),
            **{k: float(v) for k, v in terms.items()},
            "dice": metrics.mean_dice(fixed_lab, warped[0, 0].numpy()),
            "dice_before": metrics.mean_dice(fixed_lab, batch["moving_labels"][0, 0].numpy()),
            "fold_percent": metrics.fold_percent(jac),
        }

    def info(self) -> dict[str, Any]:
        cfg = self.config
        shape = "x".join(str(n) for n in cfg.working_shape)
        what = (f"{cfg.extractor_task} feature extractor" if self.is_extractor
                else f"registration with {cfg.similarity}")
        return {
            "dims": [cfg.dims],
            "modality": "MR brain, mono-modal pairs (random shared contrast)",
            "working_resolution": f"{shape} @ {cfg.voxel_size:g} mm",
            "training_data": lm.describe(cfg, f"{cfg.dims}D, DeepSim {what}"),
            "label_names": {str(k): v for k, v in TISSUE_NAMES.items()},
        }


__all__ = ["DeepSimTask", "DeepSimTrainConfig", "brightness", "load_extractor"]
