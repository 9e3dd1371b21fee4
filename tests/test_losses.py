"""Losses: known answers on analytic phantoms, invariances, gradients, the name registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_deepreg.core import gaussian_smooth, world_grid
from napari_deepreg.losses import (
    LOSSES,
    bending_energy,
    box_mean,
    diffusion,
    lncc,
    local_moments,
    mind_ssc,
    mind_ssc_loss,
    mk_lncc,
    mse,
    ncc,
    new_loss,
    one_hot,
    soft_dice,
)

SHAPES = {2: (24, 20), 3: (14, 12, 10)}


def smooth_image(ndim: int, seed: int = 0) -> torch.Tensor:
    """A smooth random image ``(1, 1, *S)`` in [0, 1] with structure at several scales."""
    g = torch.Generator().manual_seed(seed)
    x = gaussian_smooth(torch.rand(1, 1, *SHAPES[ndim], generator=g), 1.5)
    return (x - x.min()) / (x.max() - x.min())


def shifted(x: torch.Tensor, by: int = 2) -> torch.Tensor:
    return torch.roll(x, by, dims=2)


SIMILARITIES = {
    "mse": mse,
    "ncc": ncc,
    "lncc": lambda a, b: lncc(a, b, 5),
    "mk_lncc": lambda a, b: mk_lncc(a, b, (3, 5, 7)),
    "mind_ssc": mind_ssc_loss,
}


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("name", sorted(SIMILARITIES))
def test_similarity_zero_for_identical_and_positive_otherwise(name, ndim):
    loss = SIMILARITIES[name]
    x = smooth_image(ndim)
    same = loss(x, x.clone())
    other = loss(x, shifted(x))
    assert same.ndim == 0
    assert abs(same.item()) < 1e-6
    assert other.item() > 1e-3


def test_ncc_affine_intensity_invariance_and_range():
    x = smooth_image(3)
    y = shifted(x)
    assert ncc(x, 3.0 * x + 0.5).item() == pytest.approx(0.0, abs=1e-5)
    assert ncc(x, 3.0 * y + 0.5).item() == pytest.approx(ncc(x, y).item(), abs=1e-5)
    # an inverted copy is the worst case for 1 - NCC
    assert ncc(x, 1 - x).item() == pytest.approx(2.0, abs=1e-5)


def test_box_mean_matches_uniform_filter_inside_and_keeps_constants():
    x = torch.rand(1, 1, 12, 11, 10, dtype=torch.float64)
    ours = box_mean(x, 5)[0, 0].numpy()
    ref = ndimage.uniform_filter(x[0, 0].numpy(), size=5)
    np.testing.assert_allclose(ours[2:-2, 2:-2, 2:-2], ref[2:-2, 2:-2, 2:-2], rtol=1e-12)
    const = torch.full((1, 2, 9, 7), 0.3)
    np.testing.assert_allclose(box_mean(const, (5, 3)).numpy(), 0.3, rtol=1e-6)


@pytest.mark.parametrize("ndim", [2, 3])
def test_lncc_identical_is_its_optimum(ndim):
    x = smooth_image(ndim)
    noise = 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert lncc(x, x, 5).item() == 0.0
    assert lncc(x, x + noise, 5).item() > 1e-3
    # local (not just global) affine intensity changes of either sign are ignored
    assert lncc(x, 2 - 4 * x, 5).item() == pytest.approx(0.0, abs=1e-5)
    # stationary point: the gradient vanishes at b = a
    b = x.clone().double().requires_grad_(True)
    lncc(x.double(), b, 5).backward()
    assert b.grad.abs().max().item() < 1e-8


def test_lncc_with_precomputed_moments_matches():
    x, y = smooth_image(3), shifted(smooth_image(3, seed=4))
    moments = local_moments(x, 5)
    assert lncc(x, y, 5, a_moments=moments).item() == pytest.approx(lncc(x, y, 5).item(), abs=1e-6)
    with pytest.raises(ValueError, match="window"):
        lncc(x, y, 7, a_moments=moments)


def test_mk_lncc_is_the_weighted_sum():
    x, y = smooth_image(2), shifted(smooth_image(2))
    expected = 0.2 * lncc(x, y, 3) + 0.8 * lncc(x, y, 7)
    assert mk_lncc(x, y, (3, 7), (0.2, 0.8)).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError):
        mk_lncc(x, y, (3, 7), (1.0,))


@pytest.mark.parametrize("ndim,channels", [(2, 4), (3, 12)])
def test_mind_descriptor_shape_and_range(ndim, channels):
    x = smooth_image(ndim)
    d = mind_ssc(x)
    assert d.shape == (1, channels, *SHAPES[ndim])
    assert d.min().item() > 0
    # normalised per voxel: the most similar pair gets 1
    np.testing.assert_allclose(d.amax(1).numpy(), 1.0, rtol=1e-6)


@pytest.mark.parametrize("ndim", [2, 3])
def test_mind_is_contrast_invariant_where_mse_is_not(ndim):
    x = smooth_image(ndim)
    inverted = 1 - x
    misaligned = shifted(x, 1)
    # in intensity terms the inverted copy is far worse than a one-voxel shift ...
    assert mse(x, inverted).item() > 3 * mse(x, misaligned).item()
    # ... but its MIND descriptors are the same, and the shift is what MIND sees
    assert mind_ssc_loss(x, inverted).item() < 1e-3 * mind_ssc_loss(x, misaligned).item()
    assert mind_ssc_loss(x, inverted, penalty="l1").item() < 1e-3 * mind_ssc_loss(
        x, misaligned, penalty="l1"
    ).item()


def linear_field(matrix: np.ndarray, shape, spacing, offset=None) -> torch.Tensor:
    """``u(x) = M x + c`` sampled on a grid with ``spacing`` (mm), ``(1, D, *shape)`` float64."""
    ndim = len(shape)
    x = world_grid(shape, spacing, dtype=torch.float64).reshape(ndim, -1)
    m = torch.as_tensor(matrix, dtype=torch.float64)
    u = m @ x
    if offset is not None:
        u = u + torch.as_tensor(offset, dtype=torch.float64)[:, None]
    return u.reshape(1, ndim, *shape)


def test_diffusion_constant_and_linear_fields_with_anisotropic_spacing():
    shape, spacing = (9, 8, 7), (2.0, 0.5, 1.25)
    const = torch.full((1, 3, *shape), 4.2, dtype=torch.float64)
    assert diffusion(const, spacing).item() == 0.0
    m = np.array([[0.10, -0.02, 0.03], [0.00, 0.05, 0.01], [-0.04, 0.02, -0.03]])
    u = linear_field(m, shape, spacing, offset=(1.0, -2.0, 3.0))
    assert diffusion(u, spacing).item() == pytest.approx(float((m**2).sum()), rel=1e-10)
    # physical units: the same physical field on a finer grid gives the same value
    fine = linear_field(m, (17, 15, 13), tuple(s / 2 for s in spacing))
    assert diffusion(fine, tuple(s / 2 for s in spacing)).item() == pytest.approx(
        float((m**2).sum()), rel=1e-10
    )
    # wrong spacing -> wrong value: the spacing is really used
    assert diffusion(u, 1.0).item() != pytest.approx(float((m**2).sum()), rel=1e-3)


def test_bending_zero_for_affine_and_known_for_quadratic():
    shape, spacing = (10, 9, 8), (1.5, 0.8, 2.0)
    m = np.array([[0.1, 0.2, -0.3], [0.05, -0.1, 0.0], [0.2, 0.1, 0.1]])
    affine = linear_field(m, shape, spacing, offset=(3.0, 1.0, -2.0))
    assert bending_energy(affine, spacing).item() == pytest.approx(0.0, abs=1e-20)
    x = world_grid(shape, spacing, dtype=torch.float64)
    c = 0.03
    quad = torch.zeros(1, 3, *shape, dtype=torch.float64)
    quad[0, 0] = c * x[0] ** 2  # d2u0/dz2 = 2c
    assert bending_energy(quad, spacing).item() == pytest.approx(4 * c**2, rel=1e-8)
    mixed = torch.zeros(1, 3, *shape, dtype=torch.float64)
    mixed[0, 1] = c * x[1] * x[2]  # d2u1/dydx = c, counted twice
    assert bending_energy(mixed, spacing).item() == pytest.approx(2 * c**2, rel=1e-8)
    # 2D works too
    x2 = world_grid((8, 9), (0.5, 2.0), dtype=torch.float64)
    quad2 = torch.stack([c * x2[1] ** 2, torch.zeros_like(x2[0])])[None]
    assert bending_energy(quad2, (0.5, 2.0)).item() == pytest.approx(4 * c**2, rel=1e-8)


def test_gradcheck_lncc_and_diffusion():
    g = torch.Generator().manual_seed(3)
    a = torch.rand(1, 1, 5, 4, 4, dtype=torch.float64, generator=g)
    b = torch.rand(1, 1, 5, 4, 4, dtype=torch.float64, generator=g).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: lncc(a, t, 3), (b,))
    u = torch.rand(1, 2, 5, 6, dtype=torch.float64, generator=g).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: diffusion(t, (0.7, 1.3)), (u,))
    assert torch.autograd.gradcheck(lambda t: bending_energy(t, (0.7, 1.3)), (u,))


def test_soft_dice_known_values():
    labels = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    labels[..., :2, :] = 1
    target = one_hot(labels, 2)
    assert soft_dice(target, target).item() == pytest.approx(0.0, abs=1e-6)
    # label 1 predicted on half of its true region and nowhere else: Dice = 2*4 / (4 + 8)
    pred_labels = torch.zeros_like(labels)
    pred_labels[..., :1, :] = 1
    pred = one_hot(pred_labels, 2)
    expected_fg = 2 * 4 / (4 + 8)
    assert soft_dice(pred, target, include_background=False).item() == pytest.approx(
        1 - expected_fg, rel=1e-4
    )
    expected_bg = 2 * 8 / (12 + 8)
    assert soft_dice(pred, target).item() == pytest.approx(
        1 - (expected_fg + expected_bg) / 2, rel=1e-4
    )


def test_registry_builds_every_loss_with_parameters():
    x, y = smooth_image(3), shifted(smooth_image(3))
    for name in ("mse", "ncc", "lncc", "mk_lncc", "mind_ssc"):
        assert new_loss(name)(x, x).item() == pytest.approx(0.0, abs=1e-6)
        assert new_loss(name)(x, y).item() > 0
    assert new_loss("lncc", window=3)(x, y).item() == pytest.approx(lncc(x, y, 3).item())
    u = linear_field(np.eye(3) * 0.1, (6, 6, 6), (2.0, 1.0, 1.0))
    reg = new_loss("diffusion", spacing=(2.0, 1.0, 1.0))
    assert reg(u).item() == pytest.approx(0.03, rel=1e-8)
    # a spacing given at call time wins
    assert reg(u, spacing=1.0).item() != pytest.approx(0.03, rel=1e-3)
    assert new_loss("bending")(u, (2.0, 1.0, 1.0)).item() == pytest.approx(0.0, abs=1e-20)
    onehot = one_hot(torch.zeros(1, 1, 3, 3, dtype=torch.long), 2)
    assert new_loss("DICE")(onehot, onehot.clone()).item() < 1e-6
    names = {"mse", "ncc", "lncc", "mk_lncc", "mind_ssc", "diffusion", "bending", "dice",
             "deepsim"}  # deepsim needs an extractor (tests/methods/test_instance_opt_deepsim.py)
    assert set(LOSSES) == names
    with pytest.raises(ValueError, match="unknown loss"):
        new_loss("ssim")
    with pytest.raises(TypeError):
        new_loss("mse", window=3)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="same shape"):
        lncc(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="spatial dims"):
        mse(torch.zeros(4, 4), torch.zeros(4, 4))
