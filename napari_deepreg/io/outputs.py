"""Writing a registration's outputs into a folder: the file names, a manifest, safe clean-up.

:func:`write_outputs` is what the CLI's ``register``, the widget and a batch run call to save a
:class:`~napari_deepreg.result.RegistrationResult`. The file names live in :data:`OUTPUTS` and
nowhere else. Every call leaves a manifest, :data:`MANIFEST` (``outputs.json``), listing the
files it wrote with the method, model and parameters of the run. The manifest is also what makes
re-running into the same folder safe (the rules are :mod:`.manifest`'s, shared with the single
files that ``warp``, ``evaluate``, ``transform`` and the widget write):

* a file of the previous manifest is ours: it may be replaced, and it is removed when this run
  does not write it again (so a folder never mixes two runs);
* any other file that has an output's name (the user's own ``report.png``, outputs of an older
  version that wrote no manifest) is left alone and the call fails before writing anything,
  unless ``overwrite=True``; then it is replaced and the log says so;
* an output path that is a symbolic link is always refused, and every file is written to a
  temporary name in the folder and then renamed over its final name, so no write follows a link
  out of the folder and an interrupted run leaves no half-written output;
* single files of other commands that the manifest lists (``other_files``) are kept, and stay
  listed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..result import Grid, RegistrationResult
from ..volume import InputError, Volume
from .manifest import (
    MANIFEST,
    MANIFEST_TOOL,
    OTHER_FILES,
    check_targets,
    now,
    other_files,
    output_folder,
    owned,
    read_manifest,
    replace_via_temp,
    write_manifest,
)
from .transforms import export_affine, export_field, export_transform
from .volumes import write_volume

logger = logging.getLogger(__name__)

# what -> file name: the one place where output files are named
OUTPUTS: dict[str, str] = {
    "warped": "warped.nii.gz",
    "warped_labels": "warped_labels.nii.gz",
    "field": "field.nii.gz",
    "transform": "transform.h5",
    "affine": "affine.tfm",
    "jacobian": "jacobian.nii.gz",
    "metrics_json": "metrics.json",
    "metrics_csv": "metrics.csv",
    "labels_csv": "labels.csv",
    "report": "report.png",
}
# what ``register`` on the CLI writes by default (the Jacobian only on request)
DEFAULT_OUTPUTS: tuple[str, ...] = tuple(k for k in OUTPUTS if k != "jacobian")
# the transform alone (the widget's "save transform")
TRANSFORM_OUTPUTS: tuple[str, ...] = ("field", "transform", "affine")
TRANSFORM_FILES: tuple[str, ...] = tuple(OUTPUTS[k] for k in TRANSFORM_OUTPUTS)


def _grid_volume(grid: Grid) -> Volume:
    """A Volume with ``grid``'s geometry and a zero-cost placeholder array of its shape."""
    return Volume(np.broadcast_to(np.float32(0), grid.shape), grid.spacing, grid.origin,
                  grid.direction)


def _plan(result: RegistrationResult, what: Iterable[str]) -> dict[str, str]:
    """``{what: file name}`` of the outputs to write, in :data:`OUTPUTS` order.

    Outputs this result has nothing for (labels, an affine stage, per-label rows) are skipped.
    """
    wanted = set(what)
    unknown = sorted(wanted - set(OUTPUTS))
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; known are {list(OUTPUTS)}")
    missing = {
        "warped_labels": result.warped_labels is None,
        "affine": result.affine is None,
        "labels_csv": not result.label_metrics,
    }
    return {k: name for k, name in OUTPUTS.items() if k in wanted and not missing.get(k, False)}


def check_output_folder(
    out_dir: str | os.PathLike, what: Iterable[str] = DEFAULT_OUTPUTS, overwrite: bool = False
) -> Path:
    """Check, writing nothing, that :func:`write_outputs` may write ``what`` into ``out_dir``.

    For a caller that wants to hear of a bad folder before a long run. Raises the InputError
    :func:`write_outputs` would raise for these outputs; returns the folder.
    """
    folder = output_folder(out_dir)
    unknown = sorted(set(what) - set(OUTPUTS))
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; known are {list(OUTPUTS)}")
    if folder.is_dir():
        previous = read_manifest(folder)
        names = [OUTPUTS[k] for k in OUTPUTS if k in set(what)] + [MANIFEST]
        check_targets(folder, names, owned(previous), overwrite, lambda message: None)
    return folder


def _manifest(result: RegistrationResult, files: list[str], complete: bool,
              inputs: Mapping[str, Any] | None, others: dict[str, Any]) -> dict[str, Any]:
    from .. import __version__
    from ..qa import to_jsonable

    grid = result.grid
    return {
        "tool": MANIFEST_TOOL,
        "version": __version__,
        "complete": complete,  # False while the files are being written
        "written": now(),
        "method": result.method,
        "model": result.model,
        "parameters": to_jsonable(result.parameters),
        "grid": {
            "shape": list(grid.shape),
            "spacing": list(grid.spacing),
            "origin": list(grid.origin),
            "direction": grid.direction_matrix().tolist(),
        },
        "inputs": to_jsonable(dict(inputs or {})),
        "notes": list(result.notes),
        "files": files,
        # single files of other commands in this folder (io.manifest.write_output_file)
        OTHER_FILES: {name: record for name, record in others.items() if name not in files},
    }


def write_outputs(
    result: RegistrationResult,
    out_dir: str | os.PathLike,
    fixed: Volume | None = None,
    moving: Volume | None = None,
    fixed_labels: Volume | np.ndarray | None = None,
    *,
    what: Iterable[str] = DEFAULT_OUTPUTS,
    overwrite: bool = False,
    inputs: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write a registration's outputs into ``out_dir`` (created) and list them in a manifest.

    Args:
        result: the run; images and fields are written on ``result.grid`` (spacing, origin and
            direction of the fixed image), so every file overlays the fixed image elsewhere.
        out_dir: the output folder; an empty name and a symbolic link are refused (name the
            real folder), and so are links among the files in it.
        fixed, moving: the input images, needed only for the ``report`` PNG.
        fixed_labels: fixed label map drawn on the report (optional).
        what: keys of :data:`OUTPUTS` to write (default :data:`DEFAULT_OUTPUTS`); those the
            result has nothing for (no labels, no affine stage) are skipped.
        overwrite: replace files with an output's name that no earlier manifest lists.
        inputs: what the run read (e.g. ``{"fixed": path}``), recorded in the manifest.
        log: receives one line per note (files overwritten or removed); default: this module's
            logger.

    Returns:
        Paths written, in :data:`OUTPUTS` order, the manifest last.

    Raises:
        InputError: empty or unusable folder, an output path that is a link or a folder, a file
            not written by this tool in the way (without ``overwrite``), or a write that failed.
        ValueError: an unknown key in ``what``, or ``report`` without ``fixed`` and ``moving``.
    """
    from .. import qa  # the metrics tables and the PNG report (matplotlib loads only for it)

    say = log if log is not None else logger.info
    folder = output_folder(out_dir)
    plan = _plan(result, what)
    if "report" in plan and (fixed is None or moving is None):
        raise ValueError("the report output needs the fixed and moving images")

    previous = read_manifest(folder) if folder.is_dir() else None
    check_targets(folder, [*plan.values(), MANIFEST], owned(previous), overwrite, say)
    folder.mkdir(parents=True, exist_ok=True)
    # the earlier run's files (ours to replace or remove); single files of other commands stay
    ours = owned(previous, OUTPUTS.values()) - set(other_files(previous)) - {MANIFEST}
    others = other_files(previous)

    # until this run is complete, the manifest lists its files and the earlier ones, so that an
    # interrupted run leaves nothing that a rerun would take for a user's file
    pending = sorted(set(plan.values()) | ours)
    write_manifest(folder, _manifest(result, pending, False, inputs, others))

    grid = _grid_volume(result.grid)
    writers: dict[str, Callable[[Path], Any]] = {
        "warped": lambda p: write_volume(dataclasses.replace(grid, array=result.warped), p),
        "warped_labels": lambda p: write_volume(
            dataclasses.replace(grid, array=result.warped_labels), p, labels=True),
        "field": lambda p: export_field(result.field, grid, p),
        "transform": lambda p: export_transform(result.field, grid, p),
        "affine": lambda p: export_affine(result.affine, p, grid),
        "jacobian": lambda p: write_volume(dataclasses.replace(grid, array=result.jacobian), p),
        "metrics_json": lambda p: qa.write_metrics_json(result, p),
        "metrics_csv": lambda p: qa.write_metrics_csv(result, p),
        "labels_csv": lambda p: qa.write_label_csv(result, p),
        "report": lambda p: qa.report_png(result, fixed, moving, fixed_labels, p),
    }
    written = []
    for key, name in plan.items():
        replace_via_temp(folder / name, writers[key])
        written.append(folder / name)

    # outputs of the earlier run that this one did not make: ours to remove
    for name in sorted(ours - set(plan.values())):
        stale = folder / name
        if stale.is_file() and not stale.is_symlink():
            stale.unlink()
            say(f"removed {name} left by an earlier run")
    written.append(
        write_manifest(folder, _manifest(result, list(plan.values()), True, inputs, others)))
    return written


def export_transforms(
    field: np.ndarray, affine: np.ndarray | None, fixed: Volume, folder: str | os.PathLike
) -> list[Path]:
    """Write a transform into an existing ``folder``: ``field.nii.gz``, ``transform.h5`` and,
    when ``affine`` is not None, ``affine.tfm`` (names from :data:`OUTPUTS`).

    The low-level writer without manifest or ownership checks (files of these names are
    overwritten); :func:`write_outputs` with ``what=TRANSFORM_OUTPUTS`` is the safe one.

    Args:
        field: ``(D, *S)`` pull-back displacement in mm on the fixed grid (grid frame).
        affine: ``(D+1, D+1)`` affine stage in the fixed grid's frame, or None.
        fixed: the fixed grid (shape, spacing, origin, direction; its values are not used).

    Returns:
        The paths written, in the order above.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"cannot save the transform: {folder} is not an existing folder")
    field_path, transform_path, affine_path = (folder / OUTPUTS[k] for k in TRANSFORM_OUTPUTS)
    export_field(field, fixed, field_path)
    export_transform(field, fixed, transform_path)
    written = [field_path, transform_path]
    if affine is not None:
        export_affine(affine, affine_path, fixed)
        written.append(affine_path)
    return written


__all__ = [
    "DEFAULT_OUTPUTS",
    "MANIFEST",
    "OUTPUTS",
    "TRANSFORM_FILES",
    "TRANSFORM_OUTPUTS",
    "check_output_folder",
    "export_transforms",
    "read_manifest",
    "write_outputs",
]
