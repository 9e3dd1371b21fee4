"""Export of displacement fields and affines to ITK files, and reading them back.

Fields and affines of the package live in the fixed image's **grid frame** (array order, mm,
``x = origin + index * spacing``); ITK wants physical LPS vectors in ``(x, y, z)`` order. The
functions here do that conversion with the fixed image's direction (the frames are described in
:mod:`napari_deepreg.io.volumes`), so what ITK tools and ``sitk.Resample`` see is the mapping the
package applies.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..geometry import check_overlap
from ..volume import InputError, Volume
from .volumes import (
    _check_writable,
    _first_line,
    _flip,
    _geometry,
    _grid_image,
    _set_geometry,
    _stem,
    _suffix,
    _write,
)

FIELD_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
TRANSFORM_SUFFIXES = (".h5", ".hdf5")
AFFINE_SUFFIXES = (".tfm", ".txt", ".mat")


def _field_array(field: np.ndarray, fixed: Volume) -> np.ndarray:
    arr = np.asarray(field, dtype=np.float64)
    if arr.ndim == fixed.ndim + 2 and arr.shape[0] == 1:
        arr = arr[0]  # a batched (1, D, *S) field
    if arr.shape != (fixed.ndim, *fixed.shape):
        raise InputError(
            f"field of shape {arr.shape} does not fit the fixed grid: expected "
            f"{(fixed.ndim, *fixed.shape)}"
        )
    return arr


def field_to_itk_image(field: np.ndarray, fixed: Volume) -> sitk.Image:
    """A displacement field as an ITK vector image (float64) on the fixed grid.

    Args:
        field: ``(D, *S)`` pull-back displacement in mm along the array axes, grid frame of
            ``fixed`` (``warped(i) = moving at index i + u(i) / spacing``).
        fixed: the grid the field lives on.

    Returns:
        Vector image whose vector at every voxel is the physical (LPS) displacement in ITK's
        ``(x, y, z)`` order: ``reverse(direction @ u)``. This is exactly what
        ``sitk.DisplacementFieldTransform`` expects, so ``sitk.Resample(moving, fixed, transform)``
        reproduces the package's warp.
    """
    u = _field_array(field, fixed)
    # physical displacement in array order: a step of u in the grid frame moves the point by
    # direction @ u in LPS space
    physical = np.einsum("ij,j...->i...", fixed.direction_matrix(), u)
    vectors = np.moveaxis(physical[::-1], 0, -1)  # (*S, D) in (x, y, z) order
    image = sitk.GetImageFromArray(np.ascontiguousarray(vectors), isVector=True)
    _set_geometry(image, fixed)
    return image


def export_field(field: np.ndarray, fixed: Volume, path: str | os.PathLike) -> None:
    """Write a displacement field as an ITK vector image (``.nii.gz``, ``.mha``, ``.nrrd``...).

    Vectors are physical LPS displacements in (x, y, z) order, float32, on the fixed grid (see
    :func:`field_to_itk_image`); ANTs, ITK-SNAP and SimpleITK read them as displacement fields.
    """
    path = Path(path)
    suffix = _check_writable(path, FIELD_SUFFIXES, "a displacement field")
    image = sitk.Cast(field_to_itk_image(field, fixed), sitk.sitkVectorFloat32)
    _write(image, path, compress=suffix in (".nrrd", ".mha", ".nii.gz"))


def export_transform(field: np.ndarray, fixed: Volume, path: str | os.PathLike) -> None:
    """Write a displacement field as an ITK ``DisplacementFieldTransform`` (``.h5`` / ``.hdf5``).

    ``sitk.ReadTransform(path)`` then maps fixed physical points to moving physical points, so
    ``sitk.Resample(moving, fixed, transform)`` gives the same image as the package's warp.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix in (".tfm", ".txt", ".mat"):
        raise InputError(
            f"{path.name}: the {suffix} transform format cannot hold a displacement field; use "
            ".h5 for a transform file, or export_field to .nii.gz / .mha for a field image"
        )
    _check_writable(path, TRANSFORM_SUFFIXES, "a displacement field transform")
    transform = sitk.DisplacementFieldTransform(field_to_itk_image(field, fixed))
    try:
        sitk.WriteTransform(transform, str(path))
    except RuntimeError as error:
        raise InputError(f"could not write {path}: {_first_line(error)}") from error


def affine_to_physical(matrix: np.ndarray, fixed: Volume) -> np.ndarray:
    """Convert a grid-frame affine of ``fixed`` to the LPS frame (both in array axis order).

    The grid frame is ``x = origin + index * spacing``; LPS is ``p = origin + R (x - origin)``
    with ``R = fixed.direction``. A grid-frame map ``x -> A x + b`` becomes
    ``p -> R A R^-1 (p - o) + R (A o + b - o) + o`` with ``o = origin``.
    """
    m = np.asarray(matrix, dtype=float)
    d = fixed.ndim
    r = fixed.direction_matrix()
    r_inv = np.linalg.inv(r)
    o = np.asarray(fixed.origin, dtype=float)
    a, b = m[:d, :d], m[:d, d]
    out = np.eye(d + 1)
    out[:d, :d] = r @ a @ r_inv
    out[:d, d] = r @ (a @ o + b - o) + o - out[:d, :d] @ o
    return out


def export_affine(
    matrix: np.ndarray, path: str | os.PathLike, fixed: Volume | None = None
) -> None:
    """Write an affine map as an ITK ``AffineTransform`` (``.tfm``, ``.txt`` or ``.mat``).

    Args:
        matrix: ``(D+1, D+1)`` homogeneous matrix in array axis order mapping a fixed point ``x``
            (mm) to the moving point ``A x + b`` (the convention of ``core.affine_to_field``).
        path: output file.
        fixed: the fixed grid. When given, ``matrix`` is taken in that grid's frame
            (``origin + index * spacing``, what the pipeline produces) and converted to LPS with
            the direction (:func:`affine_to_physical`); when None, ``matrix`` must already act on
            LPS points (the two agree for an identity direction).

    The written transform maps fixed LPS points to moving LPS points in ITK's (x, y, z) order,
    which is what ``sitk.Resample`` / ANTs / elastix expect.
    """
    path = Path(path)
    _check_writable(path, AFFINE_SUFFIXES, "an affine transform")
    m = np.asarray(matrix, dtype=float)
    d = m.shape[0] - 1
    if m.shape != (d + 1, d + 1) or d not in (2, 3):
        raise InputError(f"affine matrix must be 3x3 or 4x4 (homogeneous), got shape {m.shape}")
    if fixed is not None:
        if fixed.ndim != d:
            raise InputError(f"a {d}D affine does not fit the {fixed.ndim}D fixed image")
        m = affine_to_physical(m, fixed)
    transform = sitk.AffineTransform(d)
    transform.SetMatrix(tuple(_flip(m[:d, :d]).ravel()))
    transform.SetTranslation(tuple(m[:d, d][::-1]))
    try:
        sitk.WriteTransform(transform, str(path))
    except RuntimeError as error:
        raise InputError(f"could not write {path}: {_first_line(error)}") from error


def _read_transform_field(path: Path, fixed: Volume | None) -> sitk.Image:
    try:
        transform = sitk.ReadTransform(str(path)).Downcast()
    except RuntimeError as error:
        message = f"could not read {path} as an ITK transform: {_first_line(error)}"
        raise InputError(message) from error
    if fixed is not None:
        # any ITK transform, sampled on the fixed grid
        return sitk.TransformToDisplacementField(
            transform,
            sitk.sitkVectorFloat64,
            [int(n) for n in reversed(fixed.shape)],
            tuple(reversed(fixed.origin)),
            tuple(reversed(fixed.spacing)),
            tuple(_flip(fixed.direction_matrix()).ravel()),
        )
    if isinstance(transform, sitk.DisplacementFieldTransform):
        return transform.GetDisplacementField()
    raise InputError(
        f"{path.name} holds a {transform.GetName()}, not a displacement field; give the fixed "
        "image so that it can be sampled on its grid"
    )


def read_field(
    path: str | os.PathLike, fixed: Volume | None = None
) -> tuple[np.ndarray, Volume]:
    """Read a displacement field written by :func:`export_field` or :func:`export_transform`.

    Args:
        path: an ITK vector image (``.nii.gz``, ``.mha``, ``.nrrd``...) of physical (LPS, x, y, z)
            displacements, or an ITK transform file (``.h5``; with ``fixed``, also an affine
            ``.tfm`` / ``.txt`` / ``.mat``, sampled on the fixed grid).
        fixed: the grid to return the field on. If the field's own grid differs, its physical
            displacements are resampled (linearly, 0 outside) onto ``fixed``'s grid.

    Returns:
        ``(field, grid)``: ``field`` is ``(D, *S)`` float32 in mm along the array axes, in the grid
        frame of ``grid`` (ready for ``core.warp_image`` with ``grid.spacing``); ``grid`` is a
        Volume carrying the geometry (its array is a zero-cost placeholder of shape ``S``).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    suffix = _suffix(path)
    if suffix in TRANSFORM_SUFFIXES + AFFINE_SUFFIXES:
        image = _read_transform_field(path, fixed)
    elif suffix in FIELD_SUFFIXES:
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as error:
            raise InputError(f"could not read {path}: {_first_line(error)}") from error
    else:
        raise InputError(
            f"cannot read a field from {path.name}: unknown extension {suffix or '(none)'}; "
            f"use one of {', '.join(FIELD_SUFFIXES + TRANSFORM_SUFFIXES)}"
        )
    dim = image.GetDimension()
    if image.GetNumberOfComponentsPerPixel() != dim:
        raise InputError(
            f"{path.name} is not a displacement field: a {dim}D image needs {dim} components per "
            f"voxel, it has {image.GetNumberOfComponentsPerPixel()}"
        )
    image = sitk.Cast(image, sitk.sitkVectorFloat64)
    if fixed is not None:
        if fixed.ndim != dim:
            raise InputError(f"{path.name} is a {dim}D field but the fixed image is {fixed.ndim}D")
        own = _placeholder(image)
        if not own.same_grid(fixed):
            # a field of another registration would be resampled to no displacement at all
            check_overlap(fixed, own, ("the reference image", f"field {path.name}"), "grids")
            image = sitk.Resample(
                image, _grid_image(fixed), sitk.Transform(), sitk.sitkLinear, 0.0,
                sitk.sitkVectorFloat64,
            )
        grid = Volume(np.broadcast_to(np.float32(0), fixed.shape), fixed.spacing, fixed.origin,
                      fixed.direction, fixed.name)
    else:
        grid = _placeholder(image)
        grid.name = _stem(path)
    vectors = sitk.GetArrayFromImage(image)  # (*S, D) in (x, y, z) order
    physical = np.moveaxis(vectors, -1, 0)[::-1]  # (D, *S) in array order
    # back from LPS to the grid frame: u = direction^-1 @ physical
    u = np.einsum("ij,j...->i...", np.linalg.inv(grid.direction_matrix()), physical)
    return u.astype(np.float32), grid


def _placeholder(image: sitk.Image) -> Volume:
    """A Volume with ``image``'s geometry and a zero-cost zero array of its shape."""
    spacing, origin, direction = _geometry(image)
    shape = tuple(reversed(image.GetSize()))
    return Volume(np.broadcast_to(np.float32(0), shape), spacing, origin, direction)


__all__ = [
    "AFFINE_SUFFIXES",
    "FIELD_SUFFIXES",
    "TRANSFORM_SUFFIXES",
    "affine_to_physical",
    "export_affine",
    "export_field",
    "export_transform",
    "field_to_itk_image",
    "read_field",
]
