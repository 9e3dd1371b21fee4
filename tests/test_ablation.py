"""The semantic_bspline ablation command (benchmarks/ablation_semantic_bspline.py), tiny models."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import ablation_semantic_bspline as ablation  # noqa: E402
from benchmarks.cases import build_phantom  # noqa: E402
from napari_deepreg.methods.semantic_bspline import (  # noqa: E402
    SemanticBSplineNetConfig,
    build_net,
)
from napari_deepreg.training.tasks.semantic_bspline import SemanticBSplineTask  # noqa: E402
from napari_deepreg.zoo import save_model_file  # noqa: E402


def _tiny_model(path: Path, **kw) -> None:
    config = dict(dims=2, working_shape=(33, 33), voxel_size=2.0, num_classes=3,
                  strides=(3, 2), unet_channels=(4, 8, 8, 8), regnet_channels=(8, 8, 8, 8))
    config.update(kw)
    cfg = SemanticBSplineNetConfig(**config)
    torch.manual_seed(0)
    net = build_net(cfg)
    path.parent.mkdir(parents=True)
    save_model_file(path, "semantic_bspline", SemanticBSplineTask(cfg).config_dict(),
                    net.state_dict(), {"dims": [2]})


def test_ablation_runs_every_variant_and_tabulates_them(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "RUNS", tmp_path / "runs")
    variants = [ablation.Variant("a", "two-step"),
                ablation.Variant("b", "single-step", ("method.strides=[3]",))]
    _tiny_model(variants[0].model_file)
    _tiny_model(variants[1].model_file, strides=(3,))
    case = build_phantom((40, 40), (2.0, 2.0), seed=1, svf_mm=3.0, smooth_mm=8.0)
    case.group = "held-out pairs"
    results = ablation.run_ablation(variants, out=tmp_path / "out", slices=False, cases=[case])
    assert {(r["method"], r["status"]) for r in results["rows"]} == {
        ("identity", "ok"), ("a", "ok"), ("b", "ok")}
    table = (tmp_path / "out" / "table.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in lines[1:4]] == ["| identity", "| a", "| b"]
    # the identity row repeats the unregistered figures: Dice before, EPE of a zero field
    identity = next(r for r in results["rows"] if r["method"] == "identity")
    assert f"{identity['dice_before']:.3f}" in lines[1]
    assert identity["epe_mm"] == pytest.approx(
        float(np.linalg.norm(case.true_field, axis=0)[case.mask].mean()), rel=1e-4)
    # each variant's command trains its own run folder with its overrides
    command = variants[1].train_command()
    assert command[command.index("--out") + 1] == str(variants[1].run_dir)
    assert "method.strides=[3]" in command


def test_missing_variants_name_their_training_command(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "RUNS", tmp_path)
    with pytest.raises(FileNotFoundError, match="napari-deepreg train semantic_bspline"):
        ablation.run_ablation([ablation.Variant("absent", "never trained")], out=tmp_path / "o")


@pytest.mark.registry
def test_held_out_pairs_come_with_their_true_field(tmp_path):
    from napari_deepreg.core import warp_labels
    from napari_deepreg.data.registry import RegistryError
    from napari_deepreg.metrics import mean_dice

    model = tmp_path / "m" / "model.pt"
    _tiny_model(model, working_shape=(57, 57))
    try:
        (case,) = ablation.held_out_pairs(model, 1)
    except RegistryError as error:
        pytest.skip(f"template data unavailable: {error}")
    assert case.fixed.shape == (57, 57)
    field = torch.from_numpy(case.true_field)[None]
    moving = torch.from_numpy(case.moving_labels.astype(np.int64))[None, None]
    warped = warp_labels(moving, field, case.spacing)[0, 0].numpy()
    before = mean_dice(case.fixed_labels, case.moving_labels)
    # (not 1: the labels were resampled to the coarse grid before and after the warp)
    assert mean_dice(case.fixed_labels, warped) > max(0.85, before + 0.2)
