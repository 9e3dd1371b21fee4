"""Session-wide settings for the test suite (imported before any test module)."""

import os

# ITK-based peers (ANTs, elastix) are reproducible only on one thread; with several, a 2D ANTs SyN
# run was seen to diverge once in a full-suite run. Must be set before ITK starts its threads.
os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine two threads can be many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def sample_in_widget(make_napari_viewer):
    """``open(ndim, method) -> (viewer, widget, pair)``: the bundled brain pair of ``ndim``
    dimensions (images and labels, on their spacing) in a viewer, with the Registration dock
    widget's inputs set to them and ``method`` chosen."""

    def open_sample(ndim: int, method: str):
        from napari_deepreg.sample import load_sample

        pair = load_sample(f"brain{ndim}d")
        viewer = make_napari_viewer()
        scale = pair["fixed"].spacing
        viewer.add_image(pair["fixed"].array, name="fixed", scale=scale)
        viewer.add_image(pair["moving"].array, name="moving", scale=scale)
        viewer.add_labels(pair["fixed_labels"].array, name="fixed labels", scale=scale)
        viewer.add_labels(pair["moving_labels"].array, name="moving labels", scale=scale)
        _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
        widget.method.value = method
        widget.fixed_image.value = viewer.layers["fixed"]
        widget.moving_image.value = viewer.layers["moving"]
        widget.fixed_labels.value = viewer.layers["fixed labels"]
        widget.moving_labels.value = viewer.layers["moving labels"]
        return viewer, widget, pair

    return open_sample


@pytest.fixture
def run_in_widget(qtbot):
    """``run(widget, names, timeout_ms)``: choose the input layers named ``names`` (fixed,
    moving, fixed labels, moving labels) and run the registration in the widget's thread worker
    to its end (the worker is created unstarted so its finished signal cannot be missed)."""

    def run(widget, names, timeout_ms: int = 120_000):
        boxes = (widget.fixed_image, widget.moving_image, widget.fixed_labels,
                 widget.moving_labels)
        for box, name in zip(boxes, names, strict=True):
            box.value = widget.viewer.layers[name]
        worker = widget.run(start=False)
        assert worker is not None, widget.status.text()
        with qtbot.waitSignal(worker.finished, timeout=timeout_ms):
            worker.start()
        return worker

    return run
