"""Separable Gaussian smoothing and anti-aliased resizing of images and fields."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kernel1d(
    sigma: float, truncate: float = 3.0, device=None, dtype=torch.float32
) -> Tensor:
    """Normalised 1D Gaussian kernel of standard deviation ``sigma`` (voxels), odd length."""
    if sigma <= 0:
        return torch.ones(1, device=device, dtype=dtype)
    radius = max(1, int(math.ceil(truncate * sigma)))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _symmetric_index(n: int, radius: int, device=None) -> Tensor:
    """Indices of a length-``n`` axis extended by ``radius`` on each side by half-sample mirroring.

    The extension is ``... x1 x0 | x0 x1 ... x(n-1) | x(n-1) x(n-2) ...`` repeated as often as
    needed, so any radius works, even one larger than the axis.
    """
    j = torch.arange(-radius, n + radius, device=device) % (2 * n)
    return torch.where(j >= n, 2 * n - 1 - j, j)


def conv1d_along(x: Tensor, kernel: Tensor, axis: int, padding_mode: str = "replicate") -> Tensor:
    """Convolve ``(N, C, *spatial)`` with a 1D ``kernel`` along spatial ``axis`` (0-based).

    ``padding_mode``: ``"replicate"`` (edge value), ``"symmetric"`` (half-sample mirror; with a
    symmetric kernel the operator is then a symmetric matrix that keeps constants) or any mode of
    ``F.pad``.
    """
    if kernel.numel() == 1:
        return x * kernel
    dim = 2 + axis
    moved = x.movedim(dim, -1)
    shape = moved.shape
    flat = moved.reshape(-1, 1, shape[-1])
    radius = kernel.numel() // 2
    if padding_mode == "symmetric":
        flat = flat.index_select(-1, _symmetric_index(shape[-1], radius, flat.device))
    else:
        mode = padding_mode
        if mode == "replicate" or shape[-1] <= radius:
            mode = "replicate"
        flat = F.pad(flat, (radius, radius), mode=mode)
    out = F.conv1d(flat, kernel.view(1, 1, -1).to(flat))
    return out.reshape(shape).movedim(-1, dim)


def gaussian_smooth(
    x: Tensor,
    sigma: float | Sequence[float],
    truncate: float = 3.0,
    padding_mode: str = "replicate",
) -> Tensor:
    """Gaussian smoothing of ``(N, C, *spatial)`` with ``sigma`` in voxels (scalar or per axis).

    Borders are replicated by default, so a constant image stays constant (``"symmetric"`` keeps
    constants too and makes the operator a symmetric matrix).
    """
    ndim = x.ndim - 2
    sigmas = [float(sigma)] * ndim if isinstance(sigma, (int, float)) else list(sigma)
    if len(sigmas) != ndim:
        raise ValueError(f"sigma needs {ndim} values, got {sigmas}")
    for axis, s in enumerate(sigmas):
        kernel = gaussian_kernel1d(s, truncate, x.device, x.dtype)
        x = conv1d_along(x, kernel, axis, padding_mode)
    return x


def matmul_along(x: Tensor, matrix: Tensor, axis: int) -> Tensor:
    """Apply the ``(m, n)`` ``matrix`` along spatial ``axis`` of ``(N, C, *spatial)``: the
    samples ``x[..., j, ...]`` (``n`` of them) become ``sum_j matrix[i, j] x[..., j, ...]``."""
    dim = 2 + axis
    return torch.matmul(x.movedim(dim, -1), matrix.t().to(x)).movedim(-1, dim)


def gaussian_matrix(
    n: int, sigma: float, truncate: float = 3.0, padding_mode: str = "replicate"
) -> Tensor:
    """``(n, n)`` float64 matrix of :func:`conv1d_along` with a Gaussian of ``sigma`` samples on
    an axis of ``n`` samples.

    A smoothing applied as one matrix product costs ``n`` multiply-adds per sample whatever the
    kernel's width, where a convolution costs the kernel's length (up to ``6 sigma + 1``); its
    backward pass is a matrix product too."""
    eye = torch.eye(n, dtype=torch.float64)[:, None]
    kernel = gaussian_kernel1d(sigma, truncate, dtype=torch.float64)
    # the operator applied to each unit vector gives one of its columns
    return conv1d_along(eye, kernel, 0, padding_mode)[:, 0].t()


def resize(x: Tensor, shape: Sequence[int], antialias: bool = True) -> Tensor:
    """Resize ``(N, C, *spatial)`` to ``shape`` with corner voxels fixed (``align_corners=True``).

    When shrinking and ``antialias`` is set, a Gaussian of sigma ``0.5 * factor`` voxels is applied
    first. Values are not rescaled: a displacement field in mm stays in mm.
    """
    shape = tuple(int(s) for s in shape)
    if tuple(x.shape[2:]) == shape:
        return x
    ndim = x.ndim - 2
    if antialias:
        factors = [(n - 1) / max(m - 1, 1) for n, m in zip(x.shape[2:], shape, strict=True)]
        sig = [0.5 * f if f > 1 else 0.0 for f in factors]
        if any(s > 0 for s in sig):
            x = gaussian_smooth(x, sig, truncate=2.0)
    mode = "bilinear" if ndim == 2 else "trilinear"
    return F.interpolate(x, size=shape, mode=mode, align_corners=True)


@functools.lru_cache(maxsize=64)
def _axis_matrix(n: int, m: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(m, n)`` matrix resampling ``n`` samples to ``m`` (corners fixed, linear), with a
    Gaussian of sigma ``0.5 * (n - 1) / (m - 1)`` samples first when shrinking (replicated
    borders): the 1D operator of :func:`resize`.

    Cached (read-only by its one caller): building it took 3.5 of the 28 ms a 256x256 pair
    spends in ``pipeline.register`` with ``flownet_roi_2d``.
    """
    step = (n - 1) / max(m - 1, 1)
    pos = torch.arange(m, dtype=torch.float64) * step
    lo = pos.floor().long().clamp(0, n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    frac = pos - lo
    rows = torch.arange(m)
    matrix = torch.zeros(m, n, dtype=torch.float64)
    matrix.index_put_((rows, lo), 1 - frac, accumulate=True)
    matrix.index_put_((rows, hi), frac, accumulate=True)
    if step > 1:
        # the smoothing of resize as a matrix: it applied to each unit vector gives a column
        kernel = gaussian_kernel1d(0.5 * step, 2.0, dtype=torch.float64)
        eye = torch.eye(n, dtype=torch.float64)[:, None]
        matrix = matrix @ conv1d_along(eye, kernel, 0)[:, 0].t()
    return matrix.to(dtype=dtype, device=device)


def resize_separable(x: Tensor, shape: Sequence[int]) -> Tensor:
    """:func:`resize` (anti-aliased, corners fixed) as one matrix product
    per axis, last axis first, so each product works on an already reduced array.

    Same result as :func:`resize` to float precision; about 35 times faster when shrinking a
    1 mm brain volume to the working grid (0.1 s instead of 3.6 s on one CPU thread), which is
    what keeps a 1 mm pair within the time budget.
    """
    for axis in reversed(range(x.ndim - 2)):
        dim = 2 + axis
        n, m = x.shape[dim], int(shape[axis])
        if n != m:
            x = matmul_along(x, _axis_matrix(n, m, x.dtype, x.device), axis)
    return x.contiguous()
