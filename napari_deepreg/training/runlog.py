"""The run's record: a CSV log, a loss/Dice plot and the progress display.

Rows are dicts ``{"step": int, "loss": float, <term>: float, "lr": float, "seconds": float,
"val_<metric>": float}``; a row without validation leaves the ``val_`` cells empty.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

FIRST_COLUMNS = ("step", "loss")
LAST_TRAIN_COLUMNS = ("lr", "seconds")


def log_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Column order: step, loss, loss terms (first-seen order), lr, seconds, val_ metrics."""
    seen: list[str] = []
    for row in rows:
        for key in row:
            if key not in seen:
                seen.append(key)
    terms = [
        k for k in seen if k not in FIRST_COLUMNS + LAST_TRAIN_COLUMNS and not k.startswith("val_")
    ]
    vals = [k for k in seen if k.startswith("val_")]
    present = [k for k in FIRST_COLUMNS if k in seen]
    return present + terms + [k for k in LAST_TRAIN_COLUMNS if k in seen] + vals


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Write all ``rows`` to ``path`` atomically (a reader never sees a half-written file)."""
    path = Path(path)
    cols = log_columns(rows)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in cols])
    os.replace(tmp, path)


def read_csv(path: str | Path) -> list[dict[str, float]]:
    """Rows of a log written by :func:`write_csv` (empty cells are left out)."""
    rows = []
    with open(path, newline="") as fh:
        for rec in csv.DictReader(fh):
            rows.append({k: float(v) for k, v in rec.items() if v != ""})
    return rows


def plot_log(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> None:
    """PNG of the training loss (and its terms), validation Dice, and other validation figures.

    Panels: training loss terms (log scale when all positive); every ``val_*dice*`` column
    (0..1); the remaining ``val_`` columns (only if there are any). Uses matplotlib's Agg canvas
    directly (no pyplot state), so it is safe from a worker thread and inside a napari session.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = log_columns(rows)
    train_cols = [c for c in cols if c not in ("step", "lr", "seconds") and c[:4] != "val_"]
    dice_cols = [c for c in cols if c[:4] == "val_" and "dice" in c]
    other_cols = [c for c in cols if c[:4] == "val_" and "dice" not in c]
    panels = 3 if other_cols else 2
    fig = Figure(figsize=(5 * panels, 4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)

    def series(col: str) -> tuple[list[float], list[float]]:
        pts = [(r["step"], r[col]) for r in rows if _finite(r.get(col))]
        return [p[0] for p in pts], [p[1] for p in pts]

    def draw(ax: Any, columns: list[str], title: str, strip: int, **style: Any) -> bool:
        positive, drawn = True, False
        for col in columns:
            x, y = series(col)
            if x:
                width = 2 if col in ("loss", "val_dice") else 1
                ax.plot(x, y, label=col[strip:], lw=width, **style)
                positive, drawn = positive and min(y) > 0, True
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
        return drawn and positive

    if draw(axes[0], train_cols, "training loss", 0):
        axes[0].set_yscale("log")
    draw(axes[1], dice_cols, "validation Dice", 4, marker="o", ms=3)
    axes[1].set_ylim(-0.02, 1.02)
    if other_cols:
        draw(axes[2], other_cols, "validation", 4, marker="o", ms=3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = Path(path).with_name(Path(path).name + ".tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def format_figures(values: Mapping[str, Any], limit: int = 6) -> str:
    """``"loss 0.0123 sim 0.011 val_dice 0.812"`` (at most ``limit`` entries)."""
    parts = [f"{k} {v:.4g}" for k, v in list(values.items())[:limit] if _finite(v)]
    return " ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class ProgressDisplay:
    """Training progress on stderr: a tqdm bar on a terminal, plain lines otherwise.

    Plain lines (``step 120/5000 (2%) loss 0.0123 ... | 1.31 s/step, eta 1h47m``) suit ``nohup``
    and log files, where a bar's carriage returns would pile up.
    """

    def __init__(
        self, total: int, initial: int = 0, mode: str = "auto", stream: TextIO | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", None)
            mode = "bar" if (isatty is not None and isatty()) else "lines"
        self.mode = mode
        self.total = total
        self.bar = None
        if mode == "bar":
            try:
                from tqdm.auto import tqdm
            except ImportError:  # tqdm is optional: plain lines do the job
                self.mode = "lines"
                return
            self.bar = tqdm(
                total=total, initial=initial, file=self.stream, unit="step", dynamic_ncols=True
            )

    def update(self, step: int, figures: Mapping[str, Any], sec_per_step: float) -> None:
        """Report that ``step`` steps are done (called once per log row)."""
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix_str(format_figures(figures, limit=4), refresh=True)
        elif self.mode == "lines":
            eta = _duration(sec_per_step * (self.total - step))
            pct = 100 * step / max(1, self.total)
            self.write(
                f"step {step}/{self.total} ({pct:.0f}%) {format_figures(figures)} | "
                f"{sec_per_step:.3g} s/step, eta {eta}"
            )

    def write(self, message: str) -> None:
        """A message that does not break the bar."""
        if self.mode == "none":
            return
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
