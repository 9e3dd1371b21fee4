"""Make the README's landmarks / reuse picture on the bundled 2D pair (fast: instance_opt).

Run it with a display (under Xvfb on a headless machine)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_landmarks_screenshot.py

Twelve fixed landmarks are placed on a grid inside the brain; their moving partners are where
the sample's known true field takes them (``sample.load_sample``), so TRE before is the true
motion and TRE after what the registration left. Writes ``docs/inspect_landmarks.png``: the
canvas (landmarks coloured and sized by TRE after, residual vectors in yellow) beside the dock's
Landmarks and Reuse sections.
"""

from __future__ import annotations

import time
from pathlib import Path

import napari
import numpy as np
from make_inspect_screenshots import grab, save_small, spin  # docs/ is on sys.path
from qtpy.QtWidgets import QApplication, QScrollArea

from napari_deepreg import metrics
from napari_deepreg._napari._landmarks import POINTS_NAME, VECTORS_NAME
from napari_deepreg.sample import load_sample

HERE = Path(__file__).resolve().parent


def main() -> None:
    viewer = napari.Viewer(title="napari-deepreg", show=True)
    viewer.window.resize(1440, 900)
    viewer.open_sample("napari-deepreg", "brain2d")
    pair = load_sample("brain2d")
    fixed = pair["fixed"]
    inside = np.argwhere(pair["fixed_labels"].array > 0)
    lo, hi = inside.min(axis=0), inside.max(axis=0)
    grid = np.stack(np.meshgrid(np.linspace(0.2, 0.8, 4), np.linspace(0.25, 0.75, 3),
                                indexing="ij"), -1).reshape(-1, 2)
    p = np.asarray(fixed.origin) + (lo + grid * (hi - lo)) * np.asarray(fixed.spacing)
    q = metrics.map_points(p, pair["field"], fixed.spacing, fixed.origin)
    viewer.add_points(p, name="fixed landmarks", face_color="lime", size=3)
    viewer.add_points(q, name="moving landmarks", face_color="magenta", size=3)
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
    widget.method.value = "instance_opt"
    widget.fixed_points.value = viewer.layers["fixed landmarks"]
    widget.moving_points.value = viewer.layers["moving landmarks"]
    widget.run()
    while widget.worker is not None:
        QApplication.instance().processEvents()
        time.sleep(0.02)
    print(widget.status.text())
    print(widget.landmarks.summary.text())
    for layer in viewer.layers:
        layer.visible = layer.name in ("fixed", POINTS_NAME, VECTORS_NAME, "moving landmarks")
    viewer.layers["moving landmarks"].opacity = 0.6
    content = widget.findChild(QScrollArea).widget()
    boxes = []
    for panel in (widget.landmarks, widget.reuse):
        box = panel.parentWidget()
        while box is not None and not hasattr(box, "expand"):
            box = box.parentWidget()
        box.expand(animate=False)
        boxes.append(box)
    viewer.reset_view()
    content.adjustSize()
    spin(40)
    canvas = np.asarray(viewer.screenshot(canvas_only=True, flash=False))[..., :3]
    dock = grab(content, HERE / "scratch.png")
    top = boxes[0].mapTo(content, boxes[0].rect().topLeft()).y()
    dock = dock[top:]
    height = max(canvas.shape[0], dock.shape[0])
    pad = [np.full((height - a.shape[0], a.shape[1], 3), 255, np.uint8) for a in (canvas, dock)]
    picture = np.concatenate([np.concatenate([canvas, pad[0]]), np.concatenate([dock, pad[1]])],
                             axis=1)
    save_small(picture, HERE / "inspect_landmarks.png")
    viewer.close()


if __name__ == "__main__":
    main()
