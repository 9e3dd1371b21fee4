"""The one-page PNG report of a registration run (matplotlib's Agg canvas, no pyplot).

What a person pastes into a lab notebook: before and after overlays of the fixed (green) and the
moving / warped image (magenta; white where they agree) with label contours (fixed yellow, moving
or warped cyan), in the three planes in radiological orientation (:mod:`.orientation`; one panel
in 2D); the Jacobian determinant with its colour bar, folds in black and fold clusters circled
and numbered; the per-label table (names, Dice and HD95 before and after, :func:`.tables.
label_rows`); and the method, its parameters and the headline figures (:func:`.tables.
summary_lines`, the same text as the CLI and the widget).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from ..result import RegistrationResult
from ..volume import Volume
from .display import fold_clusters, jacobian_display
from .orientation import (
    ORIENTATION_NOTE,
    ORIENTATION_NOTE_2D,
    Canonical,
    plane,
    plane_aspect,
    plane_letters,
    plane_point,
)
from .tables import format_value, label_rows, summary_lines

FIXED_CONTOUR = (1.0, 0.85, 0.0)  # yellow
MOVING_CONTOUR = (0.0, 0.9, 1.0)  # cyan
MAX_TABLE_ROWS = 18  # more labels: the first ones, and a line saying how many are left out
MAX_CLUSTERS_MARKED = 5


def _array(data: Volume | np.ndarray | None) -> np.ndarray | None:
    if data is None:
        return None
    return np.asarray(data.array if isinstance(data, Volume) else data)


def _unit(array: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(array, [1, 99])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((array - lo) / (hi - lo), 0.0, 1.0)


def _composite(fixed2d: np.ndarray, moving2d: np.ndarray | None) -> np.ndarray:
    """RGB: fixed in green, moving in magenta (grey-white where both are bright)."""
    if moving2d is None:
        return np.repeat(fixed2d[..., None], 3, axis=-1)
    return np.stack([moving2d, fixed2d, moving2d], axis=-1)


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """Boolean 2D map of label borders (a pixel differs from its right or lower neighbour)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge


def _overlay(mask: np.ndarray, rgb: tuple[float, float, float]) -> np.ndarray:
    rgba = np.zeros(mask.shape + (4,), dtype=np.float32)
    rgba[mask] = (*rgb, 1.0)
    return rgba


def _letters(ax: Any, name: str, color: str = "white") -> None:
    top, bottom, left, right = plane_letters(name)
    style = {"color": color, "fontsize": 8, "fontweight": "bold", "transform": ax.transAxes}
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)


def _bare(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def report_png(
    result: RegistrationResult,
    fixed: Volume,
    moving: Volume,
    fixed_labels: Volume | np.ndarray | None,
    path: str | Path,
    dpi: int = 100,
    moving_labels: Volume | np.ndarray | None = None,
) -> Path:
    """Save the one-page PNG report of a registration run at ``path``.

    Args:
        result: the run (warped image and labels, Jacobian, metrics, label names, parameters).
        fixed: the fixed image (its grid is the result's).
        moving: the moving image; overlaid on the "before" row when it is on the fixed grid
            (same shape), else shown alone.
        fixed_labels: fixed label map (contours in yellow), optional.
        path: the PNG to write.
        dpi: resolution (the page is 12 inches wide).
        moving_labels: moving labels on the fixed grid (contours on the "before" row), optional.

    Uses matplotlib's Agg canvas, not pyplot, so no global figure state is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    ndim = result.warped.ndim
    canon = Canonical.of(result.warped.shape, result.spacing, result.grid.direction)
    names = ["image"] if ndim == 2 else ["axial", "coronal", "sagittal"]
    fixed_c = canon.array(_unit(np.asarray(fixed.array, dtype=np.float32)))
    warped_c = canon.array(_unit(np.asarray(result.warped, dtype=np.float32)))
    moving_arr = np.asarray(moving.array, dtype=np.float32)
    moving_c = canon.array(_unit(moving_arr)) if moving_arr.shape == result.warped.shape else None
    flab = _array(fixed_labels)
    mlab = _array(moving_labels)
    flab_c = canon.array(flab) if flab is not None and flab.shape == result.warped.shape else None
    mlab_c = canon.array(mlab) if mlab is not None and mlab.shape == result.warped.shape else None
    wlab_c = None if result.warped_labels is None else canon.array(result.warped_labels)
    jac_arr, jac_limits, jac_cmap = jacobian_display(result.jacobian)
    jac_c = canon.array(jac_arr)
    clusters = fold_clusters(result.jacobian, result.spacing, result.origin)
    # the Jacobian row cuts through the largest fold cluster, if any (else the middle)
    jac_index = (canon.index(clusters[0]["centroid_vox"]) if clusters
                 else tuple(n // 2 for n in canon.shape))

    rows = [
        ("before: fixed (green) + moving (magenta)", moving_c, mlab_c),
        ("after: fixed (green) + warped (magenta)", warped_c, wlab_c),
    ]
    fig = Figure(figsize=(12.0, 12.5 if ndim == 3 else 7.5), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    if ndim == 3:
        grid = fig.add_gridspec(4, 3, height_ratios=[1.0, 1.0, 1.0, 0.95])
        cell = {(r, c): grid[r, c] for r in range(3) for c in range(3)}
        table_cell, text_cell = grid[3, 0:2], grid[3, 2]
    else:
        grid = fig.add_gridspec(2, 3, height_ratios=[1.0, 0.8])
        cell = {(r, 0): grid[0, r] for r in range(3)}
        table_cell, text_cell = grid[1, 0:2], grid[1, 2]

    for r, (title, other, other_labels) in enumerate(rows):
        for c, name in enumerate(names):
            ax = fig.add_subplot(cell[(r, c)])
            _bare(ax)
            aspect = plane_aspect(canon.spacing, name)
            f2d = plane(fixed_c, name)
            ax.imshow(_composite(f2d, None if other is None else plane(other, name)),
                      aspect=aspect, interpolation="nearest")
            if flab_c is not None:
                ax.imshow(_overlay(_boundaries(plane(flab_c, name)), FIXED_CONTOUR),
                          aspect=aspect, interpolation="nearest")
            if other_labels is not None:
                ax.imshow(_overlay(_boundaries(plane(other_labels, name)), MOVING_CONTOUR),
                          aspect=aspect, interpolation="nearest")
            _letters(ax, name)
            if ndim == 2:
                ax.set_title(title, fontsize=9)
            elif r == 0:
                ax.set_title(name, fontsize=10)
            if ndim == 3 and c == 0:
                ax.set_ylabel(title.replace(": ", ":\n"), fontsize=9)

    jac_title = ("Jacobian det. through fold cluster 1" if clusters else "Jacobian det.")
    for c, name in enumerate(names):
        ax = fig.add_subplot(cell[(2, c)])
        _bare(ax)
        aspect = plane_aspect(canon.spacing, name)
        axis = None if name == "image" else {"axial": 0, "coronal": 1, "sagittal": 2}[name]
        index = None if axis is None else int(round(jac_index[axis]))
        j2d = plane(jac_c, name, index)
        image = ax.imshow(j2d, cmap=jac_cmap, vmin=jac_limits[0], vmax=jac_limits[1],
                          aspect=aspect, interpolation="nearest")
        ax.imshow(_overlay(j2d <= 0, (0.0, 0.0, 0.0)), aspect=aspect, interpolation="nearest")
        for cluster in clusters[:MAX_CLUSTERS_MARKED]:
            row, col, depth = plane_point(canon.index(cluster["centroid_vox"]), canon.shape, name)
            if axis is not None and abs(depth - index) > 3:
                continue  # not near this cut
            ax.plot(col, row, marker="o", markersize=14, markerfacecolor="none",
                    markeredgecolor="black", markeredgewidth=1.5)
            ax.annotate(str(cluster["id"]), (col, row), xytext=(8, 8),
                        textcoords="offset points", fontsize=9, fontweight="bold")
        _letters(ax, name, "black")
        if ndim == 2:
            ax.set_title(jac_title, fontsize=9)
        elif c == 0:
            ax.set_ylabel(jac_title.replace(" through", "\nthrough"), fontsize=9)
        if c == len(names) - 1:
            fig.colorbar(image, ax=ax, shrink=0.85,
                         label=f"det J ({jac_limits[0]:.2f} to {jac_limits[1]:.2f}; black <= 0)")

    handles = [
        Line2D([], [], color=FIXED_CONTOUR, lw=2, label="fixed labels"),
        Line2D([], [], color=MOVING_CONTOUR, lw=2, label="moving / warped labels"),
        Line2D([], [], color=(0.1, 0.8, 0.1), lw=6, label="fixed image only"),
        Line2D([], [], color=(0.85, 0.1, 0.85), lw=6, label="moving / warped image only"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=9, frameon=False)
    note = ORIENTATION_NOTE if ndim == 3 else ORIENTATION_NOTE_2D
    fig.suptitle(f"registration report: {result.method}"
                 + (f" / {result.model}" if result.model else "") + f"\n{note}", fontsize=10)

    _label_table(fig.add_subplot(table_cell), result)
    _text_box(fig.add_subplot(text_cell), result, clusters)
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


def _label_table(ax: Any, result: RegistrationResult) -> None:
    ax.axis("off")
    header, rows = label_rows(result)
    if not rows:
        ax.text(0.0, 0.9, "no label maps: no per-label figures", fontsize=10,
                transform=ax.transAxes)
        return
    shown = rows[:MAX_TABLE_ROWS]
    ax.set_title("per label" + (f" (first {len(shown)} of {len(rows)}; all in the labels CSV)"
                                if len(rows) > len(shown) else ""), fontsize=10, loc="left")
    table = ax.table(cellText=[list(r) for r in shown], colLabels=header, loc="upper left",
                     cellLoc="right", colLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.auto_set_column_width(list(range(len(header))))
    for (r, c), text_cell in table.get_celld().items():
        if c == 0:
            text_cell.set_text_props(ha="left")
        if r == 0:
            text_cell.set_text_props(fontweight="bold")


def _text_box(ax: Any, result: RegistrationResult, clusters: list[dict]) -> None:
    ax.axis("off")
    lines = summary_lines(result)
    if clusters:
        top = clusters[0]
        where = ", ".join(f"{v:.0f}" for v in top["centroid_mm"])
        lines.append(f"{len(clusters)} fold cluster(s); largest {top['size_vox']} vox at "
                     f"({where}) mm, min J {top['min_jacobian']:.2f}")
    else:
        lines.append("no folds (det J > 0 everywhere)")
    params = ", ".join(f"{k}={format_value(k, v) if not isinstance(v, (list, tuple)) else v}"
                       for k, v in result.parameters.items())
    lines.append("")
    lines += textwrap.wrap("parameters: " + params, width=42)[:14]
    lines += [textwrap.fill(note, 42) for note in result.notes[:3]]
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=8,
            transform=ax.transAxes,
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6"})


__all__ = ["report_png"]
