"""Register a cohort on Dask: :func:`run_batch`, the one driver behind the API and the CLI.

Pairs finished by an earlier run with the same method, parameters and files are skipped (their
figures are read back from their folders), the others are sent to Dask workers as one task each
(:func:`~.task.register_pair`); when all have come back the cohort's tables and plot are written.

Cluster: a ``LocalCluster`` of worker processes on this machine by default (loopback only), or an
existing ``dask.distributed`` scheduler. Each task sets torch's intra-op threads so that workers
x threads per worker x torch threads does not exceed the cores: registration is CPU-bound torch
code, and oversubscribed cores make every worker slower. With ``gpus``, each task asks for the
resource ``GPU=1`` so a worker runs one task per GPU it declares.

Faults: a pair's own failure (bad input, a write refused) comes back as a ``failed`` outcome;
a worker that dies mid-task (killed, out of memory) makes Dask run the task again on another
worker, up to ``distributed.scheduler.allowed-failures`` times, then the pair is recorded as
failed (``KilledWorker``). Results are gathered as they come, so no finished pair depends on a
worker staying alive, and its folder is complete on disk before its task returns.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..volume import InputError
from .cohort import COHORT_PNG, check_cohort_folder, plot_cohort, write_cohort_tables
from .pairs import Pair
from .task import FAILED, BatchJob, PairOutcome, PointsReader, finished_outcome, register_pair

logger = logging.getLogger(__name__)
# memory a 3D registration worker should have, for the default number of local workers
_WORKER_MEMORY = 3 * 2**30


@dataclass(frozen=True)
class ClusterPlan:
    """How a local cluster divides the machine: workers x threads x torch threads <= cores."""

    workers: int
    threads_per_worker: int
    torch_threads: int
    cores: int


def machine_cores() -> int:
    """The cores this process may use (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def plan_cluster(tasks: int, workers: int | None = None, threads_per_worker: int | None = None,
                 torch_threads: int | None = None, gpus: int = 0,
                 cores: int | None = None, memory: int | None = None) -> ClusterPlan:
    """Workers, Dask threads per worker and torch threads per task for a local cluster.

    Defaults: one task at a time per worker; with ``gpus`` one worker per GPU, else half the
    cores as workers (torch parallelises well inside a task up to a few threads) but no more
    than the tasks or than the available memory allows at 3 GiB a worker; torch threads fill
    the cores left per task.
    """
    import psutil

    cores = cores or machine_cores()
    memory = memory if memory is not None else psutil.virtual_memory().available
    threads = max(1, threads_per_worker or 1)
    if workers is None:
        workers = gpus if gpus else max(1, min(cores // 2, memory // _WORKER_MEMORY))
        workers = max(1, min(workers, max(tasks, 1)))
    if workers < 1:
        raise InputError(f"workers must be at least 1, not {workers}")
    per_task = torch_threads or max(1, cores // (workers * threads))
    return ClusterPlan(workers, threads, per_task, cores)


@dataclass
class CohortResult:
    """What :func:`run_batch` did: one outcome per pair (input order) and the files written."""

    outcomes: list[PairOutcome]
    out_dir: Path
    tables: list[Path]
    plot: Path | None
    dashboard: str | None = None

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[PairOutcome]:
        return [o for o in self.outcomes if o.status == FAILED]


def _precheck(pair: Pair, job: BatchJob) -> PairOutcome | None:
    """A failed outcome if the pair's folder cannot take its outputs (found before any work)."""
    from ..io import check_output_folder

    sure = [k for k in job.what if k not in ("affine", "labels_csv", "warped_labels")]
    try:
        check_output_folder(job.folder(pair), sure, overwrite=job.overwrite)
    except InputError as error:
        return PairOutcome(pair.name, job.folder(pair), FAILED, " ".join(str(error).split()))
    return None


def _start_client(plan: ClusterPlan, scheduler: str | None, gpus: int) -> tuple[Any, Any]:
    """``(client, cluster)``: a client of ``scheduler``, or of a new local cluster (loopback)."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(
        n_workers=plan.workers, threads_per_worker=plan.threads_per_worker, processes=True,
        host="127.0.0.1", dashboard_address="127.0.0.1:8787", silence_logs=logging.ERROR,
        resources={"GPU": 1} if gpus else None,
    )
    return Client(cluster), cluster


def cluster_torch_threads(client: Any) -> int:
    """Torch threads per task on a running cluster: on each host, its cores divided by the
    Dask threads of its workers; the smallest over the hosts (at least 1)."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    threads: dict[str, int] = {}
    for worker in workers.values():
        threads[worker["host"]] = threads.get(worker["host"], 0) + int(worker["nthreads"])
    cores = {workers[address]["host"]: count
             for address, count in client.run(machine_cores).items() if address in workers}
    shares = [max(1, cores.get(host, 1) // max(n, 1)) for host, n in threads.items()]
    return min(shares, default=1)


def dashboard_link(client: Any) -> str | None:
    """The Dask dashboard's address, or None when it is not served (bokeh not installed)."""
    try:
        import bokeh  # noqa: F401 - the dashboard needs it
    except ImportError:
        return None
    return client.dashboard_link


def _gather(client: Any, todo: Sequence[Pair], job: BatchJob, gpus: int,
            task: Callable[[Pair, BatchJob], PairOutcome],
            done: Callable[[PairOutcome], None]) -> None:
    """Submit one task per pair and hand each outcome to ``done`` as it comes back."""
    from distributed import as_completed

    run_id = uuid.uuid4().hex[:8]  # keys unique on a shared scheduler
    futures = {
        client.submit(task, pair, job, key=f"napari-deepreg-{pair.name}-{run_id}", pure=False,
                      resources={"GPU": 1} if gpus else None): pair
        for pair in todo
    }
    try:
        for future in as_completed(futures):
            pair = futures[future]
            try:
                outcome = future.result()
            except Exception as error:  # noqa: BLE001 - KilledWorker, a lost scheduler...
                message = " ".join(str(error).split())
                outcome = PairOutcome(pair.name, job.folder(pair), FAILED,
                                      f"{type(error).__name__}: {message}")
            future.release()  # the outcome is here and the files on disk: nothing to keep
            done(outcome)
    finally:
        client.cancel([f for f in futures if not f.done()])


def run_batch(
    pairs: Iterable[Pair],
    out_dir: str | os.PathLike,
    method: str = "instance_opt",
    params: dict[str, Any] | None = None,
    *,
    device: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    torch_threads: int | None = None,
    scheduler: str | None = None,
    gpus: int = 0,
    report: bool = True,
    hausdorff: bool = True,
    overwrite: bool = False,
    read_points: PointsReader | None = None,
    label_names: dict[int, str] | None = None,
    on_outcome: Callable[[PairOutcome], None] | None = None,
    log: Callable[[str], None] | None = None,
    task: Callable[[Pair, BatchJob], PairOutcome] = register_pair,
) -> CohortResult:
    """Register every pair on Dask; one output folder per pair, then the cohort table and plot.

    Args:
        pairs: :class:`~.pairs.Pair` s (``read_pairs_csv``, ``pairs_from_pattern``,
            ``pairs_to_atlas``); their names must be unique.
        out_dir: the cohort folder: ``out_dir/<pair name>/`` per pair (``io.write_outputs``:
            images, field, transforms, metrics, report, ``outputs.json``), and ``cohort.csv``,
            ``cohort_labels.csv``, ``cohort.png``.
        method, params: the method id (or zoo model) and its parameter overrides (typed values
            or strings, as ``MethodSpec.make_config`` takes them); checked before any work.
        device: ``cpu`` (default), ``cuda`` (default with ``gpus``), ``auto``...
        workers, threads_per_worker, torch_threads: the local cluster (see
            :func:`plan_cluster`); torch threads also apply on an external cluster.
        scheduler: address of a running ``dask.distributed`` scheduler instead of a local
            cluster (its workers need napari-deepreg and access to the files).
        gpus: GPUs per machine: tasks ask for ``GPU=1`` each (workers of an external cluster
            must be started with ``--resources GPU=1``); a local cluster gets one worker per GPU.
        report: write each pair's ``report.png``; ``hausdorff``: also HD95 / ASSD.
        overwrite: replace files of an output's name that no ``outputs.json`` lists (the
            cohort files and each pair's); without it they are refused before any work.
        read_points: reads a landmark CSV (``napari_deepreg.cli.read_points_csv``, which the
            CLI passes); pairs with landmarks fail without one.
        label_names: ``{label: name}`` for the plot.
        on_outcome: called in this process with each pair's outcome (skipped ones first).
        log: receives one line per event (cluster, dashboard); default: this module's logger.
        task: the per-pair function run on the workers (tests wrap it to inject faults).

    Returns:
        A :class:`CohortResult`; failed pairs are in it and in ``cohort.csv`` with their error.
        A rerun into the same folder skips the finished pairs and retries the failed ones.

    Raises:
        InputError: an unknown method or parameter, repeated pair names, an unusable folder.
    """
    from ..io import DEFAULT_OUTPUTS
    from ..methods import get_method

    say = log if log is not None else logger.info
    pairs = list(pairs)
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"pair names must be unique; repeated: {repeated}")
    spec = get_method(method)
    config = spec.make_config(params)  # a bad parameter fails here, before any worker starts
    out = check_cohort_folder(out_dir, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    what = tuple(k for k in DEFAULT_OUTPUTS if report or k != "report")
    plan = plan_cluster(len(pairs), workers, threads_per_worker, torch_threads, gpus)
    job = BatchJob(
        out_dir=out, method=spec.id, params=dict(params or {}),
        parameters=dataclasses.asdict(config), model=spec.model_id, what=what,
        device=device or ("cuda" if gpus else "cpu"), gpus=gpus,
        torch_threads=plan.torch_threads, hausdorff=hausdorff, read_points=read_points,
        overwrite=overwrite,
    )

    outcomes: dict[str, PairOutcome] = {}

    def record(outcome: PairOutcome) -> None:
        outcomes[outcome.name] = outcome
        if on_outcome is not None:
            on_outcome(outcome)

    todo = []
    for pair in pairs:
        known = finished_outcome(pair, job) or _precheck(pair, job)
        if known is None:
            todo.append(pair)
        else:
            record(known)
    if todo:
        say(f"{len(todo)} of {len(pairs)} pairs to register ({len(pairs) - len(todo)} done or "
            "refused before)")
    dashboard = None
    try:
        if todo:
            client, cluster = _start_client(plan, scheduler, gpus)
            try:
                where = f"scheduler {scheduler}" if scheduler else (
                    f"local cluster: {plan.workers} workers x {plan.threads_per_worker} threads "
                    f"({plan.cores} cores)")
                if scheduler and torch_threads is None:
                    job = dataclasses.replace(job, torch_threads=cluster_torch_threads(client))
                say(f"{where}; torch threads per task: {job.torch_threads}")
                dashboard = dashboard_link(client)
                say(f"dashboard: {dashboard}" if dashboard else
                    "dashboard: not served (install bokeh>=3.1 to get it)")
                _gather(client, todo, job, gpus, task, record)
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
    finally:
        # also on an interrupt: what has finished is in the table, the rest marked not run
        for pair in pairs:
            if pair.name not in outcomes:
                outcomes[pair.name] = PairOutcome(pair.name, job.folder(pair), FAILED,
                                                  "not run (the batch was interrupted)")
        ordered = [outcomes[p.name] for p in pairs]
        tables = write_cohort_tables(ordered, out, overwrite)
    plot = plot_cohort(ordered, out / COHORT_PNG, label_names, overwrite)
    if plot is None:
        from ..io import remove_output_file

        remove_output_file(out / COHORT_PNG)  # an earlier run's plot would not describe this one
    return CohortResult(ordered, out, tables, plot, dashboard)


__all__ = ["ClusterPlan", "CohortResult", "dashboard_link", "machine_cores", "plan_cluster",
           "run_batch"]
