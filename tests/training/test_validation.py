"""Validation bookkeeping of the trainer (napari_deepreg.training.validation)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_deepreg.training.validation import as_float, improves, validate


def test_improves_by_mode_and_from_nothing():
    assert improves({}, 0.1, "max") and improves({}, 0.1, "min")
    best = {"value": 0.5, "step": 10.0}
    assert improves(best, 0.6, "max") and not improves(best, 0.5, "max")
    assert improves(best, 0.4, "min") and not improves(best, 0.6, "min")


class _Figures:
    """A task whose validation figures are given per batch (NaN for a missing label)."""

    def validate(self, model, batch):
        return {"dice": batch["dice"], "epe": torch.tensor(batch["epe"])}


def test_validate_means_finite_figures_and_keeps_the_model_mode():
    model = nn.Linear(1, 1).train()
    batches = [{"dice": 0.5, "epe": 1.0}, {"dice": float("nan"), "epe": 3.0}]
    figures = validate(_Figures(), model, batches, torch.device("cpu"))
    assert figures == {"val_dice": 0.5, "val_epe": 2.0}
    assert model.training
    assert as_float(torch.tensor(2.5)) == 2.5 == as_float(2.5)


def test_validate_leaves_the_global_rng_alone():
    model = nn.Linear(1, 1)  # its initialisation draws from the global generator: first
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)

    class Draws:
        def validate(self, model, batch):
            return {"x": float(torch.rand(()))}

    validate(Draws(), model, [{}, {}], torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("mode", ["max", "min"])
def test_improves_never_on_a_tie(mode):
    assert not improves({"value": 1.0}, 1.0, mode)
