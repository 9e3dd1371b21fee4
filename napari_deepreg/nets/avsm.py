"""AVSM networks (Shen, Han, Xu & Niethammer, CVPR 2019): multi-step affine net + vSVF.

Geometry. Both directions of a pair live on one working grid (origin 0, ``spacing`` mm). The
affine parameters ``(A, b)`` act in a *normalised frame* ``x_n = (x - c) / R`` (``c`` the grid
centre, ``R`` half the largest physical extent, one scalar so that a rotation stays a rotation):
the fixed point ``x_n`` maps to ``A x_n + b`` in the moving image (the paper's
``Phi_a^{-1}(x) = A x + b``, a pull-back). :func:`affine_matrix_mm` turns it into the package's
``(D+1, D+1)`` physical matrix.

vSVF. A U-Net with residual links, whose last decoder level is removed, predicts a vector
momentum ``m`` at half resolution (normalised units, fractions of ``2 R`` per unit time); the
velocity is its multi-Gaussian smoothing ``v = K * m`` (``(L^+ L)^{-1}``), the map is advected
by ``v`` for unit time from the initial map. The advection ``d_t Phi + D Phi v = 0`` is solved in
its Lagrangian form: ``Phi(x, 1) = Phi_0(psi(x))`` where ``psi`` is the identity map advected by
the same equation, integrated by ``time_steps`` semi-Lagrangian steps
``psi_{k+1}(x) = psi_k(x - dt v(x - dt/2 v(x)))`` (second order, exact for a constant velocity).
Keeping the affine part ``Phi_0`` analytic (``u = a(x) + A d(x)``) means it is never
interpolated, neither in the integration nor when the half-resolution map is upsampled.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..core import (
    about_centre,
    affine_to_field,
    compose,
    gaussian_matrix,
    matmul_along,
    resize,
    resize_separable,
    resized_spacing,
    warp_image,
)
from ..core import compose_affine_field as compose_with_affine
from .blocks import ConvBlock, FieldHead, ResidualBlock, upsample_to

# multi-Gaussian kernel of the paper: standard deviations as fractions of the image extent
DEFAULT_SIGMAS = (0.05, 0.1, 0.15, 0.2, 0.25)
DEFAULT_SIGMA_WEIGHTS = (0.067, 0.133, 0.2, 0.267, 0.333)


# ----------------------------------------------------------------------------- affine geometry


def grid_frame(shape: Sequence[int], spacing: Sequence[float]) -> tuple[Tensor, float]:
    """``(centre (D,) mm, R mm)`` of the normalised frame of a grid with origin 0."""
    extent = [(n - 1) * s for n, s in zip(shape, spacing, strict=True)]
    centre = torch.tensor([e / 2 for e in extent], dtype=torch.float64)
    return centre, max(max(extent) / 2, 1e-6)


def compose_affine(a_new: Tensor, b_new: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The paper's update (Eq. 1): ``A_t = A~ A_{t-1}``, ``b_t = A~ b_{t-1} + b~``.

    Shapes ``(N, D, D)`` and ``(N, D)``.
    """
    return a_new @ a, (a_new @ b.unsqueeze(-1)).squeeze(-1) + b_new


def affine_matrix_mm(
    a: Tensor, b: Tensor, shape: Sequence[int], spacing: Sequence[float]
) -> Tensor:
    """``(N, D+1, D+1)`` physical matrix (grid frame, mm) of normalised-frame ``(A, b)``.

    ``x -> A (x - c) + c + R b``.
    """
    centre, radius = grid_frame(shape, spacing)
    return about_centre(a, centre.to(a), radius * b)


def affine_field(a: Tensor, b: Tensor, shape: Sequence[int], spacing: Sequence[float]) -> Tensor:
    """``(N, D, *shape)`` displacement (mm) of normalised-frame ``(A, b)`` on a grid."""
    return affine_to_field(affine_matrix_mm(a, b, shape, spacing), shape, spacing)


def compose_affine_field(
    a: Tensor, b: Tensor, inner: Tensor, spacing: Sequence[float]
) -> Tensor:
    """Field of ``M o (id + d)`` with ``M`` the affine: ``a(x) + A d(x)``, exact (no resampling)."""
    return compose_with_affine(affine_field(a, b, inner.shape[2:], spacing), a, inner)


# ----------------------------------------------------------------------------- vSVF geometry


def multi_gaussian_smooth(
    momentum: Tensor,
    spacing: Sequence[float],
    sigmas_mm: Sequence[float],
    weights: Sequence[float],
) -> Tensor:
    """``v = K m = sum_k w_k G_k G_k m``, ``G_k`` a Gaussian of ``sigma_k / sqrt(2)`` (mm).

    This is the vSVF's ``(L^+ L)^{-1}``: each ``G_k G_k`` is a Gaussian of ``sigma_k``. Applying
    the half-width Gaussian twice with half-sample mirrored borders makes ``G_k`` a symmetric
    matrix, so ``K`` is positive semi-definite and the regulariser ``<m, K m> =
    sum_k w_k |G_k m|^2`` can never be negative. (One replicate-padded Gaussian is not symmetric;
    its quadratic form has negative directions that a network learns to exploit, driving the
    regulariser to minus infinity.) Weights are normalised to sum to 1, so a constant momentum
    gives the same velocity.
    """
    total = float(sum(weights))
    shape = tuple(momentum.shape[2:])
    out = momentum.new_zeros(momentum.shape)
    for s, w in zip(sigmas_mm, weights, strict=True):
        g = momentum
        for axis, sp in enumerate(spacing):
            # G_k G_k along this axis as one matrix: a matrix product instead of two
            # convolutions with kernels up to 6 sigma long (5x faster forward and backward)
            g = matmul_along(g, _gaussian_squared(shape[axis], s / math.sqrt(2.0) / sp), axis)
        out = out + (w / total) * g
    return out


@functools.lru_cache(maxsize=64)
def _gaussian_squared(n: int, sigma: float) -> Tensor:
    """The half-sample mirrored Gaussian of ``sigma`` samples applied twice, ``(n, n)``."""
    g = gaussian_matrix(n, sigma, truncate=3.0, padding_mode="symmetric")
    return g @ g


def advect_identity(
    velocity: Tensor, spacing: Sequence[float], steps: int = 10, start: Tensor | None = None
) -> Tensor:
    """Displacement of the map advected by ``d_t psi + D psi v = 0`` for unit time.

    Semi-Lagrangian steps ``psi_{k+1}(x) = psi_k(x - dt v(x - dt/2 v(x)))``, starting from
    ``id + start`` (default the identity). For a constant ``v`` the result is exactly
    ``start(x - v) - v``.

    Args:
        velocity: ``(N, D, *S)`` mm per unit time.
        spacing: voxel size (mm).
        steps: time steps.
        start: ``(N, D, *S)`` displacement of the initial map (mm) or None.
    """
    dt = 1.0 / steps
    half = warp_image(velocity, -0.5 * dt * velocity, spacing, padding="border")
    back = -dt * half
    d = back if start is None else compose(start, back, spacing)
    for _ in range(steps - 1):
        d = compose(d, back, spacing)
    return d


def inverse_consistency(u_st: Tensor, u_ts: Tensor, spacing: Sequence[float]) -> Tensor:
    """``Phi^{-1} o (Phi^{ts})^{-1} - id`` as a displacement ``(N, D, *S)`` in mm."""
    return compose(u_st, u_ts, spacing)


# ----------------------------------------------------------------------------- networks


class AffineNet(nn.Module):
    """One step of the multi-step affine network: ``(fixed, warped moving) -> (A~, b~)``.

    Four stride-2 conv blocks on the pair resized to ``shape``, then two linear layers; the last
    one starts at zero, so the untrained net outputs the identity (``A~ = I``, ``b~ = 0``).
    """

    def __init__(
        self, dims: int = 3, shape: Sequence[int] = (32, 32, 32),
        channels: Sequence[int] = (16, 32, 64, 64), hidden: int = 64,
    ) -> None:
        super().__init__()
        self.dims = dims
        self.shape = tuple(int(n) for n in shape)
        layers: list[nn.Module] = [ConvBlock(2, channels[0], dims)]
        c_in = channels[0]
        for c in channels:
            layers.append(ConvBlock(c_in, c, dims, stride=2))
            c_in = c
        self.features = nn.Sequential(*layers)
        cells = math.prod(math.ceil(n / 2 ** len(channels)) for n in self.shape)
        self.fc = nn.Sequential(nn.Linear(c_in * cells, hidden), nn.LeakyReLU(0.2))
        self.head = nn.Linear(hidden, dims * dims + dims)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, pair: Tensor) -> tuple[Tensor, Tensor]:
        """``pair`` ``(N, 2, *shape)`` -> ``A~`` ``(N, D, D)``, ``b~`` ``(N, D)``."""
        d = self.dims
        theta = self.head(self.fc(self.features(pair).flatten(1)))
        eye = torch.eye(d, device=pair.device, dtype=pair.dtype)
        return eye + theta[:, : d * d].view(-1, d, d), theta[:, d * d:]


class MomentumUNet(nn.Module):
    """Four-level U-Net with residual links whose last decoder level is removed.

    ``(N, 2, *S) -> (N, D, *S/2)``: the momentum at half resolution. ``S`` must be divisible by
    8. The last two convolutions have no activation (a momentum is signed).
    """

    def __init__(self, dims: int = 3, channels: Sequence[int] = (16, 32, 32, 32)) -> None:
        super().__init__()
        c0, c1, c2, c3 = (int(c) for c in channels)
        self.dims = dims
        self.enc0 = ResidualBlock(2, c0, dims)
        self.down1 = nn.Sequential(ConvBlock(c0, c1, dims, stride=2), ResidualBlock(c1, c1, dims))
        self.down2 = nn.Sequential(ConvBlock(c1, c2, dims, stride=2), ResidualBlock(c2, c2, dims))
        self.down3 = nn.Sequential(ConvBlock(c2, c3, dims, stride=2), ResidualBlock(c3, c3, dims))
        self.dec2 = ResidualBlock(c3 + c2, c2, dims)
        self.dec1 = ResidualBlock(c2 + c1, c1, dims)
        self.out1 = ConvBlock(c1, c1, dims, act="none")
        self.out2 = FieldHead(c1, dims, init_std=1e-4)

    def forward(self, pair: Tensor) -> Tensor:
        if any(n % 8 for n in pair.shape[2:]):
            raise ValueError(
                f"MomentumUNet needs a grid divisible by 8, got {tuple(pair.shape[2:])}"
            )
        e0 = self.enc0(pair)
        e1 = self.down1(e0)
        e2 = self.down2(e1)
        e3 = self.down3(e2)
        x = self.dec2(torch.cat([upsample_to(e3, e2.shape[2:]), e2], 1))
        x = self.dec1(torch.cat([upsample_to(x, e1.shape[2:]), e1], 1))
        return self.out2(self.out1(x))


class AvsmNet(nn.Module):
    """Multi-step affine network, optionally followed by the (multi-step) vSVF.

    Args:
        dims: 2 or 3.
        affine_shape: grid the affine net sees (the pair is resized to it).
        affine_channels: conv widths of the affine net.
        unet_channels: widths of the momentum U-Net; empty: no vSVF part (affine-only model).
        sigmas, sigma_weights: multi-Gaussian kernel (fractions of the largest image extent).
        time_steps: advection steps per vSVF step.
    """

    def __init__(
        self,
        dims: int = 3,
        affine_shape: Sequence[int] = (32, 32, 32),
        affine_channels: Sequence[int] = (16, 32, 64, 64),
        unet_channels: Sequence[int] = (16, 32, 32, 32),
        sigmas: Sequence[float] = DEFAULT_SIGMAS,
        sigma_weights: Sequence[float] = DEFAULT_SIGMA_WEIGHTS,
        time_steps: int = 10,
    ) -> None:
        super().__init__()
        self.dims = dims
        self.affine = AffineNet(dims, affine_shape, affine_channels)
        self.momentum = MomentumUNet(dims, unet_channels) if unet_channels else None
        self.sigmas = tuple(float(s) for s in sigmas)
        self.sigma_weights = tuple(float(w) for w in sigma_weights)
        self.time_steps = int(time_steps)

    # -- affine ----------------------------------------------------------------------------------

    def predict_affine(
        self, fixed: Tensor, moving: Tensor, spacing: Sequence[float], steps: int
    ) -> list[tuple[Tensor, Tensor]]:
        """``[(A_t, b_t)]`` for ``t = 1..steps`` (normalised frame). The moving image is always
        resampled from the original with the current composed affine (never re-warped)."""
        shape = tuple(fixed.shape[2:])
        a_shape = self.affine.shape
        sp = resized_spacing(shape, spacing, a_shape)
        # the matrix form of the anti-aliased resize (same values, several times faster)
        f = resize_separable(fixed, a_shape)
        m = resize_separable(moving, a_shape)
        n, d = fixed.shape[0], self.dims
        a = torch.eye(d, device=fixed.device, dtype=fixed.dtype).expand(n, d, d)
        b = fixed.new_zeros(n, d)
        out = []
        for t in range(steps):
            warped = m if t == 0 else warp_image(m, affine_field(a, b, a_shape, sp), sp)
            a_new, b_new = self.affine(torch.cat([f, warped], 1))
            a, b = compose_affine(a_new, b_new, a, b)
            out.append((a, b))
        return out

    # -- vSVF ------------------------------------------------------------------------------------

    def velocity(self, momentum: Tensor, spacing: Sequence[float], extent_mm: float) -> Tensor:
        """Normalised velocity ``K * m`` (same units as ``m``) on the momentum grid."""
        return multi_gaussian_smooth(
            momentum, spacing, [s * extent_mm for s in self.sigmas], self.sigma_weights
        )

    def vsvf(
        self,
        fixed: Tensor,
        moving: Tensor,
        spacing: Sequence[float],
        a: Tensor,
        b: Tensor,
        steps: int,
    ) -> list[dict[str, Tensor]]:
        """Multi-step vSVF from the affine ``(A, b)``; one dict per step with ``field``
        ``(N, D, *S)`` mm (affine included), ``deform`` (the non-affine part ``d`` at half
        resolution, mm), ``momentum`` and ``velocity`` (normalised units)."""
        if self.momentum is None:
            raise ValueError("this model has no vSVF part (an affine-only model)")
        shape = tuple(fixed.shape[2:])
        low = tuple(n // 2 for n in shape)
        low_sp = resized_spacing(shape, spacing, low)
        _, radius = grid_frame(shape, spacing)
        extent = 2 * radius
        field = affine_field(a, b, shape, spacing)
        d_low = None
        out = []
        for _ in range(steps):
            warped = warp_image(moving, field, spacing)
            m = self.momentum(torch.cat([fixed, warped], 1))
            v = self.velocity(m, low_sp, extent)
            d_low = advect_identity(v * extent, low_sp, self.time_steps, d_low)
            d_full = resize(d_low, shape, antialias=False)
            field = compose_affine_field(a, b, d_full, spacing)
            out.append({"field": field, "deform": d_low, "momentum": m, "velocity": v})
        return out


__all__ = [
    "DEFAULT_SIGMAS",
    "DEFAULT_SIGMA_WEIGHTS",
    "AffineNet",
    "AvsmNet",
    "MomentumUNet",
    "advect_identity",
    "affine_field",
    "affine_matrix_mm",
    "compose_affine",
    "compose_affine_field",
    "grid_frame",
    "inverse_consistency",
    "multi_gaussian_smooth",
]
