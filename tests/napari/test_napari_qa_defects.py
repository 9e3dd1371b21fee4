"""Small defects of what a QA user sees (issue 17): the scale bar's unit, the residual TRE
vectors' magnification, and a warning before a folding transform is inverted."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepreg import reuse
from napari_deepreg._napari import _reuse
from napari_deepreg._napari._landmarks import VECTOR_MAGNIFICATION, VECTORS_NAME
from napari_deepreg._napari._legend import canvas_overlay, legend_lines
from napari_deepreg.volume import Volume


@pytest.fixture
def ran_2d(sample_in_widget, qtbot, one_thread):
    """The 2D sample (scale given, units napari's default) registered with tiny settings,
    with three landmark pairs (the moving ones 2 mm off)."""
    viewer, widget, pair = sample_in_widget(2, "instance_opt")
    widget.device.value = "cpu"
    widget.set_parameters(levels=1, iterations=3, affine_first=False)
    fixed = viewer.layers["fixed"]
    extent = np.asarray(fixed.data.shape) * np.asarray(fixed.scale)
    p = extent * np.array([[0.4, 0.4], [0.6, 0.5], [0.5, 0.3]])
    viewer.add_points(p, name="fixed landmarks")
    viewer.add_points(p + np.array([2.0, 0.0]), name="moving landmarks")
    widget.fixed_points.value = viewer.layers["fixed landmarks"]
    widget.moving_points.value = viewer.layers["moving landmarks"]
    worker = widget.run(start=False)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()
    assert widget.result is not None, widget.status.text()
    return viewer, widget


def scale_bar_text(viewer) -> str:
    canvas = viewer.window._qt_viewer.canvas
    canvas._update_world_units()  # what the next draw does after a change of units
    overlay = canvas_overlay(viewer, "scale_bar")
    visuals = canvas._viewer_overlay_to_visual[overlay]
    visual = visuals[0] if isinstance(visuals, list) else visuals
    visual._on_size_or_zoom_change(force=True)
    return visual.node.text.text


def test_the_scale_bar_reads_mm(ran_2d):
    viewer, _ = ran_2d
    assert canvas_overlay(viewer, "scale_bar").visible
    assert [str(u) for u in viewer.layers.units] == ["millimeter", "millimeter"]
    assert scale_bar_text(viewer).endswith("mm")
    # a layer added later (a comparison, a preview) keeps the bar in mm
    viewer.add_image(np.zeros((8, 8), np.float32), name="later", scale=(4.0, 4.0))
    assert [str(u) for u in viewer.layers.units] == ["millimeter", "millimeter"]
    assert scale_bar_text(viewer).endswith("mm")


def test_residual_vectors_are_drawn_magnified_and_say_so(ran_2d):
    viewer, widget = ran_2d
    vectors = viewer.layers[VECTORS_NAME]
    assert VECTOR_MAGNIFICATION >= 3
    assert vectors.length == VECTOR_MAGNIFICATION
    assert f"x{VECTOR_MAGNIFICATION:g}" in vectors.name
    # the data stay true mm: the residual of each pair, not magnified
    errors = widget.landmarks.errors
    np.testing.assert_allclose(vectors.data[:, 1], errors.residual)
    assert any(f"x{VECTOR_MAGNIFICATION:g}" in line for line in legend_lines(viewer))
    assert f"x{VECTOR_MAGNIFICATION:g}" in widget.landmarks.summary.text()


def folding_field(shape=(32, 32), spacing=(1.0, 1.0)) -> np.ndarray:
    """A field whose map folds in a band (x + u(x) runs backwards there)."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    u = np.zeros((2, *shape), np.float32)
    u[1] = -3.0 * np.exp(-((x - 16) ** 2) / 4.0) * (x - 16)  # slope -1.5 at the centre
    return u


def test_folds_are_found_before_inverting():
    folded, percent, smallest = reuse.folds(folding_field(), (1.0, 1.0))
    assert folded > 0 and 0 < percent < 100 and smallest <= 0
    assert reuse.folds(np.zeros((2, 16, 16), np.float32), (1.0, 1.0))[0] == 0
    assert reuse.fold_warning(np.zeros((2, 16, 16), np.float32), (1.0, 1.0)) is None
    assert "not defined" in reuse.fold_warning(folding_field(), (1.0, 1.0))


def test_inverting_a_folding_transform_in_the_dock_warns(ran_2d, monkeypatch):
    viewer, widget = ran_2d
    warnings: list[str] = []
    monkeypatch.setattr(_reuse, "show_warning", warnings.append)
    panel = widget.reuse
    panel.invert()  # the last run: smooth, no folds, no warning
    assert warnings == [] and "WARNING" not in panel.summary.text()

    fixed = Volume(np.zeros((32, 32), np.float32), (1.0, 1.0))
    panel._set(folding_field(), fixed, "a folding field")
    panel.invert()
    assert len(warnings) == 1 and "J <= 0" in warnings[0] and "not defined" in warnings[0]
    assert "WARNING" in panel.summary.text() and "accurate to" in panel.summary.text()


def test_mm_units_keep_a_3d_volume_sliced_where_it_was(make_napari_viewer):
    """napari 0.9 slices a layer with the units it last had: without a fresh slice a 3D volume
    whose units change shows a wrong (empty) plane until the slider moves."""
    viewer = make_napari_viewer()
    data = np.zeros((20, 16, 12), np.float32)
    data[:, 4:12, 3:9] = np.arange(20, dtype=np.float32)[:, None, None] + 1
    layer = viewer.add_image(data, scale=(2.0, 2.0, 2.0), translate=(-40.0, 10.0, 5.0))
    viewer.dims.set_point(0, -40.0 + 2.0 * 7)  # plane 7
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), data[7])
    from napari_deepreg._napari._legend import show_legend

    show_legend(viewer)
    assert str(layer.units[0]) == "millimeter"
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), data[7])
