"""The "Folds" section of the Registration dock: fold clusters and fold % per label.

Lists the connected clusters of folding voxels (J <= 0) of the last run, largest first, with
their size, centre (mm), smallest Jacobian and the structure they sit in
(:func:`napari_deepreg.qa.folds.fold_rows`); clicking a cluster moves the viewer there (dims
slider and camera centre) and shows the folds layer. Below, the fold % of each labelled
structure (:func:`napari_deepreg.qa.folds.fold_percent_per_label`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..qa.folds import fold_percent_per_label, fold_rows
from ..qa.tables import format_value
from ..result import RegistrationResult
from . import _ui
from ._layers import FOLDS_NAME

CLUSTER_HEADER = ("#", "voxels", "mm³", "centre (mm)", "min J", "structure")
LABEL_HEADER = ("structure", "voxels folded", "fold %")


class FoldsPanel(QWidget):
    """Fold clusters of the last result; a click on a row centres the viewer on that cluster."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.clusters: list[dict[str, Any]] = []
        self.summary = _ui.status_label("no result yet")
        self.table = _ui.metrics_table(CLUSTER_HEADER)
        self.table.setSelectionBehavior(self.table.SelectionBehavior.SelectRows)
        self.table.cellClicked.connect(lambda row, _col: self.go_to(row))
        self.per_label = _ui.metrics_table(LABEL_HEADER)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.summary, self.table, QLabel("fold % per structure"), self.per_label):
            layout.addWidget(widget)

    def show_result(self, result: RegistrationResult, labels: np.ndarray | None) -> None:
        """List the folds of ``result`` (``labels``: the fixed label map, for the structure)."""
        names = result.label_names
        self.clusters = fold_rows(result.jacobian, result.spacing, result.origin, labels, names)
        rows = [
            (str(c["id"]), str(c["size_vox"]), f"{c['volume_mm3']:.3g}",
             ", ".join(f"{v:.1f}" for v in c["centroid_mm"]), f"{c['min_jacobian']:.3f}",
             c.get("structure", ""))
            for c in self.clusters
        ]
        _ui.fill_table(self.table, rows, CLUSTER_HEADER)
        folded = int(sum(c["size_vox"] for c in self.clusters))
        total = int(np.asarray(result.jacobian).size)
        self.summary.setText(
            f"{len(self.clusters)} fold cluster(s), {folded} voxel(s) with J <= 0 "
            f"({format_value('fold_percent', 100.0 * folded / max(total, 1))} %)"
            + ("; click one to go there" if self.clusters else ""))
        per_label = [] if labels is None or np.shape(labels) != np.shape(result.jacobian) else (
            fold_percent_per_label(result.jacobian, labels, names))
        _ui.fill_table(self.per_label, [
            (r["name"], f"{r['folded']} / {r['voxels']}",
             format_value("fold_percent", r["fold_percent"])) for r in per_label
        ], LABEL_HEADER)

    def rows(self) -> list[tuple[str, ...]]:
        """The cluster table's text, row by row."""
        return _ui.table_text(self.table)

    def label_rows(self) -> list[tuple[str, ...]]:
        """The fold-%-per-structure table's text, row by row."""
        return _ui.table_text(self.per_label)

    def go_to(self, row: int) -> None:
        """Centre the viewer on cluster ``row`` (0-based): its slice and camera centre (world
        mm), and show the folds layer."""
        if not 0 <= row < len(self.clusters):
            return
        point = np.asarray(self.clusters[row]["centroid_mm"], dtype=float)
        dims = self.viewer.dims
        offset = dims.ndim - point.size  # layers of fewer dimensions sit on the last axes
        for axis, value in enumerate(point):
            dims.set_point(axis + offset, float(value))
        shown = [d - offset for d in dims.displayed if d - offset >= 0]
        self.viewer.camera.center = tuple(float(point[d]) for d in shown)
        if FOLDS_NAME in self.viewer.layers:
            self.viewer.layers[FOLDS_NAME].visible = True


__all__ = ["FoldsPanel"]
