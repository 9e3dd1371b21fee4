"""The training harness: one loop that every learned method plugs into.

A learned family provides a :class:`TrainTask` (model, sampler, loss, validation) in
``training/tasks/<family>.py`` and registers it with :func:`register_task` (the tasks are found
by importing every module of :mod:`.tasks`; a task imports its family from ``methods/``, never
the reverse); :class:`Trainer` does the rest (device, seeds, gradient accumulation,
checkpoints and exact resume, validation every N steps, progress, CSV log and plot).
``napari-deepreg train METHOD --config FILE`` is :func:`cli_train`.
"""

from .batch import resample_batch, to_device
from .checkpoint import load_checkpoint
from .cli import add_train_arguments, cli_train, launch_background, train_from_args
from .config import TrainConfig, config_from_dict, config_to_dict, read_config_file
from .runlog import plot_log, read_csv, write_csv
from .task import (
    Batch,
    TrainTask,
    available_tasks,
    get_task_class,
    load_trained_model,
    register_task,
)
from .trainer import Trainer, TrainResult, learning_rate

__all__ = [
    "Batch",
    "TrainConfig",
    "TrainResult",
    "TrainTask",
    "Trainer",
    "add_train_arguments",
    "available_tasks",
    "cli_train",
    "config_from_dict",
    "config_to_dict",
    "get_task_class",
    "launch_background",
    "learning_rate",
    "load_checkpoint",
    "load_trained_model",
    "plot_log",
    "read_config_file",
    "read_csv",
    "register_task",
    "resample_batch",
    "to_device",
    "train_from_args",
    "write_csv",
]
