"""Dimension-generic building blocks for the registration networks (2D and 3D alike).

Every block takes ``dims`` (2 or 3) and works on ``(N, C, *spatial)`` tensors, so one network
definition serves both. Options are plain strings (``norm="instance"``, ``act="leaky_relu"``) so a
config file can name them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("none", "instance", "batch", "group")
ACTIVATIONS = ("leaky_relu", "relu", "gelu", "none")


def check_dims(dims: int) -> int:
    """``dims`` as an int, or a ValueError unless it is 2 or 3."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    return int(dims)


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` that avoids PyTorch's slow CPU paths at inference (same weights and
    results; training and other devices untouched).

    For a batch of one with ``N * C * D * H <= 20480`` PyTorch picks its unvectorised
    ``slow_conv3d`` on the CPU, about 7 times slower here than calling oneDNN directly; with one
    input channel, or a 1x1x1 kernel, oneDNN itself is 2-3 times as fast on a channels-last copy
    of the input.
    """

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with(x, self.weight, self.bias)

    def forward_with(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The convolution with other ``weight`` and ``bias`` (e.g. a normalisation folded in)."""
        if (torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32
                or x.ndim != 5 or self.padding_mode != "zeros" or isinstance(self.padding, str)
                or not torch.backends.mkldnn.is_available()):
            return self._conv_forward(x, weight, bias)
        if x.shape[1] == 1 or self.kernel_size == (1, 1, 1):
            out = self._conv_forward(x.contiguous(memory_format=torch.channels_last_3d), weight,
                                     bias)
            return out.contiguous()
        return torch.mkldnn_convolution(x.contiguous(), weight.contiguous(), bias, self.padding,
                                        self.stride, self.dilation, self.groups)


def conv_nd(dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    """``nn.Conv2d`` or :class:`Conv3d` (an ``nn.Conv3d``)."""
    return nn.Conv2d if check_dims(dims) == 2 else Conv3d


def make_norm(kind: str | None, dims: int, channels: int) -> nn.Module:
    """A normalisation layer over ``channels`` (``"none"``/None gives an identity).

    ``"group"`` uses up to 8 groups (fewer when ``channels`` is not divisible); instance norm has
    no affine parameters, so it adds none to the parameter count.
    """
    kind = "none" if kind is None else kind
    if kind == "none":
        return nn.Identity()
    if kind == "instance":
        return (nn.InstanceNorm2d if check_dims(dims) == 2 else nn.InstanceNorm3d)(channels)
    if kind == "batch":
        return (nn.BatchNorm2d if check_dims(dims) == 2 else nn.BatchNorm3d)(channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def make_activation(kind: str | None) -> nn.Module:
    """An activation module; leaky ReLU uses slope 0.2 as in the VoxelMorph family."""
    kind = "none" if kind is None else kind
    if kind == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if kind == "relu":
        return nn.ReLU()
    if kind == "gelu":
        return nn.GELU()
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"act must be one of {ACTIVATIONS}, got {kind!r}")


class ConvBlock(nn.Sequential):
    """Convolution, normalisation, activation: ``(N, in, *S) -> (N, out, *S / stride)``.

    Padding is ``kernel_size // 2``, so a stride-1 block keeps the spatial shape and a stride-2
    block gives ``ceil(S / 2)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dims: int,
        kernel_size: int = 3,
        stride: int = 1,
        norm: str | None = "none",
        act: str | None = "leaky_relu",
    ) -> None:
        conv = conv_nd(dims)(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            # a bias is redundant right before a normalisation that removes the mean
            bias=(norm in (None, "none")),
        )
        super().__init__(conv, make_norm(norm, dims, out_channels), make_activation(act))
        self.in_channels = in_channels
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        conv, norm, act = self
        if self.training or torch.is_grad_enabled() or not _is_frozen_batch_norm(norm):
            return act(norm(conv(x)))
        # inference: batch norm with its running statistics is an affine map per channel,
        # folded into the convolution's weights (one pass over the output instead of two)
        scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
        bias = norm.bias - norm.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        weight = conv.weight * scale.view(-1, *[1] * (conv.weight.ndim - 1))
        if isinstance(conv, Conv3d):
            return act(conv.forward_with(x, weight, bias))
        return act(conv._conv_forward(x, weight, bias))


def _is_frozen_batch_norm(norm: nn.Module) -> bool:
    """Batch norm that normalises with stored running statistics (eval mode)."""
    return (isinstance(norm, nn.modules.batchnorm._BatchNorm) and not norm.training
            and norm.track_running_stats and norm.running_mean is not None and norm.affine)


class ResidualBlock(nn.Module):
    """Two stride-1 ConvBlocks with an identity (or 1x1 projection) shortcut.

    ``(N, in, *S) -> (N, out, *S)``; the second activation comes after the sum.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dims: int,
        norm: str | None = "none",
        act: str | None = "leaky_relu",
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBlock(in_channels, out_channels, dims, norm=norm, act=act),
            ConvBlock(out_channels, out_channels, dims, norm=norm, act="none"),
        )
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else conv_nd(dims)(in_channels, out_channels, 1)
        )
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def upsample_to(x: Tensor, shape: tuple[int, ...] | torch.Size) -> Tensor:
    """Linearly resize features ``(N, C, *S)`` to ``shape`` (any size, not only 2x).

    Resizing to the skip connection's exact shape (rather than a fixed factor of 2) lets the
    U-Net accept any input size, odd ones included.
    """
    shape = tuple(int(s) for s in shape)
    if tuple(x.shape[2:]) == shape:
        return x
    mode = "bilinear" if x.ndim == 4 else "trilinear"
    return F.interpolate(x, size=shape, mode=mode, align_corners=False)


class FieldHead(nn.Module):
    """A 3x3(x3) convolution that outputs ``dims`` (or ``out_channels``) channels of displacement.

    Weights start from N(0, ``init_std``) and the bias at zero, so an untrained network predicts
    an almost-identity transform (the VoxelMorph initialisation); ``scale`` multiplies the output
    (e.g. voxel size in mm, so the network works in voxel units).
    """

    def __init__(
        self,
        in_channels: int,
        dims: int,
        out_channels: int | None = None,
        init_std: float = 1e-5,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        out = dims if out_channels is None else out_channels
        self.conv = conv_nd(dims)(in_channels, out, 3, padding=1)
        nn.init.normal_(self.conv.weight, std=init_std)
        nn.init.zeros_(self.conv.bias)
        self.scale = float(scale)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return y * self.scale if self.scale != 1.0 else y


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
