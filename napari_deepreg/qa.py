"""Pure builders of what the viewer and the headless reports show (numpy / matplotlib only).

Nothing here imports napari or Qt: the layer builders in ``_napari/`` and the CLI call these
functions and wrap their arrays. Conventions follow the package: arrays ``(z, y, x)`` /
``(y, x)``, ``spacing`` in mm per array axis, a displacement field ``(D, *spatial)`` in mm along
the array axes on the fixed grid (pull-back).

Metrics files: :func:`write_metrics_csv` writes the summary table (one row per figure:
``name,value,unit``) and :func:`write_label_csv` the per-label table (one row per label) into a
second file, because the two tables have different columns; :func:`write_metrics_json` writes both
tables and the run's parameters into one JSON document.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from .methods.base import RegistrationResult
from .volume import Volume

# Order in which summary figures are listed (others follow, sorted by name).
_METRIC_ORDER = (
    "dice_before",
    "dice_after",
    "hd95_before",
    "hd95_after",
    "assd_before",
    "assd_after",
    "tre_before",
    "tre_after",
    "fold_percent",
    "fold_count",
    "sdlogj",
    "jacobian_min",
    "jacobian_max",
)

# Diverging map centred on J = 1: blue = compression, red = expansion (napari and matplotlib
# both know it by this name).
JACOBIAN_COLORMAP = "RdBu_r"


# --------------------------------------------------------------------------- field pictures


def _check_field(field: np.ndarray) -> np.ndarray:
    field = np.asarray(field)
    if field.ndim not in (3, 4) or field.shape[0] != field.ndim - 1:
        raise ValueError(
            f"field must be (D, *spatial) with D = 2 or 3 spatial dims, got shape {field.shape}"
        )
    return field


def _spacing(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    if isinstance(spacing, (int, float)):
        return (float(spacing),) * ndim
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim or any(not s > 0 for s in values):
        raise ValueError(f"spacing must be {ndim} positive values, got {values}")
    return values


def deformation_grid(
    field: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    displayed_axes: Sequence[int] = (-2, -1),
    period_vox: float = 8,
    width: float = 1.0,
) -> np.ndarray:
    """Rasterise the deformed grid in fixed space.

    A grid drawn on the moving image every ``period_vox`` voxels, pulled back into the fixed
    grid: ``G(x) = max_a line(phi_a(x))`` over the displayed axes ``a``, where
    ``phi(x) = x + u(x) / spacing`` is the mapped position in voxels and ``line(t)`` is a hat of
    half-width ``width`` voxels around the multiples of ``period_vox`` (1 on a line, falling
    linearly to 0 at ``width`` away, so sub-voxel positions are anti-aliased).

    Only the displayed (in-plane) axes draw lines: a 3D grid sliced along the other axis shows a
    2D grid and no filled planes. Re-run it when the displayed axes change.

    Args:
        field: ``(D, *spatial)`` displacement in mm.
        spacing: voxel size in mm per array axis.
        displayed_axes: spatial axes (negative counts from the end) whose grid lines are drawn.
        period_vox: grid period in (moving) voxels.
        width: line half-width in voxels.

    Returns:
        ``(*spatial)`` float32 in ``[0, 1]``.
    """
    field = _check_field(field)
    ndim = field.shape[0]
    shape = field.shape[1:]
    sp = _spacing(spacing, ndim)
    if period_vox <= 0 or width <= 0:
        raise ValueError(f"period_vox and width must be positive, got {period_vox}, {width}")
    axes = sorted({int(a) % ndim for a in displayed_axes})
    if any(not -ndim <= int(a) < ndim for a in displayed_axes) or not axes:
        raise ValueError(f"displayed_axes must be axes of a {ndim}D field, got {displayed_axes}")

    out = np.zeros(shape, dtype=np.float32)
    buf = np.empty(shape, dtype=np.float32)
    nearest = np.empty(shape, dtype=np.float32)
    for a in axes:
        view = [1] * ndim
        view[a] = shape[a]
        index = np.arange(shape[a], dtype=np.float32).reshape(view)
        # t = phi_a(x) in voxels, in place to keep 193x229x193 volumes well under a second;
        # the nearest line is an exact multiple of the period so integer t stay exact
        np.divide(field[a], np.float32(sp[a]), out=buf, casting="unsafe")
        buf += index
        np.multiply(buf, np.float32(1.0 / period_vox), out=nearest)
        np.rint(nearest, out=nearest)
        nearest *= np.float32(period_vox)
        buf -= nearest  # signed distance to the nearest line, in voxels
        np.abs(buf, out=buf)
        buf *= np.float32(1.0 / width)  # ... in half-widths
        np.subtract(np.float32(1.0), buf, out=buf)
        np.maximum(out, buf, out=out)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def displacement_magnitude(field: np.ndarray) -> np.ndarray:
    """Length of the displacement, ``(*spatial)`` float32 in mm, from a ``(D, *spatial)`` field."""
    field = _check_field(field)
    out = np.zeros(field.shape[1:], dtype=np.float32)
    for component in field:
        out += np.square(component, dtype=np.float32)
    return np.sqrt(out, out=out)


# --------------------------------------------------------------------------- Jacobian and folds


def jacobian_display(
    jac: np.ndarray, percentile: float = 99.0, min_half_range: float = 0.05
) -> tuple[np.ndarray, tuple[float, float], str]:
    """How to show a Jacobian-determinant map: ``(array, contrast_limits, colormap name)``.

    The array keeps its true values (so the viewer's hover shows them); the contrast limits are
    symmetric around 1 (volume preserved) with a half-range given by the ``percentile`` of
    ``|J - 1|``, between ``min_half_range`` and 1, so a gentle field is not washed out and the
    limits never exceed ``[0, 2]``. Folds (J <= 0) saturate at the compression end; show them
    with :func:`fold_mask` on top.
    """
    jac = np.asarray(jac, dtype=np.float32)
    finite = jac[np.isfinite(jac)]
    spread = float(np.percentile(np.abs(finite - 1.0), percentile)) if finite.size else 1.0
    half = min(max(spread, min_half_range), 1.0)
    return jac, (1.0 - half, 1.0 + half), JACOBIAN_COLORMAP


def fold_mask(jac: np.ndarray) -> np.ndarray:
    """``uint8`` map, 1 where the deformation folds (Jacobian determinant <= 0), else 0."""
    return (np.asarray(jac) <= 0).astype(np.uint8)


def fold_clusters(
    jac: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Connected components of folding voxels (J <= 0), largest first.

    Voxels touching by a face, edge or corner belong to the same cluster.

    Returns:
        one dict per cluster: ``id`` (1-based, by decreasing size), ``size_vox``,
        ``volume_mm3``, ``centroid_vox`` and ``centroid_mm`` (physical, array axis order:
        ``origin + index * spacing``), ``min_jacobian``.
    """
    jac = np.asarray(jac)
    ndim = jac.ndim
    sp = np.asarray(_spacing(spacing, ndim))
    org = np.zeros(ndim) if origin is None else np.asarray(origin, dtype=float)
    mask = jac <= 0
    labels, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(ndim, ndim))
    if count == 0:
        return []
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=count + 1)[1:]
    coords = np.nonzero(labels)
    ids = labels[coords]
    centroids = np.stack(
        [np.bincount(ids, weights=c, minlength=count + 1)[1:] / sizes for c in coords], axis=1
    )
    minima = ndimage.minimum(jac, labels, index=np.arange(1, count + 1))
    voxel_volume = float(np.prod(sp))
    order = np.argsort(-sizes, kind="stable")
    clusters = []
    for rank, k in enumerate(order, start=1):
        clusters.append(
            {
                "id": rank,
                "size_vox": int(sizes[k]),
                "volume_mm3": float(sizes[k] * voxel_volume),
                "centroid_vox": tuple(float(c) for c in centroids[k]),
                "centroid_mm": tuple(float(c) for c in org + centroids[k] * sp),
                "min_jacobian": float(minima[k]),
            }
        )
    return clusters


# --------------------------------------------------------------------------- image comparison


def _unit_range(array: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    lo, hi = np.percentile(array, [low, high])
    if hi <= lo:
        lo, hi = float(array.min()), float(array.max())
    if hi <= lo:
        return np.zeros(array.shape, dtype=np.float32)
    return np.clip((array - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def checkerboard(
    a: np.ndarray, b: np.ndarray, tiles: int | Sequence[int] = 8, normalise: bool = True
) -> np.ndarray:
    """Interleave two images on the same grid in a checkerboard of ``tiles`` tiles per axis.

    Tile ``(i, j[, k])`` shows ``a`` where ``i + j (+ k)`` is even and ``b`` elsewhere. With
    ``normalise`` each image is first mapped to ``[0, 1]`` by its 0.5/99.5 percentiles, so two
    modalities or intensity ranges can be compared; the result is float32.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"checkerboard needs images of the same shape, got {a.shape} and {b.shape}"
        )
    n_tiles = (tiles,) * a.ndim if isinstance(tiles, int) else tuple(tiles)
    if len(n_tiles) != a.ndim or any(t < 1 for t in n_tiles):
        raise ValueError(f"tiles must be a positive count (per axis), got {tiles}")
    if normalise:
        a, b = _unit_range(a), _unit_range(b)
    parity = np.zeros((1,) * a.ndim, dtype=np.int64)
    for axis, (n, t) in enumerate(zip(a.shape, n_tiles, strict=True)):
        size = math.ceil(n / t)
        view = [1] * a.ndim
        view[axis] = n
        parity = parity + (np.arange(n) // size).reshape(view)
    return np.where(parity % 2 == 0, a, b).astype(np.float32)


# --------------------------------------------------------------------------- metric tables


def metric_unit(name: str) -> str:
    """Unit of a summary figure, from its name (``mm``, ``%``, ``s`` or ``""``)."""
    if name.endswith("_s") or name == "runtime":
        return "s"
    if "percent" in name:
        return "%"
    if any(key in name for key in ("hd95", "assd", "tre", "epe", "endpoint", "_mm")):
        return "mm"
    if "mm3" in name:
        return "mm^3"
    return ""


def metrics_table(result: RegistrationResult) -> list[dict[str, Any]]:
    """Summary rows ``{"name", "value", "unit"}``: the metrics, runtime, method and model.

    Known figures come first in a fixed order (Dice, HD95, ASSD, TRE, folds, SDlogJ), then any
    other figure by name, then ``runtime_s``, ``method`` and ``model`` (string values).
    """
    metrics = dict(result.metrics)
    metrics.pop("runtime_s", None)  # listed once, from result.runtime
    names = [n for n in _METRIC_ORDER if n in metrics]
    names += sorted(n for n in metrics if n not in _METRIC_ORDER)
    rows: list[dict[str, Any]] = [
        {"name": n, "value": _plain(metrics[n]), "unit": metric_unit(n)} for n in names
    ]
    rows.append({"name": "runtime_s", "value": float(result.runtime), "unit": "s"})
    rows.append({"name": "method", "value": result.method, "unit": ""})
    rows.append({"name": "model", "value": result.model or "", "unit": ""})
    return rows


def label_table(result: RegistrationResult) -> list[dict[str, Any]]:
    """Per-label rows with the same keys in every row (missing figures are None).

    Columns: ``label`` first, then every other key in order of first appearance.
    """
    keys: list[str] = ["label"]
    for row in result.label_metrics:
        keys += [k for k in row if k not in keys]
    return [{k: _plain(row.get(k)) for k in keys} for row in result.label_metrics]


def _plain(value: Any) -> Any:
    """A JSON/CSV-friendly scalar: numpy numbers -> Python, NaN/Inf -> None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_jsonable(value: Any) -> Any:
    """``value`` with numpy arrays/scalars as lists/numbers, NaN/Inf as None, others as str."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    value = _plain(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)  # paths, enums, dtypes...


def write_metrics_csv(result: RegistrationResult, path: str | Path) -> Path:
    """Write :func:`metrics_table` as CSV (``name,value,unit``; empty value for NaN)."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["name", "value", "unit"])
        writer.writeheader()
        writer.writerows(metrics_table(result))
    return path


def write_label_csv(result: RegistrationResult, path: str | Path) -> Path:
    """Write :func:`label_table` as CSV, one row per label (only a ``label`` header if none)."""
    path = Path(path)
    rows = label_table(result)
    fieldnames = list(rows[0]) if rows else ["label"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return path


def result_summary(result: RegistrationResult) -> dict[str, Any]:
    """Everything about a run except its arrays, as JSON-ready Python values."""
    return to_jsonable(
        {
            "method": result.method,
            "model": result.model,
            "runtime_s": float(result.runtime),
            "metrics": {row["name"]: row["value"] for row in metrics_table(result)
                        if row["name"] not in ("method", "model", "runtime_s")},
            "labels": label_table(result),
            "parameters": result.parameters,
            "spacing": list(result.spacing),
            "origin": list(result.origin),
            "affine": None if result.affine is None else np.asarray(result.affine),
            "notes": list(result.notes),
        }
    )


def write_metrics_json(result: RegistrationResult, path: str | Path) -> Path:
    """Write :func:`result_summary` as strict JSON (NaN/Inf become null)."""
    path = Path(path)
    path.write_text(json.dumps(result_summary(result), indent=2, allow_nan=False) + "\n")
    return path


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


def _summary_lines(result: RegistrationResult) -> list[str]:
    m = result.metrics
    lines = [f"method: {result.method}" + (f"  model: {result.model}" if result.model else "")]

    def num(value: Any, fmt: str) -> str:
        value = _plain(value)
        return "n/a" if value is None else format(value, fmt)

    def pair(name: str, label: str, fmt: str, unit: str = "") -> None:
        before, after = m.get(f"{name}_before"), m.get(f"{name}_after")
        if after is not None:
            text = f"{label}: "
            text += f"{num(before, fmt)} -> " if before is not None else ""
            lines.append(text + f"{num(after, fmt)}{unit}")

    pair("dice", "Dice", ".3f")
    pair("hd95", "HD95", ".2f", " mm")
    pair("tre", "TRE", ".2f", " mm")
    if "fold_percent" in m:
        lines.append(f"folds (J<=0): {num(m['fold_percent'], '.4f')} %")
    if "sdlogj" in m:
        lines.append(f"SDlogJ: {num(m['sdlogj'], '.4f')}")
    lines.append(f"runtime: {result.runtime:.1f} s")
    return lines


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
    text_ax.text(0.02, 0.95, "\n".join(_summary_lines(result)), va="top", ha="left",
                 family="monospace", fontsize=10, transform=text_ax.transAxes,
                 bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6"})
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path
