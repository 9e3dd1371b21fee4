"""SUITS training (Algorithm 1 and the MIND-replication stage) on the label bank's pairs."""

import pytest
import torch

from napari_deepreg.training.task import get_task_class


@pytest.fixture(scope="module")
def task_and_batch():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    task = get_task_class("suits")({"dims": 2, "working_shape": [112, 112], "lam": 1.0})
    batch = task.sample("train", 2, torch.Generator().manual_seed(3))
    yield task, batch
    torch.set_num_threads(before)


def test_a_batch_is_a_multimodal_pair_with_a_k_back(task_and_batch):
    task, batch = task_and_batch
    assert batch["fixed"].shape == batch["moving"].shape == (2, 1, 112, 112)
    assert 0 <= int(batch["untracked"]) <= task.config.iterations - 1
    assert task.config_dict()["lam"] == 1.0 and "stage" not in task.config_dict()


@pytest.mark.parametrize(("stage", "lr", "steps"), [("mind", 1e-3, 4), ("guide", 1e-4, 2)])
def test_training_steps_lower_the_loss(task_and_batch, stage, lr, steps):
    """MIND replication: 3 Adam steps; the guide (from random weights, where larger steps
    overshoot): one step."""
    task, batch = task_and_batch
    task.config.stage = stage
    batch = {**batch, "untracked": torch.tensor(4)}  # 4 untracked label updates, then 1 tracked
    torch.manual_seed(0)
    net = task.build_model(task.config)
    opt = torch.optim.Adam(net.parameters(), lr)
    losses = []
    for _ in range(steps):
        loss, terms = task.loss(net, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0], losses
    with torch.no_grad():
        val = task.sample("val", 1, torch.Generator().manual_seed(1))
        figures = task.validate(net.eval(), val)
    assert {"dice", "dice_mind", "dice_before", "fold_percent", "mind_l1"} <= set(figures)


def test_label_descent_aligns_the_label_maps(task_and_batch):
    from napari_deepreg import metrics
    from napari_deepreg.core import warp_labels
    from napari_deepreg.losses.functional import one_hot
    from napari_deepreg.methods.suits.descent import upsample_field
    from napari_deepreg.training.tasks.suits import label_descent

    _, batch = task_and_batch
    fixed, moving = batch["fixed_labels"][:1], batch["moving_labels"][:1]
    u = label_descent(one_hot(fixed, 7), one_hot(moving, 7), batch["spacing"], 10, 1.0, 1.0)
    field = upsample_field(u, fixed.shape[2:], batch["spacing"])
    before = metrics.mean_dice(fixed[0, 0].numpy(), moving[0, 0].numpy())
    after = metrics.mean_dice(fixed[0, 0].numpy(),
                              warp_labels(moving, field, batch["spacing"])[0, 0].numpy())
    assert after > before + 0.05, (before, after)


def test_bad_stage_is_refused():
    with pytest.raises(ValueError, match="stage"):
        get_task_class("suits")({"stage": "other"})
