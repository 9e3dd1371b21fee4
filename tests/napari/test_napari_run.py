"""End to end in the viewer with the real default method and the bundled sample data."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_deepreg._napari import _widget
from napari_deepreg._napari._layers import PREFIX, is_result_layer

SCALE = (1.5, 1.0, 1.2)
TRANSLATE = (10.0, -5.0, 3.0)
SHAPE = (24, 28, 24)


def ellipsoids(shape, centres, radii) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    image = np.full(shape, 0.1, dtype=np.float32)
    for k, (c, r) in enumerate(zip(centres, radii, strict=True), start=1):
        inside = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip(grids, c, r, strict=True)) <= 1
        image[inside] = 0.3 + 0.3 * k
    return ndimage.gaussian_filter(image, 1.0)  # soft edges give the optimiser a gradient


def test_instance_opt_run_in_the_viewer(make_napari_viewer, qtbot, monkeypatch):
    errors: list[str] = []
    monkeypatch.setattr(_widget, "show_error", errors.append)
    fixed = ellipsoids(SHAPE, [(12, 14, 12), (12, 14, 12)], [(8, 9, 8), (4, 4, 4)])
    moving = np.roll(fixed, (1, -1, 2), axis=(0, 1, 2))  # moved by (1.5, -1, 2.4) mm
    fixed_labels = (fixed > 0.5).astype(np.int32) + (fixed > 0.8).astype(np.int32)
    moving_labels = np.roll(fixed_labels, (1, -1, 2), axis=(0, 1, 2))

    viewer = make_napari_viewer()
    geometry = {"scale": SCALE, "translate": TRANSLATE}
    layers = [
        viewer.add_image(fixed, name="fixed", **geometry),
        viewer.add_image(moving, name="moving", **geometry),
        viewer.add_labels(fixed_labels, name="fixed labels", **geometry),
        viewer.add_labels(moving_labels, name="moving labels", **geometry),
    ]
    copies = [np.array(layer.data, copy=True) for layer in layers]
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
    widget.method.value = "instance_opt"
    widget.set_parameters(levels=1, iterations=30, affine_first=False, similarity="mse")
    assert widget.moving_labels.value is layers[3]

    worker = widget.run(start=False)
    progress = []
    worker.yielded.connect(progress.append)
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        worker.start()
    assert errors == []
    # reports pass at most ~10 a second (_run.throttled), the end of each phase always
    assert len(progress) >= 2 and progress[-1].message == "done"

    made = [layer for layer in viewer.layers if is_result_layer(layer.name, layer.metadata)]
    assert len(made) == 6 and all(layer.name.startswith(PREFIX) for layer in made)
    for layer in made:
        np.testing.assert_allclose(layer.scale, SCALE)
        np.testing.assert_allclose(layer.translate, TRANSLATE)
    for layer, copy in zip(layers, copies, strict=True):
        np.testing.assert_array_equal(layer.data, copy)
    metrics = widget.result.metrics
    assert metrics["dice_before"] < 0.7 and metrics["dice_after"] > 0.9
    assert metrics["fold_percent"] == 0.0
