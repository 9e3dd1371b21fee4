"""Both learned families train on label-map pairs (``data: labelmaps``): batches with the
keys and shapes the losses need, a loss that goes down, held-out anatomy kept out of training,
the generalisation gap in the validation row, and configs that parse.

Made-up label maps on small grids (no download); the tasks' sampler factory is patched to use
them, with the families of the real bank.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_deepreg.data import random_label_map
from napari_deepreg.data.atlases import LabelMap
from napari_deepreg.data.label_pairs import LabelPairSampler, split_maps
from napari_deepreg.methods.avsm.config import AvsmNetConfig
from napari_deepreg.methods.semantic_bspline.config import SemanticBSplineNetConfig
from napari_deepreg.training.cli import resolve_settings
from napari_deepreg.training.tasks import label_maps as lm
from napari_deepreg.training.tasks.avsm import AvsmTask
from napari_deepreg.training.tasks.semantic_bspline import SemanticBSplineTask
from napari_deepreg.training.validation import validate, validation_batches

SPACING = (4.0, 4.0, 4.0)
SHAPE = (24, 32, 24)
REPO = Path(__file__).resolve().parents[2]
KEYS = {"fixed", "moving", "fixed_labels", "moving_labels", "has_affine", "spacing"}


def fake_map(name: str, family: str, seed: int) -> LabelMap:
    labels = random_label_map(SHAPE, 12, SPACING, generator=seed)[0, 0].numpy().astype(np.int32)
    coarse = np.where(labels > 0, (labels - 1) % 6 + 1, 0).astype(np.uint8)
    names = {0: "background", **{k: f"{name}-{k}" for k in range(1, 13)}}
    return LabelMap(name, family, labels, coarse, None, SPACING, names)


BANK = [fake_map("hammers", "cat12", 1), fake_map("lpba40", "cat12", 2),
        fake_map("dkt", "mni2009c", 3), fake_map("tissues", "mni2009a", 4)]


@pytest.fixture(autouse=True)
def _tiny_bank(monkeypatch, one_thread):
    def sampler(config, split, ndim):
        return LabelPairSampler(BANK, lm.pair_config(config, ndim), split, seed=0)

    monkeypatch.setattr(lm, "label_sampler", sampler)
    yield


def avsm_task(**overrides) -> AvsmTask:
    values = dict(dims=3, stage="affine", working_shape=list(SHAPE), voxel_size=4.0,
                  affine_shape=[16, 16, 16], affine_channels=[4, 8, 8, 8], affine_steps=1,
                  data="labelmaps", train_val_pairs=2)
    values.update(overrides)
    return AvsmTask(values)


def bspline_task(dims: int = 3, **overrides) -> SemanticBSplineTask:
    shape = [25, 33, 25] if dims == 3 else [33, 33]
    values = dict(dims=dims, working_shape=shape, voxel_size=4.0, strides=[3],
                  unet_channels=[4, 4, 8, 8], regnet_channels=[4, 4, 8, 8], data="labelmaps",
                  train_val_pairs=2)
    values.update(overrides)
    return SemanticBSplineTask(values)


def test_avsm_task_draws_label_map_batches_with_the_loss_keys():
    batch = avsm_task().sample("train", 2, torch.Generator().manual_seed(0))
    assert set(batch) == KEYS | {"affine"}
    for key in ("fixed", "moving", "fixed_labels", "moving_labels"):
        assert batch[key].shape == (2, 1, *SHAPE)
    assert batch["fixed"].is_floating_point() and not batch["fixed_labels"].is_floating_point()
    assert int(batch["fixed_labels"].max()) <= 6
    assert batch["has_affine"].shape == (2,)


@pytest.mark.parametrize("dims", [3, 2])
def test_semantic_bspline_batches_are_padded_to_its_8k_plus_1_grid(dims):
    task = bspline_task(dims)
    batch = task.sample("val", 2, torch.Generator().manual_seed(1))
    assert set(batch) == KEYS
    assert batch["fixed"].shape == (2, 1, *task.config.working_shape)
    assert batch["moving_labels"].shape == (2, 1, *task.config.working_shape)
    # the class weights come from the training maps' coarse labels
    assert task.weights().shape == (7,) and bool(torch.isfinite(task.weights()).all())


def _loss_goes_down(task, steps: int, lr: float) -> tuple[float, float]:
    torch.manual_seed(0)
    task.setup(torch.device("cpu"))
    model = task.build_model(task.config)
    params = task.parameters(model)
    opt = torch.optim.Adam(params, lr=lr)
    batch = task.sample("train", 1, torch.Generator().manual_seed(3))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss, _ = task.loss(model, batch)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses[0], min(losses[-3:])


def test_a_semantic_bspline_step_on_label_maps_lowers_the_loss():
    first, last = _loss_goes_down(bspline_task(3), 12, 3e-3)
    assert last < first


def test_avsm_affine_steps_on_label_maps_lower_the_loss():
    # one anatomy moved by an affine, two contrasts: a pose the affine net can learn on a tiny
    # grid. The untrained net sits at the identity, where linear interpolation has a kink (the
    # loss rises for the first steps whichever way they go), hence 20 steps.
    task = avsm_task(lambda_ar_c=0.0, lambda_as=0.0, p_same_subject=1.0)
    first, last = _loss_goes_down(task, 20, 3e-3)
    assert last < first - 0.1


def test_supervised_affine_targets_the_known_motion_and_none_on_unmoved_pairs():
    task = avsm_task(lambda_affine=1.0, p_no_affine=0.5)
    gen = torch.Generator().manual_seed(5)
    batch = task.sample("train", 6, gen)
    assert not bool(batch["has_affine"].all()) and bool(batch["has_affine"].any())
    forward, backward = lm.motion_fields(batch)
    assert forward.shape == (6, 3, *SHAPE)
    for i, moved in enumerate(batch["has_affine"].tolist()):
        assert (float(forward[i].abs().max()) > 0) == moved
    # the term is in the loss and is 0 for a prediction equal to the target
    _, terms = task.loss(task.build_model(task.config), batch)
    assert "supervised" in terms and float(terms["supervised"]) > 0
    assert float(lm.field_distance(forward, forward)) == 0.0


def test_held_out_families_never_reach_the_training_split():
    config = avsm_task().config
    pair_config = lm.pair_config(config, 3)
    train = {m.family for m in split_maps(BANK, pair_config, "train")}
    val = {m.family for m in split_maps(BANK, pair_config, "val")}
    assert train == {"cat12"} and val == {"mni2009c"}
    # and what the task actually draws from
    task = avsm_task()
    assert {m.family for m in task._sampler("train").maps} == {"cat12"}
    assert {m.family for m in task._sampler("val").maps} == {"mni2009c"}
    with pytest.raises(ValueError, match="bundled sample"):
        avsm_task(label_train_families=["cat12", "mni2009a"])
    with pytest.raises(ValueError, match="both training and validation"):
        lm.pair_config(avsm_task(label_val_families=["cat12"]).config, 3)


def test_validation_reports_training_split_figures_and_the_gap():
    task = avsm_task()
    batches = validation_batches(task, 2)
    assert len(batches) == 4
    model = task.build_model(task.config)
    row = validate(task, model, batches, torch.device("cpu"))
    assert {"val_dice", "val_train_dice", "val_gap_dice", "val_scale_pct"} <= set(row)
    assert row["val_gap_dice"] == pytest.approx(row["val_train_dice"] - row["val_dice"])


def test_model_files_keep_only_the_family_fields():
    for task, family in ((avsm_task(), AvsmNetConfig), (bspline_task(), SemanticBSplineNetConfig)):
        stored = task.config_dict()
        assert "data" not in stored and "p_shapes" not in stored
        assert task.run_config_dict()["data"] == "labelmaps"
        family(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})
    # a family config (a model file's) builds the task
    assert AvsmTask(AvsmNetConfig()).config.data == "templates"


@pytest.mark.parametrize("method, name", [
    ("avsm", "avsm_labelmaps_affine_3d.yaml"),
    ("semantic_bspline", "semantic_bspline_labelmaps_3d.yaml"),
])
def test_label_map_configs_parse_with_their_dict_field(method, name):
    task, train, _ = resolve_settings(
        method, REPO / "configs" / name, overrides=["method.p_shapes={train: 0.5, val: 0.1}"])
    assert task.config.data == "labelmaps"
    assert task.config.p_shapes == {"train": 0.5, "val": 0.1}
    assert "mni2009a" not in task.config.label_train_families
    assert train.num_threads == 1 and train.checkpoint_every > 0
    with pytest.raises(ValueError, match="p_shapes"):
        resolve_settings(method, REPO / "configs" / name,
                         overrides=["method.p_shapes={train: 2.0}"])


def test_native_orientation_flips_the_bank_grid_in_y_and_x():
    m = BANK[0]
    n = lm.native_orientation(m)
    assert np.array_equal(n.labels, m.labels[:, ::-1, ::-1])
    assert np.array_equal(n.coarse, m.coarse[:, ::-1, ::-1])
    assert n.labels.flags["C_CONTIGUOUS"] and n.family == m.family and n.spacing == m.spacing
