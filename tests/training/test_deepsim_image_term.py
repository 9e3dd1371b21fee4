"""DeepSim as the image term of label-map training (AVSM): 0 for identical images, positive for
a shifted one, gradients reach the warped image and not the frozen extractor; 2D only."""

from __future__ import annotations

import pytest
import torch

from napari_deepreg.methods.extractors import load_extractor
from napari_deepreg.training.tasks import label_maps as lm
from napari_deepreg.training.tasks.avsm import AvsmTrainConfig


def _image(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(2, 1, 58, 62, generator=g), 5, 1, 2)
    return (x - x.min()) / (x.max() - x.min())


def test_deepsim_image_term_is_zero_for_identical_images_and_trains_only_the_image():
    torch.set_num_threads(1)
    fixed = _image()  # 58 x 62: padded to the extractor's multiple of 4
    assert float(lm.image_similarity("deepsim", fixed, fixed)) == pytest.approx(0.0, abs=1e-5)
    warped = torch.roll(fixed, 3, -1).requires_grad_(True)
    loss = lm.image_similarity("deepsim", warped, fixed)
    assert float(loss.detach()) > 0.005
    loss.backward()
    assert warped.grad is not None and warped.grad.abs().sum() > 0
    assert all(p.grad is None for p in load_extractor().module.parameters())


def test_deepsim_image_term_is_2d_only():
    config = AvsmTrainConfig(dims=2, working_shape=(32, 32), affine_shape=(32, 32),
                             data="labelmaps",
                             image_similarity="deepsim")
    assert config.image_similarity == "deepsim"
    with pytest.raises(ValueError, match="2D"):
        AvsmTrainConfig(dims=3, data="labelmaps", image_similarity="deepsim")
