"""The widget with the 2D-only FlowNet + ROI model: the chooser and its tooltip say it is a 2D
method, and a 3D pair is refused with a message before any work (no slice-by-slice mode)."""

from __future__ import annotations

import numpy as np

from napari_deepreg._napari import _widget


def test_flownet_roi_says_it_is_2d_and_refuses_a_volume(make_napari_viewer, qtbot,
                                                          monkeypatch):
    errors: list[str] = []
    monkeypatch.setattr(_widget, "show_error", lambda message: errors.append(str(message)))
    viewer = make_napari_viewer()
    rng = np.random.default_rng(2)
    viewer.add_image(rng.random((12, 32, 30), dtype=np.float32), name="fixed")
    viewer.add_image(rng.random((12, 32, 30), dtype=np.float32), name="moving")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
    widget.method.reset_choices()
    titles = [widget.method.native.itemText(i) for i in range(widget.method.native.count())]
    assert "FlowNet + ROI (2D only, flownet_roi_2d) [2D]" in titles, titles
    widget.method.value = "flownet_roi_2d"
    assert "2D method" in widget.method.tooltip
    assert "slice by slice is not offered" in widget.method.tooltip
    widget.fixed_image.value = viewer.layers["fixed"]
    widget.moving_image.value = viewer.layers["moving"]
    n_layers = len(viewer.layers)
    worker = widget.run(start=False)
    assert worker is not None, "the widget refused to start"
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        worker.start()
    assert len(errors) == 1, errors
    assert "supports 2D images, not 3D" in errors[0] and "[3D]" in errors[0], errors
    assert len(viewer.layers) == n_layers
