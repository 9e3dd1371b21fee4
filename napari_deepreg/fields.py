"""The one config layer: dataclass fields with metadata -> coercion, validation, help, CLI, widget.

A method's settings are a dataclass whose fields are made with :func:`param`::

    @dataclass
    class MyConfig:
        iterations: int = param(20, "Optimisation steps.", min=1, max=2000)
        similarity: str = param("lncc", "Image similarity.", choices=("lncc", "ncc"))

        def __post_init__(self) -> None:
            validate(self)

:func:`validate` converts every field to its annotated type (the text ``"false"`` is False,
``"1e3"`` is 1000), lower-cases choices, refuses NaN/Inf in float fields and checks the
``min``/``max`` bounds, raising :class:`~napari_deepreg.volume.InputError` with one sentence.
The CLI (:func:`parse_assignments`), the widget (:func:`describe`), the training configs
(:func:`coerce`) and the zoo read the same metadata, so a rule is written here once.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .volume import InputError

_TRUE = ("true", "yes", "on", "1", "y", "t")
_FALSE = ("false", "no", "off", "0", "n", "f")


def param(
    default: Any,
    help: str = "",  # noqa: A002  (the metadata key every reader knows)
    *,
    min: float | None = None,  # noqa: A002
    max: float | None = None,  # noqa: A002
    choices: Sequence[str] | None = None,
    allow_nonfinite: bool = False,
) -> Any:
    """A dataclass field with the metadata the config layer reads (see the module docstring).

    Args:
        default: the default value (tuples and other immutables only).
        help: one or two sentences for the widget's tooltip and ``napari-deepreg methods -v``.
        min, max: inclusive bounds of a number.
        choices: the allowed strings (compared lower-case).
        allow_nonfinite: accept NaN/Inf in a float field (refused by default).
    """
    meta: dict[str, Any] = {"help": help}
    if min is not None:
        meta["min"] = min
    if max is not None:
        meta["max"] = max
    if choices is not None:
        meta["choices"] = [str(c).lower() for c in choices]
    if allow_nonfinite:
        meta["allow_nonfinite"] = True
    return dataclasses.field(default=default, metadata=meta)


# ----------------------------------------------------------------------------- coercion


def coerce(value: Any, tp: Any, name: str) -> Any:
    """``value`` (from YAML/JSON, a widget or command-line text) converted to the type ``tp``.

    Handles ``X | None`` (``none``/``null`` text too), ``Literal`` choices, enums, tuples and
    lists (``"64,64,32"`` or ``"64x64x32"``), bool words (true/false/yes/no/on/off/1/0), ints
    written as ``1e3``, floats and strings. Raises ValueError naming ``name``.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))
        ):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, name)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"{name}: {value!r} fits none of {tp}")
    if origin is typing.Literal:
        for choice in args:
            try:
                if coerce(value, type(choice), name) == choice:
                    return choice
            except (TypeError, ValueError):
                continue
        raise ValueError(f"{name} must be one of {list(args)}, got {value!r}")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if value is member or str(value) in (member.name, str(member.value)):
                return member
        raise ValueError(f"{name} must be one of {[m.value for m in tp]}, got {value!r}")
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        return _coerce_sequence(value, tp, name)
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if tp is int:
        number = _number(value, name, "an integer")
        if not math.isfinite(number) or not number.is_integer():
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        return int(number)
    if tp is float:
        return _number(value, name, "a number")
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        return from_mapping(tp, value, section=name)
    return value


def _number(value: Any, name: str, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    try:
        return float(value)  # also YAML's "1e-3", which PyYAML reads as a string
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {what}, got {value!r}") from None


def _coerce_sequence(value: Any, tp: Any, name: str) -> tuple | list:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(value, str):
        text = value.strip("()[] ").replace("x", ",")  # "64,64,32" or "64x64x32"
        value = [v.strip() for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list, got {value!r}")
    if args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(args) != len(value):
            raise ValueError(f"{name} must have {len(args)} items, got {len(value)}")
        items = [coerce(v, a, name) for v, a in zip(value, args, strict=True)]
    else:
        item_tp = args[0] if args else Any
        items = [coerce(v, item_tp, name) for v in value]
    return tuple(items) if (origin is tuple or tp is tuple) else list(items)


@functools.cache
def type_hints(config_class: type) -> dict[str, Any]:
    """The resolved annotations of a config dataclass (postponed annotations included).

    Cached per class: resolving string annotations compiles them (~1 ms a registration, read
    several times per config).
    """
    return typing.get_type_hints(config_class)


def validate(obj: Any) -> None:
    """Coerce and check every field of the dataclass instance ``obj`` in place.

    Per field: conversion to the annotated type (:func:`coerce`), ``choices`` lower-cased and
    checked, floats finite unless ``allow_nonfinite``, numbers within ``min``/``max``, strings
    stripped. Raises :class:`InputError` naming the field and the value.
    """
    hints = type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        meta = f.metadata
        try:
            value = coerce(value, hints.get(f.name, Any), f.name)
        except ValueError as err:
            raise InputError(str(err)) from None
        if "choices" in meta:
            value = str(value).strip().lower()
            if value not in meta["choices"]:
                raise InputError(
                    f"{f.name} must be one of {meta['choices']}, got {getattr(obj, f.name)!r}"
                )
        if isinstance(value, str):
            value = value.strip()
        if isinstance(value, float) and not math.isfinite(value) and not meta.get(
            "allow_nonfinite"
        ):
            raise InputError(f"{f.name} must be a finite number, got {value}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = meta.get("min"), meta.get("max")
            if (low is not None and value < low) or (high is not None and value > high):
                raise InputError(f"{f.name} must be between {low} and {high}, got {value}")
        setattr(obj, f.name, value)


# ----------------------------------------------------------------------------- building configs


def from_mapping(
    config_class: type, values: Mapping[str, Any] | None, base: Any = None, section: str = ""
) -> Any:
    """``config_class`` built from ``values`` on top of ``base`` (or the class defaults).

    Values are converted to the annotated field types; an unknown name raises a ValueError that
    lists the valid ones.
    """
    values = dict(values or {})
    hints = type_hints(config_class)
    names = [f.name for f in dataclasses.fields(config_class) if f.init]
    prefix = f"{section}." if section else ""
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {[prefix + u for u in unknown]}; valid: {sorted(names)}"
        )
    if base is None:
        start: dict[str, Any] = {}
    elif isinstance(base, Mapping):
        start = dict(base)
    else:
        start = dataclasses.asdict(base)
    merged: dict[str, Any] = {}
    for name in names:
        if name in values:
            merged[name] = coerce(values[name], hints[name], prefix + name)
        elif name in start:
            merged[name] = coerce(start[name], hints[name], prefix + name)
    return config_class(**merged)


def make_config(config_class: type, values: Any = None, owner: str = "") -> Any:
    """A config of ``config_class`` from None (defaults), an instance, or a dict of overrides.

    Unknown names and bad values raise :class:`InputError` naming ``owner`` (a method id).
    """
    if values is None:
        return config_class()
    if isinstance(values, config_class):
        return values
    if not isinstance(values, Mapping):
        raise InputError(
            f"config for {owner or config_class.__name__} must be a "
            f"{config_class.__name__} or a dict, got {type(values).__name__}"
        )
    names = {f.name for f in dataclasses.fields(config_class) if f.init}
    unknown = sorted(set(values) - names)
    if unknown:
        where = f" for method {owner!r}" if owner else ""
        raise InputError(
            f"unknown parameter(s) {unknown}{where}; valid: {', '.join(sorted(names))}"
        )
    try:
        return from_mapping(config_class, values)
    except ValueError as err:
        raise InputError(str(err)) from None


def parse_assignments(
    config_class: type, items: Sequence[str], owner: str = ""
) -> dict[str, Any]:
    """``["NAME=VALUE", ...]`` (the CLI's ``--param``) -> a dict typed by the config's fields.

    Raises :class:`InputError` for a malformed item, an unknown name or a value of the wrong
    type; the final checks (bounds, choices, NaN) run when the config is built.
    """
    names = {f.name for f in dataclasses.fields(config_class) if f.init}
    hints = type_hints(config_class)
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--param {item!r} must look like NAME=VALUE")
        if name not in names:
            raise InputError(
                f"unknown parameter {name!r}"
                + (f" for method {owner!r}" if owner else "")
                + f"; valid: {', '.join(sorted(names))}"
            )
        try:
            out[name] = coerce(text.strip(), hints[name], f"parameter {name}")
        except ValueError as err:
            raise InputError(str(err)) from None
    return out


# ----------------------------------------------------------------------------- description


@dataclass(frozen=True)
class ParamInfo:
    """One setting as a user interface shows it."""

    name: str
    type: Any
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")

    def describe(self) -> str:
        """``name (type, default X, range/choices): help`` on one line."""
        tp = getattr(self.type, "__name__", str(self.type))
        extra = [tp, f"default {self.default!r}"]
        if self.choices:
            extra.append("one of " + "/".join(self.choices))
        elif self.min is not None or self.max is not None:
            extra.append(f"{self.min}..{self.max}")
        return f"{self.name} ({', '.join(extra)}): {self.help}".rstrip(": ")


def describe(config_class: type) -> list[ParamInfo]:
    """Every init field of ``config_class`` with its type, default and metadata."""
    hints = type_hints(config_class)
    defaults = config_class()
    out = []
    for f in dataclasses.fields(config_class):
        if not f.init:
            continue
        meta = f.metadata
        out.append(
            ParamInfo(
                name=f.name,
                type=hints.get(f.name, f.type),
                default=getattr(defaults, f.name),
                help=meta.get("help", ""),
                min=meta.get("min"),
                max=meta.get("max"),
                choices=tuple(meta["choices"]) if "choices" in meta else None,
            )
        )
    return out


__all__ = [
    "ParamInfo",
    "coerce",
    "describe",
    "from_mapping",
    "make_config",
    "param",
    "parse_assignments",
    "type_hints",
    "validate",
]
