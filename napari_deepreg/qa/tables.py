"""A run's metrics as rows: the tables, the one formatting of the summary, and the metric files.

Label rows carry the labels' names (``result.label_names``, :mod:`.label_names`) wherever they
are shown: :func:`label_rows` (the widget's and the report's per-label table), :func:`label_table`
and the labels CSV (a ``name`` column).

Everything that turns ``RegistrationResult.metrics`` into text lives here, so the widget's table,
the CLI's summary line and the PNG report's text box show the same figures with the same labels,
units and decimals:

* :func:`summary_rows` pairs ``*_before`` / ``*_after`` figures and formats every value
  (:func:`format_value`); :func:`summary_line` (one line, the CLI), :func:`summary_lines` (the
  report's text box) and :func:`metrics_rows` (the widget's ``figure | before | after`` table)
  are views of it.
* :func:`metrics_table` / :func:`label_table` are the machine-readable tables (raw values) that
  :func:`write_metrics_csv`, :func:`write_label_csv` and :func:`write_metrics_json` write. The
  summary (``name,value,unit``) and the per-label table go to two CSV files because their
  columns differ; the JSON document holds both and the run's parameters.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..result import RegistrationResult

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

# Figures measured before and after registration, shown on one row: stem -> label.
_PAIRED = {"dice": "Dice", "hd95": "HD95", "assd": "ASSD", "tre": "TRE"}
# Labels that are not the name with spaces.
_LABELS = {"sdlogj": "SDlogJ", "jacobian_min": "Jacobian min", "jacobian_max": "Jacobian max"}
# Number formats by figure (stem for paired figures); anything else uses 4 significant digits.
# Dice to 0.001 (what a change in overlap needs), distances to 0.01 mm, folds to 1e-4 %.
_FORMATS = {
    "dice": ".3f",
    "hd95": ".2f",
    "assd": ".2f",
    "tre": ".2f",
    "fold_percent": ".4f",
    "sdlogj": ".4f",
    "runtime_s": ".1f",
}
# What the one-line summary and the report's text box show (the widget's table shows all).
HEADLINE = ("dice", "hd95", "tre", "fold_percent", "sdlogj")


# --------------------------------------------------------------------------- values


def plain(value: Any) -> Any:
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
    value = plain(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)  # paths, enums, dtypes...


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


def format_value(name: str, value: Any) -> str:
    """A figure as the user reads it: ``name``'s number format, ``n/a`` for None/NaN/Inf.

    ``name`` is the metric name (``dice_after``) or its stem (``dice``); integers print whole.
    """
    value = plain(value)
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    stem, _, when = name.rpartition("_")
    key = stem if when in ("before", "after") and stem in _PAIRED else name
    if isinstance(value, int):
        return str(value)
    return format(value, _FORMATS.get(key, ".4g"))


# --------------------------------------------------------------------------- the summary


@dataclass(frozen=True)
class SummaryRow:
    """One figure of the summary, formatted.

    Attributes:
        key: the paired stem (``dice``) or the metric name (``fold_percent``).
        label: what a person reads (``Dice``, ``fold percent``).
        unit: ``mm``, ``%``, ``s`` or ``""``.
        before: the value before registration, ``""`` for a figure without one.
        after: the value after registration (or the figure's only value).
    """

    key: str
    label: str
    unit: str
    before: str
    after: str

    def text(self) -> str:
        """``Dice 0.612 -> 0.803``, ``HD95 4.10 -> 2.30 mm``, ``fold percent 0.0000 %``."""
        value = f"{self.before} -> {self.after}" if self.before else self.after
        return f"{self.label} {value}" + (f" {self.unit}" if self.unit else "")


def _ordered_names(metrics: Mapping[str, Any]) -> list[str]:
    names = [n for n in _METRIC_ORDER if n in metrics]
    return names + sorted(n for n in metrics if n not in _METRIC_ORDER)


def summary_rows(metrics: Mapping[str, Any], headline: bool = False) -> list[SummaryRow]:
    """The summary figures of ``metrics`` (``RegistrationResult.metrics``), formatted.

    Paired figures (Dice, HD95, ASSD, TRE) give one row with before and after; the others one
    row each, in the order of :func:`metrics_table`. ``runtime_s`` is left out (the result's
    runtime is reported on its own). With ``headline`` only the figures of :data:`HEADLINE`.
    """
    rows: list[SummaryRow] = []
    done: set[str] = {"runtime_s"}
    for name in _ordered_names(metrics):
        if name in done:
            continue
        stem, _, when = name.rpartition("_")
        if when in ("before", "after") and stem in _PAIRED:
            done.update({f"{stem}_before", f"{stem}_after"})
            key, label = stem, _PAIRED[stem]
            before = format_value(name, metrics[f"{stem}_before"]) if (
                f"{stem}_before" in metrics) else ""
            after = format_value(name, metrics.get(f"{stem}_after"))
        else:
            key, label = name, _LABELS.get(name, name.replace("_", " "))
            before, after = "", format_value(name, metrics[name])
        if headline and key not in HEADLINE:
            continue
        rows.append(SummaryRow(key, label, metric_unit(name), before, after))
    return rows


def summary_line(metrics: Mapping[str, Any]) -> str:
    """The headline figures on one line (the CLI's ``register`` output), e.g.
    ``Dice 0.612 -> 0.803, HD95 4.10 -> 2.30 mm, fold percent 0.0000 %, SDlogJ 0.0412``."""
    return ", ".join(row.text() for row in summary_rows(metrics, headline=True))


def summary_lines(result: RegistrationResult) -> list[str]:
    """The report's text box: method (and model), the headline figures, the runtime."""
    lines = [f"method: {result.method}" + (f"  model: {result.model}" if result.model else "")]
    lines += [row.text() for row in summary_rows(result.metrics, headline=True)]
    lines.append(f"runtime {format_value('runtime_s', float(result.runtime))} s")
    return lines


def metrics_rows(result: RegistrationResult) -> list[tuple[str, str, str]]:
    """The widget's table: rows ``(figure, before, after)``, the unit in the figure's name.

    Every summary figure (paired ones on one row), the affine stage's matrix (world frame, mm,
    array axis order; one row per matrix row) when there is one, then the runtime and the method
    (and model). The per-label figures are :func:`label_rows`, a table of their own.
    """
    rows = [
        (row.label + (f" ({row.unit})" if row.unit else ""), row.before, row.after)
        for row in summary_rows(result.metrics)
    ]
    if result.affine is not None:
        for i, values in enumerate(np.asarray(result.affine)[:-1]):
            rows.append((f"affine row {i}", "", "  ".join(f"{v:.4g}" for v in values)))
    rows.append(("runtime (s)", "", format_value("runtime_s", float(result.runtime))))
    rows.append(("method", "", result.method + (f" / {result.model}" if result.model else "")))
    return rows


# (key, column header) of the per-label table people read; columns without values are dropped
LABEL_COLUMNS = (
    ("dice_before", "Dice before"),
    ("dice_after", "Dice after"),
    ("hd95_before", "HD95 before (mm)"),
    ("hd95_after", "HD95 after (mm)"),
)


def label_rows(result: RegistrationResult) -> tuple[list[str], list[tuple[str, ...]]]:
    """The per-label table people read: ``(header, rows)``.

    The first column is the label with its name (``"1 Left-GM"``, from ``result.label_names``;
    ``"label 1"`` without one), then Dice and HD95 before and after, formatted as in the summary;
    a figure no label has (HD95 of a fast run, "before" without moving labels) gets no column.
    """
    from .label_names import label_title

    table = label_table(result)
    keys = [(k, h) for k, h in LABEL_COLUMNS if any(r.get(k) is not None for r in table)]
    header = ["label"] + [h for _, h in keys]
    rows = [
        (label_title(row["label"], result.label_names),
         *(format_value(k.rpartition("_")[0], row.get(k)) for k, _ in keys))
        for row in table
    ]
    return header, rows


# --------------------------------------------------------------------------- tables and files


def metrics_table(result: RegistrationResult) -> list[dict[str, Any]]:
    """Summary rows ``{"name", "value", "unit"}``: the metrics, runtime, method and model.

    Known figures come first in a fixed order (Dice, HD95, ASSD, TRE, folds, SDlogJ), then any
    other figure by name, then ``runtime_s``, ``method`` and ``model`` (string values). Values
    are raw numbers (NaN as None), for files; :func:`summary_rows` formats them for people.
    """
    metrics = dict(result.metrics)
    metrics.pop("runtime_s", None)  # listed once, from result.runtime
    rows: list[dict[str, Any]] = [
        {"name": n, "value": plain(metrics[n]), "unit": metric_unit(n)}
        for n in _ordered_names(metrics)
    ]
    rows.append({"name": "runtime_s", "value": float(result.runtime), "unit": "s"})
    rows.append({"name": "method", "value": result.method, "unit": ""})
    rows.append({"name": "model", "value": result.model or "", "unit": ""})
    return rows


def label_table(result: RegistrationResult) -> list[dict[str, Any]]:
    """Per-label rows with the same keys in every row (missing figures are None).

    Columns: ``label`` first, ``name`` second when the result has label names
    (``result.label_names``; "" for a label without one), then every other key in order of
    first appearance.
    """
    names = getattr(result, "label_names", None) or {}
    keys: list[str] = ["label"] + (["name"] if names else [])
    for row in result.label_metrics:
        keys += [k for k in row if k not in keys]
    rows = []
    for row in result.label_metrics:
        values = {k: plain(row.get(k)) for k in keys}
        if names:
            values["name"] = names.get(int(row["label"]), "")
        rows.append(values)
    return rows


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
    """Everything about a run except its arrays, as JSON-ready Python values (the fixed grid's
    spacing, origin and direction in array axis order)."""
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
            "direction": result.grid.direction_matrix(),
            "affine": None if result.affine is None else np.asarray(result.affine),
            "notes": list(result.notes),
        }
    )


def write_metrics_json(result: RegistrationResult, path: str | Path) -> Path:
    """Write :func:`result_summary` as strict JSON (NaN/Inf become null)."""
    path = Path(path)
    path.write_text(json.dumps(result_summary(result), indent=2, allow_nan=False) + "\n")
    return path


__all__ = [
    "HEADLINE",
    "LABEL_COLUMNS",
    "SummaryRow",
    "format_value",
    "label_rows",
    "label_table",
    "metric_unit",
    "metrics_rows",
    "metrics_table",
    "plain",
    "result_summary",
    "summary_line",
    "summary_lines",
    "summary_rows",
    "to_jsonable",
    "write_label_csv",
    "write_metrics_csv",
    "write_metrics_json",
]
