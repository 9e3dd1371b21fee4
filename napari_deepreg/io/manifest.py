"""The output manifest, ``outputs.json``: which files of a folder this tool wrote, and the rules
that follow from it, for every writer of the package.

Two kinds of writers share one manifest per folder:

* a registration's output folder (``register``, the widget's "save transform", a batch pair),
  written by :func:`.outputs.write_outputs`: its files are the manifest's ``files`` with the
  run's method, parameters and grid; a rerun replaces them and removes those it no longer makes;
* single files with names the user chooses (``warp --out``, ``evaluate --out``, ``transform
  invert|compose --out``, the widget's metrics CSV and report, a batch's cohort tables), written
  by :func:`write_output_file`: each is listed under ``other_files`` with the command and the
  inputs that made it. A registration rerun leaves them alone.

The rules, the same for both:

* a file the manifest lists is ours and may be replaced; any other existing file (the user's,
  or a manifest not written by this tool) is refused unless ``overwrite``;
* a symbolic link is always refused: the output, its folder's last component, the manifest;
  files are written to a temporary name in the folder and renamed over their final name, so no
  write follows a link out of the folder and an interrupted write leaves no half-written file;
* an empty name (which would be the current folder) is refused, and so is an output named like
  the manifest.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..volume import InputError

MANIFEST = "outputs.json"
MANIFEST_TOOL = "napari-deepreg"
OTHER_FILES = "other_files"  # the manifest's {name: record} of single files


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def output_folder(out_dir: str | os.PathLike, what: str = "output folder") -> Path:
    """The output folder as a Path; refuses an empty name, a link and a path that is no folder."""
    text = os.fspath(out_dir)
    if not str(text).strip():
        # Path("") is the current folder: never write (or clean up) there by accident
        raise InputError(f"no {what} given (an empty name); name a folder to write into")
    folder = Path(text)
    if folder.is_symlink():
        # writing through a link puts the files (and the clean-up of an earlier run) elsewhere
        raise InputError(
            f"{what} {folder} is a symbolic link (to {os.path.realpath(folder)}); name "
            "the real folder instead"
        )
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{what} {folder} exists and is not a folder")
    return folder


def _plain(name: str) -> bool:
    """A bare file name in the folder (no folder part, not the manifest, not . or ..)."""
    return (bool(name) and name not in (".", "..", MANIFEST) and "/" not in name
            and "\\" not in name)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest this tool left in ``folder``, or None when there is none (or not ours).

    A manifest that is a symbolic link, is not JSON or was not written by this tool is not
    trusted: it is reported as None, so nothing in the folder counts as ours. Entries of
    ``other_files`` that are not bare file names are dropped.
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
    other = document.get(OTHER_FILES)
    document[OTHER_FILES] = {name: record for name, record in other.items()
                             if _plain(name)} if isinstance(other, dict) else {}
    return document


def other_files(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The single files a manifest lists (``{name: record}``; empty without a manifest)."""
    return dict(manifest[OTHER_FILES]) if manifest is not None else {}


def owned(manifest: dict[str, Any] | None, known: Iterable[str] | None = None) -> set[str]:
    """Names in the folder that ``manifest`` says are ours: its run's ``files`` (only ``known``
    names, when given, so a manifest edited by hand cannot point anywhere else) and its single
    files, plus the manifest itself."""
    if manifest is None:
        return set()
    run = {name for name in manifest["files"] if _plain(name)}
    if known is not None:
        run &= set(known)
    return run | set(manifest[OTHER_FILES]) | {MANIFEST}


def check_targets(folder: Path, names: Iterable[str], mine: set[str], overwrite: bool,
                  log: Callable[[str], None], flag: str = "overwrite=True (CLI: --overwrite)",
                  ) -> None:
    """Refuse links, non-files and (unless ``overwrite``) existing files not in ``mine``."""
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
        if name not in mine:
            foreign.append(name)
    if not foreign:
        return
    listed = ", ".join(foreign)
    if not overwrite:
        raise InputError(
            f"{folder} already holds {listed}, not written by {MANIFEST_TOOL} (no {MANIFEST} "
            f"there lists it); choose another name or folder, or pass {flag} to replace it"
        )
    log(f"overwriting {listed} in {folder} (not listed in an earlier {MANIFEST})")


def replace_via_temp(path: Path, write: Callable[[Path], Any]) -> None:
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


def write_manifest(folder: Path, document: dict[str, Any]) -> Path:
    path = folder / MANIFEST
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    replace_via_temp(path, lambda p: p.write_text(text))
    return path


def _split(out: str | os.PathLike) -> tuple[Path, str]:
    text = os.fspath(out)
    if not str(text).strip():
        raise InputError("no output file given (an empty name); name a file to write")
    path = Path(text)
    if path.name == MANIFEST:
        raise InputError(f"{path.name} is the name of the output manifest; name the file "
                         "otherwise")
    if path.is_symlink():
        raise InputError(
            f"output {path} is a symbolic link (to {os.path.realpath(path)}); refusing to write "
            "through it; name the real file instead"
        )
    if path.exists() and not path.is_file():
        raise InputError(f"output {path} exists and is not a file")
    folder = output_folder(path.parent, "the folder of output")
    if not folder.is_dir():
        raise InputError(f"the folder of output {path} does not exist")
    return folder, path.name


def check_output_file(out: str | os.PathLike, overwrite: bool = False,
                      flag: str = "--overwrite") -> Path:
    """Check, writing nothing, that :func:`write_output_file` may write ``out``: a bare file in an
    existing folder that is not a link, not named like the manifest, and new or listed in the
    folder's manifest (else refused unless ``overwrite``; a foreign manifest likewise).

    ``flag`` is how the caller's user asks to replace (named in the refusal). Returns the path.
    """
    folder, name = _split(out)
    previous = read_manifest(folder)
    check_targets(folder, [name, MANIFEST], owned(previous), overwrite, lambda message: None,
                  flag)
    return folder / name


def write_output_file(
    out: str | os.PathLike, write: Callable[[Path], Any], *, command: str,
    inputs: Mapping[str, Any] | None = None, overwrite: bool = False,
    log: Callable[[str], None] | None = None, flag: str = "--overwrite",
) -> Path:
    """Write one file at ``out`` (by ``write(path)``) and list it in its folder's manifest.

    The rules of :func:`check_output_file`; the file's entry in ``other_files`` records
    ``command``, the time and ``inputs``; a registration's listing of the same name (a file
    this command replaces) is dropped. The entry is written before the file, so that an
    interrupted write leaves nothing a rerun would take for the user's. Returns the path.
    """
    from .. import __version__
    from ..qa import to_jsonable

    say = log if log is not None else (lambda message: None)
    folder, name = _split(out)
    previous = read_manifest(folder)
    check_targets(folder, [name, MANIFEST], owned(previous), overwrite, say, flag)
    stamp = now()
    document = previous or {"tool": MANIFEST_TOOL, "complete": True, "written": stamp,
                            "files": []}
    document["version"] = __version__
    document["files"] = [f for f in document["files"] if f != name]
    listed = other_files(previous)
    listed[name] = {"command": command, "written": stamp,
                    "inputs": to_jsonable(dict(inputs or {}))}
    document[OTHER_FILES] = listed
    write_manifest(folder, document)
    path = folder / name
    replace_via_temp(path, write)
    return path


def remove_output_file(path: str | os.PathLike) -> bool:
    """Remove ``path`` if its folder's manifest lists it as a single file of ours (and drop the
    entry); a file of the user's is left. True when it was removed."""
    path = Path(path)
    previous = read_manifest(path.parent)
    listed = other_files(previous)
    if previous is None or path.name not in listed or path.is_symlink():
        return False
    del listed[path.name]
    previous[OTHER_FILES] = listed
    write_manifest(path.parent, previous)
    if path.is_file():
        path.unlink()
    return True


__all__ = [
    "MANIFEST",
    "MANIFEST_TOOL",
    "check_output_file",
    "check_targets",
    "other_files",
    "output_folder",
    "owned",
    "read_manifest",
    "remove_output_file",
    "replace_via_temp",
    "write_manifest",
    "write_output_file",
]
