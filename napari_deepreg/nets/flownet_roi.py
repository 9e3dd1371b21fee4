"""Networks of the FlowNet + ROI family (Shan et al. 2018, "Unsupervised end-to-end learning for
deformable medical image registration"), 2D.

* :class:`HNN` — the ROI segmentation module: a holistically-nested net with 5 convolution
  stages (each halving the resolution after the first), one 1x1 side classifier per stage
  (upsampled to the input) and a learned 1x1 fusion of the 5 side outputs (deeply supervised).
* :class:`FlowNetS` — FlowNetSimple-style encoder-decoder on the concatenated pair: 6 stride-2
  encoder stages, and a decoder that predicts the field at every scale from the coarsest
  (1/64) to the input resolution (7 scales; the paper repeats FlowNet's upsampling block so the
  finest output is at input resolution), each scale from the upsampled features, the skip
  connection of the encoder at that scale and the upsampled coarser field.
* :class:`FlowNetROI` — both: with ``use_mask`` the fused ROI probabilities multiply the images
  before they reach FlowNetS ("w/ mask"). Fields come out in mm (voxels x spacing).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: number of field scales (the finest at input resolution)
NUM_SCALES = 7
#: the input side must be a multiple of this (six stride-2 stages)
GRID_MULTIPLE = 64


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True))


class HNN(nn.Module):
    """Holistically-nested ROI segmentation: 5 side outputs + a learned fusion (logits).

    ``forward(image (N, 1, H, W))`` returns ``{"sides": [5 x (N, 1, H, W)], "fuse": (N, 1, H,
    W)}`` logits; H and W must be multiples of 16.
    """

    def __init__(self, channels: Sequence[int] = (8, 16, 16, 24, 24)) -> None:
        super().__init__()
        if len(channels) != 5:
            raise ValueError(f"HNN has 5 stages, got channels {tuple(channels)}")
        stages, sides, cin = [], [], 1
        for i, c in enumerate(channels):
            pool = [nn.MaxPool2d(2)] if i else []
            stages.append(nn.Sequential(*pool, _conv(cin, c), _conv(c, c)))
            sides.append(nn.Conv2d(c, 1, 1))
            cin = c
        self.stages = nn.ModuleList(stages)
        self.sides = nn.ModuleList(sides)
        self.fuse = nn.Conv2d(5, 1, 1)
        with torch.no_grad():  # the fusion starts as the mean of the sides
            self.fuse.weight.fill_(0.2)
            self.fuse.bias.zero_()

    def forward(self, image: Tensor) -> dict[str, Tensor | list[Tensor]]:
        size = image.shape[2:]
        x, sides = image, []
        for stage, side in zip(self.stages, self.sides, strict=True):
            x = stage(x)
            s = side(x)
            if s.shape[2:] != size:
                s = F.interpolate(s, size=size, mode="bilinear", align_corners=False)
            sides.append(s)
        return {"sides": sides, "fuse": self.fuse(torch.cat(sides, 1))}


class FlowNetS(nn.Module):
    """FlowNetSimple-style field network: 6 encoder stages, 7 field scales, skip connections.

    ``forward(pair (N, 2, H, W))`` returns the fields in voxels of the input grid, coarse to
    fine: ``[(N, 2, H / 2^k, W / 2^k) for k = 6 .. 0]``.
    """

    def __init__(self, channels: Sequence[int] = (8, 16, 24, 32, 40, 48),
                 decoder_channels: Sequence[int] = (32, 24, 16, 16, 8, 8)) -> None:
        super().__init__()
        if len(channels) != NUM_SCALES - 1 or len(decoder_channels) != NUM_SCALES - 1:
            raise ValueError("FlowNetS needs 6 encoder and 6 decoder widths")
        enc, cin = [], 2
        for c in channels:
            enc.append(_conv(cin, c, stride=2))
            cin = c
        self.encoder = nn.ModuleList(enc)
        self.heads = nn.ModuleList()
        self.ups = nn.ModuleList()
        skips = [2, *channels[:-1]][::-1]  # the skip at each finer scale (the input last)
        feat = channels[-1]
        self.heads.append(nn.Conv2d(feat, 2, 3, 1, 1))
        self.fuses = nn.ModuleList()
        for skip, dec in zip(skips, decoder_channels, strict=True):
            self.ups.append(nn.Sequential(nn.ConvTranspose2d(feat, dec, 4, 2, 1),
                                          nn.LeakyReLU(0.1, inplace=True)))
            self.fuses.append(_conv(dec + skip + 2, dec))
            self.heads.append(nn.Conv2d(dec, 2, 3, 1, 1))
            feat = dec
        for head in self.heads:  # start near the identity
            nn.init.normal_(head.weight, std=1e-3)
            nn.init.zeros_(head.bias)

    def forward(self, pair: Tensor) -> list[Tensor]:
        feats, x = [pair], pair
        for stage in self.encoder:
            x = stage(x)
            feats.append(x)
        flow = self.heads[0](x)
        flows = [flow]
        for i, (up, fuse) in enumerate(zip(self.ups, self.fuses, strict=True)):
            skip = feats[-2 - i]
            x = up(x)
            # a field in voxels of its own scale doubles when the grid doubles
            flow_up = 2.0 * F.interpolate(flow, size=skip.shape[2:], mode="bilinear",
                                          align_corners=False)
            x = fuse(torch.cat([x, skip, flow_up], 1))
            flow = flow_up + self.heads[i + 1](x)
            flows.append(flow)
        return flows


class FlowNetROI(nn.Module):
    """ROI module + field network. ``forward(fixed, moving, spacing)`` with ``(N, 1, H, W)``
    images (H, W multiples of 64) returns ``fields`` (7 fields in mm, coarse to fine; the last
    is the answer, ``field``), and with ``use_mask`` the HNN outputs of both images
    (``roi_fixed``, ``roi_moving``) and the fused masks (``mask_fixed``, ``mask_moving``)."""

    def __init__(self, use_mask: bool = True, channels: Sequence[int] = (8, 16, 24, 32, 40, 48),
                 decoder_channels: Sequence[int] = (32, 24, 16, 16, 8, 8),
                 hnn_channels: Sequence[int] = (8, 16, 16, 24, 24)) -> None:
        super().__init__()
        self.use_mask = bool(use_mask)
        self.flownet = FlowNetS(channels, decoder_channels)
        self.hnn = HNN(hnn_channels) if self.use_mask else None

    def forward(self, fixed: Tensor, moving: Tensor, spacing: Sequence[float]) -> dict:
        if fixed.ndim != 4 or any(n % GRID_MULTIPLE for n in fixed.shape[2:]):
            raise ValueError(f"FlowNetROI takes (N, 1, H, W) images with H, W multiples of "
                             f"{GRID_MULTIPLE}, got {tuple(fixed.shape)}")
        out: dict = {}
        if self.hnn is not None:
            roi = self.hnn(torch.cat([fixed, moving], 0))
            n = fixed.shape[0]
            out["roi_fixed"] = {"sides": [s[:n] for s in roi["sides"]], "fuse": roi["fuse"][:n]}
            out["roi_moving"] = {"sides": [s[n:] for s in roi["sides"]], "fuse": roi["fuse"][n:]}
            out["mask_fixed"] = torch.sigmoid(roi["fuse"][:n])
            out["mask_moving"] = torch.sigmoid(roi["fuse"][n:])
            fixed = fixed * out["mask_fixed"]
            moving = moving * out["mask_moving"]
        flows = self.flownet(torch.cat([fixed, moving], 1))
        size = fixed.shape[2:]
        sp = torch.as_tensor([float(s) for s in spacing], dtype=fixed.dtype, device=fixed.device)
        fields = []
        for flow in flows:
            # voxels of scale k -> mm: spacing x (input size / scale size)
            factor = torch.tensor([size[d] / flow.shape[2 + d] for d in range(2)],
                                  dtype=fixed.dtype, device=fixed.device)
            fields.append(flow * (sp * factor).view(1, 2, 1, 1))
        out["fields"] = fields
        out["field"] = fields[-1]
        return out


__all__ = ["GRID_MULTIPLE", "HNN", "NUM_SCALES", "FlowNetROI", "FlowNetS"]
