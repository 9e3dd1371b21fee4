"""The canvas legend: what the colours of the shown result layers mean, and the scale bar.

napari has no colour bar for an Image layer; the legend is the viewer's text overlay, one line
per shown layer (:func:`napari_deepreg.qa.display.heatmap_legend`: colormap, contrast limits,
what each end means), kept in step with the layers' visibility. The scale bar is turned on with
it, in mm: napari labels it with the layers' units (``pixel`` unless set), and every scale the
plugin reads or writes is mm per array axis, so :func:`use_mm` gives the layers still in pixels
mm units (the widget does the same for layers added after a run), and the bar reads "50 mm", not
"50 pixel".
"""

from __future__ import annotations

from typing import Any

from ..qa.display import WARPED_COLORMAP, heatmap_legend
from ._layers import METADATA_KEY, is_result_layer

OVERLAY_FONT_SIZE = 8


def _roles(viewer: Any) -> dict[str, Any]:
    return {
        layer.metadata[METADATA_KEY].get("role", ""): layer
        for layer in viewer.layers
        if is_result_layer(layer.name, layer.metadata)
    }


def legend_lines(viewer: Any) -> list[str]:
    """The legend of the result layers now visible in ``viewer`` (empty when there are none)."""
    roles = {role: layer for role, layer in _roles(viewer).items() if layer.visible}
    lines = []
    if roles:
        lines.append("scale bar: world units are mm")
    if "warped" in roles:
        lines.append(f"warped: {WARPED_COLORMAP} over grey fixed (white = agree)")
    if "warped_labels" in roles:
        lines.append("warped labels: contours")
    jac = roles.get("jacobian")
    mag = roles.get("magnitude")
    preview = roles.get("preview_jacobian")
    if preview is not None:
        record = preview.metadata[METADATA_KEY]
        lo, hi = (float(v) for v in preview.contrast_limits)
        lines.append(f"preview, {record.get('parameter')} = {record.get('value'):g}, coarse "
                     f"grid: Jacobian {lo:.2f} blue, 1 white, {hi:.2f} red")
    if "preview_warped_labels" in roles:
        lines.append("preview warped labels: contours (coarse grid)")
    residuals = roles.get("landmark_residuals")
    if residuals is not None:
        magnification = residuals.metadata[METADATA_KEY].get("magnification", 1.0)
        lines.append(f"landmark residuals: yellow arrows drawn x{magnification:g} their length "
                     "(true mm in the Landmarks table)")
    lines += heatmap_legend(
        jacobian_limits=None if jac is None else jac.contrast_limits,
        magnitude_limits=None if mag is None else mag.contrast_limits,
        folds="folds" in roles,
        grid="grid" in roles,
    )
    return lines


def canvas_overlay(viewer: Any, name: str) -> Any:
    """The viewer's ``text`` or ``scale_bar`` overlay (``viewer.canvas.overlays`` since napari
    0.9, ``viewer.text_overlay`` / ``viewer.scale_bar`` before)."""
    canvas = getattr(viewer, "canvas", None)
    if canvas is not None and hasattr(canvas, "overlays"):
        return getattr(canvas.overlays, name)
    return getattr(viewer, "text_overlay" if name == "text" else name)


def in_mm(layer: Any) -> bool:
    """True when ``layer``'s units are mm (all axes)."""
    return all(str(u) == "millimeter" for u in getattr(layer, "units", None) or ("",))


def layer_to_mm(layer: Any) -> bool:
    """Give ``layer`` mm units if it has napari's default (pixel); other units stay (the bar
    then has no unit, as napari does for mixed units). True when it changed."""
    units = getattr(layer, "units", None)
    if units is None or not all(str(u) == "pixel" for u in units):
        return False
    layer.units = ("mm",) * layer.ndim
    return True


def reslice(viewer: Any) -> None:
    """Make napari slice every layer again. napari 0.9 keeps the units a layer was last sliced
    with, so after a change of units a 3D layer shown in 2D is cut at a wrong depth (the canvas
    goes blank) until the slider moves: move it one step and back."""
    dims = viewer.dims
    for axis in dims.not_displayed:
        start, stop, _ = dims.range[axis]
        point = dims.point[axis]
        if stop > start:
            dims.set_point(axis, stop if point != stop else start)
            dims.set_point(axis, point)
            return


def use_mm(viewer: Any) -> None:
    """:func:`layer_to_mm` for every layer of ``viewer`` (the widget does it for each layer
    inserted into a viewer in mm), then :func:`reslice` if any changed."""
    changed = [layer_to_mm(layer) for layer in viewer.layers]
    if any(changed):
        reslice(viewer)


def update_legend(viewer: Any, *_: Any) -> None:
    """Write :func:`legend_lines` into the viewer's text overlay (hidden when empty)."""
    lines = legend_lines(viewer)
    overlay = canvas_overlay(viewer, "text")
    overlay.text = "\n".join(lines)
    overlay.visible = bool(lines)


def show_legend(viewer: Any) -> None:
    """Turn on the scale bar (mm) and the legend, and keep the legend in step with the result
    layers' visibility and contrast limits (each layer is connected once)."""
    # the bar's unit comes from the layers' units (napari >= 0.9): mm, as every scale here
    if hasattr(viewer.layers, "units"):
        use_mm(viewer)
    canvas_overlay(viewer, "scale_bar").visible = True
    overlay = canvas_overlay(viewer, "text")
    overlay.position = "top_left"
    overlay.font_size = OVERLAY_FONT_SIZE
    overlay.color = "white"
    for layer in _roles(viewer).values():
        if getattr(layer, "_deepreg_legend", False):
            continue
        layer.events.visible.connect(lambda *_: update_legend(viewer))
        if hasattr(layer.events, "contrast_limits"):
            layer.events.contrast_limits.connect(lambda *_: update_legend(viewer))
        layer._deepreg_legend = True  # connected; a re-run updates the layer in place
    update_legend(viewer)


__all__ = ["canvas_overlay", "in_mm", "layer_to_mm", "legend_lines", "reslice", "show_legend",
           "update_legend", "use_mm"]
