"""The bundled sample pairs (``sample_data/`` next to the package), read into Volumes.

Each pair is a brain template and the same template warped by a known smooth random
diffeomorphism with a mild intensity change, with label maps for both and the true field (see
``sample_data/README.md``; ``sample_data/build_sample_data.py`` rebuilds them).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .volume import InputError

SAMPLES = ("brain3d", "brain2d")
SAMPLE_DIR_ENV = "NAPARI_DEEPREG_SAMPLE_DATA"
_PARTS = ("fixed", "moving", "fixed_labels", "moving_labels", "field", "meta")


def sample_dir() -> Path:
    """The folder holding the sample files: ``$NAPARI_DEEPREG_SAMPLE_DATA``, else the
    ``sample_data/`` folder beside the installed package (an editable install or a checkout)."""
    env = os.environ.get(SAMPLE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    package = Path(str(resources.files("napari_deepreg")))
    return package.parent / "sample_data"


def sample_files(name: str) -> dict[str, Path]:
    """Paths of the files of sample ``name`` (``"brain3d"`` or ``"brain2d"``).

    Raises:
        InputError: unknown name, or the files are not there.
    """
    if name not in SAMPLES:
        raise InputError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLES)}")
    folder = sample_dir()
    files = {
        part: folder / (f"{name}_{part}.json" if part == "meta" else f"{name}_{part}.nii.gz")
        for part in _PARTS
    }
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise InputError(
            f"sample data {name!r} not found in {folder} (missing {', '.join(missing)}); "
            "install napari-deepreg from a source checkout or rebuild them with "
            f"'python sample_data/build_sample_data.py', or set {SAMPLE_DIR_ENV}"
        )
    return files


def load_sample(name: str) -> dict[str, Any]:
    """Load a bundled sample pair.

    Args:
        name: ``"brain3d"`` (2 mm, about 83x99x81) or ``"brain2d"`` (one 1 mm axial slice).

    Returns:
        A dict with ``fixed`` and ``moving`` (float32 image Volumes on the same grid),
        ``fixed_labels`` and ``moving_labels`` (int32 label Volumes on that grid), ``field``
        (``(D, *S)`` float32, mm along the array axes, on the fixed grid: the true pull-back field
        with ``moving(x + field(x)) = fixed(x)``), ``label_names`` ``{label: name}`` and ``meta``
        (how the pair was made: seeds, deformation magnitude, Dice before registration...).
    """
    # io pulls in SimpleITK; keep importing this module cheap
    from .io import read_field, read_volume

    files = sample_files(name)
    meta = json.loads(files["meta"].read_text())
    out: dict[str, Any] = {}
    for part in ("fixed", "moving"):
        vol = read_volume(files[part], name=f"{name} {part}")
        vol.array = vol.array.astype(np.float32)
        out[part] = vol
    for part in ("fixed_labels", "moving_labels"):
        vol = read_volume(files[part], name=f"{name} {part.replace('_', ' ')}")
        vol.array = vol.array.astype(np.int32)
        out[part] = vol
    field, _ = read_field(files["field"], out["fixed"])
    out["field"] = field
    # the names a user's other tools read too: sample_data/labels.csv (label,name,description),
    # found the way the reader and the CLI find a table beside any label file
    from .qa.label_names import find_label_names

    names, _ = find_label_names(files["fixed_labels"])
    out["label_names"] = names or {int(k): v for k, v in meta.get("label_names", {}).items()}
    out["meta"] = meta
    for part in ("fixed_labels", "moving_labels"):
        out[part].metadata["names"] = out["label_names"]
    return out


__all__ = ["SAMPLES", "SAMPLE_DIR_ENV", "load_sample", "sample_dir", "sample_files"]
