"""The CLI names labels from a lookup table beside the label file (issue 17, defects 2 and 5)."""

from __future__ import annotations

import csv
import shutil

from napari_deepreg import cli
from napari_deepreg.sample import sample_dir

FAST = ["--param", "levels=1", "--param", "iterations=2", "--param", "affine_first=false"]


def test_register_writes_label_names_from_the_labels_csv_beside_the_label_file(tmp_path, capsys):
    # the sample's files and its labels.csv, copied as a user would have them
    for name in ("brain2d_fixed.nii.gz", "brain2d_moving.nii.gz", "brain2d_fixed_labels.nii.gz",
                 "brain2d_moving_labels.nii.gz", "labels.csv"):
        shutil.copy(sample_dir() / name, tmp_path / name)
    out = tmp_path / "out"
    code = cli.main([
        "register", str(tmp_path / "brain2d_fixed.nii.gz"), str(tmp_path / "brain2d_moving.nii.gz"),
        "--fixed-labels", str(tmp_path / "brain2d_fixed_labels.nii.gz"),
        "--moving-labels", str(tmp_path / "brain2d_moving_labels.nii.gz"),
        "--device", "cpu", "--out", str(out), "--no-hausdorff", *FAST,
    ])
    assert code == 0, capsys.readouterr().err
    with (out / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == [
        "Left-GM", "Right-GM", "Left-WM", "Right-WM", "Left-CSF", "Right-CSF"]
    assert (out / "report.png").is_file()


def test_evaluate_help_prints_one_percent_sign(capsys):
    assert cli.main(["evaluate", "--help"]) == 0
    text = capsys.readouterr().out
    assert "fold %" in text and "%%" not in text
