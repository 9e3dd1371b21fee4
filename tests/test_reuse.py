"""Reuse of a transform (issue 17): apply a saved field to another image / label map / points,
invert it, compose two; through the API and ``napari-deepreg transform`` / ``warp``, on analytic
fields (a translation, a smooth sine field) and on a real registration's saved transform."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from napari_deepreg import reuse
from napari_deepreg.cli import main
from napari_deepreg.io import export_field, export_transform, read_field, to_sitk, write_volume
from napari_deepreg.pipeline import register, run_to_end
from napari_deepreg.volume import InputError, Volume

SHAPE, SPACING, ORIGIN = (18, 22, 20), (2.0, 1.5, 1.0), (5.0, -3.0, 2.0)
T = np.array([2.5, -1.5, 3.0])  # mm, array order
TOL_MM = 1e-3  # stated accuracy of inversion and composition on these smooth fields


def translation(t=T, shape=SHAPE):
    return np.broadcast_to(np.asarray(t, np.float32)[:, None, None, None], (3, *shape)).copy()


def sine_field(shape=SHAPE, amplitude=2.0):
    """A smooth fold-free field (|grad u| < 0.5): u_i = a sin(x_j / 6 mm) for j != i."""
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, SPACING, strict=True)],
                          indexing="ij")
    return amplitude * np.stack([np.sin(y / 6), np.cos(x / 7), np.sin(z / 8)]).astype(np.float32)


def interior(residual_field, margin=4):
    """|field| away from the border, where x + v(x) stays inside the grid."""
    mag = np.linalg.norm(residual_field, axis=0)
    return mag[(slice(margin, -margin),) * 3]


def test_translation_inverse_is_minus_t_and_compose_gives_identity():
    inverse, accuracy = reuse.invert(translation(), SPACING)
    np.testing.assert_allclose(inverse, translation(-T), atol=1e-5)
    assert accuracy < 1e-5
    np.testing.assert_allclose(reuse.chain(translation(), inverse, SPACING), 0.0, atol=1e-5)
    # two translations compose to their sum
    np.testing.assert_allclose(reuse.chain(translation(), translation(T / 2), SPACING),
                               translation(1.5 * T), atol=1e-5)


def test_smooth_field_inverse_within_stated_tolerance():
    u = sine_field()
    v, accuracy = reuse.invert(u, SPACING)
    assert accuracy < TOL_MM
    assert interior(reuse.chain(v, u, SPACING)).max() < TOL_MM  # phi_u(phi_v(x)) = x
    assert interior(reuse.chain(u, v, SPACING)).max() < 0.05  # phi_v(phi_u(x)) = x, inside
    assert np.abs(v + u).max() > 0.1  # not just -u: the inverse of a non-translation


def test_points_go_to_the_fixed_image_with_the_inverse():
    fixed_pts = np.array([[20.0, 10.0, 12.0], [30.0, 5.0, 8.0]])
    moving_pts = fixed_pts + T  # where the fixed points land under u = T
    back = reuse.points_to_fixed(moving_pts, translation(), SPACING, ORIGIN)
    np.testing.assert_allclose(back, fixed_pts, atol=1e-4)


def test_labels_keep_their_values_and_bad_shapes_are_refused():
    labels = np.zeros(SHAPE, np.int16)
    labels[4:10, 5:15, 6:12] = 7
    labels[10:14, 5:15, 6:12] = 3
    out = reuse.apply_field(labels, sine_field(), SPACING, labels=True)
    assert out.dtype == np.int16 and set(np.unique(out)) <= {0, 3, 7}
    with pytest.raises(InputError, match="grid"):
        reuse.apply_field(labels[:-1], sine_field(), SPACING)
    with pytest.raises(InputError, match="different grids"):
        reuse.chain(sine_field(), sine_field((18, 22, 19)), SPACING)


@pytest.fixture(scope="module")
def real_result():
    from napari_deepreg.sample import load_sample

    pair = load_sample("brain2d")
    result = run_to_end(register(pair["fixed"], pair["moving"], "instance_opt",
                                 {"iterations": 5, "levels": 1, "affine_first": False},
                                 device="cpu"))
    return pair, result


def test_saved_transform_warps_like_the_result(real_result, tmp_path):
    pair, result = real_result
    fixed = pair["fixed"]
    for name in ("field.nii.gz", "transform.h5"):
        path = tmp_path / name
        (export_field if name.endswith("gz") else export_transform)(result.field, fixed, path)
        field, grid = read_field(path, fixed)
        warped = reuse.apply_field(pair["moving"].array, field, grid.spacing)
        np.testing.assert_allclose(warped, result.warped, atol=1e-4)
    # SimpleITK applies the saved .h5 the same way (round trip through ITK's own resampler)
    itk = sitk.Resample(to_sitk(pair["moving"]), to_sitk(fixed),
                        sitk.ReadTransform(str(tmp_path / "transform.h5")), sitk.sitkLinear)
    inner = (slice(3, -3),) * 2
    scale = float(np.abs(result.warped).max())  # float32 vs ITK's float64: 1e-4 of the range
    np.testing.assert_allclose(sitk.GetArrayFromImage(itk)[inner], result.warped[inner],
                               atol=1e-4 * scale)


def test_cli_invert_then_compose_is_the_identity(tmp_path, capsys):
    fixed = Volume(np.zeros(SHAPE, np.float32), SPACING, ORIGIN, name="fixed")
    write_volume(fixed, tmp_path / "fixed.nii.gz")
    export_transform(sine_field(), fixed, tmp_path / "t.h5")
    ref = ["--reference", str(tmp_path / "fixed.nii.gz")]
    assert main(["transform", "invert", str(tmp_path / "t.h5"), *ref,
                 "--out", str(tmp_path / "inv.nii.gz")]) == 0
    assert "accurate to" in capsys.readouterr().out
    assert main(["transform", "compose", str(tmp_path / "inv.nii.gz"), str(tmp_path / "t.h5"),
                 *ref, "--out", str(tmp_path / "id.h5")]) == 0
    identity, _ = read_field(tmp_path / "id.h5", fixed)
    assert interior(identity).max() < 2 * TOL_MM
    # bad output suffix: one clear error, exit 2
    assert main(["transform", "invert", str(tmp_path / "t.h5"), *ref,
                 "--out", str(tmp_path / "inv.png")]) == 2
    assert "--out" in capsys.readouterr().err
