"""Seeded draws (napari_deepreg.data.draws): smooth noise."""

from __future__ import annotations

import pytest
import torch

from napari_deepreg.data.draws import draw_value, log_uniform, make_generator, smooth_noise


def test_smoother_noise_has_smaller_gradients():
    rough = smooth_noise((96, 96), 1.0, 3.0, generator=0)
    smooth = smooth_noise((96, 96), 1.0, 12.0, generator=0)

    def relative_gradient(x):
        g = torch.gradient(x[0, 0])
        return float(torch.stack(g).abs().mean() / x.std())

    assert relative_gradient(smooth) < 0.5 * relative_gradient(rough)
    # drawn on a padded grid: the border is not a stretched copy of one noise sample
    assert float(smooth[0, 0, 0].std()) > 0.3 * float(smooth.std())


def test_draw_value_consumes_one_number_fixed_or_drawn():
    fixed, drawn = make_generator(3), make_generator(3)
    assert draw_value(fixed, 2.5) == 2.5
    value = draw_value(drawn, (1.0, 2.0))
    assert 1.0 <= value <= 2.0
    assert torch.equal(torch.rand(4, generator=fixed), torch.rand(4, generator=drawn))
    with pytest.raises(ValueError, match="low <= high"):
        draw_value(make_generator(0), (2.0, 1.0))


def test_log_uniform_stays_in_its_bounds_and_is_seeded():
    values = [log_uniform(make_generator(s), 0.5, 2.0) for s in range(50)]
    assert all(0.5 <= v <= 2.0 for v in values)
    assert log_uniform(make_generator(7), 0.5, 2.0) == log_uniform(make_generator(7), 0.5, 2.0)
    assert log_uniform(make_generator(0), 1.3, 1.3) == pytest.approx(1.3)
