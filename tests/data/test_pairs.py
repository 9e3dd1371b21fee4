"""Synthetic pairs (napari_deepreg.data.{pair_config, working_anatomy, pairs}): known answers,
reproducibility, 2D slices, the sampler.

Small label phantoms (32^3, 64^2) stand in for real anatomy, so nothing here needs a registry.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_deepreg.core import affine_to_field, jacobian_determinant, warp_image, warp_labels
from napari_deepreg.data.appearance import synthesize_image
from napari_deepreg.data.pair_config import PairConfig
from napari_deepreg.data.pairs import PairSampler, make_pair, slice_pair
from napari_deepreg.data.phantoms import random_label_map
from napari_deepreg.data.resample import downsample_labels
from napari_deepreg.data.working_anatomy import prepare_anatomy
from napari_deepreg.metrics import mean_dice
from napari_deepreg.volume import Volume

SPACING3 = (2.0, 2.0, 2.0)
INNER3 = (Ellipsis, slice(5, -5), slice(5, -5), slice(5, -5))


@pytest.fixture(scope="module")
def phantom3d():
    """A 32^3 anatomy at 2 mm: 12 smooth labels in an ellipsoid and a matching smooth image."""
    labels = random_label_map((32, 32, 32), 12, SPACING3, 10.0, generator=0)
    image = synthesize_image(
        labels, 1, SPACING3, intensity_range=(0.2, 1.0), label_noise_std=0.0, blur_sigma_mm=2.0,
        bias_strength=0.0, gamma_range=(1.0, 1.0), noise_std=0.0, zero_background=True,
    )
    return (Volume(image[0, 0].numpy(), SPACING3, name="phantom"),
            Volume(labels[0, 0].numpy(), SPACING3, name="phantom_labels"))


@pytest.fixture(scope="module")
def phantom2d():
    labels = random_label_map((64, 64), 10, 1.0, 6.0, generator=2)
    image = synthesize_image(
        labels, 3, 1.0, intensity_range=(0.2, 1.0), label_noise_std=0.0, blur_sigma_mm=1.0,
        bias_strength=0.0, gamma_range=(1.0, 1.0), noise_std=0.0, zero_background=True,
    )
    return Volume(image[0, 0].numpy(), (1.0, 1.0)), Volume(labels[0, 0].numpy(), (1.0, 1.0))


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])


def label_means(image: torch.Tensor, labels: torch.Tensor, values) -> np.ndarray:
    return np.array([float(image[labels == v].mean()) for v in values])


# ----------------------------------------------------------------------------- pairs


@pytest.mark.parametrize(
    "affine",
    [{}, {"rotation_deg": 10.0, "scale": 0.08, "shear": 0.03, "translation_mm": 4.0}],
    ids=["deformable", "affine+deformable"],
)
def test_same_modality_pair_is_undone_by_its_true_field(phantom3d, affine):
    image, labels = phantom3d
    config = PairConfig(modality="same", svf_magnitude_mm=5.0, svf_smoothness_mm=10.0, **affine)
    pair = make_pair(image, labels, config, seed=1)
    sp = pair.spacing
    assert sp == SPACING3
    for key in ("fixed", "moving"):
        x = getattr(pair, key)
        assert x.shape == (1, 1, 32, 32, 32) and x.dtype == torch.float32
        assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert pair.field.shape == (1, 3, 32, 32, 32)
    assert float(jacobian_determinant(pair.field, sp).min()) > 0
    assert set(torch.unique(pair.fixed_labels).tolist()) <= set(labels.array.ravel().tolist())

    warped = warp_image(pair.moving, pair.field, sp)
    before = corr(pair.moving[INNER3], pair.fixed[INNER3])
    after = corr(warped[INNER3], pair.fixed[INNER3])
    assert after > 0.95 and after > before + 0.03
    wrong = corr(warp_image(pair.moving, -pair.field, sp)[INNER3], pair.fixed[INNER3])
    assert wrong < after - 0.03  # the sign and composition order matter

    fl = pair.fixed_labels[0, 0].numpy()
    dice_before = mean_dice(fl, pair.moving_labels[0, 0].numpy())
    moved = warp_labels(pair.moving_labels, pair.field, sp)[0, 0].numpy()
    dice_after = mean_dice(fl, moved)
    assert dice_after > 0.88 and dice_after > dice_before + 0.1


def test_affine_only_pair_has_the_drawn_affine_as_its_field(phantom3d):
    image, labels = phantom3d
    config = PairConfig(svf_magnitude_mm=0.0, subject_magnitude_mm=0.0, rotation_deg=12.0,
                        scale=0.1, translation_mm=3.0)
    pair = make_pair(image, labels, config, seed=5)
    expected = affine_to_field(pair.affine.float(), (32, 32, 32), SPACING3)
    assert torch.allclose(pair.field, expected, atol=1e-4)
    assert all(abs(a) <= 12 for a in pair.info["angles_deg"])
    assert all(1 / 1.1 - 1e-9 <= s <= 1.1 + 1e-9 for s in pair.info["scales"])
    # no subject warp: the moving labels are the anatomy's
    assert np.array_equal(pair.moving_labels[0, 0].numpy(), labels.array)


def test_pairs_are_reproducible_per_seed(phantom3d):
    image, labels = phantom3d
    config = PairConfig(modality="synth", rotation_deg=5.0, label_interpolation="nearest")
    a = make_pair(image, labels, config, seed=3)
    b = make_pair(image, labels, config, seed=3)
    c = make_pair(image, labels, config, seed=4)
    for key in ("fixed", "moving", "fixed_labels", "moving_labels", "field"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert not torch.allclose(a.field, c.field)
    assert not torch.allclose(a.fixed, c.fixed)


def test_multimodal_pairs_differ_in_contrast_but_share_labels(phantom3d):
    image, labels = phantom3d
    values = np.unique(labels.array)
    correlations = {}
    for modality in ("synth", "multimodal"):
        config = PairConfig(modality=modality, svf_magnitude_mm=4.0, svf_smoothness_mm=10.0)
        per_seed = []
        for seed in range(4):
            pair = make_pair(None if modality != "same" else image, labels, config, seed=seed)
            mf = label_means(pair.fixed[0, 0], pair.fixed_labels[0, 0], values)
            mm = label_means(pair.moving[0, 0], pair.moving_labels[0, 0], values)
            per_seed.append(float(np.corrcoef(mf, mm)[0, 1]))
            moved = warp_labels(pair.moving_labels, pair.field, pair.spacing)[0, 0].numpy()
            assert mean_dice(pair.fixed_labels[0, 0].numpy(), moved) > 0.88
        correlations[modality] = per_seed
    # one contrast: the label means agree; two contrasts: they are unrelated
    assert min(correlations["synth"]) > 0.9
    assert np.mean(np.abs(correlations["multimodal"])) < 0.5


def test_same_modality_needs_an_image_and_config_is_checked(phantom3d):
    _, labels = phantom3d
    with pytest.raises(ValueError, match="needs an anatomy image"):
        make_pair(None, labels, PairConfig(modality="same"))
    with pytest.raises(ValueError, match="modality"):
        PairConfig(modality="t2")
    with pytest.raises(ValueError, match="label_interpolation"):
        PairConfig(label_interpolation="linear")
    assert PairConfig(working_shape=[8, 8, 8]).working_shape == (8, 8, 8)


def test_unlabelled_tissue_gets_its_own_contrast_but_stays_0_in_the_labels(phantom3d):
    image, labels = phantom3d
    partial = Volume(np.where(labels.array == 5, 0, labels.array), SPACING3)  # an atlas gap
    anatomy = prepare_anatomy(image, partial, PairConfig(modality="synth"))
    assert anatomy.tissue_label == 13
    tissue = (anatomy.labels == 13)[0, 0].numpy()
    assert tissue.sum() > 0.8 * (labels.array == 5).sum()
    assert not (tissue & (labels.array == 0)).any()  # the black background is not tissue
    # without noise, blur or bias every synthetic label is one grey value: label 0 of the pair
    # holds two (background and the gap) with the tissue label, one without it
    clean = dict(modality="synth", label_noise_std=0.0, noise_std=0.0, blur_sigma_mm=0.0,
                 synth_bias_strength=0.0)
    for threshold, levels in ((0.1, 2), (None, 1)):
        pair = make_pair(image, partial, PairConfig(tissue_threshold=threshold, **clean), seed=2)
        assert 13 not in torch.unique(pair.fixed_labels).tolist()
        assert 13 not in torch.unique(pair.moving_labels).tolist()
        zero = pair.fixed[pair.fixed_labels == 0]
        assert len(torch.unique(torch.round(zero * 1e4))) == levels


# ----------------------------------------------------------------------------- 2D


def test_2d_pairs_from_2d_anatomy_and_from_random_slices(phantom2d, phantom3d):
    image2, labels2 = phantom2d
    pair = make_pair(image2, labels2, PairConfig(svf_magnitude_mm=4.0, svf_smoothness_mm=8.0,
                                                 rotation_deg=8.0), seed=0)
    assert pair.fixed.shape == (1, 1, 64, 64) and pair.field.shape == (1, 2, 64, 64)
    assert float(jacobian_determinant(pair.field, pair.spacing).min()) > 0
    inner = (Ellipsis, slice(6, -6), slice(6, -6))
    warped = warp_image(pair.moving, pair.field, pair.spacing)
    assert corr(warped[inner], pair.fixed[inner]) > 0.95

    image3, labels3 = phantom3d
    config = PairConfig(random_slice=True, slice_axis=1, svf_magnitude_mm=4.0,
                        svf_smoothness_mm=10.0)
    sliced = make_pair(image3, labels3, config, seed=2)
    assert sliced.ndim == 2 and sliced.fixed.shape == (1, 1, 32, 32)
    assert sliced.spacing == (2.0, 2.0) and sliced.info["slice_axis"] == 1
    assert 8 <= sliced.info["slice_index"] <= 24  # inside the middle of the labels' extent
    warped = warp_image(sliced.moving, sliced.field, sliced.spacing)
    inner = (Ellipsis, slice(4, -4), slice(4, -4))
    assert corr(warped[inner], sliced.fixed[inner]) > 0.95
    random_axis = make_pair(image3, labels3, PairConfig(random_slice=True, slice_axis=None), 3)
    assert random_axis.ndim == 2


def test_slice_pair_keeps_the_in_plane_field(phantom3d):
    image, labels = phantom3d
    pair = make_pair(image, labels, PairConfig(svf_magnitude_mm=3.0), seed=6)
    cut = slice_pair(pair, 0, 16)
    assert cut.fixed.shape == (1, 1, 32, 32) and cut.fixed_labels.shape == (1, 1, 32, 32)
    assert torch.equal(cut.field, pair.field[:, 1:, 16])
    assert cut.info["out_of_plane_mm"] == pytest.approx(float(pair.field[:, 0, 16].abs().max()))
    cut2 = slice_pair(pair, 2, 5)
    assert torch.equal(cut2.field, pair.field[:, :2, :, :, 5]) and cut2.spacing == (2.0, 2.0)
    with pytest.raises(ValueError, match="no slice"):
        slice_pair(pair, 0, 32)
    with pytest.raises(ValueError, match="3D pair"):
        slice_pair(cut, 0, 0)


# ----------------------------------------------------------------------------- sampler


def test_sampler_is_deterministic_per_seed_and_batches_pairs(phantom3d):
    image, labels = phantom3d
    flipped = (Volume(image.array[::-1].copy(), SPACING3), Volume(labels.array[::-1].copy(),
                                                                  SPACING3))
    config = PairConfig(modality="multimodal", label_interpolation="nearest", downsample=2,
                        working_shape=(16, 18, 16))
    a = PairSampler([phantom3d, flipped], config, seed=10)
    b = PairSampler([phantom3d, flipped], config, seed=10)
    c = PairSampler([phantom3d, flipped], config, seed=11)
    first = a.sample(2)
    assert set(first) == {"fixed", "moving", "fixed_labels", "moving_labels", "field", "affine",
                          "spacing"}
    assert first["fixed"].shape == (2, 1, 16, 18, 16) and first["field"].shape == (2, 3, 16, 18, 16)
    assert first["fixed_labels"].dtype == torch.int64 and first["affine"].shape == (2, 4, 4)
    assert first["spacing"] == (4.0, 4.0, 4.0)
    assert float(jacobian_determinant(first["field"], first["spacing"]).min()) > 0
    second = a.sample(2)
    other = c.sample(2)
    assert not torch.equal(first["field"], second["field"])
    assert not torch.equal(first["fixed"], other["fixed"])
    for batch in (first, second):
        again = b.sample(2)
        for key in ("fixed", "moving", "fixed_labels", "moving_labels", "field"):
            assert torch.equal(batch[key], again[key]), key
    # an explicit generator drives the draws instead of the sampler's own
    g1 = a.sample(1, torch.Generator().manual_seed(3))
    g2 = c.sample(1, torch.Generator().manual_seed(3))
    assert torch.equal(g1["moving"], g2["moving"])


def test_sampler_checks_grids_and_prepares_anatomy(phantom3d):
    image, labels = phantom3d
    small = (Volume(image.array[:30], SPACING3), Volume(labels.array[:30], SPACING3))
    with pytest.raises(ValueError, match="working_shape"):
        PairSampler([phantom3d, small])
    with pytest.raises(ValueError, match="spacing"):
        PairSampler([phantom3d, (None, Volume(labels.array, (1.0, 1.0, 1.0)))],
                    PairConfig(modality="synth"))
    config = PairConfig(downsample=2, working_shape=(20, 12, 16), tissue_threshold=None)
    anatomy = prepare_anatomy(image, labels, config)
    assert anatomy.shape == (20, 12, 16) and anatomy.spacing == (4.0, 4.0, 4.0)
    assert float(anatomy.image.min()) == 0 and float(anatomy.image.max()) <= 1
    down = downsample_labels(labels.array, 2)
    # padded along axis 0 (16 -> 20: two slices of background each side), cropped on axis 1
    assert np.array_equal(anatomy.labels[0, 0, 2:18].numpy()[:, :, :], down[:, 2:14, :])
    assert np.count_nonzero(anatomy.labels[0, 0, :2].numpy()) == 0
