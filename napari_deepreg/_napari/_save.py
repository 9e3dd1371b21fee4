"""The widget's save actions, one function per action, free of Qt (no dialogs here).

Each takes a :class:`RegistrationResult` and a destination and returns the paths written; the
widget asks for the destination and reports. All follow the CLI's output rules (``io.manifest``):
the files go into the folder's ``outputs.json``, a file the user put there is replaced only with
``overwrite`` (the widget asks first), a symbolic link is never written through.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import qa
from ..result import RegistrationResult
from ..volume import Volume

OVERWRITE = "overwrite=True (the widget asks first)"  # how a refusal names the way past it


def result_grid(result: RegistrationResult) -> Volume:
    """The warped image on the fixed grid (spacing, origin and direction): what exports need."""
    grid = result.grid
    return Volume(result.warped, grid.spacing, grid.origin, grid.direction, name="warped")


def _with_suffix(path: str | Path, suffix: str) -> Path:
    path = Path(path)
    return path if path.suffix.lower() == suffix else path.with_name(path.name + suffix)


def _write_files(writers: dict[Path, Callable[[Path], Any]], command: str,
                 overwrite: bool) -> list[Path]:
    """Write each file through ``io.write_output_file``, all checked before the first write."""
    from ..io import check_output_file, write_output_file

    for path in writers:
        check_output_file(path, overwrite, flag=OVERWRITE)
    return [write_output_file(path, write, command=command, overwrite=overwrite, flag=OVERWRITE)
            for path, write in writers.items()]


def save_metrics_csv(result: RegistrationResult, path: str | Path,
                     overwrite: bool = False) -> list[Path]:
    """Write the metrics as CSV at ``path`` (``.csv`` appended when missing) and, when the run
    had labels, the per-label rows beside it as ``<name>_labels.csv``. Returns the paths."""
    path = _with_suffix(path, ".csv")
    writers = {path: lambda p: qa.write_metrics_csv(result, p)}
    if result.label_metrics:
        writers[path.with_name(path.stem + "_labels.csv")] = lambda p: qa.write_label_csv(
            result, p)
    return _write_files(writers, "widget: save metrics", overwrite)


def save_report(result: RegistrationResult, job: Any, path: str | Path,
                overwrite: bool = False) -> Path:
    """Write the one-page PNG report of ``result`` at ``path`` (``.png`` appended when missing).

    ``job`` is the run's :class:`._run.RegistrationJob` (its fixed and moving images and label
    maps, copied from the layers when the run started): the report's "before" row needs them.
    """
    def write(p: Path) -> Any:
        return qa.report_png(result, job.fixed, job.moving, job.fixed_labels, p,
                             moving_labels=job.moving_labels)

    (written,) = _write_files({_with_suffix(path, ".png"): write}, "widget: save report",
                              overwrite)
    return written


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
