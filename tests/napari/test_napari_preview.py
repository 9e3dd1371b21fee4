"""The Smoothness section: a weight change previews the result at reduced resolution in a
thread worker (cancellable, the viewer never waits), and a stronger weight previews smoother."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_deepreg._napari._preview import (
    PREVIEW_JACOBIAN_NAME,
    PREVIEW_LABELS_NAME,
    slider_to_weight,
    weight_to_slider,
)


@pytest.fixture
def brain2d(sample_in_widget, one_thread):
    viewer, widget, pair = sample_in_widget(2, "instance_opt")
    widget.device.value = "cpu"
    return viewer, widget, pair


def preview_once(qtbot, panel, weight: float):
    """Set the weight, start the preview worker and wait for it; the preview's metrics."""
    panel.set_weight(weight, preview=False)
    worker = panel.start_preview(start=False)
    assert worker is not None, panel.status.text()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        clock = time.perf_counter()
        worker.start()
        assert time.perf_counter() - clock < 0.5  # the Qt thread does not wait for it
    return dict(panel.result.metrics)


def test_slider_is_logarithmic():
    assert slider_to_weight(0) == pytest.approx(1e-3)
    assert slider_to_weight(100) == pytest.approx(100.0)
    assert weight_to_slider(slider_to_weight(37)) == 37
    assert weight_to_slider(0.0) == 0


def test_a_weight_change_previews_and_stronger_is_smoother(qtbot, brain2d):
    viewer, widget, pair = brain2d
    panel = widget.preview
    assert panel.parameter == "regularisation"
    assert panel.value() == pytest.approx(widget.config().regularisation)

    rough = preview_once(qtbot, panel, 0.01)
    jac = viewer.layers[PREVIEW_JACOBIAN_NAME]
    labels = viewer.layers[PREVIEW_LABELS_NAME]
    assert jac.visible and labels.contour == 1
    assert not labels.visible  # contours on the coarse grid would cover the anatomy
    # the coarse grid overlays the fixed image: same physical extent, 4x the spacing
    np.testing.assert_allclose(jac.scale, np.asarray(pair["fixed"].spacing) * 4)
    assert jac.data.shape == (49, 40)
    assert tuple(jac.contrast_limits) == (0.0, 2.0)

    smooth = preview_once(qtbot, panel, 3.0)
    assert viewer.layers[PREVIEW_JACOBIAN_NAME] is jac  # updated in place
    assert smooth["sdlogj"] < 0.5 * rough["sdlogj"]
    assert smooth["fold_percent"] <= rough["fold_percent"]
    assert [row[0] for row in panel.history] == ["3", "0.01"]
    assert "SDlogJ" in panel.status.text() and "49x40" in panel.status.text()
    # the input layers are untouched, and the full run's parameters too (until asked)
    assert widget.config().regularisation == pytest.approx(0.3)


def test_moving_the_slider_starts_a_preview_and_a_newer_value_cancels_the_older(
        qtbot, brain2d):
    viewer, widget, _ = brain2d
    panel = widget.preview
    panel.slider.setValue(weight_to_slider(0.01))  # as a user drags it
    panel.slider.setValue(weight_to_slider(10.0))
    qtbot.waitUntil(lambda: panel.worker is not None, timeout=5_000)  # after the debounce
    qtbot.waitUntil(lambda: panel.result is not None and panel.worker is None, timeout=60_000)
    assert len(panel.history) == 1  # only the last value was previewed
    assert float(panel.history[0][0]) == pytest.approx(panel.value(), rel=1e-3)
    # a new value while a preview runs: the running one is told to quit, the new one follows
    panel.set_weight(0.5, preview=False)
    worker = panel.start_preview()
    assert worker is not None
    panel.set_weight(2.0, preview=False)
    assert panel.start_preview() is None and panel._pending
    qtbot.waitUntil(lambda: panel.worker is None and not panel._pending
                    and panel.history[0][0] == "2", timeout=60_000)
    assert all(row[0] != "0.5" for row in panel.history)


def test_cancel_stops_a_preview(qtbot, brain2d):
    _, widget, _ = brain2d
    panel = widget.preview
    panel.size.setValue(256)  # full resolution of the 2D pair: a longer preview to cancel
    worker = panel.start_preview(start=False)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()
        panel.cancel()
    assert panel.result is None and "cancelled" in panel.status.text()


def test_run_full_resolution_uses_the_chosen_weight(qtbot, brain2d):
    _, widget, _ = brain2d
    widget.set_parameters(levels=1, iterations=5, affine_first=False)
    panel = widget.preview
    panel.set_weight(2.5, preview=False)
    worker = panel.use_value(start=False)
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()
    assert widget.config().regularisation == pytest.approx(2.5)
    assert widget.result.parameters["regularisation"] == pytest.approx(2.5)
    widget.set_parameters(regularisation=0.7)  # typed among the parameters: the slider follows
    assert panel.value() == pytest.approx(0.7)
