"""Turn a :class:`RegistrationResult` into napari layers, and put them into a viewer's list.

Every result layer carries the fixed image's geometry so it overlays the fixed layer and is
saved with it: ``scale`` = spacing and ``translate`` = origin (mm, array axis order), and the
direction cosines in ``metadata["direction"]`` (:meth:`Grid.layer_metadata`, what the plugin's
reader stores and its writer puts back into the file). Each has a name starting with
:data:`PREFIX`, so it never clashes with the user's layers, and a ``metadata[METADATA_KEY]``
record naming its role, by which a later run finds (and replaces) the layers an earlier one
made. The arrays and styles come from :mod:`napari_deepreg.qa.display`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..qa import display
from ..qa.display import GRID_COLORMAP, GRID_WIDTH, grid_period, normalise_axes
from ..result import RegistrationResult

PREFIX = "[deepreg] "
METADATA_KEY = "napari_deepreg"

# role -> layer name (the warped image's name also carries the moving layer's name)
GRID_NAME = PREFIX + "deformation grid"
WARPED_LABELS_NAME = PREFIX + "warped labels"
JACOBIAN_NAME = PREFIX + "jacobian"
FOLDS_NAME = PREFIX + "folds"
MAGNITUDE_NAME = PREFIX + "displacement magnitude (mm)"

LayerDataTuple = tuple[np.ndarray, dict[str, Any], str]


@functools.cache
def _layers_take_units() -> bool:
    import inspect

    from napari.layers import Image

    return "units" in inspect.signature(Image.__init__).parameters


def mm_units(ndim: int) -> dict[str, Any]:
    """``{"units": ("mm",) * ndim}`` for a layer's constructor (every scale here is mm per
    axis; the scale bar reads the unit from the layers), or ``{}`` on a napari without layer
    units. A layer made in mm joins the viewer's mm layers without a moment of mixed units."""
    return {"units": ("mm",) * ndim} if _layers_take_units() else {}


def warped_name(moving_name: str) -> str:
    """Name of the warped moving image layer."""
    return f"{PREFIX}warped {moving_name}"


def is_result_layer(name: str, metadata: dict | None) -> bool:
    """True for a layer a registration run made (prefixed name and our metadata record)."""
    return name.startswith(PREFIX) and isinstance((metadata or {}).get(METADATA_KEY), dict)


def grid_data(
    field: np.ndarray, spacing: Sequence[float], displayed_axes: Sequence[int] | None = None
) -> np.ndarray:
    """Deformation grid ``(*spatial)`` float32 in [0, 1] whose lines lie in the displayed plane
    (:func:`napari_deepreg.qa.display.grid_lines`; ``field`` ``(D, *spatial)`` in mm)."""
    return display.grid_lines(field, spacing, displayed_axes)


def _meta(role: str, fixed_name: str, result: RegistrationResult, **extra: Any) -> dict:
    """A result layer's metadata: our record, and the fixed grid's direction (so the writer
    saves the layer with the fixed image's affine)."""
    record = {"role": role, "fixed": fixed_name, "method": result.method, "model": result.model}
    record.update(extra)
    return {**result.grid.layer_metadata(), METADATA_KEY: record}


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
    fixed image underneath; visible), the displacement magnitude (mm, hidden), the Jacobian
    determinant (diverging map centred on 1, semi-transparent, hidden), the deformation grid
    (yellow lines in the displayed plane, transparent elsewhere; hidden), the warped labels
    (contours, visible: call :func:`apply_display` on the created layer) when the run had
    moving labels, and the folds (J <= 0, red; hidden). What shows after a run is thus the
    warped image and its label contours over the fixed image; the rest is a tick away. Each sits
    on ``result.grid``: ``scale`` = spacing, ``translate`` = origin and, when the fixed image
    has one, ``metadata["direction"]``.

    Args:
        result: a registration result on the fixed grid.
        fixed_name, moving_name: the input layers' names (for the warped layer's name and the
            metadata record).
        displayed_axes: array axes shown on screen, for the grid (default: the last two).
    """
    scale, translate = result.grid.spacing, result.grid.origin
    field = np.asarray(result.field)
    ndim = field.shape[0]
    geometry = {"scale": scale, "translate": translate, **mm_units(ndim)}
    axes = normalise_axes(displayed_axes, ndim)

    layers: list[LayerDataTuple] = []
    warped = np.asarray(result.warped, dtype=np.float32)
    layers.append((
        warped,
        {
            "name": warped_name(moving_name),
            "colormap": display.WARPED_COLORMAP,
            "blending": "additive",
            "contrast_limits": display.intensity_limits(warped),
            "metadata": _meta("warped", fixed_name, result, moving=moving_name),
            **geometry,
        },
        "image",
    ))

    magnitude, mag_limits, mag_cmap = display.magnitude_display(field)
    layers.append((
        magnitude,
        {
            "name": MAGNITUDE_NAME,
            "colormap": mag_cmap,
            "contrast_limits": mag_limits,
            "opacity": display.HEATMAP_OPACITY,
            "visible": False,
            "metadata": _meta("magnitude", fixed_name, result, units="mm"),
            **geometry,
        },
        "image",
    ))

    jac, jac_limits, jac_cmap = display.jacobian_display(result.jacobian)
    layers.append((
        jac,
        {
            "name": JACOBIAN_NAME,
            "colormap": jac_cmap,
            "contrast_limits": tuple(float(v) for v in jac_limits),
            # over the anatomy when shown, never hiding it
            "opacity": display.HEATMAP_OPACITY,
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
            # yellow whose alpha follows the line strength
            "colormap": GRID_COLORMAP,
            "blending": "translucent",
            "contrast_limits": (0.0, 1.0),
            "opacity": 0.7,
            "visible": False,  # one tick away; shown by default it hides the anatomy
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
        display.fold_mask(result.jacobian),
        {
            "name": FOLDS_NAME,
            "colormap": display.FOLD_COLORMAP,
            "opacity": 0.8,
            "visible": False,  # listed in the Folds section, which shows them on demand
            "metadata": _meta("folds", fixed_name, result),
            **geometry,
        },
        "labels",
    ))
    return layers


# --------------------------------------------------------------------------- into the viewer


def displayed_axes(dims: Any, ndim: int) -> tuple[int, ...]:
    """The array axes of an ``ndim`` layer that the canvas shows (the in-plane axes), from the
    viewer's ``dims``.

    In a 3D view the grid is drawn in the plane of the last two axes of the dims order, which
    is what the default camera looks at.
    """
    offset = dims.ndim - ndim
    shown = list(dims.order[-2:]) if dims.ndisplay == 3 else list(dims.displayed)
    axes = tuple(sorted(d - offset for d in shown if d - offset >= 0))
    return axes if axes else tuple(range(ndim))[-2:]


def update_layer(layer: Any, data: np.ndarray, kwargs: dict[str, Any]) -> None:
    """Give an existing result layer a new run's data, geometry and style (its visibility
    stays)."""
    layer.data = data
    layer.name = kwargs["name"]
    layer.scale = kwargs["scale"]
    layer.translate = kwargs["translate"]
    layer.metadata = kwargs["metadata"]
    if "contrast_limits" in kwargs:
        layer.reset_contrast_limits_range()
        layer.contrast_limits = kwargs["contrast_limits"]
    for attribute in ("colormap", "blending", "opacity"):
        if attribute in kwargs:
            setattr(layer, attribute, kwargs[attribute])
    apply_display(layer)


def replace_result_layers(layers: Any, tuples: Sequence[LayerDataTuple]) -> None:
    """Put a run's layers into the viewer's layer list, replacing an earlier run's by role.

    A layer of the same role and kind is updated in place (cheaper than remove + add, and it
    keeps the user's visibility choice); otherwise the new layer takes the old one's place. Roles
    this run did not produce (e.g. no labels this time) are removed; the user's layers are never
    touched.
    """
    from napari.layers import Image, Labels, Layer

    kinds = {"image": Image, "labels": Labels}
    previous: dict[str, list[Any]] = {}
    for layer in list(layers):
        if is_result_layer(layer.name, layer.metadata):
            role = layer.metadata[METADATA_KEY].get("role", "")
            previous.setdefault(role, []).append(layer)
    for data, kwargs, layer_type in tuples:
        old = previous.pop(kwargs["metadata"][METADATA_KEY]["role"], [])
        if old and isinstance(old[0], kinds[layer_type]) and old[0].ndim == data.ndim:
            update_layer(old[0], data, kwargs)
            stale = old[1:]
        else:
            new = Layer.create(data, kwargs, layer_type)
            apply_display(new)
            if old:
                new.visible = old[0].visible
                layers.insert(layers.index(old[0]), new)
            else:
                layers.append(new)
            stale = old
        for layer in stale:
            layers.remove(layer)
    for stale in previous.values():
        for layer in stale:
            layers.remove(layer)


__all__ = [
    "FOLDS_NAME",
    "GRID_COLORMAP",
    "GRID_NAME",
    "GRID_WIDTH",
    "JACOBIAN_NAME",
    "MAGNITUDE_NAME",
    "METADATA_KEY",
    "PREFIX",
    "WARPED_LABELS_NAME",
    "LayerDataTuple",
    "apply_display",
    "displayed_axes",
    "grid_data",
    "grid_period",
    "is_result_layer",
    "mm_units",
    "normalise_axes",
    "replace_result_layers",
    "result_layers",
    "update_layer",
    "warped_name",
]
