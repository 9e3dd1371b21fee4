"""Reuse of a transform in the dock (issue 17), after a real registration (instance_opt, small
settings) of the bundled 2D pair: apply the result to other layers (image linear, labels
label-preserving, points with the inverse), invert, save, load and compose."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels

from napari_deepreg import metrics
from napari_deepreg._napari import _reuse, _widget
from napari_deepreg.volume import InputError


@pytest.fixture
def real_run(make_napari_viewer, run_in_widget, monkeypatch):
    errors: list[str] = []
    monkeypatch.setattr(_widget, "show_error", errors.append)
    viewer = make_napari_viewer()
    viewer.open_sample("napari-deepreg", "brain2d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
    widget.method.value = "instance_opt"
    widget.set_parameters(iterations=2, levels=1, affine_first=False)
    run_in_widget(widget, ("fixed", "moving", "fixed labels", "moving labels"), 120_000)
    assert errors == [] and widget.result is not None, (errors, widget.status.text())
    return viewer, widget, errors


def test_apply_to_image_and_labels_gives_the_result_layers(real_run):
    viewer, widget, errors = real_run
    panel, result = widget.reuse, widget.result
    assert "last run (instance_opt)" in panel.summary.text()
    # the chooser offers the user's layers, not the plugin's own result layers
    names = [layer.name for layer in panel.layer.choices]
    assert {"fixed", "moving", "moving labels"} <= set(names)
    assert not any(name.startswith("[deepreg]") for name in names)
    image = panel.apply(viewer.layers["moving"])
    scale = float(np.abs(result.warped).max())
    np.testing.assert_allclose(image.data, result.warped, atol=1e-5 * scale)
    np.testing.assert_allclose(image.scale, result.spacing)
    labels = panel.apply(viewer.layers["moving labels"])
    assert isinstance(labels, Labels)
    np.testing.assert_array_equal(labels.data, result.warped_labels)
    assert errors == []


def test_points_go_back_with_the_inverse(real_run):
    viewer, widget, _ = real_run
    result = widget.result
    fixed = viewer.layers["fixed"]
    extent = np.asarray(fixed.data.shape) * np.asarray(fixed.scale)
    p = np.asarray(fixed.translate) + extent * np.array([[0.4, 0.4], [0.6, 0.5], [0.5, 0.3]])
    q = metrics.map_points(p, result.field, result.spacing, result.origin)  # where p lands
    layer = viewer.add_points(q, name="moving notes")
    moved = widget.reuse.apply(layer)
    np.testing.assert_allclose(moved.data, p, atol=0.05)  # mm, the inverse's accuracy


def test_invert_save_load_and_compose_give_the_identity(real_run, tmp_path):
    viewer, widget, _ = real_run
    panel, result = widget.reuse, widget.result
    panel.save(tmp_path / "forward.h5")
    accuracy = panel.invert()
    assert accuracy < 0.05 and "inverse accurate to" in panel.summary.text()
    panel.save(tmp_path / "inverse.nii.gz")
    panel.load(tmp_path / "forward.h5")
    np.testing.assert_allclose(panel.field, result.field, atol=1e-4)
    panel.compose(tmp_path / "inverse.nii.gz")  # forward, then its inverse
    inner = np.linalg.norm(panel.field, axis=0)[5:-5, 5:-5]
    assert inner.max() < 0.05, inner.max()
    assert "then inverse.nii.gz" in panel.summary.text()


def test_save_keeps_a_users_file_and_lists_its_own(real_run, tmp_path, monkeypatch):
    """The panel's Save follows the output rules (issue 18): listed in outputs.json, a user's
    file replaced only after the user agrees, never through a link."""
    from napari_deepreg.io import read_manifest

    _, widget, _ = real_run
    panel = widget.reuse
    mine = tmp_path / "transform.h5"
    mine.write_bytes(b"the user's")
    with pytest.raises(InputError, match="overwrite"):
        panel.save(mine)
    assert mine.read_bytes() == b"the user's"
    panel.save(mine, overwrite=True)
    assert read_manifest(tmp_path)["other_files"]["transform.h5"]["command"].startswith("widget")
    panel.save(mine)  # ours now
    target = tmp_path / "elsewhere.nii.gz"
    target.write_bytes(b"not to be touched")
    (tmp_path / "link.nii.gz").symlink_to(target)
    with pytest.raises(InputError, match="symbolic link"):
        panel.save(tmp_path / "link.nii.gz", overwrite=True)
    assert target.read_bytes() == b"not to be touched"
    # the dialog: the user is asked before a file of theirs is replaced
    other = tmp_path / "other.h5"
    other.write_bytes(b"the user's")
    monkeypatch.setattr(_reuse.QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(other), "")))
    asked = []
    monkeypatch.setattr(_reuse._ui, "ask", lambda *a: asked.append(a) or False)
    panel.save_button.click()
    assert len(asked) == 1 and other.read_bytes() == b"the user's"
