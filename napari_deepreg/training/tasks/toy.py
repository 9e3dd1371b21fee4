"""A tiny built-in task that exercises the whole harness in seconds (tests, smoke runs of the CLI).

Method id ``toy``: 2D images of random Gaussian blobs (16x16 by default); the moving image is the
fixed one translated by a random shift, so the true displacement is that constant shift. A small
U-Net predicts the field from the concatenated pair; the loss is MSE after warping plus a
diffusion penalty; validation reports label Dice after warping and the endpoint error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...core import warp_image, warp_labels
from ...losses import functional as L
from ...methods.models import Family, register_family
from ...metrics import endpoint_error, mean_dice
from ...nets.unet import UNet
from ..task import Batch, TrainTask, register_task


@dataclass
class ToyConfig:
    """Settings of the toy task.

    Attributes:
        working_shape: image grid (y, x) in voxels.
        spacing: voxel size in mm.
        blobs: Gaussian blobs per image.
        blob_sigma: blob width in voxels.
        max_shift: largest translation per axis in mm.
        channels: U-Net widths per level.
        lambda_reg: weight of the diffusion regulariser.
        pool: if > 0, training pairs are drawn from a fixed pool of this many pairs ("tiny
            data", which a few steps can fit); 0 draws a new pair every time.
    """

    working_shape: tuple[int, int] = (16, 16)
    spacing: tuple[float, float] = (1.0, 1.0)
    blobs: int = 3
    blob_sigma: float = 2.0
    max_shift: float = 2.0
    channels: tuple[int, ...] = (8, 16, 16)
    lambda_reg: float = 0.01
    pool: int = 0


def blob_image(shape: tuple[int, ...], count: int, sigma: float, gen: torch.Generator) -> Tensor:
    """``(1, 1, *shape)`` sum of ``count`` Gaussian blobs at random positions, max 1."""
    axes = [torch.arange(n, dtype=torch.float32) for n in shape]
    grids = torch.meshgrid(*axes, indexing="ij")
    img = torch.zeros(shape)
    margin = 2 * sigma
    for _ in range(count):
        centre = [
            margin + torch.rand((), generator=gen).item() * (n - 1 - 2 * margin) for n in shape
        ]
        sq = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
        img = img + torch.exp(-sq / (2 * sigma**2))
    return (img / img.max().clamp_min(1e-6))[None, None]


def build_toy_net(config: ToyConfig) -> nn.Module:
    """A small 2D U-Net: the concatenated pair ``(N, 2, H, W)`` -> a field ``(N, 2, H, W)``."""
    return UNet(2, 2, dims=2, channels=config.channels, head="field")


# the toy's model files load like any family's (training imports methods, never the reverse)
register_family(Family("toy", ToyConfig, build_toy_net))


@register_task
class ToyTask(TrainTask):
    """Blob-translation registration on 16x16 images (see the module docstring)."""

    method_id = "toy"
    config_class = ToyConfig
    # one thread: a net this small runs several times faster than on two contended cores
    default_train = {
        "lr": 3e-3,
        "batch_size": 4,
        "steps": 200,
        "val_every": 50,
        "checkpoint_every": 50,
        "num_threads": 1,
    }

    def build_model(self, config: ToyConfig) -> nn.Module:
        return build_toy_net(config)

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        if split == "train" and self.config.pool > 0:
            if getattr(self, "_pool", None) is None:
                # the pool's own seeds keep it identical whatever the training seed
                self._pool = [
                    self._pairs(1, torch.Generator().manual_seed(10_000 + i))
                    for i in range(self.config.pool)
                ]
            picks = torch.randint(self.config.pool, (batch_size,), generator=generator).tolist()
            pairs = [self._pool[i] for i in picks]
            return {
                k: (torch.cat([p[k] for p in pairs]) if isinstance(v, Tensor) else v)
                for k, v in pairs[0].items()
            }
        return self._pairs(batch_size, generator)

    def _pairs(self, batch_size: int, generator: torch.Generator) -> Batch:
        cfg = self.config
        shape = tuple(cfg.working_shape)
        fixed, moving, fixed_lab, moving_lab, fields = [], [], [], [], []
        for _ in range(batch_size):
            img = blob_image(shape, cfg.blobs, cfg.blob_sigma, generator)
            shift = (torch.rand(2, generator=generator) * 2 - 1) * cfg.max_shift
            field = shift.view(1, 2, 1, 1).expand(1, 2, *shape).contiguous()
            labels = (img > 0.5).to(torch.int64)
            # moving(y) = fixed(y - shift), so fixed(x) = moving(x + shift): the true field
            fixed.append(img)
            moving.append(warp_image(img, -field, cfg.spacing))
            fixed_lab.append(labels)
            moving_lab.append(warp_labels(labels, -field, cfg.spacing))
            fields.append(field)
        return {
            "fixed": torch.cat(fixed),
            "moving": torch.cat(moving),
            "fixed_labels": torch.cat(fixed_lab),
            "moving_labels": torch.cat(moving_lab),
            "field": torch.cat(fields),
            "spacing": tuple(cfg.spacing),
        }

    def _predict(self, model: nn.Module, batch: Batch) -> Tensor:
        return model(torch.cat([batch["fixed"], batch["moving"]], dim=1))

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Mapping[str, Any]]:
        field = self._predict(model, batch)
        warped = warp_image(batch["moving"], field, batch["spacing"])
        sim = L.mse(warped, batch["fixed"])
        reg = L.diffusion(field, batch["spacing"])
        return sim + self.config.lambda_reg * reg, {"sim": sim, "reg": reg}

    def validate(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        field = self._predict(model, batch)
        warped = warp_labels(batch["moving_labels"], field, batch["spacing"])
        fixed = batch["fixed_labels"][0, 0].cpu().numpy()
        return {
            "dice": mean_dice(fixed, warped[0, 0].cpu().numpy()),
            "dice_before": mean_dice(fixed, batch["moving_labels"][0, 0].cpu().numpy()),
            "epe": endpoint_error(field[0].cpu().numpy(), batch["field"][0].cpu().numpy()),
            "mse": float(
                L.mse(warp_image(batch["moving"], field, batch["spacing"]), batch["fixed"])
            ),
        }

    def info(self) -> dict[str, Any]:
        shape = "x".join(str(n) for n in self.config.working_shape)
        return {
            "dims": [2],
            "modality": "synthetic blobs (toy)",
            "working_resolution": f"{shape} @ {self.config.spacing[0]:g} mm",
            "training_data": "random Gaussian blobs shifted by random translations (toy task)",
        }


__all__ = ["ToyConfig", "ToyTask", "blob_image", "build_toy_net"]
