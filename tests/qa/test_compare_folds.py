"""qa.compare (checkerboard in mm, difference, red/cyan) and qa.folds (clusters, % per label)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepreg.qa import compare, folds


def test_checkerboard_tiles_are_tile_mm_along_every_axis_whatever_the_spacing():
    shape, spacing = (8, 32), (2.0, 0.5)  # 4 mm tiles: 2 voxels along y, 8 along x
    parity = compare.tile_parity(shape, spacing, 4.0)
    assert np.flatnonzero(np.diff(parity[0].astype(int))).tolist() == [7, 15, 23]
    assert np.flatnonzero(np.diff(parity[:, 0].astype(int))).tolist() == [1, 3, 5]
    a = np.zeros(shape)
    b = np.linspace(1.0, 2.0, a.size).reshape(shape)
    board = compare.checkerboard_mm(a, b, spacing, 4.0)
    np.testing.assert_allclose(board, np.where(parity, 0.0, compare.unit_range(b)))
    with pytest.raises(ValueError, match="tile size"):
        compare.tile_parity(shape, spacing, 0.0)


def test_difference_and_red_cyan():
    a = np.linspace(0, 1, 100).reshape(10, 10)
    assert np.allclose(compare.difference(a, a), 0.0)
    rgb = compare.red_cyan(a, a)
    assert rgb.shape == (10, 10, 3) and np.allclose(rgb[..., 0], rgb[..., 1])


def test_fold_rows_name_the_structure_and_fold_percent_per_label():
    jac = np.ones((10, 12), np.float32)
    jac[2:4, 3:5] = -0.5  # 4 voxels
    jac[7, 9] = 0.0  # 1 voxel
    labels = np.zeros((10, 12), np.int32)
    labels[:5] = 1
    labels[5:] = 2
    rows = folds.fold_rows(jac, (1.0, 2.0), (10.0, 0.0), labels, {1: "Left-GM"})
    assert [r["size_vox"] for r in rows] == [4, 1]
    assert rows[0]["structure"] == "1 Left-GM" and rows[1]["structure"] == "label 2"
    assert rows[0]["centroid_mm"] == pytest.approx((12.5, 7.0))
    assert rows[0]["min_jacobian"] == pytest.approx(-0.5)
    per = folds.fold_percent_per_label(jac, labels, {1: "Left-GM"})
    assert per[0]["name"] == "1 Left-GM" and per[0]["fold_percent"] == pytest.approx(100 * 4 / 60)
    assert per[1]["folded"] == 1
