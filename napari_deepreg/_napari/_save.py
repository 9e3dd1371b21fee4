"""The widget's save actions, one function per action, free of Qt (no dialogs here).

Each takes a :class:`RegistrationResult` and a destination and returns the paths written; the
widget asks for the destination and reports. (These are the places to route through the shared
output writer, ``io.write_outputs``, which the transform already goes through: the file names, the
manifest and the clean-up of stale files are written once for the CLI and the widget.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import qa
from ..result import RegistrationResult
from ..volume import Volume


def result_grid(result: RegistrationResult) -> Volume:
    """The warped image on the fixed grid (spacing, origin and direction): what exports need."""
    grid = result.grid
    return Volume(result.warped, grid.spacing, grid.origin, grid.direction, name="warped")


def save_metrics_csv(result: RegistrationResult, path: str | Path) -> list[Path]:
    """Write the metrics as CSV at ``path`` (``.csv`` appended when missing) and, when the run
    had labels, the per-label rows beside it as ``<name>_labels.csv``. Returns the paths."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        path = path.with_name(path.name + ".csv")
    written = [qa.write_metrics_csv(result, path)]
    if result.label_metrics:
        written.append(qa.write_label_csv(result, path.with_name(path.stem + "_labels.csv")))
    return written


def save_report(result: RegistrationResult, job: Any, path: str | Path) -> Path:
    """Write the one-page PNG report of ``result`` at ``path`` (``.png`` appended when missing).

    ``job`` is the run's :class:`._run.RegistrationJob` (its fixed and moving images and label
    maps, copied from the layers when the run started): the report's "before" row needs them.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_name(path.name + ".png")
    return qa.report_png(
        result, job.fixed, job.moving, job.fixed_labels, path, moving_labels=job.moving_labels
    )


def save_transform(
    result: RegistrationResult, folder: str | Path, overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write the transform into ``folder`` through the CLI's writer, ``io.write_outputs``.

    ``field.nii.gz`` (displacement field, fixed image geometry), ``transform.h5`` (ITK
    displacement field transform) and, when the method has an affine stage, ``affine.tfm``, plus
    the ``outputs.json`` manifest. A file of those names that no earlier manifest lists (the
    user's) is replaced only with ``overwrite``; outputs of an earlier save or run into the same
    folder that this one does not make are removed and reported to ``log``, so the folder never
    mixes runs. Returns the paths written, the manifest last.
    """
    from ..io import TRANSFORM_OUTPUTS, write_outputs

    return write_outputs(result, folder, what=TRANSFORM_OUTPUTS, overwrite=overwrite, log=log)


__all__ = ["result_grid", "save_metrics_csv", "save_report", "save_transform"]
