"""The bundled sample pairs (napari_deepreg.sample)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_deepreg.core import jacobian_determinant, warp_image, warp_labels
from napari_deepreg.metrics import mean_dice
from napari_deepreg.sample import SAMPLE_DIR_ENV, SAMPLES, load_sample
from napari_deepreg.volume import InputError


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_pairs_match_and_are_misaligned_by_the_stored_field(name):
    pair = load_sample(name)
    fixed, moving = pair["fixed"], pair["moving"]
    fl, ml = pair["fixed_labels"], pair["moving_labels"]
    ndim = 3 if name == "brain3d" else 2
    assert fixed.ndim == ndim
    for vol in (moving, fl, ml):
        assert vol.same_grid(fixed)
    assert fixed.array.dtype == np.float32 and fl.array.dtype == np.int32
    assert set(np.unique(fl.array)) == set(np.unique(ml.array))
    assert set(np.unique(fl.array)) <= set(pair["label_names"])
    assert pair["field"].shape == (ndim, *fixed.shape)

    before = mean_dice(fl.array, ml.array)
    assert 0.5 < before < 0.8
    assert before == pytest.approx(pair["meta"]["dice_before"], abs=1e-9)

    # the stored field is the answer: warping the moving labels with it restores the overlap
    field = torch.from_numpy(pair["field"])[None]
    warped = warp_labels(torch.from_numpy(ml.array)[None, None], field, fixed.spacing)
    after = mean_dice(fl.array, warped[0, 0].numpy())
    assert after > before + 0.15
    assert after == pytest.approx(pair["meta"]["dice_with_true_field"], abs=1e-6)
    img = warp_image(torch.from_numpy(moving.array)[None, None], field, fixed.spacing)[0, 0]
    err_before = np.abs(moving.array - fixed.array).mean()
    err_after = np.abs(img.numpy() - fixed.array).mean()
    assert err_after < 0.6 * err_before

    peak = float(np.linalg.norm(pair["field"], axis=0).max())
    assert peak == pytest.approx(pair["meta"]["magnitude_mm"], rel=0.05)
    jac = jacobian_determinant(field, fixed.spacing)
    assert float(jac.min()) > 0


def test_load_sample_errors(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="unknown sample"):
        load_sample("knee")
    monkeypatch.setenv(SAMPLE_DIR_ENV, str(tmp_path))
    with pytest.raises(InputError, match="not found"):
        load_sample("brain2d")
