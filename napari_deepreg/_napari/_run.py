"""One registration run as the widget's worker does it: the job, and the generator it runs.

:func:`run_job` drives :func:`napari_deepreg.pipeline.register` (which checks the input, brings
it to the fixed grid and runs the method) and turns any error into a :class:`RunFailure`, so the
GUI thread reports it as exactly one notification. It knows nothing of Qt: napari's
``thread_worker`` wraps it, and a test can drive it with ``pipeline.run_to_end``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..result import Progress, RegistrationResult
from ..volume import Volume

logger = logging.getLogger(__name__)

T = TypeVar("T")

# a worker forwards a progress report at most this often (s). A method reports every iteration
# (over 200 a second for instance_opt on the 2D sample); each report is a signal to the Qt
# thread, which then takes the GIL from the worker: with every report passed on (and drawn), a
# 2D run took 2-3x its time without Qt (benchmarks/gui_time.py). The end of each phase
# (step == total) always goes through; Cancel is seen at the next report passed on.
PROGRESS_INTERVAL_S = 0.1


def throttled(gen: Generator[Progress, None, T], interval: float = PROGRESS_INTERVAL_S
              ) -> Generator[Progress, None, T]:
    """``gen``'s reports, at most one per ``interval`` seconds (the first, and each phase's
    last, always), then its return value."""
    last = -float("inf")
    while True:
        try:
            progress = next(gen)
        except StopIteration as stop:
            return stop.value
        now = time.perf_counter()
        done = isinstance(progress, Progress) and progress.step >= progress.total
        if done or now - last >= interval:
            last = now
            yield progress


@dataclass
class RegistrationJob:
    """Everything one run needs, copied out of the layers on the GUI thread.

    Points are ``(K, D)`` physical coordinates in mm, array axis order. ``submitted`` is the
    ``time.perf_counter()`` at which the user pressed Run (None: not known), from which the
    worker's start-up is timed.
    """

    fixed: Volume
    moving: Volume
    method: str
    config: Any
    device: str
    fixed_labels: Volume | None = None
    moving_labels: Volume | None = None
    fixed_points: np.ndarray | None = None
    moving_points: np.ndarray | None = None
    submitted: float | None = None


@dataclass
class RunFailure:
    """What the worker returns instead of raising, so the GUI shows exactly one notification.

    (A worker that raises would also be reported by napari itself, and superqt treats a
    RuntimeError from a generator as "worker deleted" and drops it.)
    """

    message: str
    exception: BaseException


def failure_message(exc: BaseException) -> str:
    """One line for the user: the sentence of an InputError / ValueError, else the error type."""
    if isinstance(exc, ValueError):
        return str(exc)
    return f"registration failed ({type(exc).__name__}): {exc}"


def run_job(job: RegistrationJob) -> Generator[Progress, None, RegistrationResult | RunFailure]:
    """Generator: the pipeline's Progress (:func:`throttled`), then a RegistrationResult or a
    :class:`RunFailure`.

    Bad input (shapes, NaN, constant images, labels or points that do not fit, a method that
    does not take this dimensionality) is refused by the pipeline before any heavy work, so
    such a failure comes back within milliseconds of the start.
    """
    began = time.perf_counter()
    from ..pipeline import register

    try:
        result = yield from throttled(register(
            job.fixed,
            job.moving,
            method=job.method,
            config=job.config,
            fixed_labels=job.fixed_labels,
            moving_labels=job.moving_labels,
            fixed_points=job.fixed_points,
            moving_points=job.moving_points,
            device=job.device,
        ))
    except Exception as exc:  # reported on the GUI thread as one notification
        logger.exception("registration failed")
        return RunFailure(failure_message(exc), exc)
    if job.submitted is not None:  # the thread pool's start-up and this module's imports
        result.timings = {"worker start": began - job.submitted, **result.timings}
    return result


# phases of the method's own runtime (what the CLI prints as "runtime") and the rest
METHOD_PHASES = ("method", "guard", "warp")


def time_split(timings: Mapping[str, float], total: float | None = None) -> str:
    """Where a run's seconds went, on one line: ``"method 0.41 s, warp 0.03 s, metrics 0.12 s,
    layers 0.35 s, worker start 0.01 s, prepare 0.00 s"``; the method's phases first, then the
    rest by size. Phases under 5 ms are left out; ``total`` (the click-to-layers wall clock)
    adds an ``other`` entry for what no phase accounts for (e.g. Qt events)."""
    items = [(name, timings[name]) for name in METHOD_PHASES if name in timings]
    rest = sorted(((k, v) for k, v in timings.items() if k not in METHOD_PHASES),
                  key=lambda kv: -kv[1])
    if total is not None:
        rest.append(("other", total - sum(timings.values())))
    return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in [*items, *rest]
                     if seconds >= 0.005)


__all__ = ["METHOD_PHASES", "PROGRESS_INTERVAL_S", "RegistrationJob", "RunFailure",
           "failure_message", "run_job", "throttled", "time_split"]
