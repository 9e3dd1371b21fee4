"""Reuse of a transform: apply a saved field to another image, label map or points, invert it,
compose two, and the ``napari-deepreg transform`` subcommand that does it on files.

Fields are the package's: ``(D, *S)`` pull-back displacements in mm on a fixed grid
(``warped(x) = moving(x + u(x))``), as :func:`napari_deepreg.io.read_field` returns them from
the ``field.nii.gz`` / ``transform.h5`` that ``register`` and the widget write. The maths is
``core`` (:func:`~napari_deepreg.core.warp_image`, :func:`~napari_deepreg.core.compose`,
:func:`~napari_deepreg.core.invert_field`) and :func:`napari_deepreg.metrics.map_points`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from .volume import InputError

Spacing = float | Sequence[float]


def _tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]


def _field(field: np.ndarray, ndim: int | None = None) -> np.ndarray:
    u = np.asarray(field, dtype=np.float32)
    if u.ndim < 3 or u.shape[0] != u.ndim - 1 or (ndim is not None and u.shape[0] != ndim):
        raise InputError(f"a displacement field must be (D, *spatial) with D = {ndim or 'its'} "
                         f"spatial dimensions, got shape {u.shape}")
    return u


def apply_field(array: np.ndarray, field: np.ndarray, spacing: Spacing,
                labels: bool = False) -> np.ndarray:
    """``array`` (on the field's grid) warped by ``field``: linear for an image, label-preserving
    (nearest, integer dtype kept) for a label map."""
    import torch

    from .core import warp_image, warp_labels

    data = np.asarray(array)
    u = _field(field, data.ndim)
    if data.shape != u.shape[1:]:
        raise InputError(f"the layer's shape {data.shape} is not the transform's grid "
                         f"{u.shape[1:]}: resample it onto the fixed image first")
    with torch.no_grad():
        if labels:
            moving = torch.from_numpy(np.ascontiguousarray(data.astype(np.int64)))[None, None]
            out = warp_labels(moving, _tensor(u), spacing)[0, 0].numpy()
            return out.astype(data.dtype)
        return warp_image(_tensor(data)[None], _tensor(u), spacing)[0, 0].numpy()


def folds(field: np.ndarray, spacing: Spacing) -> tuple[int, float, float]:
    """Where ``field`` folds, to check before inverting it: ``(voxels with J <= 0, their
    percent of the grid, the smallest J)``. Its inverse is not defined where ``J <= 0`` (the
    map is not one-to-one there), so an inverse computed anyway is only an approximation."""
    from .core import jacobian_determinant

    jac = jacobian_determinant(_tensor(_field(field)), spacing)[0].numpy()
    folded = int((jac <= 0).sum())
    return folded, 100.0 * folded / max(jac.size, 1), float(jac.min())


def fold_warning(field: np.ndarray, spacing: Spacing) -> str | None:
    """A sentence for the user when ``field`` folds (:func:`folds`), else None."""
    folded, percent, smallest = folds(field, spacing)
    if not folded:
        return None
    return (f"the transform folds: {folded} voxel(s) ({percent:.3g} %) have J <= 0 (min "
            f"{smallest:.3g}); its inverse is not defined there, so the inverse is only an "
            "approximation in and around the folds (see the stated accuracy)")


def invert(field: np.ndarray, spacing: Spacing) -> tuple[np.ndarray, float]:
    """The inverse field and its accuracy: ``(v, max |phi_u(phi_v(x)) - x|)`` in mm."""
    from .core import invert_field

    v, residual = invert_field(_tensor(_field(field)), spacing)
    return v[0].numpy(), float(residual.max())


def chain(first: np.ndarray, second: np.ndarray, spacing: Spacing) -> np.ndarray:
    """One field for ``first`` then ``second``: ``x -> phi_second(phi_first(x))``.

    For results A (fixed F, moving M) and B (fixed M, moving N) on one grid, ``chain(A, B)``
    warps N onto F with one interpolation.
    """
    from .core import compose

    a, b = _field(first), _field(second)
    if a.shape != b.shape:
        raise InputError(f"the two fields are on different grids: {a.shape} and {b.shape}")
    return compose(_tensor(b), _tensor(a), spacing)[0].numpy()


def points_to_fixed(points: np.ndarray, field: np.ndarray, spacing: Spacing,
                    origin: Sequence[float]) -> np.ndarray:
    """Moving points (``(K, D)`` mm) carried onto the fixed image: ``q + v(q)``, ``v`` the
    inverse field (points go with the inverse of the pull-back field)."""
    from .metrics import map_points

    inverse, _ = invert(field, spacing)
    return map_points(np.asarray(points, dtype=float), inverse, spacing, origin)


# ----------------------------------------------------------------------------- command line


def add_transform_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("invert", help="write the inverse of FIELD (its accuracy is printed)")
    p.add_argument("field", metavar="FIELD", help="field image or .h5 transform")
    p = sub.add_parser("compose", help="write FIRST then SECOND as one field")
    p.add_argument("first", metavar="FIRST", help="field fixed -> intermediate")
    p.add_argument("second", metavar="SECOND", help="field intermediate -> moving")
    for p in sub.choices.values():
        p.add_argument("--reference", required=True, metavar="FIXED",
                       help="the fixed image: the grid of the output")
        p.add_argument("--out", required=True, metavar="PATH",
                       help="output: a field image (.nii.gz, .mha, .nrrd) or an ITK .h5 "
                       "transform, listed in outputs.json beside it")
        p.add_argument("--overwrite", action="store_true",
                       help="replace an existing --out file that no outputs.json lists")


def transform_from_args(args: argparse.Namespace) -> int:
    from .io import (
        FIELD_SUFFIXES,
        TRANSFORM_SUFFIXES,
        check_output_file,
        export_field,
        export_transform,
        read_field,
        read_volume,
        write_output_file,
    )

    out = check_output_file(args.out, overwrite=args.overwrite)  # before any work
    name = out.name.lower()
    if not name.endswith(FIELD_SUFFIXES + TRANSFORM_SUFFIXES):
        raise InputError(f"--out {out.name}: use one of {', '.join(FIELD_SUFFIXES)} or .h5")
    reference = read_volume(args.reference)
    if args.action == "invert":
        field, grid = read_field(args.field, reference)
        warning = fold_warning(field, grid.spacing)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        result, residual = invert(field, grid.spacing)
        note = f"inverse accurate to {residual:.3g} mm (max |phi(phi^-1(x)) - x|)"
    else:
        first, grid = read_field(args.first, reference)
        second, _ = read_field(args.second, reference)
        result, note = chain(first, second, grid.spacing), "FIRST then SECOND"
    export = export_transform if name.endswith(TRANSFORM_SUFFIXES) else export_field
    fields = {"field": args.field} if args.action == "invert" else {
        "first": args.first, "second": args.second}
    write_output_file(out, lambda path: export(result, reference, path),
                      command=f"napari-deepreg transform {args.action}",
                      inputs={**fields, "reference": args.reference}, overwrite=args.overwrite,
                      log=lambda message: print(f"note: {message}", file=sys.stderr))
    print(f"wrote {out}: {note} (listed in {out.parent / 'outputs.json'})")
    return 0


__all__ = ["add_transform_arguments", "apply_field", "chain", "fold_warning", "folds", "invert",
           "points_to_fixed", "transform_from_args"]
