"""Make ``docs/screenshot.png``: the Registration widget after a run on the 3D brain sample.

Run it with a display (under Xvfb on a headless machine)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshot.py

It opens the "Brain 3D pair (2 mm)" sample, registers it with the default method through the
dock widget (the same thread worker a user gets), shows the fixed image in grey with the
deformation grid and the warped labels' outlines on top, and saves a palette PNG (well under
300 KB).
"""

from __future__ import annotations

import argparse
import ast
import time
from pathlib import Path

import napari
import numpy as np
from PIL import Image
from qtpy.QtWidgets import QApplication

from napari_deepreg._napari._layers import GRID_NAME, WARPED_LABELS_NAME

HERE = Path(__file__).resolve().parent


def wait_for(widget, timeout_s: float) -> None:
    """Spin the Qt event loop until the widget's worker has finished."""
    app = QApplication.instance()
    start = time.perf_counter()
    while widget.worker is not None:
        app.processEvents()
        time.sleep(0.02)
        if time.perf_counter() - start > timeout_s:
            widget.cancel()
            raise TimeoutError(f"registration did not finish in {timeout_s} s")
    for _ in range(20):  # let the new layers draw
        app.processEvents()
        time.sleep(0.02)


def open_sample_widget(size, method: str, params: list[str]):
    """A shown viewer with the 3D brain sample and the Registration dock set to ``method`` and
    the ``NAME=VALUE`` parameters (values read as Python literals, else as strings)."""
    viewer = napari.Viewer(title="napari-deepreg", show=True)
    viewer.window.resize(*size)
    viewer.open_sample("napari-deepreg", "brain3d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
    widget.method.value = method
    for item in params:
        name, _, value = item.partition("=")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value  # a plain string such as a choice
        widget.set_parameters(**{name: parsed})
    return viewer, widget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "screenshot.png")
    parser.add_argument("--size", type=int, nargs=2, default=(1440, 900), metavar=("W", "H"))
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--method", default="instance_opt",
                        help="method or zoo model to run (default instance_opt)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a method parameter (default: the method's defaults)")
    args = parser.parse_args()

    viewer, widget = open_sample_widget(args.size, args.method, args.param)
    widget.run()
    wait_for(widget, args.timeout)
    if widget.result is None:
        raise RuntimeError(f"no result: {widget.status.text()}")

    # what to look at: fixed anatomy in grey, the grid, the warped labels' outlines
    layers = viewer.layers
    for layer in layers:
        layer.visible = False
    for name in ("fixed", GRID_NAME, WARPED_LABELS_NAME):
        layers[name].visible = True
    fixed = layers["fixed"]
    fixed.contrast_limits = (0.0, 1.3 * float(np.percentile(fixed.data, 99.5)))  # grey WM
    layers[WARPED_LABELS_NAME].opacity = 0.6
    layers[GRID_NAME].opacity = 0.6
    layers.selection.active = layers[GRID_NAME]
    # the middle axial slice (through the ventricles)
    viewer.dims.set_point(0, float(np.mean(layers["fixed"].extent.world[:, 0])))
    viewer.reset_view()
    for _ in range(20):
        QApplication.instance().processEvents()
        time.sleep(0.02)

    shot = viewer.screenshot(canvas_only=False, flash=False)
    image = Image.fromarray(np.asarray(shot)[..., :3])
    # a 256-colour palette keeps the PNG small; the UI and the overlays have few colours
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        args.out, optimize=True
    )
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, {image.size[0]}x"
          f"{image.size[1]}); {widget.status.text()}")
    viewer.close()


if __name__ == "__main__":
    main()
