"""Time and Dice of the learned models with and without test-time refinement on the 3D sample.

    python -m benchmarks.time_refine --models semantic_bspline_3d avsm_3d --threads 1 2 \
        --repeats 3 [--set refine_iterations=20 ...]

Each model runs through ``pipeline.register`` on the bundled ``brain3d`` pair (83x99x81 at
2 mm) with labels, on the CPU, the never-worse guard off (the figures are the method's own).
Printed per model and thread count: the median over ``repeats`` of the method's wall time (the
pipeline's ``runtime_s``: estimate + warp) and of its process CPU time, Dice after, fold % and
SDlogJ. Wall times on a shared machine include waiting for the cores: compare medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from napari_deepreg.fields import parse_assignments
from napari_deepreg.methods import get_method
from napari_deepreg.pipeline import register, run_to_end
from napari_deepreg.sample import load_sample


def measure(model: str, config: dict[str, Any], threads: int, repeats: int) -> dict[str, Any]:
    """Median wall / CPU seconds and the figures of ``repeats`` runs of ``model``."""
    pair = load_sample("brain3d")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    walls, cpus, last = [], [], None
    try:
        for _ in range(repeats):
            cpu = time.process_time()
            last = run_to_end(register(
                pair["fixed"], pair["moving"], method=model, config=config,
                fixed_labels=pair["fixed_labels"], moving_labels=pair["moving_labels"],
                device="cpu", hausdorff=False, guard=False,
            ))
            cpus.append(time.process_time() - cpu)
            walls.append(last.metrics["runtime_s"])
    finally:
        torch.set_num_threads(before)
    m = last.metrics
    return {"model": model, "config": config, "threads": threads,
            "wall_s": round(statistics.median(walls), 2),
            "cpu_s": round(statistics.median(cpus), 2),
            "walls": [round(w, 2) for w in walls], "dice_before": round(m["dice_before"], 4),
            "dice_after": round(m["dice_after"], 4), "fold_percent": m["fold_percent"],
            "sdlogj": round(m["sdlogj"], 4)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.time_refine",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["semantic_bspline_3d", "avsm_3d"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="config values (default: refine=true)")
    args = parser.parse_args(argv)
    for model in args.models:
        config = {"refine": True,
                  **parse_assignments(get_method(model).config_class, args.set, model)}
        for threads in args.threads:
            print(json.dumps(measure(model, config, threads, args.repeats)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
