"""The training loop that every learned method plugs into.

``Trainer(task, TrainConfig(...)).fit()`` trains ``task``'s model on its sampler with its loss and
writes a run folder::

    <out_dir>/config.json           resolved settings and the command that started the run
    <out_dir>/log.csv               step, loss, loss terms, lr, seconds, val_<metric>
    <out_dir>/training.png          loss and validation curves
    <out_dir>/checkpoints/last.pt   newest resumable checkpoint (+ step_<n>.pt, the last few)
    <out_dir>/model.pt              final config + state_dict (export with zoo.export_to_zoo)
    <out_dir>/best_model.pt         the model with the best validation ``best_metric``

Reproducibility: one seed drives python, numpy, torch and a dedicated CPU generator for the
sampler; a checkpoint stores all their states, the optimiser and the gradient scaler, so a run
resumed from step k ends in exactly the state of an uninterrupted run (on the same device and
thread count). Validation runs inside ``torch.random.fork_rng`` on pairs drawn once from fixed
seeds, so it never perturbs training randomness.

Here: the loop, one optimiser step, the learning-rate schedule, the records and the signal
handling; the held-out pairs, their figures and the best-model test are in :mod:`.validation`;
the session state, checkpoints, resume and ``init_from`` in :mod:`.run_state`.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.device import resolve_device
from ..zoo import save_model_file
from .batch import to_device
from .checkpoint import seed_everything
from .config import TrainConfig
from .prefetch import Prefetcher
from .run_state import RunState, initialise_from, resolve_resume, restore_run, save_run
from .runlog import ProgressDisplay, format_figures, plot_log, write_csv
from .task import TrainTask
from .validation import as_float, improves, validate, validation_batches

# Offset of the sampler's seed from the global one, so data and initialisation draw unrelated
# streams.
SAMPLER_SEED_OFFSET = 7_919


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` leaves behind."""

    run_dir: Path
    step: int
    log: list[dict[str, float]]
    model_path: Path
    checkpoint: Path | None
    best_path: Path | None = None
    best: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False


def learning_rate(config: TrainConfig, step: int) -> float:
    """Learning rate of (1-based) ``step``: linear warm-up, then constant or cosine decay."""
    base = config.lr
    warm = config.warmup_steps
    if warm and step <= warm:
        return base * step / warm
    if config.lr_schedule == "cosine":
        t = min(1.0, max(0.0, (step - warm) / max(1, config.steps - warm)))
        ratio = config.min_lr_ratio
        return base * (ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * t)))
    return base


def make_optimizer(params: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``config.optimizer`` names (Adam, AdamW, else SGD with momentum 0.9) over
    ``params`` (parameters or parameter groups), at the base rate ``config.lr``."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


class Trainer:
    """Trains ``task`` under ``config``; see the module docstring for the run folder.

    Args:
        task: the method's :class:`TrainTask` (its ``config`` is the method config).
        config: training settings.
        command: the command line that started the run (recorded for the zoo entry).
        stream: where progress goes (stderr by default).
    """

    def __init__(
        self, task: TrainTask, config: TrainConfig, command: str = "", stream: Any = None
    ) -> None:
        self.task = task
        self.config = config
        self.command = command
        self.stream = stream
        self.device = resolve_device(config.device)
        self.run_dir = Path(config.out_dir or f"runs/{task.method_id}")
        self.amp = bool(config.amp and self.device.type == "cuda")
        self._stop = False
        self._plotted: tuple[int, Any] = (-1, None)

    # -- public -----------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the current step, save a checkpoint and return from :meth:`fit`."""
        self._stop = True

    def fit(self, resume: str | Path | None = None) -> TrainResult:
        """Train to ``config.steps`` steps, from scratch or from a checkpoint.

        Args:
            resume: a checkpoint path, ``"last"`` (the run folder's ``checkpoints/last.pt``
                if it exists, else start fresh) or None (start fresh).
        """
        threads = torch.get_num_threads()
        if self.config.num_threads:
            # on a few shared cores, small nets often run much faster on one thread
            torch.set_num_threads(self.config.num_threads)
        try:
            return self._fit(resume)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, resume: str | Path | None) -> TrainResult:
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ckpt_path = resolve_resume(resume, self.run_dir)
        self._stop = False

        seed_everything(cfg.seed)
        sampler = torch.Generator().manual_seed(cfg.seed + SAMPLER_SEED_OFFSET)
        self.task.setup(self.device)
        model = self.task.build_model(self.task.config).to(self.device)
        run = RunState(
            model=model,
            optimizer=make_optimizer(self.task.parameters(model), cfg),
            scaler=torch.amp.GradScaler(self.device.type, enabled=self.amp),
            sampler=sampler,
            val_batches=validation_batches(self.task, cfg.val_pairs),
            last_checkpoint=ckpt_path,
        )
        if ckpt_path is not None:
            # after build_model: its random initialisation must not shift the restored RNGs
            restore_run(ckpt_path, run, self.task)
        elif cfg.init_from:
            initialise_from(cfg.init_from, model, self.task.method_id)
        self._write_config(run.step)
        progress = ProgressDisplay(
            cfg.steps, initial=run.step, mode=cfg.progress, stream=self.stream
        )
        if ckpt_path is not None:
            progress.write(f"resumed from {ckpt_path} at step {run.step}")
        if cfg.amp and not self.amp:
            progress.write(f"amp is CUDA-only; training in float32 on {self.device.type}")
        if cfg.prefetch:
            run.feeder = Prefetcher(self.task, cfg.batch_size, sampler, cfg.prefetch)
        try:
            with self._signals(progress):
                self._loop(run, progress)
        finally:
            progress.close()
            if run.feeder is not None:
                run.feeder.close()
        interrupted = self._stop and run.step < cfg.steps
        if interrupted:
            progress.write(
                f"stopped at step {run.step}; resume with --resume {run.last_checkpoint}"
            )
        model_path = self.run_dir / "model.pt"
        self._save_model(model_path, model, run.step)
        write_csv(run.log, self.run_dir / "log.csv")
        self._plot(run.log)
        best_path = self.run_dir / "best_model.pt"
        return TrainResult(
            run_dir=self.run_dir,
            step=run.step,
            log=run.log,
            model_path=model_path,
            checkpoint=run.last_checkpoint,
            best_path=best_path if best_path.exists() else None,
            best=run.best,
            interrupted=interrupted,
        )

    def _loop(self, run: RunState, progress: ProgressDisplay) -> None:
        """Steps until ``config.steps`` or a stop request, logging, validating, checkpointing."""
        cfg = self.config
        window: dict[str, float] = {}
        window_steps = 0
        t0 = time.perf_counter() - run.elapsed
        # the rate shown includes validation and checkpoints: it is what the ETA must use
        t_session, first_step = time.perf_counter(), run.step
        if run.step == 0 and cfg.val_at_start and run.val_batches:
            run.log.append({"step": 0, **self._validate(run)})
            self._update_best(run, run.log[-1])
        while run.step < cfg.steps and not self._stop:
            run.step += 1
            step = run.step
            for k, v in self._train_step(run).items():
                window[k] = window.get(k, 0.0) + v
            window_steps += 1
            last = step == cfg.steps or self._stop
            at_val = (last or (cfg.val_every > 0 and step % cfg.val_every == 0)) and bool(
                run.val_batches
            )
            at_ckpt = last or (cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0)
            if step % cfg.log_every == 0 or at_val or at_ckpt:
                now = time.perf_counter()
                row: dict[str, float] = {"step": step}
                row.update({k: v / window_steps for k, v in window.items()})
                row["lr"] = learning_rate(cfg, step)
                row["seconds"] = now - t0
                window, window_steps = {}, 0
                if at_val:
                    row.update(self._validate(run))
                    self._update_best(run, row)
                run.log.append(row)
                write_csv(run.log, self.run_dir / "log.csv")
                shown = {k: v for k, v in row.items() if k not in ("step", "lr", "seconds")}
                progress.update(step, shown, (now - t_session) / (step - first_step))
            if at_ckpt:
                run.elapsed = time.perf_counter() - t0
                run.last_checkpoint = save_run(
                    run,
                    self.run_dir / "checkpoints",
                    self.task,
                    self._meta(run.step),
                    cfg.keep_checkpoints,
                )
            if at_ckpt or at_val:
                self._plot(run.log)

    # -- one step ---------------------------------------------------------------------------------

    def _train_step(self, run: RunState) -> dict[str, float]:
        """One optimiser step over ``grad_accum`` micro-batches; the mean of each loss term."""
        cfg, step = self.config, run.step
        model, optimizer, scaler = run.model, run.optimizer, run.scaler
        lr = learning_rate(cfg, step)
        for group in optimizer.param_groups:
            # groups may carry their own scale of the base rate (e.g. a slower backbone)
            group["lr"] = lr * group.get("lr_scale", 1.0)
        model.train()
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for _ in range(cfg.grad_accum):
            raw = (
                run.feeder.next()
                if run.feeder is not None
                else self.task.sample("train", cfg.batch_size, run.sampler)
            )
            batch = to_device(raw, self.device)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                total, terms = self.task.loss(model, batch)
            value = as_float(total)
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"the loss became {value} at step {step} (terms: {format_figures(terms)}); "
                    f"lower train.lr (now {cfg.lr:g}) or resume from the last checkpoint"
                )
            scaler.scale(total / cfg.grad_accum).backward()
            sums["loss"] = sums.get("loss", 0.0) + value
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + as_float(v)
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            params = [p for g in optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        return {k: v / cfg.grad_accum for k, v in sums.items()}

    # -- validation -------------------------------------------------------------------------------

    def _validate(self, run: RunState) -> dict[str, float]:
        """Mean validation figures over the held-out pairs, keys prefixed with ``val_``."""
        return validate(self.task, run.model, run.val_batches, self.device)

    # -- best model -------------------------------------------------------------------------------

    def _update_best(self, run: RunState, row: Mapping[str, float]) -> None:
        """Save ``best_model.pt`` when ``row`` improves on ``config.best_metric``."""
        key = self.config.best_metric
        if not key or key not in row:
            return
        value = row[key]
        if not improves(run.best, value, self.config.best_mode):
            return
        self._save_model(self.run_dir / "best_model.pt", run.model, run.step)
        run.best = {"value": float(value), "step": float(run.step)}

    # -- records ----------------------------------------------------------------------------------

    def _save_model(self, path: Path, model: nn.Module, step: int) -> None:
        """Write a model file (method, method config, weights, provenance) for the zoo."""
        save_model_file(
            path, self.task.method_id, self.task.config_dict(), model.state_dict(),
            self._meta(step),
        )

    def _meta(self, step: int) -> dict[str, Any]:
        meta = {k: v for k, v in self.task.info().items() if v not in (None, "")}
        if "dims" in meta:
            meta["dims"] = [int(d) for d in meta["dims"]]
        meta["training_command"] = self.command
        meta["train_config"] = asdict(self.config)
        meta["step"] = step
        return meta

    def _write_config(self, step: int) -> None:
        record = {
            "method": self.task.method_id,
            "command": self.command,
            "started_at_step": step,
            "device": str(self.device),
            "train": asdict(self.config),
            "method_config": self.task.run_config_dict(),
            "info": self.task.info(),
        }
        (self.run_dir / "config.json").write_text(json.dumps(record, indent=2, default=str) + "\n")

    def _plot(self, log: list[dict[str, float]]) -> None:
        # a plot takes ~0.5 s: skip it when nothing was logged since the last one
        if (len(log), log[-1] if log else None) == self._plotted:
            return
        plot_log(log, self.run_dir / "training.png", title=f"{self.task.method_id}: {self.run_dir}")
        self._plotted = (len(log), log[-1] if log else None)

    # -- stopping ---------------------------------------------------------------------------------

    def _signals(self, progress: ProgressDisplay) -> _SignalGuard:
        return _SignalGuard(self, progress)


class _SignalGuard:
    """SIGINT/SIGTERM ask for a clean stop (checkpoint, then return); a second Ctrl-C aborts.

    Only the main thread may install signal handlers; elsewhere (a GUI worker) this does nothing
    and :meth:`Trainer.request_stop` is the way to stop.
    """

    def __init__(self, trainer: Trainer, progress: ProgressDisplay) -> None:
        self.trainer = trainer
        self.progress = progress
        self.saved: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.trainer._stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.trainer.request_stop()
        self.progress.write(
            f"received {signal.Signals(signum).name}: stopping after this step and saving a "
            "checkpoint (Ctrl-C again to abort at once)"
        )

    def __enter__(self) -> _SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
