"""Networks of the DeepSim family (Czolbe, Krause, Feragen 2021), 2D and 3D.

One U-Net shape serves the three networks of the paper (Section 4): three encoder and three
decoder stages, each stage one batch normalisation, two convolutions (LeakyReLU) and one
dropout layer; after the last decoder stage three more convolutions smooth the output, then a
head (sigmoid for the auto-encoder, logits for the segmentation net, a near-zero-initialised
linear field for the registration net).

* :class:`DeepSimUNet` — ``skips=False`` is the auto-encoder of DeepSim-ae, ``skips=True`` the
  segmentation net of DeepSim-seg and the registration net. :meth:`DeepSimUNet.encode` returns
  the three encoder stages' feature maps, the ``F^l`` of the similarity (eq. 5).
* :class:`DeepSimRegistration` — the registration U-Net on the concatenated pair, and, for the
  DeepSim similarities, the frozen feature extractor it was trained with (its weights travel in
  the model file, so the metric a model was trained with can be evaluated again).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .blocks import FieldHead, check_dims, conv_nd, make_norm, upsample_to

#: the input side must be a multiple of this (two 2x poolings between the three stages)
GRID_MULTIPLE = 4


def _dropout(dims: int, p: float) -> nn.Module:
    if p <= 0:
        return nn.Identity()
    return (nn.Dropout2d if dims == 2 else nn.Dropout3d)(p)


class Stage(nn.Sequential):
    """Batch norm, conv + LeakyReLU, conv + LeakyReLU, dropout: ``(N, cin, *S) -> (N, cout,
    *S)``."""

    def __init__(self, cin: int, cout: int, dims: int, dropout: float = 0.0) -> None:
        conv = conv_nd(dims)
        super().__init__(
            make_norm("batch", dims, cin),
            conv(cin, cout, 3, padding=1), nn.LeakyReLU(0.2),
            conv(cout, cout, 3, padding=1), nn.LeakyReLU(0.2),
            _dropout(dims, dropout),
        )


def _pool(x: Tensor) -> Tensor:
    return nn.functional.avg_pool2d(x, 2) if x.ndim == 4 else nn.functional.avg_pool3d(x, 2)


class DeepSimUNet(nn.Module):
    """The paper's U-Net, ``(N, in_channels, *S) -> (N, out_channels, *S)``.

    Args:
        in_channels: 1 for an image (the extractors), 2 for a pair (registration).
        out_channels: output channels of the head.
        dims: 2 or 3.
        channels: widths of the three stages (paper: 64/128/256 in 2D, 32/64/128 in 3D).
        skips: U-Net skip connections (False: the auto-encoder, whose code must pass the
            coarsest stage).
        dropout: dropout probability of every stage.
        head: ``"conv"`` (logits / images) or ``"field"`` (near-zero :class:`FieldHead`).
        out_act: ``"sigmoid"`` or ``"none"`` after the head.

    Spatial sizes must be multiples of :data:`GRID_MULTIPLE`.
    """

    def __init__(self, in_channels: int, out_channels: int, dims: int,
                 channels: Sequence[int] = (16, 32, 64), skips: bool = True,
                 dropout: float = 0.0, head: str = "conv", out_act: str = "none") -> None:
        super().__init__()
        self.dims = check_dims(dims)
        chans = tuple(int(c) for c in channels)
        if len(chans) != 3 or any(c < 1 for c in chans):
            raise ValueError(f"DeepSimUNet has three stages: give three widths, got {channels}")
        if out_act not in ("sigmoid", "none"):
            raise ValueError(f"out_act must be 'sigmoid' or 'none', got {out_act!r}")
        self.channels, self.skips = chans, bool(skips)
        c1, c2, c3 = chans
        self.encoder = nn.ModuleList([Stage(in_channels, c1, dims, dropout),
                                      Stage(c1, c2, dims, dropout),
                                      Stage(c2, c3, dims, dropout)])
        extra = (c2, c1) if self.skips else (0, 0)
        self.decoder = nn.ModuleList([Stage(c3, c3, dims, dropout),
                                      Stage(c3 + extra[0], c2, dims, dropout),
                                      Stage(c2 + extra[1], c1, dims, dropout)])
        conv = conv_nd(dims)
        self.smooth = nn.Sequential(*[m for _ in range(3)
                                      for m in (conv(c1, c1, 3, padding=1), nn.LeakyReLU(0.2))])
        if head == "field":
            self.head: nn.Module = FieldHead(c1, dims, out_channels)
        elif head == "conv":
            self.head = conv(c1, out_channels, 3, padding=1)
        else:
            raise ValueError(f"head must be 'conv' or 'field', got {head!r}")
        self.out_act = out_act

    def _check(self, x: Tensor) -> None:
        if x.ndim != self.dims + 2 or any(n % GRID_MULTIPLE for n in x.shape[2:]):
            raise ValueError(f"DeepSimUNet({self.dims}D) takes (N, C, *S) with S multiples of "
                             f"{GRID_MULTIPLE}, got {tuple(x.shape)}")

    def encode(self, x: Tensor) -> list[Tensor]:
        """The three encoder stages' outputs ``[(N, c1, *S), (N, c2, *S/2), (N, c3, *S/4)]``."""
        self._check(x)
        feats = []
        for i, stage in enumerate(self.encoder):
            x = stage(x if i == 0 else _pool(x))
            feats.append(x)
        return feats

    def forward(self, x: Tensor) -> Tensor:
        feats = self.encode(x)
        y = self.decoder[0](feats[2])
        for stage, skip in zip(self.decoder[1:], (feats[1], feats[0]), strict=True):
            y = upsample_to(y, skip.shape[2:])
            y = stage(torch.cat([y, skip], 1) if self.skips else y)
        y = self.head(self.smooth(y))
        return torch.sigmoid(y) if self.out_act == "sigmoid" else y


def freeze(module: nn.Module) -> nn.Module:
    """``module`` in eval mode with no parameter requiring a gradient (in place)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class DeepSimRegistration(nn.Module):
    """Registration U-Net (skips, linear field head) and an optional frozen feature extractor.

    ``forward(fixed, moving, spacing)`` with ``(N, 1, *S)`` images returns the field ``(N, D,
    *S)`` in mm (the net predicts voxels, multiplied by the spacing). ``self.extractor`` (a
    :class:`DeepSimUNet` or None) is never trained here: its parameters need no gradient and it
    stays in eval mode (batch norm statistics and dropout fixed) even under ``train()``.
    """

    def __init__(self, dims: int, channels: Sequence[int] = (16, 32, 64), dropout: float = 0.0,
                 extractor: DeepSimUNet | None = None) -> None:
        super().__init__()
        self.net = DeepSimUNet(2, dims, dims, channels, skips=True, dropout=dropout,
                               head="field")
        self.extractor = None if extractor is None else freeze(extractor)

    def train(self, mode: bool = True) -> DeepSimRegistration:
        super().train(mode)
        if self.extractor is not None:
            self.extractor.eval()
        return self

    def forward(self, fixed: Tensor, moving: Tensor, spacing: Sequence[float]) -> Tensor:
        voxels = self.net(torch.cat([fixed, moving], 1))
        sp = torch.as_tensor([float(s) for s in spacing], dtype=voxels.dtype,
                             device=voxels.device)
        return voxels * sp.view(1, -1, *[1] * (voxels.ndim - 2))


__all__ = ["GRID_MULTIPLE", "DeepSimRegistration", "DeepSimUNet", "Stage", "freeze"]
