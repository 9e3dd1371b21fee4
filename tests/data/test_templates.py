"""Loaders of the real registry data (napari_deepreg.data.templates).

Marked ``registry``: they download pinned packages (pip / apt-get) and skip, with the client's
message, when the registry cannot be reached."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from napari_deepreg.data import templates
from napari_deepreg.data.download import RegistryUnreachable


def _or_skip(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except RegistryUnreachable as error:
        pytest.skip(f"package registry unreachable: {error}")


@pytest.mark.registry
def test_mni2009c_t1_dkt():
    t1, labels, names = _or_skip(templates.mni2009c_t1_dkt)
    assert t1.shape == labels.shape == (193, 229, 193)
    assert t1.same_grid(labels)
    assert t1.spacing == (1.0, 1.0, 1.0)
    assert labels.array.dtype == np.int32
    present = set(np.unique(labels.array).tolist())
    assert len(present) == 97 and present == set(names)
    assert names[17] == "Left-Hippocampus" and names[53] == "Right-Hippocampus"
    assert names[1035] == "ctx-lh-insula"
    assert not any(n.startswith("label-") for n in names.values())
    # the labels sit on the brain: nearly every labelled voxel has T1 signal
    assert (t1.array[labels.array > 0] > 0).mean() > 0.98
    # the left hippocampus is on the subject's left: LPS x > 0 (array axis 2, direction -1)
    x_index = np.nonzero(labels.array == 17)[2].mean()
    lps_x = t1.origin[2] + t1.direction_matrix()[2, 2] * x_index * t1.spacing[2]
    assert lps_x > 10


@pytest.mark.registry
def test_mni2009a_t1_tissues():
    t1, labels, names = _or_skip(templates.mni2009a_t1_tissues)
    assert t1.shape == labels.shape == (189, 233, 197)
    assert set(np.unique(labels.array).tolist()) == set(range(7)) == set(names)
    counts = np.bincount(labels.array.ravel())
    assert counts[1] == pytest.approx(counts[2], rel=0.05)  # symmetric template
    # white matter is brighter than grey matter in T1
    assert t1.array[labels.array == 3].mean() > t1.array[labels.array == 1].mean()


@pytest.mark.registry
def test_debian_examples():
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available on this machine")
    try:
        pair = templates.elastix_example_pair()
        slices = templates.itk_brain_slices()
    except RegistryUnreachable as error:
        pytest.skip(f"Debian registry unreachable: {error}")
    assert pair["fixed"].shape == pair["moving"].shape == (256, 256)
    assert set(np.unique(pair["mask_fixed"].array).tolist()) == {0, 1}
    assert slices["t1"].shape == slices["pd"].shape == (217, 181)
    assert slices["lung1"].shape == slices["lung2"].shape
