"""Tests of napari_deepreg.io: geometry round trips, resampling, and agreement with ITK transforms.

The key tests warp a moving image with the package (``core.warp_image``) and with SimpleITK
(``sitk.Resample`` through the exported transform file) on grids with anisotropic spacing, an
offset origin and flipped / rotated direction cosines, and require the two to agree.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy.ndimage import gaussian_filter

from napari_deepreg import io
from napari_deepreg.core import affine_to_field, warp_image
from napari_deepreg.volume import InputError, Volume


def _rotation_itk(angles_deg: tuple[float, float, float]) -> np.ndarray:
    """A proper 3D rotation (x, y, z order), from rotations about x, y and z."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _rotation_2d(angle_deg: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


# (shape in array order, spacing, origin in array order, direction in ITK (x, y, z) order)
GRIDS = {
    "3d-flipped": ((18, 22, 26), (2.0, 1.3, 0.9), (12.5, -40.0, 7.25), np.diag([-1.0, -1.0, 1.0])),
    "3d-rotated": (
        (18, 22, 26),
        (1.7, 1.1, 0.8),
        (-5.0, 22.0, -31.0),
        _rotation_itk((20.0, -10.0, 35.0)) @ np.diag([1.0, -1.0, 1.0]),
    ),
    "2d-rotated": ((40, 46), (0.7, 1.2), (-3.0, 11.0), _rotation_2d(25.0) @ np.diag([-1.0, 1.0])),
}


def _smooth(shape, seed: int, sigma: float) -> np.ndarray:
    """Smooth random values in [0, 1]."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.standard_normal(shape), sigma)
    return (x - x.min()) / (x.max() - x.min())


def _volume(key: str, array: np.ndarray | None = None) -> tuple[Volume, sitk.Image]:
    """A Volume and, built independently, the SimpleITK image it should correspond to."""
    shape, spacing, origin, direction_itk = GRIDS[key]
    arr = _smooth(shape, 1, 2.0).astype(np.float32) if array is None else array
    volume = Volume(arr, spacing, origin, direction_itk[::-1, ::-1], "fixed")
    image = sitk.GetImageFromArray(arr.astype(np.float64))
    image.SetSpacing(tuple(reversed(spacing)))
    image.SetOrigin(tuple(reversed(origin)))
    image.SetDirection(tuple(direction_itk.ravel()))
    return volume, image


def _smooth_field(shape, spacing, amplitude_mm: float, seed: int) -> np.ndarray:
    """``(D, *shape)`` smooth displacement (mm) with max |component| = amplitude_mm."""
    rng = np.random.default_rng(seed)
    comps = []
    for _ in shape:
        c = gaussian_filter(rng.standard_normal(shape), 4.0)
        comps.append(c / np.abs(c).max() * amplitude_mm)
    return np.stack(comps)


def _inside_mask(field: np.ndarray, spacing, margin: float = 1.5) -> np.ndarray:
    """Voxels whose sampling point ``i + u / spacing`` stays ``margin`` voxels inside the grid."""
    shape = field.shape[1:]
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    mask = np.ones(shape, dtype=bool)
    for axis, (n, s) in enumerate(zip(shape, spacing, strict=True)):
        pos = idx[axis] + field[axis] / s
        mask &= (pos >= margin) & (pos <= n - 1 - margin)
        mask &= (idx[axis] >= 1) & (idx[axis] <= n - 2)  # ITK leaves the field at the rim
    return mask


def _warp(moving: np.ndarray, field: np.ndarray, spacing) -> np.ndarray:
    out = warp_image(
        torch.from_numpy(moving.astype(np.float32))[None, None],
        torch.from_numpy(field.astype(np.float32))[None],
        spacing,
        mode="linear",
        padding="border",
    )
    return out[0, 0].numpy()


# ----------------------------------------------------------------------------------------------
# agreement with ITK


@pytest.mark.parametrize("key", list(GRIDS))
def test_exported_displacement_transform_matches_itk_resample(tmp_path, key):
    fixed, fixed_itk = _volume(key)
    moving_arr = _smooth(fixed.shape, 2, 1.5).astype(np.float32)
    _, moving_itk = _volume(key, moving_arr)
    u = _smooth_field(fixed.shape, fixed.spacing, 3.0, seed=3)

    ours = _warp(moving_arr, u, fixed.spacing)

    path = tmp_path / "field.h5"
    io.export_transform(u, fixed, path)
    transform = sitk.ReadTransform(str(path))
    itk = sitk.GetArrayFromImage(
        sitk.Resample(moving_itk, fixed_itk, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat64)
    )

    mask = _inside_mask(u, fixed.spacing)
    assert mask.mean() > 0.4
    np.testing.assert_allclose(ours[mask], itk[mask], atol=1e-3, rtol=0)
    # the field matters: without it the images differ by far more than the tolerance
    assert np.abs(moving_arr[mask] - itk[mask]).max() > 0.05

    # the field image export is the same displacement field
    image_path = tmp_path / "field.nii.gz"
    io.export_field(u, fixed, image_path)
    field_image = sitk.Cast(sitk.ReadImage(str(image_path)), sitk.sitkVectorFloat64)
    from_image = sitk.GetArrayFromImage(
        sitk.Resample(
            moving_itk, fixed_itk, sitk.DisplacementFieldTransform(field_image), sitk.sitkLinear
        )
    )
    np.testing.assert_allclose(from_image[mask], itk[mask], atol=1e-3, rtol=0)


def test_field_vectors_are_physical_itk_displacements():
    """Flipping x in ITK order flips the sign of the x displacement (last array axis)."""
    fixed, _ = _volume("3d-flipped")  # ITK diag(-1, -1, 1): array axes z, y, x -> (+1, -1, -1)
    u = np.zeros((3, *fixed.shape))
    u[0], u[1], u[2] = 1.0, 2.0, 3.0  # mm along z, y, x (grid frame)
    vectors = sitk.GetArrayFromImage(io.field_to_itk_image(u, fixed))
    assert vectors.shape == (*fixed.shape, 3)
    np.testing.assert_allclose(vectors[4, 5, 6], [-3.0, -2.0, 1.0])  # (x, y, z) in LPS


@pytest.mark.parametrize("key", ["3d-flipped", "3d-rotated", "2d-rotated"])
@pytest.mark.parametrize("suffix", [".tfm", ".txt", ".mat"])
def test_exported_affine_matches_itk_resample(tmp_path, key, suffix):
    fixed, fixed_itk = _volume(key)
    moving_arr = _smooth(fixed.shape, 4, 1.5).astype(np.float32)
    _, moving_itk = _volume(key, moving_arr)
    d = fixed.ndim
    # rotation of a few degrees with scaling about the grid centre, then a translation (grid frame)
    rot = _rotation_itk((4.0, -3.0, 5.0)) if d == 3 else _rotation_2d(5.0)
    a = rot @ np.diag(np.linspace(0.96, 1.04, d))
    centre = np.asarray(fixed.origin) + (np.asarray(fixed.shape) - 1) / 2 * np.asarray(
        fixed.spacing
    )
    t = np.array([1.5, -2.0, 1.0])[:d]
    matrix = np.eye(d + 1)
    matrix[:d, :d] = a
    matrix[:d, d] = centre + t - a @ centre

    u = affine_to_field(
        torch.from_numpy(matrix), fixed.shape, fixed.spacing, fixed.origin
    )[0].numpy()
    ours = _warp(moving_arr, u, fixed.spacing)

    path = tmp_path / f"affine{suffix}"
    io.export_affine(matrix, path, fixed=fixed)
    transform = sitk.ReadTransform(str(path))
    itk = sitk.GetArrayFromImage(
        sitk.Resample(moving_itk, fixed_itk, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat64)
    )
    mask = _inside_mask(u, fixed.spacing)
    assert mask.mean() > 0.3
    np.testing.assert_allclose(ours[mask], itk[mask], atol=1e-3, rtol=0)
    assert np.abs(moving_arr[mask] - itk[mask]).max() > 0.05


def test_affine_identity_direction_needs_no_conversion(tmp_path):
    fixed = Volume(np.zeros((5, 6, 7)), (1.0, 2.0, 3.0), (4.0, 5.0, 6.0))
    matrix = np.eye(4)
    matrix[:3, :3] = [[1.0, 0.1, 0.0], [0.0, 0.9, 0.2], [0.05, 0.0, 1.1]]
    matrix[:3, 3] = [1.0, 2.0, 3.0]
    np.testing.assert_allclose(io.affine_to_physical(matrix, fixed), matrix, atol=1e-12)
    io.export_affine(matrix, tmp_path / "a.tfm")
    transform = sitk.AffineTransform(sitk.ReadTransform(str(tmp_path / "a.tfm")))
    # ITK (x, y, z) order: rows and columns reversed, translation reversed
    np.testing.assert_allclose(
        np.reshape(transform.GetMatrix(), (3, 3)), matrix[:3, :3][::-1, ::-1]
    )
    np.testing.assert_allclose(transform.GetTranslation(), [3.0, 2.0, 1.0])
    # a fixed point (array order) maps like the matrix says
    x = np.array([7.0, -2.0, 5.0])
    mapped = transform.TransformPoint(tuple(x[::-1]))
    np.testing.assert_allclose(mapped[::-1], matrix[:3, :3] @ x + matrix[:3, 3], atol=1e-9)


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha", ".nrrd", ".h5"])
def test_read_field_inverts_export(tmp_path, suffix):
    fixed, _ = _volume("3d-rotated")
    u = _smooth_field(fixed.shape, fixed.spacing, 2.5, seed=5)
    path = tmp_path / f"field{suffix}"
    if suffix == ".h5":
        io.export_transform(u, fixed, path)
    else:
        io.export_field(u, fixed, path)
    field, grid = io.read_field(path)
    assert field.shape == u.shape and field.dtype == np.float32
    np.testing.assert_allclose(field, u, atol=1e-5)
    assert grid.same_grid(fixed)
    # with the fixed grid given, the same field comes back on it
    field2, grid2 = io.read_field(path, fixed)
    np.testing.assert_allclose(field2, u, atol=1e-5)
    assert grid2.same_grid(fixed) and grid2.shape == fixed.shape


def test_read_field_samples_an_affine_on_the_fixed_grid(tmp_path):
    fixed, _ = _volume("3d-rotated")
    matrix = np.eye(4)
    matrix[:3, :3] = _rotation_itk((3.0, 2.0, -4.0))
    matrix[:3, 3] = [2.0, -1.0, 0.5]
    io.export_affine(matrix, tmp_path / "a.txt", fixed=fixed)
    field, _ = io.read_field(tmp_path / "a.txt", fixed)
    expected = affine_to_field(torch.from_numpy(matrix), fixed.shape, fixed.spacing, fixed.origin)
    np.testing.assert_allclose(field, expected[0].numpy(), atol=1e-4)
    with pytest.raises(InputError, match="fixed"):
        io.read_field(tmp_path / "a.txt")


def test_read_field_resamples_onto_a_different_fixed_grid(tmp_path):
    grid = Volume(np.zeros((10, 12, 14)), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    u = np.zeros((3, *grid.shape))
    u[0] = 1.5  # a constant field survives resampling exactly
    u[2] = -0.5
    io.export_field(u, grid, tmp_path / "f.mha")
    finer = Volume(np.zeros((9, 11, 13)), (1.0, 1.0, 1.0), (3.0, 4.0, 5.0))
    field, on = io.read_field(tmp_path / "f.mha", finer)
    assert field.shape == (3, 9, 11, 13) and on.same_grid(finer)
    np.testing.assert_allclose(field[0], 1.5, atol=1e-6)
    np.testing.assert_allclose(field[1], 0.0, atol=1e-6)
    np.testing.assert_allclose(field[2], -0.5, atol=1e-6)


def test_export_transform_refuses_text_formats(tmp_path):
    fixed, _ = _volume("3d-flipped")
    u = np.zeros((3, *fixed.shape))
    for name in ("f.tfm", "f.txt"):
        with pytest.raises(InputError, match="cannot hold a displacement field"):
            io.export_transform(u, fixed, tmp_path / name)
    with pytest.raises(InputError, match="does not fit"):
        io.export_field(np.zeros((3, 4, 4, 4)), fixed, tmp_path / "f.nii.gz")


# ----------------------------------------------------------------------------------------------
# image round trips


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"])
@pytest.mark.parametrize("key", ["3d-flipped", "3d-rotated", "2d-rotated"])
def test_write_read_round_trip(tmp_path, suffix, key):
    volume, _ = _volume(key)
    path = tmp_path / f"img{suffix}"
    io.write_volume(volume, path)
    back = io.read_volume(path)
    assert back.name == "img"
    assert back.array.dtype == np.float32
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.spacing, volume.spacing, rtol=1e-6)
    np.testing.assert_allclose(back.origin, volume.origin, atol=1e-4)
    np.testing.assert_allclose(back.direction, volume.direction, atol=1e-5)
    assert back.metadata["format"] in ("NIfTI", "NRRD", "MetaImage")


def test_geometry_convention_matches_itk_points(tmp_path):
    """physical (array order) = origin + direction @ (index * spacing), reversed from ITK's."""
    volume, image = _volume("3d-rotated")
    sitk.WriteImage(image, str(tmp_path / "g.mha"))
    back = io.read_volume(tmp_path / "g.mha", name="g")
    assert back.name == "g"
    index = np.array([3, 7, 11])  # array order (z, y, x)
    ours = np.asarray(back.origin) + back.direction @ (index * np.asarray(back.spacing))
    itk = image.TransformIndexToPhysicalPoint(tuple(int(i) for i in index[::-1]))
    np.testing.assert_allclose(ours, itk[::-1], atol=1e-6)


@pytest.mark.parametrize(
    ("high", "dtype", "pixel"),
    [
        (200, np.uint8, sitk.sitkUInt8),
        (1000, np.uint16, sitk.sitkUInt16),
        (70000, np.int32, sitk.sitkInt32),
    ],
)
def test_labels_written_as_smallest_integer_type(tmp_path, high, dtype, pixel):
    arr = np.zeros((4, 5, 6), dtype=np.int64)
    arr[1, 2, 3] = high
    arr[2, 2, 2] = 3
    path = tmp_path / "labels.nii.gz"
    io.write_volume(Volume(arr, (1.0, 2.0, 3.0)), path, labels=True)
    assert sitk.ReadImage(str(path)).GetPixelID() == pixel
    back = io.read_volume(path)
    assert back.array.dtype == dtype
    np.testing.assert_array_equal(back.array, arr)


def test_labels_from_float_and_refused_fractions(tmp_path):
    arr = np.zeros((4, 5), dtype=np.float32)
    arr[1, 1] = 2.0
    io.write_volume(Volume(arr), tmp_path / "l.nrrd", labels=True)
    back = io.read_volume(tmp_path / "l.nrrd")
    assert back.array.dtype == np.uint8 and back.array[1, 1] == 2
    arr[2, 2] = 0.5
    with pytest.raises(InputError, match="non-integer"):
        io.write_volume(Volume(arr), tmp_path / "l2.nrrd", labels=True)


def test_image_written_as_float32(tmp_path):
    arr = np.arange(24, dtype=np.int64).reshape(4, 6)
    io.write_volume(Volume(arr, (0.5, 0.25), (1.0, 2.0)), tmp_path / "i.mha")
    image = sitk.ReadImage(str(tmp_path / "i.mha"))
    assert image.GetPixelID() == sitk.sitkFloat32
    assert image.GetSpacing() == (0.25, 0.5) and image.GetOrigin() == (2.0, 1.0)


def test_single_slice_and_single_frame_files_are_squeezed(tmp_path):
    one_slice = sitk.GetImageFromArray(np.ones((1, 5, 6), dtype=np.float32))
    one_slice.SetSpacing((0.5, 0.75, 3.0))
    sitk.WriteImage(one_slice, str(tmp_path / "s.nii.gz"))
    back = io.read_volume(tmp_path / "s.nii.gz")
    assert back.shape == (5, 6)
    np.testing.assert_allclose(back.spacing, (0.75, 0.5))

    one_frame = sitk.GetImageFromArray(np.ones((1, 3, 4, 5), dtype=np.float32), isVector=False)
    sitk.WriteImage(one_frame, str(tmp_path / "f.mha"))
    assert sitk.ReadImage(str(tmp_path / "f.mha")).GetDimension() == 4
    assert io.read_volume(tmp_path / "f.mha").shape == (3, 4, 5)


def test_dicom_series_folder_and_member_file(tmp_path):
    arr = (np.arange(4 * 5 * 6).reshape(4, 5, 6) * 7 - 50).astype(np.int16)
    volume = sitk.GetImageFromArray(arr)
    volume.SetSpacing((0.7, 0.8, 2.5))
    volume.SetOrigin((10.0, -20.0, 30.0))
    folder = tmp_path / "series"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(arr.shape[0]):
        plane = volume[:, :, z]
        plane.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1.4242")
        plane.SetMetaData("0008|0060", "CT")
        position = volume.TransformIndexToPhysicalPoint((0, 0, z))
        plane.SetMetaData("0020|0032", "\\".join(str(v) for v in position))
        plane.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
        plane.SetMetaData("0020|0013", str(z + 1))
        writer.SetFileName(str(folder / f"slice{z:02d}.dcm"))
        writer.Execute(plane)
    for path in (folder, folder / "slice02.dcm"):
        back = io.read_volume(path)
        assert back.metadata["format"] == "DICOM"
        np.testing.assert_array_equal(back.array, arr)
        np.testing.assert_allclose(back.spacing, (2.5, 0.8, 0.7), rtol=1e-5)
        np.testing.assert_allclose(back.origin, (30.0, -20.0, 10.0), atol=1e-4)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no DICOM series"):
        io.read_volume(empty)


# ----------------------------------------------------------------------------------------------
# resampling


def test_resample_linear_function_through_physical_space():
    """A function linear in LPS space is reproduced exactly by linear interpolation."""
    coef, const = np.array([0.3, -0.7, 1.1]), 5.0
    # moving: finer, shifted, with x and y flipped (ITK diag(-1, -1, 1))
    m_shape, m_spacing, m_origin = (30, 34, 38), (1.0, 0.9, 0.8), (-2.0, 14.0, 13.0)
    m_dir = np.diag([1.0, -1.0, -1.0])  # array order
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in m_shape], indexing="ij")).reshape(3, -1)
    points = np.asarray(m_origin)[:, None] + m_dir @ (idx * np.asarray(m_spacing)[:, None])
    values = (coef @ points + const).reshape(m_shape)
    moving = Volume(values, m_spacing, m_origin, m_dir, "moving")
    # fixed: coarser, anisotropic, rotated
    f_dir = _rotation_itk((10.0, 0.0, 15.0))[::-1, ::-1]
    fixed = Volume(np.zeros((8, 9, 10)), (2.5, 1.5, 1.2), (5.0, 2.0, 1.0), f_dir, "fixed")

    out = io.resample_to_grid(moving, fixed)
    assert out.shape == fixed.shape and out.same_grid(fixed)
    assert out.array.dtype == np.float32 and out.name == "moving"

    fidx = np.stack(np.meshgrid(*[np.arange(n) for n in fixed.shape], indexing="ij"))
    fidx = fidx.reshape(3, -1)
    fpoints = np.asarray(fixed.origin)[:, None] + f_dir @ (
        fidx * np.asarray(fixed.spacing)[:, None]
    )
    expected = (coef @ fpoints + const).reshape(fixed.shape)
    # continuous moving index of every fixed point, to know which lie inside the moving grid
    m_index = np.linalg.solve(m_dir, fpoints - np.asarray(m_origin)[:, None]) / np.asarray(
        m_spacing
    )[:, None]
    inside = np.all((m_index >= 0) & (m_index <= np.asarray(m_shape)[:, None] - 1), axis=0)
    inside = inside.reshape(fixed.shape)
    far = (m_index < -1) | (m_index > np.asarray(m_shape)[:, None])
    outside = np.any(far, axis=0).reshape(fixed.shape)
    assert inside.mean() > 0.5 and outside.any()
    np.testing.assert_allclose(out.array[inside], expected[inside], atol=1e-3)
    np.testing.assert_allclose(out.array[outside], values.min())


def test_resample_labels_nearest_on_integer_offsets():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, size=(12, 14, 16)).astype(np.uint8)
    moving = Volume(labels, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), name="labels")
    # every other moving voxel, starting 2 voxels in; the last rows fall outside the moving grid
    fixed = Volume(np.zeros((6, 7, 9)), (2.0, 2.0, 2.0), (2.0, 2.0, 2.0))
    out = io.resample_to_grid(moving, fixed, labels=True)
    assert out.array.dtype == np.uint8
    np.testing.assert_array_equal(out.array[:5, :6, :7], labels[2::2, 2::2, 2::2])
    assert (out.array[:, :, 7:] == 0).all()


def test_resample_identical_grid_is_identity():
    volume, _ = _volume("2d-rotated")
    out = io.resample_to_grid(volume, volume)
    np.testing.assert_allclose(out.array, volume.array, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# errors and helpers


def test_rgb_image_is_refused(tmp_path):
    rgb = sitk.GetImageFromArray(np.zeros((5, 6, 3), dtype=np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "photo.mha"))
    with pytest.raises(InputError, match=r"photo\.mha has 3 components per voxel \(RGB\?\)"):
        io.read_volume(tmp_path / "photo.mha")


def test_4d_image_is_refused(tmp_path):
    sitk.WriteImage(
        sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), dtype=np.float32), isVector=False),
        str(tmp_path / "series.nii.gz"),
    )
    with pytest.raises(InputError, match="4D image.*single time point"):
        io.read_volume(tmp_path / "series.nii.gz")


def test_missing_bad_extension_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="not found.*nothere.nii.gz"):
        io.read_volume(tmp_path / "nothere.nii.gz")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputError, match="picture.png.*unknown extension .png"):
        io.read_volume(tmp_path / "picture.png")
    (tmp_path / "broken.nii.gz").write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="broken.nii.gz"):
        io.read_volume(tmp_path / "broken.nii.gz")
    with pytest.raises(InputError, match="unknown extension"):
        io.write_volume(Volume(np.zeros((3, 3))), tmp_path / "out.png")
    with pytest.raises(InputError, match="does not exist"):
        io.write_volume(Volume(np.zeros((3, 3))), tmp_path / "no" / "out.nii.gz")


def test_direction_and_grid_description():
    plain = Volume(np.zeros((4, 5, 6)), (1.0, 0.5, 2.0), (1.0, -2.0, 3.5))
    assert io.direction_is_identity(plain)
    text = io.describe_grid(plain)
    assert text == "shape 4x5x6, spacing 1x0.5x2 mm, origin (1, -2, 3.5) mm"
    flipped, _ = _volume("3d-flipped")
    assert not io.direction_is_identity(flipped)
    assert "direction" in io.describe_grid(flipped)
