"""The FlowNet + ROI family (Shan et al. 2018): losses on known shifts, the networks' outputs,
a training step, the 2D-only contract."""

from __future__ import annotations

import math

import pytest
import torch

from napari_deepreg.core import gaussian_smooth
from napari_deepreg.methods.flownet_roi import (
    NOT_3D,
    VARIANTS,
    FlowNetROIConfig,
    FlowNetROINetConfig,
    build_net,
    estimate,
    hnn_loss,
    multiscale_loss,
    smoothness,
)
from napari_deepreg.methods.flownet_roi.losses import to_scale
from napari_deepreg.nets.flownet_roi import HNN, NUM_SCALES, FlowNetS


def _blobs(shift_px: float = 0.0, size: int = 64) -> torch.Tensor:
    """Smooth random blobs, sampled ``shift_px`` pixels further along x (a pulled-back
    shift: ``moving(x) = fixed(x + shift)``)."""
    g = torch.Generator().manual_seed(0)
    base = gaussian_smooth(torch.rand(1, 1, size, size + 16, generator=g), 3.0)
    base = (base - base.min()) / (base.max() - base.min())
    whole = int(shift_px)
    out = base[..., 8 + whole: 8 + whole + size]
    return out.contiguous()


def test_multiscale_loss_is_smallest_at_the_known_shift():
    spacing = (2.0, 2.0)
    fixed, moving = _blobs(0.0), _blobs(-3.0)  # moving(x) = fixed(x - 3 px)
    # warped(x) = moving(x + u) = fixed(x + u - 3 px): u = +3 px = +6 mm is the answer

    def photo(value, shape):
        field = torch.stack([torch.zeros(shape), torch.full(shape, value)])[None]
        return float(multiscale_loss([field], fixed, moving, spacing)[1]["photo"])

    for k in range(3):  # 64, 32, 16 px: the answer wins against 2 px either side and zero
        shape = (64 >> k, 64 >> k)
        right = photo(6.0, shape)
        assert right < min(photo(2.0, shape), photo(10.0, shape), photo(0.0, shape)) - 0.005
    assert photo(6.0, (64, 64)) < 0.002  # exact at full resolution up to the border columns
    shapes = [(64 >> k, 64 >> k) for k in range(4)][::-1]
    fields = [torch.stack([torch.zeros(s), torch.full(s, 6.0)])[None] for s in shapes]
    total, terms = multiscale_loss(fields, fixed, moving, spacing)
    zero = multiscale_loss([torch.zeros_like(f) for f in fields], fixed, moving, spacing)[0]
    assert float(terms["smooth"]) == 0.0 and float(terms["overlap"]) == 0.0
    assert float(total) < 0.25 * float(zero)


def test_smoothness_n_and_e_of_a_linear_field():
    spacing = (1.0, 2.0)
    y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    field = torch.stack([0.5 * y, 0.0 * x])[None]  # du_y/dy = 0.5 per mm
    # mean over both components: d u_y / dy = 0.5 everywhere, the rest 0
    assert float(smoothness(field, spacing, "N")) == pytest.approx(0.5 / 2)
    # a flat fixed image: edge weights 1, E equals N; an edgy one lowers E
    flat = torch.zeros(1, 1, 16, 16)
    assert float(smoothness(field, spacing, "E", flat)) == pytest.approx(
        float(smoothness(field, spacing, "N")))
    edgy = (y[None, None] % 2) * 5.0
    assert float(smoothness(field, spacing, "E", edgy)) < 0.01 * float(
        smoothness(field, spacing, "N"))
    with pytest.raises(ValueError, match="smoothness"):
        smoothness(field, spacing, "X")


def test_overlap_term_counts_the_mask_mismatch():
    spacing = (1.0, 1.0)
    mask_f = torch.zeros(1, 1, 32, 32)
    mask_f[..., 8:24, 8:24] = 1
    mask_m = torch.zeros(1, 1, 32, 32)
    mask_m[..., 8:24, 12:28] = 1  # moved 4 px along x
    img = torch.zeros(1, 1, 32, 32)
    zero = [torch.zeros(1, 2, 32, 32)]
    _, terms = multiscale_loss(zero, img, img, spacing, fixed_mask=mask_f, moving_mask=mask_m)
    assert float(terms["overlap"]) == pytest.approx(2 * 16 * 4 / 32**2)
    shift = torch.zeros(1, 2, 32, 32)
    shift[:, 1] = 4.0
    _, terms = multiscale_loss([shift], img, img, spacing, fixed_mask=mask_f, moving_mask=mask_m)
    assert float(terms["overlap"]) < 1e-6


def test_to_scale_averages_areas():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.allclose(to_scale(x, (2, 2)), torch.tensor([[2.5, 4.5], [10.5, 12.5]]))


def test_hnn_has_five_side_outputs_and_a_fusion_at_input_size():
    net = HNN()
    out = net(torch.rand(3, 1, 64, 48))
    assert len(out["sides"]) == 5
    assert all(s.shape == (3, 1, 64, 48) for s in out["sides"])
    assert out["fuse"].shape == (3, 1, 64, 48)
    target = (torch.rand(3, 1, 64, 48) > 0.5).float()
    # an uninformed net: BCE log 2 for each side (mean) and for the fusion
    assert float(hnn_loss(out, target)) == pytest.approx(2 * math.log(2), rel=0.05)


def test_flownet_predicts_seven_scales_coarse_to_fine():
    flows = FlowNetS()(torch.rand(2, 2, 128, 128))
    assert len(flows) == NUM_SCALES
    assert [f.shape[-1] for f in flows] == [2, 4, 8, 16, 32, 64, 128]
    assert all(f.shape[:2] == (2, 2) for f in flows)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_build_the_right_network(variant):
    cfg = FlowNetROINetConfig(variant=variant, working_shape=(64, 64))
    net = build_net(cfg)
    out = net(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64), (2.0, 2.0))
    assert (net.hnn is not None) == cfg.use_mask == ("mask" in variant)
    assert ("mask_fixed" in out) == cfg.use_mask
    assert cfg.overlap == variant.startswith("PM")
    assert out["field"].shape == (1, 2, 64, 64)


def test_bad_configs_and_3d_input_are_refused():
    with pytest.raises(ValueError, match="2D method"):
        FlowNetROINetConfig(dims=3, working_shape=(64, 64, 64))
    with pytest.raises(ValueError, match="multiples of 64"):
        FlowNetROINetConfig(working_shape=(100, 100))
    with pytest.raises(ValueError, match="variant"):
        FlowNetROINetConfig(variant="PX")
    vol = torch.rand(1, 1, 8, 8, 8)
    with pytest.raises(ValueError, match="2D method"):
        next(estimate(vol, vol, (1.0, 1.0, 1.0), FlowNetROIConfig()))
    assert "2D" in NOT_3D


def test_one_training_step_lowers_the_loss():
    from napari_deepreg.training.tasks.flownet_roi import FlowNetROITask

    torch.manual_seed(0)
    task = FlowNetROITask({"variant": "PMN+mask", "working_shape": [128, 128]})
    batch = task.sample("train", 2, torch.Generator().manual_seed(0))
    assert batch["fixed"].shape == (2, 1, 128, 128)
    assert set(batch["fixed_mask"].unique().tolist()) <= {0.0, 1.0}
    model = task.build_model(task.config)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before, terms = task.loss(model, batch)
    assert {"photo", "smooth", "overlap", "hnn"} <= set(terms)
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _ = task.loss(model, batch)
    assert float(after) < float(before)


def test_the_shipped_model_improves_dice_on_the_2d_sample():
    from napari_deepreg.pipeline import register, run_to_end
    from napari_deepreg.sample import load_sample

    pair = load_sample("brain2d")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_to_end(register(
            pair["fixed"], pair["moving"], method="flownet_roi_2d", config={"refine": False},
            fixed_labels=pair["fixed_labels"], moving_labels=pair["moving_labels"],
            device="cpu", hausdorff=False))
    finally:
        torch.set_num_threads(before)
    m = result.metrics
    # feed-forward 0.7016 -> 0.8025 (tests/test_zoo_pinned.py pins it); the guard keeps it
    assert m["dice_after"] > m["dice_before"] + 0.07
    assert m["guard_returned"] == "method"
    assert m["fold_percent"] < 0.1


def test_clutter_moves_outside_the_roi_only_and_is_one_pattern_shifted():
    from napari_deepreg.data.contrasts import add_clutter

    g = torch.Generator().manual_seed(3)
    fixed, moving = torch.rand(2, 1, 1, 64, 64, generator=g)
    roi = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    roi[..., 16:48, 16:48] = True
    f, m, info = add_clutter(fixed, moving, roi, roi, torch.Generator().manual_seed(0))
    assert torch.equal(f[roi], fixed[roi]) and torch.equal(m[roi], moving[roi])
    assert not torch.equal(f[~roi], fixed[~roi])
    assert 4 <= max(abs(v) for v in info["shift_px"]) <= 12
    # the moving clutter is the fixed one translated (compare where neither ROI covers it)
    shifted = torch.roll(f, info["shift_px"], dims=[2, 3])
    both = ~roi & ~torch.roll(roi, info["shift_px"], dims=[2, 3])
    assert torch.equal(m[both], shifted[both])


def test_p_clutter_puts_clutter_in_training_pairs_and_is_checked():
    from napari_deepreg.training.tasks.flownet_roi import FlowNetROITask

    with pytest.raises(ValueError, match="p_clutter"):
        FlowNetROITask({"p_clutter": 1.5})
    plain = FlowNetROITask({"working_shape": [128, 128]})
    cluttered = FlowNetROITask({"working_shape": [128, 128], "p_clutter": 1.0})
    a = plain.sample("train", 2, torch.Generator().manual_seed(1))
    b = cluttered.sample("train", 2, torch.Generator().manual_seed(1))
    outside = a["fixed_mask"] == 0
    assert float(a["fixed"][outside].std()) < 0.1 < float(b["fixed"][outside].std())
    assert "p_clutter" not in cluttered.config_dict()  # a training setting, not the model's
