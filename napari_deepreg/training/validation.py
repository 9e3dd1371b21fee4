"""Validation during training: held-out pairs drawn once from fixed seeds, their mean figures,
and which row improves on the best one so far.

Validation pairs come from :data:`VAL_SEED` whatever the training seed, so runs with different
seeds are compared on the same pairs; drawing and evaluating them happens inside
``torch.random.fork_rng``, so validation never perturbs the training randomness.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .batch import to_device
from .task import Batch, TrainTask

# Validation pairs come from these seeds whatever the training seed.
VAL_SEED = 987_654
# training-split validation pairs (task.train_validation_pairs()) from these
TRAIN_VAL_SEED = 876_543
#: batch key marking a training-split validation pair (its figures are logged as val_train_*)
SPLIT_KEY = "_validation_split"


def as_float(value: Any) -> float:
    """A Python float of a number or a one-element tensor (detached)."""
    return float(value.detach()) if isinstance(value, Tensor) else float(value)


def validation_batches(task: TrainTask, count: int) -> list[Batch]:
    """``count`` batches of one validation pair, pair ``i`` drawn from seed ``VAL_SEED + i``,
    then ``task.train_validation_pairs()`` training-split pairs (seeds ``TRAIN_VAL_SEED + i``,
    marked with :data:`SPLIT_KEY`)."""
    batches = []
    with torch.random.fork_rng(devices=[]):
        for i in range(count):
            gen = torch.Generator().manual_seed(VAL_SEED + i)
            batches.append(task.sample("val", 1, gen))
        for i in range(task.train_validation_pairs() if count else 0):
            gen = torch.Generator().manual_seed(TRAIN_VAL_SEED + i)
            batch = task.sample("train", 1, gen)
            batch[SPLIT_KEY] = "train"
            batches.append(batch)
    return batches


def validate(
    task: TrainTask, model: nn.Module, batches: list[Batch], device: torch.device
) -> dict[str, float]:
    """Mean of ``task.validate`` over ``batches``, keys prefixed with ``val_`` (``val_train_``
    for training-split pairs, with ``val_gap_dice`` = train minus held-out Dice when both
    have a ``dice``).

    Non-finite figures (e.g. a Dice of a label absent from a pair) are left out of their mean.
    The model is evaluated in eval mode without gradients and left in the mode it was in.
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    was_training = model.training
    model.eval()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        for batch in batches:
            prefix = "train_" if batch.get(SPLIT_KEY) == "train" else ""
            batch = {k: v for k, v in batch.items() if k != SPLIT_KEY}
            figures = task.validate(model, to_device(batch, device))
            for k, v in figures.items():
                v = as_float(v)
                if math.isfinite(v):
                    sums[prefix + k] = sums.get(prefix + k, 0.0) + v
                    counts[prefix + k] = counts.get(prefix + k, 0) + 1
    model.train(was_training)
    out = {f"val_{k}": sums[k] / counts[k] for k in sums}
    if "val_dice" in out and "val_train_dice" in out:
        out["val_gap_dice"] = out["val_train_dice"] - out["val_dice"]
    return out


def improves(best: Mapping[str, float], value: float, mode: str) -> bool:
    """Whether ``value`` beats ``best["value"]`` (``mode`` ``"max"`` or ``"min"``); anything
    beats an empty ``best``."""
    return (
        not best
        or (mode == "max" and value > best["value"])
        or (mode == "min" and value < best["value"])
    )


__all__ = ["SPLIT_KEY", "TRAIN_VAL_SEED", "VAL_SEED", "as_float", "improves", "validate",
           "validation_batches"]
