"""Random deformations (napari_deepreg.data.deform): SVF fields, their inverses, affines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_deepreg.core import affine_to_field, compose, jacobian_determinant, warp_image
from napari_deepreg.data.deform import (
    grid_center,
    invert_field,
    random_affine,
    random_affine_field,
    random_svf_field,
    svf_grid_factor,
)
from napari_deepreg.data.draws import smooth_noise

# ----------------------------------------------------------------------------- SVF fields


@pytest.mark.parametrize(
    ("shape", "spacing", "magnitude", "smoothness"),
    [((20, 24, 18), 2.0, 6.0, 10.0), ((64, 56), 1.0, 5.0, 8.0), ((16, 20, 16), (3.0, 2.0, 2.0),
                                                                  8.0, 12.0)],
)
def test_random_svf_field_is_diffeomorphic_and_has_the_asked_magnitude(
    shape, spacing, magnitude, smoothness
):
    field = random_svf_field(shape, spacing, magnitude, smoothness, generator=7)
    assert field.shape == (1, len(shape), *shape)
    peak = float(field.norm(dim=1).max())
    assert peak == pytest.approx(magnitude, rel=0.02)
    jac = jacobian_determinant(field, spacing)
    assert float(jac.min()) > 0.2
    assert float(jac.max()) < 3.0


def test_random_svf_field_is_reproducible_per_seed():
    a = random_svf_field((16, 18, 14), 2.0, 5.0, 8.0, generator=3)
    b = random_svf_field((16, 18, 14), 2.0, 5.0, 8.0, generator=torch.Generator().manual_seed(3))
    c = random_svf_field((16, 18, 14), 2.0, 5.0, 8.0, generator=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_random_svf_field_velocity_gives_the_inverse_and_zero_magnitude_gives_zero():
    spacing = (1.5, 1.5)
    u, v = random_svf_field((48, 40), spacing, 4.0, 8.0, generator=1, return_velocity=True)
    from napari_deepreg.core import exp_svf

    w = exp_svf(-v, spacing)
    inner = compose(u, w, spacing).norm(dim=1)[:, 6:-6, 6:-6]
    assert float(inner.max()) < 0.15  # exp(-v) inverts exp(v) up to the integration error
    zero = random_svf_field((8, 8), 1.0, 0.0, 4.0, generator=1)
    assert torch.count_nonzero(zero) == 0
    with pytest.raises(ValueError, match="smoothness_mm"):
        random_svf_field((8, 8), 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="2 or 3 axes"):
        random_svf_field((8,), 1.0, 1.0, 1.0)


def test_invert_field_solves_the_composition():
    spacing = (2.0, 2.0, 2.0)
    u = random_svf_field((20, 22, 18), spacing, 6.0, 10.0, generator=5)
    w = invert_field(u, spacing)
    residual = compose(u, w, spacing).norm(dim=1)
    assert float(residual.max()) < 1e-3
    # and it undoes the warp of a smooth image, away from the border
    img = smooth_noise((20, 22, 18), spacing, 4.0, generator=0)
    moving = warp_image(img, u, spacing)
    back = warp_image(moving, w, spacing)
    inner = (Ellipsis, slice(4, -4), slice(4, -4), slice(4, -4))
    assert float((back - img)[inner].abs().mean()) < 0.2 * float((moving - img)[inner].abs().mean())


@pytest.mark.parametrize(("shape", "spacing"), [((32, 36, 30), 2.0), ((80, 72), 1.0)])
def test_coarse_svf_field_has_no_folds_the_magnitude_and_is_seeded(shape, spacing):
    assert svf_grid_factor([spacing] * len(shape), 8.0) == int(8.0 / spacing // 2)
    field = random_svf_field(shape, spacing, 5.0, 8.0, generator=4, grid_factor=None)
    assert field.shape == (1, len(shape), *shape)
    assert float(jacobian_determinant(field, spacing).min()) > 0
    peak = float(field.norm(dim=1).max())
    assert 0.9 * 5.0 < peak <= 5.0 * 1.001  # linear resizing never exceeds the node maximum
    again = random_svf_field(shape, spacing, 5.0, 8.0, generator=4, grid_factor=None)
    other = random_svf_field(shape, spacing, 5.0, 8.0, generator=5, grid_factor=None)
    assert torch.equal(field, again)
    assert not torch.allclose(field, other)


def test_coarse_svf_field_is_close_to_the_dense_one_in_smoothness():
    """The coarse integration keeps the Jacobian in the same range as a dense one would."""
    field = random_svf_field((40, 40, 40), 1.0, 4.0, 8.0, generator=1, grid_factor=4)
    jac = jacobian_determinant(field, 1.0)
    assert 0.3 < float(jac.min()) < 1.0 < float(jac.max()) < 3.0
    with pytest.raises(ValueError, match="grid_factor"):
        random_svf_field((8, 8), 1.0, 1.0, 4.0, grid_factor=0)


# ----------------------------------------------------------------------------- affines


def test_random_affine_2d_respects_rotation_and_scale_ranges():
    angles, scales = [], []
    for seed in range(200):
        m, p = random_affine(2, rotation_deg=10.0, scale=0.1, generator=seed, return_params=True)
        a = m[:2, :2]
        # no shear: A = R diag(s), so the columns have norms s and the angle is that of column 0
        col = a.norm(dim=0)
        angle = math.degrees(math.atan2(float(a[1, 0]), float(a[0, 0])))
        assert angle == pytest.approx(p["angles_deg"][0], abs=1e-9)
        assert col.tolist() == pytest.approx(p["scales"], rel=1e-9)
        angles.append(angle)
        scales += p["scales"]
    assert max(abs(a) for a in angles) <= 10.0
    assert max(abs(a) for a in angles) > 9.0  # the range is used, not just respected
    assert 1 / 1.1 - 1e-12 <= min(scales) < 0.93 and 1.07 < max(scales) <= 1.1 + 1e-12


def test_random_affine_3d_is_about_the_centre_with_positive_determinant():
    center = [31.0, 40.0, 25.0]
    for seed in range(20):
        m, p = random_affine(3, 15.0, (0.8, 1.25), 0.1, (4.0, 0.0, 2.0), seed, center,
                             return_params=True)
        a, b = m[:3, :3], m[:3, 3]
        assert float(torch.det(a)) > 0
        assert float(torch.det(a)) == pytest.approx(float(np.prod(p["scales"])), rel=1e-9)
        moved = a @ torch.tensor(center, dtype=torch.float64) + b
        shift = (moved - torch.tensor(center, dtype=torch.float64)).tolist()
        assert shift == pytest.approx(p["translation_mm"], abs=1e-9)
        assert abs(shift[0]) <= 4 and shift[1] == 0 and abs(shift[2]) <= 2
        assert all(abs(x) <= 15 for x in p["angles_deg"])
        assert all(abs(x) <= 0.1 for x in p["shears"])
    # pure rotations are orthonormal
    r = random_affine(3, 30.0, generator=7)[:3, :3]
    assert torch.allclose(r @ r.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert torch.equal(random_affine(3, 30.0, generator=7), random_affine(3, 30.0, generator=7))


def test_random_affine_field_is_the_fields_of_its_matrix():
    shape, spacing = (21, 25, 19), (2.0, 1.5, 1.0)
    field, matrix = random_affine_field(shape, spacing, 10.0, 0.1, 0.05, 3.0, generator=3)
    expected = affine_to_field(matrix.float(), shape, spacing)
    assert torch.allclose(field, expected, atol=1e-4)
    # the centre voxel moves by the translation alone
    centre = tuple(n // 2 for n in shape)
    shift = matrix[:3, :3] @ torch.tensor(grid_center(shape, spacing), dtype=torch.float64)
    shift = shift + matrix[:3, 3] - torch.tensor(grid_center(shape, spacing), dtype=torch.float64)
    assert field[(0, slice(None), *centre)].tolist() == pytest.approx(shift.tolist(), abs=1e-4)
    assert float(jacobian_determinant(field, spacing).min()) > 0
    with pytest.raises(ValueError, match="rotation_deg"):
        random_affine(3, (1.0, 2.0))
