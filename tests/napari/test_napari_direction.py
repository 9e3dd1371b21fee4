"""Result layers keep the fixed image's direction: saved through the plugin's writer, a warped
image, warped labels or Jacobian has the fixed file's affine (spacing, origin and direction).

The fixed image is written with a direction that is not the identity (a 90 degree turn in the
(y, x) plane and a flipped z axis), anisotropic spacing and an origin away from 0, opened
through the plugin's reader (which keeps the direction in the layer's metadata), registered in
the dock widget's worker and the result layers saved with *File > Save Selected Layer*'s path
(``napari.save_layers`` with the plugin's writer).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from napari_deepreg._napari import _widget
from napari_deepreg._napari._layers import JACOBIAN_NAME, WARPED_LABELS_NAME, warped_name
from napari_deepreg.io import write_volume
from napari_deepreg.volume import Volume

SHAPE = (14, 18, 16)
SPACING = (2.0, 1.2, 1.5)  # mm per array axis (z, y, x)
ORIGIN = (12.5, -30.0, 7.25)  # mm
# array-order direction cosines (column j = physical direction of array axis j): z flipped,
# y and x swapped (a 90 degree turn in that plane)
DIRECTION = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def _pair() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in SHAPE], indexing="ij")
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, (7, 9, 8), (4, 5, 5), strict=True))
    fixed = ndimage.gaussian_filter((inside <= 1).astype(np.float32) + 0.1, 1.0)
    moving = np.roll(fixed, (1, -1, 1), axis=(0, 1, 2))
    fixed_labels = (fixed > 0.5).astype(np.int32)
    moving_labels = np.roll(fixed_labels, (1, -1, 1), axis=(0, 1, 2))
    return fixed, moving, fixed_labels, moving_labels


def test_saved_result_layers_have_the_fixed_affine(
    make_napari_viewer, run_in_widget, tmp_path, monkeypatch
):
    import napari

    errors: list[str] = []
    monkeypatch.setattr(_widget, "show_error", errors.append)
    fixed, moving, fixed_labels, moving_labels = _pair()
    paths = {}
    for name, array, labels in (
        ("fixed", fixed, False),
        ("moving", moving, False),
        ("fixed_seg", fixed_labels, True),
        ("moving_seg", moving_labels, True),
    ):
        paths[name] = tmp_path / f"{name}.nii.gz"
        write_volume(Volume(array, SPACING, ORIGIN, DIRECTION, name), paths[name], labels=labels)
    reference = sitk.ReadImage(str(paths["fixed"]))
    # the file holds the geometry asked for (ITK order is (x, y, z): reversed rows and columns)
    np.testing.assert_allclose(
        np.reshape(reference.GetDirection(), (3, 3)), DIRECTION[::-1, ::-1], atol=1e-6
    )

    viewer = make_napari_viewer()
    for name in ("fixed", "moving", "fixed_seg", "moving_seg"):
        viewer.open(str(paths[name]), plugin="napari-deepreg")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
    widget.method.value = "instance_opt"
    widget.set_parameters(iterations=2, levels=1, affine_first=False)
    run_in_widget(widget, ("fixed", "moving", "fixed_seg", "moving_seg"), 120_000)
    assert errors == [] and widget.result is not None, (errors, widget.status.text())

    for layer_name, file_name in (
        (warped_name("moving"), "warped.nii.gz"),
        (WARPED_LABELS_NAME, "warped_labels.nii.gz"),
        (JACOBIAN_NAME, "jacobian.nii.gz"),
    ):
        layer = viewer.layers[layer_name]
        # placed on the fixed grid in the viewer ...
        np.testing.assert_allclose(layer.scale, viewer.layers["fixed"].scale)
        np.testing.assert_allclose(layer.translate, viewer.layers["fixed"].translate)
        # ... and written with the fixed file's geometry
        path = tmp_path / file_name
        written = napari.save_layers(str(path), [layer], plugin="napari-deepreg")
        assert [str(p) for p in written] == [str(path)]
        saved = sitk.ReadImage(str(path))
        np.testing.assert_allclose(saved.GetSpacing(), reference.GetSpacing(), rtol=1e-6)
        np.testing.assert_allclose(saved.GetOrigin(), reference.GetOrigin(), atol=1e-5)
        np.testing.assert_allclose(
            saved.GetDirection(), reference.GetDirection(), atol=1e-6, err_msg=layer_name
        )
        # the NIfTI affine as any other tool reads it (nibabel: RAS, voxel (i, j, k) -> mm)
        np.testing.assert_allclose(
            nib.load(path).affine, nib.load(paths["fixed"]).affine, atol=1e-4, err_msg=layer_name
        )
