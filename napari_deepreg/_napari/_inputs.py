"""Layers -> the pipeline's input: copies of the chosen layers as :class:`Volume`s with geometry.

Only the conversion lives here (a layer's ``scale`` is the spacing, its ``translate`` the origin,
``metadata["direction"]`` (set by the plugin's reader) the direction cosines; points go from data
to world coordinates). Whether the input fits together (dimensions, shapes, values, point counts,
the method's dimensionality) is :func:`napari_deepreg.pipeline.register`'s to check, once, for the
widget and the CLI alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container
from napari.layers import Image, Labels, Layer, Points

from ..volume import InputError, Volume
from ._layers import is_result_layer
from ._run import RegistrationJob


def _direction(layer: Layer, ndim: int) -> np.ndarray | None:
    """The layer's ``(ndim, ndim)`` direction cosines from its metadata (None: identity)."""
    direction = (layer.metadata or {}).get("direction")
    if direction is None:
        return None
    try:
        direction = np.asarray(direction, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"layer {layer.name!r} has a direction that is not a matrix") from exc
    if direction.shape != (ndim, ndim):  # used as identity before: a silent repair
        raise InputError(
            f"layer {layer.name!r} has a {direction.shape} direction in its metadata; "
            f"a {ndim}D image needs ({ndim}, {ndim})"
        )
    return direction


def image_volume(layer: Image, what: str) -> Volume:
    """A copy of an Image layer's data as a Volume (spacing = scale, origin = translate, mm;
    the direction from ``metadata["direction"]``).

    Raises InputError for a multiscale or RGB layer, which has no single scalar volume.
    """
    if layer.multiscale:
        raise InputError(f"{what} layer {layer.name!r} is multiscale; open one resolution level")
    if layer.rgb:
        raise InputError(
            f"{what} layer {layer.name!r} is an RGB image; convert it to greyscale first"
        )
    array = np.array(layer.data, copy=True)
    return Volume(
        array, tuple(layer.scale), tuple(layer.translate), _direction(layer, array.ndim), layer.name
    )


def layer_label_names(layer: Labels) -> dict[int, str]:
    """``{label: name}`` of a Labels layer: its ``features`` table (``index`` and ``name``
    columns, as the plugin's reader and sample data set them, so hovering shows the name), else
    ``metadata["label_names"]``; empty when it has neither."""
    features = getattr(layer, "features", None)
    if features is not None and {"index", "name"} <= set(getattr(features, "columns", ())):
        return {int(i): str(n) for i, n in zip(features["index"], features["name"], strict=True)
                if str(n) and str(n) != "nan"}
    names = (layer.metadata or {}).get("label_names") or {}
    return {int(k): str(v) for k, v in dict(names).items()}


def labels_volume(layer: Labels, image: Volume, what: str) -> Volume:
    """A copy of a Labels layer's data on its image's geometry (the pipeline checks the shape);
    the labels' names, when the layer has them, in ``metadata["names"]``."""
    if layer.multiscale:
        raise InputError(f"{what} layer {layer.name!r} is multiscale; open one resolution level")
    ndim = len(image.spacing)
    if layer.ndim == ndim and not (
        np.allclose(tuple(layer.scale), image.spacing, rtol=1e-6, atol=0)
        and np.allclose(tuple(layer.translate), image.origin, rtol=0, atol=1e-6)
    ):  # the labels would be placed on the image's grid while they are shown elsewhere
        raise InputError(
            f"{what} layer {layer.name!r} has scale {tuple(layer.scale)} and translate "
            f"{tuple(layer.translate)} but its image has {tuple(image.spacing)} and "
            f"{tuple(image.origin)}; resample the labels onto the image first"
        )
    volume = Volume(
        np.array(layer.data, copy=True), image.spacing, image.origin, image.direction, layer.name
    )
    volume.metadata["names"] = layer_label_names(layer)
    return volume


def points_world(layer: Points, ndim: int, what: str) -> np.ndarray:
    """A Points layer's data in world coordinates (mm): ``data * scale + translate``, ``(K, D)``.

    Raises InputError when the points are not ``ndim``-dimensional (they cannot be placed).
    """
    data = np.asarray(layer.data, dtype=float)
    if data.ndim != 2 or data.shape[1] != ndim:
        raise InputError(
            f"{what} layer {layer.name!r} has {data.shape[-1]}D points but the images are {ndim}D"
        )
    return data * np.asarray(layer.scale, dtype=float) + np.asarray(layer.translate, dtype=float)


def job_from_layers(
    fixed: Image | None,
    moving: Image | None,
    method: str,
    config: object,
    device: str,
    fixed_labels: Labels | None = None,
    moving_labels: Labels | None = None,
    fixed_points: Points | None = None,
    moving_points: Points | None = None,
) -> RegistrationJob:
    """The job for the chosen layers: copies of their data with their geometry.

    Raises InputError when an image is missing or a layer cannot be converted.
    """
    if fixed is None:
        raise InputError("choose a fixed image layer (open or load an image first)")
    if moving is None:
        raise InputError("choose a moving image layer")
    fixed_vol = image_volume(fixed, "fixed image")
    moving_vol = image_volume(moving, "moving image")
    return RegistrationJob(
        fixed=fixed_vol,
        moving=moving_vol,
        method=method,
        config=config,
        device=device,
        fixed_labels=None if fixed_labels is None
        else labels_volume(fixed_labels, fixed_vol, "fixed labels"),
        moving_labels=None if moving_labels is None
        else labels_volume(moving_labels, moving_vol, "moving labels"),
        fixed_points=None if fixed_points is None
        else points_world(fixed_points, fixed_vol.ndim, "fixed points"),
        moving_points=None if moving_points is None
        else points_world(moving_points, fixed_vol.ndim, "moving points"),
    )


class LayerInputs:
    """The six layer choosers (fixed/moving image, labels, points), kept in step with the
    viewer's layer list; result layers of earlier runs are never offered.

    ``container`` is the magicgui Container to put in the dock.
    """

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer

        def combo(label: str, kind: type, optional: bool = True) -> ComboBox:
            return ComboBox(label=label, choices=self._choices(kind), nullable=optional)

        self.fixed_image = combo("fixed image", Image, optional=False)
        self.moving_image = combo("moving image", Image, optional=False)
        self.fixed_labels = combo("fixed labels", Labels)
        self.moving_labels = combo("moving labels", Labels)
        self.fixed_points = combo("fixed points", Points)
        self.moving_points = combo("moving points", Points)
        self.combos = [
            self.fixed_image, self.moving_image, self.fixed_labels, self.moving_labels,
            self.fixed_points, self.moving_points,
        ]
        self.container = Container(widgets=self.combos, labels=True)

    def _choices(self, layer_type: type) -> Callable[[Any], list[tuple[str, Layer]]]:
        def choices(_widget: Any = None) -> list[tuple[str, Layer]]:
            return [
                (layer.name, layer)
                for layer in self.viewer.layers
                if isinstance(layer, layer_type) and not is_result_layer(layer.name, layer.metadata)
            ]

        return choices

    def refresh(self) -> None:
        """Re-read the layer list into the combo boxes (a moving image different from the fixed
        one is preselected when there is one)."""
        for combo in self.combos:
            combo.reset_choices()
        fixed = self.fixed_image.value
        if fixed is not None and self.moving_image.value is fixed:
            others = [c for c in self.moving_image.choices if c is not fixed]
            if others:
                self.moving_image.value = others[0]

    def on_layers_changed(self, event: Any = None) -> None:
        """Layer list event handler: refresh, and pick labels for an inserted layer."""
        self.refresh()
        if getattr(event, "type", None) == "inserted":
            self.pick_labels_by_name([event.value])

    def pick_labels_by_name(self, layers: Sequence[Layer]) -> None:
        """Fill an empty labels slot with a Labels layer named "fixed ..." / "moving ..."."""
        for layer in layers:
            if not isinstance(layer, Labels):
                continue
            name = layer.name.lower()
            for key, combo in (("fixed", self.fixed_labels), ("moving", self.moving_labels)):
                if key in name and combo.value is None and layer in combo.choices:
                    combo.value = layer

    def job(self, method: str, config: object, device: str) -> RegistrationJob:
        """The job for the chosen layers (:func:`job_from_layers`)."""
        return job_from_layers(
            self.fixed_image.value,
            self.moving_image.value,
            method=method,
            config=config,
            device=device,
            fixed_labels=self.fixed_labels.value,
            moving_labels=self.moving_labels.value,
            fixed_points=self.fixed_points.value,
            moving_points=self.moving_points.value,
        )


__all__ = [
    "LayerInputs", "image_volume", "job_from_layers", "labels_volume", "layer_label_names",
    "points_world",
]
