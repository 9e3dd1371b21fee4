"""Tests of the napari-deepreg command line (register, warp, evaluate, methods, bad input)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Literal

import nibabel as nib
import numpy as np
import pytest

from napari_deepreg import cli
from napari_deepreg.io import read_volume, write_volume
from napari_deepreg.volume import Volume

# a fast instance_opt run: one level, a handful of steps
FAST = ["--param", "levels=1", "--param", "iterations=4", "--param", "affine_iterations=3"]


def _blob(shape, centre, radii):
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True))
    return np.exp(-r2).astype(np.float32)


def _labels(image):
    return ((image > 0.3).astype(np.uint8) + (image > 0.7)).astype(np.uint8)


@pytest.fixture(scope="module")
def pair2d(tmp_path_factory):
    """A 2D pair whose moving image lies on another grid (so the pipeline resamples it)."""
    root = tmp_path_factory.mktemp("pair2d")
    fixed = _blob((36, 40), (18, 20), (8, 10))
    moving = _blob((30, 44), (16, 19), (7, 10))
    f_geo = {"spacing": (1.2, 1.0), "origin": (4.0, -3.0)}
    m_geo = {"spacing": (1.4, 0.95), "origin": (3.0, -2.0)}
    paths = {
        "fixed": root / "fixed.nii.gz",
        "moving": root / "moving.nii.gz",
        "fixed_labels": root / "fixed_labels.nii.gz",
        "moving_labels": root / "moving_labels.nii.gz",
        "fixed_points": root / "fixed_points.csv",
        "moving_points": root / "moving_points.csv",
    }
    write_volume(Volume(fixed, **f_geo), paths["fixed"])
    write_volume(Volume(moving, **m_geo), paths["moving"])
    write_volume(Volume(_labels(fixed), **f_geo), paths["fixed_labels"], labels=True)
    write_volume(Volume(_labels(moving), **m_geo), paths["moving_labels"], labels=True)
    # napari's layout (array order) for one side, x/y names (ITK order) for the other
    paths["fixed_points"].write_text("index,axis-0,axis-1\n0,25.6,17.0\n1,30.0,12.5\n")
    paths["moving_points"].write_text("x,y\n16.05,25.4\n11.0,29.5\n")
    out = root / "out"
    argv = [
        "register", str(paths["fixed"]), str(paths["moving"]),
        "--fixed-labels", str(paths["fixed_labels"]),
        "--moving-labels", str(paths["moving_labels"]),
        "--fixed-points", str(paths["fixed_points"]),
        "--moving-points", str(paths["moving_points"]),
        "--device", "cpu", "--out", str(out), *FAST,
    ]
    code = cli.main(argv)
    return paths, out, code


def test_register_writes_every_output(pair2d, capsys):
    paths, out, code = pair2d
    assert code == 0
    for name in ("warped.nii.gz", "warped_labels.nii.gz", "field.nii.gz", "transform.h5",
                 "affine.tfm", "metrics.json", "metrics.csv", "labels.csv", "report.png"):
        assert (out / name).is_file(), name
    fixed = read_volume(paths["fixed"])
    warped = read_volume(out / "warped.nii.gz")
    assert warped.shape == fixed.shape
    np.testing.assert_allclose(warped.spacing, fixed.spacing, rtol=1e-6)
    np.testing.assert_allclose(warped.origin, fixed.origin, atol=1e-5)
    labels = read_volume(out / "warped_labels.nii.gz").array
    assert set(np.unique(labels)) <= {0, 1, 2}

    document = json.loads((out / "metrics.json").read_text())
    metrics = document["metrics"]
    assert document["method"] == "instance_opt"
    assert document["parameters"]["iterations"] == 4
    for key in ("dice_before", "dice_after", "fold_percent", "sdlogj", "tre_before",
                "tre_after"):
        assert key in metrics, key
    assert 0.0 <= metrics["dice_after"] <= 1.0
    assert any("resampled" in note for note in document["notes"])
    with (out / "labels.csv").open() as handle:
        assert [int(r["label"]) for r in csv.DictReader(handle)] == [1, 2]
    with (out / "metrics.csv").open() as handle:
        names = [r["name"] for r in csv.DictReader(handle)]
    assert names[0] == "dice_before" and "runtime_s" in names


def test_register_points_read_in_both_layouts(pair2d):
    paths, _, _ = pair2d
    fixed_pts = cli.read_points_csv(paths["fixed_points"], 2)
    moving_pts = cli.read_points_csv(paths["moving_points"], 2)
    np.testing.assert_allclose(fixed_pts, [[25.6, 17.0], [30.0, 12.5]])
    np.testing.assert_allclose(moving_pts, [[25.4, 16.05], [29.5, 11.0]])  # (y, x) order


def test_warp_reproduces_the_pipeline_output(pair2d, tmp_path, capsys):
    paths, out, _ = pair2d
    reference = str(paths["fixed"])
    code = cli.main(["warp", str(out / "field.nii.gz"), str(paths["moving"]),
                     "--reference", reference, "--out", str(tmp_path / "w.nii.gz"),
                     "--device", "cpu"])
    assert code == 0
    expected = read_volume(out / "warped.nii.gz").array
    np.testing.assert_allclose(read_volume(tmp_path / "w.nii.gz").array, expected, atol=1e-4)
    # labels, through the .h5 transform
    code = cli.main(["warp", str(out / "transform.h5"), str(paths["moving_labels"]),
                     "--reference", reference, "--out", str(tmp_path / "wl.nii.gz"),
                     "--labels", "--device", "cpu"])
    assert code == 0
    expected = read_volume(out / "warped_labels.nii.gz").array
    np.testing.assert_array_equal(read_volume(tmp_path / "wl.nii.gz").array, expected)


def test_evaluate_agrees_with_register(pair2d, tmp_path, capsys):
    paths, out, _ = pair2d
    target = tmp_path / "eval.json"
    code = cli.main(["evaluate", str(paths["fixed_labels"]), str(out / "warped_labels.nii.gz"),
                     "--field", str(out / "field.nii.gz"), "--out", str(target)])
    assert code == 0
    assert "dice_after" in capsys.readouterr().out
    ours = json.loads(target.read_text())["metrics"]
    theirs = json.loads((out / "metrics.json").read_text())["metrics"]
    for key in ("dice_after", "hd95_after", "fold_percent"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key
    assert ours["sdlogj"] == pytest.approx(theirs["sdlogj"], rel=1e-3)
    assert "dice_before" not in ours  # no moving labels given


def test_register_3d_without_affine(tmp_path, capsys):
    fixed = _blob((12, 14, 16), (6, 7, 8), (3, 4, 4))
    moving = _blob((12, 14, 16), (6.5, 7, 7), (3, 4, 4))
    write_volume(Volume(fixed, (2.0, 1.0, 1.0)), tmp_path / "f.nii.gz")
    write_volume(Volume(moving, (2.0, 1.0, 1.0)), tmp_path / "m.nii.gz")
    out = tmp_path / "out"
    argv = ["register", str(tmp_path / "f.nii.gz"), str(tmp_path / "m.nii.gz"),
            "--out", str(out), "--device", "cpu", "-q", "--no-hausdorff",
            "--param", "levels=1", "--param", "iterations=3"]
    # an earlier run with an affine stage leaves affine.tfm (listed in its outputs.json)
    assert cli.main([*argv, "--param", "affine_iterations=2", "--no-report"]) == 0
    assert (out / "affine.tfm").is_file() and not (out / "report.png").exists()
    capsys.readouterr()
    code = cli.main([*argv, "--param", "affine_first=false"])
    assert code == 0
    assert (out / "report.png").is_file() and (out / "field.nii.gz").is_file()
    assert not (out / "affine.tfm").exists() and not (out / "labels.csv").exists()
    field = nib.load(out / "field.nii.gz")
    assert field.shape[:3] == (16, 14, 12)  # ITK (x, y, z) order
    printed = capsys.readouterr()
    assert "runtime" in printed.out
    assert printed.err.strip() == "note: removed affine.tfm left by an earlier run"  # -q
    manifest = json.loads((out / "outputs.json").read_text())
    assert "affine.tfm" not in manifest["files"] and "report.png" in manifest["files"]
    assert manifest["parameters"]["affine_first"] is False


def test_register_refuses_a_users_file_until_overwrite(tmp_path, capsys):
    fixed = _blob((12, 14, 16), (6, 7, 8), (3, 4, 4))
    write_volume(Volume(fixed, (2.0, 1.0, 1.0)), tmp_path / "f.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.png").write_text("the user's own figure")
    argv = ["register", str(tmp_path / "f.nii.gz"), str(tmp_path / "f.nii.gz"), "--out",
            str(out), "--device", "cpu", "-q", "--no-hausdorff", "--param", "levels=1",
            "--param", "iterations=1", "--param", "affine_first=false"]
    assert cli.main(argv) == 2
    line = _one_line_error(capsys)
    assert "report.png" in line and "--overwrite" in line
    assert (out / "report.png").read_text() == "the user's own figure"
    assert sorted(p.name for p in out.iterdir()) == ["report.png"]  # refused before the run
    assert cli.main([*argv, "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "overwriting report.png" in err
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG")


# ----------------------------------------------------------------------------- bad input


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("napari-deepreg: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_bad_input_gives_exit_code_2_and_one_line(pair2d, tmp_path, capsys):
    paths, _, _ = pair2d
    fixed, moving = str(paths["fixed"]), str(paths["moving"])
    out = str(tmp_path / "out")
    capsys.readouterr()

    assert cli.main(["register", str(tmp_path / "missing.nii.gz"), moving, "--out", out]) == 2
    assert "not found" in _one_line_error(capsys)

    four_d = tmp_path / "4d.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((6, 7, 8, 3)), np.eye(4)), four_d)
    assert cli.main(["register", fixed, str(four_d), "--out", out]) == 2
    assert "4D" in _one_line_error(capsys)

    # fixed labels given the moving image's shape
    code = cli.main(["register", fixed, moving, "--fixed-labels", str(paths["moving_labels"]),
                     "--out", out, *FAST])
    assert code == 2
    assert "shape" in _one_line_error(capsys)

    assert cli.main(["register", fixed, moving, "--out", "", *FAST]) == 2
    assert "empty" in _one_line_error(capsys)
    assert cli.main(["register", fixed, moving, "--param", "nope=1", "--out", out]) == 2
    assert "nope" in _one_line_error(capsys)
    assert cli.main(["register", fixed, moving, "--param", "levels=two", "--out", out]) == 2
    assert "levels" in _one_line_error(capsys)
    assert cli.main(["register", fixed, moving, "--method", "magic", "--out", out]) == 2
    assert "magic" in _one_line_error(capsys)
    code = cli.main(["register", fixed, moving, "--fixed-points", str(paths["fixed_points"]),
                     "--out", out])
    assert code == 2
    assert "points" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()  # nothing written on bad input


def test_usage_errors_exit_2(capsys):
    assert cli.main([]) == 2
    assert cli.main(["register", "only_one.nii.gz"]) == 2
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "zoo" in out  # listed though their arguments load lazily
    assert cli.main(["train", "--help"]) == 0
    assert cli.main(["zoo", "--help"]) == 0
    capsys.readouterr()
    assert cli.main(["zoo"]) == 2  # its own usage error: its arguments were loaded
    assert "zoo_command" in capsys.readouterr().err


def test_methods_lists_instance_opt(capsys):
    assert cli.main(["methods"]) == 0
    assert "instance_opt" in capsys.readouterr().out


# ----------------------------------------------------------------------------- helpers


@dataclass
class _Config:
    steps: int = 10
    rate: float = 0.5
    flag: bool = True
    name: str = "lncc"
    levels: tuple[int, ...] = (4, 2)
    sigma: float | None = None
    mode: Literal["a", "b"] = "a"


def test_parse_params_types():
    params = cli.parse_params(_Config, [
        "steps=1e3", "rate=0.25", "flag=no", "name=mse", "levels=8,4,2", "sigma=none", "mode=b",
    ])
    assert params == {"steps": 1000, "rate": 0.25, "flag": False, "name": "mse",
                      "levels": (8, 4, 2), "sigma": None, "mode": "b"}
    assert cli.parse_params(_Config, ["sigma=1.5"]) == {"sigma": 1.5}
    for bad in ("steps=2.5", "flag=maybe", "mode=c", "rate=fast", "steps", "zzz=1"):
        with pytest.raises(ValueError):
            cli.parse_params(_Config, [bad])


def test_read_points_csv_layouts(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("# z, y, x\n1, 2, 3\n4, 5, 6\n")
    np.testing.assert_array_equal(cli.read_points_csv(plain, 3), [[1, 2, 3], [4, 5, 6]])
    xyz = tmp_path / "xyz.csv"
    xyz.write_text("label,x,y,z\na,3,2,1\n")
    np.testing.assert_array_equal(cli.read_points_csv(xyz, 3), [[1, 2, 3]])
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n")
    with pytest.raises(ValueError, match="3 coordinates"):
        cli.read_points_csv(bad, 3)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_printer_tty_redraws_and_log_is_sparse():
    tty = _Tty()
    printer = cli.ProgressPrinter(tty, width=10)
    for step in range(1, 101):
        printer.update(step, 100, f"level 1 {step}/100")
    printer.close()
    text = tty.getvalue()
    assert text.count("\r") == 100 and text.endswith("\n") and text.count("\n") == 1
    assert "[##########] 100/100" in text
    log = io.StringIO()
    printer = cli.ProgressPrinter(log, width=10)
    for step in range(1, 101):
        printer.update(step, 100, f"level 1 {step}/100")
    printer.close()
    assert 5 <= len(log.getvalue().splitlines()) <= 12


# ------------------------------------------------- warp / evaluate: the --out file rules


def _warp_argv(pair2d, target) -> list[str]:
    paths, out, _ = pair2d
    return ["warp", str(out / "field.nii.gz"), str(paths["moving"]), "--reference",
            str(paths["fixed"]), "--out", str(target), "--device", "cpu"]


def _evaluate_argv(pair2d, target) -> list[str]:
    paths, out, _ = pair2d
    return ["evaluate", str(paths["fixed_labels"]), str(out / "warped_labels.nii.gz"),
            "--no-hausdorff", "--out", str(target)]


@pytest.mark.parametrize("make_argv,name", [(_warp_argv, "w.nii.gz"),
                                            (_evaluate_argv, "m.json")])
def test_warp_and_evaluate_out_follow_the_register_rules(pair2d, tmp_path, capsys, make_argv,
                                                         name):
    target = tmp_path / name
    target.write_text("the user's own file")
    assert cli.main(make_argv(pair2d, target)) == 2  # no overwrite without --overwrite
    assert "--overwrite" in _one_line_error(capsys)
    assert target.read_text() == "the user's own file"
    assert cli.main([*make_argv(pair2d, target), "--overwrite"]) == 0
    assert target.read_bytes() != b"the user's own file"
    capsys.readouterr()

    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not to be touched")
    link = tmp_path / ("link-" + name)
    link.symlink_to(elsewhere)
    assert cli.main([*make_argv(pair2d, link), "--overwrite"]) == 2  # a link is refused
    assert "symbolic link" in _one_line_error(capsys)
    assert elsewhere.read_text() == "not to be touched"

    assert cli.main(make_argv(pair2d, "")) == 2  # an empty --out is refused
    assert "empty" in _one_line_error(capsys)

    folder = tmp_path / "a folder"
    folder.mkdir()
    assert cli.main([*make_argv(pair2d, folder), "--overwrite"]) == 2
    assert "not a file" in _one_line_error(capsys)
