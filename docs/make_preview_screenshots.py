"""Make the README's pictures of the Smoothness preview and the before | after view.

Run it with a display (under Xvfb on a headless machine)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_preview_screenshots.py

It opens the "Brain 3D pair (2 mm)" sample with the Registration dock (instance_opt) and writes
into ``docs/``:

* ``inspect_preview.png``: the Smoothness section's preview at two weights (0.01 and 3) side by
  side (the preview Jacobian over the fixed image, on the coarse 4 mm grid), and the section
  with its history table;
* ``inspect_side_by_side.png``: after the full-resolution run, *Before | after side by side*:
  fixed + moving (left) and fixed + warped (right) in napari's grid mode.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from make_inspect_screenshots import grab, save_small, spin  # docs/ is on sys.path
from make_screenshot import open_sample_widget
from qtpy.QtWidgets import QApplication, QScrollArea

from napari_deepreg._napari._preview import PREVIEW_JACOBIAN_NAME

HERE = Path(__file__).resolve().parent


def wait(predicate, timeout: float = 600.0) -> None:
    start = time.perf_counter()
    while not predicate():
        QApplication.instance().processEvents()
        time.sleep(0.02)
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the worker did not finish")


def section_box(panel):
    box = panel.parentWidget()
    while box is not None and not hasattr(box, "expand"):
        box = box.parentWidget()
    return box


def side_by_side(*images: np.ndarray, gap: int = 8) -> np.ndarray:
    height = max(a.shape[0] for a in images)
    parts = []
    for image in images:
        image = np.asarray(image)[..., :3]
        pad = np.full((height - image.shape[0], image.shape[1], 3), 255, np.uint8)
        parts += [np.concatenate([image, pad]), np.full((height, gap, 3), 255, np.uint8)]
    return np.concatenate(parts[:-1], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()

    viewer, widget = open_sample_widget((1440, 900), "instance_opt", [])
    viewer.dims.set_point(0, float(np.mean(viewer.layers["fixed"].extent.world[:, 0])))
    content = widget.findChild(QScrollArea).widget()
    box = section_box(widget.preview)
    box.expand(animate=False)
    panel = widget.preview

    canvases = []
    for weight in (0.01, 3.0):
        panel.set_weight(weight, preview=False)
        panel.start_preview()
        wait(lambda: panel.worker is None)
        print(panel.status.text())
        for layer in viewer.layers:
            layer.visible = layer.name in ("fixed", PREVIEW_JACOBIAN_NAME)
        viewer.reset_view()
        spin(30)
        canvases.append(viewer.screenshot(canvas_only=True, flash=False))
    content.adjustSize()
    spin()
    shot = grab(content, args.out / "scratch.png")
    top = box.mapTo(content, box.rect().topLeft()).y()
    bottom = top + box.height()
    dock = shot[top:bottom + 4]
    canvases = side_by_side(*canvases)
    picture = side_by_side(canvases, dock) if dock.shape[0] <= canvases.shape[0] else canvases
    save_small(picture, args.out / "inspect_preview.png")
    if dock.shape[0] > canvases.shape[0]:
        save_small(dock, args.out / "inspect_preview_dock.png")

    # the full-resolution run with the default weight, then before | after
    panel.set_weight(0.3, preview=False)
    worker = panel.use_value()
    assert worker is not None, widget.status.text()
    wait(lambda: widget.worker is None)
    print(widget.status.text())
    widget.compare.side_button.setChecked(True)
    dock = widget.parentWidget()
    while dock is not None and not hasattr(dock, "setFloating"):  # the QDockWidget
        dock = dock.parentWidget()
    dock.hide()  # the whole window's width for the two views
    spin(10)
    viewer.reset_view()
    spin(30)
    save_small(viewer.screenshot(canvas_only=True, flash=False),
               args.out / "inspect_side_by_side.png", max_width=1200)
    dock.show()
    widget.compare.side_button.setChecked(False)
    viewer.close()


if __name__ == "__main__":
    main()
