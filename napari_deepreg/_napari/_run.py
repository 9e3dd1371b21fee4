"""One registration run as the widget's worker does it: the job, and the generator it runs.

:func:`run_job` drives :func:`napari_deepreg.pipeline.register` (which checks the input, brings
it to the fixed grid and runs the method) and turns any error into a :class:`RunFailure`, so the
GUI thread reports it as exactly one notification. It knows nothing of Qt: napari's
``thread_worker`` wraps it, and a test can drive it with ``pipeline.run_to_end``.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..result import Progress, RegistrationResult
from ..volume import Volume

logger = logging.getLogger(__name__)


@dataclass
class RegistrationJob:
    """Everything one run needs, copied out of the layers on the GUI thread.

    Points are ``(K, D)`` physical coordinates in mm, array axis order.
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
    """Generator: the pipeline's Progress, then a RegistrationResult or a :class:`RunFailure`.

    Bad input (shapes, NaN, constant images, labels or points that do not fit, a method that
    does not take this dimensionality) is refused by the pipeline before any heavy work, so
    such a failure comes back within milliseconds of the start.
    """
    from ..pipeline import register

    try:
        result = yield from register(
            job.fixed,
            job.moving,
            method=job.method,
            config=job.config,
            fixed_labels=job.fixed_labels,
            moving_labels=job.moving_labels,
            fixed_points=job.fixed_points,
            moving_points=job.moving_points,
            device=job.device,
        )
    except Exception as exc:  # reported on the GUI thread as one notification
        logger.exception("registration failed")
        return RunFailure(failure_message(exc), exc)
    return result


__all__ = ["RegistrationJob", "RunFailure", "failure_message", "run_job"]
