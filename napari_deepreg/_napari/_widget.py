"""The "Registration" dock widget: pick layers and a method, run in the background, show results.

The widget only gathers input and shows output; its parts live beside it:
:mod:`._inputs` (layers -> the job's volumes), :mod:`._parameters` (a method's settings as
widgets), :mod:`._run` (the worker's generator around :func:`napari_deepreg.pipeline.register`),
:mod:`._layers` (the result as layers), :mod:`._save` (the save actions) and :mod:`._ui` (Qt
pieces). The run happens in a napari ``thread_worker`` so the viewer never freezes: its yields
drive the progress bar, Cancel quits it at the next yield, and its result becomes layers and a
metrics table (:func:`napari_deepreg.qa.metrics_rows`). Input layers are never modified;
re-running replaces the layers the previous run made and nothing else.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QProgressBar, QWidget
from superqt import QCollapsible

from .. import qa
from ..core.device import DEVICE_CHOICES, resolve_device, warm_up_optimiser
from ..methods import MethodSpec, available_methods, get_method
from ..qa import metrics_rows
from ..result import Progress, RegistrationResult
from ..volume import InputError
from . import _ui
from ._compare import ComparePanel
from ._folds import FoldsPanel
from ._inputs import LayerInputs, image_volume
from ._landmarks import LandmarksPanel
from ._layers import (
    GRID_NAME,
    METADATA_KEY,
    displayed_axes,
    grid_data,
    is_result_layer,
    replace_result_layers,
    result_layers,
)
from ._legend import in_mm, layer_to_mm, show_legend, use_mm
from ._parameters import parameter_values, parameter_widgets
from ._preview import PreviewPanel
from ._reuse import ReusePanel
from ._run import RegistrationJob, RunFailure, run_job, time_split
from ._save_actions import SaveActions

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

# names tests and scripts reach through this module
__all__ = ["RegistrationWidget", "metrics_rows", "parameter_values", "parameter_widgets"]


class RegistrationWidget(SaveActions, QWidget):
    """Dock widget: fixed/moving layers (+ labels, points), method, parameters, device, run."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker = None  # the running GeneratorWorker, if any
        self.result: RegistrationResult | None = None  # the last finished run
        self._transform_folder = ""  # where the last transform was saved (the dialog opens there)
        self._job: RegistrationJob | None = None
        self._inputs_used: RegistrationJob | None = None  # the job of the result shown
        self._cancel_requested = False
        self.progress_reports = 0  # Progress reports the current run's worker passed on
        self._gui_timings: dict[str, float] = {}  # this run's phases on the Qt thread
        # the first optimiser step's imports (~1.4 s), done while the user picks layers
        threading.Thread(target=warm_up_optimiser, name="napari-deepreg warm-up",
                         daemon=True).start()

        # inputs: combo boxes whose choices are read from the viewer's layer list
        self.inputs = LayerInputs(napari_viewer)
        self.fixed_image, self.moving_image = self.inputs.fixed_image, self.inputs.moving_image
        self.fixed_labels, self.moving_labels = self.inputs.fixed_labels, self.inputs.moving_labels
        self.fixed_points, self.moving_points = self.inputs.fixed_points, self.inputs.moving_points

        self.method = ComboBox(label="method", choices=self._method_choices())
        self.device = ComboBox(label="device", choices=list(DEVICE_CHOICES), value="auto")
        self.method.tooltip = "registration method (see the model zoo for the learned ones)"
        self.device.tooltip = "auto: CUDA GPU if there is one, then Apple MPS, else CPU"
        self.params = Container(labels=True)
        method_box = Container(widgets=[self.method, self.device], labels=True)
        # a method can have a dozen settings: fold them away until asked for
        self.params_box = QCollapsible("Parameters")
        self.params_box.addWidget(self.params.native)
        self.params_box.collapse(animate=False)

        self.run_button = _ui.button("Run", self.run)
        self.cancel_button = _ui.button("Cancel", self.cancel, enabled=False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = _ui.status_label("ready")

        self.table = _ui.metrics_table()
        self.label_table = _ui.metrics_table(("label",))  # per-label figures, with names
        self.label_table.setVisible(False)
        self.save_button = _ui.button("Save CSV", self._ask_save_csv, enabled=False)
        self.report_button = _ui.button(
            "Save report…", self._ask_save_report, enabled=False,
            tooltip="one-page PNG: before/after overlays in three planes (radiological), the "
            "Jacobian with its colour bar and fold clusters, per-label Dice/HD95, parameters",
        )
        self.transform_button = _ui.button(
            "Save transform…", self._ask_save_transform, enabled=False,
            tooltip="write the last run's transform into a folder, as the CLI does: field.nii.gz "
            "(displacement field on the fixed grid), transform.h5 (ITK displacement field "
            "transform) and, for methods with an affine stage, affine.tfm (ITK affine transform)",
        )

        # the regulariser weight, previewed at reduced resolution before the full run
        self.preview = PreviewPanel(napari_viewer, self.build_job, self._run_with)
        self.compare = ComparePanel(napari_viewer)  # checkerboard / difference / flicker
        self.folds = FoldsPanel(napari_viewer)  # fold clusters, click to go there
        self.landmarks = LandmarksPanel(napari_viewer)  # TRE per point, click to go there
        self.reuse = ReusePanel(  # apply / invert / compose / load a transform
            napari_viewer, lambda: None if self.fixed_image.value is None
            else image_volume(self.fixed_image.value, "fixed"), self._error)
        method_group = _ui.group("Method", method_box.native)
        method_group.layout().addWidget(self.params_box)
        metrics = _ui.column(
            self.table, self.label_table,
            _ui.row(self.save_button, self.report_button, self.transform_button),
        )
        content = _ui.column(
            _ui.group("Input", self.inputs.container.native),
            method_group,
            _ui.section("Smoothness (fast preview)", self.preview),
            _ui.row(self.run_button, self.cancel_button),
            self.progress,
            self.status,
            _ui.group("Metrics", metrics),
            _ui.section("Compare fixed and warped", self.compare),
            _ui.section("Folds", self.folds),
            _ui.section("Landmarks", self.landmarks),
            _ui.section("Reuse the transform", self.reuse),
            margins=None,
        )
        _ui.scrolling(self, content)
        # keep the Python containers alive with the Qt widgets they own
        self._containers = (self.inputs.container, method_box)

        self.method.changed.connect(self._rebuild_parameters)
        for combo in (*self.inputs.combos, self.method, self.device):
            _ui.compact(combo.native)
        self._rebuild_parameters()
        self._connect_viewer()
        self.inputs.refresh()
        self.inputs.pick_labels_by_name(list(self.viewer.layers))

    # ----------------------------------------------------------------- viewer events

    def _connect_viewer(self) -> None:
        layer_events = self.viewer.layers.events
        callbacks: list[tuple[Any, Callable]] = [
            (layer_events.inserted, self.inputs.on_layers_changed),
            (layer_events.removed, self.inputs.on_layers_changed),
            (layer_events.moved, self.inputs.on_layers_changed),
            (layer_events.renamed, self.inputs.on_layers_changed),
            (layer_events.inserted, self._on_layer_inserted),
            (self.viewer.dims.events.order, self.refresh_grid),
            (self.viewer.dims.events.ndisplay, self.refresh_grid),
        ]
        for emitter, callback in callbacks:
            emitter.connect(callback)

        def disconnect(*_: Any) -> None:
            for emitter, callback in callbacks:
                emitter.disconnect(callback)

        # the Qt object can go before the Python one: stop listening when it does
        self.destroyed.connect(disconnect)

    def _on_layer_inserted(self, event: Any) -> None:
        # once the viewer is in mm (after a run or a preview), a layer added in napari's
        # default pixel units joins them: mixed units would take the scale bar's unit away
        # (converted as it arrives, it needs no fresh slice, unlike a layer already shown)
        new = event.value
        if any(layer.name != new.name and in_mm(layer) for layer in self.viewer.layers):
            layer_to_mm(new)

    def refresh_layer_choices(self) -> None:
        """Re-read the viewer's layer list into the layer choosers."""
        self.inputs.refresh()

    # ----------------------------------------------------------------- method and parameters

    @staticmethod
    def _method_choices() -> list[tuple[str, str]]:
        try:
            methods = available_methods()
        except ImportError as exc:  # a broken method module must not take the widget down
            logger.warning("could not load the registration methods: %s", exc)
            return []
        # the label says which dimensionalities a method (or zoo model) accepts
        return [
            (f"{spec.title} [{'/'.join(f'{d}D' for d in spec.dims)}]", spec.id)
            for spec in methods.values()
        ]

    def _spec(self) -> MethodSpec | None:
        method_id = self.method.value
        return None if method_id is None else get_method(method_id)

    def _rebuild_parameters(self, *_: Any) -> None:
        self.params.clear()
        spec = self._spec()
        if spec is None:
            return
        widgets = parameter_widgets(spec.config_class)
        for widget in widgets:
            self.params.append(widget)
        self.params_box.setText(f"Parameters ({len(widgets)})")
        if spec.description:
            self.method.tooltip = spec.description
        self.preview.set_config(spec.make_config(None))
        for widget in widgets:  # the weight typed among the parameters moves the slider too
            if widget.name == self.preview.parameter:
                widget.changed.connect(lambda v: self.preview.set_weight(float(v), preview=False))

    def config(self) -> Any:
        """The chosen method's config from the parameter widgets (InputError if one is bad)."""
        spec = self._spec()
        if spec is None:
            raise InputError("no registration method is available")
        return spec.make_config(**parameter_values(list(self.params)))

    def set_parameters(self, **values: Any) -> None:
        """Set parameter widgets by field name (for scripts and tests)."""
        names = {w.name: w for w in self.params}
        for name, value in values.items():
            if name not in names:
                raise ValueError(f"unknown parameter {name!r}; valid: {sorted(names)}")
            names[name].value = value

    def _run_with(self, name: str, value: float, start: bool = True) -> Any:
        """Set parameter ``name`` to ``value`` and start the full-resolution run."""
        self.set_parameters(**{name: value})
        return self.run(start=start)

    # ----------------------------------------------------------------- running

    def build_job(self) -> RegistrationJob:
        """Copies of the chosen layers and the parameters as a job. Raises InputError when an
        image is not chosen, a layer cannot be converted or a parameter is bad; the pipeline
        checks that the inputs fit together when the job runs."""
        config = self.config()
        return self.inputs.job(self._spec().id, config, str(self.device.value))

    def run(self, start: bool = True):
        """Gather the input and start a registration worker; returns it (None on bad input).

        With ``start=False`` the worker is returned unstarted, connected, for the caller to
        ``start()`` (tests wait on its ``finished`` signal that way). Input the pipeline
        refuses comes back from the worker as one error notification, before any heavy work.
        """
        if self.worker is not None:
            show_info("a registration is already running; cancel it first")
            return None
        clicked = time.perf_counter()
        try:
            job = self.build_job()
        except ValueError as exc:  # InputError and bad parameters
            self._set_status(f"not started: {exc}")
            show_error(str(exc))
            return None
        job.submitted = time.perf_counter()
        self._gui_timings = {"copy inputs": job.submitted - clicked}
        self.progress_reports = 0

        worker = thread_worker(run_job, start_thread=False, ignore_errors=True)(job)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_returned)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self.worker, self._job, self._cancel_requested = worker, job, False
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)  # busy until the first progress report
        self._set_status(f"running {job.method} on {_device_text(job.device)}...")
        if start:
            worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running worker to stop at its next progress report; no layers are added."""
        if self.worker is None:
            return
        self._cancel_requested = True
        self.worker.quit()
        self.cancel_button.setEnabled(False)
        self._set_status("cancelling...")

    def _on_progress(self, progress: Any) -> None:
        if self._cancel_requested or not isinstance(progress, Progress):
            return
        self.progress_reports += 1  # at most ~10 a second (_run.throttled)
        total = max(int(progress.total), 1)
        self.progress.setRange(0, total)
        self.progress.setValue(min(max(int(progress.step), 0), total))
        text = progress.message or "working"
        self._set_status(f"{text} ({progress.step}/{progress.total})")

    def _on_returned(self, value: Any) -> None:
        if self._cancel_requested:
            return
        if isinstance(value, RunFailure):
            self._set_status(f"failed: {value.message}")
            show_error(value.message)
            return
        self.show_result(value)

    def _on_aborted(self) -> None:
        self._set_status("cancelled; no layers were added")

    def _on_finished(self) -> None:
        self.worker = None
        self._job = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        if self._cancel_requested:
            self.progress.setValue(0)

    def _set_status(self, text: str) -> None:
        self.status.setText(text)

    def _error(self, text: str) -> None:
        show_error(text)

    # ----------------------------------------------------------------- results

    def _displayed_axes(self, ndim: int) -> tuple[int, ...]:
        return displayed_axes(self.viewer.dims, ndim)

    def show_result(self, result: RegistrationResult) -> None:
        """Add the result layers (replacing the previous run's) and fill the metrics table.

        The layers sit on the fixed grid (``result.grid``: scale = spacing, translate = origin,
        ``metadata["direction"]``), so they overlay the fixed layer and save with its affine.
        """
        self.compare.side_button.setChecked(False)  # the user's layout back before new layers
        job = self._job
        fixed_name = job.fixed.name if job else "fixed"
        moving_name = job.moving.name if job else "moving"
        axes = self._displayed_axes(result.field.shape[0])
        clock = time.perf_counter()
        use_mm(self.viewer)  # first, so that the result layers arrive into a viewer in mm
        replace_result_layers(
            self.viewer.layers, result_layers(result, fixed_name, moving_name, axes)
        )
        layers_done = time.perf_counter()
        self.result, self._inputs_used = result, job
        if job is not None and not result.label_names:  # names from the labels layers
            for labels in (job.fixed_labels, job.moving_labels):
                if labels is not None and labels.metadata.get("names"):
                    result.label_names = dict(labels.metadata["names"])
                    break
        _ui.fill_table(self.table, metrics_rows(result))
        header, label_rows = qa.label_rows(result)
        _ui.fill_table(self.label_table, label_rows, header)
        self.label_table.setVisible(bool(label_rows))
        tables_done = time.perf_counter()
        fixed_labels = None if job is None or job.fixed_labels is None else job.fixed_labels.array
        self.folds.show_result(result, fixed_labels)
        self.compare.set_result(result, None if job is None else job.fixed.array, None
                                if job is None else (job.fixed, job.moving))
        points = (job.fixed_points, job.moving_points) if job else (None, None)
        self.landmarks.show_result(result, *points)
        self.reuse.set_result(result)
        show_legend(self.viewer)  # after the panels: it describes their layers too
        panels_done = time.perf_counter()
        result.timings = {**self._gui_timings, **result.timings, "layers": layers_done - clock,
                          "tables": tables_done - layers_done, "panels": panels_done - tables_done}
        self._gui_timings = {}
        total = None if job is None or job.submitted is None else panels_done - job.submitted
        for button in (self.save_button, self.transform_button, self.report_button):
            button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        text = f"done in {qa.format_value('runtime_s', result.runtime)} s"
        if job is not None:
            text += f" on {_device_text(job.device)}"
        if result.notes:  # e.g. "moving image resampled onto the fixed grid"
            text += "; " + "; ".join(result.notes)
        # where the time went (the method's own phases first), on a line of its own and logged
        split = time_split(result.timings, total)
        text += ("\n" + (f"{total:.1f} s from Run to layers: " if total is not None else "time: ")
                 + split)
        logger.info("%s run: %s", result.method, split)
        self._set_status(text)
        for note in result.notes:
            # the never-worse guard's "warning: ... is returned instead" must not go unseen
            if note.startswith("warning:"):
                show_warning(note)

    def refresh_grid(self, event: Any = None) -> None:
        """Redraw the deformation grid in the plane now displayed (dims order / 2D-3D change)."""
        if self.result is None:
            return
        grid = next(
            (
                layer
                for layer in self.viewer.layers
                if layer.name == GRID_NAME and is_result_layer(layer.name, layer.metadata)
            ),
            None,
        )
        if grid is None:
            return
        field = np.asarray(self.result.field)
        axes = self._displayed_axes(field.shape[0])
        record = grid.metadata[METADATA_KEY]
        if tuple(record.get("displayed_axes", ())) == axes:
            return
        grid.data = grid_data(field, self.result.spacing, axes)
        record["displayed_axes"] = list(axes)

    def table_rows(self) -> list[tuple[str, ...]]:
        """The metrics table's text, row by row."""
        return _ui.table_text(self.table)

    def label_rows(self) -> list[tuple[str, ...]]:
        """The per-label table's text, row by row (label with its name, Dice, HD95)."""
        return _ui.table_text(self.label_table)


def _device_text(device: str) -> str:
    """The device a run uses, by name: ``cpu``, or ``cuda (auto)`` when "auto" chose it."""
    try:
        name = resolve_device(device).type
    except ValueError:
        return str(device)
    return f"{name} (auto)" if str(device) == "auto" else name
