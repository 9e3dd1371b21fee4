"""The AVSM ablation script (benchmarks/ablation_avsm.py): run folders, report, one tiny run.

The end-to-end test saves tiny untrained 3D models (affine and vSVF) as two of the runs (the
others missing) and runs the script's core with the real :func:`evaluate_steps` on one pair of
the MNI 2009a template (the quickest registry template to load; skipped when the registry cannot
be reached). Each run costs a few seconds of template preparation, hence two runs only.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import ablation_avsm as ab  # noqa: E402
from napari_deepreg import zoo  # noqa: E402

LOG_HEADER = "step,loss,val_dice_before,val_dice,val_fold_percent,val_ice_log,val_epe\n"




def _write_log(folder: Path, rows: list[tuple]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [LOG_HEADER, "5,0.9,,,,,\n"]  # a training row without validation figures
    lines += [",".join(str(v) for v in row) + "\n" for row in rows]
    (folder / "log.csv").write_text("".join(lines))


def test_missing_runs_name_their_training_command(tmp_path, capsys):
    with pytest.raises(ab.MissingRun, match=r"napari-deepreg train avsm --config "
                       r"configs/avsm_affine1_ncc_3d\.yaml"):
        ab.model_file("affine1_ncc", tmp_path / "nowhere")
    code = ab.main(["--pairs", "1", "--out", str(tmp_path / "out"),
                    *[f"--run={k}={tmp_path / k}" for k in ab.RUNS]])
    assert code == 1
    err = capsys.readouterr().err
    for spec in ab.RUNS.values():
        assert spec.command in err
    assert not (tmp_path / "out").exists()
    assert ab.main(["--run", "nokey=x"]) == 2


def test_log_at_common_step_and_run_info(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _write_log(a, [(0, 1, 0.3, 0.3, 0, -60, 20), (100, 1, 0.3, 0.4, 0, -9, 15),
                   (200, 1, 0.3, 0.5, 0, -8, 12)])
    _write_log(b, [(0, 1, 0.3, 0.3, 0, -60, 20), (100, 1, 0.3, 0.35, 0.1, -10, 16)])
    common = ab.log_at_common_step([a, b])
    assert common["step"] == 100
    assert [r["dice"] for r in common["rows"]] == [0.4, 0.35]
    assert common["rows"][1]["fold_percent"] == 0.1 and common["rows"][0]["ice_log"] == -9
    _write_log(tmp_path / "c", [(300, 1, 0.3, 0.5, 0, -8, 12)])
    assert ab.log_at_common_step([a, tmp_path / "c"]) is None
    # run_info reads the model file (its step), config.json and the log; not a stale train.log
    zoo.save_model_file(a / "best_model.pt", "avsm", {}, {}, meta={"step": 100})
    (a / "config.json").write_text(json.dumps(
        {"command": "x", "method_config": {"similarity": "ncc", "lambda_as": 0.0,
                                           "affine_steps": 1}}))
    (a / "train.log").write_text("step 50/50\nbest val_dice: 0.5 at step 50 (x)\n")
    info = ab.run_info("affine1", a)
    assert info["model"] == str(a / "best_model.pt")
    assert (info["similarity"], info["lambda_as"], info["steps_trained"], info["best_step"]) == (
        "ncc", 0.0, 200, 100)
    assert ab._trained(info) == "200 (best 100)"


def test_report_from_fake_evaluations(tmp_path):
    """The table's sections and numbers, with a stand-in for evaluate_steps."""
    calls = []

    def fake_evaluate(model, affine_steps, vsvf_steps, pairs, seed):
        calls.append((Path(model).parent.name, tuple(affine_steps), tuple(vsvf_steps)))
        scale = {"affine1": 0.4, "affine5": 0.6, "affine1_ncc": 0.35, "affine1_nosym": 0.38,
                 "vsvf": 0.6, "vsvf_nosym": 0.59}[Path(model).parent.name]
        # per pair: the run's Dice +- 0.05 on the three pairs; ICE and EPE alike everywhere
        return [{"affine_steps": a, "vsvf_steps": v, "dice": scale + 0.01 * a + 0.02 * v,
                 "dice_before": 0.27, "fold_percent": 0.1 * v, "ice_log": -8.0, "epe": 5.0,
                 "per_pair": {"dice": [scale + d for d in (-0.05, 0.0, 0.05)],
                              "epe": [5.0] * 3, "ice_log": [-8.0] * 3}}
                for a in affine_steps for v in vsvf_steps]

    runs = {}
    for key in ab.RUNS:
        folder = tmp_path / key
        _write_log(folder, [(0, 1, 0.28, 0.28, 0, -60, 20),
                            (300, 1, 0.28, 0.37 if key == "affine1_ncc" else 0.38, 0, -9, 16)])
        zoo.save_model_file(folder / "best_model.pt", "avsm", {}, {}, meta={"step": 300})
        runs[key] = folder
    results = ab.run_ablation(runs, pairs=3, seed=5, evaluate=fake_evaluate,
                              log=lambda _: None)
    assert not results["missing"] and not results["notes"]
    assert ("vsvf", (7,), (0, 1, 2, 3, 4)) in calls
    assert ("affine5", (1, 3, 5, 7), (0,)) in calls
    assert results["seeds"] == [5, 7]
    table = ab.markdown(results, "cmd")
    assert "## 1. Multi-step vs single-step affine" in table
    assert "| affine5 | - | 300 | 7 | 0.670 |" in table  # 0.6 + 0.01 * 7
    assert "| affine1_ncc | - | - | 300 | 0.360 |" in table  # 1 test step
    assert "| 4 | 0.750 | 5.00 | 0.400 | -8.00 |" in table  # vsvf: 0.6 + 0.07 + 0.08
    assert "| mk-LNCC vs NCC | affine1_ncc | 300 | 0.370 |" in table
    assert "| vsvf_nosym | 300 | 4 | 0.740 |" in table  # section 5: 0.59 + 0.07 + 0.08
    assert "| vSVF symmetry loss | vsvf_nosym | 300 |" in table
    assert "multi-step vs single-step affine | affine" not in table  # not alike: no log check
    # affine1 (0.40 +- 0.05) against affine1_ncc (0.35 +- 0.05): higher on every pair; equal
    # EPE and ICE are not lower
    assert ("Pair by pair (3 test pairs), affine1 against affine1_ncc: higher Dice in 3, lower "
            "EPE in 0, lower ICE in 0.") in table
    assert "vsvf against vsvf_nosym: higher Dice in 3" in table
    # a run evaluated on other pairs is flagged
    results["evaluations"]["vsvf"][0]["dice_before"] = 0.3

    def other_pairs(model, affine_steps, vsvf_steps, pairs, seed):
        rows = fake_evaluate(model, affine_steps, vsvf_steps, pairs, seed)
        if Path(model).parent.name == "vsvf":
            for r in rows:
                r["dice_before"] = 0.3
        return rows

    flagged = ab.run_ablation(runs, pairs=3, evaluate=other_pairs, log=lambda _: None)
    assert "NOT evaluated on the same pairs" in flagged["notes"][0]
    # one run missing: its sections say so, the others are still there
    del runs["affine1_nosym"]
    partial = ab.run_ablation(dict(runs, affine1_nosym=tmp_path / "gone"), pairs=3,
                              evaluate=fake_evaluate, log=lambda _: None)
    table = ab.markdown(partial)
    assert "Not evaluated, missing: affine1_nosym" in table
    assert "configs/avsm_affine1_nosym_3d.yaml" in table and "| 4 | 0.750 |" in table


def _tiny_model(path: Path, stage: str) -> None:
    from napari_deepreg import zoo
    from napari_deepreg.methods import avsm
    from napari_deepreg.training.tasks.avsm import AvsmTask

    config = avsm.AvsmNetConfig(
        dims=3, stage=stage, working_shape=(16, 16, 16), voxel_size=12.0,
        affine_shape=(8, 8, 8), affine_channels=(4, 4, 4, 4), unet_channels=(4, 4, 4, 4),
        time_steps=2, vsvf_steps=1, train_anatomies=("mni2009a",), val_anatomies=("mni2009a",))
    task = AvsmTask(config)
    torch.manual_seed(0)
    model = task.build_model(task.config)
    path.parent.mkdir(parents=True, exist_ok=True)
    zoo.save_model_file(path, avsm.METHOD_ID, task.config_dict(), model.state_dict(), {})


@pytest.mark.registry
def test_ablation_end_to_end_on_tiny_untrained_models(tmp_path, one_thread):
    from napari_deepreg.data.registry import RegistryError

    runs = {key: tmp_path / key for key in ab.RUNS}
    for key in ("affine1", "vsvf"):
        runs[key] = tmp_path / key / "best_model.pt"
        _tiny_model(runs[key], "vsvf" if key == "vsvf" else "affine")
    try:
        results = ab.run_ablation(runs, pairs=1, affine_steps=(1, 2), vsvf_steps=(0, 1),
                                  log=lambda _: None)
    except RegistryError as error:
        pytest.skip(f"MNI 2009a template unavailable: {error}")
    assert sorted(results["missing"]) == ["affine1_ncc", "affine1_nosym", "affine5",
                                          "vsvf_nosym"]
    assert not results["notes"]  # both runs saw the same pair
    assert sorted(results["evaluations"]) == ["affine1", "vsvf"]
    assert len(results["evaluations"]["affine1"]) == 2
    vsvf = results["evaluations"]["vsvf"]
    assert [(r["affine_steps"], r["vsvf_steps"]) for r in vsvf] == [(7, 0), (7, 1)]
    for rows in results["evaluations"].values():
        for row in rows:
            assert 0 <= row["dice"] <= 1 and 0 <= row["fold_percent"] <= 100
            assert math.isfinite(row["ice_log"]) and row["epe"] > 0
    # untrained nets start at the identity: the affine changes nothing, the vSVF little
    first = results["evaluations"]["affine1"][0]
    assert first["dice"] == pytest.approx(first["dice_before"], abs=0.02)
    paths = ab.write_report(results, tmp_path / "out", "cmd")
    table = paths["table"].read_text()
    assert "| 1 | " in table and "Not evaluated, missing: affine1, affine5" not in table
    assert "Not evaluated, missing: affine5: no trained model" in table
    saved = json.loads(paths["results"].read_text())
    assert saved["command"] == "cmd" and saved["pairs"] == 1


def test_paired_counts():
    first = {"per_pair": {"dice": [0.5, 0.4, 0.6, 0.3], "epe": [1.0, 2.0, 3.0, 4.0],
                          "ice_log": [-9.0, -8.0, -7.0, -6.0]}}
    second = {"per_pair": {"dice": [0.4, 0.4, 0.7, 0.2], "epe": [2.0, 1.0, 3.0, 5.0],
                           "ice_log": [-8.0, -9.0, -8.0, -7.0]}}
    assert ab.paired_counts(first, second) == {"pairs": 4, "dice_higher": 2, "epe_lower": 2,
                                               "ice_lower": 1}
    assert ab.paired_counts(first, {"dice": 0.4}) is None  # means only: nothing to pair
