"""What a learned method gives the training loop: its model, its data sampler, its loss.

A method subclasses :class:`TrainTask` in ``training/tasks/<family>.py`` and registers it::

    @register_task
    class SemanticBSplineTask(TrainTask):
        method_id = "semantic_bspline"
        config_class = SemanticBSplineNetConfig   # the trained-model config
        default_train = {"lr": 1e-3, "steps": 3000}

        def build_model(self, config): ...        # optional: the family's network by default
        def sample(self, split, batch_size, generator): ...   # -> batch dict
        def loss(self, model, batch): ...         # -> (total, {"sim": ..., "reg": ...})
        def validate(self, model, batch): ...     # -> {"dice": ..., "fold_percent": ...}

Batch keys (a convention so that helpers such as :func:`resample_batch` and the methods agree):
``fixed``, ``moving`` ``(N, C, *S)`` float images; ``fixed_labels``, ``moving_labels``
``(N, 1, *S)`` integer label maps; ``field`` ``(N, D, *S)`` true displacement in mm (pull-back, on
the fixed grid); ``spacing`` a tuple in mm; anything else is the method's own business. Tensors are
moved to the training device by the trainer.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .config import config_from_dict, config_to_dict

Batch = dict[str, Any]


class TrainTask(ABC):
    """A method's training recipe. ``self.config`` is the method config (a dataclass instance).

    Randomness: :meth:`sample` must draw only from ``generator`` (a CPU ``torch.Generator``) so
    that runs are reproducible and a resumed run continues with exactly the same pairs; model
    randomness (dropout, random crops inside ``loss``) may use torch's global RNG, whose state is
    saved in checkpoints too.
    """

    #: method id as in the methods registry, e.g. ``"semantic_bspline"``
    method_id: ClassVar[str] = ""
    #: the method's config dataclass (fields: architecture, loss weights, working resolution...)
    config_class: ClassVar[type | None] = None
    #: TrainConfig settings this method prefers (file and command line still win)
    default_train: ClassVar[dict[str, Any]] = {}
    #: name of the config field holding the working grid shape (used by ``--working-shape``)
    resolution_field: ClassVar[str] = "working_shape"

    def __init__(self, config: Any = None) -> None:
        if self.config_class is None:
            self.config = dict(config or {})
        elif config is None:
            self.config = self.config_class()
        elif isinstance(config, self.config_class):
            self.config = config
        elif dataclasses.is_dataclass(config) and not isinstance(config, type):
            # e.g. a model file's family config for a task whose config extends it
            self.config = config_from_dict(
                self.config_class, dataclasses.asdict(config), section="method"
            )
        else:
            self.config = config_from_dict(self.config_class, config, section="method")

    # -- what every method implements -----------------------------------------------------------

    def build_model(self, config: Any) -> nn.Module:
        """The network for ``config``: by default its family's (``methods.models``), the same
        that inference builds from a model file. Override to add training-only set-up."""
        from ..methods.models import get_family

        return get_family(self.method_id).build(config)

    @abstractmethod
    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        """A batch of ``batch_size`` pairs from ``split`` (``"train"`` or ``"val"``).

        ``"val"`` must draw from data held out of ``"train"`` (other subjects, other slices);
        the trainer calls it once per validation pair with a fixed generator.
        """

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Mapping[str, Any]]:
        """``(total, terms)``: the scalar to minimise and its named parts (logged separately)."""

    # -- optional hooks ---------------------------------------------------------------------------

    def setup(self, device: torch.device) -> None:  # noqa: B027  (optional hook)
        """Called once before training (fetch or cache data, precompute atlases...)."""

    def validate(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        """Validation figures for one held-out batch (called under ``torch.no_grad``).

        The default reports the loss terms; methods should report ``dice`` (mean label Dice
        after registration) so the trainer can keep the best model.
        """
        total, terms = self.loss(model, batch)
        out = {"loss": float(total)}
        out.update({k: float(v) for k, v in terms.items()})
        return out

    def parameters(self, model: nn.Module) -> Any:
        """What the optimiser updates (all trainable parameters by default; may return groups)."""
        return [p for p in model.parameters() if p.requires_grad]

    def train_validation_pairs(self) -> int:
        """Training-split pairs validated with the held-out ones (logged as ``val_train_*``:
        the generalisation gap); 0 by default."""
        return 0

    def info(self) -> dict[str, Any]:
        """Facts for the model file and the zoo entry.

        Keys (all optional): ``dims`` (list of ints the model accepts), ``modality``,
        ``working_resolution`` (e.g. ``"96x112x96 @ 2 mm"``), ``training_data`` (a sentence).
        """
        return {}

    # -- helpers ----------------------------------------------------------------------------------

    def run_config_dict(self) -> dict[str, Any]:
        """The whole method config as a JSON-serialisable dict (checkpoints, ``config.json``:
        what a resumed run must match)."""
        return config_to_dict(self.config)

    def config_dict(self) -> dict[str, Any]:
        """What a model file stores as its config: the fields inference rebuilds the network
        from (by default the whole config, :meth:`run_config_dict`)."""
        return self.run_config_dict()

    def default_config_dict(self) -> dict[str, Any]:
        """The method's default config as :meth:`run_config_dict` writes it (``{}`` without a
        class)."""
        return {} if self.config_class is None else config_to_dict(self.config_class())


# ----------------------------------------------------------------------------- trained models


def load_trained_model(
    source: str | Path,
    zoo_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, Any]:
    """``(model in eval mode on device, method config)`` from a zoo id or a model file.

    :func:`napari_deepreg.methods.models.load_model` after importing the training tasks, so
    that families defined with their task (the toy task) load too.
    """
    from ..methods import models

    _import_task_modules()
    return models.load_model(source, zoo_dir, device)


def load_cached_model(
    source: str | Path, device: str | torch.device, config_class: type, method_id: str
) -> tuple[nn.Module, Any]:
    """:func:`napari_deepreg.methods.models.load_cached_model` (tasks imported first)."""
    from ..methods import models

    _import_task_modules()
    return models.load_cached_model(source, device, config_class, method_id)


# ----------------------------------------------------------------------------- registry

_TASKS: dict[str, type[TrainTask]] = {}


def register_task(cls: type[TrainTask]) -> type[TrainTask]:
    """Class decorator: make ``cls`` trainable as ``napari-deepreg train <cls.method_id>``."""
    if not cls.method_id:
        raise ValueError(f"{cls.__name__} needs a method_id to be registered")
    _TASKS[cls.method_id] = cls
    return cls


def _import_task_modules() -> None:
    """Import every module of ``napari_deepreg.training.tasks`` so their tasks register."""
    from . import tasks

    for mod in pkgutil.iter_modules(tasks.__path__):
        try:
            importlib.import_module(f"{tasks.__name__}.{mod.name}")
        except ImportError:
            # a method whose optional dependency is missing is simply not trainable here
            continue


def available_tasks() -> dict[str, type[TrainTask]]:
    """All trainable methods by id."""
    _import_task_modules()
    return dict(_TASKS)


def get_task_class(method_id: str) -> type[TrainTask]:
    """The task class of ``method_id``; a ValueError lists the trainable methods otherwise."""
    if method_id not in _TASKS:
        _import_task_modules()
    if method_id not in _TASKS:
        raise ValueError(
            f"method {method_id!r} has no training task; trainable methods: {sorted(_TASKS)}"
        )
    return _TASKS[method_id]
