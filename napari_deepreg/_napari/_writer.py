"""npe2 writers: an Image or Labels layer to NIfTI / NRRD / MetaImage with its geometry.

The layer's ``scale`` is written as the spacing and its ``translate`` as the origin (mm, array
axis order); a direction matrix the reader stored in ``metadata["direction"]`` is written back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io import write_volume
from ..volume import InputError, Volume


def layer_volume(data: Any, attributes: dict[str, Any]) -> Volume:
    """A :class:`Volume` from a layer's data and its attributes (``scale``, ``translate``...).

    Raises InputError for multiscale or RGB layers, which have no single scalar volume.
    """
    if attributes.get("multiscale"):
        raise InputError("multiscale layers cannot be written as a medical volume")
    if attributes.get("rgb"):
        raise InputError("RGB layers cannot be written as a medical volume; convert to greyscale")
    array = np.asarray(data)
    ndim = array.ndim
    scale = tuple(attributes.get("scale", ()) or ())[-ndim:]
    translate = tuple(attributes.get("translate", ()) or ())[-ndim:]
    direction = (attributes.get("metadata") or {}).get("direction")
    if direction is not None:
        direction = np.asarray(direction, dtype=float)
        if direction.shape != (ndim, ndim):
            direction = None
    return Volume(array, scale, translate, direction, attributes.get("name", ""))


def write_image(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 writer for Image layers (written as float32)."""
    write_volume(layer_volume(data, attributes), path, labels=False)
    return [str(Path(path))]


def write_labels(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 writer for Labels layers (written as the smallest integer type that fits)."""
    write_volume(layer_volume(data, attributes), path, labels=True)
    return [str(Path(path))]
