"""The cohort's tables and summary plot, made from the pairs' outcomes once all is done.

* ``cohort.csv``: one row per pair: status (ok / failed / skipped), the error, Dice, HD95 and TRE
  before / after, fold %, SDlogJ, the registration's runtime, the task's wall time, the worker's
  peak memory and the pair's output folder.
* ``cohort_labels.csv``: one row per pair and label: Dice before / after.
* ``cohort.png``: Dice per label across the cohort (box plots, before and after) and the fold
  percentage of each pair.

The figures come from each pair's ``metrics.json`` document (``qa.result_summary``), the same
numbers its own folder holds.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .task import FAILED, PairOutcome

COHORT_CSV = "cohort.csv"
COHORT_LABELS_CSV = "cohort_labels.csv"
COHORT_PNG = "cohort.png"
COMMAND = "napari-deepreg batch"  # as the manifest records who wrote the cohort files
# the summary figures copied into the cohort table, in its column order
FIGURES: tuple[str, ...] = (
    "dice_before", "dice_after", "hd95_before", "hd95_after", "tre_before", "tre_after",
    "fold_percent", "sdlogj",
)
COLUMNS: tuple[str, ...] = (
    "pair", "status", "error", *FIGURES, "runtime_s", "wall_s", "worker_peak_mb", "out_dir",
)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def cohort_rows(outcomes: Sequence[PairOutcome], out_dir: str | Path) -> list[dict[str, Any]]:
    """One row per outcome with :data:`COLUMNS` (None where a figure is not there).

    ``out_dir`` is written relative to the cohort folder ``out_dir`` so the table moves with it.
    """
    rows = []
    for outcome in outcomes:
        summary = outcome.summary or {}
        metrics = summary.get("metrics", {})
        row: dict[str, Any] = {
            "pair": outcome.name,
            "status": outcome.status,
            "error": outcome.error,
            **{name: _number(metrics.get(name)) for name in FIGURES},
            "runtime_s": _number(summary.get("runtime_s")),
            "wall_s": round(outcome.wall_s, 3) if outcome.wall_s else None,
            "worker_peak_mb": None if outcome.peak_mb is None else round(outcome.peak_mb, 1),
            "out_dir": os.path.relpath(outcome.folder, out_dir),
        }
        rows.append(row)
    return rows


def label_rows(outcomes: Sequence[PairOutcome]) -> list[dict[str, Any]]:
    """Rows ``pair, label, dice_before, dice_after`` of every pair that has label figures."""
    rows = []
    for outcome in outcomes:
        for entry in (outcome.summary or {}).get("labels", []):
            rows.append({
                "pair": outcome.name,
                "label": entry.get("label"),
                "dice_before": _number(entry.get("dice_before")),
                "dice_after": _number(entry.get("dice_after")),
            })
    return rows


def check_cohort_folder(out_dir: str | Path, overwrite: bool = False) -> Path:
    """The cohort folder (absolute), checked before any work as ``io.manifest`` checks any output
    folder: not an empty name, not a link, and (unless ``overwrite``) no file of a cohort
    output's name that its ``outputs.json`` does not list."""
    from ..io import check_output_file
    from ..io.manifest import output_folder

    folder = output_folder(os.path.expanduser(os.fspath(out_dir)))
    if folder.is_dir():
        for name in (COHORT_CSV, COHORT_LABELS_CSV, COHORT_PNG):
            check_output_file(folder / name, overwrite)
    return folder.resolve()


def _write(path: Path, write: Any, overwrite: bool) -> Path:
    """One cohort file through ``io.write_output_file`` (listed in the folder's manifest)."""
    from ..io import write_output_file

    return write_output_file(path, write, command=COMMAND, overwrite=overwrite)


def _write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str],
               overwrite: bool) -> Path:
    """CSV with ``columns`` (None as an empty cell)."""
    def write(target: Path) -> None:
        with target.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    return _write(path, write, overwrite)


def write_cohort_tables(outcomes: Sequence[PairOutcome], out_dir: str | Path,
                        overwrite: bool = False) -> list[Path]:
    """Write ``cohort.csv`` and ``cohort_labels.csv`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    return [
        _write_csv(out_dir / COHORT_CSV, cohort_rows(outcomes, out_dir), COLUMNS, overwrite),
        _write_csv(out_dir / COHORT_LABELS_CSV, label_rows(outcomes),
                   ("pair", "label", "dice_before", "dice_after"), overwrite),
    ]


def read_cohort_table(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``cohort.csv`` as strings (for scripts and tests)."""
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def plot_cohort(outcomes: Sequence[PairOutcome], path: str | Path,
                label_names: dict[int, str] | None = None,
                overwrite: bool = False) -> Path | None:
    """Draw ``cohort.png``: Dice per label (box plots, before and after) and folds per pair.

    Returns None (and draws nothing) when no pair succeeded.
    """
    done = [o for o in outcomes if o.status != FAILED and o.summary]
    if not done:
        return None
    # a bare Figure draws with Agg: no pyplot, no display needed on a cluster node
    from matplotlib.figure import Figure

    by_label: dict[Any, dict[str, list[float]]] = {}
    for row in label_rows(done):
        entry = by_label.setdefault(row["label"], {"before": [], "after": []})
        for when in ("before", "after"):
            value = row[f"dice_{when}"]
            if value is not None:
                entry[when].append(value)
    names = label_names or {}
    labels = sorted(by_label, key=lambda lab: (str(type(lab)), lab))
    folds = [_number((o.summary or {}).get("metrics", {}).get("fold_percent")) for o in done]

    width = min(4.0 + 0.5 * max(len(labels), len(done)), 20.0)
    figure = Figure(figsize=(width, 7.0), layout="constrained")
    top, bottom = figure.subplots(2, 1)
    if labels:
        positions = range(len(labels))
        for when, shift, colour in (("before", -0.2, "tab:gray"), ("after", 0.2, "tab:blue")):
            data = [by_label[lab][when] or [math.nan] for lab in labels]
            parts = top.boxplot(data, positions=[p + shift for p in positions], widths=0.35,
                                patch_artist=True, manage_ticks=False)
            for box in parts["boxes"]:
                box.set_facecolor(colour)
            top.plot([], [], "s", color=colour, label=f"Dice {when}")
        top.set_xticks(list(positions), [str(names.get(lab, lab)) for lab in labels],
                       rotation=90 if len(labels) > 12 else 0)
        top.set_ylim(0.0, 1.0)
        top.legend(loc="lower right")
    else:
        top.text(0.5, 0.5, "no label maps: no Dice", ha="center", va="center")
    top.set_title(f"Dice per label across {len(done)} pairs")
    top.set_ylabel("Dice")
    bottom.bar(range(len(done)), [f if f is not None else 0.0 for f in folds], color="tab:red")
    bottom.set_xticks(range(len(done)), [o.name for o in done],
                      rotation=90 if len(done) > 8 else 0)
    known = [f for f in folds if f is not None]
    bottom.set_ylim(0.0, max(max(known, default=0.0) * 1.15, 0.01))  # no negative axis at 0 %
    bottom.set_ylabel("folds (% of voxels)")
    bottom.set_title("folds per pair (Jacobian determinant <= 0)")
    return _write(Path(path), lambda target: figure.savefig(target, dpi=100), overwrite)


__all__ = [
    "COHORT_CSV",
    "COHORT_LABELS_CSV",
    "COHORT_PNG",
    "COLUMNS",
    "check_cohort_folder",
    "cohort_rows",
    "label_rows",
    "plot_cohort",
    "read_cohort_table",
    "write_cohort_tables",
]
