"""napari_deepreg.qa.report: the one-page PNG report."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from napari_deepreg import qa
from napari_deepreg.volume import Volume


@pytest.mark.parametrize("ndim", [2, 3])
def test_report_png(tmp_path, ndim, make_result):
    result = make_result(ndim)
    shape = result.warped.shape
    fixed = Volume(np.random.default_rng(3).random(shape), spacing=result.spacing)
    moving = Volume(np.random.default_rng(4).random(tuple(n + 2 for n in shape)))
    path = qa.report_png(result, fixed, moving, result.warped_labels, tmp_path / "report.png")
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # something was drawn


def test_planes_are_radiological_whatever_the_direction():
    """A marker in the patient's right-anterior-superior corner shows top-left in the axial
    plane (anterior up, right on the left) and top-left in the coronal plane, for an identity
    grid and for a grid stored the other way round (NIfTI RAS: array y and x run against LPS)."""
    from napari_deepreg.qa.orientation import Canonical, plane

    shape = (5, 6, 7)
    for direction in (np.eye(3), np.diag([1.0, -1.0, -1.0])):
        array = np.zeros(shape)
        # physical (S, P, L) index grows with the array index where direction is +1
        s, a, r = 4, 0, 0  # superior, most anterior, most right (canonical indices)
        index = [s, a, r]
        for axis in (1, 2):
            if direction[axis, axis] < 0:
                index[axis] = shape[axis] - 1 - index[axis]
        array[tuple(index)] = 1.0
        canon = Canonical.of(shape, (1.0, 1.0, 1.0), direction)
        vol = canon.array(array)
        axial = plane(vol, "axial", s)
        coronal = plane(vol, "coronal", a)
        assert axial[0, 0] == 1.0, direction  # anterior row at the top, right column left
        assert coronal[0, 0] == 1.0, direction  # superior row at the top, right column left
