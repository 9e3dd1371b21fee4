"""Training of the FlowNet + ROI family: ``napari-deepreg train flownet_roi``.

Pairs: 2D slices of the label bank's synthetic subjects (:mod:`.label_maps`: two subjects of
one atlas, an in-plane affine, whole template families held out for validation). The paper's
photometric loss assumes one modality, so both images of a pair are re-synthesised from their
fine labels with ONE random intensity table (:func:`mono_contrast`): same tissue, same grey
value, plus independent smooth texture and noise; the background is black or noisy. The ROI
mask the HNN learns is the brain mask (coarse labels > 0). With ``p_clutter`` a share of the
pairs gets non-ROI content around the brain that moves on its own
(:func:`~napari_deepreg.data.contrasts.add_clutter`): what the paper's ROI mask is for.

Loss (Shan et al., Eq. 7): ``eta L_HNN + sum_s alpha L_photo^s + beta L_smooth^s + gamma
L_overlap^s`` over the 7 scales; the variant decides N/E smoothness, the HNN and the overlap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...core import gaussian_smooth, jacobian_determinant, warp_labels
from ...data.anatomy import TISSUE_NAMES
from ...data.contrasts import add_clutter
from ...methods.flownet_roi.config import METHOD_ID, FlowNetROINetConfig
from ...methods.flownet_roi.losses import hnn_loss, multiscale_loss
from ...methods.working_grid import normalise_batch
from ..task import Batch, TrainTask, register_task
from . import label_maps as lm

_KEYS = (
    "fixed",
    "moving",
    "fixed_labels",
    "moving_labels",
    "fixed_fine_labels",
    "moving_fine_labels",
    "has_affine",
    "spacing",
)


def mono_contrast(
    fixed_labels: Tensor,
    moving_labels: Tensor,
    generator: torch.Generator,
    p_black_background: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """``(fixed, moving)`` ``(1, 1, H, W)`` images in [0, 1] from two integer label maps with
    one shared random intensity per label (a mono-modal pair), each with its own smooth texture
    and noise; label 0 is black with probability ``p_black_background``, else a random grey."""
    values = torch.unique(torch.cat([fixed_labels.flatten(), moving_labels.flatten()]))
    table = torch.rand(len(values), generator=generator)
    if float(torch.rand((), generator=generator)) < p_black_background:
        table[values == 0] = 0.0
    images = []
    for labels in (fixed_labels, moving_labels):
        image = table[torch.searchsorted(values, labels.flatten())].view(labels.shape).float()
        texture = gaussian_smooth(torch.randn(labels.shape, generator=generator), 1.5)
        image = gaussian_smooth(image + 0.1 * texture, 0.5)
        images.append(image + 0.02 * torch.randn(labels.shape, generator=generator))
    return images[0], images[1]


@dataclass
class FlowNetROITrainConfig(FlowNetROINetConfig, lm.LabelDataFields):
    """:class:`FlowNetROINetConfig` plus the label-map data fields (``data`` must be
    ``"labelmaps"``; model files keep the family's fields only)."""

    data: str = "labelmaps"
    #: share of the pairs with independently moving content outside the ROI (both splits)
    p_clutter: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        lm.check_label_fields(self)
        if self.data != "labelmaps":
            raise ValueError("flownet_roi trains on label-map slices only (data: labelmaps)")
        if not 0 <= self.p_clutter <= 1:
            raise ValueError(f"p_clutter must be in [0, 1], got {self.p_clutter}")


@register_task
class FlowNetROITask(TrainTask):
    """Unsupervised training of :class:`~napari_deepreg.nets.flownet_roi.FlowNetROI`; the HNN
    (the "+mask" variants) is supervised by the brain mask (deep supervision)."""

    method_id = METHOD_ID
    config_class = FlowNetROITrainConfig
    default_train = {
        "lr": 1e-3,
        "batch_size": 8,
        "steps": 3000,
        "val_every": 200,
        "val_pairs": 32,
        "checkpoint_every": 100,
        "num_threads": 1,
    }

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._samplers: dict[str, Any] = {}

    def _sampler(self, split: str) -> Any:
        if split not in self._samplers:
            self._samplers[split] = lm.label_sampler(self.config, split, 2)
        return self._samplers[split]

    def train_validation_pairs(self) -> int:
        return self.config.train_val_pairs

    def config_dict(self) -> dict[str, Any]:
        return lm.model_fields(self.config, FlowNetROINetConfig)

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        split = "val" if split == "val" else "train"
        raw = self._sampler(split).sample(batch_size, generator)
        batch = lm.fit_batch({k: raw[k] for k in _KEYS}, tuple(self.config.working_shape))
        pairs = [
            mono_contrast(
                batch["fixed_fine_labels"][i : i + 1],
                batch["moving_fine_labels"][i : i + 1],
                generator,
            )
            for i in range(batch_size)
        ]
        fixed = normalise_batch(torch.cat([p[0] for p in pairs]))
        moving = normalise_batch(torch.cat([p[1] for p in pairs]))
        fixed_roi, moving_roi = batch["fixed_labels"] > 0, batch["moving_labels"] > 0
        for i in range(batch_size):
            if float(torch.rand((), generator=generator)) < self.config.p_clutter:
                fixed[i : i + 1], moving[i : i + 1], _ = add_clutter(
                    fixed[i : i + 1], moving[i : i + 1], fixed_roi[i : i + 1],
                    moving_roi[i : i + 1], generator)
        batch["fixed"], batch["moving"] = fixed, moving
        batch["fixed_mask"] = fixed_roi.float()
        batch["moving_mask"] = moving_roi.float()
        for key in ("fixed_fine_labels", "moving_fine_labels"):
            batch.pop(key)
        return batch

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Mapping[str, Any]]:
        out = model(batch["fixed"], batch["moving"], batch["spacing"])
        return self._loss_terms(out, batch)

    def _loss_terms(self, out: dict, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        masks = {}
        if cfg.overlap:
            masks = {"fixed_mask": out["mask_fixed"], "moving_mask": out["mask_moving"]}
        total, terms = multiscale_loss(
            out["fields"],
            batch["fixed"],
            batch["moving"],
            batch["spacing"],
            cfg.smoothness,
            alpha=cfg.alpha,
            beta=cfg.beta,
            gamma=cfg.gamma,
            **masks,
        )
        if cfg.use_mask:
            hnn = 0.5 * (
                hnn_loss(out["roi_fixed"], batch["fixed_mask"])
                + hnn_loss(out["roi_moving"], batch["moving_mask"])
            )
            total = total + cfg.eta * hnn
            terms["hnn"] = hnn
        return total, terms

    def validate(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        from ... import metrics

        out = model(batch["fixed"], batch["moving"], batch["spacing"])
        total, terms = self._loss_terms(out, batch)
        field = out["field"]
        spacing = batch["spacing"]
        warped = warp_labels(batch["moving_labels"], field, spacing)
        fixed_lab = batch["fixed_labels"][0, 0].numpy()
        jac = jacobian_determinant(field, spacing)[0].numpy()
        figures = {
            "loss": float(total),
            **{k: float(v) for k, v in terms.items()},
            "dice": metrics.mean_dice(fixed_lab, warped[0, 0].numpy()),
            "dice_before": metrics.mean_dice(fixed_lab, batch["moving_labels"][0, 0].numpy()),
            "fold_percent": metrics.fold_percent(jac),
        }
        if "mask_fixed" in out:
            seg = (out["mask_fixed"] > 0.5)[0, 0].numpy()
            figures["roi_dice"] = metrics.mean_dice(
                batch["fixed_mask"][0, 0].numpy().astype("uint8"), seg.astype("uint8")
            )
        return figures

    def info(self) -> dict[str, Any]:
        cfg = self.config
        shape = "x".join(str(n) for n in cfg.working_shape)
        return {
            "dims": [2],
            "modality": "MR brain slices, mono-modal pairs (random shared contrast)",
            "working_resolution": f"{shape} @ {cfg.voxel_size:g} mm",
            "training_data": lm.describe(
                cfg, f"2D slices, variant {cfg.variant}, one shared random contrast per pair"
                + (f", independently moving clutter outside the brain in {cfg.p_clutter:g} of "
                   "the pairs" if cfg.p_clutter else ""),
                "re-synthesised with one random intensity per tissue for both (mono-modal; "
                "independent texture and noise)",
            ),
            "label_names": {str(k): v for k, v in TISSUE_NAMES.items()},
        }


__all__ = ["FlowNetROITask", "FlowNetROITrainConfig", "mono_contrast"]
