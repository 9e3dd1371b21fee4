"""Instance optimisation: recovers known fields, progress and cancel behave, config is checked."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest
import torch

from napari_deepreg.core import affine_to_field, gaussian_smooth, warp_image, world_grid
from napari_deepreg.losses import lncc, mind_ssc_loss
from napari_deepreg.methods import get_method
from napari_deepreg.methods.instance_opt import (
    InstanceOptConfig,
    estimate,
    level_shapes,
)
from napari_deepreg.pipeline import run_to_end
from napari_deepreg.volume import InputError


def blob_image(shape, seed=0, sigma=2.0) -> torch.Tensor:
    """Smooth random blobs in [0, 1], ``(1, 1, *shape)``."""
    g = torch.Generator().manual_seed(seed)
    x = gaussian_smooth(torch.rand(1, 1, *shape, generator=g), sigma)
    return (x - x.min()) / (x.max() - x.min())


def smooth_field(shape, spacing, amplitude) -> torch.Tensor:
    """A known smooth displacement (mm): products of sines, one period over the image."""
    ndim = len(shape)
    x = world_grid(shape, spacing)
    extent = [(n - 1) * s for n, s in zip(shape, spacing, strict=True)]
    comps = []
    for i in range(ndim):
        c = torch.ones(shape)
        for j in range(ndim):
            c = c * torch.sin(math.pi * x[j] / extent[j] * (1 + (i + j) % 2))
        comps.append(amplitude * c)
    return torch.stack(comps)[None]


def make_pair(shape, spacing, amplitude, seed=0):
    """fixed, moving and the field u with moving(x + u(x)) ~ fixed(x)."""
    fixed = blob_image(shape, seed)
    u = smooth_field(shape, spacing, amplitude)
    # moving(y) = fixed(y - u(y)) inverts x -> x + u(x) to first order (u is small and smooth)
    moving = warp_image(fixed, -u, spacing)
    return fixed, moving, u


def epe(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm(dim=1).mean())


FAST = dict(levels=2, iterations=30, affine_first=False)


@pytest.mark.parametrize("transform", ["bspline", "dense"])
def test_2d_similarity_improves_and_field_is_recovered(transform):
    spacing = (1.0, 1.2)
    fixed, moving, u = make_pair((48, 40), spacing, amplitude=3.0)
    cfg = InstanceOptConfig(transform=transform, control_spacing=6.0, **FAST)
    est = run_to_end(estimate(fixed, moving, spacing, cfg))
    assert est.field.shape == (1, 2, 48, 40)
    assert est.affine is None
    before = lncc(fixed, moving, 7).item()
    after = lncc(fixed, warp_image(moving, est.field, spacing), 7).item()
    assert after < 0.1 * before
    assert epe(est.field, u) < 0.4 * epe(torch.zeros_like(u), u)
    assert est.info["iterations"] == 60
    assert math.isfinite(est.info["final_loss"])


def test_3d_similarity_improves_and_field_is_recovered():
    spacing = (2.0, 1.5, 1.8)
    fixed, moving, u = make_pair((24, 28, 20), spacing, amplitude=3.0)
    cfg = InstanceOptConfig(control_spacing=8.0, **FAST)
    est = run_to_end(estimate(fixed, moving, spacing, cfg))
    assert est.field.shape == (1, 3, 24, 28, 20)
    before = lncc(fixed, moving, 7).item()
    after = lncc(fixed, warp_image(moving, est.field, spacing), 7).item()
    assert after < 0.4 * before
    assert epe(est.field, u) < 0.75 * epe(torch.zeros_like(u), u)


def test_mind_registers_an_inverted_contrast_pair():
    spacing = (1.0, 1.0)
    fixed, moving, u = make_pair((48, 48), spacing, amplitude=3.0, seed=2)
    moving = 1 - moving  # other "modality": every intensity inverted
    cfg = InstanceOptConfig(similarity="mind_ssc", control_spacing=6.0, **FAST)
    est = run_to_end(estimate(fixed, moving, spacing, cfg))
    warped = warp_image(moving, est.field, spacing)
    assert mind_ssc_loss(fixed, warped).item() < 0.25 * mind_ssc_loss(fixed, moving).item()
    assert epe(est.field, u) < 0.45 * epe(torch.zeros_like(u), u)


def test_affine_stage_recovers_a_known_affine():
    spacing = (1.0, 1.0)
    shape = (64, 64)
    fixed = blob_image(shape, seed=3, sigma=3.0)
    theta = math.radians(4.0)
    lin = torch.tensor(
        [[1.04 * math.cos(theta), -math.sin(theta)], [math.sin(theta), 0.97 * math.cos(theta)]]
    )
    centre = torch.tensor([31.5, 31.5])
    truth = torch.eye(3)
    truth[:2, :2] = lin
    truth[:2, 2] = centre + torch.tensor([2.0, -3.0]) - lin @ centre
    # moving(y) = fixed(T^-1 y), so warped(x) = moving(T x) = fixed(x): the answer is T
    moving = warp_image(fixed, affine_to_field(torch.linalg.inv(truth), shape, spacing), spacing)
    cfg = InstanceOptConfig(
        affine_first=True, affine_iterations=150, affine_learning_rate=0.02, similarity="ncc",
        levels=1, iterations=1, learning_rate=1e-4, max_working_size=64,
    )
    est = run_to_end(estimate(fixed, moving, spacing, cfg))
    assert est.affine is not None and est.affine.shape == (3, 3)
    np.testing.assert_allclose(est.affine[:2, :2].numpy(), lin.numpy(), atol=0.02)
    # compare where the matrices send the image centre (mm)
    mapped = est.affine[:2, :2] @ centre + est.affine[:2, 2]
    expected = truth[:2, :2] @ centre + truth[:2, 2]
    assert (mapped - expected).norm().item() < 0.5
    # the returned field is the affine one (the deformable stage barely moved)
    field = affine_to_field(truth, shape, spacing)
    assert epe(est.field, field) < 0.5


def test_affine_is_written_in_world_coordinates_when_the_origin_is_given():
    fixed, moving, _ = make_pair((20, 24), (1.0, 1.5), amplitude=1.5)
    cfg = InstanceOptConfig(affine_iterations=5, levels=1, iterations=1)
    plain = run_to_end(estimate(fixed, moving, (1.0, 1.5), cfg))
    origin = (-30.0, 12.5)
    world = run_to_end(estimate(fixed, moving, (1.0, 1.5), cfg, origin=origin))
    torch.testing.assert_close(world.field, plain.field)
    # the same point: x (voxel 0 at 0 mm) is x + origin in world coordinates
    x = torch.tensor([7.0, -3.0, 1.0])
    o = torch.tensor([*origin, 0.0])
    torch.testing.assert_close(world.affine @ (x + o), plain.affine @ x + o)
    assert not torch.allclose(world.affine, plain.affine)


def test_progress_is_monotone_with_the_right_total():
    fixed, moving, _ = make_pair((20, 24), (1.0, 1.0), amplitude=1.0)
    cfg = InstanceOptConfig(levels=3, iterations=4, affine_first=True, affine_iterations=5)
    gen = estimate(fixed, moving, (1.0, 1.0), cfg)
    steps = []
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        steps.append(p)
        assert p.total == 5 + 3 * 4
        assert p.message
    assert [p.step for p in steps] == list(range(1, 18))
    assert result.info["iterations"] == 17


def test_closing_the_generator_cancels_promptly():
    fixed, moving, _ = make_pair((48, 48, 48), (1.0, 1.0, 1.0), amplitude=1.0)
    cfg = InstanceOptConfig(levels=1, iterations=500, affine_first=False)
    gen = estimate(fixed, moving, (1.0, 1.0, 1.0), cfg)
    next(gen)
    # each iteration on a 48^3 grid is a small fraction of a second: Cancel reacts fast
    start = time.perf_counter()
    for _ in range(3):
        next(gen)
    assert (time.perf_counter() - start) / 3 < 1.0
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)


def test_initial_field_is_the_starting_point():
    spacing = (1.0, 1.2)
    fixed, moving, u = make_pair((40, 36), spacing, amplitude=3.0)
    cfg = InstanceOptConfig(affine_first=True, levels=1, iterations=1, learning_rate=1e-4)
    est = run_to_end(estimate(fixed, moving, spacing, cfg, initial_field=u))
    # one tiny step from the true field stays on it, and the affine stage is skipped
    assert est.affine is None
    assert epe(est.field, u) < 0.01
    with pytest.raises(ValueError, match="initial_field"):
        run_to_end(estimate(fixed, moving, spacing, cfg, initial_field=u[:, :, :-1]))


def test_level_shapes_halve_towards_the_coarsest():
    assert level_shapes((97, 115, 97), 3, 128) == [(25, 29, 25), (49, 58, 49), (97, 115, 97)]
    finest = level_shapes((97, 115, 97), 1, 64)
    assert max(finest[0]) == 64
    # tiny images do not go below 8 voxels; repeated shapes are dropped
    assert level_shapes((12, 10), 4, 128) == [(8, 8), (12, 10)]


def test_config_metadata_and_validation():
    for f in dataclasses.fields(InstanceOptConfig):
        assert f.metadata.get("help"), f.name
        if f.type not in ("bool", bool):
            assert "choices" in f.metadata or {"min", "max"} <= set(f.metadata), f.name
    assert InstanceOptConfig(transform="Dense").transform == "dense"
    with pytest.raises(InputError, match="similarity"):
        InstanceOptConfig(similarity="ssim")
    with pytest.raises(InputError, match="levels"):
        InstanceOptConfig(levels=0)
    spec = get_method("instance_opt")
    assert spec.config_class is InstanceOptConfig
    assert spec.dims == (2, 3)
    assert spec.make_config(iterations=5).iterations == 5


def test_sample_pair_dice_rises_without_folds():
    """The default settings on the bundled 3D brain pair (about 7 s of CPU on one thread)."""
    from napari_deepreg.pipeline import register
    from napari_deepreg.sample import load_sample

    try:
        pair = load_sample("brain3d")
    except InputError as err:
        pytest.skip(f"3D sample pair not available: {err}")
    result = run_to_end(
        register(
            pair["fixed"],
            pair["moving"],
            "instance_opt",
            fixed_labels=pair["fixed_labels"],
            moving_labels=pair["moving_labels"],
            device="cpu",
            hausdorff=False,
        )
    )
    m = result.metrics
    assert m["dice_after"] > m["dice_before"] + 0.1
    assert m["dice_after"] > 0.8
    assert m["fold_percent"] < 0.1
    # the recovered field approaches the true one inside the brain
    inside = pair["fixed_labels"].array > 0
    truth = pair["field"]
    error = np.linalg.norm(result.field - truth, axis=0)[inside].mean()
    assert error < 0.4 * np.linalg.norm(truth, axis=0)[inside].mean()
