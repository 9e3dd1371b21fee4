"""Networks of the semantically guided B-spline registration (Ha, Wilms & Heinrich, 2020).

Three parts, 2D and 3D alike:

* :class:`SemanticUNet` — the feature extractor, shared between the fixed and the moving image:
  eleven 3x3(x3) convolutions, three stride-2 downsamplings, two upsamplings with two skip
  connections, output at half the input resolution as logits over the training label set (a
  softmax turns them into the semantic features the registration networks see).
* :class:`RegNet` — a convolutional encoder from a pair of feature maps to B-spline control-point
  displacements (in voxels of the working grid) on a coarse control grid.
* :class:`BSplineAvgPool` — the control grid to a dense field by nearest-neighbour upsampling
  and three stride-1 average poolings: the recursive (box-filter) construction of the cardinal
  cubic B-spline whose knot spacing is the pooling width.

:class:`SemanticBSplineNet` chains them: features of both images, a first RegNet on the
concatenated features at a coarse scale, a second one on the fixed features and the moving
features warped by the first field at a finer scale, and the fields combined by addition or by
composition.

Grid convention: a stride-2 convolution (kernel 3, padding 1) maps an input of ``n`` voxels to
``ceil(n / 2)``; output voxel ``j`` is centred on input voxel ``2 j``. With working shapes of the
form ``2**k * q + 1`` (e.g. 113, 97, 81) every level keeps its first and last voxel centres on
those of the full grid, so the half-resolution grid is exactly every other working voxel and the
linear upsamplings (``align_corners=True``) are exact inverses of that sampling.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import compose, warp_image
from .blocks import ConvBlock, check_dims, conv_nd

COMBINE = ("add", "compose")

# Default widths (~200k parameters for the U-Net in both 2D and 3D: a 3D kernel has three times
# the weights of a 2D one, so the 3D net is narrower).
UNET_CHANNELS = {2: (16, 32, 48, 64), 3: (8, 16, 24, 40)}
REGNET_CHANNELS = {2: (16, 32, 64, 96), 3: (16, 32, 48, 64)}


def _linear_resize(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Linear resize of ``(N, C, *S)`` to ``shape`` with corner voxels fixed."""
    shape = tuple(int(s) for s in shape)
    if tuple(x.shape[2:]) == shape:
        return x
    mode = "bilinear" if x.ndim == 4 else "trilinear"
    return F.interpolate(x, size=shape, mode=mode, align_corners=True)


def half_grid(x: Tensor) -> Tensor:
    """Every other voxel of ``(N, C, *S)``: the grid of a stride-2 convolution's output.

    For ``S = 2 m - 1`` this is exact (voxel ``j`` of the half grid is voxel ``2 j`` of the full
    grid); a displacement field in mm keeps its values.
    """
    index = (slice(None), slice(None)) + (slice(None, None, 2),) * (x.ndim - 2)
    return x[index]


# ----------------------------------------------------------------------------- B-spline layer


def avgpool_control_shape(shape: Sequence[int], stride: int) -> tuple[int, ...]:
    """Control grid of :class:`BSplineAvgPool` for a dense ``shape`` and knot spacing ``stride``.

    Upsampling ``m`` control points by ``stride`` gives ``m * stride`` samples; three valid
    (unpadded) poolings of width ``stride`` leave ``m * stride - 3 (stride - 1)``, which must
    cover the ``n`` voxels: ``m = ceil((n + 3 (stride - 1)) / stride)``.

    Not :func:`napari_deepreg.core.bspline_control_shape`: that one is the exact cubic B-spline
    (a control point every ``stride`` voxels from one outside each border, ``(n - 1) // s + 4``);
    this layer approximates the spline by poolings and needs its own, smaller grid.
    """
    s = int(stride)
    if s < 1:
        raise ValueError(f"the B-spline stride must be >= 1 voxel, got {stride}")
    return tuple(math.ceil((int(n) + 3 * (s - 1)) / s) for n in shape)


def _pool_along_last(x: Tensor, stride: int, size: int) -> Tensor:
    """The layer's 1D operation on the last axis: upsample by ``stride`` (nearest), three
    stride-1 average poolings of width ``stride``, crop the centre ``size`` samples."""
    x = x.repeat_interleave(stride, dim=-1)
    if stride > 1:
        lead = x.shape[:-1]
        flat = x.reshape(-1, 1, x.shape[-1])
        for _ in range(3):
            flat = F.avg_pool1d(flat, stride, stride=1)
        x = flat.reshape(*lead, flat.shape[-1])
    start = (x.shape[-1] - size) // 2
    return x.narrow(-1, start, size)


@functools.lru_cache(maxsize=64)
def _axis_matrix(stride: int, controls: int, size: int) -> Tensor:
    """``(size, controls)`` matrix of :func:`_pool_along_last` (it is linear): the operation
    applied to the identity, so one matrix product per axis gives the same result, faster."""
    eye = torch.eye(controls, dtype=torch.float64)
    return _pool_along_last(eye, stride, size).t().contiguous()


class BSplineAvgPool(nn.Module):
    """Control-point values ``(N, C, *m)`` -> dense cubic B-spline field ``(N, C, *shape)``.

    Nearest-neighbour upsampling by ``stride`` is the convolution of the (zero-interleaved)
    control values with a box of ``stride`` ones; three average poolings add three normalised
    boxes. Four boxes of width ``s`` convolved are the discrete cardinal cubic B-spline with knot
    spacing ``s`` (support ``4 s - 3`` samples), so the output is ``sum_i c_i B(x - x_i)`` with a
    partition of unity: constant control values give that constant exactly, linear ones a linear
    field. The poolings run without padding on the upsampled grid (which is larger than the
    output), then the centre is cropped, so there are no border effects. ``stride = 1`` passes
    the control values through unchanged. Separable: the 1D operation is linear, so it runs as one
    matrix product per axis (the matrix built once per size from the poolings themselves).

    Args:
        stride: knot spacing in voxels of the dense grid (the pooling width, the "scale").
        dims: 2 or 3.
    """

    def __init__(self, stride: int, dims: int) -> None:
        super().__init__()
        self.stride = int(stride)
        self.dims = check_dims(dims)
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")

    def control_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        return avgpool_control_shape(shape, self.stride)

    def forward(self, control: Tensor, shape: Sequence[int]) -> Tensor:
        shape = tuple(int(n) for n in shape)
        if control.ndim != self.dims + 2 or len(shape) != self.dims:
            raise ValueError(
                f"control must be (N, C, *m) with {self.dims} spatial dims and shape must have "
                f"{self.dims} values, got {tuple(control.shape)} and {shape}"
            )
        expected = self.control_shape(shape)
        if tuple(control.shape[2:]) != expected:
            raise ValueError(
                f"control grid for shape {shape} and stride {self.stride} must be {expected}, "
                f"got {tuple(control.shape[2:])}"
            )
        x = control
        for axis in range(self.dims):
            if self.stride == 1 and x.shape[2 + axis] == shape[axis]:
                continue
            matrix = _axis_matrix(self.stride, x.shape[2 + axis], shape[axis]).to(x)
            x = torch.matmul(x.movedim(2 + axis, -1), matrix.t()).movedim(-1, 2 + axis)
        return x.contiguous()

    def extra_repr(self) -> str:
        return f"stride={self.stride}, dims={self.dims}"


def bspline_kernel1d(stride: int) -> Tensor:
    """The 1D kernel of :class:`BSplineAvgPool` (four boxes of ``stride`` convolved, divided by
    ``stride**3``): length ``4 stride - 3``, sum ``stride``; for tests and figures."""
    box = torch.ones(1, 1, int(stride), dtype=torch.float64)
    k = box.clone()
    for _ in range(3):
        k = F.conv1d(F.pad(k, (stride - 1, stride - 1)), box)
    return k.flatten() / stride**3


# ----------------------------------------------------------------------------- feature U-Net


class SemanticUNet(nn.Module):
    """Image ``(N, in_channels, *S)`` -> label logits ``(N, num_classes, *ceil(S / 2))``.

    Eleven 3x3(x3) convolutions: one at full resolution, a stride-2 one and a stride-1 one at each
    of the 1/2, 1/4 and 1/8 levels, two at 1/4 after the first upsampling (skip from the 1/4
    encoder level), one at 1/2 after the second (skip from the 1/2 level) and the output
    convolution. Softmax of the output gives the semantic features.

    Args:
        num_classes: labels of the training label set, background included.
        dims: 2 or 3.
        channels: widths ``(c0, c1, c2, c3)`` of the full, 1/2, 1/4 and 1/8 levels; the decoder
            uses ``c2`` at 1/4 and ``c1`` at 1/2.
        norm, act: see :mod:`napari_deepreg.nets.blocks`.
    """

    def __init__(
        self,
        num_classes: int,
        dims: int,
        channels: Sequence[int] | None = None,
        in_channels: int = 1,
        norm: str = "instance",
        act: str = "leaky_relu",
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        c0, c1, c2, c3 = (int(c) for c in (channels or UNET_CHANNELS[self.dims]))
        self.num_classes = int(num_classes)

        def block(cin: int, cout: int, stride: int = 1) -> ConvBlock:
            return ConvBlock(cin, cout, dims, stride=stride, norm=norm, act=act)

        self.enc0 = block(in_channels, c0)
        self.enc1 = nn.Sequential(block(c0, c1, 2), block(c1, c1))
        self.enc2 = nn.Sequential(block(c1, c2, 2), block(c2, c2))
        self.enc3 = nn.Sequential(block(c2, c3, 2), block(c3, c3))
        self.dec2 = nn.Sequential(block(c3 + c2, c2), block(c2, c2))
        self.dec1 = block(c2 + c1, c1)
        self.out = conv_nd(dims)(c1, self.num_classes, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.enc1(self.enc0(x))
        x2 = self.enc2(x1)
        x3 = self.enc3(x2)
        y = self.dec2(torch.cat([_linear_resize(x3, x2.shape[2:]), x2], 1))
        y = self.dec1(torch.cat([_linear_resize(y, x1.shape[2:]), x1], 1))
        return self.out(y)


# ----------------------------------------------------------------------------- registration net


class RegNet(nn.Module):
    """Feature pair ``(N, in_channels, *S)`` -> control displacements ``(N, dims, *control)``.

    Two convolutions at the input resolution, then three levels each with a stride-2 and a
    stride-1 convolution (receptive field of about 60 input voxels), the coarsest features
    linearly resized to the control grid, and two 1x1 convolutions to ``dims`` displacement
    channels in voxels. The last layer starts at nearly zero so that an untrained net predicts
    almost the identity.

    Args:
        in_channels: channels of the concatenated feature pair (2 x labels).
        dims: 2 or 3.
        channels: widths of the four levels.
    """

    def __init__(
        self,
        in_channels: int,
        dims: int,
        channels: Sequence[int] | None = None,
        norm: str = "instance",
        act: str = "leaky_relu",
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        r = [int(c) for c in (channels or REGNET_CHANNELS[self.dims])]
        if len(r) != 4:
            raise ValueError(f"RegNet needs four channel widths, got {r}")

        def block(cin: int, cout: int, stride: int = 1) -> ConvBlock:
            return ConvBlock(cin, cout, dims, stride=stride, norm=norm, act=act)

        self.encoder = nn.Sequential(
            block(in_channels, r[0]),
            block(r[0], r[0]),
            block(r[0], r[1], 2),
            block(r[1], r[1]),
            block(r[1], r[2], 2),
            block(r[2], r[2]),
            block(r[2], r[3], 2),
            block(r[3], r[3]),
        )
        conv1 = conv_nd(dims)
        hidden = max(r[3] // 2, dims)
        self.head = nn.Sequential(conv1(r[3], hidden, 1), nn.LeakyReLU(0.2))
        self.out = conv1(hidden, dims, 1)
        nn.init.normal_(self.out.weight, std=1e-5)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, control_shape: Sequence[int]) -> Tensor:
        y = _linear_resize(self.encoder(x), control_shape)
        return self.out(self.head(y))


# ----------------------------------------------------------------------------- the whole model


class SemanticBSplineNet(nn.Module):
    """Semantic features, ``len(strides)`` registration steps, one field.

    ``forward(fixed, moving, spacing)`` with images ``(N, 1, *S)`` on one working grid (voxel
    size ``spacing`` mm per axis) returns a dict:

    * ``field``: ``(N, D, *S)`` final displacement in mm (pull-back:
      ``warped(x) = moving(x + field(x))``);
    * ``fields``: the step fields ``[V_1, V_2, ...]`` (mm, full grid);
    * ``logits_fixed``, ``logits_moving``: ``(N, L, *ceil(S / 2))`` label logits.

    Args:
        num_classes: labels of the training set (background included).
        dims: 2 or 3.
        strides: B-spline knot spacing of each step in working voxels, coarse first (the
            paper's scales, about 5 % and 3 % of the largest image dimension).
        combine: ``"add"`` (``V = V_1 + V_2``) or ``"compose"`` (``phi_V = phi_V1 o phi_V2``,
            the exact chaining of the second step, which saw the moving features warped by the
            first field).
        unet_channels, regnet_channels: widths (see :class:`SemanticUNet`, :class:`RegNet`).
        norm: normalisation of both nets.
    """

    def __init__(
        self,
        num_classes: int,
        dims: int,
        strides: Sequence[int] = (5, 3),
        combine: str = "add",
        unet_channels: Sequence[int] | None = None,
        regnet_channels: Sequence[int] | None = None,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}")
        if not strides:
            raise ValueError("strides needs at least one B-spline scale")
        self.combine = combine
        self.num_classes = int(num_classes)
        self.unet = SemanticUNet(num_classes, dims, unet_channels, norm=norm)
        self.regnets = nn.ModuleList(
            RegNet(2 * num_classes, dims, regnet_channels, norm=norm) for _ in strides
        )
        self.bsplines = nn.ModuleList(BSplineAvgPool(s, dims) for s in strides)

    def features(self, images: Tensor) -> Tensor:
        """Label logits of ``images`` ``(N, 1, *S)`` at half resolution."""
        return self.unet(images)

    def forward(self, fixed: Tensor, moving: Tensor, spacing: Sequence[float]) -> dict:
        if fixed.shape != moving.shape or fixed.ndim != self.dims + 2:
            raise ValueError(
                f"fixed and moving must both be (N, 1, *spatial) {self.dims}D, got "
                f"{tuple(fixed.shape)} and {tuple(moving.shape)}"
            )
        spacing = tuple(float(s) for s in spacing)
        shape = tuple(fixed.shape[2:])
        n = fixed.shape[0]
        # one pass through the shared U-Net for both images
        logits = self.features(torch.cat([fixed, moving], 0))
        probs = torch.softmax(logits, 1)
        prob_f, prob_m = probs[:n], probs[n:]
        # the half grid is every other working voxel (see :func:`half_grid`)
        half_spacing = [2 * s for s in spacing]
        to_mm = torch.tensor(spacing, device=fixed.device, dtype=fixed.dtype).view(
            1, self.dims, *([1] * self.dims)
        )
        field: Tensor | None = None
        fields: list[Tensor] = []
        warped_m = prob_m
        for k, (regnet, bspline) in enumerate(zip(self.regnets, self.bsplines, strict=True)):
            control = regnet(torch.cat([prob_f, warped_m], 1), bspline.control_shape(shape))
            step = bspline(control, shape) * to_mm
            fields.append(step)
            if field is None:
                field = step
            elif self.combine == "add":
                field = field + step
            else:
                field = compose(field, step, spacing)
            if k + 1 < len(self.regnets):
                warped_m = warp_image(prob_m, half_grid(field), half_spacing)
        return {
            "field": field,
            "fields": fields,
            "logits_fixed": logits[:n],
            "logits_moving": logits[n:],
        }


__all__ = [
    "COMBINE",
    "REGNET_CHANNELS",
    "UNET_CHANNELS",
    "BSplineAvgPool",
    "RegNet",
    "SemanticBSplineNet",
    "SemanticUNet",
    "avgpool_control_shape",
    "bspline_kernel1d",
    "half_grid",
]
