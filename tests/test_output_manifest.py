"""The output manifest for single-file outputs (issue 18): ``warp``, ``evaluate`` and
``transform invert|compose`` list what they wrote in the folder's ``outputs.json`` (the one
``register`` writes), replace only files it lists unless ``--overwrite``, never write through a
link or into a linked folder, and refuse an empty name or one that is the manifest's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_deepreg import cli
from napari_deepreg.io import MANIFEST, export_field, read_manifest, write_outputs, write_volume
from napari_deepreg.result import Grid, RegistrationResult
from napari_deepreg.volume import Volume

SHAPE = (12, 14)
GEO = {"spacing": (1.0, 1.0), "origin": (0.0, 0.0)}


@pytest.fixture()
def inputs(tmp_path) -> dict[str, Path]:
    """A reference image, a label map on it, and a small smooth field on its grid."""
    rng = np.random.default_rng(1)
    image = rng.random(SHAPE).astype(np.float32)
    labels = (image > 0.5).astype(np.int32)
    field = np.zeros((2, *SHAPE), np.float32)
    field[0] += 0.3
    folder = tmp_path / "in"
    folder.mkdir()
    paths = {"image": folder / "image.nii.gz", "labels": folder / "labels.nii.gz",
             "field": folder / "field.nii.gz"}
    write_volume(Volume(image, **GEO), paths["image"])
    write_volume(Volume(labels, **GEO), paths["labels"], labels=True)
    export_field(field, Volume(image, **GEO), paths["field"])
    return paths


def _argv(command: str, paths: dict[str, Path], out) -> list[str]:
    if command == "warp":
        return ["warp", str(paths["field"]), str(paths["image"]), "--reference",
                str(paths["image"]), "--out", str(out), "--device", "cpu"]
    if command == "evaluate":
        return ["evaluate", str(paths["labels"]), str(paths["labels"]), "--no-hausdorff",
                "--out", str(out)]
    if command == "invert":
        return ["transform", "invert", str(paths["field"]), "--reference", str(paths["image"]),
                "--out", str(out)]
    return ["transform", "compose", str(paths["field"]), str(paths["field"]), "--reference",
            str(paths["image"]), "--out", str(out)]


COMMANDS = [("warp", "warped.nii.gz"), ("evaluate", "figures.json"),
            ("invert", "inverse.nii.gz"), ("compose", "both.h5")]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _grid_result() -> RegistrationResult:
    grid = Grid(SHAPE, GEO["spacing"], GEO["origin"])
    return RegistrationResult(
        warped=np.zeros(SHAPE, np.float32), warped_labels=None,
        field=np.zeros((2, *SHAPE), np.float32), jacobian=np.ones(SHAPE, np.float32), grid=grid,
        affine=None, metrics={"fold_percent": 0.0}, label_metrics=[], runtime=0.1,
        method="instance_opt", model=None, parameters={"iterations": 1}, notes=[])


@pytest.mark.parametrize("command,name", COMMANDS)
def test_the_file_is_listed_in_the_folders_manifest_and_a_rerun_replaces_it(
        inputs, tmp_path, capsys, command, name):
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(_argv(command, inputs, out / name)) == 0
    manifest = read_manifest(out)
    assert manifest is not None and manifest["complete"] is True
    entry = manifest["other_files"][name]
    assert entry["command"].endswith(command) and entry["written"]
    assert any(str(p) in json.dumps(entry["inputs"]) for p in inputs.values())
    assert manifest["files"] == []  # no registration run wrote this folder
    first = (out / name).read_bytes()
    # ours now: a rerun replaces it without --overwrite
    assert cli.main(_argv(command, inputs, out / name)) == 0
    assert (out / name).is_file() and len(first) > 0
    assert sorted(p.name for p in out.iterdir()) == sorted([name, MANIFEST])
    capsys.readouterr()


@pytest.mark.parametrize("command,name", COMMANDS)
def test_a_users_file_a_link_an_empty_name_and_the_manifests_name_are_refused(
        inputs, tmp_path, capsys, command, name):
    out = tmp_path / "out"
    out.mkdir()
    mine = out / name
    mine.write_text("the user's own file")
    assert cli.main(_argv(command, inputs, mine)) == 2
    assert "--overwrite" in _one_line_error(capsys)
    assert mine.read_text() == "the user's own file"
    assert read_manifest(out) is None and not (out / MANIFEST).exists()
    assert cli.main([*_argv(command, inputs, mine), "--overwrite"]) == 0
    assert mine.read_bytes() != b"the user's own file"
    assert name in read_manifest(out)["other_files"]
    capsys.readouterr()

    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not to be touched")
    link = out / ("link-" + name)
    link.symlink_to(elsewhere)
    assert cli.main([*_argv(command, inputs, link), "--overwrite"]) == 2
    assert "symbolic link" in _one_line_error(capsys)
    assert elsewhere.read_text() == "not to be touched"

    real = tmp_path / "real"
    real.mkdir()
    linked = tmp_path / "linked"
    linked.symlink_to(real, target_is_directory=True)
    assert cli.main([*_argv(command, inputs, linked / name), "--overwrite"]) == 2
    assert "symbolic link" in _one_line_error(capsys)
    assert list(real.iterdir()) == []

    assert cli.main(_argv(command, inputs, "")) == 2
    assert "empty" in _one_line_error(capsys)
    assert cli.main([*_argv(command, inputs, out / MANIFEST), "--overwrite"]) == 2
    assert MANIFEST in _one_line_error(capsys)


def test_a_users_outputs_json_is_kept_unless_overwrite(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text('{"my": "own notes"}')
    assert cli.main(_argv("warp", inputs, out / "w.nii.gz")) == 2
    assert MANIFEST in _one_line_error(capsys)
    assert (out / MANIFEST).read_text() == '{"my": "own notes"}'
    assert not (out / "w.nii.gz").exists()
    assert cli.main([*_argv("warp", inputs, out / "w.nii.gz"), "--overwrite"]) == 0
    assert "w.nii.gz" in read_manifest(out)["other_files"]


def test_a_register_folder_keeps_both_the_run_and_the_single_files(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    result = _grid_result()
    what = ("warped", "field", "metrics_json")
    write_outputs(result, out, what=what)
    assert cli.main(_argv("warp", inputs, out / "labels_warped.nii.gz")) == 0
    manifest = read_manifest(out)
    assert set(manifest["files"]) == {"warped.nii.gz", "field.nii.gz", "metrics.json"}
    assert manifest["method"] == "instance_opt"
    assert list(manifest["other_files"]) == ["labels_warped.nii.gz"]
    # a rerun of the registration that makes fewer files removes its own, not warp's
    write_outputs(result, out, what=("warped", "metrics_json"))
    assert (out / "labels_warped.nii.gz").is_file() and not (out / "field.nii.gz").exists()
    manifest = read_manifest(out)
    assert set(manifest["files"]) == {"warped.nii.gz", "metrics.json"}
    assert list(manifest["other_files"]) == ["labels_warped.nii.gz"]
    # warp replacing the run's own warped.nii.gz: that file is warp's now, not the run's
    assert cli.main(_argv("warp", inputs, out / "warped.nii.gz")) == 0
    manifest = read_manifest(out)
    assert manifest["files"] == ["metrics.json"]
    assert set(manifest["other_files"]) == {"labels_warped.nii.gz", "warped.nii.gz"}
    capsys.readouterr()


def test_a_hand_edited_other_files_entry_cannot_point_outside(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(_argv("warp", inputs, out / "w.nii.gz")) == 0
    document = json.loads((out / MANIFEST).read_text())
    document["other_files"]["../victim.nii.gz"] = {"command": "warp"}
    (out / MANIFEST).write_text(json.dumps(document))
    victim = tmp_path / "victim.nii.gz"
    victim.write_text("the user's")
    assert cli.main(_argv("warp", inputs, victim)) == 2
    assert "--overwrite" in _one_line_error(capsys)
    assert victim.read_text() == "the user's"
