"""``napari-deepreg train METHOD --config FILE``: settings from a file, a run, a background mode.

The main CLI wires this with :func:`add_train_arguments` and :func:`train_from_args`;
``python -m napari_deepreg.training`` runs the same command on its own (the background mode
re-launches itself that way, detached, with its output in ``<run>/train.log``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .checkpoint import load_checkpoint
from .config import (
    TrainConfig,
    config_from_dict,
    merge_sections,
    parse_overrides,
    read_config_file,
)
from .task import get_task_class
from .trainer import Trainer

EXIT_INTERRUPTED = 130


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``train`` command's arguments to ``parser`` (a sub-parser of the main CLI)."""
    parser.add_argument("method", help="method id to train (e.g. semantic_bspline, toy)")
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON file with train:/method:")
    parser.add_argument("--out", metavar="DIR", help="run folder (default runs/METHOD)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="last",
        metavar="CHECKPOINT",
        help="continue from CHECKPOINT, or from the run folder's last checkpoint if none given",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.NAME=VALUE",
        help="override one setting, e.g. --set train.lr=3e-4 --set method.lambda_reg=0.5",
    )
    parser.add_argument(
        "--working-shape",
        metavar="SHAPE",
        help="train at this grid, e.g. 96x112x96 (reduced resolution trains much faster)",
    )
    parser.add_argument("--steps", type=int, help="total optimiser steps")
    parser.add_argument("--device", help="auto, cpu, cuda, mps")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--background",
        action="store_true",
        help="run detached (survives logout); progress goes to RUN/train.log",
    )
    return parser


def train_from_args(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Run :func:`cli_train` from parsed :func:`add_train_arguments` arguments."""
    return cli_train(
        args.method,
        args.config,
        out_dir=args.out,
        resume=args.resume,
        overrides=args.set,
        working_shape=args.working_shape,
        steps=args.steps,
        device=args.device,
        threads=args.threads,
        background=args.background,
        stream=stream,
    )


def _argv(
    method_id: str,
    config_path: str | Path | None,
    out_dir: str | Path | None,
    resume: str | None,
    overrides: Sequence[str],
    working_shape: str | Sequence[int] | None,
    steps: int | None,
    device: str | None,
    threads: int | None,
) -> list[str]:
    """The command-line arguments equivalent to a :func:`cli_train` call."""
    argv = [method_id]
    if config_path:
        argv += ["--config", str(config_path)]
    if out_dir:
        argv += ["--out", str(out_dir)]
    if resume:
        argv += ["--resume", str(resume)]
    for item in overrides:
        argv += ["--set", item]
    if working_shape is not None:
        shape = working_shape
        if not isinstance(shape, str):
            shape = "x".join(str(n) for n in shape)
        argv += ["--working-shape", shape]
    if steps is not None:
        argv += ["--steps", str(steps)]
    if device:
        argv += ["--device", device]
    if threads is not None:
        argv += ["--threads", str(threads)]
    return argv


def resolve_settings(
    method_id: str,
    config_path: str | Path | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: str | None = None,
    overrides: Sequence[str] = (),
    working_shape: str | Sequence[int] | None = None,
    steps: int | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> tuple[Any, TrainConfig, Path | None]:
    """``(task, train config, checkpoint to resume or None)`` for a train command.

    Settings merge, lowest first: defaults, the task's preferred settings, the checkpoint's
    settings (when resuming), the config file, ``--set`` overrides, then the explicit options.
    """
    task_cls = get_task_class(method_id)
    explicit: dict[str, dict[str, Any]] = {"train": {}, "method": {}}
    for key, value in (
        ("out_dir", out_dir),
        ("steps", steps),
        ("device", device),
        ("num_threads", threads),
    ):
        if value is not None:
            explicit["train"][key] = str(value) if key == "out_dir" else value
    if working_shape is not None:
        field = task_cls.resolution_field
        names = getattr(task_cls.config_class, "__dataclass_fields__", {})
        if field not in names:
            raise ValueError(
                f"method {method_id!r} has no '{field}' setting, so --working-shape does not "
                "apply; set its resolution with --set method.NAME=VALUE"
            )
        explicit["method"][field] = working_shape
    sections = merge_sections(
        {"train": task_cls.default_train},
        read_config_file(config_path) if config_path else None,
        parse_overrides(overrides),
        explicit,
    )
    run_dir = Path(sections["train"].get("out_dir") or f"runs/{method_id}")
    checkpoint = _find_checkpoint(resume, run_dir)
    base_train: dict[str, Any] | None = None
    base_method: dict[str, Any] | None = None
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        base_method = json.loads(ckpt["config_json"])
        base_train = json.loads(ckpt["meta_json"]).get("train_config")
        # a resumed run stays in its own folder unless told otherwise
        if base_train is not None and "out_dir" not in sections["train"]:
            sections["train"]["out_dir"] = base_train.get("out_dir") or str(run_dir)
    sections["train"].setdefault("out_dir", str(run_dir))
    train = config_from_dict(TrainConfig, sections["train"], base=base_train, section="train")
    if task_cls.config_class is not None:
        method_cfg = config_from_dict(
            task_cls.config_class, sections["method"], base=base_method, section="method"
        )
    else:
        method_cfg = {**(base_method or {}), **sections["method"]}
    return task_cls(method_cfg), train, checkpoint


def _find_checkpoint(resume: str | None, run_dir: Path) -> Path | None:
    if not resume:
        return None
    if resume == "last":
        path = run_dir / "checkpoints" / "last.pt"
        return path if path.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} to resume from does not exist")
    return path


def launch_background(
    argv: Sequence[str], run_dir: str | Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``python -m napari_deepreg.training ARGV`` detached; returns ``(process, log path)``.

    The child gets its own session (no terminal, so closing the shell or logging out does not
    stop it), appends stdout and stderr to ``<run_dir>/train.log`` and writes its pid to
    ``<run_dir>/train.pid``. ``kill PID`` (SIGTERM) makes it save a checkpoint and exit.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "train.log"
    cmd = [sys.executable, "-m", "napari_deepreg.training", *argv]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    (run_dir / "train.pid").write_text(f"{proc.pid}\n")
    return proc, log_path


def cli_train(
    method_id: str,
    config_path: str | Path | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: str | None = None,
    overrides: Sequence[str] = (),
    working_shape: str | Sequence[int] | None = None,
    steps: int | None = None,
    device: str | None = None,
    threads: int | None = None,
    background: bool = False,
    command: str | None = None,
    stream: TextIO | None = None,
) -> int:
    """Train ``method_id`` as ``napari-deepreg train`` does; returns the exit code.

    Config errors raise ValueError (the CLI prints them). Exit codes: 0 done (or launched in the
    background), 130 stopped early by a signal (a checkpoint was saved; ``--resume`` continues).

    Args:
        method_id: a trainable method (see :func:`~napari_deepreg.training.available_tasks`).
        config_path: YAML/JSON file with ``train:`` and ``method:`` sections.
        out_dir: run folder (default ``runs/<method_id>``).
        resume: checkpoint path, or ``"last"`` for the run folder's newest checkpoint.
        overrides: ``"section.name=value"`` strings.
        working_shape: the method's working grid (``"96x112x96"`` or a sequence).
        steps, device, threads: shorthands for ``train.steps``, ``train.device``,
            ``train.num_threads``.
        background: launch detached and return at once.
        command: the command line to record (default: the equivalent ``napari-deepreg train``).
    """
    out = stream or sys.stdout
    argv = _argv(
        method_id, config_path, out_dir, resume, overrides, working_shape, steps, device, threads
    )
    argv_fresh = _argv(
        method_id, config_path, out_dir, None, overrides, working_shape, steps, device, threads
    )
    task, train, checkpoint = resolve_settings(
        method_id,
        config_path,
        out_dir=out_dir,
        resume=resume,
        overrides=overrides,
        working_shape=working_shape,
        steps=steps,
        device=device,
        threads=threads,
    )
    if background:
        proc, log_path = launch_background(argv, train.out_dir)
        pid = proc.pid
        print(
            f"training {method_id} in the background: pid {pid}\n"
            f"  progress: tail -f {log_path}\n"
            f"  stop (saves a checkpoint): kill {pid}\n"
            f"  continue later: napari-deepreg train {shlex.join(argv_fresh)} --resume",
            file=out,
        )
        return 0
    # the recorded command leaves out --resume: a resumed run ends where a fresh one would
    command = command or "napari-deepreg train " + shlex.join(argv_fresh)
    result = Trainer(task, train, command=command).fit(resume=checkpoint)
    print(f"run folder: {result.run_dir} (log.csv, training.png, checkpoints/)", file=out)
    if result.best:
        print(
            f"best {train.best_metric}: {result.best['value']:.4g} at step "
            f"{int(result.best['step'])} ({result.best_path})",
            file=out,
        )
    if result.interrupted:
        print(
            f"stopped at step {result.step}; continue with --resume {result.checkpoint}", file=out
        )
        return EXIT_INTERRUPTED
    print(
        f"model: {result.model_path}\n"
        f"export: napari-deepreg zoo export {result.model_path} --id MODEL_ID",
        file=out,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m napari_deepreg.training METHOD ...``"""
    parser = add_train_arguments(
        argparse.ArgumentParser(prog="napari-deepreg train", description=__doc__.splitlines()[0])
    )
    args = parser.parse_args(argv)
    try:
        return train_from_args(args)
    except ValueError as err:
        print(f"napari-deepreg train: error: {err}", file=sys.stderr)
        return 2
