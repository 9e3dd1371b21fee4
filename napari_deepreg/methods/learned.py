"""What every learned method's estimator does the same way: check the pair, find the model,
bind zoo models to method specs. The family's ``method.py`` keeps only its own inference."""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Sequence
from dataclasses import field
from typing import Any

import torch
from torch import Tensor

from ..volume import InputError
from .base import Estimate, MethodSpec, Progress
from .models import model_file_notes
from .refine import maybe_refine, refine_steps, refined_affine


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


def feed_forward_estimate(
    config: Any,
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    device: torch.device | str | None,
    model_id: str | None,
    method_id: str,
    load_model: Callable[[str, torch.device], tuple[Any, Any]],
    predict_field: Callable[..., tuple[Tensor, dict[str, Any]]],
    check_model: Callable[[str, Any], None] | None = None,
) -> Generator[Progress, None, Estimate]:
    """The estimator of a family whose network predicts a displacement field in one pass.

    Checks the pair, loads the model (``config.model_file`` or the zoo's ``model_id``),
    ``check_model(source, net_config)`` if given, checks its dimensions, predicts the field
    with ``predict_field(model, net_config, fixed, moving, spacing)`` and refines it when the
    config asks; yields Progress throughout. ``info`` holds the model, its file's notes, the
    working grid and the refinement's figures.
    """
    ndim = check_pair(fixed, moving)
    dev = target_device(fixed, device)
    source = model_source(config, model_id, method_id)
    total = 2 + refine_steps(config)
    yield Progress(0, total, "loading model")
    model, net_config = load_model(source, dev)
    if check_model is not None:
        check_model(source, net_config)
    check_model_dims(source, net_config.dims, ndim)
    yield Progress(1, total, "predicting the field")
    field, info = predict_field(model, net_config, fixed.to(dev), moving.to(dev), spacing)
    info["model"] = str(source)
    info["notes"] = model_file_notes(source)  # a file, not a zoo model: its sha256
    field = yield from maybe_refine(config, fixed, moving, spacing, field, info, dev, 2, total)
    yield Progress(total, total, "done")
    return Estimate(field=field, affine=refined_affine(info), info=info)


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


__all__ = ["check_model_dims", "check_pair", "feed_forward_estimate", "learned_method_spec",
           "model_file_param", "model_source", "target_device"]
