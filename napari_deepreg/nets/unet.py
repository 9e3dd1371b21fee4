"""A small dimension-generic U-Net that every learned method can reuse.

Encoder: level 0 at full resolution, each further level halves the grid with a stride-2
convolution. Decoder: features are resized to the skip connection's exact shape (so any input size
works), concatenated with it and convolved. The output is either a head with ``out_channels``
channels (a :class:`~napari_deepreg.nets.blocks.FieldHead` for displacement fields) or, with
``out_channels=None``, the full-resolution decoder features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .blocks import ConvBlock, FieldHead, check_dims, conv_nd, upsample_to

# Default widths per level. With one convolution per level and a two-channel input these give
# ~170k parameters in both 2D and 3D (a 2D kernel has a third of the weights of a 3D one, so the
# 2D net is wider at its coarse levels for the same budget).
DEFAULT_CHANNELS = {2: (16, 32, 64, 64), 3: (16, 24, 32, 32)}


def default_channels(dims: int, levels: int | None = None) -> tuple[int, ...]:
    """Default widths for ``dims``, truncated or extended (repeating the last) to ``levels``."""
    base = DEFAULT_CHANNELS[check_dims(dims)]
    if levels is None:
        return base
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    return tuple(base[:levels]) + (base[-1],) * max(0, levels - len(base))


class UNet(nn.Module):
    """U-Net ``(N, in_channels, *S) -> (N, out_channels, *S)`` for ``dims`` = 2 or 3.

    Args:
        in_channels: input channels (2 for a concatenated fixed/moving pair).
        out_channels: output channels; None returns decoder features with
            ``self.feature_channels`` channels instead of a head's output.
        dims: number of spatial dimensions.
        channels: encoder widths, one per level (``len(channels)`` levels; the coarsest grid is
            ``S / 2**(levels - 1)``); default :func:`default_channels`.
        levels: shorthand for the default widths cut to this many levels (ignored if
            ``channels`` is given).
        decoder_channels: decoder widths for levels ``levels-2 .. 0`` (coarse to fine); default
            the encoder width of each level.
        convs_per_level: convolutions per level after the first (1 = one conv per level).
        norm, act: see :mod:`napari_deepreg.nets.blocks`.
        head: ``"field"`` (near-zero initialised :class:`FieldHead`, for displacements) or
            ``"conv"`` (a plain 3x3 convolution, for features, logits or images).
        field_scale: multiplier of a field head's output (e.g. a voxel size in mm).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None,
        dims: int,
        channels: Sequence[int] | None = None,
        levels: int | None = None,
        decoder_channels: Sequence[int] | None = None,
        convs_per_level: int = 1,
        norm: str | None = "none",
        act: str | None = "leaky_relu",
        head: str = "field",
        field_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        chans = tuple(int(c) for c in (channels or default_channels(dims, levels)))
        if not chans or any(c < 1 for c in chans):
            raise ValueError(f"channels must be positive widths, got {channels!r}")
        n = len(chans)
        dec = tuple(int(c) for c in (decoder_channels or chans[-2::-1]))
        if len(dec) != n - 1:
            raise ValueError(
                f"decoder_channels needs {n - 1} widths (one per level below the coarsest), "
                f"got {len(dec)}"
            )
        if convs_per_level < 1:
            raise ValueError(f"convs_per_level must be >= 1, got {convs_per_level}")
        self.channels, self.decoder_channels = chans, dec

        def stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
            blocks = [ConvBlock(c_in, c_out, dims, stride=stride, norm=norm, act=act)]
            blocks += [
                ConvBlock(c_out, c_out, dims, norm=norm, act=act)
                for _ in range(convs_per_level - 1)
            ]
            return nn.Sequential(*blocks)

        self.encoder = nn.ModuleList(
            stage(in_channels if i == 0 else chans[i - 1], chans[i], 1 if i == 0 else 2)
            for i in range(n)
        )
        # decoder stage k works at level n-2-k: input = previous output (upsampled) + skip
        self.decoder = nn.ModuleList()
        prev = chans[-1]
        for k in range(n - 1):
            level = n - 2 - k
            self.decoder.append(stage(prev + chans[level], dec[k], 1))
            prev = dec[k]
        self.feature_channels = prev
        self.head: nn.Module | None
        if out_channels is None:
            self.head = None
        elif head == "field":
            self.head = FieldHead(prev, dims, out_channels, scale=field_scale)
        elif head == "conv":
            self.head = conv_nd(dims)(prev, out_channels, 3, padding=1)
        else:
            raise ValueError(f"head must be 'field' or 'conv', got {head!r}")
        self.out_channels = out_channels if out_channels is not None else prev

    @property
    def levels(self) -> int:
        return len(self.channels)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != self.dims + 2:
            raise ValueError(
                f"UNet({self.dims}D) expects (N, C, *spatial) with {self.dims} spatial dims, "
                f"got shape {tuple(x.shape)}"
            )
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for stage in self.decoder:
            skip = skips.pop()
            x = stage(torch.cat([upsample_to(x, skip.shape[2:]), skip], dim=1))
        return x if self.head is None else self.head(x)
