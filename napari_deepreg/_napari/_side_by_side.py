"""Before and after side by side, in napari's grid mode, and back to the layout the user had.

Before (left): the fixed image in green with the moving image in magenta added on top; after
(right): the fixed image with the warped moving image. Where the two agree the sum is grey to
white, where they do not a green or magenta fringe shows (the usual fusion for registration QA;
label contours stay in the main view, where they do not cover these fringes). napari's grid puts
``stride`` consecutive layers of the layer list in one viewbox and leaves out viewboxes whose
layers are all hidden, so :class:`SideBySide` hides the user's layers, inserts its own at the
bottom of the list (two groups of ``stride`` = 2 layers, the images shared with the inputs and
the result, not copied), sets ``grid.stride``, ``grid.shape = (1, 2)`` and turns the grid on;
:meth:`SideBySide.restore` removes those layers and puts back every layer's visibility, the grid
settings and the canvas text.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..qa.display import WARPED_COLORMAP, intensity_limits
from ..result import RegistrationResult
from ..volume import Volume
from ._layers import METADATA_KEY, PREFIX, mm_units
from ._legend import canvas_overlay

BEFORE_PREFIX = PREFIX + "before: "
AFTER_PREFIX = PREFIX + "after: "
CAPTION = ("left: BEFORE, fixed (green) + moving (magenta)\n"
           "right: AFTER, fixed (green) + warped moving (magenta)\n"
           "grey/white where they agree, green or magenta fringes where they do not")


def viewer_grid(viewer: Any) -> Any:
    """The viewer's grid settings (``viewer.canvas.grid`` since napari 0.9, ``viewer.grid``
    before)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


class SideBySide:
    """Switches a viewer between its own layout and the before | after grid."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.layers: list[Any] = []  # the layers this view added
        self._saved: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        return self._saved is not None

    def show(self, result: RegistrationResult, fixed: Volume, moving: Volume) -> list[Any]:
        """Turn the side-by-side view on for ``result`` (``fixed``/``moving``: the run's input
        volumes, each on its own grid); returns the layers it added, before group first."""
        if self.active:
            self.restore()
        viewer = self.viewer
        grid, text = viewer_grid(viewer), canvas_overlay(viewer, "text")
        self._saved = {
            "grid": (grid.enabled, grid.stride, tuple(grid.shape)),
            "visible": [(layer, layer.visible) for layer in viewer.layers],
            "text": (text.text, text.visible),
        }
        for layer in viewer.layers:
            layer.visible = False
        units = mm_units(result.grid.ndim)
        fixed_geometry = {"scale": result.grid.spacing, "translate": result.grid.origin, **units}
        moving_geometry = {"scale": moving.spacing, "translate": moving.origin, **units}
        green = {"colormap": "green", "blending": "additive",
                 "contrast_limits": intensity_limits(fixed.array)}
        magenta = {"colormap": WARPED_COLORMAP, "blending": "additive"}
        warped = np.asarray(result.warped)
        groups = [
            [(fixed.array, "fixed", {**green, **fixed_geometry}),
             (moving.array, "moving",
              {**magenta, "contrast_limits": intensity_limits(moving.array), **moving_geometry})],
            [(fixed.array, "fixed", {**green, **fixed_geometry}),
             (warped, "warped moving",
              {**magenta, "contrast_limits": intensity_limits(warped), **fixed_geometry})],
        ]
        self.layers = []
        for prefix, group in zip((BEFORE_PREFIX, AFTER_PREFIX), groups, strict=True):
            for data, what, style in group:
                meta = {METADATA_KEY: {"role": "side_by_side", "what": what}}
                layer = viewer.add_image(data, name=prefix + what, metadata=meta, **style)
                # at the bottom of the list, in order: index // stride is the viewbox
                viewer.layers.move(viewer.layers.index(layer), len(self.layers))
                self.layers.append(layer)
        grid.stride = len(groups[0])
        grid.shape = (1, 2)
        grid.enabled = True
        text.text, text.visible = CAPTION, True
        return list(self.layers)

    def restore(self) -> None:
        """Back to the layout before :meth:`show`: its layers removed, every other layer's
        visibility, the grid settings and the canvas text as they were."""
        if self._saved is None:
            return
        saved, self._saved = self._saved, None
        viewer = self.viewer
        for layer in self.layers:
            if layer in viewer.layers:
                viewer.layers.remove(layer)
        self.layers = []
        for layer, visible in saved["visible"]:
            if layer in viewer.layers:
                layer.visible = visible
        grid = viewer_grid(viewer)
        grid.enabled, grid.stride, grid.shape = saved["grid"]
        text = canvas_overlay(viewer, "text")
        text.text, text.visible = saved["text"]


__all__ = ["AFTER_PREFIX", "BEFORE_PREFIX", "CAPTION", "SideBySide", "viewer_grid"]
