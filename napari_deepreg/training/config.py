"""Training settings, and config files (YAML or JSON) merged onto a method's defaults.

A config file has up to two sections, both optional::

    train:            # TrainConfig fields
      steps: 3000
      lr: 1.0e-3
      val_every: 200
    method:           # fields of the method's config dataclass
      working_shape: [96, 112, 96]

Precedence, lowest first: TrainConfig defaults, the task's ``default_train`` settings, the file,
then command-line overrides (``train.steps=200`` / ``method.lambda_reg=0.5``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fields import coerce, from_mapping

SECTIONS = ("train", "method")


@dataclass
class TrainConfig:
    """How to train (independent of the method).

    Attributes:
        steps: optimiser steps in total (a resumed run stops at the same total).
        lr: peak learning rate.
        batch_size: pairs per micro-batch.
        grad_accum: micro-batches accumulated per optimiser step (effective batch =
            ``batch_size * grad_accum``).
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (momentum 0.9).
        weight_decay: L2 (adam, sgd) or decoupled (adamw) weight decay.
        lr_schedule: ``"constant"`` or ``"cosine"`` (decays to ``lr * min_lr_ratio``).
        warmup_steps: linear warm-up from ``lr / warmup_steps`` to ``lr``.
        min_lr_ratio: floor of the cosine schedule as a fraction of ``lr``.
        grad_clip: clip the global gradient norm to this value (0: off).
        val_every: validate every this many steps (0: only at the end).
        val_pairs: number of held-out validation pairs (drawn once, the same at every validation).
        val_at_start: validate the untrained model at step 0 (the identity baseline in the plot).
        checkpoint_every: save a resumable checkpoint every this many steps (0: only at the end).
        keep_checkpoints: numbered checkpoints kept on disk (0: all); ``last.pt`` is always kept.
        log_every: one CSV row (means over the steps since the last row) per this many steps.
        seed: seeds python, numpy, torch and the data sampler.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.
        amp: mixed precision (float16 autocast + gradient scaling); CUDA only, ignored elsewhere.
        num_threads: torch CPU threads (0: leave torch's default). On a few shared cores a small
            net often trains several times faster on 1 thread.
        prefetch: batches drawn ahead in a background thread (0: off); overlaps data synthesis
            with the training step (worth it with a GPU; same batches either way).
        out_dir: run folder (checkpoints, log.csv, training.png, model.pt); default
            ``runs/<method id>``.
        best_metric: validation column that defines ``best_model.pt`` ("" to disable).
        best_mode: ``"max"`` or ``"min"`` for ``best_metric``.
        progress: ``"auto"`` (a tqdm bar on a terminal, plain lines otherwise), ``"bar"``,
            ``"lines"`` or ``"none"``.
        init_from: a model file, checkpoint or zoo id whose weights start a new run
            (fine-tuning: other method settings such as the working grid or the loss weights may
            differ, the network's architecture may not). Ignored when resuming.
    """

    steps: int = 1000
    lr: float = 1e-3
    batch_size: int = 1
    grad_accum: int = 1
    optimizer: str = "adam"
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0
    val_every: int = 100
    val_pairs: int = 4
    val_at_start: bool = True
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    num_threads: int = 0
    prefetch: int = 0
    out_dir: str = ""
    best_metric: str = "val_dice"
    best_mode: str = "max"
    progress: str = "auto"
    init_from: str = ""

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "grad_accum", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        nonneg = (
            "val_every",
            "val_pairs",
            "checkpoint_every",
            "keep_checkpoints",
            "warmup_steps",
            "num_threads",
            "prefetch",
        )
        for name in nonneg:
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        choices = {
            "optimizer": ("adam", "adamw", "sgd"),
            "lr_schedule": ("constant", "cosine"),
            "best_mode": ("max", "min"),
            "progress": ("auto", "bar", "lines", "none"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                value = getattr(self, name)
                raise ValueError(f"train.{name} must be one of {allowed}, got {value!r}")


# ----------------------------------------------------------------------------- dataclass <-> dict


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-serialisable dict of a config dataclass (tuples become lists) or of a mapping."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        data = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        data = dict(config)
    elif config is None:
        data = {}
    else:
        raise TypeError(f"a config must be a dataclass or a mapping, got {type(config).__name__}")
    # a round trip through JSON both checks serialisability and normalises tuples to lists
    try:
        return json.loads(json.dumps(data))
    except TypeError as err:
        raise TypeError(f"config is not JSON-serialisable: {err}") from None


# coercion and dataclass building are the config layer's (napari_deepreg.fields)
coerce_value = coerce
config_from_dict = from_mapping


# ----------------------------------------------------------------------------- files and overrides


def read_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """The ``train`` and ``method`` sections of a YAML (.yaml/.yml) or JSON file.

    Raises a ValueError naming the file for a missing file, a parse error or unknown sections.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:  # the parsers raise many types; all mean "fix the file"
        raise ValueError(f"cannot parse config file {path}: {err}") from None
    data = data or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"config file {path} must hold a mapping with sections {SECTIONS}")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ValueError(f"config file {path}: unknown section(s) {unknown}; use {SECTIONS}")
    out: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        part = data.get(section) or {}
        if not isinstance(part, Mapping):
            raise ValueError(f"config file {path}: section {section!r} must be a mapping")
        out[section] = dict(part)
    return out


def parse_overrides(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["train.steps=200", "method.levels=3"]`` -> ``{"train": {...}, "method": {...}}``.

    Values are parsed as YAML scalars/lists where possible (``[64,64]``, ``true``, ``1e-3``) and
    kept as strings otherwise; a key without a section means ``train``.
    """
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.name=value")
        key, raw = item.split("=", 1)
        section, _, name = key.strip().rpartition(".")
        section = section or "train"
        if section not in SECTIONS:
            raise ValueError(f"override {item!r}: section must be one of {SECTIONS}")
        out[section][name] = _parse_scalar(raw.strip())
    return out


def _parse_scalar(raw: str) -> Any:
    try:
        import yaml

        return yaml.safe_load(raw)
    except Exception:  # not valid YAML: keep the text (the field type decides later)
        return raw


def merge_sections(*parts: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Later parts win, key by key within each section."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for part in parts:
        for section in SECTIONS:
            out[section].update((part or {}).get(section) or {})
    return out
