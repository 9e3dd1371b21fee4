"""Quality assessment of a registration: pure builders of what the viewer, the CLI and the report
show (numpy; matplotlib and scipy only inside the functions that draw or label). Nothing in this
package imports napari or Qt.

* :mod:`.display`: grid lines, Jacobian and displacement heatmaps, fold maps and clusters, the
  checkerboard, and the layer styles the napari adapter applies.
* :mod:`.tables`: metrics as rows (with label names), the one formatting of the summary
  (:func:`summary_rows` and its views :func:`summary_line`, :func:`summary_lines`,
  :func:`metrics_rows`) and the metrics files (CSV, JSON).
* :mod:`.report`: the one-page PNG report.
* :mod:`.label_names`: label names from ITK-SNAP, FreeSurfer LUT and CSV/TSV tables.

The public names of the three are re-exported here (``from napari_deepreg import qa;
qa.metrics_table(result)``).
"""

from __future__ import annotations

from .display import (
    FOLD_COLORMAP,
    GRID_COLORMAP,
    GRID_WIDTH,
    JACOBIAN_COLORMAP,
    MAGNITUDE_COLORMAP,
    WARPED_COLORMAP,
    checkerboard,
    deformation_grid,
    displacement_magnitude,
    fold_clusters,
    fold_mask,
    grid_lines,
    grid_period,
    intensity_limits,
    jacobian_display,
    magnitude_display,
    normalise_axes,
)
from .label_names import find_label_names, label_title, read_label_names
from .report import report_png
from .tables import (
    HEADLINE,
    LABEL_COLUMNS,
    SummaryRow,
    format_value,
    label_rows,
    label_table,
    metric_unit,
    metrics_rows,
    metrics_table,
    plain,
    result_summary,
    summary_line,
    summary_lines,
    summary_rows,
    to_jsonable,
    write_label_csv,
    write_metrics_csv,
    write_metrics_json,
)

__all__ = [
    "FOLD_COLORMAP",
    "GRID_COLORMAP",
    "GRID_WIDTH",
    "HEADLINE",
    "JACOBIAN_COLORMAP",
    "LABEL_COLUMNS",
    "MAGNITUDE_COLORMAP",
    "WARPED_COLORMAP",
    "SummaryRow",
    "checkerboard",
    "deformation_grid",
    "displacement_magnitude",
    "fold_clusters",
    "find_label_names",
    "fold_mask",
    "format_value",
    "grid_lines",
    "grid_period",
    "intensity_limits",
    "jacobian_display",
    "label_rows",
    "label_table",
    "label_title",
    "magnitude_display",
    "metric_unit",
    "metrics_rows",
    "metrics_table",
    "normalise_axes",
    "plain",
    "read_label_names",
    "report_png",
    "result_summary",
    "summary_line",
    "summary_lines",
    "summary_rows",
    "to_jsonable",
    "write_label_csv",
    "write_metrics_csv",
    "write_metrics_json",
]
