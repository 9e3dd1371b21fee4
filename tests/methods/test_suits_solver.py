"""SUITS building blocks: MIND-SSC by hand, the Gauss-Newton layer against a dense solve."""

import itertools

import numpy as np
import pytest
import torch

from napari_deepreg.losses.functional import mind_ssc
from napari_deepreg.methods.suits.solver import (
    GaussNewtonSolve,
    apply_system,
    conjugate_gradient,
    gauss_newton_step,
    laplacian,
)


def test_mind_ssc_matches_hand_computation_2d():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 9, size=(9, 9)).astype(np.float64)
    desc = mind_ssc(torch.from_numpy(img)[None, None], radius=0, dilation=1)[0, :, 4, 4]
    # by hand at (4, 4): 4-neighbourhood, the 4 non-opposite pairs, D = (I(x+p) - I(x+q))^2
    hood = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    dists = [(img[4 + p[0], 4 + p[1]] - img[4 + q[0], 4 + q[1]]) ** 2
             for p, q in itertools.combinations(hood, 2) if p[0] != -q[0] or p[1] != -q[1]]
    dists = np.array(dists) - min(dists)
    expected = np.exp(-dists / max(dists.mean(), 1e-12))
    assert len(expected) == desc.numel() == 4
    np.testing.assert_allclose(np.sort(desc.numpy()), np.sort(expected), rtol=1e-6)


def _dense(grad, lam, shape):
    n = int(np.prod(shape))
    cols = [apply_system(grad, lam, torch.eye(n, dtype=grad.dtype)[i].reshape(1, *shape))
            .reshape(-1) for i in range(n)]
    return torch.stack(cols, 1)


@pytest.mark.parametrize("spatial", [(4, 5), (3, 3, 4)])
def test_cg_matches_dense_solve(spatial):
    torch.manual_seed(0)
    d = len(spatial)
    grad = torch.randn(1, 3, d, *spatial, dtype=torch.float64)
    b = torch.randn(1, d, *spatial, dtype=torch.float64)
    a = _dense(grad, 0.7, (d, *spatial))
    assert torch.allclose(a, a.T)  # symmetric: the backward may solve with A
    z, iters = conjugate_gradient(grad, 0.7, b, tol=1e-12, max_iter=500)
    expected = torch.linalg.solve(a, b.reshape(-1))
    torch.testing.assert_close(z.reshape(-1), expected, rtol=1e-8, atol=1e-9)
    assert 0 < iters < a.shape[0] + 5


def test_laplacian_is_graph_laplacian():
    u = torch.tensor([[[1.0, 4.0, 2.0]]])
    torch.testing.assert_close(laplacian(u), torch.tensor([[[-3.0, 5.0, -2.0]]]))
    assert laplacian(torch.ones(1, 2, 3, 4)).abs().max() == 0  # constants are in its null space


def test_solver_layer_gradcheck():
    torch.manual_seed(1)
    grad = torch.randn(1, 2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda g, r: GaussNewtonSolve.apply(g, r, 0.5, 1e-13, 500), (grad, b))


def test_step_recovers_a_translation_and_is_differentiable():
    # a smooth blob moved by +1 voxel along x: one regularised step points back by about 1
    y, x = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    blob = lambda cx: torch.exp(-((x - cx) ** 2 + (y - 12) ** 2) / 18.0)  # noqa: E731
    fix = blob(12.0)[None, None].double()
    mov = blob(11.0)[None, None].double().requires_grad_(True)
    du = gauss_newton_step(fix, mov, torch.zeros(1, 2, 24, 24, dtype=torch.float64), lam=0.05)
    centre = du[0, :, 10:15, 10:15].mean((1, 2))
    assert abs(centre[1].item() + 1.0) < 0.35 and abs(centre[0].item()) < 0.05
    du.sum().backward()
    assert mov.grad is not None and torch.isfinite(mov.grad).all()


def test_step_rejects_bad_input():
    f = torch.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match="lambda"):
        gauss_newton_step(f, f, torch.zeros(1, 2, 4, 4), lam=0)
    with pytest.raises(ValueError, match="displacement"):
        gauss_newton_step(f, f, torch.zeros(1, 3, 4, 4), lam=1)
