"""Label-aware downsampling (napari_deepreg.data.resample)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_deepreg.data.resample import downsample_labels, downsample_volume
from napari_deepreg.volume import Volume


def reference_downsample(labels: np.ndarray, factor: int) -> np.ndarray:
    """Brute force: tent-weighted votes over the (2 factor - 1) neighbourhood, ties to the
    smallest label."""
    values = np.unique(labels)
    out_shape = [(n - 1) // factor + 1 for n in labels.shape]
    out = np.zeros(out_shape, labels.dtype)
    offsets = range(-factor + 1, factor)
    for c in itertools.product(*(range(m) for m in out_shape)):
        scores = np.zeros(len(values))
        for off in itertools.product(offsets, repeat=labels.ndim):
            pos = [ci * factor + o for ci, o in zip(c, off, strict=True)]
            if all(0 <= p < n for p, n in zip(pos, labels.shape, strict=True)):
                weight = np.prod([factor - abs(o) for o in off])
                scores[np.searchsorted(values, labels[tuple(pos)])] += weight
        out[c] = values[int(np.argmax(scores))]
    return out


@pytest.mark.parametrize(("shape", "factor"), [((11, 9, 10), 2), ((10, 13, 8), 3), ((19, 17), 4)])
def test_downsample_labels_matches_brute_force_votes(shape, factor):
    rng = np.random.default_rng(factor)
    labels = rng.integers(0, 4, size=shape).astype(np.int16) * 7
    out = downsample_labels(labels, factor)
    assert out.dtype == np.int16
    assert np.array_equal(out, reference_downsample(labels, factor))
    as_tensor = downsample_labels(torch.from_numpy(labels), factor)
    assert isinstance(as_tensor, torch.Tensor) and np.array_equal(as_tensor.numpy(), out)
    assert np.array_equal(downsample_labels(labels, 1), labels)
    with pytest.raises(TypeError):
        downsample_labels(labels.astype(np.float32))


def test_downsample_volume_geometry():
    vol = Volume(np.arange(9 * 11, dtype=np.float32).reshape(9, 11), (1.5, 2.0), (10.0, -4.0))
    down = downsample_volume(vol, 2)
    assert down.shape == (5, 6) and down.spacing == (3.0, 4.0) and down.origin == (10.0, -4.0)
    # a linear ramp survives anti-aliased downsampling away from the borders
    assert down.array[2, 2] == pytest.approx(vol.array[4, 4], abs=1e-3)
    labs = downsample_volume(Volume((vol.array > 50).astype(np.int32), vol.spacing), 2, True)
    assert labs.array.dtype == np.int32 and set(np.unique(labs.array)) == {0, 1}
