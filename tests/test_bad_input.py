"""Bad input is never silent (issue 18): one test per class of the issue.

Each test builds the bad input the issue found (a NaN NIfTI, a truncated file, pixdim 0, images
that do not overlap, a FIFO...) and asserts one clear :class:`InputError` (CLI: exit code 2 and
one line on stderr) where a result, a traceback or a hang used to come. The fuzz corpus
(``test_fuzz_inputs.py``) throws many more of each kind at the same code.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from napari_deepreg import cli
from napari_deepreg.io import read_volume, write_volume
from napari_deepreg.pipeline import prepare, register, run_to_end
from napari_deepreg.volume import InputError, Volume

ROOT = Path(__file__).resolve().parents[1]
CHEAP = {"levels": 1, "iterations": 1, "affine_first": False}
CHEAP_ARGS = ["--param", "levels=1", "--param", "iterations=1", "--param", "affine_first=false",
              "-q", "--no-report", "--no-hausdorff"]


def _image(shape=(8, 10, 12), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _nifti(path: Path, array: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))
    return path


def _patch(path: Path, offset: int, fmt: str, value: float) -> Path:
    """Overwrite one header field of a (single-file, uncompressed) NIfTI in place."""
    data = bytearray(path.read_bytes())
    data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("napari-deepreg: error: ")
    return err[0]


# ------------------------------------------------------------------------ 1. NaN/Inf in files


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_nan_or_inf_voxels_are_refused(tmp_path, bad, suffix):
    array = _image()
    array[1, 2, 3] = bad
    path = tmp_path / f"img{suffix}"
    if suffix.startswith(".nii"):
        _nifti(path, array)  # nibabel: SimpleITK's NIfTI reader turns these into 0
    else:
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    with pytest.raises(InputError, match="NaN/Inf"):
        read_volume(path)


# ------------------------------------------------------------------------ 2. corrupted files


def test_truncated_nifti_is_refused(tmp_path):
    path = _nifti(tmp_path / "img.nii", _image())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(InputError, match="truncated"):
        read_volume(path)


def test_truncated_gzip_nifti_is_refused(tmp_path):
    path = _nifti(tmp_path / "img.nii.gz", _image())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        read_volume(path)


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage"])
def test_dicom_series_with_a_lost_slice_is_refused(tmp_path, damage):
    # GDCM skips a missing or unreadable slice file and ITK stretches the spacing over the gap:
    # the volume came back one slice short with a spacing that no scanner used
    sys.path.insert(0, str(Path(__file__).parent))
    from fuzz_corpus import write_dicom_series

    array = np.arange(7 * 6 * 5, dtype=np.int16).reshape(7, 6, 5)
    files = write_dicom_series(tmp_path / "series", array, (2.5, 1.0, 1.5))
    whole = read_volume(tmp_path / "series")
    np.testing.assert_array_equal(whole.array, array)
    np.testing.assert_allclose(whole.spacing, (2.5, 1.0, 1.5))
    if damage == "missing":
        files[3].unlink()
    else:
        data = files[3].read_bytes()
        files[3].write_bytes(data[:200] if damage == "truncated" else os.urandom(len(data)))
    with pytest.raises(InputError, match="slice"):
        read_volume(tmp_path / "series")


def test_nifti_with_a_wrong_vox_offset_is_refused(tmp_path):
    path = _patch(_nifti(tmp_path / "img.nii", _image()), 108, "<f", 352.0 + 800)
    with pytest.raises(InputError, match="offset"):
        read_volume(path)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_truncated_metaimage_and_nrrd_are_refused(tmp_path, suffix):
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(_image()), str(path))  # uncompressed
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])
    with pytest.raises(InputError):
        read_volume(path)


# ------------------------------------------------------------------------ 3. geometry


@pytest.mark.parametrize("pixdim", [0.0, float("nan"), -1.0, float("inf")])
def test_nifti_pixdim_zero_nan_or_negative_is_refused(tmp_path, pixdim):
    path = _patch(_nifti(tmp_path / "img.nii", _image()), 80, "<f", pixdim)
    with pytest.raises(InputError, match="voxel size"):
        read_volume(path)


@pytest.mark.parametrize("field, value", [
    ("Offset = 0 0 0", "Offset = nan 0 0"),
    ("ElementSpacing = 1 1 1", "ElementSpacing = 0 1 1"),
    ("TransformMatrix = 1 0 0 0 1 0 0 0 1", "TransformMatrix = 1 0 0 1 0 0 0 0 1"),
    ("TransformMatrix = 1 0 0 0 1 0 0 0 1", "TransformMatrix = 2 0 0 0 1 0 0 0 1"),
])
def test_metaimage_bad_geometry_is_refused(tmp_path, field, value):
    path = tmp_path / "img.mha"
    sitk.WriteImage(sitk.GetImageFromArray(_image()), str(path))
    text = path.read_bytes()
    assert field.encode() in text
    path.write_bytes(text.replace(field.encode(), value.encode()))
    with pytest.raises(InputError, match="spacing|offset|direction"):
        read_volume(path)


@pytest.mark.parametrize("spacing, origin, direction", [
    ((0.0, 1.0, 1.0), (0, 0, 0), None),
    ((1.0, np.nan, 1.0), (0, 0, 0), None),
    ((1.0, 1.0, 1.0), (np.nan, 0, 0), None),
    ((1.0, 1.0, 1.0), (0, 0, 0), np.zeros((3, 3))),
    ((1.0, 1.0, 1.0), (0, 0, 0), np.diag([1.0, 1.0, 2.0])),
])
def test_volume_geometry_is_checked_in_prepare(spacing, origin, direction):
    fixed = Volume(_image(), (1, 1, 1))
    moving = Volume(_image(seed=1), spacing, origin, direction)
    with pytest.raises(InputError, match="moving image"):
        prepare(fixed, moving)
    with pytest.raises(InputError):  # and through a writer: no ITK traceback
        write_volume(moving, Path(os.devnull).with_suffix(".nii"))


# ------------------------------------------------------------------------ 4. impossible pairs


def test_images_that_do_not_overlap_are_refused():
    fixed = Volume(_image(), (1, 1, 1), (0, 0, 0))
    moving = Volume(_image(seed=1), (1, 1, 1), (1000, 1000, 1000))
    with pytest.raises(InputError, match="do not overlap"):
        run_to_end(register(fixed, moving, config=CHEAP))


def test_a_moving_image_whose_content_misses_the_fixed_grid_is_refused():
    """The boxes touch but the moving content lies outside the fixed field of view (same
    origin, the fixed axes flipped, as a header with a lost direction gives): on the fixed grid
    the moving image is all zeros. It was accepted, and a learned affine returned a NaN field
    reported as a method failure (found by hand with the bundled pair)."""
    flip = np.diag([1.0, -1.0, -1.0])
    fixed = Volume(_image(), (1, 1, 1), (0, 0, 0), direction=flip)
    moving = Volume(_image(seed=1), (1, 1, 1), (0, 0, 0))
    with pytest.raises(InputError, match="outside the fixed image's field of view"):
        prepare(fixed, moving)


def test_a_moving_slab_inside_the_fixed_field_of_view_is_accepted():
    """A partial field of view (a slab of 3 of the fixed image's 8 planes) is registrable."""
    fixed = Volume(_image(), (1, 1, 1), (0, 0, 0))
    moving = Volume(_image((3, 10, 12), seed=1), (1, 1, 1), (2, 0, 0))
    prepared = prepare(fixed, moving)
    assert prepared.moving.shape == fixed.shape


def test_a_nan_field_from_a_method_is_refused(monkeypatch):
    import dataclasses

    import torch

    from napari_deepreg import pipeline
    from napari_deepreg.methods import get_method
    from napari_deepreg.methods.base import Estimate

    def diverged(fixed, moving, spacing, config, device):
        yield from ()
        return Estimate(field=torch.full((1, 3, *fixed.shape[2:]), float("nan")))

    spec = dataclasses.replace(get_method("instance_opt"), estimate=diverged)
    monkeypatch.setattr(pipeline, "get_method", lambda method: spec)
    with pytest.raises(InputError, match="NaN/Inf"):
        run_to_end(register(_image(), _image(seed=1), config=CHEAP))


# ------------------------------------------------------------------------ 5. parameters


@pytest.mark.parametrize("assignment", [
    "regularisation=nan", "regularisation=inf", "regularisation=-1", "learning_rate=0",
    "control_spacing=-5", "smoothing_sigma=-1", "iterations=-3", "levels=nan",
])
def test_bad_parameters_are_refused(assignment):
    from napari_deepreg.fields import parse_assignments
    from napari_deepreg.methods import get_method

    spec = get_method("instance_opt")
    with pytest.raises(InputError):
        spec.make_config(parse_assignments(spec.config_class, [assignment], spec.id))


@pytest.mark.parametrize("text, expected", [("false", False), ("False", False), ("0", False),
                                            ("no", False), ("true", True)])
def test_false_text_is_false(text, expected):
    from napari_deepreg.methods import get_method

    assert get_method("instance_opt").make_config({"affine_first": text}).affine_first is expected


# ------------------------------------------------------------------------ 6. API gaps


@pytest.mark.parametrize("path", [None, "", 3])
def test_read_volume_without_a_path(path):
    with pytest.raises(InputError):
        read_volume(path)


def test_zero_spacing_on_one_side_is_an_input_error():
    fixed = Volume(_image(), (1, 1, 1))
    moving = Volume(_image(shape=(8, 10, 13), seed=1), (0, 1, 1))  # other grid: resampled
    with pytest.raises(InputError, match="spacing"):
        run_to_end(register(fixed, moving, config=CHEAP))


@pytest.mark.parametrize("device", ["gpu0", "tpu", 3, 1.5])
def test_bad_device_is_an_input_error(device):
    with pytest.raises(InputError, match="device"):
        run_to_end(register(_image(), _image(seed=1), config=CHEAP, device=device))


# ------------------------------------------------------------------------ 7. memory


def test_absurd_spacing_is_refused_before_allocating():
    tiny = Volume(_image(), (1e-9, 1e-9, 1e-9))
    with pytest.raises(InputError, match="GB"):
        run_to_end(register(tiny, tiny, config={"levels": 1, "iterations": 1}))


def test_memory_estimate_suggests_a_lower_working_resolution():
    from napari_deepreg.memory import check_memory
    from napari_deepreg.methods import get_method

    cfg = get_method("instance_opt").make_config({"max_working_size": 1024})
    with pytest.raises(InputError, match="max_working_size="):
        check_memory((512, 512, 512), (1, 1, 1), cfg, "instance_opt", available=24 * 1024**3)
    check_memory((64, 64, 64), (1, 1, 1), cfg, "instance_opt", available=24 * 1024**3)


def test_memory_estimate_counts_a_learned_methods_refinement():
    from napari_deepreg.memory import check_memory, estimate_bytes
    from napari_deepreg.methods import get_method

    spec = get_method("semantic_bspline_3d")
    refined, plain = spec.make_config({"refine": True}), spec.make_config({"refine": False})
    shape, spacing = (96, 112, 96), (2.0, 2.0, 2.0)
    assert "refine" in estimate_bytes(shape, spacing, refined)
    assert "refine" not in estimate_bytes(shape, spacing, plain)
    # bounded by the refinement's grid: a 2x finer 1 mm brain costs the refinement no more
    fine = estimate_bytes((384, 448, 384), (0.5, 0.5, 0.5), refined)
    assert fine["refine"] == estimate_bytes((192, 224, 192), (1, 1, 1), refined)["refine"]
    # memory enough for the run without refinement: the refined run is refused, with the fix
    free = int(estimate_bytes(shape, spacing, plain)["native"] / 0.8 * 1.05)
    with pytest.raises(InputError, match="refine=false"):
        check_memory(shape, spacing, refined, "semantic_bspline_3d", available=free)
    check_memory(shape, spacing, plain, "semantic_bspline_3d", available=free)


# ------------------------------------------------------------------------ 8. output folders


@pytest.fixture
def nifti_pair(tmp_path):
    write_volume(Volume(_image(), (1, 1, 1)), tmp_path / "f.nii.gz")
    write_volume(Volume(_image(seed=1), (1, 1, 1)), tmp_path / "m.nii.gz")
    return tmp_path / "f.nii.gz", tmp_path / "m.nii.gz"


def test_out_folder_that_is_a_link_is_refused(nifti_pair, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    code = cli.main(["register", *map(str, nifti_pair), "--out", str(tmp_path / "link"),
                     *CHEAP_ARGS])
    assert code == 2
    assert "symbolic link" in _one_line_error(capsys)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("out", [[], ["--out", ""], ["--out", "  "]])
def test_missing_or_empty_out_is_one_line(nifti_pair, capsys, out):
    code = cli.main(["register", *map(str, nifti_pair), *out, *CHEAP_ARGS])
    assert code == 2
    _one_line_error(capsys)


def test_users_file_in_out_is_untouched(nifti_pair, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text("mine")
    assert cli.main(["register", *map(str, nifti_pair), "--out", str(out), *CHEAP_ARGS]) == 2
    _one_line_error(capsys)
    assert (out / "metrics.json").read_text() == "mine"


# ------------------------------------------------------------------------ 9. FIFO input


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_input_is_refused_without_hanging(nifti_pair, tmp_path):
    fifo = tmp_path / "pipe.nii"
    os.mkfifo(fifo)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "napari_deepreg.cli", "register", str(fifo), str(nifti_pair[1]),
         "--out", str(tmp_path / "out"), *CHEAP_ARGS],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert proc.returncode == 2
    assert "FIFO" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    with pytest.raises(InputError, match="FIFO"):
        read_volume(fifo)


# ------------------------------------------------------------------------ 10. model files


def test_model_file_is_hashed_and_flagged(tmp_path):
    import torch

    from napari_deepreg import zoo
    from napari_deepreg.methods import models

    entry = zoo.get_entry("semantic_bspline_2d")
    copy = tmp_path / "my model.pt"
    shutil.copy(zoo.model_path(entry), copy)
    digest = zoo.sha256_file(copy)
    models.clear_cache()
    fixed = _image((40, 40))
    with pytest.warns(UserWarning, match="not a zoo model"):
        result = run_to_end(register(fixed, np.roll(fixed, 2, 0), method="semantic_bspline_2d",
                                     config={"model_file": str(copy)}, device="cpu"))
    assert any(digest in note and "not a zoo model" in note for note in result.notes)
    # loaded with weights_only: a pickle that runs code is refused
    evil = tmp_path / "evil.pt"
    torch.save({"format": "x", "obj": object.__new__(_Evil)}, evil)
    models.clear_cache()
    with pytest.raises(InputError):
        models.load_model(evil)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


# ------------------------------------------------------------------------ 11. smaller items


def test_labels_with_other_spacing_are_noted():
    image = Volume(_image(), (1, 1, 1))
    labels = Volume((_image() > 0.5).astype(np.int32), (2, 2, 2))
    inputs = prepare(image, image, fixed_labels=labels)
    assert any("another geometry" in note for note in inputs.notes)


def test_landmark_at_1e308_is_refused():
    with pytest.raises(InputError, match="beyond"):
        prepare(_image(), _image(seed=1), fixed_points=np.array([[1e308, 0, 0]]),
                moving_points=np.array([[0.0, 0, 0]]))


def test_zoo_check_on_a_missing_folder_says_so(tmp_path, capsys):
    assert cli.main(["zoo", "check", "--zoo-dir", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in _one_line_error(capsys)
    assert cli.main(["zoo", "check", "--zoo-dir", str(tmp_path)]) == 2
    assert "manifest" in _one_line_error(capsys)


def test_metaimage_data_file_outside_its_folder_is_refused(tmp_path):
    outside = tmp_path / "secret.raw"
    outside.write_bytes(bytes(range(256)) * 4)
    folder = tmp_path / "images"
    folder.mkdir()
    header = (
        "ObjectType = Image\nNDims = 2\nDimSize = 32 32\nElementType = MET_UCHAR\n"
        "ElementSpacing = 1 1\nElementDataFile = ../secret.raw\n"
    )
    (folder / "img.mhd").write_text(header)
    with pytest.raises(InputError, match="outside its folder"):
        read_volume(folder / "img.mhd")
    # the same file next to its header reads
    shutil.copy(outside, folder / "secret.raw")
    (folder / "img.mhd").write_text(header.replace("../secret.raw", "secret.raw"))
    assert read_volume(folder / "img.mhd").shape == (32, 32)


# ------------------------------------------------------------- found after the first round


def test_a_label_map_without_any_label_is_refused():
    """An all-zero label map (an empty mask, the wrong file) gave Dice NaN without a word."""
    image, labels = _image(), (_image() > 0.5).astype(np.int32)
    empty = np.zeros_like(labels)
    with pytest.raises(InputError, match="fixed labels hold no label"):
        prepare(image, _image(seed=1), fixed_labels=empty, moving_labels=labels)
    with pytest.raises(InputError, match="moving labels hold no label"):
        prepare(image, _image(seed=1), fixed_labels=labels, moving_labels=empty)


def test_label_maps_that_share_no_label_value_are_refused():
    """Two label maps numbered differently (fixed 1, 2; moving 3, 4) gave Dice 0 without a
    word; one shared value is enough (a structure absent on one side is real)."""
    image, labels = _image(), (_image() > 0.5).astype(np.int32)
    with pytest.raises(InputError, match="share no label"):
        prepare(image, _image(seed=1), fixed_labels=labels, moving_labels=labels * 3)
    both = labels + 2 * (_image(seed=2) > 0.8)
    inputs = prepare(image, _image(seed=1), fixed_labels=both, moving_labels=labels)
    assert inputs.fixed_labels is not None


def test_evaluate_refuses_an_empty_fixed_label_map(tmp_path, capsys):
    labels = (_image() > 0.5).astype(np.int32)
    fixed = tmp_path / "fixed_labels.nii.gz"
    warped = tmp_path / "warped_labels.nii.gz"
    write_volume(Volume(np.zeros_like(labels), (1, 1, 1)), fixed, labels=True)
    write_volume(Volume(labels, (1, 1, 1)), warped, labels=True)
    assert cli.main(["evaluate", str(fixed), str(warped), "--no-hausdorff"]) == 2
    assert "fixed labels hold no label" in _one_line_error(capsys)
    assert cli.main(["evaluate", str(warped), str(warped), "--moving-labels", str(fixed),
                     "--no-hausdorff"]) == 2
    assert "moving labels hold no label" in _one_line_error(capsys)


def test_evaluate_refuses_labels_on_another_grid(tmp_path, capsys):
    """Same shape, other spacing and origin: compared voxel by voxel they gave Dice 1.0 for
    label maps that do not even meet in space."""
    labels = (_image() > 0.5).astype(np.int32)
    fixed, warped = tmp_path / "fixed_labels.nii.gz", tmp_path / "warped_labels.nii.gz"
    write_volume(Volume(labels, (1, 1, 1)), fixed, labels=True)
    write_volume(Volume(labels, (2, 2, 2), (50.0, 50.0, 50.0)), warped, labels=True)
    assert cli.main(["evaluate", str(fixed), str(warped), "--no-hausdorff"]) == 2
    assert "another grid" in _one_line_error(capsys)


def test_warp_refuses_a_field_that_does_not_meet_the_reference(tmp_path, capsys):
    """A field of another registration (no overlap with --reference) was resampled to zero
    displacement everywhere: the image came back unwarped, exit code 0."""
    from napari_deepreg.io import export_field

    image = tmp_path / "image.nii.gz"
    write_volume(Volume(_image(), (1, 1, 1)), image)
    field = tmp_path / "field.nii.gz"
    elsewhere = Volume(np.zeros((8, 10, 12), np.float32), (1, 1, 1), (500.0, 0.0, 0.0))
    export_field(np.ones((3, 8, 10, 12), np.float32), elsewhere, field)
    argv = ["warp", str(field), str(image), "--reference", str(image), "--out",
            str(tmp_path / "w.nii.gz"), "--device", "cpu"]
    assert cli.main(argv) == 2
    assert "do not overlap" in _one_line_error(capsys)
    assert not (tmp_path / "w.nii.gz").exists()
