"""The never-worse guard: a forced-wrong model gives back the identity, a good one is kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_deepreg import guard, zoo
from napari_deepreg.methods.base import Estimate
from napari_deepreg.pipeline import normalise_intensity, register, run_to_end
from napari_deepreg.qa import metrics_rows
from napari_deepreg.sample import load_sample


@pytest.fixture(scope="module")
def pair2d():
    return load_sample("brain2d")


def _tensors(pair):
    f = torch.from_numpy(normalise_intensity(pair["fixed"].array))[None, None]
    m = torch.from_numpy(normalise_intensity(pair["moving"].array))[None, None]
    return f, m, pair["fixed"].spacing


def _register(pair, method, config, **kw):
    return run_to_end(register(
        pair["fixed"], pair["moving"], method=method, config=config,
        fixed_labels=pair.get("fixed_labels"), moving_labels=pair.get("moving_labels"),
        device="cpu", hausdorff=False, **kw,
    ))


def test_nmi_ranks_identity_between_good_and_bad_fields(pair2d):
    f, m, sp = _tensors(pair2d)
    true = torch.from_numpy(np.asarray(pair2d["field"], np.float32))[None]
    good = guard.check(Estimate(true), f, m, sp)
    bad = guard.check(Estimate(-true), f, m, sp)
    assert good.returned == "method" and not good.notes
    assert good.scores["method"]["nmi"] > good.scores["identity"]["nmi"]
    assert bad.returned == "identity" and bad.notes[0].startswith("warning:")
    assert float(bad.estimate.field.abs().max()) == 0.0
    # with labels Dice decides, and says so
    bad = guard.check(Estimate(-true), f, m, sp, pair2d["fixed_labels"].array,
                      pair2d["moving_labels"].array)
    assert bad.returned == "identity" and "Dice" in bad.notes[0]
    assert bad.metrics["guard_dice_identity"] > bad.metrics["guard_dice_method"]


def test_guard_prefers_the_affine_alone_over_a_bad_deformation(pair2d):
    f, m, sp = _tensors(pair2d)
    shift = torch.tensor([[1.0, 0, 0.5], [0, 1.0, 0.0], [0, 0, 1]], dtype=torch.float32)
    true = torch.from_numpy(np.asarray(pair2d["field"], np.float32))[None]
    from napari_deepreg.core import affine_to_field

    affine_field = affine_to_field(shift, f.shape[2:], sp)
    verdict = guard.check(Estimate(affine_field - 3 * true, affine=shift), f, m, sp)
    assert verdict.returned in ("affine", "identity")
    assert "affine" in verdict.scores


def test_a_negated_model_returns_the_identity_with_a_note(pair2d, tmp_path):
    # the zoo's 2D model with its weights negated predicts a wrong field
    entry = zoo.get_entry("semantic_bspline_2d")
    data = zoo.read_model_file(zoo.model_path(entry), entry.sha256)
    path = tmp_path / "negated.pt"
    zoo.save_model_file(path, data["method"], data["config"],
                        {k: -v if v.is_floating_point() else v
                         for k, v in data["state_dict"].items()}, data["meta"])
    config = {"model_file": str(path), "refine": False}
    unguarded = _register(pair2d, "semantic_bspline_2d", config, guard=False)
    assert unguarded.metrics["dice_after"] < unguarded.metrics["dice_before"]
    assert "guard_returned" not in unguarded.metrics
    result = _register(pair2d, "semantic_bspline_2d", config)
    assert result.metrics["guard_returned"] == "identity"
    assert result.metrics["dice_after"] == pytest.approx(result.metrics["dice_before"])
    assert np.abs(result.field).max() == 0
    assert any(n.startswith("warning:") and "identity" in n for n in result.notes)
    rows = {r[0]: r[2] for r in metrics_rows(result)}
    assert rows["guard returned"] == "identity"


def test_a_good_result_is_kept(pair2d):
    result = _register(pair2d, "semantic_bspline_2d", {"refine": True})
    assert result.metrics["guard_returned"] == "method"
    assert result.metrics["dice_after"] > result.metrics["dice_before"] + 0.1
    assert not any(n.startswith("warning:") for n in result.notes)
    assert result.metrics["guard_nmi_method"] > result.metrics["guard_nmi_identity"]


def test_ngf_sees_edges_whatever_their_contrast():
    y, x = torch.meshgrid(torch.arange(40.0), torch.arange(48.0), indexing="ij")
    a = ((y - 20) ** 2 + (x - 24) ** 2 < 100).float()[None, None]  # a disc
    sp = (1.0, 1.0)
    same = guard.ngf(a, a, sp)
    assert same > 0.02
    assert guard.ngf(a, 1 - a, sp) == pytest.approx(same)  # inverted contrast: same score
    assert guard.ngf(a, 0.5 * a + 0.2, sp) > 0.5 * same  # a weaker copy still lines up
    shifted = torch.roll(a, 4, dims=3)
    assert guard.ngf(a, shifted, sp) < 0.5 * same
    assert guard.ngf(a, torch.zeros_like(a), sp) == 0.0


def test_misaligned_edges_are_caught_where_nmi_is_blind(pair2d, monkeypatch):
    # NMI made blind (the same score for every candidate): edge alignment alone must still
    # refuse a negated field and keep the true one
    monkeypatch.setattr(guard, "nmi", lambda a, b, bins=guard.BINS: 1.5)
    f, m, sp = _tensors(pair2d)
    true = torch.from_numpy(np.asarray(pair2d["field"], np.float32))[None]
    good = guard.check(Estimate(true), f, m, sp)
    assert good.returned == "method"
    assert good.scores["method"]["ngf"] > good.scores["identity"]["ngf"]
    bad = guard.check(Estimate(-true), f, m, sp)
    assert bad.returned == "identity"
    assert "NGF" in bad.notes[0] and "NMI" not in bad.notes[0]


def test_an_ngf_win_is_overruled_by_a_clear_nmi_lead_of_the_method(pair2d, monkeypatch):
    # the real rat lung pair's case: the method's NMI leads the identity's by ~0.05 (its lung
    # Dice 0.967 vs 0.911) while NGF favours the identity slightly: the method must be kept;
    # with a small NMI lead the NGF win still replaces it (the guard's calibration)
    f, m, sp = _tensors(pair2d)
    true = torch.from_numpy(np.asarray(pair2d["field"], np.float32))[None]

    def fake(nmi_method, ngf_method):
        # the candidates are scored in the order method, identity (no affine here)
        nmis, ngfs = iter([nmi_method, 1.30]), iter([ngf_method, 0.154])
        monkeypatch.setattr(guard, "nmi", lambda a, b, bins=guard.BINS: next(nmis))
        monkeypatch.setattr(guard, "ngf", lambda a, b, spacing, eps=guard.NGF_EPS: next(ngfs))

    fake(1.30 + 2 * guard.NMI_LEAD, 0.150)
    assert guard.check(Estimate(true), f, m, sp).returned == "method"
    fake(1.30 + 0.5 * guard.NMI_LEAD, 0.150)
    verdict = guard.check(Estimate(true), f, m, sp)
    assert verdict.returned == "identity" and "NGF" in verdict.notes[0]
