"""What every learned method's estimator does the same way: check the pair, find the model,
bind zoo models to method specs. The family's ``method.py`` keeps only its own inference."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import field
from typing import Any

import torch
from torch import Tensor

from ..volume import InputError
from .base import MethodSpec


def model_file_param() -> Any:
    """The ``model_file`` field of every learned method's inference config."""
    return field(
        default="",
        metadata={"help": "Optional path of a model file (a training run's best_model.pt) to "
                  "use instead of the zoo weights; empty uses the zoo model."},
    )


def check_pair(fixed: Tensor, moving: Tensor) -> int:
    """The number of spatial dims of a ``(1, 1, *S)`` 2D/3D pair on one grid (ValueError else)."""
    ndim = fixed.ndim - 2
    if fixed.shape != moving.shape or fixed.shape[:2] != (1, 1) or ndim not in (2, 3):
        raise ValueError(
            f"fixed and moving must both be (1, 1, *spatial) 2D/3D, got {tuple(fixed.shape)} and "
            f"{tuple(moving.shape)}"
        )
    return ndim


def model_source(config: Any, model_id: str | None, method_id: str) -> str:
    """The model to run: ``config.model_file`` when set, else the bound zoo id."""
    source = getattr(config, "model_file", "") or model_id
    if not source:
        raise InputError(f"no {method_id} model given: pick a zoo model or set model_file")
    return str(source)


def target_device(fixed: Tensor, device: torch.device | str | None) -> torch.device:
    """``device`` as a torch device (the device of ``fixed`` when None)."""
    return torch.device(device) if device is not None else fixed.device


def check_model_dims(source: str, model_dims: int, ndim: int) -> None:
    """InputError when a ``model_dims``-D model is given a ``ndim``-D pair."""
    if model_dims != ndim:
        raise InputError(f"model {source} registers {model_dims}D images, not {ndim}D")


def learned_method_spec(
    entry: Any,
    estimate: Callable[..., Any],
    config_class: type,
    title: str,
    description: str,
) -> MethodSpec:
    """The :class:`MethodSpec` of zoo model ``entry`` (its id bound as ``model_id``).

    Args:
        entry: a zoo manifest entry (``id``, ``dims``, ``description``).
        estimate: the family's estimator, taking a ``model_id`` keyword.
        config_class: the inference config the widget and the CLI set.
        title: the title shown in the method chooser.
        description: used when the entry has none.
    """
    return MethodSpec(
        id=entry.id,
        title=title,
        config_class=config_class,
        estimate=functools.partial(estimate, model_id=entry.id),
        dims=tuple(int(d) for d in entry.dims),
        description=entry.description or description,
        model_id=entry.id,
    )


__all__ = ["check_model_dims", "check_pair", "learned_method_spec", "model_file_param",
           "model_source", "target_device"]
