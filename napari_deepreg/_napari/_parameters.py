"""A method's settings as magicgui widgets, built from the config layer's description.

:func:`parameter_widgets` reads :func:`napari_deepreg.fields.describe` (name, type, default,
help, bounds, choices: the same metadata the CLI's flags and the validation read), so a setting
declared once with :func:`napari_deepreg.fields.param` shows up here with its tooltip and bounds.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FloatSpinBox,
    LineEdit,
    LiteralEvalLineEdit,
    SpinBox,
    Widget,
)

from ..fields import ParamInfo, describe
from ..volume import InputError

# Qt spin boxes hold 32-bit ints; floats without bounds get a wide finite range
_INT_RANGE = (-(2**31) + 1, 2**31 - 1)
_FLOAT_RANGE = (-1e9, 1e9)


def _float_step(default: float) -> float:
    """A spin-box step one decade below the default's magnitude (0.01 for 0)."""
    if not default or not math.isfinite(default):
        return 0.01
    return min(1.0, 10.0 ** (math.floor(math.log10(abs(default))) - 1))


def _decimals(*values: float) -> int:
    """Decimals that show each value to two significant digits (2 to 8)."""
    needed = 2
    for v in values:
        if v and math.isfinite(v) and abs(v) < 1:
            needed = max(needed, 1 - math.floor(math.log10(abs(v))))
    return min(needed, 8)


def parameter_widget(info: ParamInfo) -> Widget:
    """One magicgui widget for one setting.

    A setting with ``choices`` -> combo box; bool -> check box; int / float -> spin boxes
    bounded by ``min`` / ``max``; str -> line edit; anything else (tuples...) -> a line edit read
    as a Python literal. ``help`` becomes the tooltip.
    """
    common: dict[str, Any] = {"name": info.name, "label": info.label, "tooltip": info.help or None}
    value = info.default
    if info.choices is not None:
        return ComboBox(choices=list(info.choices), value=value, **common)
    if info.type is bool:
        return CheckBox(value=bool(value), **common)
    if info.type is int:
        lo = _INT_RANGE[0] if info.min is None else int(info.min)
        hi = _INT_RANGE[1] if info.max is None else int(info.max)
        return SpinBox(value=int(value), min=lo, max=hi, **common)
    if info.type is float:
        lo = _FLOAT_RANGE[0] if info.min is None else float(info.min)
        hi = _FLOAT_RANGE[1] if info.max is None else float(info.max)
        widget = FloatSpinBox(step=_float_step(float(value)), **common)
        # enough decimals for the default and the bounds, set before them (Qt rounds)
        widget.native.setDecimals(_decimals(float(value), lo))
        widget.min, widget.max, widget.value = lo, hi, float(value)
        return widget
    if info.type is str:
        return LineEdit(value=str(value), **common)
    return LiteralEvalLineEdit(value=repr(value), **common)


def parameter_widgets(config_class: type) -> list[Widget]:
    """One widget per setting of a method's config dataclass (:func:`parameter_widget`)."""
    return [parameter_widget(info) for info in describe(config_class)]


def parameter_values(widgets: Sequence[Widget]) -> dict[str, Any]:
    """The values of :func:`parameter_widgets`, by setting name (literals parsed).

    Raises InputError for a literal field that does not parse; the method's config checks the
    rest (types, bounds, choices) when it is built.
    """
    values = {}
    for w in widgets:
        value = w.value
        if isinstance(w, LiteralEvalLineEdit) and isinstance(value, str):
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError) as exc:
                raise InputError(f"parameter {w.name!r} is not a valid value: {value!r}") from exc
        values[w.name] = value
    return values


__all__ = ["parameter_values", "parameter_widget", "parameter_widgets"]
