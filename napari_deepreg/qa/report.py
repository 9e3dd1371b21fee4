"""The one-page PNG report of a registration run (matplotlib's Agg canvas, no pyplot).

Rows: fixed, moving, warped with label borders, deformation grid, Jacobian determinant; columns:
three orthogonal central slices in 3D (one panel in 2D); a text box with the headline figures
(:func:`.tables.summary_lines`, the same text as the CLI and the widget).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..result import RegistrationResult
from ..volume import Volume
from .display import deformation_grid, jacobian_display
from .tables import summary_lines

# --------------------------------------------------------------------------- PNG report


def _central_views(ndim: int) -> list[tuple[str, int | None]]:
    """(title, sliced axis) per panel column: three orthogonal planes in 3D, the image in 2D."""
    if ndim == 2:
        return [("image", None)]
    return [("axial (z)", 0), ("coronal (y)", 1), ("sagittal (x)", 2)]


def _slice(array: np.ndarray, axis: int | None, index: int | None = None) -> np.ndarray:
    if axis is None:
        return np.asarray(array)
    i = array.shape[axis] // 2 if index is None else index
    return np.take(array, i, axis=axis)


def _in_plane(spacing: Sequence[float], axis: int | None) -> tuple[float, float]:
    sp = [s for i, s in enumerate(spacing) if i != axis]
    return sp[0], sp[1]


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """Boolean 2D map of label borders (a pixel differs from its right or lower neighbour)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge


def _overlay(mask: np.ndarray, rgb: tuple[float, float, float], alpha: float = 1.0) -> np.ndarray:
    rgba = np.zeros(mask.shape + (4,), dtype=np.float32)
    rgba[mask] = (*rgb, alpha)
    return rgba


def report_png(
    result: RegistrationResult,
    fixed: Volume,
    moving: Volume,
    fixed_labels: Volume | np.ndarray | None,
    path: str | Path,
    dpi: int = 100,
) -> Path:
    """Save a one-page PNG overview of a registration run.

    Columns are three orthogonal central slices in 3D (one panel in 2D); rows are the fixed
    image, the moving image (on its own grid), the warped image with label borders (fixed labels
    in yellow, warped moving labels in cyan), the deformation grid over the warped image and the
    Jacobian determinant (folds in black) with a colour bar; a text box gives the key metrics.
    Pixels keep their physical aspect ratio (from the spacing). Uses matplotlib's Agg canvas, not
    pyplot, so no global figure state is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ndim = result.warped.ndim
    views = _central_views(ndim)
    spacing = tuple(result.spacing)
    flab = None
    if fixed_labels is not None:
        flab = fixed_labels.array if isinstance(fixed_labels, Volume) else np.asarray(fixed_labels)
    jac_arr, jac_limits, jac_cmap = jacobian_display(result.jacobian)
    rows = ["fixed", "moving", "warped + labels", "deformation grid", "Jacobian det."]

    def vrange(array: np.ndarray) -> tuple[float, float]:
        lo, hi = np.percentile(array, [1, 99])
        return float(lo), float(hi) if hi > lo else float(lo) + 1.0

    f_range, m_range, w_range = vrange(fixed.array), vrange(moving.array), vrange(result.warped)

    if ndim == 3:
        n_rows, n_cols = len(rows) + 1, len(views)
        cell = [(r, c) for r in range(len(rows)) for c in range(n_cols)]
        text_cell = (len(rows), slice(0, n_cols))
        figsize = (3.2 * n_cols, 3.0 * len(rows) + 1.5)
    else:  # 2D: the five panels and the text box on a 2 x 3 grid
        n_rows, n_cols = 2, 3
        cell = [(k // 3, k % 3) for k in range(len(rows))]
        text_cell = (1, 2)
        figsize = (11.0, 7.5)
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ratios = [1.0] * len(rows) + [0.5] if ndim == 3 else None
    grid = fig.add_gridspec(n_rows, n_cols, height_ratios=ratios)

    k = 0
    for r, row in enumerate(rows):
        for view_title, axis in views:
            gr, gc = cell[k]
            k += 1
            ax = fig.add_subplot(grid[gr, gc])
            ax.set_xticks([])
            ax.set_yticks([])
            sp_row, sp_col = _in_plane(spacing, axis)
            aspect = sp_row / sp_col
            if row == "fixed":
                ax.imshow(_slice(fixed.array, axis), cmap="gray", vmin=f_range[0],
                          vmax=f_range[1], aspect=aspect, interpolation="nearest")
            elif row == "moving":
                m_row, m_col = _in_plane(moving.spacing, axis)
                ax.imshow(_slice(moving.array, axis), cmap="gray", vmin=m_range[0],
                          vmax=m_range[1], aspect=m_row / m_col, interpolation="nearest")
            elif row == "warped + labels":
                ax.imshow(_slice(result.warped, axis), cmap="gray", vmin=w_range[0],
                          vmax=w_range[1], aspect=aspect, interpolation="nearest")
                if flab is not None and flab.shape == result.warped.shape:
                    ax.imshow(_overlay(_boundaries(_slice(flab, axis)), (1.0, 0.85, 0.0)),
                              aspect=aspect, interpolation="nearest")
                if result.warped_labels is not None:
                    ax.imshow(
                        _overlay(_boundaries(_slice(result.warped_labels, axis)), (0.0, 0.9, 1.0)),
                        aspect=aspect, interpolation="nearest",
                    )
            elif row == "deformation grid":
                in_plane = [a for a in range(ndim) if a != axis]
                comp = np.stack([_slice(result.field[a], axis) for a in in_plane])
                period = max(4, round(min(comp.shape[1:]) / 12))
                lines = deformation_grid(comp, (sp_row, sp_col), (0, 1), period_vox=period)
                ax.imshow(_slice(result.warped, axis), cmap="gray", vmin=w_range[0],
                          vmax=w_range[1], aspect=aspect, interpolation="nearest")
                rgba = np.zeros(lines.shape + (4,), dtype=np.float32)
                rgba[..., 0], rgba[..., 1], rgba[..., 3] = 1.0, 0.55, lines
                ax.imshow(rgba, aspect=aspect, interpolation="nearest")
            else:
                jac2d = _slice(jac_arr, axis)
                image = ax.imshow(jac2d, cmap=jac_cmap, vmin=jac_limits[0], vmax=jac_limits[1],
                                  aspect=aspect, interpolation="nearest")
                ax.imshow(_overlay(jac2d <= 0, (0.0, 0.0, 0.0)), aspect=aspect,
                          interpolation="nearest")
                if axis is None or axis == ndim - 1:
                    fig.colorbar(image, ax=ax, shrink=0.8, label="det J")
            if gc == 0 or ndim == 2:
                ax.set_ylabel(row if ndim == 3 else "", fontsize=10)
            if ndim == 2:
                ax.set_title(row, fontsize=10)
            elif r == 0:
                ax.set_title(view_title, fontsize=10)

    text_ax = fig.add_subplot(grid[text_cell])
    text_ax.axis("off")
    text_ax.text(0.02, 0.95, "\n".join(summary_lines(result)), va="top", ha="left",
                 family="monospace", fontsize=10, transform=text_ax.transAxes,
                 bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6"})
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


__all__ = ["report_png"]
