"""Tests of io.write_outputs: file names, the manifest, and what it refuses to touch."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from napari_deepreg.io import (
    DEFAULT_OUTPUTS,
    MANIFEST,
    OUTPUTS,
    check_output_folder,
    read_manifest,
    read_volume,
    write_outputs,
)
from napari_deepreg.result import Grid, RegistrationResult
from napari_deepreg.volume import InputError, Volume

# a flipped and swapped (but orthonormal) direction, so that geometry mistakes show
DIRECTION = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
NO_REPORT = [k for k in DEFAULT_OUTPUTS if k != "report"]


def _result(affine: bool = True, labels: bool = True) -> RegistrationResult:
    shape = (6, 7, 8)
    rng = np.random.default_rng(0)
    grid = Grid(shape, (2.0, 1.5, 1.0), (10.0, -4.0, 3.0), DIRECTION)
    warped_labels = rng.integers(0, 3, shape).astype(np.int32) if labels else None
    return RegistrationResult(
        warped=rng.random(shape).astype(np.float32),
        warped_labels=warped_labels,
        field=rng.normal(0, 0.5, (3, *shape)).astype(np.float32),
        jacobian=np.ones(shape, np.float32),
        grid=grid,
        affine=np.eye(4) if affine else None,
        metrics={"dice_before": 0.5, "dice_after": 0.7, "fold_percent": 0.0},
        label_metrics=[{"label": 1, "dice_before": 0.5, "dice_after": 0.7}] if labels else [],
        runtime=0.1,
        method="instance_opt",
        model=None,
        parameters={"iterations": 3, "similarity": "lncc", "affine_first": affine},
        notes=["moving image resampled onto the fixed grid"],
    )


def test_writes_each_output_on_the_fixed_grid_and_a_manifest(tmp_path):
    result = _result()
    out = tmp_path / "new" / "folder"  # created, parents too
    notes: list[str] = []
    written = write_outputs(result, out, what=NO_REPORT, inputs={"fixed": "f.nii.gz"},
                            log=notes.append)
    names = [p.name for p in written]
    assert names == [OUTPUTS[k] for k in NO_REPORT] + [MANIFEST]
    assert all(p.is_file() for p in written) and notes == []
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]

    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest == read_manifest(out)
    assert manifest["files"] == names[:-1] and manifest["complete"] is True
    assert manifest["method"] == "instance_opt" and manifest["model"] is None
    assert manifest["parameters"] == result.parameters
    assert manifest["inputs"] == {"fixed": "f.nii.gz"}
    np.testing.assert_allclose(manifest["grid"]["direction"], DIRECTION)

    # every image keeps the fixed grid, direction included
    for name in ("warped.nii.gz", "warped_labels.nii.gz"):
        back = read_volume(out / name)
        np.testing.assert_allclose(back.direction, DIRECTION, atol=1e-6)
        np.testing.assert_allclose(back.spacing, result.spacing, rtol=1e-6)
        np.testing.assert_allclose(back.origin, result.origin, atol=1e-5)
    np.testing.assert_array_equal(read_volume(out / "warped_labels.nii.gz").array,
                                  result.warped_labels)
    field = sitk.ReadImage(str(out / "field.nii.gz"))
    assert field.GetSize() == (8, 7, 6) and field.GetNumberOfComponentsPerPixel() == 3


def test_the_jacobian_on_request_and_nothing_the_result_lacks(tmp_path):
    written = write_outputs(_result(affine=False, labels=False), tmp_path,
                            what=["warped", "jacobian", "affine", "warped_labels", "labels_csv"])
    assert [p.name for p in written] == ["warped.nii.gz", "jacobian.nii.gz", MANIFEST]
    with pytest.raises(ValueError, match="unknown outputs"):
        write_outputs(_result(), tmp_path, what=["warped", "movie"])
    with pytest.raises(ValueError, match="fixed and moving"):
        write_outputs(_result(), tmp_path, what=["report"])


def test_a_users_file_is_kept_unless_overwrite(tmp_path):
    (tmp_path / "metrics.csv").write_text("my own table\n")
    with pytest.raises(InputError, match=r"metrics\.csv.*overwrite=True"):
        write_outputs(_result(), tmp_path, what=NO_REPORT)
    # refused before anything was written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]
    assert (tmp_path / "metrics.csv").read_text() == "my own table\n"
    with pytest.raises(InputError, match="metrics.csv"):
        check_output_folder(tmp_path, NO_REPORT)
    check_output_folder(tmp_path, ["warped"])  # not in the way of these

    notes: list[str] = []
    write_outputs(_result(), tmp_path, what=NO_REPORT, overwrite=True, log=notes.append)
    assert (tmp_path / "metrics.csv").read_text().startswith("name,value,unit")
    assert notes == [f"overwriting metrics.csv in {tmp_path} (not listed in an earlier {MANIFEST})"]


def test_a_foreign_manifest_is_not_trusted(tmp_path):
    (tmp_path / MANIFEST).write_text('{"files": ["warped.nii.gz"]}')  # not written by this tool
    (tmp_path / "warped.nii.gz").write_text("not ours")
    assert read_manifest(tmp_path) is None
    with pytest.raises(InputError, match="warped.nii.gz, outputs.json"):
        write_outputs(_result(), tmp_path, what=["warped"])


def test_a_rerun_replaces_its_own_outputs_and_removes_what_it_no_longer_makes(tmp_path):
    write_outputs(_result(affine=True), tmp_path, what=NO_REPORT)
    (tmp_path / "notes.txt").write_text("the user's")  # not an output name: never touched
    assert (tmp_path / "affine.tfm").is_file()
    notes: list[str] = []
    written = write_outputs(_result(affine=False), tmp_path, what=NO_REPORT, log=notes.append)
    assert "affine.tfm" not in [p.name for p in written]
    assert not (tmp_path / "affine.tfm").exists()
    assert notes == ["removed affine.tfm left by an earlier run"]
    assert (tmp_path / "notes.txt").read_text() == "the user's"
    assert "affine.tfm" not in read_manifest(tmp_path)["files"]


def test_a_hand_edited_manifest_cannot_point_outside(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    out = tmp_path / "out"
    write_outputs(_result(), out, what=["warped"])
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"] += ["../precious.txt", "sub/x", "precious.txt"]
    (out / MANIFEST).write_text(json.dumps(manifest))
    write_outputs(_result(), out, what=["warped"])
    assert outside.read_text() == "keep me"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
@pytest.mark.parametrize("name", ["warped.nii.gz", MANIFEST])
def test_a_symbolic_link_is_refused_even_with_overwrite(tmp_path, name):
    target = tmp_path / "elsewhere.txt"
    target.write_text("outside the output folder")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(target)
    for overwrite in (False, True):
        with pytest.raises(InputError, match="symbolic link"):
            write_outputs(_result(), out, what=["warped"], overwrite=overwrite)
    assert target.read_text() == "outside the output folder"


@pytest.mark.parametrize("out", ["", "   "])
def test_an_empty_folder_name_is_refused(out):
    with pytest.raises(InputError, match="empty"):
        write_outputs(_result(), out, what=["warped"])
    with pytest.raises(InputError, match="empty"):
        check_output_folder(out)


def test_a_file_as_folder_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="not a folder"):
        write_outputs(_result(), tmp_path / "f", what=["warped"])


def test_the_report_is_written_with_the_inputs(tmp_path):
    result = _result()
    fixed = Volume(result.warped, result.spacing, result.origin, DIRECTION)
    written = write_outputs(result, tmp_path, fixed, fixed, result.warped_labels,
                            what=["report"])
    assert [p.name for p in written] == ["report.png", MANIFEST]
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"
