"""Reading and writing images with their geometry, and export of fields and transforms to ITK.

Everything goes through SimpleITK. Two frames of reference meet here:

* **ITK order**: SimpleITK images index ``(x, y, z)``; a voxel with index ``k`` sits at the LPS
  point ``p = O + R @ (k * s)`` (origin ``O``, direction ``R``, spacing ``s``, all in x, y, z).
* **array order** (the package's): arrays are ``(z, y, x)``; :class:`~napari_deepreg.volume.Volume`
  keeps ``spacing``, ``origin`` and ``direction`` reversed into that order (the direction is
  reversed in rows *and* columns), so the same LPS point, written in array order, is
  ``P = origin + direction @ (index * spacing)``.

The core maths ignores ``direction``: fields and affines of the package live in the **grid frame**
``x = origin + index * spacing`` (array order, mm) of the fixed image. With an identity direction
the grid frame is the LPS frame; otherwise a grid-frame vector ``u`` is the physical vector
``direction @ u``. The exports below do that conversion, so what ITK tools (and
``sitk.Resample``) see is the same mapping the package applies.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .volume import InputError, Volume

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
DICOM_SUFFIXES = (".dcm", ".ima")
FIELD_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
TRANSFORM_SUFFIXES = (".h5", ".hdf5")
AFFINE_SUFFIXES = (".tfm", ".txt", ".mat")

_FORMATS = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
}


# ----------------------------------------------------------------------------------------------
# small helpers


def _suffix(path: str | os.PathLike) -> str:
    """Lower-case extension, with ``.nii.gz`` kept whole."""
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def _stem(path: str | os.PathLike) -> str:
    """File name without its (possibly double) extension."""
    p = Path(path)
    suffix = _suffix(p)
    return p.name[: len(p.name) - len(suffix)] if suffix else p.name


def _first_line(error: Exception) -> str:
    """The informative part of an ITK exception (its text runs over many lines)."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    for ln in lines:
        if "Description:" in ln:
            return ln.split("Description:", 1)[1].strip()
    return lines[-1] if lines else type(error).__name__


def _flip(matrix: np.ndarray) -> np.ndarray:
    """Reverse rows and columns: ITK (x, y, z) order <-> array (z, y, x) order."""
    return np.asarray(matrix, dtype=float)[::-1, ::-1].copy()


def direction_is_identity(volume: Volume, tol: float = 1e-6) -> bool:
    """True if ``volume``'s direction cosines are the identity within ``tol``."""
    return bool(np.allclose(volume.direction_matrix(), np.eye(volume.ndim), atol=tol))


def describe_grid(volume: Volume) -> str:
    """One line with shape, spacing and origin (array axis order), for messages."""
    shape = "x".join(str(n) for n in volume.shape)
    spacing = "x".join(f"{s:.4g}" for s in volume.spacing)
    origin = ", ".join(f"{o:.4g}" for o in volume.origin)
    text = f"shape {shape}, spacing {spacing} mm, origin ({origin}) mm"
    if not direction_is_identity(volume, 1e-4):
        text += ", oblique/flipped direction"
    return text


def to_sitk(volume: Volume, array: np.ndarray | None = None) -> sitk.Image:
    """SimpleITK image of ``volume`` (or of ``array`` on ``volume``'s grid) with its geometry.

    ``array`` defaults to ``volume.array``; booleans become uint8 and float16 becomes float32
    since ITK has no such pixel types.
    """
    arr = np.asarray(volume.array if array is None else array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    _set_geometry(image, volume)
    return image


def _set_geometry(image: sitk.Image, grid: Volume) -> None:
    image.SetSpacing(tuple(reversed(grid.spacing)))
    image.SetOrigin(tuple(reversed(grid.origin)))
    image.SetDirection(tuple(_flip(grid.direction_matrix()).ravel()))


def _geometry(image: sitk.Image) -> tuple[tuple[float, ...], tuple[float, ...], np.ndarray]:
    """(spacing, origin, direction) of a SimpleITK image in array axis order."""
    dim = image.GetDimension()
    spacing = tuple(reversed(image.GetSpacing()))
    origin = tuple(reversed(image.GetOrigin()))
    direction = _flip(np.reshape(image.GetDirection(), (dim, dim)))
    return spacing, origin, direction


def from_sitk(image: sitk.Image, name: str = "") -> Volume:
    """Volume of a scalar SimpleITK image, with geometry converted to array axis order."""
    spacing, origin, direction = _geometry(image)
    return Volume(sitk.GetArrayFromImage(image), spacing, origin, direction, name)


def _grid_image(grid: Volume) -> sitk.Image:
    """An empty reference image carrying ``grid``'s size and geometry (for sitk.Resample)."""
    image = sitk.Image([int(n) for n in reversed(grid.shape)], sitk.sitkUInt8)
    _set_geometry(image, grid)
    return image


# ----------------------------------------------------------------------------------------------
# reading


def read_volume(path: str | os.PathLike, name: str | None = None) -> Volume:
    """Read a 2D or 3D scalar image with its geometry.

    Args:
        path: a NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``) or MetaImage (``.mha``,
            ``.mhd``) file; a directory holding a DICOM series; or one ``.dcm`` file of a series.
        name: the volume's name (default: the file name without extension).

    Returns:
        A :class:`Volume` whose array is ``(z, y, x)`` / ``(y, x)`` in the file's dtype, with
        spacing, origin (mm) and direction in array axis order (LPS, as ITK).

    Raises:
        InputError: missing or unreadable file, unknown extension, a DICOM folder without a series,
            a multi-component (RGB / vector) image or a 4D image.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.is_dir():
        image, fmt = _read_dicom_dir(path), "DICOM"
    else:
        suffix = _suffix(path)
        if suffix in DICOM_SUFFIXES:
            image, fmt = _read_dicom_dir(path.parent, member=path), "DICOM"
        elif suffix in _FORMATS:
            fmt = _FORMATS[suffix]
            try:
                image = sitk.ReadImage(str(path))
            except RuntimeError as error:
                raise InputError(
                    f"could not read {path} as {fmt}: {_first_line(error)}"
                ) from error
        else:
            raise InputError(
                f"cannot read {path.name}: unknown extension {suffix or '(none)'}; supported are "
                f"{', '.join(IMAGE_SUFFIXES + DICOM_SUFFIXES)} or a DICOM folder"
            )
    image = _scalar_2d_or_3d(image, path)
    volume = from_sitk(image, name if name is not None else _stem(path))
    volume.metadata.update(
        {"path": str(path), "format": fmt, "pixel_type": image.GetPixelIDTypeAsString()}
    )
    return volume


def _read_dicom_dir(folder: Path, member: Path | None = None) -> sitk.Image:
    """Read the DICOM series in ``folder`` (the one holding ``member``, else the largest)."""
    reader = sitk.ImageSeriesReader()
    try:
        series = reader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError as error:
        raise InputError(f"could not scan {folder} for DICOM: {_first_line(error)}") from error
    if not series:
        raise InputError(f"no DICOM series found in {folder}")
    files_per_series = [reader.GetGDCMSeriesFileNames(str(folder), uid) for uid in series]
    if member is not None:
        target = os.path.realpath(member)
        chosen = [f for f in files_per_series if target in {os.path.realpath(n) for n in f}]
        if not chosen:
            raise InputError(f"{member} is not part of a readable DICOM series")
        files = chosen[0]
    else:
        files = max(files_per_series, key=len)
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as error:
        message = f"could not read the DICOM series in {folder}: {_first_line(error)}"
        raise InputError(message) from error


def _scalar_2d_or_3d(image: sitk.Image, path: Path) -> sitk.Image:
    """Drop singleton trailing axes; refuse multi-component and 4D images with a clear message."""
    components = image.GetNumberOfComponentsPerPixel()
    if components == 1 and image.GetPixelIDTypeAsString().startswith("vector"):
        # a vector image with one component is a scalar image in disguise
        image = sitk.VectorIndexSelectionCast(image, 0)
    elif components > 1:
        hint = {3: " (RGB?)", 4: " (RGBA?)"}.get(components, "")
        raise InputError(
            f"{path.name} has {components} components per voxel{hint}; convert it to greyscale "
            "or pick one channel first"
        )
    # a 3D file with one slice is a 2D image; a 4D file with one frame is a 3D image
    while image.GetDimension() > 2 and image.GetSize()[-1] == 1:
        size = list(image.GetSize())
        size[-1] = 0
        image = sitk.Extract(
            image, size, [0] * image.GetDimension(),
            sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOGUESS,
        )
    if image.GetDimension() > 3:
        raise InputError(
            f"{path.name} is a {image.GetDimension()}D image of size "
            f"{tuple(reversed(image.GetSize()))}; pick a single time point or channel first"
        )
    return image


# ----------------------------------------------------------------------------------------------
# writing


def _check_writable(path: Path, suffixes: Sequence[str], what: str) -> str:
    suffix = _suffix(path)
    if suffix not in suffixes:
        raise InputError(
            f"cannot write {what} to {path.name}: unknown extension {suffix or '(none)'}; "
            f"use one of {', '.join(suffixes)}"
        )
    if not path.parent.exists():
        raise InputError(f"cannot write {path}: folder {path.parent} does not exist")
    return suffix


def label_dtype(array: np.ndarray) -> np.dtype:
    """Smallest of uint8 / uint16 / int32 that holds every value of ``array``."""
    if array.size == 0:
        return np.dtype(np.uint8)
    lo, hi = int(array.min()), int(array.max())
    if lo >= 0 and hi <= np.iinfo(np.uint8).max:
        return np.dtype(np.uint8)
    if lo >= 0 and hi <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    if lo >= np.iinfo(np.int32).min and hi <= np.iinfo(np.int32).max:
        return np.dtype(np.int32)
    raise InputError(f"labels range over [{lo}, {hi}], beyond what int32 can hold")


def _write(image: sitk.Image, path: Path, compress: bool) -> None:
    try:
        sitk.WriteImage(image, str(path), compress)
    except RuntimeError as error:
        raise InputError(f"could not write {path}: {_first_line(error)}") from error


def write_volume(volume: Volume, path: str | os.PathLike, labels: bool = False) -> None:
    """Write ``volume`` with its geometry (spacing, origin, direction) to NIfTI, NRRD or MetaImage.

    Images are written as float32; label maps (``labels=True``) as the smallest of uint8 / uint16 /
    int32 that holds their values (non-integer values are refused).
    """
    path = Path(path)
    suffix = _check_writable(path, IMAGE_SUFFIXES, "an image")
    arr = np.asarray(volume.array)
    if labels:
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
                raise InputError(f"{volume.name or 'labels'} hold non-integer values; cannot write "
                                 "them as a label map")
        elif arr.dtype.kind not in "biu":
            raise InputError(f"labels of dtype {arr.dtype} cannot be written")
        arr = arr.astype(label_dtype(arr))
    else:
        arr = arr.astype(np.float32)
    # .nii.gz is compressed through its name; NRRD and MetaImage need the flag
    _write(to_sitk(volume, arr), path, compress=suffix in (".nrrd", ".mha", ".nii.gz"))


# ----------------------------------------------------------------------------------------------
# resampling


def resample_to_grid(moving: Volume, fixed: Volume, labels: bool = False) -> Volume:
    """Resample ``moving`` onto ``fixed``'s grid through physical (LPS) space.

    Uses each volume's spacing, origin and direction, and the identity transform: the result at a
    fixed voxel is ``moving`` at the same physical point. Images are interpolated linearly and
    returned as float32, with ``moving``'s minimum outside its extent; labels use nearest neighbour,
    keep their dtype and are 0 outside.

    Returns:
        A Volume with ``fixed``'s shape and geometry and ``moving``'s name.
    """
    if moving.ndim != fixed.ndim:
        raise InputError(
            f"cannot resample a {moving.ndim}D image onto a {fixed.ndim}D grid"
        )
    source = to_sitk(moving, np.asarray(moving.array) if labels else
                     np.asarray(moving.array, dtype=np.float32))
    if labels:
        interpolator, default = sitk.sitkNearestNeighbor, 0.0
    else:
        interpolator = sitk.sitkLinear
        default = float(np.min(moving.array)) if np.size(moving.array) else 0.0
    out = sitk.Resample(
        source, _grid_image(fixed), sitk.Transform(), interpolator, default, source.GetPixelID()
    )
    arr = sitk.GetArrayFromImage(out)
    return Volume(arr, fixed.spacing, fixed.origin, fixed.direction, moving.name,
                  metadata=dict(moving.metadata))


# ----------------------------------------------------------------------------------------------
# displacement fields and transforms


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


TRANSFORM_FILES = ("field.nii.gz", "transform.h5", "affine.tfm")


def export_transforms(
    field: np.ndarray, affine: np.ndarray | None, fixed: Volume, folder: str | os.PathLike
) -> list[Path]:
    """Write a registration's transform into ``folder`` as the CLI and the widget both do.

    Files (:data:`TRANSFORM_FILES`): ``field.nii.gz`` (:func:`export_field`), ``transform.h5``
    (:func:`export_transform`) and, when ``affine`` is not None, ``affine.tfm``
    (:func:`export_affine` with ``fixed``, so the matrix is read in the fixed grid's frame).

    Args:
        field: ``(D, *S)`` pull-back displacement in mm on the fixed grid (grid frame).
        affine: ``(D+1, D+1)`` affine stage in the fixed grid's frame (``origin + index *
            spacing``, array order), or None.
        fixed: the fixed grid (shape, spacing, origin, direction; its values are not used).
        folder: an existing folder; files of these names in it are overwritten.

    Returns:
        The paths written, in the order above. Raises ``InputError`` if one cannot be written.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"cannot save the transform: {folder} is not an existing folder")
    field_path, transform_path, affine_path = (folder / name for name in TRANSFORM_FILES)
    export_field(field, fixed, field_path)
    export_transform(field, fixed, transform_path)
    written = [field_path, transform_path]
    if affine is not None:
        export_affine(affine, affine_path, fixed)
        written.append(affine_path)
    return written


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
    "IMAGE_SUFFIXES",
    "TRANSFORM_SUFFIXES",
    "affine_to_physical",
    "describe_grid",
    "direction_is_identity",
    "export_affine",
    "export_field",
    "export_transform",
    "field_to_itk_image",
    "from_sitk",
    "label_dtype",
    "read_field",
    "read_volume",
    "resample_to_grid",
    "to_sitk",
    "write_volume",
]
