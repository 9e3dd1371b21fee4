"""Turn a :class:`RegistrationResult` into napari layer data tuples (no Qt, no viewer).

Every result layer carries the fixed image's geometry (``scale`` = spacing in mm, ``translate``
= origin in mm) so it overlays the fixed layer, a name starting with :data:`PREFIX` so it never
clashes with the user's layers, and a ``metadata[METADATA_KEY]`` record naming its role. The
widget uses the prefix and the record to find (and replace) the layers an earlier run made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import qa
from ..methods.base import RegistrationResult

PREFIX = "[deepreg] "
METADATA_KEY = "napari_deepreg"

# role -> layer name (the warped image's name also carries the moving layer's name)
GRID_NAME = PREFIX + "deformation grid"
WARPED_LABELS_NAME = PREFIX + "warped labels"
JACOBIAN_NAME = PREFIX + "jacobian"
FOLDS_NAME = PREFIX + "folds"
MAGNITUDE_NAME = PREFIX + "displacement magnitude (mm)"

LayerDataTuple = tuple[np.ndarray, dict[str, Any], str]

# grid line half-width in voxels: lines about one voxel wide, anti-aliased
GRID_WIDTH = 0.6
# napari colormap spec: transparent at 0, opaque yellow at 1
GRID_COLORMAP = {
    "name": "deepreg grid",
    "colors": [[1.0, 0.85, 0.0, 0.0], [1.0, 0.85, 0.0, 1.0]],
}


def warped_name(moving_name: str) -> str:
    """Name of the warped moving image layer."""
    return f"{PREFIX}warped {moving_name}"


def is_result_layer(name: str, metadata: dict | None) -> bool:
    """True for a layer a registration run made (prefixed name and our metadata record)."""
    return name.startswith(PREFIX) and isinstance((metadata or {}).get(METADATA_KEY), dict)


def grid_period(shape: Sequence[int], displayed_axes: Sequence[int]) -> int:
    """Grid period in voxels: about 12 cells across the smaller displayed side, at least 5
    (denser grids hide the image underneath)."""
    sides = [shape[a] for a in displayed_axes] or list(shape)
    return max(5, round(min(sides) / 12))


def normalise_axes(displayed_axes: Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """Displayed axes as sorted non-negative indices; the last two axes when None."""
    if displayed_axes is None:
        return tuple(range(ndim))[-2:]
    axes = sorted({int(a) % ndim for a in displayed_axes if -ndim <= int(a) < ndim})
    return tuple(axes) if axes else tuple(range(ndim))[-2:]


def grid_data(
    field: np.ndarray, spacing: Sequence[float], displayed_axes: Sequence[int] | None = None
) -> np.ndarray:
    """Deformation grid ``(*spatial)`` float32 in [0, 1] whose lines lie in the displayed plane.

    Args:
        field: ``(D, *spatial)`` displacement in mm (pull-back, fixed grid).
        spacing: voxel size in mm per array axis.
        displayed_axes: array axes shown on screen (the viewer's displayed dims).
    """
    shape = field.shape[1:]
    axes = normalise_axes(displayed_axes, len(shape))
    return qa.deformation_grid(
        field, spacing, displayed_axes=axes, period_vox=grid_period(shape, axes), width=GRID_WIDTH
    )


def _meta(role: str, fixed_name: str, result: RegistrationResult, **extra: Any) -> dict:
    record = {"role": role, "fixed": fixed_name, "method": result.method, "model": result.model}
    record.update(extra)
    return {METADATA_KEY: record}


def apply_display(layer: Any) -> None:
    """Set the display attributes a layer's constructor does not take (e.g. a Labels contour),
    stored under ``metadata[METADATA_KEY]["display"]`` by :func:`result_layers`."""
    record = (getattr(layer, "metadata", None) or {}).get(METADATA_KEY) or {}
    for attribute, value in (record.get("display") or {}).items():
        setattr(layer, attribute, value)


def result_layers(
    result: RegistrationResult,
    fixed_name: str,
    moving_name: str = "moving",
    displayed_axes: Sequence[int] | None = None,
) -> list[LayerDataTuple]:
    """Layer data tuples ``(data, kwargs, layer_type)`` for every output of a run.

    In order (bottom to top): the warped moving image (magenta, additive, to compare with the
    fixed image underneath), the displacement magnitude (mm, hidden), the Jacobian determinant
    (diverging map centred on 1, hidden), the deformation grid (yellow lines in the displayed
    plane, transparent elsewhere), the warped labels (outlined: call :func:`apply_display` on
    the created layer) when the run had moving labels, and the folds (J <= 0, red).

    Args:
        result: a registration result on the fixed grid.
        fixed_name, moving_name: the input layers' names (for the warped layer's name and the
            metadata record).
        displayed_axes: array axes shown on screen, for the grid (default: the last two).
    """
    scale = tuple(float(s) for s in result.spacing)
    translate = tuple(float(o) for o in result.origin)
    geometry = {"scale": scale, "translate": translate}
    field = np.asarray(result.field)
    ndim = field.shape[0]
    axes = normalise_axes(displayed_axes, ndim)

    layers: list[LayerDataTuple] = []
    warped = np.asarray(result.warped, dtype=np.float32)
    lo, hi = np.percentile(warped, [0.5, 99.5]) if warped.size else (0.0, 1.0)
    if not hi > lo:
        lo, hi = float(warped.min()), float(warped.max()) + 1.0
    layers.append((
        warped,
        {
            "name": warped_name(moving_name),
            "colormap": "magenta",
            "blending": "additive",
            "contrast_limits": (float(lo), float(hi)),
            "metadata": _meta("warped", fixed_name, result, moving=moving_name),
            **geometry,
        },
        "image",
    ))

    magnitude = qa.displacement_magnitude(field)
    mag_max = float(magnitude.max()) if magnitude.size else 0.0
    layers.append((
        magnitude,
        {
            "name": MAGNITUDE_NAME,
            "colormap": "viridis",
            "contrast_limits": (0.0, mag_max if mag_max > 0 else 1.0),
            "visible": False,
            "metadata": _meta("magnitude", fixed_name, result, units="mm"),
            **geometry,
        },
        "image",
    ))

    jac, jac_limits, jac_cmap = qa.jacobian_display(result.jacobian)
    layers.append((
        jac,
        {
            "name": JACOBIAN_NAME,
            "colormap": jac_cmap,
            "contrast_limits": tuple(float(v) for v in jac_limits),
            "visible": False,
            "metadata": _meta("jacobian", fixed_name, result),
            **geometry,
        },
        "image",
    ))

    layers.append((
        grid_data(field, scale, axes),
        {
            "name": GRID_NAME,
            # yellow whose alpha follows the line strength: readable over bright and dark
            # tissue alike (additive yellow vanishes over white matter)
            "colormap": GRID_COLORMAP,
            "blending": "translucent",
            "contrast_limits": (0.0, 1.0),
            "opacity": 0.7,
            "interpolation2d": "linear",  # smooth lines when zoomed in
            "metadata": _meta("grid", fixed_name, result, displayed_axes=list(axes)),
            **geometry,
        },
        "image",
    ))

    if result.warped_labels is not None:
        layers.append((
            np.asarray(result.warped_labels),
            {
                "name": WARPED_LABELS_NAME,
                "opacity": 0.9,
                # outlines, so the fixed image shows through (not a constructor argument)
                "metadata": _meta(
                    "warped_labels", fixed_name, result, moving=moving_name,
                    display={"contour": 1},
                ),
                **geometry,
            },
            "labels",
        ))

    layers.append((
        qa.fold_mask(result.jacobian),
        {
            "name": FOLDS_NAME,
            "colormap": {1: "red", None: "transparent"},
            "opacity": 0.8,
            "metadata": _meta("folds", fixed_name, result),
            **geometry,
        },
        "labels",
    ))
    return layers
