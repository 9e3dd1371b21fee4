"""Analytic tests of field operations: composition, SVF exponential, B-splines, Jacobian."""

import numpy as np
import pytest
import torch

from napari_deepreg.core import (
    affine_to_field,
    bspline_control_shape,
    bspline_to_field,
    compose,
    exp_svf,
    gaussian_smooth,
    jacobian_determinant,
    resize,
    resized_spacing,
    world_grid,
)


@pytest.mark.parametrize("ndim", [2, 3])
def test_scaling_and_squaring_of_constant_velocity_is_that_translation(ndim):
    shape = (16,) * ndim
    v = torch.zeros(1, ndim, *shape)
    for i in range(ndim):
        v[:, i] = 0.7 * (i + 1) - 1.0
    u = exp_svf(v, spacing=(1.3,) * ndim, steps=6)
    torch.testing.assert_close(u, v, atol=1e-5, rtol=0)


def test_compose_translations_adds_and_identity_is_neutral():
    shape = (12, 13, 14)
    u = torch.zeros(1, 3, *shape)
    v = torch.zeros(1, 3, *shape)
    u[:, 0], v[:, 2] = 1.5, -2.0
    w = compose(u, v, (1.0, 1.0, 1.0))
    torch.testing.assert_close(w, u + v)
    rnd = torch.randn(1, 3, *shape)
    torch.testing.assert_close(compose(rnd, torch.zeros_like(rnd)), rnd)
    torch.testing.assert_close(compose(torch.zeros_like(rnd), rnd), rnd)


def test_compose_of_affines_is_matrix_product():
    shape, spacing = (15, 16, 17), (1.0, 1.2, 0.8)
    a = torch.eye(4)
    a[:3, :3] += torch.tensor([[0.02, 0.01, 0.0], [0.0, -0.03, 0.01], [0.01, 0.0, 0.02]])
    a[:3, 3] = torch.tensor([0.5, -0.3, 0.2])
    b = torch.eye(4)
    b[:3, :3] += torch.tensor([[-0.01, 0.0, 0.02], [0.01, 0.02, 0.0], [0.0, 0.01, -0.02]])
    b[:3, 3] = torch.tensor([-0.2, 0.4, 0.1])
    w = compose(affine_to_field(a, shape, spacing), affine_to_field(b, shape, spacing), spacing)
    ref = affine_to_field(a @ b, shape, spacing)
    inner = (slice(None), slice(None)) + (slice(2, -2),) * 3
    torch.testing.assert_close(w[inner], ref[inner], atol=1e-4, rtol=0)


def test_bspline_of_constant_control_points_is_constant_and_reproduces_linear():
    shape, stride = (23, 30, 17), (4, 5, 3)
    cshape = bspline_control_shape(shape, stride)
    const = torch.full((1, 3, *cshape), -1.75)
    torch.testing.assert_close(
        bspline_to_field(const, stride, shape), torch.full((1, 3, *shape), -1.75)
    )
    # control point i sits at voxel (i - 1) * stride: a linear function is reproduced exactly
    ctrl = torch.zeros(1, 1, *cshape)
    pos = (torch.arange(cshape[1]) - 1.0) * stride[1]
    ctrl[0, 0] = (0.3 * pos + 2.0).view(1, -1, 1)
    dense = bspline_to_field(ctrl, stride, shape)[0, 0]
    expect = (0.3 * torch.arange(shape[1]) + 2.0).view(1, -1, 1).expand(shape)
    torch.testing.assert_close(dense, expect, atol=1e-5, rtol=0)


def test_bspline_rejects_wrong_control_shape():
    with pytest.raises(ValueError, match="control grid"):
        bspline_to_field(torch.zeros(1, 2, 5, 5), 4, (32, 32))


def test_jacobian_of_affine_field_equals_its_determinant():
    a = torch.eye(4, dtype=torch.float64)
    a[:3, :3] = torch.tensor([[1.1, 0.2, 0.0], [0.05, 0.9, 0.1], [0.0, 0.1, 1.2]])
    a[:3, 3] = torch.tensor([3.0, -1.0, 2.0])
    field = affine_to_field(a, (10, 12, 14), (1.0, 2.0, 3.0), (5.0, 5.0, 5.0))
    jac = jacobian_determinant(field, (1.0, 2.0, 3.0))
    torch.testing.assert_close(jac, torch.full_like(jac, float(torch.det(a[:3, :3]))))
    a2 = torch.tensor([[0.8, -0.3, 1.0], [0.2, 1.3, -2.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    jac2 = jacobian_determinant(affine_to_field(a2, (9, 11), (0.5, 2.0)), (0.5, 2.0))
    torch.testing.assert_close(jac2, torch.full_like(jac2, 0.8 * 1.3 + 0.3 * 0.2))


def test_jacobian_detects_folds():
    shape = (20, 20)
    field = torch.zeros(1, 2, *shape)
    x = world_grid(shape)[1]
    field[0, 1] = -2.0 * x  # phi_x = -x: a reflection, J = -1
    assert float(jacobian_determinant(field).max()) == pytest.approx(-1.0)


def test_gaussian_smooth_keeps_constants_and_mass():
    const = torch.full((1, 2, 9, 10, 11), 3.0)
    torch.testing.assert_close(gaussian_smooth(const, 1.5), const)
    impulse = torch.zeros(1, 1, 31, 31)
    impulse[0, 0, 15, 15] = 1.0
    out = gaussian_smooth(impulse, (2.0, 1.0))
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-5)
    var_y = float((out[0, 0].sum(1) * (torch.arange(31) - 15.0) ** 2).sum())
    assert var_y == pytest.approx(4.0, rel=0.02)


@pytest.mark.parametrize("sigma", [1.5, 6.0])  # kernel radius within and wider than the axis
def test_symmetric_padding_mirrors_half_sample_and_gives_a_symmetric_operator(sigma):
    n = 9
    x = torch.arange(n, dtype=torch.float64).reshape(1, 1, n)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 1, n)
    k = gaussian_smooth(basis, sigma, padding_mode="symmetric").reshape(n, n)
    torch.testing.assert_close(k, k.T, atol=1e-12, rtol=0)
    torch.testing.assert_close(k.sum(1), torch.ones(n, dtype=torch.float64))
    # a linear ramp's mean is kept (column sums are 1 too)
    y = gaussian_smooth(x, sigma, padding_mode="symmetric")
    torch.testing.assert_close(y.sum(), x.sum())


def test_resize_keeps_corners_and_spacing_formula():
    x = world_grid((11, 21))[None, 1:2]  # x coordinate, linear
    small = resize(x, (6, 11), antialias=False)
    torch.testing.assert_close(small[0, 0, 0], torch.arange(0, 21, 2.0))
    assert resized_spacing((11, 21), (1.0, 1.0), (6, 11)) == (2.0, 2.0)
    assert np.allclose(resized_spacing((97,), (2.0,), (49,)), (4.0,))
