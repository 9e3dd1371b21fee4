"""The state of one training session and how it is saved, resumed and initialised.

A :class:`RunState` holds what a checkpoint saves (model, optimiser, gradient scaler, the
sampler's generator, step, elapsed time, log, best validation) and the tools of the session.
:func:`save_run` writes ``checkpoints/step_<n>.pt`` and ``checkpoints/last.pt``;
:func:`restore_run` loads one back, refusing a checkpoint of another method or other method
settings; :func:`initialise_from` starts a fresh run from another model's weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from .prefetch import Prefetcher
from .task import Batch, TrainTask


@dataclass
class RunState:
    """The mutable state of one training session (what a checkpoint saves, and its tools)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    sampler: torch.Generator
    val_batches: list[Batch]
    last_checkpoint: Path | None = None
    feeder: Prefetcher | None = None
    step: int = 0
    elapsed: float = 0.0
    log: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)


def resolve_resume(resume: str | Path | None, run_dir: Path) -> Path | None:
    """The checkpoint to resume from: None for ``None`` / ``""``; for ``"last"`` the run
    folder's ``checkpoints/last.pt`` if it exists (else None: start fresh); else ``resume``
    itself, which must exist (ValueError)."""
    if resume is None or resume == "":
        return None
    if str(resume) == "last":
        path = run_dir / "checkpoints" / "last.pt"
        return path if path.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} to resume from does not exist")
    return path


def initialise_from(source: str, model: nn.Module, method_id: str) -> None:
    """Load into ``model`` the weights of ``source`` (model file, checkpoint or zoo id), which
    must be a ``method_id`` model of the same architecture (ValueError otherwise)."""
    from .. import zoo

    path = Path(source)
    if path.suffix == ".pt" and path.is_file():
        data = zoo.read_model_file(path)
        method, state = data["method"], data["state_dict"]
    else:
        method = zoo.get_entry(source).method
        state = zoo.load_model(source)[1]
    if method != method_id:
        raise ValueError(f"init_from {source} is a {method!r} model, not {method_id!r}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"init_from {source}: the network's architecture differs ({err})"
        ) from None


def restore_run(path: Path, run: RunState, task: TrainTask) -> None:
    """Load a checkpoint into ``run`` (model, optimiser, scaler, RNGs, step, log, best)."""
    ckpt = load_checkpoint(path)
    if ckpt["method"] != task.method_id:
        raise ValueError(
            f"checkpoint {path} is for method {ckpt['method']!r}, not {task.method_id!r}"
        )
    saved = json.loads(ckpt["config_json"])
    ours = task.run_config_dict()
    # a setting added to the method since the checkpoint was written ran as its default
    added = {k: v for k, v in task.default_config_dict().items() if k not in saved}
    saved = added | saved
    differ = sorted(k for k in set(saved) | set(ours) if saved.get(k) != ours.get(k))
    if differ:
        raise ValueError(
            f"checkpoint {path} was trained with other method settings {differ}; resume with "
            "the method settings it was trained with"
        )
    run.model.load_state_dict(ckpt["state_dict"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scaler.load_state_dict(ckpt["scaler"])
    restore_rng(ckpt["rng"], run.sampler)
    run.step, run.elapsed = int(ckpt["step"]), float(ckpt["elapsed"])
    run.log, run.best = list(ckpt["log"]), dict(ckpt["best"])


def save_run(
    run: RunState, folder: Path, task: TrainTask, meta: Mapping[str, Any], keep: int
) -> Path:
    """Write ``folder/step_<n>.pt`` and ``folder/last.pt``, keep the newest ``keep`` step files
    (0: all); returns the path of ``last.pt``."""
    # with prefetching the generator has run ahead: save its state after the last batch
    # used, so that a resumed run draws the same next batch
    sampler_state = (
        run.feeder.state_after_last if run.feeder is not None else run.sampler.get_state()
    )
    payload = {
        "method": task.method_id,
        "config_json": json.dumps(task.run_config_dict(), sort_keys=True),
        "meta_json": json.dumps(dict(meta), sort_keys=True),
        "state_dict": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "step": run.step,
        "elapsed": run.elapsed,
        "rng": capture_rng(sampler_state),
        "log": run.log,
        "best": run.best,
    }
    path = save_checkpoint(folder / f"step_{run.step:07d}.pt", payload)
    # last.pt is a copy, not a link: it must survive the pruning below
    (folder / "last.pt.tmp").write_bytes(path.read_bytes())
    (folder / "last.pt.tmp").replace(folder / "last.pt")
    if keep:
        for old in sorted(folder.glob("step_*.pt"))[:-keep]:
            old.unlink()
    return folder / "last.pt"


__all__ = ["RunState", "initialise_from", "resolve_resume", "restore_run", "save_run"]
