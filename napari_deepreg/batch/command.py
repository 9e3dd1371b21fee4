"""``napari-deepreg batch``: the subcommand's arguments and what it does (``cli.py`` registers it).

Exit codes follow the CLI's: 0 when every pair is registered or was already done, 2 for bad
input or usage (nothing run), and 3 when some pairs failed (listed on stderr and in
``cohort.csv``; a rerun retries them).
"""

from __future__ import annotations

import argparse
import sys

from ..volume import InputError
from .pairs import ROLES, Pair, pairs_from_pattern, read_pairs_csv
from .task import FAILED, PairOutcome, PointsReader

EXIT_SOME_FAILED = 3


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``batch`` subcommand's arguments."""
    parser.description = (
        "Register a cohort on Dask: the pairs of PAIRS (a CSV with columns fixed, moving and "
        "optionally fixed_labels, moving_labels, fixed_points, moving_points, name; relative "
        "paths are relative to the CSV), or the subjects of a {subject} path pattern of moving "
        "images, each to its fixed image or to one --atlas. Each pair gets a folder OUT/<name>/ "
        "as `register` writes it; OUT gets cohort.csv (one row per pair: status, error, Dice "
        "before/after, folds, runtime, folder), cohort_labels.csv and cohort.png, listed in "
        "OUT/outputs.json. A rerun skips "
        "finished pairs (same method and parameters) and retries failed ones. Exit code 3 when "
        "some pairs failed."
    )
    parser.add_argument("pairs", metavar="PAIRS",
                        help="pair list (.csv), or a moving-image pattern with {subject}")
    parser.add_argument("--pattern", action="append", metavar="ROLE=TEMPLATE", default=[],
                        help="with a {subject} PAIRS: the template of another file, e.g. "
                        "fixed=data/{subject}/t1.nii.gz (roles: " + ", ".join(ROLES[2:]) +
                        ", fixed); repeatable")
    parser.add_argument("--atlas", metavar="FIXED", help="register every subject to this image")
    parser.add_argument("--atlas-labels", metavar="L", help="the atlas's label map")
    parser.add_argument("--atlas-points", metavar="CSV", help="the atlas's landmarks (mm)")
    parser.add_argument("--method", default="instance_opt", metavar="ID",
                        help="method id (see `napari-deepreg methods`; default instance_opt)")
    parser.add_argument("--param", action="append", metavar="NAME=VALUE", default=[],
                        help="override a config field of the method (repeatable)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the cohort's output folder")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="local worker processes (default: half the cores, memory allowing)")
    parser.add_argument("--threads-per-worker", type=int, metavar="T",
                        help="pairs a local worker runs at once (default 1)")
    parser.add_argument("--torch-threads", type=int, metavar="K",
                        help="torch threads per pair (default: the cores left per pair)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="use a running dask.distributed scheduler (tcp://host:8786)")
    parser.add_argument("--gpus", type=int, default=0, metavar="G",
                        help="one task per GPU: G local GPU workers, or tasks asking for GPU=1 "
                        "on a --scheduler's workers (start them with --resources GPU=1)")
    parser.add_argument("--device", help="cpu (default), cuda (default with --gpus), auto")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files of an output's name that no outputs.json lists "
                        "(refused before any work without it)")
    parser.add_argument("--no-report", action="store_true", help="skip each pair's report.png")
    parser.add_argument("--no-hausdorff", action="store_true", help="skip HD95/ASSD (faster)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _pairs(args: argparse.Namespace) -> list[Pair]:
    atlas = {"atlas": args.atlas, "atlas_labels": args.atlas_labels,
             "atlas_points": args.atlas_points}
    if "{subject}" not in args.pairs:
        if args.pattern:
            raise InputError("--pattern goes with a {subject} pattern as PAIRS, not a CSV")
        return read_pairs_csv(args.pairs, **atlas)
    patterns = {"moving": args.pairs}
    for item in args.pattern:
        role, sep, template = item.partition("=")
        if not sep or role.strip() not in ROLES or role.strip() == "moving":
            raise InputError(f"--pattern {item!r} must be ROLE=TEMPLATE with a role of "
                             f"{', '.join(r for r in ROLES if r != 'moving')}")
        patterns[role.strip()] = template.strip()
    return pairs_from_pattern(patterns, **atlas)


def _progress_bar(total: int, quiet: bool):  # -> tqdm or None
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="pair", desc="batch", file=sys.stderr, dynamic_ncols=True)


def batch_from_args(args: argparse.Namespace, read_points: PointsReader | None = None) -> int:
    """Run ``napari-deepreg batch``; ``read_points`` reads a landmark CSV (the CLI's reader)."""
    from ..fields import parse_assignments
    from ..methods import get_method
    from .run import run_batch

    spec = get_method(args.method)
    params = parse_assignments(spec.config_class, args.param, spec.id)
    pairs = _pairs(args)
    bar = _progress_bar(len(pairs), args.quiet)

    def say(line: str) -> None:
        (bar.write if bar is not None else print)(line, file=sys.stderr)

    def advance(outcome: PairOutcome) -> None:
        if outcome.status == FAILED:
            say(f"failed: {outcome.name}: {outcome.error}")
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{outcome.name} {outcome.status}")

    try:
        result = run_batch(
            pairs, args.out, spec.id, params, device=args.device, workers=args.workers,
            threads_per_worker=args.threads_per_worker, torch_threads=args.torch_threads,
            scheduler=args.scheduler, gpus=args.gpus, report=not args.no_report,
            hausdorff=not args.no_hausdorff, overwrite=args.overwrite, read_points=read_points,
            on_outcome=advance,
            log=say,
        )
    finally:
        if bar is not None:
            bar.close()
    counts = ", ".join(f"{result.count(s)} {s}" for s in ("ok", "skipped", "failed"))
    written = [p.name for p in result.tables] + ([result.plot.name] if result.plot else [])
    print(f"{len(result.outcomes)} pairs: {counts}; wrote {', '.join(written)} to {result.out_dir}")
    return EXIT_SOME_FAILED if result.failed else 0


__all__ = ["EXIT_SOME_FAILED", "add_batch_arguments", "batch_from_args"]
