"""The pairs of a cohort run: from a CSV table, from a path pattern, or every subject to an atlas.

A :class:`Pair` names its files (fixed, moving and the optional label maps and landmark CSVs) and
the sub-folder its outputs go to. Nothing is read here: a missing file is found by the task that
registers the pair, so that it is recorded as that pair's failure while the others go on.
"""

from __future__ import annotations

import csv
import glob
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..volume import InputError

# the files of a pair, in the order of a CSV's columns and of the manifest's "inputs"
ROLES: tuple[str, ...] = (
    "fixed", "moving", "fixed_labels", "moving_labels", "fixed_points", "moving_points",
)
# roles the atlas provides when every subject is registered to one atlas
ATLAS_ROLES: tuple[str, ...] = ("fixed", "fixed_labels", "fixed_points")
NAME_COLUMN = "name"
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".tif", ".tiff")
_SUBJECT = "{subject}"


@dataclass(frozen=True)
class Pair:
    """One registration of a cohort run.

    Attributes:
        name: unique within the run; the name of the pair's output folder (a single path
            component of letters, digits, ``-``, ``_`` and ``.``).
        fixed, moving: image files (or DICOM folders).
        fixed_labels, moving_labels: optional label maps on their image's grid.
        fixed_points, moving_points: optional landmark CSVs (physical mm), both or neither.
    """

    name: str
    fixed: Path
    moving: Path
    fixed_labels: Path | None = None
    moving_labels: Path | None = None
    fixed_points: Path | None = None
    moving_points: Path | None = None

    def __post_init__(self) -> None:
        check_pair_name(self.name)

    def inputs(self) -> dict[str, str]:
        """``{role: path}`` of the files given, as recorded in the output manifest."""
        return {role: str(getattr(self, role)) for role in ROLES if getattr(self, role)}


def check_pair_name(name: str) -> str:
    """``name`` if it can be a folder name inside the output folder, else InputError."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name or "") or name in (".", ".."):
        raise InputError(
            f"pair name {name!r} cannot name an output folder: use letters, digits, '-', '_' "
            "and '.' only"
        )
    return name


def image_stem(path: str | Path) -> str:
    """A file's name without its image suffix (``sub-01_T1.nii.gz`` -> ``sub-01_T1``)."""
    name = Path(path).name
    for suffix in _IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _folder_name(text: str) -> str:
    """``text`` made into a folder name (other characters become ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "pair"
    return cleaned


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` as folder names, with ``-2``, ``-3``... appended to repeats (in order)."""
    seen: dict[str, int] = {}
    out = []
    for raw in names:
        name = _folder_name(raw)
        count = seen.get(name, 0) + 1
        seen[name] = count
        out.append(name if count == 1 else f"{name}-{count}")
    if len(set(out)) != len(out):  # "a-2" given as a name beside two "a"s
        raise InputError(f"pair names are not unique after renaming repeats: {out}")
    return out


def _resolve(value: str | Path | None, base: Path | None) -> Path | None:
    if value is None or not str(value).strip():
        return None
    path = Path(str(value).strip()).expanduser()
    return path if path.is_absolute() or base is None else base / path


def _atlas_fields(atlas: str | Path | None, atlas_labels: str | Path | None,
                  atlas_points: str | Path | None) -> dict[str, Path | None]:
    if atlas is None:
        if atlas_labels is not None or atlas_points is not None:
            raise InputError("atlas labels or points were given without an atlas image")
        return {}
    return {"fixed": Path(atlas), "fixed_labels": _resolve(atlas_labels, None),
            "fixed_points": _resolve(atlas_points, None)}


def make_pairs(rows: Iterable[Mapping[str, str | Path | None]], base: Path | None = None,
               atlas: str | Path | None = None, atlas_labels: str | Path | None = None,
               atlas_points: str | Path | None = None) -> list[Pair]:
    """Pairs from rows ``{role: path, "name": optional}``; relative paths are taken from ``base``.

    With ``atlas``, the atlas (and its labels / points) is the fixed side of every row, and a
    row's own fixed columns are refused (which one was meant would be a guess). A row without a
    name is named after its moving image.
    """
    from_atlas = _atlas_fields(atlas, atlas_labels, atlas_points)
    rows = [dict(r) for r in rows]
    specs = []
    for number, row in enumerate(rows, start=1):
        unknown = sorted(set(row) - set(ROLES) - {NAME_COLUMN})
        if unknown:
            raise InputError(
                f"row {number}: unknown columns {unknown}; known are {NAME_COLUMN}, "
                f"{', '.join(ROLES)}"
            )
        files = {role: _resolve(row.get(role), base) for role in ROLES}
        if from_atlas:
            given = [r for r in ATLAS_ROLES if files[r] is not None]
            if given:
                raise InputError(f"row {number} names {given} but the atlas is the fixed image")
            files.update(from_atlas)
        for role in ("fixed", "moving"):
            if files[role] is None:
                raise InputError(f"row {number} has no {role} image")
        name = str(row.get(NAME_COLUMN) or "").strip() or image_stem(files["moving"])
        specs.append((name, files))
    names = unique_names([name for name, _ in specs])
    return [Pair(name, **files) for name, (_, files) in zip(names, specs, strict=True)]


def read_pairs_csv(path: str | Path, atlas: str | Path | None = None,
                   atlas_labels: str | Path | None = None,
                   atlas_points: str | Path | None = None) -> list[Pair]:
    """The pairs of a CSV table: a header naming the columns, one pair per row.

    Columns (by name, any order): ``fixed``, ``moving`` (required; ``fixed`` not with an atlas),
    ``fixed_labels``, ``moving_labels``, ``fixed_points``, ``moving_points`` (optional; an
    empty cell means none) and ``name`` (the output folder; default the moving image's name).
    Relative paths are relative to the CSV's folder. Blank lines and lines starting with ``#``
    are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pair list not found: {path}")
    with path.open(newline="") as handle:
        lines = [line for line in handle if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    if not reader.fieldnames or "moving" not in [f.strip() for f in reader.fieldnames]:
        raise InputError(
            f"{path.name}: the first line must name the columns (fixed, moving, ...), found "
            f"{reader.fieldnames}"
        )
    rows = []
    for row in reader:
        if None in row:  # more cells than columns
            raise InputError(f"{path.name}: a row has more cells than the header has columns")
        rows.append({key.strip(): value for key, value in row.items()})
    if not rows:
        raise InputError(f"{path.name} lists no pairs")
    return make_pairs(rows, path.resolve().parent, atlas, atlas_labels, atlas_points)


def pairs_from_pattern(patterns: Mapping[str, str], atlas: str | Path | None = None,
                       atlas_labels: str | Path | None = None,
                       atlas_points: str | Path | None = None) -> list[Pair]:
    """Pairs from path templates with a ``{subject}`` placeholder, one pair per subject.

    ``patterns`` maps roles to templates, e.g. ``{"fixed": "data/{subject}/t1.nii.gz",
    "moving": "data/{subject}/t2.nii.gz", "moving_labels": "data/{subject}/seg.nii.gz"}``.
    The subjects are those whose moving image exists; the other files are named by filling in
    the subject (a missing one is that pair's failure when it runs). With ``atlas``, the atlas
    is the fixed side. Each pair is named after its subject.
    """
    unknown = sorted(set(patterns) - set(ROLES))
    if unknown:
        raise InputError(f"unknown roles {unknown} in the patterns; known are {', '.join(ROLES)}")
    lead = "moving"
    if lead not in patterns:
        raise InputError("a pattern of the moving images is needed")
    if atlas is None and "fixed" not in patterns:
        raise InputError("a pattern of the fixed images (or an atlas) is needed")
    template = str(patterns[lead])
    if template.count(_SUBJECT) != 1:
        raise InputError(f"the {lead} pattern must hold {_SUBJECT} once: {template!r}")
    head, tail = template.split(_SUBJECT)
    matcher = re.compile(re.escape(head) + r"(?P<subject>[^/\\]+?)" + re.escape(tail) + r"\Z")
    found = sorted(glob.glob(glob.escape(head) + "*" + glob.escape(tail)))
    subjects = [m.group("subject") for m in map(matcher.match, found) if m]
    if not subjects:
        raise InputError(f"no file matches the {lead} pattern {template!r}")
    rows = [
        {NAME_COLUMN: subject,
         **{role: str(t).replace(_SUBJECT, subject) for role, t in patterns.items()}}
        for subject in subjects
    ]
    return make_pairs(rows, None, atlas, atlas_labels, atlas_points)


def pairs_to_atlas(moving: Sequence[str | Path], atlas: str | Path,
                   atlas_labels: str | Path | None = None,
                   moving_labels: Sequence[str | Path | None] | None = None) -> list[Pair]:
    """Every subject image in ``moving`` registered to one ``atlas`` (with its labels)."""
    labels = list(moving_labels) if moving_labels is not None else [None] * len(moving)
    if len(labels) != len(moving):
        raise InputError(f"{len(moving)} subject images but {len(labels)} label maps")
    rows = [{"moving": m, "moving_labels": lab} for m, lab in zip(moving, labels, strict=True)]
    return make_pairs(rows, None, atlas, atlas_labels)


__all__ = [
    "ROLES",
    "Pair",
    "image_stem",
    "make_pairs",
    "pairs_from_pattern",
    "pairs_to_atlas",
    "read_pairs_csv",
    "unique_names",
]
