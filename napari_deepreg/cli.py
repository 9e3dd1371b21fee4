"""The ``napari-deepreg`` command line: register, warp, evaluate, methods.

Every subcommand reads and writes images with their geometry (``napari_deepreg.io``) and drives
the same generators as the napari widget. Input a user has to fix (a missing file, a 4D image,
labels of the wrong shape, an unknown parameter) ends with one line
``napari-deepreg: error: ...`` on stderr and exit code 2, never a traceback.

Landmark CSV files (``--fixed-points`` / ``--moving-points``) hold one point per row in physical
mm. With a header, the columns are picked by name: napari's ``axis-0, axis-1[, axis-2]`` (array
axis order, as napari saves a points layer) or ``x, y[, z]`` (ITK / LPS order, reversed here into
array order); other columns (``index``, ``label``...) are ignored. Without a header, every row
must have exactly D numbers in array axis order (``z, y, x`` / ``y, x``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .fields import parse_assignments
from .volume import InputError, Volume

PROG = "napari-deepreg"


# --------------------------------------------------------------------------- progress


class ProgressPrinter:
    """One-line progress on a stream: redrawn in place on a terminal, else one line per 10 %."""

    def __init__(self, stream: TextIO | None = None, width: int = 24) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width
        self._last: tuple[int, int, str] | None = None
        self._drawn = False

    def update(self, step: int, total: int, message: str = "") -> None:
        frac = min(max(step / total, 0.0), 1.0) if total > 0 else 0.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {step}/{total} {message}".rstrip()
        if self.tty:
            self.stream.write("\r" + line[:119].ljust(119))
            self._drawn = True
        else:
            # stage (message head) or decile changed: worth a line in a log file
            key = (total, int(frac * 10), message.split(" ")[0] if message else "")
            if key == self._last:
                return
            self._last = key
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def drive(gen: typing.Generator[Any, None, Any], printer: ProgressPrinter | None) -> Any:
    """Run a generator of ``Progress`` to its end, reporting each step; return its value."""
    try:
        while True:
            try:
                progress = next(gen)
            except StopIteration as stop:
                return stop.value
            if printer is not None:
                printer.update(progress.step, progress.total, progress.message)
    finally:
        if printer is not None:
            printer.close()


# --------------------------------------------------------------------------- parameters


def parse_params(config_class: type, items: Sequence[str], method_id: str = "") -> dict[str, Any]:
    """Turn ``["NAME=VALUE", ...]`` into a dict typed by ``config_class``'s fields (the config
    layer's :func:`~napari_deepreg.fields.parse_assignments`)."""
    return parse_assignments(config_class, items, method_id)


# --------------------------------------------------------------------------- landmarks


def read_points_csv(path: str | Path, ndim: int) -> np.ndarray:
    """Read ``(K, ndim)`` physical points (mm, array axis order) from a CSV file.

    See the module docstring for the accepted layouts.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"points file not found: {path}")
    with path.open(newline="") as handle:
        rows = [
            [c.strip() for c in row]
            for row in csv.reader(handle)
            if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#")
        ]
    if not rows:
        raise InputError(f"{path.name} holds no points")

    def numeric(cells: Sequence[str]) -> bool:
        try:
            [float(c) for c in cells]
        except ValueError:
            return False
        return True

    if numeric(rows[0]):
        columns = None
        body = rows
        if any(len(r) != ndim for r in body):
            raise InputError(
                f"{path.name}: without a header every row needs {ndim} coordinates in array axis "
                f"order, found rows of {sorted({len(r) for r in body})} values"
            )
    else:
        header = [h.lower() for h in rows[0]]
        body = rows[1:]
        napari_cols = [f"axis-{i}" for i in range(ndim)]
        xyz = ["z", "y", "x"][-ndim:]  # array order
        if all(c in header for c in napari_cols):
            columns = [header.index(c) for c in napari_cols]
        elif all(c in header for c in xyz):
            columns = [header.index(c) for c in xyz]
        else:
            raise InputError(
                f"{path.name}: header {rows[0]} names no coordinate columns; use "
                f"{', '.join(napari_cols)} (array order) or {', '.join(reversed(xyz))}"
            )
        try:
            body = [[r[c] for c in columns] for r in body]
        except IndexError:
            raise InputError(f"{path.name}: some rows are shorter than the header") from None
    try:
        points = np.array([[float(c) for c in r] for r in body], dtype=float).reshape(-1, ndim)
    except ValueError:
        raise InputError(f"{path.name}: non-numeric coordinates") from None
    if not np.isfinite(points).all():
        raise InputError(f"{path.name}: NaN/Inf coordinates")
    return points


# --------------------------------------------------------------------------- subcommands


def _read(path: str | None, what: str) -> Volume | None:
    from .io import read_volume

    if path is None:
        return None
    try:
        return read_volume(path)
    except InputError as error:
        raise InputError(f"{what}: {error}") from None


def cmd_register(args: argparse.Namespace) -> int:
    from .io import DEFAULT_OUTPUTS, check_output_folder, write_outputs
    from .methods import get_method
    from .pipeline import register

    spec = get_method(args.method)
    config = parse_params(spec.config_class, args.param or [], spec.id)
    what = [k for k in DEFAULT_OUTPUTS if not (k == "report" and args.no_report)]
    # a folder we may not write into is reported before the registration, not after it; the
    # outputs that depend on the result are checked when they are written
    sure = [k for k in what if k not in ("affine", "labels_csv", "warped_labels")]
    check_output_folder(args.out, sure, overwrite=args.overwrite)
    fixed = _read(args.fixed, "fixed image")
    moving = _read(args.moving, "moving image")
    fixed_labels = _read(args.fixed_labels, "fixed labels")
    moving_labels = _read(args.moving_labels, "moving labels")
    if (args.fixed_points is None) != (args.moving_points is None):
        raise InputError("give both --fixed-points and --moving-points, or neither")
    fixed_points = moving_points = None
    if args.fixed_points is not None:
        fixed_points = read_points_csv(args.fixed_points, fixed.ndim)
        moving_points = read_points_csv(args.moving_points, moving.ndim)

    printer = None if args.quiet else ProgressPrinter()
    result = drive(
        register(
            fixed, moving, method=spec.id, config=config,
            fixed_labels=fixed_labels, moving_labels=moving_labels,
            fixed_points=fixed_points, moving_points=moving_points,
            device=args.device, hausdorff=not args.no_hausdorff,
        ),
        printer,
    )
    for note in result.notes:
        _note(note)
    # the labels' names, from a lookup table beside the label file (ITK-SNAP, FreeSurfer LUT,
    # CSV/TSV), go into labels.csv and the report
    from .qa.label_names import find_label_names

    for labels_path in (args.fixed_labels, args.moving_labels):
        if labels_path and not result.label_names:
            result.label_names, _ = find_label_names(labels_path)

    inputs = {name: getattr(args, name) for name in (
        "fixed", "moving", "fixed_labels", "moving_labels", "fixed_points", "moving_points")}
    written = write_outputs(
        result, args.out, fixed, moving, fixed_labels, what=what, overwrite=args.overwrite,
        inputs={k: v for k, v in inputs.items() if v is not None},
        log=_note,
    )
    from .qa.tables import summary_line

    line = summary_line(result.metrics)
    print(f"{result.method}: {line + ', ' if line else ''}runtime {result.runtime:.1f} s")
    print(f"wrote {', '.join(p.name for p in written)} to {args.out}")
    return 0


def _note(message: str) -> None:  # a remark on stderr; the command goes on
    print(f"note: {message}", file=sys.stderr)


def cmd_warp(args: argparse.Namespace) -> int:
    import torch

    from .core import warp_image, warp_labels
    from .core.device import resolve_device
    from .io import check_output_file, read_field, resample_to_grid, write_output_file, write_volume
    from .volume import check_image, check_labels

    out = check_output_file(args.out, overwrite=args.overwrite)  # before any work
    reference = _read(args.reference, "reference image")
    image = _read(args.image, "image")
    if image.ndim != reference.ndim:
        raise InputError(
            f"image is {image.ndim}D but the reference image is {reference.ndim}D"
        )
    # same preparation as the pipeline: check, then resample onto the fixed grid if needed
    if args.labels:
        image = dataclasses.replace(image, array=check_labels(image.array, image.shape, "labels"))
    else:
        image = dataclasses.replace(image, array=check_image(image.array, "image"))
    if not image.same_grid(reference):
        image = resample_to_grid(image, reference, labels=args.labels)
    field, grid = read_field(args.field, reference)
    device = resolve_device(args.device)
    field_t = torch.from_numpy(np.ascontiguousarray(field))[None].to(device)
    data = torch.from_numpy(np.ascontiguousarray(image.array))[None, None].to(device)
    with torch.no_grad():
        if args.labels:
            warped = warp_labels(data, field_t, grid.spacing)
        else:
            warped = warp_image(data, field_t, grid.spacing)
    array = warped[0, 0].cpu().numpy()
    warped_volume = dataclasses.replace(reference, array=array, name=out.name, metadata={})
    write_output_file(out, lambda path: write_volume(warped_volume, path, labels=args.labels),
                      command="napari-deepreg warp", overwrite=args.overwrite, log=_note,
                      inputs={k: getattr(args, k) for k in ("field", "image", "reference")})
    print(f"wrote {out} (listed in {out.parent / 'outputs.json'})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from . import qa
    from .core import jacobian_determinant
    from .geometry import check_same_grid
    from .io import check_output_file, read_field, write_output_file
    from .metrics import registration_metrics
    from .volume import check_label_maps, check_labels

    out = None if args.out is None else check_output_file(args.out, overwrite=args.overwrite)
    fixed = _read(args.fixed_labels, "fixed labels")
    warped = _read(args.warped_labels, "warped labels")
    moving = _read(args.moving_labels, "moving labels")
    named = ((fixed, "fixed labels"), (warped, "warped labels"), (moving, "moving labels"))
    fixed_arr, warped_arr, moving_arr = (
        None if v is None else check_labels(v.array, fixed.shape, what) for v, what in named)
    for v, what in named[1:]:
        if v is not None:  # compared voxel by voxel: one grid, not just one shape
            check_same_grid(v, fixed, what, "fixed labels", "warp them onto it first")
    check_label_maps(fixed_arr, moving_arr)
    jac = None
    if args.field is not None:
        field, grid = read_field(args.field, fixed)
        jac = jacobian_determinant(torch.from_numpy(field)[None], grid.spacing)[0].numpy()
    summary, rows = registration_metrics(
        fixed_arr, moving_arr, warped_arr, jac, fixed.spacing, fast=args.no_hausdorff
    )
    for name, value in summary.items():
        unit = qa.metric_unit(name)
        print(f"{name:<14} {qa.format_value(name, value)}{' ' + unit if unit else ''}")
    if out is not None:
        document = {"metrics": summary, "labels": rows,
                    "inputs": {"fixed_labels": str(args.fixed_labels),
                               "warped_labels": str(args.warped_labels),
                               "moving_labels": args.moving_labels, "field": args.field}}
        text = json.dumps(qa.to_jsonable(document), indent=2, allow_nan=False) + "\n"
        write_output_file(out, lambda path: path.write_text(text), overwrite=args.overwrite,
                          command=f"{PROG} evaluate", inputs=document["inputs"], log=_note)
        print(f"wrote {out} (listed in {out.parent / 'outputs.json'})")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import available_methods

    methods = available_methods()
    if not methods:
        print("no registration methods are installed")
        return 0
    for spec in sorted(methods.values(), key=lambda s: s.id):
        dims = "/".join(f"{d}D" for d in spec.dims)
        model = f" model={spec.model_id}" if spec.model_id else ""
        print(f"{spec.id:<20} {dims:<6} {spec.title}{model}")
        if args.verbose:
            if spec.description:
                print(f"    {spec.description}")
            for f in dataclasses.fields(spec.config_class):
                default = f.default if f.default is not dataclasses.MISSING else "(required)"
                text = f"    --param {f.name}={default}"
                hint = f.metadata.get("help", "")
                print(f"{text:<40} {hint}" if hint else text)
    return 0


# --------------------------------------------------------------------------- parser and main


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit code 2.

    argparse's own prints the usage block and the error; the CLI promises one line per error
    (the usage is one ``-h`` away). Sub-parsers are made of the same class.
    """

    def error(self, message: str) -> typing.NoReturn:
        _error(f"{message} (see {self.prog} -h)")
        raise SystemExit(2)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; ``command`` given, only that subcommand gets its arguments.

    ``train`` and ``zoo`` bring their arguments from their own packages, whose import costs
    start-up time (the training harness and the zoo); a ``register`` call does not pay it.
    """
    from . import __version__

    parser = _Parser(
        prog=PROG,
        description="Deformable registration of 2D/3D medical images (the napari-deepreg CLI).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("register", help="register MOVING to FIXED and write every output",
                       description="Register MOVING to FIXED. Writes warped.nii.gz, "
                       "warped_labels.nii.gz (with --moving-labels), field.nii.gz (ITK "
                       "displacement image), transform.h5, affine.tfm (affine methods), "
                       "metrics.json, metrics.csv, labels.csv (with labels), report.png and "
                       "outputs.json (the manifest: every file written, method, parameters).")
    p.add_argument("fixed", metavar="FIXED", help="fixed image (NIfTI, NRRD, MHA, DICOM folder)")
    p.add_argument("moving", metavar="MOVING", help="moving image")
    p.add_argument("--fixed-labels", metavar="F", help="label map on the fixed image's grid")
    p.add_argument("--moving-labels", metavar="M", help="label map on the moving image's grid")
    p.add_argument("--fixed-points", metavar="CSV", help="fixed landmarks (mm) for TRE")
    p.add_argument("--moving-points", metavar="CSV", help="matching moving landmarks (mm)")
    p.add_argument("--method", default="instance_opt", metavar="ID",
                   help="method id (see `napari-deepreg methods`; default instance_opt)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="override a config field of the method (repeatable)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (created); it gets an outputs.json listing what was "
                   "written, and a rerun replaces only files an earlier outputs.json lists")
    p.add_argument("--overwrite", action="store_true",
                   help="also replace files of an output's name that no earlier run wrote")
    p.add_argument("--no-report", action="store_true", help="skip report.png")
    p.add_argument("--no-hausdorff", action="store_true", help="skip HD95/ASSD (faster)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("warp", help="apply a saved displacement field to an image or label map",
                       description="Warp IMAGE with FIELD (field.nii.gz or transform.h5 from "
                       "`register`) into the grid of the reference (fixed) image. IMAGE is first "
                       "resampled onto the reference grid if it lies on another one.")
    p.add_argument("field", metavar="FIELD", help="displacement field image or .h5 transform")
    p.add_argument("image", metavar="IMAGE", help="image or label map to warp")
    p.add_argument("--reference", required=True, metavar="FIXED", help="the fixed image")
    p.add_argument("--out", required=True, metavar="PATH",
                   help="output image file, listed in outputs.json (see register --out)")
    p.add_argument("--overwrite", action="store_true", help="replace a file not written here")
    p.add_argument("--labels", action="store_true",
                   help="IMAGE is a label map (label-preserving warp, integer output)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    p.set_defaults(func=cmd_warp)

    p = sub.add_parser("evaluate", help="Dice/HD95 of warped labels, folds of a field",
                       description="Compare WARPED_LABELS with FIXED_LABELS (same grid); with "
                       "--field also fold % and SDlogJ of the displacement field.")
    p.add_argument("fixed_labels", metavar="FIXED_LABELS")
    p.add_argument("warped_labels", metavar="WARPED_LABELS")
    p.add_argument("--moving-labels", metavar="M",
                   help="moving labels on the fixed grid, for the before-registration figures")
    p.add_argument("--field", metavar="FIELD", help="displacement field for the Jacobian figures")
    p.add_argument("--out", metavar="metrics.json",
                   help="write the figures as JSON, listed in outputs.json (see register --out)")
    p.add_argument("--overwrite", action="store_true", help="replace a file not written here")
    p.add_argument("--no-hausdorff", action="store_true", help="skip HD95/ASSD (faster)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("methods", help="list the available registration methods")
    p.add_argument("-v", "--verbose", action="store_true", help="also list each method's params")
    p.set_defaults(func=cmd_methods)

    # training and the zoo live in their own packages; they bring their own arguments, loaded
    # only when their command runs (or when no command is known yet, e.g. for --help)
    p = sub.add_parser("train", help="train a learned method (see napari-deepreg train -h)")
    if command in (None, "train"):
        from . import training

        training.add_train_arguments(p)
        p.set_defaults(func=training.train_from_args)

    p = sub.add_parser("batch", help="register a cohort of pairs on Dask (see batch -h)")
    if command in (None, "batch"):
        from . import batch

        batch.add_batch_arguments(p)
        p.set_defaults(func=lambda a: batch.batch_from_args(a, read_points=read_points_csv))

    p = sub.add_parser("transform", help="invert a saved transform or compose two")
    if command in (None, "transform"):
        from . import reuse

        reuse.add_transform_arguments(p)
        p.set_defaults(func=reuse.transform_from_args)

    p = sub.add_parser("zoo", help="list, check or add pretrained models")
    if command in (None, "zoo"):
        from . import zoo

        zoo.add_zoo_arguments(p)
        p.set_defaults(func=zoo.zoo_from_args)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (its first word not starting with ``-``), or None."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def _error(message: str) -> None:
    text = " ".join(str(message).split()) or "unknown error"
    print(f"{PROG}: error: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-deepreg`` console script; returns the exit code.

    0 on success, 2 for bad input or usage (one line on stderr), 1 when the system refuses
    (e.g. a file cannot be written), 130 when interrupted.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # usage error or --help/--version
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    try:
        return int(args.func(args))
    except ValueError as error:  # InputError is a ValueError
        _error(str(error))
        return 2
    except OSError as error:
        _error(f"{error.strerror or error}: {error.filename}" if error.filename else str(error))
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
