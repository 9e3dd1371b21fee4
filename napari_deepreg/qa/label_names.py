"""Label names: read the lookup tables that come with label maps, and find them beside a file.

Three formats are read, told apart by their content, not their file name:

* **ITK-SNAP label description** (``.txt`` / ``.label``): ``IDX  R G B  A  VIS MSH  "LABEL"``
  per line, ``#`` comments.
* **FreeSurfer colour LUT** (``FreeSurferColorLUT.txt``): ``No. Label-Name R G B A`` per line,
  ``#`` comments.
* **CSV / TSV** with a header naming an id column (``label``, ``id``, ``index``, ``value``,
  ``idx``, ``no``) and a name column (``name``, ``label_name``, ``structure``, ``description``,
  ``abbreviation``), or two columns ``id,name`` without a header.

:func:`find_label_names` looks beside a label file for such a table (``<stem>.csv``,
``<stem>.tsv``, ``<stem>.txt``, ``<stem>_names.csv``, ``labels.csv``, ``labels.tsv``, an
ITK-SNAP ``*.label`` file, ``*LUT.txt``). Pure Python: nothing here imports napari.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

_ID_COLUMNS = ("label", "id", "index", "value", "idx", "no", "label_id", "labelvalue")
_NAME_COLUMNS = ("name", "label_name", "labelname", "structure", "description", "abbreviation")
# label-map suffixes stripped to get the stem a table beside it is named after
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".mgz")


def _int(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _read_itksnap_or_lut(text: str) -> dict[int, str]:
    """ITK-SNAP (quoted name after 7 numbers) or FreeSurfer LUT (name second, 4 numbers after)."""
    names: dict[int, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            parts = shlex.split(line)
        except ValueError:  # an unbalanced quote: not this format
            parts = line.split()
        if len(parts) >= 8 and all(_int(p) is not None or _is_number(p) for p in parts[:7]):
            label = _int(parts[0])
            name = " ".join(parts[7:])
        elif len(parts) >= 2 and _int(parts[0]) is not None:
            label, name = _int(parts[0]), parts[1]
        else:
            continue
        if label is not None and name:
            names[label] = name
    return names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_table(text: str, delimiter: str) -> dict[int, str]:
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip()
                                                                              for c in r)]
    if not rows:
        return {}
    header = [c.strip().lower().replace(" ", "_") for c in rows[0]]
    id_col = next((header.index(c) for c in _ID_COLUMNS if c in header), None)
    name_col = next((header.index(c) for c in _NAME_COLUMNS if c in header), None)
    if id_col is not None and name_col is not None and id_col != name_col:
        body = rows[1:]
    elif _int(rows[0][0].strip()) is not None and len(rows[0]) >= 2:
        id_col, name_col, body = 0, 1, rows  # no header: id, name
    else:
        return {}
    names: dict[int, str] = {}
    for row in body:
        if len(row) <= max(id_col, name_col):
            continue
        label = _int(row[id_col].strip())
        name = row[name_col].strip()
        if label is not None and name:
            names[label] = name
    return names


def parse_label_names(text: str, suffix: str = "") -> dict[int, str]:
    """``{label: name}`` from the text of a lookup table (format detected from the content;
    ``suffix`` ``.csv``/``.tsv`` only breaks ties)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return {}
    first = lines[0]
    if "\t" in first or suffix == ".tsv":
        names = _read_table("\n".join(lines), "\t")
        if names:
            return names
    if "," in first or suffix == ".csv":
        names = _read_table("\n".join(lines), ",")
        if names:
            return names
    return _read_itksnap_or_lut(text)


def read_label_names(path: str | Path) -> dict[int, str]:
    """``{label: name}`` read from an ITK-SNAP label description, a FreeSurfer LUT or a
    CSV/TSV file; the background (0) is kept when the file names it. Empty when nothing in the
    file reads as a label table."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    return parse_label_names(text, path.suffix.lower())


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def label_table_candidates(label_path: str | Path) -> list[Path]:
    """Files beside ``label_path`` that may hold its names, most specific first (existing only)."""
    path = Path(label_path)
    folder, stem = path.parent, _stem(path)
    names = [f"{stem}{ext}" for ext in (".csv", ".tsv", ".txt", ".label")]
    names += [f"{stem}_names.csv", f"{stem}_names.tsv", "labels.csv", "labels.tsv",
              "label_names.csv", "labels.txt"]
    found = [folder / n for n in names if (folder / n).is_file()]
    if folder.is_dir():
        extra = sorted(p for p in folder.iterdir() if p.is_file() and (
            p.suffix.lower() == ".label" or re.search(r"lut\.txt$", p.name, re.IGNORECASE)))
        found += [p for p in extra if p not in found]
    return found


def find_label_names(label_path: str | Path) -> tuple[dict[int, str], Path | None]:
    """The names of the labels in the map at ``label_path``, from the first table beside it
    that reads as one (:func:`label_table_candidates`); ``({}, None)`` when there is none."""
    for candidate in label_table_candidates(label_path):
        try:
            names = read_label_names(candidate)
        except OSError:
            continue
        if names:
            return names, candidate
    return {}, None


def label_title(label: int, names: Mapping[int, str] | None) -> str:
    """What a table row calls a label: ``"1 left grey matter"``, or ``"label 1"`` without a name."""
    name = (names or {}).get(int(label))
    return f"{int(label)} {name}" if name else f"label {int(label)}"


__all__ = [
    "find_label_names",
    "label_table_candidates",
    "label_title",
    "parse_label_names",
    "read_label_names",
]
