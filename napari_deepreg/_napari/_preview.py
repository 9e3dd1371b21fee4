"""The "Smoothness" section of the Registration dock: the regulariser weight with a fast preview.

Moving the slider (log scale) or typing a weight previews the registration with that weight on
the pair downsampled to at most *preview size* voxels along its longest axis
(:func:`napari_deepreg.preview.preview`), in a napari thread worker: the viewer never waits, a
new value cancels the preview still running, and Cancel stops it. The preview shows as two
layers on the coarse grid (the Jacobian, shown, diverging map on fixed limits 0..2 so that two
previews compare by eye; the warped label contours, or the warped image without labels, one tick
away: contours on a grid this coarse cover the anatomy) and as a row of a small table (weight,
Dice after, SDlogJ, fold %), so a user sees what a smoother field costs in overlap. *Run full
resolution* copies the weight into the method's parameters and starts the real run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Generator
from typing import Any

from napari.layers import Image, Labels, Layer
from napari.qt.threading import thread_worker
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QDoubleSpinBox, QFormLayout, QSlider, QSpinBox, QWidget

from ..preview import PREVIEW_SIZE, preview, smoothness_field
from ..qa.tables import format_value
from ..result import Progress, RegistrationResult
from . import _ui
from ._layers import METADATA_KEY, PREFIX, apply_display, result_layers, update_layer
from ._legend import show_legend, use_mm
from ._run import RegistrationJob, RunFailure, failure_message, throttled

PREVIEW_JACOBIAN_NAME = PREFIX + "preview jacobian"
PREVIEW_LABELS_NAME = PREFIX + "preview warped labels"
PREVIEW_WARPED_NAME = PREFIX + "preview warped"
DEBOUNCE_MS = 300  # a preview starts this long after the last change of the weight
LOG_RANGE = (-3.0, 2.0)  # the slider's weights: 10**-3 .. 10**2
SLIDER_STEPS = 100
HISTORY_HEADER = ("weight", "Dice after", "SDlogJ", "fold %", "s")
HISTORY_ROWS = 6
KINDS = {"image": Image, "labels": Labels}


def slider_to_weight(position: int) -> float:
    """The weight at a slider position (log scale over :data:`LOG_RANGE`)."""
    low, high = LOG_RANGE
    return float(10 ** (low + (high - low) * position / SLIDER_STEPS))


def weight_to_slider(weight: float) -> int:
    """The slider position nearest ``weight`` (0 and below go to the left end)."""
    low, high = LOG_RANGE
    if weight <= 0:
        return 0
    return int(round(min(max((math.log10(weight) - low) / (high - low), 0.0), 1.0)
                     * SLIDER_STEPS))


def preview_job(job: RegistrationJob, value: float, max_size: int
                ) -> Generator[Progress, None, RegistrationResult | RunFailure]:
    """The worker's generator: check the pair, then :func:`preview`; errors as a RunFailure."""
    from ..pipeline import prepare

    try:
        inputs = prepare(job.fixed, job.moving, job.fixed_labels, job.moving_labels)
        result = yield from throttled(
            preview(inputs, job.method, job.config, value, max_size, job.device))
    except Exception as exc:  # one line in the section's status, never a crash
        return RunFailure(failure_message(exc), exc)
    return result


class PreviewPanel(QWidget):
    """Weight slider and box, preview size, Preview / Cancel / Run full resolution, history."""

    def __init__(self, viewer: Any, make_job: Callable[[], RegistrationJob],
                 run_full: Callable[[str, float, bool], Any],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.make_job, self.run_full = make_job, run_full
        self.parameter: str | None = None  # the method's regulariser field
        self.worker = None
        self.result: RegistrationResult | None = None  # the last preview shown
        self.history: list[tuple[str, ...]] = []
        self._pending = False  # a newer value is waiting for the running preview to stop
        self._started = 0.0

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setToolTip("regulariser weight, log scale 0.001 .. 100: right is smoother")
        self.weight = QDoubleSpinBox()
        self.weight.setDecimals(4)
        self.weight.setRange(0.0, 1e4)
        self.weight.setToolTip("regulariser weight (0: none); higher gives a smoother field")
        self.size = QSpinBox()
        self.size.setRange(16, 512)
        self.size.setValue(PREVIEW_SIZE)
        self.size.setSuffix(" voxels")
        self.size.setToolTip("longest axis of the preview grid: smaller is faster and coarser")
        self.preview_button = _ui.button("Preview", self.start_preview)
        self.cancel_button = _ui.button("Cancel", self.cancel, enabled=False)
        self.full_button = _ui.button(
            "Run full resolution", self.use_value,
            tooltip="copy this weight into the method's parameters and run at full resolution")
        self.status = _ui.status_label("choose a method with a regularisation setting")
        self.table = _ui.metrics_table(HISTORY_HEADER)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.start_preview)

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("smoothness", self.slider)
        form.addRow("weight", self.weight)
        form.addRow("preview size", self.size)
        form.addRow(_ui.column(_ui.row(self.preview_button, self.cancel_button,
                                       self.full_button)))
        form.addRow(self.status)
        form.addRow(self.table)
        self.slider.valueChanged.connect(self._on_slider)
        self.weight.valueChanged.connect(self._on_weight)

    # ----------------------------------------------------------------- the weight

    def set_config(self, config: Any) -> None:
        """Follow the chosen method: its regulariser field and current weight (disabled when
        it has none)."""
        self.parameter = None if config is None else smoothness_field(config)
        enabled = self.parameter is not None
        for widget in (self.slider, self.weight, self.size, self.preview_button,
                       self.full_button):
            widget.setEnabled(enabled)
        if not enabled:
            self.status.setText("this method has no regularisation setting to preview")
            return
        self.set_weight(float(getattr(config, self.parameter)), preview=False)
        self.status.setText(f"{self.parameter}: move the slider to preview (about a second "
                            "at the preview size)")

    def set_weight(self, value: float, preview: bool = True) -> None:
        """Set the weight (slider and box); with ``preview`` a preview follows shortly."""
        for widget in (self.slider, self.weight):
            widget.blockSignals(True)
        self.weight.setValue(value)
        self.slider.setValue(weight_to_slider(value))
        for widget in (self.slider, self.weight):
            widget.blockSignals(False)
        if preview:
            self._debounce.start()

    def value(self) -> float:
        return float(self.weight.value())

    def _on_slider(self, position: int) -> None:
        self.weight.blockSignals(True)
        self.weight.setValue(slider_to_weight(position))
        self.weight.blockSignals(False)
        self._debounce.start()

    def _on_weight(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(weight_to_slider(value))
        self.slider.blockSignals(False)
        self._debounce.start()

    def use_value(self, start: bool = True) -> Any:
        """Copy the weight into the method's parameters and start the full-resolution run
        (its worker is returned; unstarted with ``start=False``)."""
        self.cancel()
        if self.parameter is None:
            return None
        return self.run_full(self.parameter, self.value(), start)

    # ----------------------------------------------------------------- the worker

    def start_preview(self, start: bool = True) -> Any:
        """Preview the current weight in a thread worker (returned; None when it could not
        start). A preview still running is cancelled first and this one follows it."""
        self._debounce.stop()
        if self.parameter is None:
            return None
        if self.worker is not None:
            self._pending = True
            self.worker.quit()
            return None
        try:
            job = self.make_job()
        except ValueError as exc:
            self.status.setText(f"no preview: {exc}")
            return None
        job = dataclasses.replace(job, config=dataclasses.replace(
            job.config, **{self.parameter: self.value()}))
        value, size = self.value(), int(self.size.value())
        worker = thread_worker(preview_job, start_thread=False, ignore_errors=True)(
            job, value, size)
        worker.returned.connect(lambda out: self._on_returned(out, value, job))
        worker.aborted.connect(lambda: self.status.setText("preview cancelled"))
        worker.finished.connect(self._on_finished)
        self.worker, self._pending, self._started = worker, False, time.perf_counter()
        self.cancel_button.setEnabled(True)
        self.status.setText(f"previewing {self.parameter} = {value:g} at <= {size} voxels...")
        if start:
            worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running preview (at its next progress report) and any waiting one."""
        self._debounce.stop()
        self._pending = False
        if self.worker is not None:
            self.worker.quit()

    def _on_finished(self) -> None:
        self.worker = None
        self.cancel_button.setEnabled(False)
        if self._pending:
            self._pending = False
            self.start_preview()

    def _on_returned(self, out: Any, value: float, job: RegistrationJob) -> None:
        if self._pending:  # a newer weight is waiting: this preview is stale
            return
        if isinstance(out, RunFailure):
            self.status.setText(f"preview failed: {out.message}")
            return
        seconds = time.perf_counter() - self._started
        self.result = out
        self._put_layers(out, job, value)
        m = out.metrics
        dice = (f"Dice {format_value('dice', m['dice_before'])} -> "
                f"{format_value('dice', m['dice_after'])}, " if "dice_after" in m else "")
        spacing = " x ".join(f"{s:g}" for s in out.spacing)
        self.status.setText(
            f"preview {self.parameter} = {value:g} on a {'x'.join(map(str, out.grid.shape))} "
            f"grid ({spacing} mm): {dice}SDlogJ {format_value('sdlogj', m['sdlogj'])}, folds "
            f"{format_value('fold_percent', m['fold_percent'])} % ({seconds:.1f} s). Coarse: "
            "Dice is lower than at full resolution; compare previews with each other.")
        self.history.insert(0, (f"{value:g}", format_value("dice", m.get("dice_after")),
                                format_value("sdlogj", m["sdlogj"]),
                                format_value("fold_percent", m["fold_percent"]),
                                f"{seconds:.1f}"))
        del self.history[HISTORY_ROWS:]
        _ui.fill_table(self.table, self.history, HISTORY_HEADER)

    def _put_layers(self, result: RegistrationResult, job: RegistrationJob,
                    value: float) -> None:
        """The preview's Jacobian and warped labels (or image) as layers on its coarse grid."""
        tuples = result_layers(result, job.fixed.name, job.moving.name)
        by_role = {kwargs["metadata"][METADATA_KEY]["role"]: (data, kwargs, kind)
                   for data, kwargs, kind in tuples}
        chosen = [("jacobian", PREVIEW_JACOBIAN_NAME)]
        chosen.append(("warped_labels", PREVIEW_LABELS_NAME) if "warped_labels" in by_role
                      else ("warped", PREVIEW_WARPED_NAME))
        use_mm(self.viewer)  # before the preview's layers arrive (see _legend.use_mm)
        layers = self.viewer.layers
        for role, name in chosen:
            data, kwargs, kind = by_role[role]
            # the Jacobian shows what the weight does; label contours on a grid this coarse
            # cover the anatomy, so they wait one tick away (Dice is in the status line)
            kwargs = {**kwargs, "name": name, "visible": role == "jacobian"}
            kwargs["metadata"] = {**kwargs["metadata"], METADATA_KEY: {
                **kwargs["metadata"][METADATA_KEY], "role": f"preview_{role}",
                "parameter": self.parameter, "value": value}}
            if role == "jacobian":  # fixed limits, so that two previews compare by eye
                kwargs["contrast_limits"] = (0.0, 2.0)
            old = layers[name] if name in layers else None
            if old is not None and old.ndim == data.ndim and isinstance(old, KINDS[kind]):
                update_layer(old, data, kwargs)  # the user's visibility choice stays
            else:
                if old is not None:
                    layers.remove(old)
                layer = Layer.create(data, kwargs, kind)
                apply_display(layer)
                layers.append(layer)
        show_legend(self.viewer)  # the scale bar in mm and what the preview's colours mean


__all__ = ["PREVIEW_JACOBIAN_NAME", "PREVIEW_LABELS_NAME", "PREVIEW_WARPED_NAME", "PreviewPanel",
           "preview_job", "slider_to_weight", "weight_to_slider"]
