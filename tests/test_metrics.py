"""Known-answer tests of napari_deepreg.metrics on hand-built label maps, Jacobians and fields."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from napari_deepreg.metrics import (
    assd_per_label,
    dice_per_label,
    endpoint_error,
    fold_percent,
    hd95_per_label,
    label_ids,
    mean_assd,
    mean_dice,
    mean_hd95,
    registration_metrics,
    sdlogj,
    surface_distances,
    tre,
)
from napari_deepreg.volume import InputError

# ----------------------------------------------------------------------------- references


def _surface_ref(mask: np.ndarray) -> np.ndarray:
    """Independent surface: a mask voxel with a face neighbour outside it or past the border."""
    padded = np.pad(mask, 1)
    centre = tuple(slice(1, -1) for _ in mask.shape)
    surface = np.zeros_like(mask)
    for axis in range(mask.ndim):
        for step in (-1, 1):
            nb = list(centre)
            nb[axis] = slice(1 + step, padded.shape[axis] - 1 + step)
            surface |= mask & ~padded[tuple(nb)]
    return surface


def _directed_ref(a: np.ndarray, b: np.ndarray, spacing) -> np.ndarray:
    """Brute-force distances (mm) from each surface voxel of a to the surface of b."""
    sp = np.asarray(spacing, dtype=float)
    pa = np.argwhere(_surface_ref(a)) * sp
    pb = np.argwhere(_surface_ref(b)) * sp
    return cdist(pa, pb).min(axis=1)


def _box(shape, lo, hi, label=1) -> np.ndarray:
    out = np.zeros(shape, dtype=np.int32)
    out[tuple(slice(s, e) for s, e in zip(lo, hi, strict=True))] = label
    return out


def _blobs(shape, n, seed) -> np.ndarray:
    """Random smooth blobs labelled 1..n (some may be cut by later ones)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, dtype=np.int32)
    for lab in range(1, n + 1):
        noise = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
        out[noise > np.quantile(noise, 0.85)] = lab
    return out


# ----------------------------------------------------------------------------- label ids, Dice


def test_label_ids_union_and_background():
    a = np.array([[0, 1], [3, 3]])
    b = np.array([[0, 2], [7, 0]])
    assert label_ids(a) == [1, 3]
    assert label_ids(a, b) == [1, 2, 3, 7]
    assert label_ids(a, None, b) == [1, 2, 3, 7]
    assert label_ids(a, exclude_background=False) == [0, 1, 3]
    assert label_ids(np.zeros((3, 3), int)) == []


def test_dice_identical_maps_is_one():
    lab = _blobs((20, 24, 18), 5, seed=0)
    dice = dice_per_label(lab, lab)
    assert sorted(dice) == label_ids(lab)
    assert all(v == 1.0 for v in dice.values())
    assert mean_dice(lab, lab) == 1.0


def test_dice_disjoint_squares_is_zero_2d():
    a = _box((20, 20), (2, 2), (8, 8))
    b = _box((20, 20), (10, 11), (16, 17))
    assert dice_per_label(a, b) == {1: 0.0}
    assert mean_dice(a, b) == 0.0


def test_dice_of_overlapping_boxes_is_exact_3d():
    a = _box((10, 10, 12), (0, 0, 0), (4, 5, 6))  # 4*5*6 = 120 voxels
    b = _box((10, 10, 12), (2, 1, 3), (6, 5, 9))  # 4*4*6 = 96 voxels
    inter = 2 * 4 * 3  # [2:4, 1:5, 3:6]
    assert dice_per_label(a, b)[1] == pytest.approx(2 * inter / (120 + 96), rel=1e-15)


def test_dice_label_rules_absent_from_one_or_both():
    a = np.zeros((6, 6), dtype=np.int32)
    b = np.zeros((6, 6), dtype=np.int32)
    a[0:2, 0:2] = 1
    b[0:2, 0:2] = 1
    a[4:6, 4:6] = 3  # only in the reference -> 0
    b[3, 0] = 9  # only in the other map -> 0
    dice = dice_per_label(a, b, labels=[1, 3, 5, 9])
    assert dice == {1: 1.0, 3: 0.0, 9: 0.0}  # 5 is in neither: skipped
    assert dice_per_label(a, b) == {1: 1.0, 3: 0.0, 9: 0.0}  # default: the union
    assert mean_dice(a, b) == 0.5  # over the reference labels 1 and 3 only


def test_dice_with_huge_label_values():
    big = 2_000_000_000
    a = _box((8, 8), (0, 0), (4, 4), label=big)
    b = _box((8, 8), (0, 0), (4, 2), label=big)
    assert label_ids(a, b) == [big]
    assert dice_per_label(a, b) == {big: pytest.approx(2 * 8 / (16 + 8))}
    assert hd95_per_label(a, b)[big] > 0


def test_labels_are_checked():
    with pytest.raises(InputError):
        dice_per_label(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(InputError):
        dice_per_label(np.full((4, 4), -1), np.zeros((4, 4), int))


# ----------------------------------------------------------------------------- surfaces


@pytest.mark.parametrize(("axis", "k"), [(0, 2), (2, 3), (1, 1)])
def test_hd95_of_a_shifted_box_is_k_times_spacing_3d(axis, k):
    # The box is thin along the shift axis and wide across it, so the two faces that moved by
    # the full k voxels (A's leading face, B's trailing face) hold far more than 5 % of the
    # surface voxels; every other surface voxel is at most k voxels from the other surface.
    # Hence the 95th percentile of the union of both directed sets is exactly k * spacing.
    spacing = (2.5, 1.0, 0.7)
    lo, hi = [4, 4, 4], [16, 16, 16]
    lo[axis], hi[axis] = 4, 9
    a = _box((24, 24, 24), lo, hi)
    lo[axis] += k
    hi[axis] += k
    b = _box((24, 24, 24), lo, hi)
    assert hd95_per_label(a, b, spacing)[1] == pytest.approx(k * spacing[axis], abs=1e-12)
    assert hd95_per_label(b, a, spacing)[1] == pytest.approx(k * spacing[axis], abs=1e-12)
    # the plain directed maximum agrees
    assert surface_distances(a == 1, b == 1, spacing).max() == pytest.approx(k * spacing[axis])


def test_hd95_of_a_shifted_square_2d():
    a = _box((30, 30), (5, 5), (10, 25))
    b = _box((30, 30), (9, 5), (14, 25))  # shifted by 4 along axis 0
    assert hd95_per_label(a, b, (0.5, 3.0))[1] == pytest.approx(4 * 0.5)


@pytest.mark.parametrize("shape", [(32, 28), (18, 20, 16)])
def test_surface_metrics_match_brute_force(shape):
    # Cropping to bounding boxes and the EDT must give the same numbers as all-pairs distances.
    spacing = (1.3, 0.8, 2.0)[: len(shape)]
    a = _blobs(shape, 3, seed=1)
    b = _blobs(shape, 3, seed=2)
    hd = hd95_per_label(a, b, spacing)
    assd = assd_per_label(a, b, spacing)
    for lab in (1, 2, 3):
        d_ab = _directed_ref(a == lab, b == lab, spacing)
        d_ba = _directed_ref(b == lab, a == lab, spacing)
        union = np.concatenate([d_ab, d_ba])
        assert hd[lab] == pytest.approx(np.percentile(union, 95), rel=1e-12)
        assert assd[lab] == pytest.approx(union.mean(), rel=1e-12)
        got = surface_distances(a == lab, b == lab, spacing)
        np.testing.assert_allclose(got, d_ab, rtol=1e-12)


def test_surface_distances_edge_cases():
    empty = np.zeros((10, 10), bool)
    sq = _box((10, 10), (2, 2), (5, 5)).astype(bool)
    assert surface_distances(empty, sq).size == 0
    far = surface_distances(sq, empty)
    assert far.shape == (8,) and np.isinf(far).all()  # 3x3 square: 8 surface voxels
    np.testing.assert_array_equal(surface_distances(sq, sq, (2.0, 3.0)), np.zeros(8))
    # a mask touching the array border has its surface there
    edge = np.zeros((6, 6), bool)
    edge[:, :2] = True
    assert surface_distances(edge, edge).size == 12


def test_assd_and_hd95_of_identical_maps_are_zero():
    lab = _blobs((20, 22, 18), 4, seed=3)
    assert all(v == 0.0 for v in assd_per_label(lab, lab, (1.0, 2.0, 0.5)).values())
    assert all(v == 0.0 for v in hd95_per_label(lab, lab, (1.0, 2.0, 0.5)).values())
    assert mean_assd(lab, lab) == 0.0


def test_surface_metrics_label_absent_from_one_map_is_nan():
    a = _box((12, 12), (1, 1), (4, 4), label=1)
    a[6:10, 6:10] = 2
    b = _box((12, 12), (1, 2), (4, 5), label=1)  # label 2 missing
    hd = hd95_per_label(a, b)
    assert hd[1] == pytest.approx(1.0) and math.isnan(hd[2])
    assert math.isnan(assd_per_label(a, b)[2])
    assert 7 not in hd95_per_label(a, b, labels=[1, 2, 7])  # absent from both: skipped
    assert mean_hd95(a, b) == pytest.approx(1.0)  # nan ignored
    assert math.isnan(mean_hd95(a, np.zeros_like(a)))


# ----------------------------------------------------------------------------- Jacobian


def test_fold_percent_known_values():
    jac = np.array([1.0, 0.5, 0.0, -0.2, 2.0, 1.0, -3.0, 1.0, 1.0, 1.0])
    assert fold_percent(jac) == pytest.approx(30.0)
    mask = np.zeros(10, bool)
    mask[:4] = True  # 1, 0.5, 0, -0.2 -> 2 of 4 folded
    assert fold_percent(jac, mask) == pytest.approx(50.0)
    assert fold_percent(np.ones((4, 5, 6))) == 0.0
    # a (1, *S) Jacobian with an S mask broadcasts
    assert fold_percent(jac.reshape(1, 2, 5), mask.reshape(2, 5)) == pytest.approx(50.0)


def test_sdlogj_known_values():
    assert sdlogj(np.full((5, 6, 7), 1.7)) == pytest.approx(0.0, abs=1e-12)
    two = np.ones((4, 6))
    two[:2] = math.e  # half log J = 1, half 0 -> population std 0.5
    assert sdlogj(two) == pytest.approx(0.5)
    # folds are clipped to 1e-9, not dropped
    assert sdlogj(np.array([1.0, -5.0])) == pytest.approx(-math.log(1e-9) / 2)
    mask = np.zeros((4, 6), bool)
    mask[:2] = True
    assert sdlogj(two, mask) == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------------------- points, fields


def test_tre_with_a_constant_field_3d():
    shift = np.array([1.5, -2.0, 0.25])
    field = np.broadcast_to(shift[:, None, None, None], (3, 8, 9, 10)).copy()
    spacing, origin = (2.0, 1.0, 1.5), (-5.0, 3.0, 10.0)
    p = np.array([[-3.0, 4.2, 12.0], [5.1, 9.7, 20.3], [0.0, 5.0, 11.5]])
    error = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, -2.0]])
    q = p + shift + error
    np.testing.assert_allclose(tre(p, q, field, spacing, origin), [0.0, 5.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(tre(p, q), np.linalg.norm(shift + error, axis=1))


def test_tre_interpolates_a_linear_field_at_physical_positions_2d():
    # u(x) = G x_phys + c is reproduced exactly by linear interpolation, so this checks the
    # physical -> index mapping through spacing and origin.
    shape, spacing, origin = (12, 15), (0.5, 2.0), (10.0, -4.0)
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")).astype(float)
    phys = grid * np.array(spacing)[:, None, None] + np.array(origin)[:, None, None]
    g = np.array([[0.1, -0.05], [0.02, 0.2]])
    c = np.array([0.3, -1.0])
    field = np.einsum("ij,j...->i...", g, phys) + c[:, None, None]
    p = np.array([[11.3, 3.7], [14.9, 20.1], [10.0, -4.0]])
    q = p + p @ g.T + c
    np.testing.assert_allclose(tre(p, q, field, spacing, origin), 0.0, atol=1e-12)
    with pytest.raises(ValueError):
        tre(p, q[:2], field, spacing, origin)


def test_endpoint_error_of_constant_fields():
    f = np.zeros((3, 4, 5, 6))
    r = np.zeros((3, 4, 5, 6))
    f[0], f[2] = 3.0, 4.0
    assert endpoint_error(f, r) == pytest.approx(5.0)
    f2 = np.zeros((2, 5, 5))
    f2[1, :2] = 2.0  # 10 of 25 voxels off by 2 mm
    mask = np.zeros((5, 5), bool)
    mask[:2] = True
    assert endpoint_error(f2, np.zeros_like(f2)) == pytest.approx(2.0 * 10 / 25)
    assert endpoint_error(f2, np.zeros_like(f2), mask) == pytest.approx(2.0)


# ----------------------------------------------------------------------------- summary


def test_registration_metrics_summary_and_rows():
    fixed = _box((20, 20, 20), (2, 2, 2), (8, 18, 18), label=1)
    fixed[10:16, 2:18, 2:18] = 2
    moving = np.roll(fixed, 2, axis=0)
    jac = np.ones((20, 20, 20))
    jac[0, :2, :2] = -1.0  # 4 of 8000 folded
    spacing = (1.5, 1.0, 1.0)
    summary, rows = registration_metrics(fixed, moving, fixed.copy(), jac, spacing)
    assert summary["dice_after"] == 1.0 and summary["hd95_after"] == 0.0
    assert summary["assd_after"] == 0.0
    assert summary["dice_before"] == pytest.approx(4 / 6)  # slabs of 6 shifted by 2
    assert summary["hd95_before"] == pytest.approx(2 * 1.5)
    assert summary["n_labels"] == 2
    assert summary["fold_percent"] == pytest.approx(100 * 4 / 8000)
    assert summary["sdlogj"] > 0
    assert [r["label"] for r in rows] == [1, 2]
    assert set(rows[0]) == {"label", "dice_before", "dice_after", "hd95_before", "hd95_after"}
    assert rows[1]["hd95_before"] == pytest.approx(3.0)

    fast, fast_rows = registration_metrics(fixed, moving, fixed, jac, spacing, fast=True)
    assert not any(k.startswith(("hd95", "assd")) for k in fast)
    assert fast["dice_before"] == summary["dice_before"]
    assert set(fast_rows[0]) == {"label", "dice_before", "dice_after"}

    only_jac, no_rows = registration_metrics(None, None, None, jac, spacing)
    assert set(only_jac) == {"fold_percent", "sdlogj"} and no_rows == []


def test_registration_metrics_landmarks():
    field = np.zeros((2, 10, 10))
    field[0] = 1.0  # fixed point p lands at p + (1, 0) in the moving image
    p = np.array([[2.0, 2.0], [5.0, 7.0]])
    q = p + np.array([1.0, 0.0])
    summary, _ = registration_metrics(
        None, None, None, None, (1.0, 1.0), fixed_points=p, moving_points=q, field=field
    )
    assert summary == {"tre_before": pytest.approx(1.0), "tre_after": pytest.approx(0.0)}


def test_hundred_labels_on_64_cube():
    # Voronoi cells of 100 seeds inside a ball, then a copy shifted by one voxel.
    shape = (64, 64, 64)
    rng = np.random.default_rng(7)
    zz, yy, xx = np.indices(shape)
    ball = (zz - 31.5) ** 2 + (yy - 31.5) ** 2 + (xx - 31.5) ** 2 < 28**2
    seeds = np.zeros(shape, dtype=np.int32)
    where = rng.choice(np.flatnonzero(ball), 100, replace=False)
    seeds.ravel()[where] = np.arange(1, 101)
    _, nearest = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    a = np.where(ball, seeds[tuple(nearest)], 0).astype(np.int32)
    b = np.roll(a, 1, axis=2)
    spacing = (1.0, 1.0, 1.2)

    dice = dice_per_label(a, b)
    hd = hd95_per_label(a, b, spacing)
    assert sorted(dice) == sorted(hd) == list(range(1, 101))
    assert all(0.0 < v < 1.0 for v in dice.values())
    assert all(0.0 < v < 40.0 for v in hd.values())
    for lab in (1, 50, 100):  # spot checks against full-volume computations
        ma, mb = a == lab, b == lab
        assert dice[lab] == pytest.approx(2 * (ma & mb).sum() / (ma.sum() + mb.sum()))
        sa, sb = _surface_ref(ma), _surface_ref(mb)
        d_ab = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
        d_ba = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
        assert hd[lab] == pytest.approx(np.percentile(np.concatenate([d_ab, d_ba]), 95))
    summary, rows = registration_metrics(a, b, a, None, spacing)
    assert summary["n_labels"] == 100 and len(rows) == 100
    assert summary["dice_after"] == 1.0
    assert summary["dice_before"] == pytest.approx(np.mean(list(dice.values())))
