"""Appearance (napari_deepreg.data.appearance): intensity changes and label-map synthesis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_deepreg.data.appearance import draw_contrast, random_intensity_change, synthesize_image
from napari_deepreg.data.phantoms import random_label_map


def label_means(image: torch.Tensor, labels: torch.Tensor, values) -> np.ndarray:
    return np.array([float(image[labels == v].mean()) for v in values])


def test_random_intensity_change_is_mild_seeded_and_keeps_background():
    img = torch.zeros(1, 1, 32, 32)
    img[..., 8:24, 8:24] = torch.linspace(10, 100, 16)
    a, info = random_intensity_change(img, 1.0, (0.8, 1.25), 0.1, generator=11)
    b, _ = random_intensity_change(img, 1.0, (0.8, 1.25), 0.1, generator=11)
    c, _ = random_intensity_change(img, 1.0, (0.8, 1.25), 0.1, generator=12)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert 0.8 <= info["gamma"] <= 1.25
    assert np.exp(-0.1) - 1e-6 <= info["bias_min"] <= info["bias_max"] <= np.exp(0.1) + 1e-6
    assert torch.count_nonzero(a[..., :8, :]) == 0  # background stays 0
    inside = img[..., 8:24, 8:24]
    ratio = a[..., 8:24, 8:24] / inside
    assert float(ratio.min()) > 0.6 and float(ratio.max()) < 1.4
    # gamma and a positive bias keep the order of neighbouring intensities along the ramp
    assert bool((a[0, 0, 16, 9:24] > a[0, 0, 16, 8:23]).all())
    with pytest.raises(TypeError):
        random_intensity_change(img.long())


# ----------------------------------------------------------------------------- synthesis


def test_synthesis_without_noise_blur_or_bias_gives_the_contrast_means():
    labels = random_label_map((24, 26, 22), 6, 1.0, 4.0, generator=0)
    values = torch.unique(labels)
    con = draw_contrast(values, 5, label_noise_std=0.0, gamma_range=(1.0, 1.0))
    img = synthesize_image(labels, 9, 1.0, blur_sigma_mm=0.0, bias_strength=0.0, noise_std=0.0,
                           contrast=con)
    means = con.means
    expected = (means - means.min()) / (means.max() - means.min())
    for v, e in zip(values.tolist(), expected.tolist(), strict=True):
        inside = img[labels == v]
        assert float(inside.min()) == pytest.approx(e, abs=1e-6)
        assert float(inside.max()) == pytest.approx(e, abs=1e-6)


def test_synthesis_is_deterministic_per_seed_in_unit_range_and_keeps_background():
    labels = random_label_map((28, 30, 26), 8, 1.0, 5.0, generator=1)
    labels = torch.cat([labels, labels.flip(-1)])  # a batch of two
    a = synthesize_image(labels, 11, 1.0, zero_background=True)
    b = synthesize_image(labels, 11, 1.0, zero_background=True)
    c = synthesize_image(labels, 12, 1.0, zero_background=True)
    assert a.shape == labels.shape and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert float(a.min()) >= 0 and float(a.max()) == pytest.approx(1.0)
    assert torch.count_nonzero(a[labels == 0]) == 0
    assert float(a[labels > 0].mean()) > 0.1
    # each image of the batch has its own contrast
    values = torch.unique(labels)[1:]
    m0 = label_means(a[0], labels[0], values)
    m1 = label_means(a[1], labels[1], values)
    assert not np.allclose(m0, m1, atol=0.05)
    with pytest.raises(ValueError, match="integer"):
        synthesize_image(labels.float())
    with pytest.raises(ValueError, match="no intensity"):
        synthesize_image(labels + 100, contrast=draw_contrast(values, 0))
