"""What the reader checks around SimpleITK: the path, the header against the file, the pixels.

SimpleITK is lenient where a user needs to hear of a problem: it reads a truncated NIfTI or one
whose ``vox_offset`` points past its data as zero-filled voxels, turns a NIfTI's NaN voxels into 0,
repairs a zero or NaN ``pixdim`` to 1.0 and a NaN MetaImage ``Offset`` to 0, follows a MetaImage
``ElementDataFile`` anywhere on the disk, and blocks forever on a FIFO. The checks here run
before (path, header) and after (pixels, geometry) its read and turn each of those into one
:class:`~napari_deepreg.volume.InputError`.
"""

from __future__ import annotations

import gzip
import math
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np

from ..geometry import check_geometry
from ..volume import InputError

# bytes per voxel of the MetaImage / NRRD element types
_MET_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
    "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}
_NRRD_BYTES = {
    "signed char": 1, "int8": 1, "int8_t": 1, "uchar": 1, "unsigned char": 1, "uint8": 1,
    "uint8_t": 1, "short": 2, "short int": 2, "signed short": 2, "signed short int": 2,
    "int16": 2, "int16_t": 2, "ushort": 2, "unsigned short": 2, "unsigned short int": 2,
    "uint16": 2, "uint16_t": 2, "int": 4, "signed int": 4, "int32": 4, "int32_t": 4, "uint": 4,
    "unsigned int": 4, "uint32": 4, "uint32_t": 4, "longlong": 8, "long long": 8,
    "long long int": 8, "signed long long": 8, "signed long long int": 8, "int64": 8,
    "int64_t": 8, "ulonglong": 8, "unsigned long long": 8, "unsigned long long int": 8,
    "uint64": 8, "uint64_t": 8, "float": 4, "double": 8,
}
# the most header text read before giving up on finding its end (headers are a few hundred bytes)
_MAX_HEADER = 1 << 16


def check_input_path(path: object, what: str = "input") -> Path:
    """``path`` as a Path to an existing regular file or folder, checked without opening it.

    A FIFO, socket or device would block or stream forever when read: refused from its
    ``stat``. ``None`` and other non-paths are refused too.
    """
    if path is None or not isinstance(path, (str, os.PathLike)):
        raise InputError(f"no {what} path given (got {path!r}); pass a file name")
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise InputError(f"no {what} path given (an empty name)")
    p = Path(text)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"file not found: {p}") from None
    except OSError as error:
        raise InputError(f"cannot access {p}: {error.strerror or error}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "not a regular file"
        raise InputError(f"{p} is {kind}; give an image file or a DICOM folder")
    return p


def _expected_bytes(dims: list[int], bytes_per_voxel: int, what: str) -> int:
    if any(n < 1 for n in dims):
        raise InputError(f"{what}: the header gives an empty image size {dims}")
    return math.prod(dims) * bytes_per_voxel


def _refuse_short(available: int, needed: int, what: str) -> None:
    if available < needed:
        raise InputError(
            f"{what} is truncated or its data offset is wrong: the header promises {needed} "
            f"bytes of voxel data but the file holds {max(available, 0)}"
        )


# NIfTI float datatypes (codes of the standard) and their numpy types
_NIFTI_FLOATS = {16: "f4", 64: "f8", 32: "c8", 1792: "c16"}


def _nifti_bytes(path: Path, what: str) -> bytes | np.ndarray:
    """The whole file (decompressed for ``.gz``; memory-mapped otherwise)."""
    if not path.name.lower().endswith(".gz"):
        return np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else b""
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(f"{what} is a damaged gzip file ({error}); it may be truncated") from None


def _nifti_header(raw: bytes | np.ndarray, what: str) -> dict:
    """The fields of a NIfTI-1 / NIfTI-2 header as written in the file.

    Parsed here rather than through nibabel, whose loader repairs a zero ``pixdim`` and a
    ``vox_offset`` past the end of the file before anyone can see them.
    """
    head = bytes(raw[:540])
    if len(head) < 348:
        raise InputError(f"{what} is too short for a NIfTI header ({len(head)} bytes)")
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size in (348, 540):
            break
    else:
        raise InputError(f"{what} is not a NIfTI file (header size field {size})")
    if size == 348:
        dims = struct.unpack(order + "8h", head[40:56])
        datatype, bitpix = struct.unpack(order + "2h", head[70:74])
        pixdim = struct.unpack(order + "8f", head[76:108])
        offset, slope, inter = struct.unpack(order + "3f", head[108:120])
    else:
        if len(head) < 540:
            raise InputError(f"{what} is too short for a NIfTI-2 header ({len(head)} bytes)")
        datatype, bitpix = struct.unpack(order + "2h", head[12:16])
        dims = struct.unpack(order + "8q", head[16:80])
        pixdim = struct.unpack(order + "8d", head[104:168])
        offset = struct.unpack(order + "q", head[168:176])[0]
        slope, inter = struct.unpack(order + "2d", head[176:192])
    return {"size": size, "order": order, "dims": dims, "datatype": datatype, "bitpix": bitpix,
            "pixdim": pixdim, "offset": offset, "slope": slope, "inter": inter}


def check_nifti(path: Path) -> None:
    """Header checks of a single-file NIfTI: data size against the header, pixdim, NaN/Inf.

    The bytes the header promises (``vox_offset`` plus the voxels) must be in the file; a
    truncated file or a wrong offset otherwise reads as zeros. Float voxels are checked for
    NaN/Inf here because SimpleITK's reader turns them into 0.
    """
    what = path.name
    raw = _nifti_bytes(path, what)
    h = _nifti_header(raw, what)
    ndim = int(h["dims"][0])
    if not 1 <= ndim <= 7:
        raise InputError(f"{what} has dim[0] = {ndim} in its header; expected 1 to 7")
    dims = [int(n) for n in h["dims"][1 : ndim + 1]]
    if h["bitpix"] <= 0 or h["bitpix"] % 8:
        raise InputError(f"{what} has bitpix {h['bitpix']} in its header")
    if not math.isfinite(h["offset"]) or h["offset"] < 0:
        raise InputError(f"{what} has a data offset (vox_offset) of {h['offset']}")
    offset = max(int(h["offset"]), h["size"])
    nbytes = _expected_bytes(dims, h["bitpix"] // 8, what)
    _refuse_short(len(raw) - offset, nbytes, what)
    spatial = min(ndim, 3)
    pixdim = np.asarray(h["pixdim"][1 : spatial + 1], dtype=float)
    # an axis of one voxel (a 2D image stored as 3D) has no voxel size to speak of
    sized = np.asarray(dims[:spatial]) > 1
    if not np.isfinite(pixdim[sized]).all() or (pixdim[sized] <= 0).any():
        raise InputError(
            f"{what} has voxel size (pixdim) {tuple(float(p) for p in pixdim)}; every voxel size "
            "must be a finite number above 0 (fix the header)"
        )
    # a NaN scl_slope means "no scaling" to nibabel and ITK alike; only an infinite one is bad
    if math.isinf(h["slope"]) or math.isinf(h["inter"]):
        raise InputError(f"{what} has an infinite intensity scaling (scl_slope/scl_inter)")
    if h["datatype"] in _NIFTI_FLOATS:
        dtype = np.dtype(h["order"] + _NIFTI_FLOATS[h["datatype"]])
        data = np.frombuffer(raw, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset)
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise InputError(f"{what} contains {bad} NaN/Inf voxels; fill or mask them first")


def _text_header(path: Path, separator: str, end_key: str | None) -> tuple[dict[str, str], int]:
    """``({key: value}, header length in bytes)`` of a MetaImage (``=``) or NRRD (``:``) header."""
    with path.open("rb") as handle:
        raw = handle.read(_MAX_HEADER)
    fields: dict[str, str] = {}
    position = 0
    for line in raw.split(b"\n"):
        position += len(line) + 1
        text = line.decode("latin-1").strip()
        if separator == ":" and not text:  # NRRD: a blank line ends the header
            break
        if separator == ":" and (text.startswith("#") or text.startswith("NRRD")):
            continue
        key, sep, value = text.partition(separator)
        if sep and key.strip() and "=" not in key:
            fields[key.strip().lower()] = value.strip().lstrip("=").strip()
        if end_key is not None and key.strip().lower() == end_key:
            break
    return fields, position


def _finite_numbers(fields: dict[str, str], keys: tuple[str, ...], what: str, positive: bool
                    ) -> None:
    for key in keys:
        if key not in fields:
            continue
        try:
            values = [float(v) for v in fields[key].replace("(", " ").replace(")", " ")
                      .replace(",", " ").split() if v.lower() != "none"]
        except ValueError:
            raise InputError(f"{what}: cannot read {key} {fields[key]!r} as numbers") from None
        if not all(math.isfinite(v) for v in values) or (positive and any(v <= 0 for v in values)):
            need = "finite numbers above 0" if positive else "finite numbers"
            raise InputError(f"{what} has {key} {fields[key]!r}; it must be {need} (fix the "
                             "header)")


def _data_file_inside(path: Path, name: str, what: str) -> Path:
    """The detached data file ``name`` of header ``path``; it must lie in the header's folder."""
    folder = path.resolve().parent
    target = (folder / name).resolve()
    if target.parent != folder and folder not in target.parents:
        raise InputError(
            f"{what} points to data file {name!r} outside its folder; refusing to read it "
            "(keep the data file next to its header)"
        )
    return check_input_path(target, "data file")


def _check_matrix(text: str, what: str) -> None:
    """A MetaImage ``TransformMatrix`` must be orthonormal (ITK's own refusal names no cause)."""
    values = [float(v) for v in text.split()] if text else []
    n = math.isqrt(len(values))
    if n >= 2 and n * n == len(values):
        check_geometry([1.0] * n, [0.0] * n, np.reshape(values, (n, n)), n, what)


def check_metaimage(path: Path) -> None:
    """A MetaImage header: finite spacing/offset, a data file in its folder, enough bytes."""
    what = path.name
    fields, header_bytes = _text_header(path, "=", "elementdatafile")
    _finite_numbers(fields, ("elementspacing", "spacing"), what, positive=True)
    _finite_numbers(fields, ("offset", "origin", "position", "transformmatrix", "rotation",
                             "orientation"), what, positive=False)
    _check_matrix(fields.get("transformmatrix", fields.get("rotation", "")), what)
    data_file = fields.get("elementdatafile", "")
    try:
        dims = [int(v) for v in fields.get("dimsize", "").split()]
        per_voxel = _MET_BYTES[fields.get("elementtype", "").upper()]
        per_voxel *= int(fields.get("elementnumberofchannels", "1"))
    except (KeyError, ValueError):
        return  # SimpleITK reports what it cannot parse
    compressed = fields.get("compresseddata", "false").lower() == "true"
    if not data_file or data_file.upper() == "LIST" or data_file.startswith("LIST "):
        return
    needed = _expected_bytes(dims, per_voxel, what)
    if data_file.upper() == "LOCAL":
        if not compressed:
            _refuse_short(path.stat().st_size - header_bytes, needed, what)
        return
    if "%" in data_file:  # a printf pattern of slice files: check their folder at least
        _data_file_inside(path, str(Path(data_file.split()[0]).parent), what)
        return
    target = _data_file_inside(path, data_file, what)
    if not compressed:
        _refuse_short(target.stat().st_size, needed, what)


def check_nrrd(path: Path) -> None:
    """A NRRD header: finite spacings/origin, a detached data file in its folder, enough bytes."""
    what = path.name
    fields, header_bytes = _text_header(path, ":", None)
    _finite_numbers(fields, ("spacings",), what, positive=True)
    _finite_numbers(fields, ("space origin", "space directions"), what, positive=False)
    encoding = fields.get("encoding", "raw").lower()
    try:
        dims = [int(v) for v in fields.get("sizes", "").split()]
        per_voxel = _NRRD_BYTES[fields.get("type", "").lower()]
    except (KeyError, ValueError):
        return
    data_file = fields.get("data file", fields.get("datafile", ""))
    if data_file:
        if data_file.upper().startswith("LIST") or "%" in data_file:
            return
        target = _data_file_inside(path, data_file.split()[0], what)
        if encoding == "raw":
            _refuse_short(target.stat().st_size, _expected_bytes(dims, per_voxel, what), what)
        return
    if encoding == "raw":
        _refuse_short(path.stat().st_size - header_bytes, _expected_bytes(dims, per_voxel, what),
                      what)


def check_header(path: Path, fmt: str) -> None:
    """The header checks of ``fmt`` (``NIfTI``, ``NRRD``, ``MetaImage``) for ``path``."""
    checker = {"NIfTI": check_nifti, "NRRD": check_nrrd, "MetaImage": check_metaimage}.get(fmt)
    if checker is not None:
        checker(path)


def check_pixels(array: np.ndarray, what: str) -> None:
    """Refuse NaN/Inf voxels (the README's promise; a NaN turns a whole field into NaN)."""
    if array.dtype.kind in "fc":
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise InputError(f"{what} contains {bad} NaN/Inf voxels; fill or mask them first")


__all__ = ["check_header", "check_input_path", "check_metaimage", "check_nifti", "check_nrrd",
           "check_pixels"]
