"""Stateless losses on torch tensors, 2D and 3D alike.

Every loss takes batched tensors ``(N, C, *spatial)`` (2 or 3 spatial dims) and returns a scalar
where lower is better. Similarities are 0 for identical images; regularisers are in physical units
(displacements in mm, derivatives per mm), so their weights do not depend on the voxel size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.grid import as_spacing, check_field


def _spatial_dims(x: Tensor, name: str = "image") -> int:
    if x.ndim not in (4, 5):
        raise ValueError(
            f"{name} must be (N, C, *spatial) with 2 or 3 spatial dims, got shape {tuple(x.shape)}"
        )
    return x.ndim - 2


def _check_same(a: Tensor, b: Tensor) -> int:
    ndim = _spatial_dims(a, "first image")
    if a.shape != b.shape:
        raise ValueError(
            f"images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return ndim


def _per_axis(value: int | Sequence[int], ndim: int, name: str) -> list[int]:
    values = [int(value)] * ndim if isinstance(value, (int, float)) else [int(v) for v in value]
    if len(values) != ndim or any(v < 1 for v in values):
        raise ValueError(f"{name} needs {ndim} positive values, got {value!r}")
    return values


def box_mean(x: Tensor, window: int | Sequence[int]) -> Tensor:
    """Mean of ``x`` over a box of ``window`` voxels (per axis) centred on each voxel.

    Separable, with running sums (``cumsum``), so the cost does not grow with the window. Near
    the border only voxels inside the image are averaged, so a constant image stays constant.
    Even windows are rounded up to the next odd size so that the box stays centred; a window
    longer than an axis averages the whole axis.

    Args:
        x: ``(N, C, *spatial)``.
        window: box size in voxels, scalar or one per spatial axis.

    Returns:
        ``(N, C, *spatial)``.
    """
    ndim = _spatial_dims(x)
    sizes = _per_axis(window, ndim, "window")
    for axis, w in enumerate(sizes):
        dim = 2 + axis
        n = x.shape[dim]
        r = min(w // 2, n - 1)
        if r < 1:
            continue
        # c[k] = sum of x[:k] along the axis (n + 1 values, c[0] = 0)
        pad = [0, 0] * (ndim - 1 - axis) + [1, 0]
        c = F.pad(torch.cumsum(x, dim), pad)
        # sum over [i - r, i + r] clipped to [0, n - 1] is c[min(i + r + 1, n)] - c[max(i - r, 0)]
        if 2 * r + 1 <= n:
            sums = torch.cat(
                [
                    c.narrow(dim, r + 1, r),
                    c.narrow(dim, 2 * r + 1, n - 2 * r) - c.narrow(dim, 0, n - 2 * r),
                    c.narrow(dim, n, 1) - c.narrow(dim, n - 2 * r, r),
                ],
                dim,
            )
        else:
            i = torch.arange(n, device=x.device)
            sums = c.index_select(dim, (i + r + 1).clamp(max=n)) - c.index_select(
                dim, (i - r).clamp(min=0)
            )
        i = torch.arange(n, device=x.device, dtype=x.dtype)
        count = (i + r + 1).clamp(max=n) - (i - r).clamp(min=0)
        x = sums / count.view([n if d == dim else 1 for d in range(x.ndim)])
    return x


def mse(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared difference of two ``(N, C, *spatial)`` images (0 when identical)."""
    _check_same(a, b)
    return (a - b).pow(2).mean()


def ncc(a: Tensor, b: Tensor, eps: float = 1e-12) -> Tensor:
    """Global normalised cross-correlation loss, ``1 - NCC`` averaged over the batch.

    NCC is computed over all channels and voxels of each sample, so the loss lies in ``[0, 2]``:
    0 for images that are equal up to a positive affine change of intensity ``a = s b + t``
    (``s > 0``), 2 for an inverted copy.

    Args:
        a, b: ``(N, C, *spatial)``.
        eps: floor of the product of the variances, so a constant image gives a finite value.

    Returns:
        scalar.
    """
    _check_same(a, b)
    a = a.flatten(1)
    b = b.flatten(1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    cross = (a * b).mean(1)
    var_a = a.pow(2).mean(1)
    var_b = b.pow(2).mean(1)
    # the floor only acts on (nearly) constant images, so equal images give exactly 0
    cc = cross * torch.rsqrt((var_a * var_b).clamp_min(eps))
    return 1 - cc.mean()


class LocalMoments(NamedTuple):
    """Windowed statistics of one image, reusable across LNCC evaluations (see :func:`lncc`)."""

    centred: Tensor  # the image minus its global mean, (N, C, *spatial)
    mean: Tensor  # box mean of ``centred``
    var: Tensor  # box variance, >= 0
    window: tuple[int, ...]


def local_moments(a: Tensor, window: int | Sequence[int] = 9) -> LocalMoments:
    """Box mean and variance of ``a`` (``(N, C, *spatial)``) over ``window`` voxels.

    Pass the result as ``a_moments`` to :func:`lncc` when ``a`` stays the same over many
    evaluations (the fixed image of an optimisation): it saves two of the five box filters.
    """
    ndim = _spatial_dims(a)
    win = tuple(_per_axis(window, ndim, "window"))
    # LNCC ignores global offsets; centring first keeps E[a^2] - E[a]^2 accurate in float32
    a = a - a.mean()
    mean_a, mean_aa = box_mean(torch.cat([a, a * a], 1), win).split(a.shape[1], 1)
    return LocalMoments(a, mean_a, (mean_aa - mean_a * mean_a).clamp_min(0), win)


def lncc(
    a: Tensor,
    b: Tensor,
    window: int | Sequence[int] = 9,
    eps: float = 1e-5,
    a_moments: LocalMoments | None = None,
) -> Tensor:
    """Local (windowed) normalised cross-correlation loss, ``1 - mean(cc)``.

    ``cc = (cov^2 + eps) / (var_a var_b + eps)`` with the covariance and variances taken over a box
    of ``window`` voxels around each voxel (the squared form of VoxelMorph's LNCC). By
    Cauchy-Schwarz ``cc <= 1``, and ``eps`` in both numerator and denominator makes ``cc = 1``
    exactly wherever the images are equal (flat regions included), so identical images give 0,
    the optimum. Invariant to a local affine change of intensity, of either sign.

    Args:
        a, b: ``(N, C, *spatial)``.
        window: box size in voxels, scalar or per axis.
        eps: stabiliser, in squared-intensity units squared; images are assumed in ``[0, 1]``.
        a_moments: ``local_moments(a, window)`` computed beforehand (optional, same result).

    Returns:
        scalar in ``[0, 1]``.
    """
    _check_same(a, b)
    ndim = a.ndim - 2
    if a_moments is None:
        a_moments = local_moments(a, window)
    elif a_moments.window != tuple(_per_axis(window, ndim, "window")):
        raise ValueError(f"a_moments were computed for window {a_moments.window}, not {window}")
    a_c, mean_a, var_a = a_moments.centred, a_moments.mean, a_moments.var
    b = b - b.mean()
    mean_b, mean_bb, mean_ab = box_mean(torch.cat([b, b * b, a_c * b], 1), window).split(
        b.shape[1], 1
    )
    cov = mean_ab - mean_a * mean_b
    var_b = (mean_bb - mean_b * mean_b).clamp_min(0)
    # rounding can push cov^2 a hair above var_a var_b, where Cauchy-Schwarz says <=
    cc = ((cov * cov + eps) / (var_a * var_b + eps)).clamp_max(1)
    return 1 - cc.mean()


def mk_lncc(
    a: Tensor,
    b: Tensor,
    windows: Sequence[int] = (5, 9, 15),
    weights: Sequence[float] | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Multi-kernel LNCC: ``sum_k w_k * lncc(a, b, windows[k])``.

    Weights default to equal weights summing to 1, so the loss stays in ``[0, 1]`` and is 0 for
    identical images.
    """
    if not windows:
        raise ValueError("mk_lncc needs at least one window")
    if weights is None:
        weights = [1.0 / len(windows)] * len(windows)
    if len(weights) != len(windows):
        raise ValueError(f"got {len(windows)} windows but {len(weights)} weights")
    total = a.new_zeros(())
    for w, wt in zip(windows, weights, strict=True):
        total = total + float(wt) * lncc(a, b, w, eps)
    return total


def _shift(x: Tensor, offset: Sequence[int]) -> Tensor:
    """``y(p) = x(p + offset)`` with replicated borders; ``offset`` in voxels per spatial axis."""
    ndim = x.ndim - 2
    r = max(abs(o) for o in offset)
    if r == 0:
        return x
    padded = F.pad(x, [r] * (2 * ndim), mode="replicate")
    index = [slice(None), slice(None)]
    for axis, o in enumerate(offset):
        index.append(slice(r + o, r + o + x.shape[2 + axis]))
    return padded[tuple(index)]


def _ssc_pairs(ndim: int, dilation: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Pairs of neighbours of the six- (four-, in 2D) neighbourhood at distance ``sqrt(2)*d``.

    12 pairs in 3D, 4 in 2D: every two neighbours on different axes (opposite neighbours are left
    out, as in the self-similarity context of Heinrich et al. 2013).
    """
    hood = []
    for axis in range(ndim):
        for sign in (-1, 1):
            off = [0] * ndim
            off[axis] = sign * dilation
            hood.append(tuple(off))
    pairs = []
    for i in range(len(hood)):
        for j in range(i + 1, len(hood)):
            axis_i = next(k for k, v in enumerate(hood[i]) if v)
            axis_j = next(k for k, v in enumerate(hood[j]) if v)
            if axis_i != axis_j:
                pairs.append((hood[i], hood[j]))
    return pairs


def mind_ssc(
    image: Tensor, radius: int = 1, dilation: int = 2, eps: float = 1e-6
) -> Tensor:
    """MIND-SSC descriptor (modality independent neighbourhood descriptor, self-similarity context).

    After Heinrich et al., MICCAI 2013: for each pair ``(p, q)`` of neighbours of the six-
    neighbourhood (four in 2D) at distance ``dilation`` that are not opposite, the patch distance
    ``D_pq(x) = mean over a box of (I(x + y + p) - I(x + y + q))^2``; the local variance estimate
    ``V(x)`` is the mean of ``D_pq(x)`` over the pairs; the descriptor is ``exp(-D_pq / V)``,
    normalised so that its largest channel is 1 at every voxel. It depends on local intensity
    differences only through their ratios, so it does not change under ``I -> s I + t`` (any
    ``s != 0``), which makes it usable across modalities.

    Args:
        image: ``(N, C, *spatial)``; each channel gets its own descriptor.
        radius: patch half-width in voxels (box of ``2 * radius + 1``).
        dilation: distance of the neighbours from the centre, in voxels.
        eps: floor of the variance relative to its image mean (keeps flat regions finite).

    Returns:
        ``(N, C * K, *spatial)`` with K = 12 in 3D and 4 in 2D, values in ``(0, 1]``.
    """
    ndim = _spatial_dims(image)
    n, c = image.shape[:2]
    x = image.reshape(n * c, 1, *image.shape[2:])
    pairs = _ssc_pairs(ndim, dilation)
    # D_pq(x) = box[(I(.+p) - I(.+q))^2](x): the squared difference of I and I shifted by q - p,
    # box filtered, then shifted by p (shifts commute with the box filter away from borders).
    diffs = []
    for p, q in pairs:
        d = tuple(qi - pi for pi, qi in zip(p, q, strict=True))
        diffs.append(_shift((x - _shift(x, d)).pow(2), p))
    dist = box_mean(torch.cat(diffs, 1), 2 * radius + 1)
    # subtract the smallest distance: same as normalising exp(-D/V) by its largest channel
    dist = dist - dist.amin(1, keepdim=True)
    var = dist.mean(1, keepdim=True)
    floor = var.mean(dim=tuple(range(1, var.ndim)), keepdim=True) * 1e-3 + eps
    var = torch.maximum(var, floor)
    desc = torch.exp(-dist / var)
    return desc.reshape(n, c * len(pairs), *image.shape[2:])


def mind_ssc_loss(
    a: Tensor,
    b: Tensor,
    radius: int = 1,
    dilation: int = 2,
    penalty: str = "l2",
) -> Tensor:
    """Mean absolute (``penalty="l1"``) or squared (``"l2"``) difference of MIND-SSC descriptors.

    For multi-modal pairs: 0 for identical images and for any intensity-affine (including
    inverted) copy. Inputs ``(N, C, *spatial)``; returns a scalar.
    """
    _check_same(a, b)
    desc_a = mind_ssc(a, radius, dilation)
    desc_b = mind_ssc(b, radius, dilation)
    return descriptor_distance(desc_a, desc_b, penalty)


def descriptor_distance(a: Tensor, b: Tensor, penalty: str = "l2") -> Tensor:
    """Mean ``|a - b|`` (``"l1"``) or ``(a - b)^2`` (``"l2"``) of two descriptor tensors."""
    if penalty == "l1":
        return (a - b).abs().mean()
    if penalty == "l2":
        return (a - b).pow(2).mean()
    raise ValueError(f"penalty must be 'l1' or 'l2', got {penalty!r}")


def _forward_diff(x: Tensor, axis: int, h: float) -> Tensor:
    """Forward difference of ``(N, C, *spatial)`` along spatial ``axis`` divided by ``h``."""
    n = x.shape[2 + axis]
    return (x.narrow(2 + axis, 1, n - 1) - x.narrow(2 + axis, 0, n - 1)) / h


def diffusion(field: Tensor, spacing: float | Sequence[float] | None = None) -> Tensor:
    """Diffusion regulariser: mean over voxels of ``||grad u||_F^2 = sum_ij (du_i / dx_j)^2``.

    Derivatives are forward differences divided by the spacing, so the value is dimensionless
    (mm per mm) and independent of the voxel size. 0 for a constant field; for a linear field
    ``u(x) = M x`` it is exactly ``sum(M**2)``.

    Args:
        field: ``(N, D, *spatial)`` displacement in mm.
        spacing: voxel size in mm along the array axes.

    Returns:
        scalar.
    """
    ndim = check_field(field)
    sp = as_spacing(spacing, ndim)
    total = field.new_zeros(())
    for axis in range(ndim):
        if field.shape[2 + axis] < 2:
            continue
        d = _forward_diff(field, axis, sp[axis])
        # mean over voxels, sum over the D components
        total = total + d.pow(2).mean() * ndim
    return total


def bending_energy(field: Tensor, spacing: float | Sequence[float] | None = None) -> Tensor:
    """Bending energy: mean over voxels of ``sum_i sum_jk (d^2 u_i / dx_j dx_k)^2``.

    Second derivatives are differences of forward differences divided by the spacings, so the
    value is in 1/mm (squared: mm / mm^2, squared) whatever the voxel size. Exactly 0 for an affine
    field. The mixed terms appear twice (``jk`` and ``kj``), as in the thin-plate energy.

    Args:
        field: ``(N, D, *spatial)`` displacement in mm.
        spacing: voxel size in mm along the array axes.

    Returns:
        scalar.
    """
    ndim = check_field(field)
    sp = as_spacing(spacing, ndim)
    total = field.new_zeros(())
    for j in range(ndim):
        if field.shape[2 + j] < 3:
            continue
        dj = _forward_diff(field, j, sp[j])
        for k in range(j, ndim):
            if field.shape[2 + k] < (3 if k == j else 2):
                continue
            djk = _forward_diff(dj, k, sp[k])
            weight = 1.0 if j == k else 2.0
            total = total + weight * djk.pow(2).mean() * ndim
    return total


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """``(N, 1, *spatial)`` integer labels in ``[0, num_classes)`` -> ``(N, L, *spatial)`` float."""
    if labels.is_floating_point():
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    if labels.ndim < 3 or labels.shape[1] != 1:
        raise ValueError(f"labels must be (N, 1, *spatial), got {tuple(labels.shape)}")
    return F.one_hot(labels[:, 0].long(), num_classes).movedim(-1, 1).float()


def soft_dice(
    pred: Tensor, target: Tensor, include_background: bool = True, eps: float = 1e-5
) -> Tensor:
    """Soft Dice loss ``1 - mean_l (2 sum p t + eps) / (sum p + sum t + eps)``.

    Args:
        pred, target: ``(N, L, *spatial)`` one-hot or probability maps (one channel per label).
        include_background: if False, channel 0 is left out of the mean.
        eps: smoothing; a label absent from both gives Dice 1.

    Returns:
        scalar in ``[0, 1]``, 0 for identical one-hot maps.
    """
    _check_same(pred, target)
    if not include_background:
        if pred.shape[1] < 2:
            raise ValueError("include_background=False needs at least two label channels")
        pred, target = pred[:, 1:], target[:, 1:]
    dims = tuple(range(2, pred.ndim))
    inter = (pred * target).sum(dims)
    denom = pred.sum(dims) + target.sum(dims)
    dice = (2 * inter + eps) / (denom + eps)
    return 1 - dice.mean()
