"""Writing a registration's outputs into a folder: the file names, a manifest, safe clean-up.

:func:`write_outputs` is what the CLI's ``register``, the widget and a batch run call to save a
:class:`~napari_deepreg.result.RegistrationResult`. The file names live in :data:`OUTPUTS` and
nowhere else. Every call leaves a manifest, :data:`MANIFEST` (``outputs.json``), listing the
files it wrote with the method, model and parameters of the run. The manifest is also what makes
re-running into the same folder safe:

* a file of the previous manifest is ours: it may be replaced, and it is removed when this run
  does not write it again (so a folder never mixes two runs);
* any other file that has an output's name (the user's own ``report.png``, outputs of an older
  version that wrote no manifest) is left alone and the call fails before writing anything,
  unless ``overwrite=True``; then it is replaced and the log says so;
* an output path that is a symbolic link is always refused, and every file is written to a
  temporary name in the folder and then renamed over its final name, so no write follows a link
  out of the folder and an interrupted run leaves no half-written output.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..result import Grid, RegistrationResult
from ..volume import InputError, Volume
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
MANIFEST = "outputs.json"
MANIFEST_TOOL = "napari-deepreg"
# what ``register`` on the CLI writes by default (the Jacobian only on request)
DEFAULT_OUTPUTS: tuple[str, ...] = tuple(k for k in OUTPUTS if k != "jacobian")
# the transform alone (the widget's "save transform")
TRANSFORM_OUTPUTS: tuple[str, ...] = ("field", "transform", "affine")
TRANSFORM_FILES: tuple[str, ...] = tuple(OUTPUTS[k] for k in TRANSFORM_OUTPUTS)


def _grid_volume(grid: Grid) -> Volume:
    """A Volume with ``grid``'s geometry and a zero-cost placeholder array of its shape."""
    return Volume(np.broadcast_to(np.float32(0), grid.shape), grid.spacing, grid.origin,
                  grid.direction)


def _output_folder(out_dir: str | os.PathLike) -> Path:
    """The output folder as a Path; refuses an empty name and a path that is not a folder."""
    text = os.fspath(out_dir)
    if not str(text).strip():
        # Path("") is the current folder: never write (or clean up) there by accident
        raise InputError("no output folder given (an empty name); name a folder to write into")
    folder = Path(text)
    if folder.is_symlink():
        # writing through a link puts the files (and the clean-up of an earlier run) elsewhere
        raise InputError(
            f"output folder {folder} is a symbolic link (to {os.path.realpath(folder)}); name "
            "the real folder instead"
        )
    if folder.exists() and not folder.is_dir():
        raise InputError(f"output folder {folder} exists and is not a folder")
    return folder


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest this tool left in ``folder``, or None when there is none (or not ours).

    A manifest that is a symbolic link, is not JSON or was not written by this tool is not
    trusted: it is reported as None, so nothing in the folder counts as ours.
    """
    path = Path(folder) / MANIFEST
    if path.is_symlink() or not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("tool") != MANIFEST_TOOL:
        return None
    files = document.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return document


def _owned(manifest: dict[str, Any] | None) -> set[str]:
    """Names a previous manifest lists that this module may replace or remove.

    Only known output names count, so a manifest edited by hand cannot point anywhere else
    (``../x``, sub-folders, arbitrary files).
    """
    if manifest is None:
        return set()
    known = set(OUTPUTS.values())
    return {name for name in manifest["files"] if name in known}


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


def _check_targets(folder: Path, names: Iterable[str], owned: set[str], overwrite: bool,
                   log: Callable[[str], None]) -> None:
    """Refuse links, non-files and (unless ``overwrite``) files that are not ours."""
    foreign = []
    for name in names:
        path = folder / name
        if path.is_symlink():
            raise InputError(
                f"{path} is a symbolic link; refusing to write through it (remove it or choose "
                "another folder)"
            )
        if not path.exists():
            continue
        if not path.is_file():
            raise InputError(f"{path} exists and is not a file; cannot write the {name} output")
        if name not in owned:
            foreign.append(name)
    if not foreign:
        return
    listed = ", ".join(foreign)
    if not overwrite:
        raise InputError(
            f"{folder} already holds {listed}, not written by {MANIFEST_TOOL} (no {MANIFEST} of "
            "an earlier run lists them); choose another folder or pass overwrite=True (CLI: "
            "--overwrite) to replace them"
        )
    log(f"overwriting {listed} in {folder} (not listed in an earlier {MANIFEST})")


def check_output_folder(
    out_dir: str | os.PathLike, what: Iterable[str] = DEFAULT_OUTPUTS, overwrite: bool = False
) -> Path:
    """Check, writing nothing, that :func:`write_outputs` may write ``what`` into ``out_dir``.

    For a caller that wants to hear of a bad folder before a long run. Raises the InputError
    :func:`write_outputs` would raise for these outputs; returns the folder.
    """
    folder = _output_folder(out_dir)
    unknown = sorted(set(what) - set(OUTPUTS))
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; known are {list(OUTPUTS)}")
    if folder.is_dir():
        previous = read_manifest(folder)
        owned = _owned(previous) | ({MANIFEST} if previous is not None else set())
        names = [OUTPUTS[k] for k in OUTPUTS if k in set(what)] + [MANIFEST]
        _check_targets(folder, names, owned, overwrite, lambda message: None)
    return folder


def check_output_file(out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check, writing nothing, that a single output file (``warp --out``, ``evaluate --out``)
    may be written at ``out``: the rules of :func:`check_output_folder` for one file.

    Refuses an empty name, a symbolic link (its target would be written), something that is
    not a regular file, and an existing file unless ``overwrite``. Returns the path.
    """
    text = os.fspath(out)
    if not str(text).strip():
        raise InputError("no output file given (an empty name); name a file to write")
    path = Path(text)
    if path.is_symlink():
        raise InputError(
            f"output {path} is a symbolic link (to {os.path.realpath(path)}); refusing to write "
            "through it; name the real file instead"
        )
    if path.exists() and not path.is_file():
        raise InputError(f"output {path} exists and is not a file")
    if path.exists() and not overwrite:
        raise InputError(
            f"output {path} already exists; choose another name or pass --overwrite to replace it"
        )
    if not path.parent.is_dir():
        raise InputError(f"the folder of output {path} does not exist")
    return path


def write_output_file(path: Path, write: Callable[[Path], Any]) -> None:
    """Write one output file through a temporary name (a failed write leaves ``path`` as it
    was; the rename replaces rather than follows a link put there meanwhile)."""
    _replace_via_temp(path, write)


def _replace_via_temp(path: Path, write: Callable[[Path], Any]) -> None:
    """Write to a temporary name next to ``path``, then rename it over ``path``.

    The rename replaces a link rather than following it, and a failed write leaves ``path`` as it
    was. The temporary name keeps ``path``'s ending so that the writers pick the right format.
    """
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    if tmp.exists() or tmp.is_symlink():
        raise InputError(f"{tmp} is in the way of writing {path.name}; remove it first")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def _manifest(result: RegistrationResult, files: list[str], complete: bool,
              inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    from .. import __version__
    from ..qa import to_jsonable

    grid = result.grid
    return {
        "tool": MANIFEST_TOOL,
        "version": __version__,
        "complete": complete,  # False while the files are being written
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
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
    }


def _write_manifest(path: Path, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    _replace_via_temp(path, lambda p: p.write_text(text))


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
    folder = _output_folder(out_dir)
    plan = _plan(result, what)
    if "report" in plan and (fixed is None or moving is None):
        raise ValueError("the report output needs the fixed and moving images")

    manifest_path = folder / MANIFEST
    previous = read_manifest(folder) if folder.is_dir() else None
    owned = _owned(previous)
    if previous is not None:
        owned.add(MANIFEST)
    _check_targets(folder, [*plan.values(), MANIFEST], owned, overwrite, say)
    folder.mkdir(parents=True, exist_ok=True)

    # until this run is complete, the manifest lists its files and the earlier ones, so that an
    # interrupted run leaves nothing that a rerun would take for a user's file
    pending = sorted(set(plan.values()) | (owned - {MANIFEST}))
    _write_manifest(manifest_path, _manifest(result, pending, False, inputs))

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
        _replace_via_temp(folder / name, writers[key])
        written.append(folder / name)

    # outputs of the earlier run that this one did not make: ours to remove
    for name in sorted(owned - set(plan.values()) - {MANIFEST}):
        stale = folder / name
        if stale.is_file() and not stale.is_symlink():
            stale.unlink()
            say(f"removed {name} left by an earlier run")
    _write_manifest(manifest_path, _manifest(result, list(plan.values()), True, inputs))
    written.append(manifest_path)
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
