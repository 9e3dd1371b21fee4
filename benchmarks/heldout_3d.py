"""Held-out 3D pairs at 2 mm: every 3D zoo model feed-forward and refined against the identity,
``instance_opt`` and the classical peers (ANTs SyN, elastix, dipy SyN), in one run.

Pairs are those of :mod:`benchmarks.heldout` (anatomy no model trained on): ``labelmap-K``,
synthetic subjects from the held-out ``mni2009c`` label maps in two independent random
contrasts with affine motion from none to large; ``unmoved-K``, the same without affine motion;
and the bundled ``brain3d`` sample (MNI 2009a, never in any training set). The two images of a
label-map pair are different "subjects", so no true field is known and there is no endpoint
error here; Dice and HD95 are over the coarse labels (L/R GM, WM, CSF; tissue classes for the
bundled pair). Every method runs through ``pipeline.register`` with its defaults (the
never-worse guard on: what a user gets); a zoo model runs once untimed first, so loading is
not timed. ``time_s`` is wall time, ``cpu_s`` the process's CPU time over all threads.

    python -m benchmarks.heldout_3d --threads 1 --out results/heldout_3d
    python -m benchmarks.heldout_3d --methods identity,semantic_bspline_3d:refine=false --pairs 2

Writes ``results.json`` (every row, the means, the environment) and ``table.md`` under ``--out``;
prints the table of means.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import heldout as _heldout
from benchmarks import heldout_2d as _heldout_2d
from benchmarks.cases import BenchCase
from napari_deepreg.volume import Volume

ZOO_3D = ("avsm_affine_3d", "avsm_3d_4mm", "avsm_3d", "semantic_bspline_3d")
DEFAULT_METHODS = ",".join(["identity", *(f"{m}:refine=false" for m in ZOO_3D), *ZOO_3D,
                            "instance_opt", "ants_syn", "elastix", "dipy_syn"])
FIGURES = ("dice_before", "dice_after", "hd95_before", "hd95_after", "fold_percent", "sdlogj",
           "time_s", "cpu_s", "peak_mib")


def as_case(pair: _heldout.HeldOutPair) -> BenchCase:
    """A held-out pair as a benchmark case (no true field: different subjects)."""
    def volume(array: np.ndarray, name: str) -> Volume:
        return Volume(np.asarray(array, np.float32), pair.spacing, (0.0,) * len(pair.spacing),
                      name=name)

    return BenchCase(name=pair.name, group="heldout", fixed=volume(pair.fixed, "fixed"),
                     moving=volume(pair.moving, "moving"),
                     fixed_labels=np.asarray(pair.fixed_labels, np.int32),
                     moving_labels=np.asarray(pair.moving_labels, np.int32),
                     description=str(pair.info.get("source", "")), meta=dict(pair.info))


def heldout_cases(pairs: int, unmoved: int, sample: bool = True) -> list[BenchCase]:
    """The label-map pairs, the unmoved pairs and (``sample``) the bundled pair."""
    held = _heldout.labelmap_pairs(pairs)
    if unmoved:
        held += _heldout.labelmap_pairs(unmoved, unmoved=True)  # as benchmarks.heldout
    if sample:
        held.append(_heldout.bundled_pair())
    return [as_case(p) for p in held]


def run(cases: Sequence[BenchCase], methods: str | Sequence[str], device: str = "cpu",
        log: Any = print) -> list[dict[str, Any]]:
    """One row per (case, method): Dice / HD95 before and after, folds, SDlogJ, seconds (the
    2D held-out run's loop, without landmarks: no true field here)."""
    return _heldout_2d.run(cases, methods, device, log, landmarks_tre=False)


def means(rows: Sequence[dict[str, Any]], sample: str = "brain3d") -> list[dict[str, Any]]:
    """Per method: the mean of each figure over its ok held-out rows (not the bundled pair),
    how many of them ended below the Dice before (``worse``), and the bundled pair's Dice."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        ok = [r for r in rows if r["method"] == method and r.get("status") == "ok"]
        held = [r for r in ok if r["case"] != sample]
        entry: dict[str, Any] = {"method": method, "pairs": len(held)}
        for key in FIGURES:
            values = [r[key] for r in held if r.get(key) is not None and math.isfinite(r[key])]
            entry[key] = float(np.mean(values)) if values else float("nan")
        entry["worse"] = sum(r["dice_after"] < r["dice_before"] - 1e-4 for r in held)
        bundled = [r["dice_after"] for r in ok if r["case"] == sample]
        entry["dice_sample"] = bundled[0] if bundled else float("nan")
        out.append(entry)
    return out


def format_table(entries: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of :func:`means`."""
    heads = ("method", "pairs", "Dice before", "Dice after", "HD95 mm", "fold %", "SDlogJ",
             "s / pair", "CPU s", "peak MiB", "worse", "bundled Dice")
    keys = ("method", "pairs", "dice_before", "dice_after", "hd95_after", "fold_percent",
            "sdlogj", "time_s", "cpu_s", "peak_mib", "worse", "dice_sample")
    digits = {"hd95_after": 2, "time_s": 2, "cpu_s": 2, "peak_mib": 0}
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for e in entries:
        cells = [f"{e[k]:.{digits.get(k, 3)}f}" if isinstance(e[k], float) else str(e[k])
                 for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.heldout_3d",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS,
                        help="comma-separated, as benchmarks.run takes them")
    parser.add_argument("--pairs", type=int, default=6, help="held-out label-map pairs")
    parser.add_argument("--unmoved", type=int, default=2, help="pairs without affine motion")
    parser.add_argument("--no-sample", action="store_true", help="skip the bundled pair")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of every tool")
    parser.add_argument("--out", type=Path, default=Path("results/heldout_3d"))
    args = parser.parse_args(argv)
    command, started = _heldout_2d.start("benchmarks.heldout_3d", argv, args.threads)
    cases = heldout_cases(args.pairs, args.unmoved, not args.no_sample)
    rows = run(cases, args.methods)
    entries = means(rows)
    table = format_table(entries)
    print(table)
    _heldout_2d.write_results(args.out, command, started, cases, rows, entries, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
