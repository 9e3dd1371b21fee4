"""What a ``napari-deepreg register`` call loads: no GUI toolkit, and (once the method families
load without it) no training harness.

Each check runs the CLI in a fresh interpreter, so that this test session's own imports (pytest
plugins load napari and Qt) do not hide what the CLI itself imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import napari_deepreg

ROOT = Path(napari_deepreg.__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy")

# run the CLI in-process, then report which modules it left in sys.modules
PROBE = """
import json, sys
from napari_deepreg.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _register_modules(out: Path) -> set[str]:
    argv = [
        "register",
        str(SAMPLE / "brain3d_fixed.nii.gz"), str(SAMPLE / "brain3d_moving.nii.gz"),
        "--fixed-labels", str(SAMPLE / "brain3d_fixed_labels.nii.gz"),
        "--moving-labels", str(SAMPLE / "brain3d_moving_labels.nii.gz"),
        "--method", "instance_opt", "--param", "levels=1", "--param", "iterations=1",
        "--param", "affine_first=false", "--device", "cpu", "--out", str(out), "-q",
        "--no-hausdorff",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert (out / "outputs.json").is_file() and (out / "report.png").is_file()
    return set(report["modules"])


@pytest.fixture(scope="module")
def register_modules(tmp_path_factory) -> set[str]:
    return _register_modules(tmp_path_factory.mktemp("cli") / "out")


def test_register_on_the_bundled_pair_loads_no_gui(register_modules):
    gui = sorted(m for m in register_modules if m.split(".")[0] in GUI_MODULES)
    assert gui == []
    assert "napari_deepreg._napari" not in register_modules


def test_register_loads_no_training_harness(register_modules):
    assert sorted(m for m in register_modules if m.startswith("napari_deepreg.training")) == []
