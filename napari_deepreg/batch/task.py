"""What a Dask worker does with one pair: read, register, write its folder; and what counts as done.

:func:`register_pair` never raises for a problem of the pair (a missing file, a NaN image, a
failed write): it returns a :class:`PairOutcome` with status ``failed`` and the message, so one
bad pair does not stop the cohort and Dask does not retry what would fail again. A worker that
dies (killed, out of memory) is another matter: Dask reschedules its task on another worker.

A pair is *done* when its folder holds a complete manifest (``io.read_manifest``) written by the
same method, model, parameters and input files, and every file it lists is there
(:func:`finished_outcome`); a rerun skips it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..volume import InputError
from .pairs import Pair

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
# the per-run figures file write_outputs writes (io.OUTPUTS["metrics_json"]); read back on skip
_METRICS_KEY = "metrics_json"

PointsReader = Callable[[Path, int], np.ndarray]


@dataclass(frozen=True)
class BatchJob:
    """Everything a worker needs besides the pair; sent once with every task (small).

    Attributes:
        out_dir: the cohort's output folder; a pair writes into ``out_dir / pair.name``.
        method: the method id; ``params`` its overrides (typed values, as ``make_config`` takes).
        parameters: the full config as the manifest records it (JSON values), to tell a
            finished pair of this run from one of another run.
        model: the method's zoo model id (None for instance optimisation).
        what: keys of ``io.OUTPUTS`` to write.
        device: ``auto``, ``cpu``, ``cuda``...; with ``gpus`` > 1 and ``cuda``, a worker of a
            local GPU cluster takes ``cuda:<its index modulo gpus>``.
        torch_threads: intra-op threads for torch in a worker (None leaves torch's default).
        hausdorff: also compute HD95 / ASSD.
        overwrite: replace files in a pair's folder that no earlier ``outputs.json`` lists.
        read_points: reads a landmark CSV into ``(K, D)`` physical mm (array axis order);
            needed only by pairs with landmarks.
    """

    out_dir: Path
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    what: tuple[str, ...] = ()
    device: str = "cpu"
    gpus: int = 0
    torch_threads: int | None = None
    hausdorff: bool = True
    read_points: PointsReader | None = None
    overwrite: bool = False

    def folder(self, pair: Pair) -> Path:
        return Path(self.out_dir) / pair.name


@dataclass
class PairOutcome:
    """How one pair went.

    Attributes:
        name: the pair's name; ``folder`` its output folder.
        status: ``ok`` (registered now), ``skipped`` (done by an earlier run) or ``failed``.
        error: why it failed (one line), else ``""``.
        summary: the run's figures as ``metrics.json`` holds them (``qa.result_summary``:
            ``metrics``, ``labels``, ``runtime_s``...), or None when it failed.
        wall_s: seconds the task took (reading, registering, writing); 0 for a skipped pair.
        peak_mb: the worker process's peak resident memory so far, in MiB (None if unknown).
        worker: the Dask worker that ran it ("" if none).
    """

    name: str
    folder: Path
    status: str
    error: str = ""
    summary: dict[str, Any] | None = None
    wall_s: float = 0.0
    peak_mb: float | None = None
    worker: str = ""


def _jsonable(value: Any) -> Any:
    """``value`` as the manifest would hold it after a JSON round trip (tuples -> lists)."""
    from ..qa import to_jsonable

    return json.loads(json.dumps(to_jsonable(value)))


def finished_outcome(pair: Pair, job: BatchJob) -> PairOutcome | None:
    """A ``skipped`` outcome if an earlier run finished ``pair`` with this job's settings.

    Finished: a complete manifest by the same method, model, parameters and inputs, listing
    every output this job writes, all present, and a readable figures file. Anything else
    (another method, a changed parameter or file, an interrupted write) means the pair is run.
    """
    from ..io import OUTPUTS, read_manifest

    folder = job.folder(pair)
    manifest = read_manifest(folder) if folder.is_dir() else None
    if not manifest or manifest.get("complete") is not True:
        return None
    same = (
        manifest.get("method") == job.method
        and manifest.get("model") == job.model
        and manifest.get("parameters") == _jsonable(job.parameters)
        and manifest.get("inputs") == _jsonable(pair.inputs())
    )
    files = manifest["files"]
    # outputs a result may lack (no labels, no affine stage) are not required to be listed
    optional = {OUTPUTS[k] for k in ("warped_labels", "affine", "labels_csv")}
    wanted = {OUTPUTS[k] for k in job.what} - optional
    if not same or not wanted <= set(files) or OUTPUTS[_METRICS_KEY] not in files:
        return None
    if not all((folder / name).is_file() for name in files):
        return None
    try:
        summary = json.loads((folder / OUTPUTS[_METRICS_KEY]).read_text())
    except (OSError, ValueError):
        return None
    metrics = summary.get("metrics", {}) if isinstance(summary, dict) else {}
    if job.hausdorff and "dice_after" in metrics and "hd95_after" not in metrics:
        return None  # measured without HD95 before; this run wants it
    return PairOutcome(pair.name, folder, SKIPPED, summary=summary)


def _peak_memory_mb() -> float | None:
    """This process's peak resident set size in MiB (Unix), else its current one (psutil)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0
    except (ImportError, OSError):
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def _worker() -> Any:
    """The Dask worker running this task, or None outside one."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def _device(job: BatchJob, worker: Any) -> str:
    """``job.device``, with one GPU per worker of a local GPU cluster (workers named 0..n-1)."""
    if job.gpus > 1 and job.device == "cuda" and worker is not None:
        try:
            return f"cuda:{int(worker.name) % job.gpus}"
        except (TypeError, ValueError):
            pass  # a worker of an external cluster: its own CUDA_VISIBLE_DEVICES decides
    return job.device


def _read_inputs(pair: Pair, job: BatchJob) -> dict[str, Any]:
    """The pair's files read into Volumes / point arrays (InputError names the file's role)."""
    from ..io import read_volume

    data: dict[str, Any] = {}
    for role in ("fixed", "moving", "fixed_labels", "moving_labels"):
        path = getattr(pair, role)
        if path is None:
            data[role] = None
            continue
        try:
            data[role] = read_volume(path)
        except InputError as error:
            raise InputError(f"{role.replace('_', ' ')}: {error}") from None
    for role in ("fixed_points", "moving_points"):
        path = getattr(pair, role)
        if path is None:
            data[role] = None
        elif job.read_points is None:
            raise InputError(f"{role.replace('_', ' ')} given but the job has no points reader")
        else:
            data[role] = job.read_points(path, data["fixed"].ndim)
    return data


def register_pair(pair: Pair, job: BatchJob) -> PairOutcome:
    """Register one pair and write its folder through ``io.write_outputs``; runs on a worker.

    Returns an ``ok`` outcome with the figures, or a ``failed`` one with the message (bad input,
    a file that cannot be written, an error in the method); never raises for those.
    """
    start = time.perf_counter()
    worker = _worker()
    folder = job.folder(pair)
    try:
        import torch

        from ..io import write_outputs
        from ..pipeline import register, run_to_end
        from ..qa import result_summary

        if job.torch_threads:
            torch.set_num_threads(job.torch_threads)
        data = _read_inputs(pair, job)
        result = run_to_end(register(
            data["fixed"], data["moving"], method=job.method, config=dict(job.params),
            fixed_labels=data["fixed_labels"], moving_labels=data["moving_labels"],
            fixed_points=data["fixed_points"], moving_points=data["moving_points"],
            device=_device(job, worker), hausdorff=job.hausdorff,
        ))
        notes: list[str] = []
        write_outputs(result, folder, data["fixed"], data["moving"], data["fixed_labels"],
                      what=job.what, inputs=pair.inputs(), log=notes.append,
                      overwrite=job.overwrite)
        summary = result_summary(result)
        summary["notes"] = [*summary.get("notes", []), *notes]
        status, error = OK, ""
    except Exception as exc:  # noqa: BLE001 - any failure of this pair is recorded, not raised
        summary = None
        status = FAILED
        message = " ".join(str(exc).split())
        error = message if isinstance(exc, InputError) else f"{type(exc).__name__}: {message}"
    return PairOutcome(pair.name, folder, status, error, summary,
                       wall_s=time.perf_counter() - start, peak_mb=_peak_memory_mb(),
                       worker=str(getattr(worker, "address", "")))


__all__ = ["FAILED", "OK", "SKIPPED", "BatchJob", "PairOutcome", "finished_outcome",
           "register_pair"]
