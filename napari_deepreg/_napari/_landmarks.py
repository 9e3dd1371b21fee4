"""The "Landmarks" section of the Registration dock: target registration error per point.

With fixed and moving Points layers chosen as inputs (paired by order, world mm), the last run's
TRE of every pair before and after registration (:func:`napari_deepreg.qa.landmarks
.landmark_errors`, i.e. :func:`napari_deepreg.metrics.tre`) is listed worst first, the fixed
landmarks are shown as a Points layer coloured and sized by the error after registration, and the
residual error vectors (moving landmark minus where the fixed landmark lands) as a Vectors layer,
drawn :data:`VECTOR_MAGNIFICATION` times their length (a residual of a millimetre or two is a dot
at true length; the layer's name and the canvas legend say so, its data stay in true mm).
Clicking a row moves the viewer to that point.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ..qa.landmarks import LandmarkErrors, landmark_errors
from ..result import RegistrationResult
from . import _ui
from ._layers import METADATA_KEY, PREFIX, mm_units

POINTS_NAME = PREFIX + "landmark TRE (mm)"
VECTOR_MAGNIFICATION = 5.0  # the residual arrows are drawn this many times their length
VECTORS_NAME = PREFIX + f"landmark residuals (mm, drawn x{VECTOR_MAGNIFICATION:g})"
HEADER = ("point", "TRE before (mm)", "TRE after (mm)", "fixed (mm)")


class LandmarksPanel(QWidget):
    """Per-point TRE of the last result; a click on a row centres the viewer on that point."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.errors: LandmarkErrors | None = None
        self.summary = _ui.status_label(
            "choose fixed and moving points (same order) before the run to measure TRE")
        self.table = _ui.metrics_table(HEADER)
        self.table.setSelectionBehavior(self.table.SelectionBehavior.SelectRows)
        self.table.cellClicked.connect(lambda row, _col: self.go_to(row))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)

    def show_result(self, result: RegistrationResult, fixed_points: np.ndarray | None,
                    moving_points: np.ndarray | None) -> None:
        """Measure and show the landmarks of ``result`` (points: ``(K, D)`` world mm or None)."""
        self.errors = None
        if fixed_points is None or moving_points is None or len(fixed_points) == 0:
            _ui.fill_table(self.table, [], HEADER)
            self.summary.setText("no landmarks: choose fixed and moving points before the run")
            return
        errors = landmark_errors(result, fixed_points, moving_points)
        self.errors = errors
        _ui.fill_table(self.table, [
            (str(r["point"]), f"{r['tre_before']:.2f}", f"{r['tre_after']:.2f}",
             ", ".join(f"{v:.1f}" for v in errors.fixed[int(r["point"]) - 1]))
            for r in errors.rows()
        ], HEADER)
        worst = errors.worst(1)[0]
        self.summary.setText(
            f"{len(errors.after)} landmark(s): mean TRE {errors.before.mean():.2f} mm before, "
            f"{errors.after.mean():.2f} mm after; worst point {worst + 1} "
            f"({errors.after[worst]:.2f} mm). On the canvas the fixed landmarks are coloured "
            f"(plasma: dark 0 mm, yellow {errors.after.max():.2f} mm) and sized by TRE after; "
            f"yellow vectors: residual to the moving landmark, drawn x{VECTOR_MAGNIFICATION:g} "
            "its length. Click a row to go there.")
        self._put_layers(result, errors)

    def _put_layers(self, result: RegistrationResult, errors: LandmarkErrors) -> None:
        layers = self.viewer.layers
        for name in (POINTS_NAME, VECTORS_NAME):
            if name in layers:
                layers.remove(name)
        meta = {METADATA_KEY: {"role": "landmarks", "method": result.method}}
        top = max(float(errors.after.max()), 1e-6)
        self.viewer.add_points(
            errors.fixed, name=POINTS_NAME, metadata=meta,
            features={"point": np.arange(1, len(errors.after) + 1),
                      "tre_before": errors.before, "tre_after": errors.after},
            face_color="tre_after", face_colormap="plasma", face_contrast_limits=(0.0, top),
            size=2.0 + 6.0 * errors.after / top, border_color="white",
            **mm_units(errors.fixed.shape[1]))
        vectors = np.stack([errors.fixed, errors.residual], axis=1)  # (K, 2, D): start, vector
        # true mm in the data; napari's `length` scales the drawing only
        record = {"role": "landmark_residuals", "method": result.method,
                  "magnification": VECTOR_MAGNIFICATION}
        self.viewer.add_vectors(vectors, name=VECTORS_NAME, edge_color="yellow", edge_width=0.6,
                                length=VECTOR_MAGNIFICATION, metadata={METADATA_KEY: record},
                                **mm_units(errors.fixed.shape[1]))

    def rows(self) -> list[tuple[str, ...]]:
        """The table's text, row by row."""
        return _ui.table_text(self.table)

    def go_to(self, row: int) -> None:
        """Centre the viewer on the landmark listed in table row ``row`` (0-based)."""
        if self.errors is None or not 0 <= row < len(self.errors.after):
            return
        point = self.errors.fixed[self.errors.worst(len(self.errors.after))[row]]
        dims = self.viewer.dims
        offset = dims.ndim - point.size
        for axis, value in enumerate(point):
            dims.set_point(axis + offset, float(value))
        shown = [d - offset for d in dims.displayed if d - offset >= 0]
        self.viewer.camera.center = tuple(float(point[d]) for d in shown)


__all__ = ["POINTS_NAME", "VECTORS_NAME", "VECTOR_MAGNIFICATION", "LandmarksPanel"]
