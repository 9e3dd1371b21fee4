"""Cohort throughput on Dask: pairs per minute with 1 vs 2 local workers, and memory per worker.

    python -m benchmarks.batch                    # 6 pairs, 1 then 2 workers, prints the figures
    python -m benchmarks.batch --pairs 4 --workers 1 2 4 --json batch.json

The cohort is ``--pairs`` copies of the bundled 3D pair (``sample_data/brain3d_*``, 2 mm, about
83x99x81, with labels) registered by ``instance_opt`` with a cheap but real setting (2 levels,
10 iterations, no affine stage: a real deformable registration in a few seconds). Each setting
runs :func:`napari_deepreg.batch.run_batch` into a fresh folder on its own ``LocalCluster``
(threads per worker 1; torch threads per task = cores // workers, the default plan).

Figures per setting: ``wall_s`` (the whole call: cluster start, registrations, writes, cohort
table and plot), ``cluster_s`` (until the cluster was up), ``pairs_per_min`` over the time after
the cluster was up (what a long cohort sees), ``pairs_per_min_total`` over the whole call, and
``peak_mb`` per worker (the worker process's peak resident memory, read by each task with
``getrusage``). The machine's load average at the start and end is printed: on a shared machine
other processes take cores too, so compare settings within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PARAMS = {"levels": 2, "iterations": 10, "affine_first": False}


def cohort_csv(folder: Path, copies: int) -> Path:
    """A pair list of ``copies`` rows, each the bundled 3D pair with its labels."""
    from napari_deepreg.sample import sample_files

    files = sample_files("brain3d")
    lines = ["name,fixed,moving,fixed_labels,moving_labels"]
    for i in range(1, copies + 1):
        lines.append(",".join([f"pair-{i}", *(str(files[k]) for k in (
            "fixed", "moving", "fixed_labels", "moving_labels"))]))
    path = folder / "pairs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(copies: int, workers: int, report: bool = True) -> dict[str, Any]:
    """One batch of ``copies`` pairs on a new local cluster of ``workers`` workers."""
    from napari_deepreg.batch import read_pairs_csv, run_batch

    marks: dict[str, float] = {}

    def log(line: str) -> None:
        if line.startswith("local cluster"):
            marks.setdefault("cluster_up", time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        pairs = read_pairs_csv(cohort_csv(Path(tmp), copies))
        start = time.perf_counter()
        result = run_batch(pairs, Path(tmp) / "out", "instance_opt", PARAMS, workers=workers,
                           threads_per_worker=1, report=report, log=log)
        wall = time.perf_counter() - start
    failed = [f"{o.name}: {o.error}" for o in result.failed]
    if failed:
        raise RuntimeError("pairs failed: " + "; ".join(failed))
    cluster = marks.get("cluster_up", start) - start
    peaks: dict[str, float] = {}
    for o in result.outcomes:
        peaks[o.worker] = max(peaks.get(o.worker, 0.0), o.peak_mb or 0.0)
    runtimes = [o.summary["runtime_s"] for o in result.outcomes]
    return {
        "workers": workers,
        "pairs": copies,
        "wall_s": round(wall, 1),
        "cluster_s": round(cluster, 1),
        "pairs_per_min": round(60 * copies / (wall - cluster), 2),
        "pairs_per_min_total": round(60 * copies / wall, 2),
        "task_s_mean": round(sum(o.wall_s for o in result.outcomes) / copies, 1),
        "registration_s_mean": round(sum(runtimes) / copies, 1),
        "peak_mb": sorted(round(v) for v in peaks.values()),
        "dice_after_mean": round(sum(o.summary["metrics"]["dice_after"]
                                     for o in result.outcomes) / copies, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6, help="copies of the bundled pair")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-report", action="store_true", help="skip each pair's report.png")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    from napari_deepreg.batch.run import machine_cores

    load_start = os.getloadavg()
    rows = [measure(args.pairs, n, report=not args.no_report) for n in args.workers]
    load_end = os.getloadavg()
    print(f"{machine_cores()} cores; load average (1, 5, 15 min) at start {load_start}, "
          f"at end {tuple(round(v, 2) for v in load_end)}")
    for row in rows:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps({"cores": machine_cores(), "load_start": load_start,
                                         "load_end": load_end, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":  # the guard also keeps Dask's spawned workers from rerunning this
    raise SystemExit(main())
