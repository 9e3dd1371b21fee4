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
