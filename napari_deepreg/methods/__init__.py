"""Registration methods: a registry mapping method id -> :class:`MethodSpec`.

Layout: ``instance_opt`` (optimisation, no weights); one package per learned family
(``semantic_bspline/``, ``avsm/``: ``config``, ``model``, ``losses``, ``method``), each giving a
``zoo_method_spec(entry)`` that turns its zoo models into specs; shared by the families:
``models`` (trained networks from zoo ids or files), ``working_grid`` (working resolution and
padding), ``learned`` (the estimator's checks and the zoo spec), ``refine`` (test-time
refinement), ``net_config`` (checks of the trained-model configs). Nothing here imports
``napari_deepreg.training`` or ``napari_deepreg.data``: registering needs neither.
"""

from __future__ import annotations

from .base import Estimate, MethodSpec, Progress, RegistrationResult

_REGISTRY: dict[str, MethodSpec] = {}
_LOADED = False


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry (a later spec with the same id replaces the earlier one)."""
    _REGISTRY[spec.id] = spec
    return spec


def unregister_method(method_id: str) -> None:
    """Remove ``method_id`` from the registry (no error if it is not there)."""
    _REGISTRY.pop(method_id, None)


def _load_builtin() -> None:
    from .instance_opt import SPEC

    register_method(SPEC)

    from .suits.method import SPEC as SUITS_MIND

    register_method(SUITS_MIND)

    _load_zoo_models()


def _load_zoo_models() -> None:
    """One MethodSpec per zoo model, made by its method module's ``zoo_method_spec(entry)``.

    Weights are not read here: a method loads them (sha256 first) on its first run, so listing
    methods stays cheap. A model whose method module is missing is left out with a warning.
    """
    import importlib
    import warnings

    from .. import zoo

    for entry in zoo.zoo_method_specs():
        try:
            module = importlib.import_module(f"{__name__}.{entry.method}")
            register_method(module.zoo_method_spec(entry))
        except (ImportError, AttributeError) as error:
            warnings.warn(
                f"zoo model {entry.id!r} left out: method {entry.method!r} cannot run it ({error})",
                stacklevel=2,
            )


def available_methods() -> dict[str, MethodSpec]:
    """All registered methods by id (the built-in ones and the zoo's are loaded on first use)."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
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
    "unregister_method",
]
