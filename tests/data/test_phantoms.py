"""The random label phantom (napari_deepreg.data.phantoms)."""

from __future__ import annotations

import pytest
import torch

from napari_deepreg.data.phantoms import random_label_map


@pytest.mark.parametrize("shape", [(30, 34, 28), (60, 50)])
def test_label_phantom_has_every_label_inside_an_ellipsoid(shape):
    labels = random_label_map(shape, 9, 1.0, generator=4)
    assert labels.shape == (1, 1, *shape) and labels.dtype == torch.int64
    counts = torch.bincount(labels.flatten(), minlength=10)
    assert len(counts) == 10 and bool((counts[1:] > 0).all())
    # regions of comparable size: none below a fifth of the mean
    assert float(counts[1:].min()) > 0.2 * float(counts[1:].float().mean())
    assert int(labels[(0, 0, *(0,) * len(shape))]) == 0  # corners are background
    assert torch.equal(labels, random_label_map(shape, 9, 1.0, generator=4))
