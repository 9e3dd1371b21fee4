"""npe2 reader: NIfTI / NRRD / MetaImage files as Image or Labels layers with their geometry."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import IMAGE_SUFFIXES, read_volume
from ..volume import Volume

LayerDataTuple = tuple[np.ndarray, dict[str, Any], str]

# Integer images with at most this many distinct values open as Labels.
MAX_LABEL_VALUES = 64
# A file named like a segmentation opens as Labels ("brain_seg.nii.gz", "labels.nrrd",
# "aparc+aseg.mgz", "brain_mask.mha").
_LABEL_NAME = re.compile(r"label|seg|parc|mask", re.IGNORECASE)


def _suffix(path: str) -> str:
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def looks_like_labels(array: np.ndarray, filename: str = "") -> bool:
    """True if a volume should open as a label map.

    Non-negative integer data whose file name says so (``label``, ``seg``, ``parc``, ``mask``;
    integer-valued floats count, as some atlases store them), or integer data with few distinct
    values (at most :data:`MAX_LABEL_VALUES`) whatever the name.
    """
    arr = np.asarray(array)
    if arr.dtype.kind not in "biuf" or arr.size == 0:
        return False
    if arr.min() < 0:
        return False
    if _LABEL_NAME.search(Path(filename).name):
        if arr.dtype.kind != "f":
            return True
        return bool(
            np.isfinite(arr).all()
            and arr.max() <= np.iinfo(np.int32).max
            and np.array_equal(arr, np.round(arr))
        )
    if arr.dtype.kind == "f":
        return False
    # cheap rejection first: a strided sample with many values is an image
    sample = arr.ravel()[:: max(1, arr.size // 100_000)]
    if np.unique(sample).size > MAX_LABEL_VALUES:
        return False
    return np.unique(arr).size <= MAX_LABEL_VALUES


def volume_to_layer(volume: Volume, filename: str = "") -> LayerDataTuple:
    """Layer data tuple for a volume: ``scale`` = spacing, ``translate`` = origin (mm).

    The direction matrix and the origin go into ``metadata`` (napari shows the volume along its
    array axes; the writer puts the direction back).
    """
    labels = looks_like_labels(volume.array, filename)
    data = volume.array
    if labels and data.dtype.kind == "f":
        data = data.astype(np.int32)
    kwargs: dict[str, Any] = {
        "name": volume.name or Path(filename).name,
        "scale": tuple(volume.spacing),
        "translate": tuple(volume.origin),
        "metadata": {
            "direction": volume.direction_matrix().tolist(),
            "origin": list(volume.origin),
            "spacing": list(volume.spacing),
            "path": str(filename),
        },
    }
    if not labels:
        kwargs["colormap"] = "gray"
    elif filename:
        # a lookup table beside the file (ITK-SNAP, FreeSurfer LUT, CSV/TSV) names the labels:
        # hovering shows the name, and the widget's tables and report list it
        from ..qa.label_names import find_label_names

        names, source = find_label_names(filename)
        if names:
            ids = sorted(names)
            kwargs["features"] = {"index": ids, "name": [names[i] for i in ids]}
            kwargs["metadata"]["label_names"] = {str(i): names[i] for i in ids}
            kwargs["metadata"]["label_names_file"] = str(source)
    return data, kwargs, "labels" if labels else "image"


def read_volumes(path: str | Sequence[str]) -> list[LayerDataTuple]:
    """Read one file or several into layer data tuples."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    return [volume_to_layer(read_volume(p), str(p)) for p in paths]


def get_reader(path: str | list[str]) -> Callable[..., list[LayerDataTuple]] | None:
    """npe2 reader hook: :func:`read_volumes` for medical volume files, None for anything else."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(_suffix(str(p)) in IMAGE_SUFFIXES for p in paths):
        return None
    return read_volumes
