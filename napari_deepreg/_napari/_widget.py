"""The "Registration" dock widget: pick layers and a method, run in the background, show results.

The widget only gathers input and shows output. The work is
:func:`napari_deepreg.pipeline.register`, a generator of ``Progress`` that returns a
``RegistrationResult``; it runs in a napari ``thread_worker`` so the viewer never freezes:
its yields drive the progress bar, Cancel quits it at the next yield, and its result becomes
layers (:func:`._layers.result_layers`) and a metrics table. Input layers are never modified;
re-running replaces the layers the previous run made and nothing else.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    LineEdit,
    LiteralEvalLineEdit,
    SpinBox,
    Widget,
)
from napari.layers import Image, Labels, Layer, Points
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from .. import qa
from ..core.device import DEVICE_CHOICES
from ..methods import MethodSpec, Progress, RegistrationResult, available_methods, get_method
from ..volume import InputError, Volume, check_image
from ._layers import (
    GRID_NAME,
    METADATA_KEY,
    apply_display,
    grid_data,
    is_result_layer,
    result_layers,
)

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

_LAYER_TYPES: dict[str, type[Layer]] = {"image": Image, "labels": Labels}


# --------------------------------------------------------------------------- the job and its run


@dataclass
class RegistrationJob:
    """Everything one run needs, copied out of the layers on the GUI thread."""

    fixed: Volume
    moving: Volume
    method: str
    config: Any
    device: str
    fixed_labels: Volume | None = None
    moving_labels: Volume | None = None
    fixed_points: np.ndarray | None = None
    moving_points: np.ndarray | None = None


@dataclass
class RunFailure:
    """What the worker returns instead of raising, so the GUI shows exactly one notification.

    (A worker that raises would also be reported by napari itself, and superqt treats a
    RuntimeError from a generator as "worker deleted" and drops it.)
    """

    message: str
    exception: BaseException


def failure_message(exc: BaseException) -> str:
    """One line for the user: the sentence of an InputError / ValueError, else the error type."""
    if isinstance(exc, ValueError):
        return str(exc)
    return f"registration failed ({type(exc).__name__}): {exc}"


def run_job(job: RegistrationJob):
    """Generator: the pipeline's Progress, then a RegistrationResult or a :class:`RunFailure`."""
    from ..pipeline import register

    try:
        result = yield from register(
            job.fixed,
            job.moving,
            method=job.method,
            config=job.config,
            fixed_labels=job.fixed_labels,
            moving_labels=job.moving_labels,
            fixed_points=job.fixed_points,
            moving_points=job.moving_points,
            device=job.device,
        )
    except Exception as exc:  # reported on the GUI thread as one notification
        logger.exception("registration failed")
        return RunFailure(failure_message(exc), exc)
    return result


# --------------------------------------------------------------------------- method parameters


def _float_step(default: float) -> float:
    """A spin-box step one decade below the default's magnitude (0.01 for 0)."""
    if not default or not math.isfinite(default):
        return 0.01
    return min(1.0, 10.0 ** (math.floor(math.log10(abs(default))) - 1))


def _decimals(*values: float) -> int:
    """Decimals that show each value to two significant digits (2 to 8)."""
    needed = 2
    for v in values:
        if v and math.isfinite(v) and abs(v) < 1:
            needed = max(needed, 1 - math.floor(math.log10(abs(v))))
    return min(needed, 8)


def parameter_widgets(config_class: type) -> list[Widget]:
    """One magicgui widget per field of a method's config dataclass.

    bool -> check box; int / float -> spin boxes bounded by the field's ``min`` / ``max``
    metadata; a field with ``choices`` -> combo box; str -> line edit; anything else -> a line
    edit read as a Python literal. The field's ``help`` becomes the tooltip.
    """
    hints = typing.get_type_hints(config_class)
    defaults = config_class()
    widgets: list[Widget] = []
    for f in dataclasses.fields(config_class):
        if not f.init:
            continue
        kind = hints.get(f.name, f.type)
        value = getattr(defaults, f.name)
        meta = f.metadata
        label = f.name.replace("_", " ")
        common: dict[str, Any] = {"name": f.name, "label": label, "tooltip": meta.get("help")}
        if "choices" in meta:
            widget: Widget = ComboBox(choices=list(meta["choices"]), value=value, **common)
        elif kind is bool:
            widget = CheckBox(value=bool(value), **common)
        elif kind is int:
            widget = SpinBox(
                value=int(value),
                min=int(meta.get("min", -(2**31) + 1)),
                max=int(meta.get("max", 2**31 - 1)),
                **common,
            )
        elif kind is float:
            lo, hi = float(meta.get("min", -1e9)), float(meta.get("max", 1e9))
            widget = FloatSpinBox(step=_float_step(float(value)), **common)
            # enough decimals for the default and the bounds, set before them (Qt rounds)
            widget.native.setDecimals(_decimals(float(value), lo))
            widget.min, widget.max, widget.value = lo, hi, float(value)
        elif kind is str:
            widget = LineEdit(value=str(value), **common)
        else:
            widget = LiteralEvalLineEdit(value=repr(value), **common)
        widgets.append(widget)
    return widgets


def parameter_values(widgets: Sequence[Widget]) -> dict[str, Any]:
    """The values of :func:`parameter_widgets`, by field name."""
    values = {}
    for w in widgets:
        value = w.value
        if isinstance(w, LiteralEvalLineEdit) and isinstance(value, str):
            import ast

            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError) as exc:
                raise InputError(f"parameter {w.name!r} is not a valid value: {value!r}") from exc
        values[w.name] = value
    return values


# --------------------------------------------------------------------------- layers -> input


def _direction(layer: Layer, ndim: int) -> np.ndarray | None:
    direction = (layer.metadata or {}).get("direction")
    if direction is None:
        return None
    direction = np.asarray(direction, dtype=float)
    return direction if direction.shape == (ndim, ndim) else None


def image_volume(layer: Image, what: str) -> Volume:
    """A copy of an Image layer's data as a Volume (spacing = scale, origin = translate)."""
    if layer.multiscale:
        raise InputError(f"{what} layer {layer.name!r} is multiscale; open one resolution level")
    if layer.rgb:
        raise InputError(
            f"{what} layer {layer.name!r} is an RGB image; convert it to greyscale first"
        )
    array = np.array(layer.data, copy=True)
    return Volume(
        array,
        tuple(layer.scale),
        tuple(layer.translate),
        _direction(layer, array.ndim),
        layer.name,
    )


def labels_volume(layer: Labels, image: Volume, other: Volume, what: str) -> Volume:
    """A copy of a Labels layer's data on its image's geometry, checked against its shape."""
    if layer.multiscale:
        raise InputError(f"{what} layer {layer.name!r} is multiscale; open one resolution level")
    shape = tuple(layer.data.shape)
    if shape != image.shape:
        hint = " (fixed and moving labels swapped?)" if shape == other.shape else ""
        raise InputError(
            f"{what} {layer.name!r} have shape {shape} but their image {image.name!r} has shape "
            f"{image.shape}{hint}"
        )
    return Volume(
        np.array(layer.data, copy=True), image.spacing, image.origin, image.direction, layer.name
    )


def points_world(layer: Points, ndim: int, what: str) -> np.ndarray:
    """A Points layer's data in world coordinates (mm): ``data * scale + translate``, ``(K, D)``."""
    data = np.asarray(layer.data, dtype=float)
    if data.ndim != 2 or data.shape[1] != ndim:
        raise InputError(
            f"{what} layer {layer.name!r} has {data.shape[-1]}D points but the images are {ndim}D"
        )
    return data * np.asarray(layer.scale, dtype=float) + np.asarray(layer.translate, dtype=float)


# --------------------------------------------------------------------------- the metrics table


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


_PAIRED = {"dice": "Dice", "hd95": "HD95", "assd": "ASSD", "tre": "TRE"}


def metrics_rows(result: RegistrationResult) -> list[tuple[str, str, str]]:
    """Rows ``(figure, before, after)`` for the table: paired figures share a row.

    Summary figures first (unit in the name), then one Dice row per label, then runtime, method
    and model.
    """
    rows: list[tuple[str, str, str]] = []
    table = {r["name"]: r for r in qa.metrics_table(result)}
    done: set[str] = set()
    for name, row in table.items():
        if name in done:
            continue
        stem, _, when = name.rpartition("_")
        unit = f" ({row['unit']})" if row["unit"] else ""
        if when in ("before", "after") and stem in _PAIRED:
            before = table.get(f"{stem}_before", {}).get("value")
            after = table.get(f"{stem}_after", {}).get("value")
            rows.append((_PAIRED[stem] + unit, _fmt(before), _fmt(after)))
            done.update({f"{stem}_before", f"{stem}_after"})
        elif name in ("runtime_s", "method", "model"):
            continue
        else:
            rows.append((name.replace("_", " ") + unit, "", _fmt(row["value"])))
    for row in qa.label_table(result):
        before, after = _fmt(row.get("dice_before")), _fmt(row.get("dice_after"))
        rows.append((f"Dice label {row['label']}", before, after))
    if result.affine is not None:
        # the affine stage, world frame (mm, array axis order): one row per matrix row
        for i, values in enumerate(np.asarray(result.affine)[:-1]):
            rows.append((f"affine row {i}", "", "  ".join(f"{v:.4g}" for v in values)))
    rows.append(("runtime (s)", "", _fmt(float(result.runtime))))
    rows.append(("method", "", result.method + (f" / {result.model}" if result.model else "")))
    return rows


# --------------------------------------------------------------------------- the widget


class RegistrationWidget(QWidget):
    """Dock widget: fixed/moving layers (+ labels, points), method, parameters, device, run."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker = None  # the running GeneratorWorker, if any
        self.result: RegistrationResult | None = None  # the last finished run
        # the fixed grid of the last result (spacing, origin, direction): what exports need
        self.result_grid: Volume | None = None
        self._transform_folder = ""  # where the last transform was saved (the dialog opens there)
        self._job: RegistrationJob | None = None
        self._cancel_requested = False

        # inputs: combo boxes whose choices are read from the viewer's layer list
        self.fixed_image = ComboBox(label="fixed image", choices=self._choices(Image))
        self.moving_image = ComboBox(label="moving image", choices=self._choices(Image))
        self.fixed_labels = ComboBox(
            label="fixed labels", choices=self._choices(Labels), nullable=True
        )
        self.moving_labels = ComboBox(
            label="moving labels", choices=self._choices(Labels), nullable=True
        )
        self.fixed_points = ComboBox(
            label="fixed points", choices=self._choices(Points), nullable=True
        )
        self.moving_points = ComboBox(
            label="moving points", choices=self._choices(Points), nullable=True
        )
        self._layer_combos = [
            self.fixed_image, self.moving_image, self.fixed_labels, self.moving_labels,
            self.fixed_points, self.moving_points,
        ]
        inputs = Container(widgets=self._layer_combos, labels=True)

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

        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("ready")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["figure", "before", "after"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.save_button = QPushButton("Save CSV")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._ask_save_csv)
        self.transform_button = QPushButton("Save transform…")
        self.transform_button.setToolTip(
            "write the last run's transform into a folder, as the CLI does: field.nii.gz "
            "(displacement field on the fixed grid), transform.h5 (ITK displacement field "
            "transform) and, for methods with an affine stage, affine.tfm (ITK affine transform)"
        )
        self.transform_button.setEnabled(False)
        self.transform_button.clicked.connect(self._ask_save_transform)

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(_group("Input", inputs.native))
        method_group = _group("Method", method_box.native)
        method_group.layout().addWidget(self.params_box)
        layout.addWidget(method_group)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        metrics = QWidget()
        metrics_layout = QVBoxLayout(metrics)
        metrics_layout.setContentsMargins(0, 0, 0, 0)
        metrics_layout.addWidget(self.table)
        save_buttons = QHBoxLayout()
        save_buttons.addWidget(self.save_button)
        save_buttons.addWidget(self.transform_button)
        metrics_layout.addLayout(save_buttons)
        layout.addWidget(_group("Metrics", metrics))
        # the dock does not scroll by itself: a short screen must still reach every control
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        # keep the Python containers alive with the Qt widgets they own
        self._containers = (inputs, method_box)

        self.method.changed.connect(self._rebuild_parameters)
        for combo in (*self._layer_combos, self.method, self.device):
            _compact(combo.native)
        self._rebuild_parameters()
        self._connect_viewer()
        self.refresh_layer_choices()
        self._pick_labels_by_name(list(self.viewer.layers))

    # ----------------------------------------------------------------- viewer events

    def _connect_viewer(self) -> None:
        layer_events = self.viewer.layers.events
        callbacks: list[tuple[Any, Callable]] = [
            (layer_events.inserted, self._on_layers_changed),
            (layer_events.removed, self._on_layers_changed),
            (layer_events.moved, self._on_layers_changed),
            (layer_events.renamed, self._on_layers_changed),
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

    def _choices(self, layer_type: type) -> Callable[[Any], list[tuple[str, Layer]]]:
        def choices(_widget: Any = None) -> list[tuple[str, Layer]]:
            return [
                (layer.name, layer)
                for layer in self.viewer.layers
                if isinstance(layer, layer_type) and not is_result_layer(layer.name, layer.metadata)
            ]

        return choices

    def refresh_layer_choices(self) -> None:
        """Re-read the layer list into the combo boxes (a moving image different from the fixed
        one is preselected when there is one)."""
        for combo in self._layer_combos:
            combo.reset_choices()
        fixed = self.fixed_image.value
        if fixed is not None and self.moving_image.value is fixed:
            others = [c for c in self.moving_image.choices if c is not fixed]
            if others:
                self.moving_image.value = others[0]

    def _on_layers_changed(self, event: Any = None) -> None:
        self.refresh_layer_choices()
        if getattr(event, "type", None) == "inserted":
            self._pick_labels_by_name([event.value])

    def _pick_labels_by_name(self, layers: Sequence[Layer]) -> None:
        """Fill an empty labels slot with a Labels layer named "fixed ..." / "moving ..."."""
        for layer in layers:
            if not isinstance(layer, Labels):
                continue
            name = layer.name.lower()
            for key, combo in (("fixed", self.fixed_labels), ("moving", self.moving_labels)):
                if key in name and combo.value is None and layer in combo.choices:
                    combo.value = layer

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

    def config(self) -> Any:
        """The chosen method's config from the parameter widgets."""
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

    # ----------------------------------------------------------------- running

    def build_job(self) -> RegistrationJob:
        """Read and check the chosen layers (copies) and parameters. Raises InputError."""
        fixed_layer, moving_layer = self.fixed_image.value, self.moving_image.value
        if fixed_layer is None:
            raise InputError("choose a fixed image layer (open or load an image first)")
        if moving_layer is None:
            raise InputError("choose a moving image layer")
        fixed = image_volume(fixed_layer, "fixed image")
        moving = image_volume(moving_layer, "moving image")
        if fixed.ndim != moving.ndim:
            raise InputError(
                f"fixed image is {fixed.ndim}D but moving image is {moving.ndim}D; "
                "both must be 2D or both 3D"
            )
        spec = self._spec()
        if spec is None:
            raise InputError("no registration method is available")
        if fixed.ndim not in spec.dims:
            raise InputError(
                f"{spec.title} works on {'/'.join(f'{d}D' for d in spec.dims)} images, "
                f"not {fixed.ndim}D"
            )
        # cheap enough on the GUI thread, and the user hears at once
        check_image(fixed.array, "fixed image")
        check_image(moving.array, "moving image")
        fixed_labels = moving_labels = None
        if self.fixed_labels.value is not None:
            fixed_labels = labels_volume(self.fixed_labels.value, fixed, moving, "fixed labels")
        if self.moving_labels.value is not None:
            moving_labels = labels_volume(self.moving_labels.value, moving, fixed, "moving labels")
        fixed_points = moving_points = None
        f_pts, m_pts = self.fixed_points.value, self.moving_points.value
        if (f_pts is None) != (m_pts is None):
            raise InputError("choose both fixed and moving points, or neither")
        if f_pts is not None:
            fixed_points = points_world(f_pts, fixed.ndim, "fixed points")
            moving_points = points_world(m_pts, fixed.ndim, "moving points")
            if len(fixed_points) != len(moving_points):
                raise InputError(
                    f"fixed points ({len(fixed_points)}) and moving points "
                    f"({len(moving_points)}) must correspond one to one"
                )
        return RegistrationJob(
            fixed=fixed,
            moving=moving,
            method=spec.id,
            config=self.config(),
            device=str(self.device.value),
            fixed_labels=fixed_labels,
            moving_labels=moving_labels,
            fixed_points=fixed_points,
            moving_points=moving_points,
        )

    def run(self, start: bool = True):
        """Check the input and start a registration worker; returns it (None on bad input).

        With ``start=False`` the worker is returned unstarted, connected, for the caller to
        ``start()`` (tests wait on its ``finished`` signal that way).
        """
        if self.worker is not None:
            show_info("a registration is already running; cancel it first")
            return None
        try:
            job = self.build_job()
        except ValueError as exc:  # InputError and bad parameters
            self._set_status(f"not started: {exc}")
            show_error(str(exc))
            return None

        worker = thread_worker(run_job, start_thread=False, ignore_errors=True)(job)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_returned)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self.worker, self._job, self._cancel_requested = worker, job, False
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)  # busy until the first progress report
        self._set_status(f"running {job.method} on {self.device.value}...")
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

    # ----------------------------------------------------------------- results

    def _displayed_axes(self, ndim: int) -> tuple[int, ...]:
        """The array axes of an ``ndim`` layer that the canvas shows (the in-plane axes).

        In a 3D view the grid is drawn in the plane of the last two axes of the dims order,
        which is what the default camera looks at.
        """
        dims = self.viewer.dims
        offset = dims.ndim - ndim
        shown = list(dims.order[-2:]) if dims.ndisplay == 3 else list(dims.displayed)
        axes = tuple(sorted(d - offset for d in shown if d - offset >= 0))
        return axes if axes else tuple(range(ndim))[-2:]

    def show_result(self, result: RegistrationResult) -> None:
        """Add the result layers (replacing the previous run's) and fill the metrics table."""
        job = self._job
        fixed_name = job.fixed.name if job else "fixed"
        moving_name = job.moving.name if job else "moving"
        axes = self._displayed_axes(result.field.shape[0])
        tuples = result_layers(result, fixed_name, moving_name, axes)

        layers = self.viewer.layers
        previous: dict[str, list[Layer]] = {}
        for layer in list(layers):
            if is_result_layer(layer.name, layer.metadata):
                role = layer.metadata[METADATA_KEY].get("role", "")
                previous.setdefault(role, []).append(layer)
        for data, kwargs, layer_type in tuples:
            role = kwargs["metadata"][METADATA_KEY]["role"]
            old = previous.pop(role, [])
            kind = _LAYER_TYPES[layer_type]
            if old and isinstance(old[0], kind) and old[0].ndim == data.ndim:
                # in place: cheaper than remove + add, and keeps the user's visibility choice
                update_layer(old[0], data, kwargs)
                stale = old[1:]
            else:
                new = Layer.create(data, kwargs, layer_type)
                apply_display(new)
                if old:
                    new.visible = old[0].visible
                    layers.insert(layers.index(old[0]), new)
                else:
                    layers.append(new)
                stale = old
            for layer in stale:
                layers.remove(layer)
        for stale in previous.values():  # roles this run did not produce (e.g. no labels now)
            for layer in stale:
                layers.remove(layer)

        self.result = result
        if job is not None:
            # the CLI's grid: the fixed image's geometry (direction included) with the result
            self.result_grid = dataclasses.replace(
                job.fixed, array=result.warped, name="warped", metadata={}
            )
        else:  # a result shown without a run of this widget: the result's own grid
            self.result_grid = Volume(result.warped, result.spacing, result.origin, name="warped")
        self._fill_table(result)
        self.transform_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        text = f"done in {result.runtime:.1f} s"
        if result.notes:  # e.g. "moving image resampled onto the fixed grid"
            text += "; " + "; ".join(result.notes)
        self._set_status(text)

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

    # ----------------------------------------------------------------- metrics table

    def _fill_table(self, result: RegistrationResult) -> None:
        rows = metrics_rows(result)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(r, c, item)
        self.save_button.setEnabled(True)

    def table_rows(self) -> list[tuple[str, ...]]:
        """The metrics table's text, row by row."""
        return [
            tuple(
                (self.table.item(r, c).text() if self.table.item(r, c) else "")
                for c in range(self.table.columnCount())
            )
            for r in range(self.table.rowCount())
        ]

    def save_csv(self, path: str | Path) -> list[Path]:
        """Write the last run's metrics as CSV (and ``<name>_labels.csv`` with per-label rows)."""
        if self.result is None:
            raise InputError("no registration result to save yet")
        path = Path(path)
        if path.suffix.lower() != ".csv":
            path = path.with_name(path.name + ".csv")
        written = [qa.write_metrics_csv(self.result, path)]
        if self.result.label_metrics:
            written.append(
                qa.write_label_csv(self.result, path.with_name(path.stem + "_labels.csv"))
            )
        return written

    def _ask_save_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save metrics", "registration_metrics.csv", "CSV (*.csv)"
        )
        if not path:
            return
        try:
            written = self.save_csv(path)
        except (OSError, ValueError) as exc:
            show_error(f"could not save the metrics: {exc}")
            return
        self._set_status("saved " + ", ".join(str(p) for p in written))

    def save_transform(self, folder: str | Path) -> list[Path]:
        """Write the last run's transform into ``folder`` as ``register`` on the CLI does.

        ``field.nii.gz`` (displacement field, fixed image geometry), ``transform.h5`` (ITK
        displacement field transform) and, when the method has an affine stage, ``affine.tfm``
        (ITK affine transform from the world-frame matrix of the metrics table); see
        :func:`napari_deepreg.io.export_transforms`. An ``affine.tfm`` left in the folder by an
        earlier save is removed when this result has no affine, so the folder never mixes runs.
        Returns the paths written; raises ``InputError`` when the folder cannot be written.
        """
        from ..io import TRANSFORM_FILES, export_transforms

        if self.result is None or self.result_grid is None:
            raise InputError("no registration result to save yet")
        folder = Path(folder)
        written = export_transforms(
            self.result.field, self.result.affine, self.result_grid, folder
        )
        for name in TRANSFORM_FILES:
            stale = folder / name
            if stale not in written and stale.is_file():
                stale.unlink()
                logger.info("removed %s left by an earlier save", stale)
        return written

    def choose_transform_folder(self) -> str:
        """Ask for the folder to save the transform in ("" when the user cancels).

        A method of its own so that tests (and scripts) can replace the dialog.
        """
        return QFileDialog.getExistingDirectory(
            self, "Save transform into folder", self._transform_folder
        )

    def _ask_save_transform(self) -> None:
        from ..io import TRANSFORM_FILES

        folder = self.choose_transform_folder()
        if not folder:
            return
        try:
            there = {name for name in TRANSFORM_FILES if (Path(folder) / name).is_file()}
            written = self.save_transform(folder)
        except (OSError, ValueError, RuntimeError) as exc:  # never take the viewer down
            message = f"could not save the transform: {exc}"
            self._set_status(message)
            show_error(message)
            return
        self._transform_folder = str(folder)
        names = [p.name for p in written]
        text = f"saved {', '.join(names)} to {folder}"
        if self.result is not None and self.result.affine is None:
            text += " (no affine stage in this method, so no affine.tfm"
            text += "; removed the one left by an earlier save)" if there - set(names) else ")"
        self._set_status(text)


def update_layer(layer: Layer, data: np.ndarray, kwargs: dict[str, Any]) -> None:
    """Give an existing result layer a new run's data and style (its visibility stays)."""
    layer.data = data
    layer.name = kwargs["name"]
    layer.scale = kwargs["scale"]
    layer.translate = kwargs["translate"]
    layer.metadata = kwargs["metadata"]
    if "contrast_limits" in kwargs:
        layer.reset_contrast_limits_range()
        layer.contrast_limits = kwargs["contrast_limits"]
    for attribute in ("colormap", "blending", "opacity"):
        if attribute in kwargs:
            setattr(layer, attribute, kwargs[attribute])
    apply_display(layer)


def _compact(combo: QWidget) -> None:
    """Let a combo box shrink below its longest entry (long layer names or method titles
    would otherwise widen the whole dock)."""
    if isinstance(combo, QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(10)


def _group(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(4, 4, 4, 4)
    layout.addWidget(widget)
    return box
