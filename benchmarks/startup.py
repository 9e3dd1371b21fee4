"""The command line's overhead: what a ``napari-deepreg register`` call costs beyond its method.

    python -m benchmarks.startup            # 3 repeats of each variant, prints the figures

A fresh interpreter runs the CLI on the bundled 2 mm brain pair (``sample_data/brain3d_*``, with
labels) with the cheapest ``instance_opt`` setting (one level, one step, no affine stage). The
process's wall clock minus the method's own runtime (``runtime_s`` of the ``metrics.json`` it
wrote: the method, the warp at native resolution and the Jacobian) is the overhead: starting
Python, imports, reading the files, the metrics, writing the outputs and the PNG report. Two
variants: ``all outputs`` (the defaults: HD95 and report.png) and ``lean`` (``--no-report
--no-hausdorff``). Each figure is the median of ``repeats`` runs; on a shared machine they vary by
a second or more, so compare them within one run.

Not in the overhead although a fresh process pays it: ``instance_opt``'s first ``torch.optim``
optimiser imports ``torch._dynamo`` (about 1 s with torch 2.13), inside the method's runtime.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
CHEAPEST = ["--method", "instance_opt", "--param", "levels=1", "--param", "iterations=1",
            "--param", "affine_first=false"]
VARIANTS: dict[str, list[str]] = {"all outputs": [], "lean": ["--no-report", "--no-hausdorff"]}


def register_argv(out: str | os.PathLike, extra: Sequence[str] = ()) -> list[str]:
    """The ``register`` arguments of the measurement (bundled pair, cheapest setting)."""
    pair = [SAMPLE / f"brain3d_{name}.nii.gz" for name in ("fixed", "moving")]
    labels = ["--fixed-labels", str(SAMPLE / "brain3d_fixed_labels.nii.gz"),
              "--moving-labels", str(SAMPLE / "brain3d_moving_labels.nii.gz")]
    return ["register", *map(str, pair), *labels, *CHEAPEST, "--device", "cpu", "-q",
            "--overwrite", "--out", str(out), *extra]


def time_cli(argv: Callable[[Path], list[str]], python: str = sys.executable,
             env: dict[str, str] | None = None) -> dict[str, float]:
    """One ``napari-deepreg`` call in a fresh interpreter, ``argv(out_folder)`` its arguments:
    ``{"wall_s", "runtime_s"}`` (the method's runtime from the ``metrics.json`` it wrote)."""
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with tempfile.TemporaryDirectory(prefix="cli-time-") as tmp:
        out = Path(tmp) / "out"
        command = [python, "-m", "napari_deepreg.cli", *argv(out)]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"napari-deepreg register failed: {done.stderr.strip()}")
        runtime = json.loads((out / "metrics.json").read_text())["runtime_s"]
    return {"wall_s": wall, "runtime_s": runtime}


def time_register(extra: Sequence[str] = (), python: str = sys.executable) -> dict[str, float]:
    """One CLI call in a fresh interpreter: ``{"wall_s", "runtime_s", "overhead_s"}``."""
    timing = time_cli(lambda out: register_argv(out, extra), python)
    return {**timing, "overhead_s": timing["wall_s"] - timing["runtime_s"]}


def measure_overhead(repeats: int = 3, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Median wall, method runtime and overhead (s) of each variant over ``repeats`` calls."""
    figures: dict[str, Any] = {}
    for name, extra in VARIANTS.items():
        runs = [time_register(extra) for _ in range(repeats)]
        figures[name] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        figures[name]["runs"] = runs
        log(f"  CLI {name:<12} wall {figures[name]['wall_s']:.2f} s, method "
            f"{figures[name]['runtime_s']:.2f} s, overhead {figures[name]['overhead_s']:.2f} s "
            f"(median of {repeats})")
    return {
        "command": "napari-deepreg " + " ".join(register_argv("OUT")).replace(str(ROOT) + "/", ""),
        "variants": {name: " ".join(extra) or "(defaults)" for name, extra in VARIANTS.items()},
        "repeats": repeats,
        "figures": figures,
    }


def markdown_section(overhead: dict[str, Any]) -> list[str]:
    """Lines of the report's "CLI overhead" section (empty when there was no measurement)."""
    if not overhead:
        return []
    lines = [
        "## CLI overhead", "",
        "Wall clock of a `napari-deepreg register` process on the bundled 2 mm brain pair minus "
        "the method's own runtime (`runtime_s` in its metrics.json), median of "
        f"{overhead['repeats']} runs: `{overhead['command']}`", "",
        "| variant | flags | wall s | method s | overhead s |", "|---|---|---|---|---|",
    ]
    for name, fig in overhead["figures"].items():
        lines.append(f"| {name} | {overhead['variants'][name]} | {fig['wall_s']:.2f} | "
                     f"{fig['runtime_s']:.2f} | {fig['overhead_s']:.2f} |")
    return [*lines, ""]


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print("\n".join(markdown_section(measure_overhead(args.repeats))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
