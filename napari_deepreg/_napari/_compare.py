"""The "Compare" section of the Registration dock: fixed vs warped moving, one layer.

A checkerboard with tiles of a size in mm, the signed difference or a red / cyan overlay
(:mod:`napari_deepreg.qa.compare`), as the layer :data:`COMPARE_NAME` on the fixed grid; and a
flicker that alternates the fixed and the warped image in that layer twice a second (movement
catches the eye where a static overlay does not). *Before | after* puts the fixed + moving and
the fixed + warped views side by side in napari's grid mode and, unchecked, restores the layout
(:mod:`._side_by_side`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QPushButton, QWidget

from ..qa import compare
from ..result import RegistrationResult
from ..volume import Volume
from . import _ui
from ._layers import METADATA_KEY, PREFIX, WARPED_LABELS_NAME, mm_units
from ._side_by_side import SideBySide

COMPARE_NAME = PREFIX + "fixed vs warped"
FLICKER_MS = 500


class ComparePanel(QWidget):
    """Mode, tile size (mm), Show, and Flicker for the last result."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.result: RegistrationResult | None = None
        self.fixed: np.ndarray | None = None
        self.mode = QComboBox()
        self.mode.addItems(list(compare.MODES))
        self.tile_mm = QDoubleSpinBox()
        self.tile_mm.setRange(0.5, 500.0)
        self.tile_mm.setValue(10.0)
        self.tile_mm.setSuffix(" mm")
        self.tile_mm.setToolTip("checkerboard tile size, in mm along every axis")
        self.show_button = _ui.button("Show", self.show_comparison, enabled=False)
        self.flicker = QCheckBox("flicker fixed / warped")
        self.flicker.setEnabled(False)
        self.flicker.toggled.connect(self._on_flicker)
        self.timer = QTimer(self)
        self.timer.setInterval(FLICKER_MS)
        self.timer.timeout.connect(self.flick)
        self._flick_state = 0
        self.side_by_side = SideBySide(viewer)
        self._inputs: tuple[Volume, Volume] | None = None
        self.side_button = QPushButton("Before | after side by side")
        self.side_button.setCheckable(True)
        self.side_button.setEnabled(False)
        self.side_button.setToolTip(
            "left: fixed + moving (before), right: fixed + warped (after), in napari's grid "
            "mode; uncheck to get the layers and layout back")
        self.side_button.toggled.connect(self._on_side_by_side)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("view", self.mode)
        form.addRow("tile size", self.tile_mm)
        form.addRow(self.show_button)
        form.addRow(self.flicker)
        form.addRow(self.side_button)
        self.mode.currentTextChanged.connect(
            lambda text: self.tile_mm.setEnabled(text == "checkerboard"))

    def set_result(self, result: RegistrationResult, fixed: np.ndarray | None,
                   inputs: tuple[Volume, Volume] | None = None) -> None:
        """Compare against ``fixed`` (the fixed image array, on the result's grid); ``inputs``
        (the run's fixed and moving volumes) enable the side-by-side view."""
        self.side_button.setChecked(False)  # a new result: back to the user's layout first
        self._inputs = inputs
        self.side_button.setEnabled(inputs is not None)
        self.result, self.fixed = result, None if fixed is None else np.asarray(fixed)
        ok = self.fixed is not None and self.fixed.shape == np.shape(result.warped)
        self.show_button.setEnabled(ok)
        self.flicker.setEnabled(ok)
        if not ok:
            self.flicker.setChecked(False)

    def picture(self) -> tuple[np.ndarray, dict[str, Any]]:
        """The comparison of the chosen mode and its layer style."""
        assert self.result is not None and self.fixed is not None
        warped, mode = np.asarray(self.result.warped), self.mode.currentText()
        if mode == "checkerboard":
            data = compare.checkerboard_mm(self.fixed, warped, self.result.spacing,
                                           self.tile_mm.value())
            return data, {"colormap": "gray", "contrast_limits": (0.0, 1.0)}
        if mode == "difference":
            return compare.difference(self.fixed, warped), {
                "colormap": "PiYG", "contrast_limits": (-1.0, 1.0)}
        return compare.red_cyan(self.fixed, warped), {"rgb": True}

    def _put(self, data: np.ndarray, style: dict[str, Any], what: str) -> Any:
        result = self.result
        assert result is not None
        metadata = {**result.grid.layer_metadata(),
                    METADATA_KEY: {"role": "compare", "what": what, "method": result.method}}
        layers = self.viewer.layers
        old = layers[COMPARE_NAME] if COMPARE_NAME in layers else None
        if old is not None and old.rgb == bool(style.get("rgb")) and old.data.shape == data.shape:
            old.data = data
            for key in ("colormap", "contrast_limits"):
                if key in style:
                    setattr(old, key, style[key])
            old.metadata = metadata
            old.visible = True
            return old
        if old is not None:
            layers.remove(old)
        layer = self.viewer.add_image(
            data, name=COMPARE_NAME, scale=result.grid.spacing, translate=result.grid.origin,
            metadata=metadata, **mm_units(result.grid.ndim), **style)
        if WARPED_LABELS_NAME in layers:  # under the label contours, which stay readable
            layers.move(layers.index(COMPARE_NAME), layers.index(WARPED_LABELS_NAME))
        return layer

    def show_comparison(self) -> Any:
        """Add (or update) the comparison layer; returns it."""
        if self.result is None or self.fixed is None:
            return None
        self.flicker.setChecked(False)
        self.side_button.setChecked(False)
        data, style = self.picture()
        return self._put(data, style, self.mode.currentText())

    def _on_side_by_side(self, on: bool) -> None:
        if on and self.result is not None and self._inputs is not None:
            self.flicker.setChecked(False)
            self.side_by_side.show(self.result, *self._inputs)
        else:
            self.side_by_side.restore()

    def _on_flicker(self, on: bool) -> None:
        if on:
            self.side_button.setChecked(False)
        if on and self.result is not None:
            self._flick_state = 0
            self.flick()
            self.timer.start()
        else:
            self.timer.stop()

    def flick(self) -> None:
        """Show the next image of the flicker (fixed, warped, fixed, ...)."""
        if self.result is None or self.fixed is None:
            return
        image = self.fixed if self._flick_state == 0 else np.asarray(self.result.warped)
        what = "flicker: fixed" if self._flick_state == 0 else "flicker: warped"
        self._put(compare.unit_range(image), {"colormap": "gray", "contrast_limits": (0.0, 1.0)},
                  what)
        self._flick_state = 1 - self._flick_state


__all__ = ["COMPARE_NAME", "ComparePanel"]
