"""The DeepSim family (Czolbe et al. 2021): the similarity (eq. 5), the frozen extractor, the
networks, one training step of each role, 2D and 3D inference."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from napari_deepreg.core import gaussian_smooth, warp_image
from napari_deepreg.methods.deepsim import (
    DeepSimConfig,
    DeepSimNetConfig,
    build_net,
    deepsim,
    deepsim_loss,
    estimate,
    feature_cosine,
    registration_loss,
)
from napari_deepreg.nets.deepsim import DeepSimRegistration, DeepSimUNet
from napari_deepreg.volume import InputError
from napari_deepreg.zoo import save_model_file

TINY = (4, 8, 8)


def _image(shape=(32, 32), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = gaussian_smooth(torch.rand(1, 1, *shape, generator=g), 2.0)
    return (x - x.min()) / (x.max() - x.min())


def _extractor(task="ae", dims=2):
    torch.manual_seed(0)
    cfg = DeepSimNetConfig(dims=dims, working_shape=(32,) * dims, role="extractor",
                           extractor_task=task, extractor_channels=TINY)
    return cfg, build_net(cfg).eval()


@pytest.mark.parametrize("task", ["ae", "seg"])
def test_deepsim_is_one_for_identical_inputs(task):
    _, ext = _extractor(task)
    x, y = _image(seed=0), _image(seed=1)
    with torch.no_grad():
        assert float(deepsim(ext, x, x)) == pytest.approx(1.0, abs=1e-5)
        assert float(deepsim_loss(ext, x, x)) == pytest.approx(0.0, abs=1e-5)
        assert float(deepsim(ext, y, x)) < 0.99


def test_feature_cosine_of_scaled_opposite_and_orthogonal_features():
    f = [torch.rand(2, 3, 8, 8) + 0.1, torch.rand(2, 5, 4, 4) + 0.1]
    assert float(feature_cosine(f, [2.5 * t for t in f])) == pytest.approx(1.0, abs=1e-6)
    assert float(feature_cosine(f, [-t for t in f])) == pytest.approx(-1.0, abs=1e-6)
    a = torch.zeros(1, 2, 4, 4)
    a[:, 0] = 1
    b = torch.zeros(1, 2, 4, 4)
    b[:, 1] = 3
    assert float(feature_cosine([a], [b])) == pytest.approx(0.0, abs=1e-6)
    # the mean over levels: one identical level, one orthogonal -> 1/2
    assert float(feature_cosine([a, a], [a, b])) == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(ValueError, match="levels"):
        feature_cosine(f, f[:1])


def test_encoder_gives_three_levels_and_the_autoencoder_has_no_skips():
    ae = DeepSimUNet(1, 1, 2, TINY, skips=False, out_act="sigmoid")
    feats = ae.encode(torch.rand(2, 1, 32, 24))
    assert [tuple(f.shape) for f in feats] == [(2, 4, 32, 24), (2, 8, 16, 12), (2, 8, 8, 6)]
    out = ae(torch.rand(2, 1, 32, 24))
    assert out.shape == (2, 1, 32, 24) and float(out.min()) >= 0 and float(out.max()) <= 1
    # without skips the decoder's input widths are the stages' own (no concatenation)
    assert ae.decoder[1][1].in_channels == 8 and ae.decoder[2][1].in_channels == 8
    seg = DeepSimUNet(1, 7, 3, TINY, skips=True)
    assert seg(torch.rand(1, 1, 8, 8, 8)).shape == (1, 7, 8, 8, 8)
    with pytest.raises(ValueError, match="multiples of 4"):
        seg(torch.rand(1, 1, 6, 8, 8))


def test_gradients_reach_the_registration_net_but_not_the_frozen_extractor():
    _, ext = _extractor("seg")
    model = DeepSimRegistration(2, TINY, extractor=ext)
    model.train()
    assert not model.extractor.training  # batch norm statistics and dropout stay fixed
    assert all(not p.requires_grad for p in model.extractor.parameters())
    fixed, moving = _image(seed=0), _image(seed=1)
    field = model(fixed, moving, (2.0, 2.0))
    warped = warp_image(moving, field, (2.0, 2.0))
    before = {k: v.clone() for k, v in model.extractor.state_dict().items()}
    total, terms = registration_loss("deepsim_seg", warped, fixed, field, (2.0, 2.0), 0.1,
                                     model.extractor)
    total.backward()
    assert {"sim", "reg"} <= set(terms)
    assert all(p.grad is None for p in model.extractor.parameters())
    head = model.net.head.conv.weight.grad
    assert head is not None and float(head.abs().sum()) > 0
    after = model.extractor.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats untouched


def test_registration_loss_baselines_and_errors():
    fixed = _image()
    field = torch.zeros(1, 2, 32, 32)
    for kind in ("mse", "ncc"):
        total, terms = registration_loss(kind, fixed, fixed, field, (1.0, 1.0), 1.0)
        assert float(total) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="extractor"):
        registration_loss("deepsim_ae", fixed, fixed, field, (1.0, 1.0), 1.0)
    with pytest.raises(ValueError, match="Dice"):
        registration_loss("ncc_sup", fixed, fixed, field, (1.0, 1.0), 1.0)
    total, terms = registration_loss("ncc_sup", fixed, fixed, field, (1.0, 1.0), 1.0,
                                     label_term=torch.tensor(0.25), lambda_labels=2.0)
    assert float(total) == pytest.approx(0.5, abs=1e-6) and "labels" in terms


def test_bad_configs_are_refused_and_the_variant_sets_the_extractor():
    with pytest.raises(ValueError, match="multiples of 4"):
        DeepSimNetConfig(working_shape=(30, 32))
    with pytest.raises(ValueError, match="role"):
        DeepSimNetConfig(role="encoder")
    with pytest.raises(ValueError, match="similarity"):
        DeepSimNetConfig(similarity="vgg")
    with pytest.raises(ValueError, match="three widths"):
        DeepSimNetConfig(channels=(8, 16))
    assert DeepSimNetConfig(similarity="deepsim_seg", extractor_task="ae").extractor_task == "seg"
    assert build_net(DeepSimNetConfig(similarity="ncc")).extractor is None


def _save_extractor(tmp_path, task, dims=2, shape=(64, 64)):
    cfg, ext = _extractor(task, dims)
    cfg = dataclasses.replace(cfg, working_shape=shape)
    path = tmp_path / f"extractor_{task}.pt"
    save_model_file(path, "deepsim", dataclasses.asdict(cfg), ext.state_dict(), {})
    return path


@pytest.mark.parametrize("task", ["ae", "seg"])
def test_one_extractor_training_step_lowers_the_loss(task):
    from napari_deepreg.training.tasks.deepsim import DeepSimTask

    torch.manual_seed(0)
    task_ = DeepSimTask({"role": "extractor", "extractor_task": task, "working_shape": [64, 64],
                         "extractor_channels": list(TINY)})
    batch = task_.sample("train", 1, torch.Generator().manual_seed(0))
    assert batch["image"].shape == (2, 1, 64, 64)
    model = task_.build_model(task_.config)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    before, _ = task_.loss(model, batch)
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _ = task_.loss(model, batch)
    assert float(after) < float(before)


def test_one_registration_training_step_lowers_the_loss(tmp_path):
    from napari_deepreg.training.tasks.deepsim import DeepSimTask

    path = _save_extractor(tmp_path, "ae")
    torch.manual_seed(0)
    task = DeepSimTask({"similarity": "deepsim_ae", "working_shape": [64, 64],
                        "channels": list(TINY), "extractor_channels": list(TINY),
                        "extractor_file": str(path), "lambda_diffusion": 0.1})
    batch = task.sample("train", 2, torch.Generator().manual_seed(0))
    model = task.build_model(task.config)
    frozen = {k: v.clone() for k, v in model.extractor.state_dict().items()}
    opt = torch.optim.Adam(task.parameters(model), lr=1e-2)
    model.train()
    before, terms = task.loss(model, batch)
    assert {"sim", "reg"} <= set(terms)
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _ = task.loss(model, batch)
    assert float(after) < float(before)
    assert all(torch.equal(frozen[k], v) for k, v in model.extractor.state_dict().items())


def test_a_mismatched_extractor_file_is_refused(tmp_path):
    from napari_deepreg.training.tasks.deepsim import DeepSimTask

    path = _save_extractor(tmp_path, "ae")
    task = DeepSimTask({"similarity": "deepsim_seg", "extractor_file": str(path),
                        "extractor_channels": list(TINY)})
    with pytest.raises(ValueError, match="extractor_task"):
        task.build_model(task.config)
    with pytest.raises(ValueError, match="extractor_file"):
        DeepSimTask({"similarity": "deepsim_ae"}).build_model(DeepSimNetConfig())


@pytest.mark.parametrize("dims", [2, 3])
def test_estimate_runs_a_model_file_in_2d_and_3d(tmp_path, dims):
    torch.manual_seed(0)
    cfg = DeepSimNetConfig(dims=dims, working_shape=(16,) * dims, similarity="ncc",
                           channels=TINY)
    path = tmp_path / "reg.pt"
    save_model_file(path, "deepsim", dataclasses.asdict(cfg), build_net(cfg).state_dict(), {})
    fixed, moving = _image((18,) * dims, 0), _image((18,) * dims, 1)
    gen = estimate(fixed, moving, (2.0,) * dims, DeepSimConfig(model_file=str(path),
                                                               refine=False))
    with pytest.warns(UserWarning, match="not a zoo model"):
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            result = stop.value
    assert result.field.shape == (1, dims, *(18,) * dims)
    assert bool(torch.isfinite(result.field).all())


def test_an_extractor_file_does_not_register(tmp_path):
    path = _save_extractor(tmp_path, "seg")
    fixed = _image((32, 32))
    with pytest.warns(UserWarning, match="not a zoo model"), pytest.raises(InputError,
                                                                         match="extractor"):
        list(estimate(fixed, fixed, (2.0, 2.0), DeepSimConfig(model_file=str(path))))


def test_benchmark_paired_statistics():
    from benchmarks.deepsim_2d import paired_stats

    a = [0.80, 0.82, 0.75, 0.90, 0.70, 0.85, 0.78, 0.88]
    b = [0.78, 0.79, 0.74, 0.86, 0.69, 0.80, 0.77, 0.85]
    s = paired_stats(a, b)
    diff = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)
    assert s["mean_diff"] == pytest.approx(float(diff.mean()))
    assert s["cohens_d"] == pytest.approx(float(diff.mean() / diff.std()))
    assert s["p"] == pytest.approx(2 / 2**8)  # all 8 differences positive: the smallest p
    assert paired_stats(a, a)["p"] == 1.0
