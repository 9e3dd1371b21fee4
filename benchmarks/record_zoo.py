"""Copy a benchmark run's figures of the zoo models into the zoo manifest.

    python -m benchmarks.record_zoo results/bench/quick/results.json

Each zoo model that ran without config overrides gets ``benchmark = {"command", "date",
"cases": {case: {figure: value}}}`` from that run (its earlier figures are replaced), so that
``napari-deepreg zoo list -v`` shows what the model measured and how to measure it again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FIGURES = ("dice_before", "dice_after", "hd95_after", "epe_mm", "fold_percent", "sdlogj",
           "time_s", "cpu_s", "peak_mib")


def zoo_figures(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{model id: benchmark record}`` for every zoo model with ok rows in ``results``."""
    records: dict[str, dict[str, Any]] = {}
    for row in results.get("rows", []):
        if row.get("kind") != "zoo" or row.get("status") != "ok" or ":" in row["method"]:
            continue
        record = records.setdefault(row["method"], {
            "command": results.get("command", ""),
            "date": str(results.get("started", ""))[:10],
            "cases": {},
        })
        record["cases"][row["case"]] = {
            k: round(float(row[k]), 4) for k in FIGURES if row.get(k) is not None
        }
    return records


def record(results: dict[str, Any], zoo_dir: str | Path | None = None) -> list[str]:
    """Write the figures into the manifest; returns the model ids updated."""
    from napari_deepreg import zoo

    known = {e.id for e in zoo.list_models(zoo_dir)}
    updated = []
    for model_id, figures in zoo_figures(results).items():
        if model_id in known:
            zoo.set_benchmark(model_id, figures, zoo_dir=zoo_dir)
            updated.append(model_id)
    return updated


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.record_zoo",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="results.json of a benchmark run")
    parser.add_argument("--zoo-dir", default=None, help="zoo folder (default the package's)")
    args = parser.parse_args(argv)
    updated = record(json.loads(args.results.read_text()), args.zoo_dir)
    print("updated: " + (", ".join(updated) if updated else "no zoo model in that run"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
