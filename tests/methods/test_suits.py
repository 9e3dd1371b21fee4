"""The SUITS baseline (MIND-SSC + regularised descent) registers a multi-modal sample."""

import numpy as np
import torch

from napari_deepreg.core.warp import warp_labels
from napari_deepreg.methods import get_method
from napari_deepreg.methods.suits.descent import coarse_shape, upsample_field
from napari_deepreg.result import Progress
from napari_deepreg.sample import load_sample


def _dice(a, b):
    out = []
    for lab in np.unique(b):
        if lab:
            x, y = a == lab, b == lab
            out.append(2 * (x & y).sum() / (x.sum() + y.sum()))
    return float(np.mean(out))


def test_upsampled_constant_field_is_in_mm():
    u = torch.ones(1, 2, *coarse_shape((17, 9)))
    dense = upsample_field(u, (17, 9), (2.0, 0.5))
    torch.testing.assert_close(dense[0, 0], torch.full((17, 9), 8.0))  # 4 voxels * 2 mm
    torch.testing.assert_close(dense[0, 1], torch.full((17, 9), 2.0))


def test_suits_mind_improves_dice_on_inverted_contrast_and_reports_each_iteration():
    s = load_sample("brain2d")
    fx = torch.from_numpy(s["fixed"].array)[None, None]
    mv = torch.from_numpy(s["moving"].array)[None, None]
    fx = (fx - fx.min()) / (fx.max() - fx.min())
    mv = 1 - (mv - mv.min()) / (mv.max() - mv.min())  # a contrast MSE cannot match
    spec = get_method("suits_mind")
    config = spec.make_config(iterations=6)
    gen = spec.estimate(fx, mv, (1.0, 1.0), config, None)
    steps = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        est = stop.value
    assert [p.step for p in steps] == list(range(1, 7)) and isinstance(steps[0], Progress)
    fl = s["fixed_labels"].array
    ml = torch.from_numpy(s["moving_labels"].array.astype(np.int64))[None, None]
    before = _dice(ml[0, 0].numpy(), fl)
    after = _dice(warp_labels(ml, est.field, (1.0, 1.0))[0, 0].numpy(), fl)
    assert after > before + 0.05, (before, after)


def test_featcnn_matches_table_1():
    from napari_deepreg.nets.suits import FeatCNN, count_parameters

    net = FeatCNN(3)
    conv = 2 * (16 * 125 + 16 + 32 * 16 * 27 + 32) + 2 * (32 * 32 * 27 + 32) + 12 * 32 * 27 + 12
    norm = 2 * 2 * (16 + 32) + 2 * 2 * 32  # affine instance norms: stems twice, shared once
    assert count_parameters(net) == conv + norm
    out = net(torch.rand(1, 1, 12, 16, 8), 1)
    assert out.shape == (1, 12, 6, 8, 4) and 0 < out.min() and out.max() < 1
    assert FeatCNN(2)(torch.rand(2, 1, 16, 16), 0).shape == (2, 4, 8, 8)


def test_guide_loss_reaches_the_featcnn_and_training_steps_lower_it():
    from napari_deepreg.methods.suits.losses import guide_loss
    from napari_deepreg.nets.suits import FeatCNN

    torch.manual_seed(0)
    y, x = torch.meshgrid(torch.arange(33.0), torch.arange(33.0), indexing="ij")
    disc = lambda cx: (((x - cx) ** 2 + (y - 16) ** 2) < 64).float()  # noqa: E731
    fl, ml = disc(16.0).long()[None], disc(13.0).long()[None]
    fixed = (0.2 + 0.6 * fl.float())[None]
    moving = (0.9 - 0.7 * ml.float())[None]  # inverted contrast
    onehot = torch.nn.functional.one_hot(ml, 2).permute(0, 3, 1, 2).float()
    net = FeatCNN(2)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    u = torch.zeros(1, 2, 9, 9)
    losses = []
    for _ in range(8):
        loss = guide_loss(net, fixed, moving, fl, onehot, u, (1.0, 1.0), lam=0.05)
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in net.stems[0].parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.95 * losses[0], losses


def test_shipped_suits_model_improves_dice_on_inverted_contrast_with_progress_per_update():
    from napari_deepreg import zoo

    assert "suits_2d" in {e.id for e in zoo.list_models()}
    s = load_sample("brain2d")
    fx = torch.from_numpy(s["fixed"].array)[None, None].float()
    mv = s["moving"].array.astype(np.float32)
    mv = (mv - mv.min()) / (mv.max() - mv.min())
    inside = s["moving_labels"].array > 0
    mv = torch.from_numpy(np.where(inside, 1 - mv, mv))[None, None]  # never seen in training
    spec = get_method("suits_2d")
    config = spec.make_config()
    assert {"iterations", "lam", "gamma"} <= set(vars(config)) and config.iterations == 15
    before_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = spec.estimate(fx, mv, (1.0, 1.0), config, None)
        steps = []
        while True:
            try:
                steps.append(next(gen))
            except StopIteration as stop:
                est = stop.value
                break
    finally:
        torch.set_num_threads(before_threads)
    assert [p.step for p in steps] == list(range(0, 17))  # load, 15 updates, done
    fl = s["fixed_labels"].array
    ml = torch.from_numpy(s["moving_labels"].array.astype(np.int64))[None, None]
    before = _dice(ml[0, 0].numpy(), fl)
    after = _dice(warp_labels(ml, est.field, (1.0, 1.0))[0, 0].numpy(), fl)
    assert after > before + 0.01, (before, after)
