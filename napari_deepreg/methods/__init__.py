"""Registration methods: a registry mapping method id -> :class:`MethodSpec`."""

from __future__ import annotations

from .base import Estimate, MethodSpec, Progress, RegistrationResult

_REGISTRY: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry (a later spec with the same id replaces the earlier one)."""
    _REGISTRY[spec.id] = spec
    return spec


def _load_builtin() -> None:
    from . import instance_opt  # noqa: F401  (registers itself)


def available_methods() -> dict[str, MethodSpec]:
    """All registered methods by id."""
    if not _REGISTRY:
        _load_builtin()
    return dict(_REGISTRY)


def get_method(method_id: str) -> MethodSpec:
    """The method called ``method_id``; a ValueError names the available ones otherwise."""
    methods = available_methods()
    if method_id not in methods:
        raise ValueError(f"unknown method {method_id!r}; available: {sorted(methods)}")
    return methods[method_id]


__all__ = [
    "Estimate",
    "MethodSpec",
    "Progress",
    "RegistrationResult",
    "available_methods",
    "get_method",
    "register_method",
]
