"""Held-out 2D slices with a known smooth field: the 2D learned models against instance_opt and
the classical peers, in one run.

Pairs (:func:`heldout_slices`): 1 mm axial and coronal slices of anatomies no 2D model trained
on: MNI 2009a with its tissue classes (never seen by any model) and MNI 2009c with DKT (the
label-map models' validation anatomy, never trained on), built by the benchmark's own recipe
(:func:`benchmarks.cases.build_synthetic_slice`: a small random affine composed with a smooth
random SVF up to about 6 mm, then gamma, bias field and noise on the moving image), at slice
positions and seeds no other case uses. Scored like every benchmark row
(:func:`benchmarks.run.measure_field`: Dice over the labels, fold %, endpoint error inside the
brain) plus a landmark TRE (:func:`landmark_tre`): 40 synthetic landmarks on the fixed slice's
label boundaries, whose moving positions are where the known field takes them.

Methods as :func:`benchmarks.run.resolve_methods` takes them, default: identity, flownet_roi_2d
feed-forward and refined, semantic_bspline_2d feed-forward and refined, instance_opt, elastix,
ANTs SyN. Package methods run through ``pipeline.register`` with its defaults (the never-worse
guard on: what a user gets); a zoo model runs once untimed first, so its loading is not timed.

    python -m benchmarks.heldout_2d --threads 1 --out results/heldout_2d
    python -m benchmarks.heldout_2d --methods identity,flownet_roi_2d:refine=false --pairs 2

Writes ``results.json`` (every row, the per-method means, the environment) and ``table.md``
under ``--out``; prints the table of means.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import cases as _cases
from benchmarks import run as _run

#: (anatomy, plane, position along the brain, seed): positions and seeds of no other case
SLICES = (
    ("mni2009a_tissues", "axial", 0.40, 7101),
    ("mni2009a_tissues", "axial", 0.65, 7102),
    ("mni2009a_tissues", "coronal", 0.35, 7103),
    ("mni2009a_tissues", "coronal", 0.60, 7104),
    ("mni2009c_dkt", "axial", 0.45, 7105),
    ("mni2009c_dkt", "coronal", 0.65, 7106),
)
DEFAULT_METHODS = ("identity,flownet_roi_2d:refine=false,flownet_roi_2d,"
                   "semantic_bspline_2d:refine=false,semantic_bspline_2d,instance_opt,"
                   "elastix,ants_syn")
LANDMARKS = 40
FIGURES = ("dice_before", "dice_after", "epe_mm", "tre_before_mm", "tre_mm", "fold_percent",
           "sdlogj", "time_s", "cpu_s")


#: ``--contrast none``: the same pairs without the moving image's gamma, bias and noise
NO_CONTRAST_CHANGE = {"gamma": (1.0, 1.0), "bias": 0.0, "noise": 0.0}


def heldout_slices(count: int | None = None,
                   cache: str | Path | None = "results/bench/cases",
                   contrast_change: bool = True) -> list[_cases.BenchCase]:
    """The first ``count`` (all: None) pairs of :data:`SLICES`, cached like the benchmark's;
    without ``contrast_change`` the moving image keeps the fixed image's intensities."""
    out = []
    contrast = _cases._CONTRAST if contrast_change else NO_CONTRAST_CHANGE
    for anatomy, plane, position, seed in SLICES[:count]:
        name = f"heldout_{anatomy}_{plane}_{int(round(100 * position))}"
        if not contrast_change:
            name += "_same_contrast"
        spec = _cases.CaseSpec(name, "2d-slices", _cases.build_synthetic_slice,
                               dict(anatomy=anatomy, plane=plane, position=position, seed=seed,
                                    **_cases._DEFORM_2D, **contrast))
        path = _cases.case_path(spec, cache) if cache is not None else None
        if path is not None and path.is_file():
            out.append(_cases.BenchCase.load(path))
            continue
        case = spec.build(**spec.params)
        case.name = name
        case.meta = dict(case.meta, recipe=spec.params, cache_key=spec.cache_key())
        if path is not None:
            case.save(path)
        out.append(case)
    return out


def with_clutter(case: _cases.BenchCase, seed: int) -> _cases.BenchCase:
    """The case with non-brain content around the brain that moves on its own
    (:func:`napari_deepreg.data.contrasts.add_clutter`, at the physical scale the ``p_clutter``
    training used at 2 mm: blobs of σ 6 mm, shifted 8-24 mm). Both images are first put on
    [0, 1] by their 99.5th percentile; labels, field and mask are unchanged."""
    import dataclasses

    import torch

    from napari_deepreg.data.contrasts import add_clutter

    def unit(a: np.ndarray) -> torch.Tensor:
        a = np.asarray(a, np.float32)
        return torch.from_numpy(np.clip(a / max(float(np.percentile(a, 99.5)), 1e-6), 0, 1))

    scale = 2.0 / float(np.mean(case.spacing))  # pixels per 2 mm
    fixed, moving, info = add_clutter(
        unit(case.fixed.array)[None, None], unit(case.moving.array)[None, None],
        torch.from_numpy(case.fixed_labels > 0)[None, None],
        torch.from_numpy(case.moving_labels > 0)[None, None],
        torch.Generator().manual_seed(seed), max_shift=int(round(12 * scale)),
        min_shift=int(round(4 * scale)), blob_sigma=3.0 * scale)
    return dataclasses.replace(
        case, name=f"{case.name}_clutter",
        fixed=dataclasses.replace(case.fixed, array=fixed[0, 0].numpy()),
        moving=dataclasses.replace(case.moving, array=moving[0, 0].numpy()),
        description=f"{case.description}; clutter outside the brain, shifted {info['shift_px']} px",
        meta=dict(case.meta, clutter=info))


def landmarks(case: _cases.BenchCase, count: int = LANDMARKS, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(fixed, moving)`` ``(K, 2)`` landmark positions (mm, array axes, voxel 0 at 0).

    Fixed landmarks: ``count`` voxels drawn (seeded) from the fixed labels' boundaries inside
    the brain mask; moving landmarks: where the case's true pull-back field takes them
    (``q = p + w(p)``, so that ``moving(q) = fixed(p)``).
    """
    from napari_deepreg.metrics import map_points

    labels = case.fixed_labels
    edge = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        step = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * labels.ndim
        lo[axis] = slice(0, -1)
        edge[tuple(lo)] |= step
    if case.mask is not None:
        edge &= case.mask
    index = np.argwhere(edge)
    pick = np.random.default_rng(seed).choice(len(index), size=min(count, len(index)),
                                              replace=False)
    fixed = index[np.sort(pick)] * np.asarray(case.spacing, np.float64)
    return fixed, map_points(fixed, case.true_field, case.spacing, None)


def landmark_tre(case: _cases.BenchCase, field: np.ndarray | None) -> float:
    """Mean TRE (mm) of :func:`landmarks` under ``field`` (``(D, *S)`` mm; None: before)."""
    from napari_deepreg.metrics import tre

    fixed, moving = landmarks(case)
    return float(tre(fixed, moving, field, case.spacing, None).mean())


def run(cases: Sequence[_cases.BenchCase], methods: str | Sequence[str],
        device: str = "cpu", log: Any = print, landmarks_tre: bool = True
        ) -> list[dict[str, Any]]:
    """One row per (case, method) with the benchmark's figures and (``landmarks_tre``, which
    needs the case's true field) ``tre_mm``."""
    rows = []
    with _run.identity_method():
        method_list = _run.resolve_methods(methods)
        for method in method_list:  # the model's first load is not a pair's time
            if method.kind == "zoo" and cases:
                _run.call_method(cases[0], method, device)
        for case in cases:
            before = _run.measure_before(case)
            if landmarks_tre:
                before["tre_before_mm"] = landmark_tre(case, None)
            for method in method_list:
                row: dict[str, Any] = {"case": case.name, "method": method.label,
                                       "kind": method.kind}
                if not method.available:
                    row.update(status="skipped", note=method.note)
                    rows.append(row)
                    continue
                try:
                    called = _run.call_method(case, method, device)
                    field = called.pop("field")
                    row.update(status="ok", **before, **_run.measure_field(case, field),
                               **called)
                    if landmarks_tre:
                        row["tre_mm"] = landmark_tre(case, field)
                except Exception as error:  # one failing method must not end the run
                    row.update(status="error", note=f"{type(error).__name__}: {error}")
                rows.append(row)
                if row["status"] == "ok":
                    tre = (f"TRE {row['tre_before_mm']:.2f} -> {row['tre_mm']:.2f} mm"
                           if landmarks_tre else f"HD95 {row['hd95_after']:.2f} mm")
                    log(f"  {case.name:<36} {method.label:<32} Dice {row['dice_before']:.3f} "
                        f"-> {row['dice_after']:.3f}  {tre}  folds {row['fold_percent']:.3f} %  "
                        f"{row['time_s']:.3f} s")
                else:
                    log(f"  {case.name:<36} {method.label:<32} {row['status']}: {row['note']}")
    return rows


def means(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: the mean of each figure over its ok rows, the pairs it ran on and how many
    of them ended below the Dice before (``worse``)."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        ok = [r for r in rows if r["method"] == method and r.get("status") == "ok"]
        entry: dict[str, Any] = {"method": method, "pairs": len(ok)}
        for key in FIGURES:
            values = [r[key] for r in ok if r.get(key) is not None and math.isfinite(r[key])]
            entry[key] = float(np.mean(values)) if values else float("nan")
        entry["worse"] = sum(r["dice_after"] < r["dice_before"] - 1e-4 for r in ok)
        out.append(entry)
    return out


def format_table(entries: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of :func:`means`."""
    heads = ("method", "pairs", "Dice before", "Dice after", "EPE mm", "TRE before", "TRE mm",
             "fold %", "s / pair", "CPU s", "worse")
    keys = ("method", "pairs", "dice_before", "dice_after", "epe_mm", "tre_before_mm",
            "tre_mm", "fold_percent", "time_s", "cpu_s", "worse")
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for e in entries:
        cells = []
        for key in keys:
            value = e[key]
            if isinstance(value, float):
                digits = 3 if key in ("dice_before", "dice_after", "fold_percent", "time_s",
                                           "cpu_s") \
                    else 2
                cells.append(f"{value:.{digits}f}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.heldout_2d",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS,
                        help="comma-separated, as benchmarks.run takes them")
    parser.add_argument("--pairs", type=int, default=None, help="the first N pairs (all)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of every tool")
    parser.add_argument("--contrast", choices=("change", "none"), default="change",
                        help="the moving image's gamma / bias / noise (none: same intensities)")
    parser.add_argument("--clutter", action="store_true",
                        help="independently moving content around the brain (with_clutter)")
    parser.add_argument("--cache", default="results/bench/cases", help="built cases")
    parser.add_argument("--out", type=Path, default=Path("results/heldout_2d"))
    args = parser.parse_args(argv)
    command, started = start("benchmarks.heldout_2d", argv, args.threads)
    cases = heldout_slices(args.pairs, args.cache, args.contrast == "change")
    if args.clutter:
        cases = [with_clutter(c, 9000 + i) for i, c in enumerate(cases)]
    rows = run(cases, args.methods)
    entries = means(rows)
    table = format_table(entries)
    print(table)
    write_results(args.out, command, started, cases, rows, entries, table)
    return 0


def start(module: str, argv: Sequence[str] | None, threads: int) -> tuple[str, str]:
    """Every tool limited to ``threads``; returns the command line as run and the UTC start
    time (what :func:`write_results` records)."""
    _run.limit_threads(max(1, threads))
    command = shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])
    return command, datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_results(out: Path, command: str, started: str, cases: Sequence[_cases.BenchCase],
                  rows: Sequence[dict[str, Any]], entries: Sequence[dict[str, Any]],
                  table: str) -> None:
    """``results.json`` (the command, the environment, the cases, every row, the means) and
    ``table.md`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    results = {"command": command, "started": started, "environment": _run.environment("cpu"),
               "cases": [{"name": c.name, "description": c.description,
                          "shape": list(c.shape), "meta": c.meta} for c in cases],
               "rows": list(rows), "means": list(entries)}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    (out / "table.md").write_text(f"`{command}`\n\n{table}\n")


if __name__ == "__main__":
    sys.exit(main())
