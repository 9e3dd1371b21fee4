"""Make the README's "Inspecting a result" pictures: what a user sees after a run.

Run it with a display (under Xvfb on a headless machine)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_inspect_screenshots.py

It opens the "Brain 3D pair (2 mm)" sample, registers it through the dock widget (the same
thread worker a user gets) and writes into ``docs/``:

* ``inspect_canvas.png``: the viewer as a run leaves it (warped image and warped-label contours
  over the fixed image, the legend and the scale bar), with the Jacobian turned on;
* ``inspect_table.png``: the dock's metrics, with the per-label table and its names;
* ``inspect_checkerboard.png``: the Compare section's checkerboard (10 mm tiles);
* ``inspect_folds.png``: the Folds section (clusters and fold % per structure);
* ``inspect_report.png``: the *Save report* PNG.

Each is a palette PNG under about 300 KB. ``--param`` passes method settings, e.g. a weak
regulariser to provoke folds for the Folds picture.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from make_screenshot import open_sample_widget  # docs/, the script's folder, is on sys.path
from PIL import Image
from qtpy.QtWidgets import QApplication, QScrollArea

from napari_deepreg._napari._layers import JACOBIAN_NAME

HERE = Path(__file__).resolve().parent


def spin(n: int = 20) -> None:
    for _ in range(n):
        QApplication.instance().processEvents()
        time.sleep(0.02)


def save_small(array: np.ndarray, path: Path, max_width: int = 1400) -> None:
    """A 256-colour palette PNG, scaled down to ``max_width`` pixels wide if wider."""
    image = Image.fromarray(np.asarray(array)[..., :3])
    if image.size[0] > max_width:
        image = image.resize((max_width, round(image.size[1] * max_width / image.size[0])),
                             Image.Resampling.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB, {image.size[0]}x{image.size[1]})")


def grab(widget, scratch: Path) -> np.ndarray:
    """The whole widget (not only what its scroll area shows) as an RGB array."""
    widget.grab().save(str(scratch))
    array = np.asarray(Image.open(scratch).convert("RGB"))
    scratch.unlink()
    return array


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--method", default="instance_opt")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()

    viewer, widget = open_sample_widget((1440, 900), args.method, args.param)
    start = time.perf_counter()
    widget.run()
    while widget.worker is not None:
        QApplication.instance().processEvents()
        time.sleep(0.02)
        if time.perf_counter() - start > args.timeout:
            raise TimeoutError("registration did not finish")
    if widget.result is None:
        raise RuntimeError(f"no result: {widget.status.text()}")
    print(f"{widget.status.text()} (wall {time.perf_counter() - start:.1f} s)")
    viewer.dims.set_point(0, float(np.mean(viewer.layers["fixed"].extent.world[:, 0])))
    viewer.reset_view()
    spin()
    content = widget.findChild(QScrollArea).widget()

    # the canvas as the run left it, with the Jacobian turned on (legend follows)
    viewer.layers[JACOBIAN_NAME].visible = True
    viewer.layers.selection.active = viewer.layers[JACOBIAN_NAME]
    spin()
    save_small(viewer.screenshot(canvas_only=False, flash=False), args.out / "inspect_canvas.png")
    viewer.layers[JACOBIAN_NAME].visible = False

    # the metrics with the per-label names
    content.adjustSize()
    spin()
    shot = grab(content, args.out / "scratch.png")
    top = widget.table.mapTo(content, widget.table.rect().topLeft()).y() - 30
    bottom = widget.report_button.mapTo(content, widget.report_button.rect().bottomLeft()).y()
    save_small(shot[max(top, 0): bottom + 8], args.out / "inspect_table.png")

    # the checkerboard: 10 mm tiles over the whole slice
    widget.compare.mode.setCurrentText("checkerboard")
    widget.compare.tile_mm.setValue(10.0)
    widget.compare.show_comparison()
    for layer in viewer.layers:
        layer.visible = layer.name == "[deepreg] fixed vs warped"
    spin()
    save_small(viewer.screenshot(canvas_only=True, flash=False),
               args.out / "inspect_checkerboard.png", max_width=900)

    # the Folds section, opened
    folds_box = widget.folds.parentWidget()
    while folds_box is not None and not hasattr(folds_box, "expand"):
        folds_box = folds_box.parentWidget()
    if folds_box is not None:
        folds_box.expand(animate=False)
    content.adjustSize()
    spin()
    shot = grab(content, args.out / "scratch.png")
    top = folds_box.mapTo(content, folds_box.rect().topLeft()).y() if folds_box else 0
    save_small(shot[top:], args.out / "inspect_folds.png")

    # the report, as the Save report button writes it
    path = args.out / "inspect_report_full.png"
    widget.save_report(path)
    save_small(np.asarray(Image.open(path).convert("RGB")), args.out / "inspect_report.png",
               max_width=1000)
    path.unlink()
    viewer.close()


if __name__ == "__main__":
    main()
