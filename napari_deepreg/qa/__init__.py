"""Quality assessment of a registration: pure builders of what the viewer, the CLI and the report
show (numpy; matplotlib and scipy only inside the functions that draw or label). Nothing in this
package imports napari or Qt.

* :mod:`.display`: grid lines, Jacobian and displacement heatmaps, fold maps and clusters, the
  checkerboard, and the layer styles the napari adapter applies.
* :mod:`.tables`: metrics as rows (with label names), the one formatting of the summary
  (:func:`summary_rows` and its views :func:`summary_line`, :func:`summary_lines`,
  :func:`metrics_rows`) and the metrics files (CSV, JSON).
* :mod:`.report`: the one-page PNG report.

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
from .report import report_png
from .tables import (
    HEADLINE,
    SummaryRow,
    format_value,
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
    "MAGNITUDE_COLORMAP",
    "WARPED_COLORMAP",
    "SummaryRow",
    "checkerboard",
    "deformation_grid",
    "displacement_magnitude",
    "fold_clusters",
    "fold_mask",
    "format_value",
    "grid_lines",
    "grid_period",
    "intensity_limits",
    "jacobian_display",
    "label_table",
    "magnitude_display",
    "metric_unit",
    "metrics_rows",
    "metrics_table",
    "normalise_axes",
    "plain",
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
