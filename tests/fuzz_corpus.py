"""The bad-input corpus of issue 18: cases, how each is run, and how its outcome is judged.

A case is a *defect* applied to a valid input; the defect says what must happen: ``bad`` ones
must end in one clear error (:class:`InputError`; CLI: exit code 2 and one stderr line), ``good``
ones in a correct result (finite, on the fixed grid; for the reader: the voxels and spacing that
were written), ``either`` ones in one of the two. Outcomes are counted in :data:`OUTCOMES`:
a correct result or clean error is fine, anything else is a bug.

``test_fuzz_inputs.py`` draws cases with hypothesis; run this file to count outcomes over a
fixed-seed corpus (``python tests/fuzz_corpus.py 300``), e.g. on an older checkout through
``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

OUTCOMES = ("clean error", "correct result", "traceback", "hang", "silent wrong", "touched file")
FINE = ("clean error", "correct result")
CHEAP = {"levels": 1, "iterations": 1, "affine_first": False}
CHEAP_ARGS = ["--param", "levels=1", "--param", "iterations=1", "--param", "affine_first=false",
              "-q", "--no-report", "--no-hausdorff"]

# array defects: name -> expectation
ARRAY_DEFECTS = {
    "none": "good", "2d": "good", "uint8": "good", "int16": "good", "huge_values": "either",
    "tiny_values": "good", "anisotropic": "good", "other_grid": "good", "labels_ok": "good",
    "nan": "bad", "inf": "bad", "constant": "bad", "4d": "bad", "rgb": "bad", "1d": "bad",
    "degenerate": "bad", "complex": "bad", "zero_spacing": "bad", "negative_spacing": "bad",
    "nan_spacing": "bad", "inf_spacing": "bad", "nan_origin": "bad", "no_overlap": "bad",
    "singular_direction": "bad", "labels_shape": "bad", "labels_negative": "bad",
    "labels_fraction": "bad", "tiny_spacing": "either", "huge_spacing": "either",
    "points_huge": "bad", "points_nan": "bad", "labels_empty": "bad", "labels_disjoint": "bad",
    "extreme_anisotropy": "good", "zeros": "bad",
}
# file defects: name -> expectation
FILE_DEFECTS = {
    "none": "good", "spaces_unicode_name": "good", "symlink": "good", "truncated": "bad",
    "empty": "bad", "nan_voxel": "bad", "inf_voxel": "bad", "zero_spacing": "bad",
    "nan_spacing": "bad", "wrong_offset": "bad", "bigger_size": "bad", "fifo": "bad",
    "missing": "bad", "folder_without_dicom": "bad", "data_file_outside": "bad",
    "bad_extension": "bad", "dicom_series": "good", "dicom_member_file": "good",
    "dicom_missing_slice": "bad", "dicom_truncated_slice": "bad", "dicom_garbage_slice": "bad",
    "time_singleton": "good", "time_series": "bad", "rgb_voxels": "bad", "rgb_png": "bad",
}
FORMATS = (".nii", ".nii.gz", ".nrrd", ".mha")


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    """Raise :class:`_Timeout` after ``seconds`` (main thread, POSIX; else no limit)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def judge(expect: str, error: str | None, ok: bool) -> str:
    """The outcome of a run that raised a clean error (``error``) or returned (``ok``: right)."""
    if error is not None:
        return "clean error"  # a good input refused is over-cautious, not silent
    if expect == "bad":
        return "silent wrong"
    return "correct result" if ok else "silent wrong"


# --------------------------------------------------------------------------- arrays -> API


def make_array_case(defect: str, rng: np.random.Generator) -> dict:
    """Inputs of :func:`napari_deepreg.pipeline.register` with ``defect`` applied."""
    ndim = 2 if defect == "2d" else 3
    shape = tuple(int(n) for n in rng.integers(6, 13, size=ndim))
    fixed = rng.random(shape).astype(np.float32)
    moving = np.roll(fixed, 1, axis=0) + 0.01 * rng.random(shape).astype(np.float32)
    case = {"fixed": fixed, "moving": moving, "f_spacing": (1.0,) * ndim,
            "m_spacing": (1.0,) * ndim, "m_origin": (0.0,) * ndim, "m_direction": None,
            "fixed_labels": None, "moving_labels": None, "points": None,
            "expect": ARRAY_DEFECTS[defect],
            "defect": defect}
    idx = tuple(int(rng.integers(0, n)) for n in shape)
    m = case["moving"]
    if defect == "uint8":
        case["moving"] = (m * 255).astype(np.uint8)
    elif defect == "int16":
        case["moving"] = (m * 3000 - 1000).astype(np.int16)
    elif defect == "huge_values":
        case["moving"] = (m * float(rng.choice([1e20, 1e30, 3e38]))).astype(np.float32)
    elif defect == "tiny_values":
        case["moving"] = (m * 1e-30).astype(np.float32)
    elif defect == "anisotropic":
        case["f_spacing"] = case["m_spacing"] = tuple(float(s) for s in rng.uniform(0.3, 4, ndim))
    elif defect == "other_grid":
        case["m_spacing"] = tuple(float(s) for s in rng.uniform(0.5, 2, ndim))
        case["m_origin"] = tuple(float(o) for o in rng.uniform(-2, 2, ndim))
    elif defect == "labels_ok":
        case["fixed_labels"] = (fixed > 0.5).astype(np.int32)
    elif defect in ("nan", "inf"):
        m = m.copy()
        m[idx] = np.nan if defect == "nan" else -np.inf
        case["moving"] = m
    elif defect == "constant":
        case["moving"] = np.full(shape, float(rng.normal()), np.float32)
    elif defect == "zeros":  # e.g. an empty export or a mask channel
        case["moving" if rng.random() < 0.5 else "fixed"] = np.zeros(shape, np.float32)
    elif defect == "extreme_anisotropy":  # thick slices: 0.1 x 0.1 x 10 mm
        case["f_spacing"] = case["m_spacing"] = (10.0,) + (0.1,) * (ndim - 1)
    elif defect == "4d":
        case["moving"] = np.stack([m, m])
    elif defect == "rgb":
        case["moving"] = rng.random((20, 20, 3)).astype(np.float32)
    elif defect == "1d":
        case["moving"] = m.reshape(-1)
    elif defect == "degenerate":
        case["moving"] = m[:1]
    elif defect == "complex":
        case["moving"] = m.astype(np.complex64)
    elif defect in ("zero_spacing", "negative_spacing", "nan_spacing", "inf_spacing"):
        bad = {"zero_spacing": 0.0, "negative_spacing": -1.0, "nan_spacing": np.nan,
               "inf_spacing": np.inf}[defect]
        sp = list(case["m_spacing"])
        sp[int(rng.integers(0, ndim))] = bad
        case["m_spacing"] = tuple(sp)
    elif defect == "nan_origin":
        case["m_origin"] = (np.nan,) + (0.0,) * (ndim - 1)
    elif defect == "no_overlap":
        case["m_origin"] = tuple(float(o) for o in rng.uniform(500, 5000, ndim))
    elif defect == "singular_direction":
        d = np.eye(ndim)
        d[0] = d[1]
        case["m_direction"] = d
    elif defect == "labels_shape":
        case["fixed_labels"] = np.zeros(tuple(n + 1 for n in shape), np.int32)
    elif defect == "labels_negative":
        case["fixed_labels"] = -(fixed > 0.5).astype(np.int32)
    elif defect == "labels_fraction":
        case["fixed_labels"] = fixed
    elif defect == "labels_empty":  # an empty mask or the wrong file: no Dice to measure
        case["fixed_labels"] = np.zeros(shape, np.int32)
    elif defect == "labels_disjoint":  # numbered differently: Dice 0 that means nothing
        case["fixed_labels"] = (fixed > 0.5).astype(np.int32)
        case["moving_labels"] = 3 * (moving > 0.5).astype(np.int32)
    elif defect == "tiny_spacing":
        case["f_spacing"] = case["m_spacing"] = (1e-9,) * ndim
    elif defect == "huge_spacing":
        case["f_spacing"] = case["m_spacing"] = (1e5,) * ndim
    elif defect == "points_huge":
        case["points"] = (np.array([[1e308] * ndim]), np.zeros((1, ndim)))
    elif defect == "points_nan":
        case["points"] = (np.array([[np.nan] * ndim]), np.zeros((1, ndim)))
    return case


def run_array_case(case: dict, seconds: int = 60) -> str:
    """Register the case through the Python API; its outcome."""
    from napari_deepreg.pipeline import register, run_to_end
    from napari_deepreg.volume import InputError, Volume

    inputs = {k: np.copy(v) for k, v in case.items() if isinstance(v, np.ndarray)}
    fixed = Volume(case["fixed"], case["f_spacing"])
    try:
        moving = Volume(case["moving"], case["m_spacing"], case["m_origin"], case["m_direction"])
        points = case["points"] or (None, None)
        with time_limit(seconds):
            result = run_to_end(register(fixed, moving, config=dict(CHEAP),
                                         fixed_labels=case["fixed_labels"],
                                         moving_labels=case["moving_labels"],
                                         fixed_points=points[0], moving_points=points[1],
                                         device="cpu", hausdorff=False))
    except InputError:
        outcome = judge(case["expect"], "error", False)
    except _Timeout:
        outcome = "hang"
    except Exception:  # anything else reaches a user as a traceback
        outcome = "traceback"
    else:
        ok = (result.warped.shape == fixed.shape and np.isfinite(result.warped).all()
              and np.isfinite(result.field).all())
        outcome = judge(case["expect"], None, ok)
    if any(not np.array_equal(v, case[k], equal_nan=v.dtype.kind in "fc")
           for k, v in inputs.items()):
        outcome = "touched file"  # an input array was modified
    return outcome


# --------------------------------------------------------------------------- files -> reader


def _write_valid(path: Path, array: np.ndarray, spacing) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing)))
    sitk.WriteImage(image, str(path), False)


def _write_multi(path: Path, array: np.ndarray, spacing, defect: str) -> None:
    """A 4D file with one frame (a 3D image: good) or three (a time series: bad), or one with
    three components per voxel (RGB: bad)."""
    import SimpleITK as sitk

    if defect in ("rgb_voxels", "rgb_png"):
        image = sitk.GetImageFromArray(np.stack([array] * 3, axis=-1), isVector=True)
    else:
        image = sitk.GetImageFromArray(array)
    if defect != "rgb_png":
        image.SetSpacing(tuple(float(s) for s in reversed(spacing)))
    if defect.startswith("time_"):
        image = sitk.JoinSeries([image] * (1 if defect == "time_singleton" else 3))
    sitk.WriteImage(image, str(path), False)


def write_dicom_series(folder: Path, array: np.ndarray, spacing) -> list[Path]:
    """``array`` (z, y, x) int16 as one DICOM file per slice, positions ``z * spacing[0]`` mm."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.7"
    files = []
    for z in range(array.shape[0]):
        image = sitk.GetImageFromArray(array[z])
        image.SetSpacing((spacing[2], spacing[1]))
        tags = {"0020|000d": uid, "0020|000e": f"{uid}.1", "0008|0018": f"{uid}.2.{z}",
                "0008|0060": "MR", "0020|0013": str(z + 1),
                "0020|0032": f"0\\0\\{z * spacing[0]:.6f}", "0020|0037": "1\\0\\0\\0\\1\\0",
                "0028|0030": f"{spacing[1]:.6f}\\{spacing[2]:.6f}",
                "0018|0050": f"{spacing[0]:.6f}"}
        for key, value in tags.items():
            image.SetMetaData(key, value)
        files.append(folder / f"slice {z:03d}.dcm")
        writer.SetFileName(str(files[-1]))
        writer.Execute(image)
    return files


def _dicom_case(case: dict, folder: Path, rng: np.random.Generator) -> dict:
    """A DICOM series folder (int16 slices), whole or with one slice missing or damaged."""
    defect = case["defect"]
    array = rng.integers(0, 1000, size=(int(rng.integers(5, 9)), *case["array"].shape[1:]))
    case["array"] = array = array.astype(np.int16)
    case["spacing"] = tuple(round(s, 3) for s in case["spacing"])
    files = write_dicom_series(folder / "series", array, case["spacing"])
    case["path"] = folder / "series"
    inner = files[int(rng.integers(1, len(files) - 1))]  # not an end slice: a gap inside
    if defect == "dicom_member_file":
        case["path"] = files[int(rng.integers(0, len(files)))]
    elif defect == "dicom_missing_slice":
        inner.unlink()
    elif defect == "dicom_truncated_slice":
        data = inner.read_bytes()
        inner.write_bytes(data[: int(rng.integers(1, len(data) - 1))])
    elif defect == "dicom_garbage_slice":
        inner.write_bytes(rng.bytes(len(inner.read_bytes())))
    return case


def make_file_case(defect: str, fmt: str, folder: Path, rng: np.random.Generator) -> dict:
    """Write a file with ``defect`` into ``folder``; ``{"path", "array", "spacing", "expect"}``."""
    shape = tuple(int(n) for n in rng.integers(5, 11, size=3))
    array = rng.random(shape).astype(np.float32)
    spacing = tuple(float(s) for s in rng.uniform(0.5, 3, 3))
    name = "image" if defect != "spaces_unicode_name" else "my imäge ü 画像"
    path = folder / f"{name}{fmt}"
    case = {"path": path, "array": array, "spacing": spacing, "expect": FILE_DEFECTS[defect],
            "defect": defect}
    if defect in ("nan_voxel", "inf_voxel"):
        array = array.copy()
        array[tuple(int(rng.integers(0, n)) for n in shape)] = (
            np.nan if defect == "nan_voxel" else np.inf)
    if defect.startswith("dicom_"):
        return _dicom_case(case, folder, rng)
    if defect == "fifo":
        os.mkfifo(path)
        return case
    if defect == "missing":
        return case
    if defect == "folder_without_dicom":
        path = folder / "series"
        path.mkdir()
        (path / "notes.txt").write_text("no images here")
        case["path"] = path
        return case
    if defect == "bad_extension":
        case["path"] = path = folder / "image.png.txt"
        path.write_bytes(b"\x89PNG not really")
        return case
    if defect == "data_file_outside":
        outside = folder / "outside.raw"
        outside.write_bytes(array.tobytes())
        inner = folder / "inner"
        inner.mkdir()
        case["path"] = path = inner / "image.mhd"
        dims = " ".join(str(n) for n in reversed(shape))
        path.write_text(f"ObjectType = Image\nNDims = 3\nDimSize = {dims}\n"
                        "ElementType = MET_FLOAT\nElementDataFile = ../outside.raw\n")
        return case
    if defect in ("time_singleton", "time_series", "rgb_voxels", "rgb_png"):
        if defect == "rgb_png":  # a photo or screenshot given as an image
            case["path"] = path = folder / "image.png"
            array = (array[0] * 255).astype(np.uint8)
        _write_multi(path, array, spacing, defect)
        return case
    _write_valid(path, array, spacing)
    data = path.read_bytes()
    if defect == "symlink":
        link = folder / f"link{fmt}"
        link.symlink_to(path)
        case["path"] = link
    elif defect == "truncated":
        path.write_bytes(data[: int(rng.integers(1, len(data) - 1))])
    elif defect == "empty":
        path.write_bytes(b"")
    elif defect in ("zero_spacing", "nan_spacing", "wrong_offset", "bigger_size"):
        path.write_bytes(_corrupt(data, fmt, defect, rng))
    return case


def _corrupt(data: bytes, fmt: str, defect: str, rng: np.random.Generator) -> bytes:
    """``data`` (an uncompressed file of ``fmt``) with one header field made wrong."""
    import gzip

    if fmt == ".nii.gz":
        return gzip.compress(_corrupt(gzip.decompress(data), ".nii", defect, rng))
    bad_spacing = b"0" if defect == "zero_spacing" else b"nan"
    if fmt == ".nii":
        out = bytearray(data)
        if defect in ("zero_spacing", "nan_spacing"):
            out[80:84] = struct.pack("<f", 0.0 if defect == "zero_spacing" else float("nan"))
        elif defect == "wrong_offset":
            out[108:112] = struct.pack("<f", 352.0 + 16 * int(rng.integers(1, 400)))
        else:
            dim1 = struct.unpack("<h", out[42:44])[0]
            out[42:44] = struct.pack("<h", dim1 + int(rng.integers(1, 20)))
        return bytes(out)
    head, sep, body = data.partition(b"\n\n" if fmt == ".nrrd" else b"ElementDataFile")
    lines = head.split(b"\n")
    for i, line in enumerate(lines):
        key = line.split(b":" if fmt == ".nrrd" else b"=")[0].strip().lower()
        values = line.split(b":" if fmt == ".nrrd" else b"=", 1)[-1].split()
        if defect in ("zero_spacing", "nan_spacing") and key in (b"spacings", b"elementspacing"):
            lines[i] = line.replace(values[0], bad_spacing, 1)
        if defect == "zero_spacing" and key == b"space directions":
            lines[i] = line.replace(line.split(b":", 1)[1], b" (0,0,0) (0,1,0) (0,0,1)")
        if defect == "nan_spacing" and key == b"space directions":
            lines[i] = line.replace(line.split(b":", 1)[1], b" (nan,0,0) (0,1,0) (0,0,1)")
        if defect in ("bigger_size", "wrong_offset") and key in (b"sizes", b"dimsize"):
            lines[i] = line.replace(values[-1], str(int(values[-1]) + 3).encode(), 1)
        if defect == "wrong_offset" and key == b"headersize":
            lines[i] = b"HeaderSize = 100000"
    return b"\n".join(lines) + sep + body


def run_file_case(case: dict, seconds: int = 30) -> str:
    """Read the case's file through ``io.read_volume``; its outcome.

    The read runs in a daemon thread: a reader blocked in C on a FIFO ignores signals, so a hang
    is detected by the join timing out (the FIFO is then opened for writing once, to free it).
    A FIFO or other special file is read in a child process: SimpleITK holds the GIL while it
    blocks, so no thread of this process would run again.
    """
    import threading

    from napari_deepreg.io import read_volume
    from napari_deepreg.volume import InputError

    path = Path(case["path"])
    if path.exists() and not (path.is_file() or path.is_dir()):
        return _run_file_case_in_child(path, seconds)
    box: dict = {}

    def read() -> None:
        try:
            box["volume"] = read_volume(case["path"])
        except InputError:
            box["error"] = "clean"
        except Exception as error:  # anything else reaches a user as a traceback
            box["error"] = repr(error)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(case["path"], os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
        return "hang"
    if "error" in box:
        return "clean error" if box["error"] == "clean" else "traceback"
    volume = box["volume"]
    ok = (volume.shape == case["array"].shape
          and np.allclose(volume.array, case["array"], equal_nan=False)
          and np.allclose(volume.spacing, case["spacing"], rtol=1e-5))
    return judge(case["expect"], None, ok)


def _run_file_case_in_child(path: Path, seconds: int) -> str:
    code = ("import sys\nfrom napari_deepreg.io import read_volume\n"
            "from napari_deepreg.volume import InputError\n"
            "try:\n    read_volume(sys.argv[1])\nexcept InputError:\n    sys.exit(2)\n")
    import napari_deepreg

    env = dict(os.environ, PYTHONPATH=str(Path(napari_deepreg.__file__).resolve().parents[1]))
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                              timeout=seconds, env=env)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        return "hang"
    return {2: "clean error", 0: "silent wrong"}.get(proc.returncode, "traceback")


# --------------------------------------------------------------------------- files -> CLI


def run_cli_case(case: dict, folder: Path, root: Path, seconds: int = 60) -> str:
    """``napari-deepreg register BAD GOOD --out DIR`` in a subprocess, with a user file in DIR."""
    good = folder / "good.nii"
    _write_valid(good, case["array"], case["spacing"])
    out = folder / "out dir"
    out.mkdir(exist_ok=True)
    mine = out / "metrics.csv"
    mine.write_text("the user's own file")
    env = dict(os.environ, PYTHONPATH=str(root))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "napari_deepreg.cli", "register", str(case["path"]),
             str(good), "--out", str(out), "--overwrite", *CHEAP_ARGS],
            capture_output=True, text=True, timeout=seconds, env=env, cwd=folder)
    except subprocess.TimeoutExpired:
        return "hang"
    if not mine.exists() and case["expect"] == "bad":
        return "touched file"
    lines = proc.stderr.strip().splitlines()
    if "Traceback" in proc.stderr or proc.returncode not in (0, 2):
        return "traceback"
    if proc.returncode == 2:
        return "clean error" if len(lines) == 1 else "traceback"
    if case["expect"] == "bad":
        return "silent wrong"
    return "correct result"


def corpus_counts(n_arrays: int, n_files: int, n_cli: int, seed: int = 0) -> Counter:
    """Outcome counts over a fixed-seed corpus (every defect in turn, random details)."""
    rng = np.random.default_rng(seed)
    counts: Counter = Counter()
    import napari_deepreg

    root = Path(napari_deepreg.__file__).resolve().parents[1]  # the checkout being measured
    array_defects = list(ARRAY_DEFECTS)
    verbose = bool(os.environ.get("FUZZ_VERBOSE"))

    def count(outcome: str, kind: str, case: dict) -> None:
        counts[outcome] += 1
        if verbose and outcome not in FINE:
            print(f"{kind} {case['defect']} {case.get('path', '')}: {outcome}", file=sys.stderr)

    for i in range(n_arrays):
        case = make_array_case(array_defects[i % len(array_defects)], rng)
        count(run_array_case(case), "array", case)
    file_defects = list(FILE_DEFECTS)
    for i in range(n_files + n_cli):
        with tempfile.TemporaryDirectory() as tmp:
            defect = file_defects[i % len(file_defects)]
            case = make_file_case(defect, FORMATS[(i // len(file_defects)) % 4], Path(tmp), rng)
            if i < n_files:
                count(run_file_case(case), "file", case)
            else:
                count(run_cli_case(case, Path(tmp), root), "cli", case)
    return counts


if __name__ == "__main__":  # pragma: no cover
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    cli_cases = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    found = corpus_counts(n // 2, n - n // 2, cli_cases)
    total = sum(found.values())
    print(f"{total} cases ({n // 2} arrays via the API, {n - n // 2} files via the reader, "
          f"{cli_cases} files via the CLI)")
    for outcome in OUTCOMES:
        print(f"{outcome:<15} {found.get(outcome, 0)}")
