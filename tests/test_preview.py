"""The fast preview at reduced resolution: its grid, and that a stronger regulariser gives a
smoother field (the trade a user makes with the Smoothness slider)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepreg.methods.instance_opt import InstanceOptConfig
from napari_deepreg.pipeline import prepare, run_to_end
from napari_deepreg.preview import downsample, preview, preview_factor, smoothness_field
from napari_deepreg.sample import load_sample
from napari_deepreg.volume import Volume


def test_downsampled_grid_keeps_the_physical_extent():
    direction = np.array([[0.0, 1.0], [-1.0, 0.0]])  # axes swapped and flipped
    volume = Volume(np.arange(20 * 16, dtype=np.float32).reshape(20, 16), (2.0, 0.5),
                    (10.0, -4.0), direction)
    small = downsample(volume, 4)
    assert small.shape == (5, 4) and small.spacing == (8.0, 2.0)
    # coarse voxel 0 is the centre of the first 4 x 4 block: fine index (1.5, 1.5)
    expected = np.asarray(volume.origin) + direction @ (np.asarray(volume.spacing) * 1.5)
    np.testing.assert_allclose(small.origin, expected)
    assert small.array[0, 0] == pytest.approx(volume.array[:4, :4].mean())
    labels = downsample(Volume(np.arange(320).reshape(20, 16) % 3, (2.0, 0.5)), 4, labels=True)
    assert set(np.unique(labels.array)) <= {0, 1, 2}
    assert preview_factor((197, 161), 64) == 4 and preview_factor((40, 30), 64) == 1


def test_smoothness_field_names_each_kind_of_config():
    assert smoothness_field(InstanceOptConfig()) == "regularisation"
    assert smoothness_field(InstanceOptConfig) == "regularisation"
    assert smoothness_field(object()) is None


def test_stronger_regularisation_gives_a_smoother_preview(one_thread):
    pair = load_sample("brain2d")
    inputs = prepare(pair["fixed"], pair["moving"], pair["fixed_labels"], pair["moving_labels"])
    results = {w: run_to_end(preview(inputs, "instance_opt", None, w)) for w in (0.01, 3.0)}
    rough, smooth = results[0.01], results[3.0]
    assert rough.grid.shape == (49, 40) and rough.spacing == (4.0, 4.0)
    assert rough.parameters["regularisation"] == 0.01
    assert smooth.metrics["sdlogj"] < 0.5 * rough.metrics["sdlogj"]
    assert smooth.metrics["fold_percent"] <= rough.metrics["fold_percent"]
    assert rough.metrics["dice_after"] > rough.metrics["dice_before"]


def test_a_method_without_a_regulariser_is_refused(monkeypatch):
    from dataclasses import dataclass

    from napari_deepreg import methods

    @dataclass
    class NoWeight:
        steps: int = 1

    methods.available_methods()
    monkeypatch.setitem(methods._REGISTRY, "no_weight",
                        methods.MethodSpec("no_weight", "No weight", NoWeight, None, dims=(2,)))
    pair = load_sample("brain2d")
    inputs = prepare(pair["fixed"], pair["moving"])
    with pytest.raises(ValueError, match="no regularisation setting"):
        run_to_end(preview(inputs, "no_weight", None, 1.0))
