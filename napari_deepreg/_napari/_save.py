"""The widget's save actions, one function per action, free of Qt (no dialogs here).

Each takes a :class:`RegistrationResult` and a destination and returns the paths written; the
widget asks for the destination and reports. (These are the places to route through the shared
output writer, ``io.write_outputs``, once it exists, so the file names and the clean-up of
stale files are written once for the CLI and the widget.)
"""

from __future__ import annotations

import logging
from pathlib import Path

from .. import qa
from ..result import RegistrationResult
from ..volume import Volume

logger = logging.getLogger(__name__)


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


def save_transform(result: RegistrationResult, folder: str | Path) -> list[Path]:
    """Write the transform into ``folder`` as ``register`` on the CLI does.

    ``field.nii.gz`` (displacement field, fixed image geometry), ``transform.h5`` (ITK
    displacement field transform) and, when the method has an affine stage, ``affine.tfm`` (ITK
    affine transform from the world-frame matrix of the metrics table); see
    :func:`napari_deepreg.io.export_transforms`. A transform file left in the folder by an
    earlier save that this result does not make (``affine.tfm`` after a run without an affine
    stage) is removed, so the folder never mixes runs. Returns the paths written.
    """
    from ..io import TRANSFORM_FILES, export_transforms

    folder = Path(folder)
    written = export_transforms(result.field, result.affine, result_grid(result), folder)
    for name in TRANSFORM_FILES:
        stale = folder / name
        if stale not in written and stale.is_file():
            stale.unlink()
            logger.info("removed %s left by an earlier save", stale)
    return written


__all__ = ["result_grid", "save_metrics_csv", "save_transform"]
