"""Resumable checkpoints and the random-number states they carry.

A checkpoint is a ``torch.save`` of a plain dict that ``torch.load(weights_only=True)`` accepts
(numpy's RNG array is stored as a tensor), with the keys of a zoo model file (``format``,
``method``, ``config_json``, ``meta_json``, ``state_dict``) plus ``optimizer``, ``scaler``,
``step``, ``elapsed``, ``rng``, ``log`` and ``best``. So any checkpoint can be exported to the zoo
as it is.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..zoo import CHECKPOINT_FORMAT


def capture_rng(sampler_state: torch.Tensor) -> dict[str, Any]:
    """States of python's, numpy's and torch's (CPU and CUDA) generators, plus the sampler's
    (``sampler_state``: its ``get_state()`` as of the last batch consumed)."""
    # numpy's legacy global generator is what third-party code (augmentations) draws from
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "sampler": sampler_state,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], sampler: torch.Generator) -> None:
    """Inverse of :func:`capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npst = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            npst["kind"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    sampler.set_state(state["sampler"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (the legacy global generator, see above)
    torch.manual_seed(seed)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (see module docstring) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, **payload}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint` (``weights_only=True``, on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a napari-deepreg training checkpoint")
    return data
