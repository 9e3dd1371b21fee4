"""Analytic tests of warping images and label maps."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from napari_deepreg.core import affine_to_field, warp_image, warp_labels


@pytest.mark.parametrize("shape,spacing", [((17, 19), (0.7, 1.3)), ((9, 11, 13), (2.0, 1.0, 0.5))])
def test_identity_warp_is_exact(shape, spacing):
    img = torch.rand(2, 3, *shape)
    field = torch.zeros(2, len(shape), *shape)
    assert torch.equal(warp_image(img, field, spacing, padding="zeros"), img) or torch.allclose(
        warp_image(img, field, spacing), img, atol=1e-6, rtol=0
    )


def test_integer_translation_shifts_exactly_with_anisotropic_spacing():
    spacing = (1.5, 1.0, 2.0)
    img = torch.rand(1, 1, 12, 14, 16)
    field = torch.zeros(1, 3, 12, 14, 16)
    field[:, 0] = 2 * spacing[0]  # +2 voxels along z
    field[:, 2] = -3 * spacing[2]  # -3 voxels along x
    out = warp_image(img, field, spacing, padding="zeros")
    # warped(z, y, x) = moving(z + 2, y, x - 3)
    torch.testing.assert_close(out[0, 0, :-2, :, 3:], img[0, 0, 2:, :, :-3], atol=1e-5, rtol=0)
    # outside the moving image: zero padding (up to float rounding in grid_sample)
    assert float(out[0, 0, -2:].abs().max()) < 1e-6
    assert float(out[0, 0, :, :, :3].abs().max()) < 1e-6


def test_affine_matches_scipy_affine_transform():
    rng = np.random.default_rng(0)
    img = ndimage.gaussian_filter(rng.random((20, 22, 24)), 2).astype(np.float32)
    spacing, origin = (1.2, 0.9, 1.0), (3.0, -2.0, 5.0)
    a = np.array([[1.05, 0.05, 0.0], [-0.04, 0.95, 0.03], [0.02, 0.0, 1.1]])
    b = np.array([0.8, -1.1, 0.5])
    mat = np.eye(4)
    mat[:3, :3], mat[:3, 3] = a, b
    field = affine_to_field(torch.tensor(mat, dtype=torch.float32), img.shape, spacing, origin)
    ours = warp_image(torch.from_numpy(img)[None, None], field, spacing, padding="zeros")[0, 0]
    # voxel-space equivalent: index_m = S^-1 (A (S i + o) + b - o)
    s = np.diag(spacing)
    o = np.array(origin)
    vox_a = np.linalg.inv(s) @ a @ s
    vox_b = np.linalg.inv(s) @ (a @ o + b - o)
    ref = ndimage.affine_transform(
        img, vox_a, offset=vox_b, order=1, mode="grid-constant", cval=0.0
    )
    inner = (slice(3, -3),) * 3
    np.testing.assert_allclose(ours.numpy()[inner], ref[inner], atol=1e-4)


def test_warp_labels_keeps_label_values_and_matches_one_hot_argmax():
    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 6, (1, 1, 10, 12, 9), generator=gen) * 7  # sparse label values
    field = torch.randn(1, 3, 10, 12, 9, generator=gen) * 1.3
    spacing = (1.0, 0.8, 1.2)
    out = warp_labels(labels, field, spacing)
    assert set(out.unique().tolist()) <= set(labels.unique().tolist())
    ids = labels.unique()
    one_hot = (labels == ids.view(1, -1, 1, 1, 1)).float()
    interp = warp_image(one_hot, field.expand(1, -1, -1, -1, -1), spacing, padding="border")
    best = interp.max(1).values
    ours_score = torch.gather(interp, 1, torch.searchsorted(ids, out.flatten()).view_as(out))
    # our label always carries the largest interpolated one-hot weight (ties may differ)
    torch.testing.assert_close(ours_score[:, 0], best, atol=1e-5, rtol=0)


def test_warp_labels_integer_translation_2d_and_many_labels():
    labels = torch.arange(150 * 4).view(1, 1, 30, 20) % 150
    field = torch.zeros(1, 2, 30, 20)
    field[:, 1] = 1.0 * 0.5  # one voxel along x at 0.5 mm spacing
    out = warp_labels(labels, field, (2.0, 0.5), chunk=97)
    assert torch.equal(out[0, 0, :, :-1], labels[0, 0, :, 1:])


def test_warp_checks_shapes_with_clear_messages():
    with pytest.raises(ValueError, match="spatial shape"):
        warp_image(torch.rand(1, 1, 8, 8), torch.zeros(1, 2, 8, 9))
    with pytest.raises(ValueError, match="components"):
        warp_image(torch.rand(1, 1, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(TypeError, match="integer"):
        warp_labels(torch.rand(1, 1, 8, 8), torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="spacing"):
        warp_image(torch.rand(1, 1, 8, 8), torch.zeros(1, 2, 8, 8), (1.0, -1.0))


def test_linear_warp_matches_grid_sample_reference_2d():
    # a half-voxel shift averages neighbours
    img = torch.tensor([[0.0, 2.0, 4.0, 6.0]]).repeat(3, 1)[None, None]
    field = torch.zeros(1, 2, 3, 4)
    field[:, 1] = 0.5
    out = warp_image(img, field, 1.0)
    torch.testing.assert_close(out[0, 0, :, :3], torch.tensor([[1.0, 3.0, 5.0]]).repeat(3, 1))
    assert F is not None
