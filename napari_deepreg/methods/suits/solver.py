"""Diffusion-regularised Gauss-Newton step of SUITS (Blendowski et al. 2020, eq. 6) as a layer.

The update ``z = Δu`` solves ``A z = b`` with, per voxel, ``A = Σ_c g_c g_cᵀ + λ L`` where
``g_c`` is the spatial gradient of moving feature channel ``c`` (a ``D``-vector) and ``L`` the
graph Laplacian of the voxel grid (6-neighbourhood in 3D, 4 in 2D, zero-flux borders: degree
minus adjacency, symmetric positive semi-definite), and
``b = -Σ_c (R_mov,c - R_fix,c) g_c - λ L u``.

``A`` is symmetric positive definite as soon as ``λ > 0`` and one gradient is non-zero, so it is
solved matrix-free with Jacobi-preconditioned conjugate gradients (only convolution-free tensor
ops: runs on CPU and GPU, batched). ``A`` never exists as a matrix. :class:`GaussNewtonSolve` is an
autograd function whose backward solves ``Aᵀ w = ∂ℓ/∂z`` (eq. 8; ``Aᵀ = A``) instead of
unrolling the solver, and returns ``∂ℓ/∂b = w`` and, through ``∂ℓ/∂A = -w zᵀ`` (eq. 9)
restricted to the voxel-wise data term, ``∂ℓ/∂g_c = -(w (g_c·z) + z (g_c·w))``.

Why CG and not the paper's algebraic multigrid: on the 3D sample's update grid (36k unknowns,
1 CPU thread, tolerance 1e-3, ``benchmarks/suits_solver.py``) Jacobi-PCG needs 35 iterations /
48 ms at λ = 0.1 and 119 / 132 ms at λ = 10 (plain CG 50 / 74 ms and 123 / 189 ms; a dense solve
of the 2D grid's 1092 unknowns alone takes 63 ms). The update grid is 4x coarser than the
image, so the systems stay small and an AMG hierarchy (setup, sparse matrices, no GPU-friendly
torch implementation) would not pay off; CG needs only the operator, runs batched on any device.
"""

from __future__ import annotations

import torch
from torch import Tensor


def laplacian(u: Tensor) -> Tensor:
    """Graph Laplacian ``L u`` (degree minus neighbours) of ``(N, K, *spatial)``, zero flux."""
    out = torch.zeros_like(u)
    for axis in range(2, u.ndim):
        if u.shape[axis] < 2:
            continue
        diff = u.narrow(axis, 1, u.shape[axis] - 1) - u.narrow(axis, 0, u.shape[axis] - 1)
        # edge (i, i+1) adds u_i - u_{i+1} at i and u_{i+1} - u_i at i+1
        out.narrow(axis, 0, u.shape[axis] - 1).sub_(diff)
        out.narrow(axis, 1, u.shape[axis] - 1).add_(diff)
    return out


def _laplacian_degree(u: Tensor) -> Tensor:
    """Diagonal of ``L`` (number of grid neighbours), shaped like ``u``'s spatial part."""
    deg = torch.zeros((1, 1, *u.shape[2:]), dtype=u.dtype, device=u.device)
    for axis in range(2, u.ndim):
        n = u.shape[axis]
        if n < 2:
            continue
        deg.narrow(axis, 0, n - 1).add_(1)
        deg.narrow(axis, 1, n - 1).add_(1)
    return deg


def apply_system(grad: Tensor, lam: float, z: Tensor) -> Tensor:
    """``A z`` for feature gradients ``grad`` ``(N, C, D, *sp)`` and ``z`` ``(N, D, *sp)``."""
    proj = (grad * z.unsqueeze(1)).sum(2, keepdim=True)  # g_c · z, (N, C, 1, *spatial)
    return (grad * proj).sum(1) + lam * laplacian(z)


def conjugate_gradient(
    grad: Tensor, lam: float, b: Tensor, tol: float = 1e-4, max_iter: int = 200,
    precondition: bool = True,
) -> tuple[Tensor, int]:
    """Solve ``A z = b`` by Jacobi-preconditioned CG; returns ``(z, iterations)``.

    Stops when ``‖r‖ ≤ tol ‖b‖`` for every batch element, or after ``max_iter`` iterations.
    ``precondition=False`` gives plain CG (for comparison only).
    """
    batch_dims = tuple(range(1, b.ndim))
    diag = grad.pow(2).sum(1) + lam * _laplacian_degree(b)
    inv_diag = 1.0 / diag.clamp_min(torch.finfo(b.dtype).tiny * 1e6)
    if not precondition:
        inv_diag = torch.ones_like(inv_diag)
    z = torch.zeros_like(b)
    r = b.clone()
    s = inv_diag * r
    p = s.clone()
    rs = (r * s).sum(batch_dims, keepdim=True)
    b_norm = b.pow(2).sum(batch_dims, keepdim=True).sqrt()
    it = 0
    for it in range(1, max_iter + 1):
        if bool((r.pow(2).sum(batch_dims, keepdim=True).sqrt() <= tol * b_norm).all()):
            it -= 1
            break
        ap = apply_system(grad, lam, p)
        pap = (p * ap).sum(batch_dims, keepdim=True)
        alpha = torch.where(pap > 0, rs / pap.clamp_min(torch.finfo(b.dtype).tiny), 0.0)
        z = z + alpha * p
        r = r - alpha * ap
        s = inv_diag * r
        rs_new = (r * s).sum(batch_dims, keepdim=True)
        beta = torch.where(rs > 0, rs_new / rs.clamp_min(torch.finfo(b.dtype).tiny), 0.0)
        p = s + beta * p
        rs = rs_new
    return z, it


class GaussNewtonSolve(torch.autograd.Function):
    """``z = A(grad, λ)⁻¹ b`` with an adjoint-solve backward (no unrolled CG)."""

    @staticmethod
    def forward(ctx, grad: Tensor, b: Tensor, lam: float, tol: float, max_iter: int):  # noqa: D102
        with torch.no_grad():
            z, _ = conjugate_gradient(grad, lam, b, tol, max_iter)
        ctx.save_for_backward(grad, z)
        ctx.settings = (lam, tol, max_iter)
        return z

    @staticmethod
    def backward(ctx, grad_z: Tensor):  # noqa: D102
        grad, z = ctx.saved_tensors
        lam, tol, max_iter = ctx.settings
        with torch.no_grad():
            w, _ = conjugate_gradient(grad, lam, grad_z.contiguous(), tol, max_iter)  # Aᵀ = A
        grad_g = None
        if ctx.needs_input_grad[0]:
            gz = (grad * z.unsqueeze(1)).sum(2, keepdim=True)
            gw = (grad * w.unsqueeze(1)).sum(2, keepdim=True)
            grad_g = -(w.unsqueeze(1) * gz + z.unsqueeze(1) * gw)
        return grad_g, w, None, None, None


def gauss_newton_step(
    r_fix: Tensor,
    r_mov: Tensor,
    u: Tensor,
    lam: float,
    spacing: tuple[float, ...] | None = None,
    tol: float = 1e-4,
    max_iter: int = 200,
) -> Tensor:
    """Δu of eq. (6) from fixed and (already warped) moving features ``(N, C, *spatial)``.

    ``u`` ``(N, D, *spatial)`` is the current displacement in voxels of this grid (channel order
    follows the spatial axes); the result is in the same units. Feature gradients are central
    differences (one-sided at borders), divided by ``spacing`` if given.
    """
    if r_fix.shape != r_mov.shape:
        raise ValueError(f"feature shapes differ: {tuple(r_fix.shape)} vs {tuple(r_mov.shape)}")
    ndim = r_mov.ndim - 2
    if u.shape[1] != ndim or u.shape[2:] != r_mov.shape[2:]:
        raise ValueError(
            f"displacement {tuple(u.shape)} does not match features {tuple(r_mov.shape)}")
    if lam <= 0:
        raise ValueError(f"lambda must be > 0, got {lam}")
    sp = spacing or (1.0,) * ndim
    grads = torch.gradient(r_mov, dim=tuple(range(2, r_mov.ndim)), spacing=list(sp))
    grad = torch.stack(grads, 2)  # (N, C, D, *spatial)
    b = -((r_mov - r_fix).unsqueeze(2) * grad).sum(1) - lam * laplacian(u)
    return GaussNewtonSolve.apply(grad, b, float(lam), tol, max_iter)
