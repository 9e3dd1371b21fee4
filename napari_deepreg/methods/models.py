"""Trained networks for inference: how a model file becomes a ready network, for every family.

A learned method family (``methods/<family>/``) registers a :class:`ModelFamily`: its method id,
the dataclass of its trained-model config (the ``method:`` section of a training config, stored
in every model file) and how to build the network from it. :func:`load_model` then turns a zoo
id or a model file into ``(network in eval mode, config)``: the zoo's sha256 is checked before
anything is unpickled and weights are read with ``torch.load(weights_only=True)`` (both in
:mod:`napari_deepreg.zoo`). Nothing here imports the training harness or the data loaders; the
training tasks (``training/tasks/<family>.py``) use the same families to build their networks.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ..fields import from_mapping
from ..volume import InputError


@runtime_checkable
class ModelFamily(Protocol):
    """What a learned method family tells the loader."""

    #: method id stored in the family's model files, e.g. ``"semantic_bspline"``
    method_id: str
    #: the trained-model config dataclass (architecture, working grid, losses, training data)
    config_class: type

    def build(self, config: Any) -> nn.Module:
        """The (untrained) network of ``config``, with every parameter and buffer its model
        files hold, so that their state dict loads strictly."""

    def describe(self, config: Any) -> str:
        """One line about a trained model of this family (for listings and errors)."""


@dataclass(frozen=True)
class Family:
    """A :class:`ModelFamily` made of plain values (what the family modules register)."""

    method_id: str
    config_class: type
    builder: Callable[[Any], nn.Module]
    describer: Callable[[Any], str] | None = None

    def build(self, config: Any) -> nn.Module:
        return self.builder(config)

    def describe(self, config: Any) -> str:
        if self.describer is not None:
            return self.describer(config)
        return f"{self.method_id} model ({type(config).__name__})"


_FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> ModelFamily:
    """Make ``family``'s model files loadable (a later family with the same id replaces it)."""
    if not family.method_id:
        raise ValueError("a model family needs a method_id")
    _FAMILIES[family.method_id] = family
    return family


def get_family(method_id: str) -> ModelFamily:
    """The family of ``method_id``; ``methods/<method_id>/`` is imported on first use.

    Families outside ``methods/`` (the training harness's toy task) register themselves when
    their module is imported. Raises :class:`InputError` listing the known families otherwise.
    """
    if method_id not in _FAMILIES and str(method_id).isidentifier():
        module = f"{__package__}.{method_id}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:  # a family package that is there but broken: say so
                raise
    if method_id not in _FAMILIES:
        raise InputError(
            f"no model family {method_id!r} can load this model; known: {sorted(_FAMILIES)}"
        )
    return _FAMILIES[method_id]


def read_config(family: ModelFamily, values: Any) -> Any:
    """A model file's config dict as the family's config dataclass (types coerced)."""
    if isinstance(values, family.config_class):
        return values
    return from_mapping(family.config_class, values, section="method")


def load_model(
    source: str | Path,
    zoo_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, Any]:
    """``(network in eval mode on device, its config)`` from a zoo id or a model file.

    ``source`` is a zoo model id (its file checked against the manifest's sha256) or the path
    of a ``model.pt`` / ``best_model.pt`` / training checkpoint. The network is rebuilt by its
    family from the stored config and its weights loaded strictly.
    """
    from .. import zoo

    path = Path(source)
    if path.suffix == ".pt" and path.is_file():
        digest = model_file_digest(path)  # hashed before anything is unpickled
        warnings.warn(not_zoo_note(path, digest), UserWarning, stacklevel=2)
        data = zoo.read_model_file(path)
        method, values, state = data["method"], data["config"], data["state_dict"]
    else:
        method = zoo.get_entry(str(source), zoo_dir).method
        values, state = zoo.load_model(str(source), zoo_dir)
    family = get_family(method)
    config = read_config(family, values)
    model = family.build(config)
    model.load_state_dict(state)
    return model.to(device).eval(), config


_DIGESTS: dict[tuple[str, float, int], str] = {}


def model_file_digest(path: str | Path) -> str:
    """sha256 of a model file given by path (kept per path, mtime and size)."""
    from .. import zoo

    path = Path(path)
    info = path.stat()
    key = (str(path.resolve()), info.st_mtime, info.st_size)
    if key not in _DIGESTS:
        _DIGESTS[key] = zoo.sha256_file(path)
    return _DIGESTS[key]


def not_zoo_note(path: str | Path, digest: str) -> str:
    """The sentence shown when a model file is used instead of a zoo model."""
    return (f"model file {path} (sha256 {digest}) is not a zoo model: no checksum vouches for "
            "it; it is read with weights_only (tensors only, no code)")


def model_file_notes(source: str | Path) -> list[str]:
    """``[note]`` when ``source`` is a model file rather than a zoo id, else ``[]``."""
    path = Path(source)
    if path.suffix == ".pt" and path.is_file():
        return [not_zoo_note(path, model_file_digest(path))]
    return []


_CACHE: dict[tuple[str, str, float], tuple[nn.Module, Any]] = {}
_CACHE_LOCK = threading.Lock()


def load_cached_model(
    source: str | Path, device: str | torch.device, config_class: type | None = None,
    method_id: str = "",
) -> tuple[nn.Module, Any]:
    """:func:`load_model`, kept in memory per source and device for the next call.

    A registration method calls this on every run; the weights are read (and a zoo file's
    sha256 checked) only once. A model file rewritten since (a newer training run) is read
    again. Raises :class:`InputError` when ``source`` is not a model of ``method_id`` (its
    config is not a ``config_class``); ``config_class`` None takes a model of any family.
    """
    path = Path(source)
    stamp = path.stat().st_mtime if path.suffix == ".pt" and path.is_file() else 0.0
    key = (str(source), str(device), stamp)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_model(source, device=device)
        model, config = _CACHE[key]
    if config_class is not None and not isinstance(config, config_class):
        raise InputError(f"{source} is not a {method_id} model")
    return model, config


def clear_cache() -> None:
    """Forget every cached network (after changing one's weights in place, in tests)."""
    with _CACHE_LOCK:
        _CACHE.clear()


__all__ = [
    "Family",
    "ModelFamily",
    "clear_cache",
    "get_family",
    "load_cached_model",
    "load_model",
    "model_file_digest",
    "model_file_notes",
    "read_config",
    "register_family",
]
