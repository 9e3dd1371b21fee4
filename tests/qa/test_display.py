"""napari_deepreg.qa.display: grid lines, displacement and Jacobian display, folds, checkerboard."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_deepreg import qa

# ----------------------------------------------------------------------------- deformation grid


def test_grid_zero_field_draws_lines_at_multiples_of_the_period_only():
    field = np.zeros((2, 30, 41), np.float32)
    grid = qa.deformation_grid(field, (1.0, 1.0), period_vox=8)
    assert grid.dtype == np.float32 and grid.shape == (30, 41)
    on_y = np.arange(30) % 8 == 0
    on_x = np.arange(41) % 8 == 0
    expected = (on_y[:, None] | on_x[None, :]).astype(np.float32)
    np.testing.assert_array_equal(grid, expected)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("k", [1, 3, -2])
def test_grid_constant_shift_moves_lines_by_minus_k(axis, k):
    spacing = (0.5, 2.0)
    field = np.zeros((2, 32, 40), np.float32)
    field[axis] = k * spacing[axis]  # k voxels, in mm
    grid = qa.deformation_grid(field, spacing, period_vox=8)
    reference = qa.deformation_grid(np.zeros_like(field), spacing, period_vox=8)
    shifted = np.roll(reference, -k, axis=axis)
    np.testing.assert_array_equal(grid, shifted)
    # the lines of the other axis stay put
    profile = grid.max(axis=1 - axis)
    assert profile.min() == 1.0  # every row/column is crossed by a line of the other axis
    lines = np.flatnonzero(np.take(grid, 4, axis=1 - axis) == 1.0)
    np.testing.assert_array_equal(lines % 8, np.full(len(lines), (-k) % 8))


def test_grid_half_voxel_shift_is_antialiased():
    field = np.zeros((2, 16, 16), np.float32)
    field[1] = 0.5
    row = qa.deformation_grid(field, 1.0, period_vox=8)[3]  # y = 3 carries no horizontal line
    # phi = x + 0.5: the lines t = 0, 8, 16 fall between voxels -1|0, 7|8 and 15|16
    np.testing.assert_allclose(row[[0, 7, 8, 15]], 0.5)
    assert row[[1, 3, 5, 9, 12, 14]].max() == 0.0


def test_grid_3d_displayed_axes_gives_the_same_2d_grid_in_every_slice():
    field = np.zeros((3, 9, 20, 24), np.float32)
    grid = qa.deformation_grid(field, (2.0, 1.0, 1.0), displayed_axes=(1, 2), period_vox=5)
    for z in range(1, 9):
        np.testing.assert_array_equal(grid[z], grid[0])
    # a proper grid, not filled planes: most of every slice is empty
    assert grid[0].mean() < 0.5
    expected = (np.arange(20)[:, None] % 5 == 0) | (np.arange(24)[None, :] % 5 == 0)
    np.testing.assert_array_equal(grid[0], expected.astype(np.float32))
    # out-of-plane displacement draws nothing
    field[0] = 1.3
    np.testing.assert_array_equal(
        qa.deformation_grid(field, (2.0, 1.0, 1.0), (1, 2), period_vox=5), grid
    )


def test_grid_negative_axes_and_validation():
    field = np.zeros((3, 6, 7, 8), np.float32)
    np.testing.assert_array_equal(
        qa.deformation_grid(field, 1.0, (-2, -1)), qa.deformation_grid(field, 1.0, (1, 2))
    )
    with pytest.raises(ValueError, match="field"):
        qa.deformation_grid(np.zeros((2, 6, 7, 8)), 1.0)
    with pytest.raises(ValueError, match="displayed_axes"):
        qa.deformation_grid(field, 1.0, (0, 3))


def test_grid_is_fast_on_an_mni_sized_volume():
    rng = np.random.default_rng(0)
    field = rng.normal(size=(3, 193, 229, 193)).astype(np.float32)
    qa.deformation_grid(field, 1.0, (1, 2))  # warm-up
    start = time.perf_counter()
    grid = qa.deformation_grid(field, 1.0, (1, 2))
    elapsed = time.perf_counter() - start
    assert grid.shape == field.shape[1:] and 0.0 <= grid.min() and grid.max() <= 1.0
    assert elapsed < 1.0  # budget 0.5 s; slack for a shared machine


# ----------------------------------------------------------------------------- Jacobian and folds


def test_displacement_magnitude():
    field = np.zeros((3, 2, 3, 4), np.float32)
    field[0], field[1], field[2] = 2.0, 3.0, 6.0
    np.testing.assert_allclose(qa.displacement_magnitude(field), 7.0)


def test_jacobian_display_is_centred_on_one():
    jac = np.ones((10, 10), np.float32)
    jac[0, :5] = 1.3
    arr, limits, cmap = qa.jacobian_display(jac, percentile=100)
    assert cmap == qa.JACOBIAN_COLORMAP
    np.testing.assert_allclose(limits, (0.7, 1.3), rtol=1e-5)
    np.testing.assert_array_equal(arr, jac)  # true values kept for hover
    jac[0, 0] = -4.0
    _, limits, _ = qa.jacobian_display(jac, percentile=100)
    assert limits == (0.0, 2.0)
    _, limits, _ = qa.jacobian_display(np.ones((4, 4)))
    assert limits == pytest.approx((0.95, 1.05))


def _hand_made_jacobian():
    jac = np.ones((6, 10, 12), np.float32)
    jac[1:3, 2:4, 2:5] = -0.5  # 2*2*3 = 12 voxels
    jac[1, 2, 2] = -2.0
    jac[4, 7, 9] = 0.0  # a single voxel (J == 0 counts as a fold)
    jac[5, 8, 10] = -0.1  # touches the previous one by a corner only: same cluster
    jac[4, 0, 11] = 1e-3  # small but positive: not a fold
    return jac


def test_fold_mask():
    jac = _hand_made_jacobian()
    mask = qa.fold_mask(jac)
    assert mask.dtype == np.uint8
    assert mask.sum() == 14
    assert mask[4, 7, 9] == 1 and mask[4, 0, 11] == 0


def test_fold_clusters_sizes_volumes_and_centroids():
    jac = _hand_made_jacobian()
    spacing, origin = (2.0, 1.0, 0.5), (10.0, -5.0, 0.0)
    clusters = qa.fold_clusters(jac, spacing, origin)
    assert [c["id"] for c in clusters] == [1, 2]
    big, small = clusters
    assert big["size_vox"] == 12 and small["size_vox"] == 2
    assert big["volume_mm3"] == pytest.approx(12 * 1.0)
    np.testing.assert_allclose(big["centroid_vox"], (1.5, 2.5, 3.0))
    np.testing.assert_allclose(big["centroid_mm"], (10 + 1.5 * 2, -5 + 2.5, 1.5))
    np.testing.assert_allclose(small["centroid_vox"], (4.5, 7.5, 9.5))
    assert big["min_jacobian"] == -2.0 and small["min_jacobian"] == pytest.approx(-0.1)
    assert qa.fold_clusters(np.ones((5, 5)), 1.0) == []


def test_checkerboard():
    a = np.zeros((8, 8), np.float32)
    b = np.ones((8, 8), np.float32)
    board = qa.checkerboard(a, b, tiles=4, normalise=False)
    expected = (np.add.outer(np.arange(8) // 2, np.arange(8) // 2) % 2).astype(np.float32)
    np.testing.assert_array_equal(board, expected)
    rng = np.random.default_rng(1)
    x, y = rng.random((6, 7, 9)), 100 * rng.random((6, 7, 9))
    board = qa.checkerboard(x, y, tiles=3)
    assert board.shape == x.shape and 0.0 <= board.min() and board.max() <= 1.0
    with pytest.raises(ValueError, match="same shape"):
        qa.checkerboard(a, b[:4])
