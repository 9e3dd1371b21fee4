"""The "Reuse the transform" section of the Registration dock.

The current transform is the last run's field, or one loaded from a file the CLI or the widget
wrote (``field.nii.gz``, ``transform.h5``, an affine ``.tfm``), sampled on the fixed image's grid.
It can be inverted (the accuracy, max ``|phi(phi^-1(x)) - x|`` in mm, is shown; a field that folds,
J <= 0, has no inverse there, and a warning says so before the inverse is used), composed with a
second saved transform, saved, and applied to any layer: images linearly, label maps
label-preserving, points with the inverse (they go from the moving image to the fixed one). The
maths is :mod:`napari_deepreg.reuse`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox
from napari.layers import Image, Labels, Points
from napari.utils.notifications import show_warning
from qtpy.QtWidgets import QFileDialog, QVBoxLayout, QWidget

from .. import reuse
from ..io import (
    TRANSFORM_SUFFIXES,
    export_field,
    export_transform,
    read_field,
    resample_to_grid,
    write_output_file,
)
from ..result import RegistrationResult
from ..volume import InputError, Volume
from . import _ui
from ._inputs import _direction, image_volume, points_world
from ._layers import METADATA_KEY, PREFIX, mm_units
from ._legend import use_mm

FILES = "Transforms (*.nii.gz *.nii *.mha *.nrrd *.h5 *.hdf5 *.tfm *.txt *.mat)"


def _grid_volume(result: RegistrationResult) -> Volume:
    grid = result.grid
    return Volume(np.broadcast_to(np.float32(0), grid.shape), grid.spacing, grid.origin,
                  grid.direction, "fixed")


class ReusePanel(QWidget):
    """Load / invert / compose / save the current transform and apply it to a chosen layer.

    ``reference()`` returns the fixed image as a Volume, or None (the grid a loaded file is
    sampled on when there is no result yet); ``on_error(text)`` reports a bad input in one line.
    """

    def __init__(self, viewer: Any, reference: Callable[[], Volume | None],
                 on_error: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.reference, self.on_error = viewer, reference, on_error
        self.field: np.ndarray | None = None
        self.fixed: Volume | None = None
        self.source = ""
        self.summary = _ui.status_label("no transform yet: run a registration or load one")
        self.layer = ComboBox(label="apply to", choices=self._layer_choices)
        _ui.compact(self.layer.native)
        self.apply_button = _ui.button(
            "Apply to layer", self._guarded(self.apply), enabled=False,
            tooltip="warp the chosen layer onto the fixed image: images linearly, labels "
            "label-preserving, points with the inverse transform")
        self.invert_button = _ui.button("Invert", self._guarded(self.invert), enabled=False)
        self.compose_button = _ui.button("Then…", self._guarded(self._ask_compose), enabled=False,
                                         tooltip="compose: the current transform, then a saved "
                                         "one (fixed -> intermediate -> moving)")
        self.load_button = _ui.button("Load…", self._guarded(self._ask_load),
                                      tooltip="read a transform the CLI or the widget wrote")
        self.save_button = _ui.button("Save…", self._guarded(self._ask_save), enabled=False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addLayout(_ui.row(self.load_button, self.invert_button, self.compose_button,
                                 self.save_button))
        layout.addLayout(_ui.row(self.layer.native, self.apply_button))
        viewer.layers.events.inserted.connect(lambda *_: self.layer.reset_choices())
        viewer.layers.events.removed.connect(lambda *_: self.layer.reset_choices())

    def _layer_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        kinds = (Image, Labels, Points)
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, kinds) and not layer.name.startswith(PREFIX)]

    def _guarded(self, action: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                action()
            except InputError as error:
                self.on_error(str(error))
        return run

    def _set(self, field: np.ndarray, fixed: Volume, source: str, note: str = "") -> None:
        self.field, self.fixed, self.source = np.asarray(field, np.float32), fixed, source
        size = float(np.linalg.norm(self.field, axis=0).max())
        self.summary.setText(f"transform: {source} (max displacement {size:.2f} mm)"
                             + (f"; {note}" if note else ""))
        for widget in (self.apply_button, self.invert_button, self.compose_button,
                       self.save_button):
            widget.setEnabled(True)

    def set_result(self, result: RegistrationResult) -> None:
        """The last run's transform becomes the current one."""
        self._set(result.field, _grid_volume(result), f"last run ({result.method})")

    def _fixed(self) -> Volume:
        fixed = self.fixed if self.fixed is not None else self.reference()
        if fixed is None:
            raise InputError("choose the fixed image first: a transform is read onto its grid")
        return fixed

    def load(self, path: str | Path) -> None:
        """Read a saved transform, sampled on the fixed grid."""
        fixed = self._fixed()
        field, _ = read_field(path, fixed)
        self._set(field, fixed, Path(path).name)

    def check_folds(self) -> str | None:
        """Warn (notification and summary) when the current transform folds: it is then not
        invertible there. Returns the warning, or None."""
        assert self.field is not None and self.fixed is not None
        warning = reuse.fold_warning(self.field, self.fixed.spacing)
        if warning:
            show_warning(f"warning: {warning}")
        return warning

    def invert(self) -> float:
        """Replace the transform by its inverse; returns (and shows) its accuracy in mm. A
        transform that folds is inverted too, with a warning (:meth:`check_folds`)."""
        assert self.field is not None and self.fixed is not None
        warning = self.check_folds()
        inverse, accuracy = reuse.invert(self.field, self.fixed.spacing)
        note = f"inverse accurate to {accuracy:.2g} mm"
        self._set(inverse, self.fixed, f"inverse of {self.source}",
                  f"WARNING: {warning}; {note}" if warning else note)
        return accuracy

    def compose(self, path: str | Path) -> None:
        """The current transform, then the one saved at ``path`` (sampled on the same grid)."""
        assert self.field is not None and self.fixed is not None
        second, _ = read_field(path, self.fixed)
        self._set(reuse.chain(self.field, second, self.fixed.spacing), self.fixed,
                  f"{self.source}, then {Path(path).name}")

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        """Write the transform: ITK ``.h5`` transform or a field image, by the suffix; listed in
        the folder's ``outputs.json`` (a file it does not list is replaced only with
        ``overwrite``; a link never)."""
        assert self.field is not None and self.fixed is not None
        field, fixed = self.field, self.fixed
        export = export_transform if str(path).lower().endswith(TRANSFORM_SUFFIXES) else (
            export_field)
        write_output_file(path, lambda p: export(field, fixed, p), overwrite=overwrite,
                          command="widget: save transform (reuse)",
                          inputs={"source": self.source}, flag="overwrite=True")
        self.summary.setText(self.summary.text() + f"; saved to {Path(path).name}")

    def apply(self, layer: Any = None) -> Any:
        """Warp ``layer`` (default: the chosen one) onto the fixed image; returns the new layer."""
        layer = self.layer.value if layer is None else layer
        if layer is None or self.field is None or self.fixed is None:
            raise InputError("choose a layer and a transform first")
        fixed, name = self.fixed, f"{PREFIX}{layer.name} (transformed)"
        meta = {**_layer_meta(fixed), METADATA_KEY: {"role": f"reuse:{layer.name}",
                                                    "source": self.source}}
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        use_mm(self.viewer)  # the new layer is in mm: so are the others (the scale bar's unit)
        if isinstance(layer, Points):  # points go with the inverse: is there one?
            self.check_folds()
            moved = reuse.points_to_fixed(points_world(layer, fixed.ndim, "points"), self.field,
                                          fixed.spacing, fixed.origin)
            return self.viewer.add_points(moved, name=name, metadata=meta, face_color="cyan",
                                          **mm_units(fixed.ndim))
        is_labels = isinstance(layer, Labels)
        volume = (Volume(np.array(layer.data), tuple(layer.scale), tuple(layer.translate),
                         _direction(layer, layer.ndim), layer.name)
                  if is_labels else image_volume(layer, "image"))
        if not volume.same_grid(fixed):
            volume = resample_to_grid(volume, fixed, labels=is_labels)
        data = reuse.apply_field(volume.array, self.field, fixed.spacing, labels=is_labels)
        add = self.viewer.add_labels if is_labels else self.viewer.add_image
        return add(data, name=name, scale=fixed.spacing, translate=fixed.origin, metadata=meta,
                   **mm_units(fixed.ndim))

    def _ask_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a transform", "", FILES)
        if path:
            self.load(path)

    def _ask_compose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Then apply this transform", "", FILES)
        if path:
            self.compose(path)

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the transform", "transform.h5", FILES,
            options=QFileDialog.Option.DontConfirmOverwrite)  # asked below, naming the files
        if not path:
            return
        try:
            self.save(path)
        except InputError as error:  # a file of the user's in the way: replace if they agree
            if "overwrite" not in str(error) or not _ui.ask(
                    self, "Replace files?", f"{error}\n\nReplace them?"):
                raise
            self.save(path, overwrite=True)


def _layer_meta(fixed: Volume) -> dict[str, Any]:
    return {} if fixed.direction is None else {"direction": np.asarray(fixed.direction).tolist()}


__all__ = ["ReusePanel"]
