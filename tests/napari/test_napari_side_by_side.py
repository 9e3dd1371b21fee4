"""Before | after side by side in napari's grid mode, and the user's layout restored."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepreg._napari._legend import canvas_overlay
from napari_deepreg._napari._side_by_side import AFTER_PREFIX, BEFORE_PREFIX, CAPTION, viewer_grid


@pytest.fixture
def ran(sample_in_widget, qtbot, one_thread):
    viewer, widget, pair = sample_in_widget(2, "instance_opt")
    widget.device.value = "cpu"
    widget.set_parameters(levels=1, iterations=3, affine_first=False)
    worker = widget.run(start=False)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()
    assert widget.result is not None
    return viewer, widget


def layout(viewer):
    return ([(layer.name, layer.visible) for layer in viewer.layers],
            (viewer_grid(viewer).enabled, viewer_grid(viewer).stride,
             tuple(viewer_grid(viewer).shape)),
            canvas_overlay(viewer, "text").text)


def test_side_by_side_shows_before_and_after_and_restores_the_layout(ran):
    viewer, widget = ran
    viewer_grid(viewer).stride = 1  # the user's own settings, to get back
    viewer_grid(viewer).shape = (-1, 3)
    before = layout(viewer)
    names_before = [layer.name for layer in viewer.layers]

    button = widget.compare.side_button
    assert button.isEnabled()
    button.setChecked(True)
    grid = viewer_grid(viewer)
    assert grid.enabled and grid.stride == 2 and tuple(grid.shape) == (1, 2)
    layers = list(viewer.layers)
    shown = [layer for layer in layers if layer.visible]
    assert [layer.name for layer in shown] == [
        BEFORE_PREFIX + "fixed", BEFORE_PREFIX + "moving",
        AFTER_PREFIX + "fixed", AFTER_PREFIX + "warped moving"]
    positions = [grid.position(layers.index(layer), layers) for layer in shown]
    assert positions == [(0, 0)] * 2 + [(0, 1)] * 2  # before left, after right
    assert grid.actual_shape(layers) == (1, 2)
    # shared, not copied: the after view shows the result, the before view the input
    np.testing.assert_array_equal(viewer.layers[AFTER_PREFIX + "warped moving"].data,
                                  widget.result.warped)
    np.testing.assert_array_equal(viewer.layers[BEFORE_PREFIX + "moving"].data,
                                  viewer.layers["moving"].data)
    assert canvas_overlay(viewer, "text").text == CAPTION

    button.setChecked(False)
    assert layout(viewer) == before
    assert [layer.name for layer in viewer.layers] == names_before


def test_a_new_run_or_the_flicker_leaves_the_side_by_side_view(ran, qtbot):
    viewer, widget = ran
    before = layout(viewer)
    widget.compare.side_button.setChecked(True)
    widget.compare.flicker.setChecked(True)
    assert not widget.compare.side_button.isChecked()
    widget.compare.flicker.setChecked(False)
    from napari_deepreg._napari._compare import COMPARE_NAME

    if COMPARE_NAME in viewer.layers:
        viewer.layers.remove(COMPARE_NAME)
    assert layout(viewer)[1] == before[1]

    widget.compare.side_button.setChecked(True)
    worker = widget.run(start=False)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()
    assert not viewer_grid(viewer).enabled
    assert not any(layer.name.startswith((BEFORE_PREFIX, AFTER_PREFIX))
                   for layer in viewer.layers)
    assert not widget.compare.side_button.isChecked()
