"""The working grid shared by the learned families: sizes, centred padding and the way back."""

import pytest
import torch

from napari_deepreg.methods.working_grid import fit_shape, pad_centre, working_grid


@pytest.mark.parametrize(("n", "plus_one", "expected"),
                         [(8, False, 8), (9, False, 16), (1, False, 8), (9, True, 9),
                          (10, True, 17), (17, True, 17)])
def test_fit_shape(n, plus_one, expected):
    assert fit_shape(n, 8, plus_one) == expected


def test_the_two_padding_rules():
    grid = working_grid((197, 161), (1.0, 1.0), 2.0, plus_one=True)
    assert grid.resampled == (99, 81) and grid.padded == (105, 81)
    grid = working_grid((197, 161), (1.0, 1.0), 2.0)
    assert grid.resampled == (99, 81) and grid.padded == (104, 88)
    assert grid.before == (2, 3)
    # the training grid as a floor
    assert working_grid((20, 20), (2.0, 2.0), 2.0, plus_one=True, min_shape=(33, 30)).padded \
        == (33, 33)


def test_pad_then_crop_is_the_identity_and_a_field_keeps_its_mm():
    grid = working_grid((30, 26), (1.0, 1.5), 1.0)  # voxel size 1 mm along axis 0
    x = torch.rand(1, 2, *grid.resampled)
    padded = pad_centre(x, grid.padded)
    assert padded.shape[2:] == grid.padded
    torch.testing.assert_close(padded[(slice(None), slice(None), *grid.crop())], x)
    assert padded.sum() == pytest.approx(float(x.sum()))
    constant = torch.full((1, 2, *grid.padded), 2.5)
    back = grid.from_working(constant, (30, 26))
    assert back.shape == (1, 2, 30, 26)
    torch.testing.assert_close(back, torch.full_like(back, 2.5))
    assert grid.to_working(torch.ones(1, 1, 30, 26)).shape[2:] == grid.padded


def test_avsm_grid_of_a_full_2mm_brain_is_the_4mm_training_grid():
    """96x112x96 at 2 mm -> 48x56x48 at 4 mm (the pooled grid the 4 mm models trained on), not
    the corner count 49x57x49 padded to 56x64x56, which shows the network a smaller brain."""
    from napari_deepreg.methods.avsm.method import working_grid as avsm_grid

    grid = avsm_grid((96, 112, 96), (2.0, 2.0, 2.0), 4.0, (48, 56, 48))
    assert grid.resampled == (48, 56, 48) and grid.padded == (48, 56, 48)
    assert working_grid((96, 112, 96), (2.0,) * 3, 4.0).resampled == (49, 57, 49)  # corners
    # a cropped brain is padded to the training grid, a larger one keeps its extent
    assert avsm_grid((83, 99, 81), (2.0,) * 3, 4.0, (48, 56, 48)).padded == (48, 56, 48)
    assert avsm_grid((120, 112, 96), (2.0,) * 3, 4.0, (48, 56, 48)).padded == (64, 56, 48)
