"""Reading, writing and resampling images with their geometry (through SimpleITK).

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

from ..geometry import check_geometry
from ..volume import InputError, Volume
from .checks import check_header, check_input_path, check_pixels

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
DICOM_SUFFIXES = (".dcm", ".ima")

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
    # ITK throws a RuntimeError (a traceback for the user) on a zero spacing or singular direction
    check_geometry(volume.spacing, volume.origin, volume.direction, arr.ndim,
                   volume.name or "image")
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
        InputError: missing, unreadable or non-regular file (a FIFO), unknown extension, a header
            that does not match the file (truncated, wrong data offset, a data file outside its
            folder), NaN/Inf voxels, a geometry no image can have (zero or NaN spacing, NaN
            origin, singular direction), a DICOM folder without a series, a multi-component
            (RGB / vector) image or a 4D image.
    """
    path = check_input_path(path, "image")
    if path.is_dir():
        image, fmt = _read_dicom_dir(path), "DICOM"
    else:
        suffix = _suffix(path)
        if suffix in DICOM_SUFFIXES:
            image, fmt = _read_dicom_dir(path.parent, member=path), "DICOM"
        elif suffix in _FORMATS:
            fmt = _FORMATS[suffix]
            check_header(path, fmt)
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
    check_geometry(volume.spacing, volume.origin, volume.direction, volume.ndim, path.name)
    check_pixels(volume.array, path.name)
    volume.metadata.update(
        {"path": str(path), "format": fmt, "pixel_type": image.GetPixelIDTypeAsString()}
    )
    return volume


def _read_dicom_dir(folder: Path, member: Path | None = None) -> sitk.Image:
    """Read the DICOM series in ``folder`` (the one holding ``member``, else the largest)."""
    reader = sitk.ImageSeriesReader()
    # GDCM prints a multi-line WARNING on stderr for a folder without a series; the message
    # below says it in one line
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        series = reader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError as error:
        raise InputError(f"could not scan {folder} for DICOM: {_first_line(error)}") from error
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
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
    _check_slice_positions(folder, files)
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as error:
        message = f"could not read the DICOM series in {folder}: {_first_line(error)}"
        raise InputError(message) from error


#: largest accepted difference between a DICOM series' slice steps, relative to the median step
SLICE_STEP_TOLERANCE = 0.05


def _check_slice_positions(folder: Path, files: Sequence[str]) -> None:
    """Refuse a series whose slices are not evenly spaced along their normal.

    GDCM leaves out a missing, truncated or unreadable slice file without a word, and ITK then
    spreads the remaining slices over the whole extent: one slice short, with a spacing no
    scanner used. The positions (ImagePositionPatient on the ImageOrientationPatient normal)
    must step evenly; a series without those tags is left to ITK.
    """
    if len(files) < 3:
        return
    positions = []
    info = sitk.ImageFileReader()
    for name in files:
        info.SetFileName(name)
        try:
            info.ReadImageInformation()
            pos = [float(v) for v in info.GetMetaData("0020|0032").split("\\")]
            cosines = [float(v) for v in info.GetMetaData("0020|0037").split("\\")]
        except (RuntimeError, ValueError):
            return
        if len(pos) != 3 or len(cosines) != 6:
            return
        positions.append((pos, cosines))
    row, col = np.array(positions[0][1][:3]), np.array(positions[0][1][3:])
    normal = np.cross(row, col)
    along = np.sort([float(np.dot(normal, p)) for p, _ in positions])
    steps = np.diff(along)
    median = float(np.median(steps))
    if median <= 0 or float(np.abs(steps - median).max()) > SLICE_STEP_TOLERANCE * median:
        raise InputError(
            f"the DICOM series in {folder} has uneven slice positions (steps of "
            f"{steps.min():.3g} to {steps.max():.3g} mm between its {len(files)} readable "
            "slices): a slice file is missing or unreadable; restore the series"
        )


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


__all__ = [
    "DICOM_SUFFIXES",
    "IMAGE_SUFFIXES",
    "describe_grid",
    "direction_is_identity",
    "from_sitk",
    "label_dtype",
    "read_volume",
    "resample_to_grid",
    "to_sitk",
    "write_volume",
]
