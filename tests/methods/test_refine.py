"""Test-time refinement of every learned family, its fields in the CLI, and the zoo cards."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from napari_deepreg import cli, zoo
from napari_deepreg.core import jacobian_determinant, resize, resized_spacing, warp_labels
from napari_deepreg.fields import describe
from napari_deepreg.methods import get_method
from napari_deepreg.methods.avsm import AvsmAffineConfig, AvsmConfig
from napari_deepreg.methods.refine import RefineSettings, level_iterations, refine_field
from napari_deepreg.metrics import mean_dice
from napari_deepreg.pipeline import normalise_intensity, run_to_end
from napari_deepreg.sample import load_sample

REFINE_FIELDS = {"refine", "refine_iterations", "refine_regularisation", "refine_control_spacing",
                 "refine_affine"}


def _pair(name, shrink=1):
    """Normalised images, labels and spacing of a bundled pair (3D shrunk ``shrink`` times)."""
    pair = load_sample(name)
    f = torch.from_numpy(normalise_intensity(pair["fixed"].array))[None, None]
    m = torch.from_numpy(normalise_intensity(pair["moving"].array))[None, None]
    lab = torch.from_numpy(np.stack([pair["fixed_labels"].array,
                                     pair["moving_labels"].array]).astype(np.float32))[None]
    sp = pair["fixed"].spacing
    if shrink > 1:
        shape = tuple((n - 1) // shrink + 1 for n in f.shape[2:])
        sp = resized_spacing(f.shape[2:], sp, shape)
        f, m = resize(f, shape), resize(m, shape)
        lab = torch.nn.functional.interpolate(lab, size=shape, mode="nearest")
    return f, m, lab[0, 0].long().numpy(), lab[:, 1:].long(), sp


def _score(field, fixed_labels, moving_labels, sp):
    warped = warp_labels(moving_labels, field, sp)[0, 0].numpy()
    jac = jacobian_determinant(field, sp)
    return mean_dice(fixed_labels, warped), float((jac <= 0).float().mean())


@pytest.mark.parametrize("model,sample,shrink", [
    ("semantic_bspline_2d", "brain2d", 1),
    ("flownet_roi_2d", "brain2d", 1),
    ("avsm_3d_4mm", "brain3d", 2),  # the 3D pair at 4 mm keeps the test to seconds
])
def test_refinement_improves_the_prediction(model, sample, shrink):
    torch.manual_seed(0)
    f, m, f_lab, m_lab, sp = _pair(sample, shrink)
    spec = get_method(model)
    ff = run_to_end(spec.estimate(f, m, sp, spec.make_config(refine=False), "cpu"))
    refined = run_to_end(spec.estimate(f, m, sp, spec.make_config(refine=True), "cpu"))
    dice_ff, folds_ff = _score(ff.field, f_lab, m_lab, sp)
    dice_ref, folds_ref = _score(refined.field, f_lab, m_lab, sp)
    assert dice_ref > dice_ff + 0.02
    assert folds_ref == 0.0
    info = refined.info["refinement"]
    assert 1 <= info["iterations"] <= sum(level_iterations(40, 2))
    # the global affine: the refinement's affine correction after the model's own (avsm), or
    # the correction alone (families without an affine stage)
    correction = torch.tensor(info["affine_matrix"])
    expected = correction if ff.affine is None else correction @ ff.affine
    assert torch.allclose(refined.affine, expected, atol=1e-6)


def test_the_affine_correction_recovers_a_rotation_the_prediction_missed():
    """A prediction of zero on the bundled 2D fixed slice against itself turned by 12 degrees
    and shifted by (4, -3) mm: with ``refine_affine`` the refined field is closer to the true
    one inside the brain than the B-spline levels alone make it."""
    import math

    from napari_deepreg.core import affine_to_field, warp_image

    fixed, _, labels, _, sp = _pair("brain2d")
    shape = tuple(fixed.shape[2:])
    t = math.radians(12)
    c = torch.tensor([(n - 1) * s / 2 for n, s in zip(shape, sp, strict=True)], dtype=torch.float64)
    rot = torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]],
                       dtype=torch.float64)
    matrix = torch.eye(3, dtype=torch.float64)
    matrix[:2, :2] = rot
    matrix[:2, 2] = c - rot @ c + torch.tensor([4.0, -3.0], dtype=torch.float64)
    truth = affine_to_field(matrix, shape, sp).float()
    # moving(x + truth(x)) = fixed(x): the moving image is the fixed one pushed by the inverse
    moving = warp_image(fixed, affine_to_field(torch.linalg.inv(matrix), shape, sp).float(), sp)
    brain = torch.from_numpy(labels > 0)
    errors = {}
    for affine in (0, 60):
        settings = RefineSettings(iterations=40, regularisation=0.3, control_spacing=8.0,
                                  affine_iterations=affine)
        field, info = run_to_end(refine_field(fixed, moving, sp, torch.zeros_like(truth),
                                              settings, "cpu"))
        errors[affine] = float((field - truth)[0].norm(dim=0)[brain].mean())
    assert "affine_matrix" in info
    assert errors[60] < 0.5 * errors[0], errors
    assert errors[60] < 1.0  # mm


def test_refine_field_stops_at_the_plateau_and_keeps_a_perfect_field():
    f = torch.rand(1, 1, 24, 24)
    u = torch.zeros(1, 2, 24, 24)
    settings = RefineSettings(iterations=100, regularisation=0.3, control_spacing=4.0)
    refined, info = run_to_end(refine_field(f, f.clone(), (1.0, 1.0), u, settings, "cpu"))
    # Adam's steps are about lr (0.5 mm) whatever the gradient's size, so a perfect start
    # jitters by less than that before the plateau stops the level
    assert float(refined.abs().max()) < 0.5
    assert info["steps_per_level"][0] < 100


def test_level_iterations():
    assert level_iterations(40, 2) == [40, 10]
    assert level_iterations(40, 1) == [40]
    assert level_iterations(2, 3) == [2, 1, 1]


@pytest.mark.parametrize("config_class", [AvsmConfig, AvsmAffineConfig])
def test_avsm_configs_carry_the_refine_fields(config_class):
    names = {p.name for p in describe(config_class)}
    assert REFINE_FIELDS <= names
    assert config_class().refine is True  # the default a user who presses Run gets
    assert "s on a CPU" in next(p.help for p in describe(config_class) if p.name == "refine")
    assert {f.name for f in dataclasses.fields(config_class)} >= REFINE_FIELDS


def test_cli_lists_avsm_refine_parameters(capsys):
    assert cli.main(["methods", "-v"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("avsm_3d"):]
    assert "refine_iterations" in block[:4000] and "refine_regularisation" in block[:4000]


def test_zoo_list_shows_benchmark_figures(capsys):
    table = zoo.format_table()
    header, _, *rows = table.splitlines()
    assert "benchmark" in header and "held-out" in header
    for model in ("avsm_3d", "semantic_bspline_3d"):
        row = next(r for r in rows if r.startswith(model + " "))
        assert "Dice 0.585->" in row
    assert cli.main(["zoo", "list"]) == 0
    assert "mni2009c_dkt_2mm: Dice" in capsys.readouterr().out
    verbose = zoo.format_table(verbose=True)
    assert "training_data" in verbose and "held_out" in verbose
