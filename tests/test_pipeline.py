"""The registration pipeline end to end on small synthetic pairs (no GUI)."""

import dataclasses

import numpy as np
import pytest
import torch

from napari_deepreg.core import warp_image, warp_labels
from napari_deepreg.methods import MethodSpec, Progress, get_method, register_method
from napari_deepreg.methods.base import Estimate
from napari_deepreg.pipeline import register, run_to_end
from napari_deepreg.volume import InputError, Volume

FAST = {"levels": 2, "iterations": 15, "affine_first": False}
_RNG = np.random.default_rng(0)


def _blobs(shape, seed):
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    img = ndimage.gaussian_filter(rng.random(shape), 2.0)
    return ((img - img.min()) / (img.max() - img.min())).astype(np.float32)


@pytest.fixture(scope="module")
def pair3d():
    """A 3D pair with labels whose moving image is the fixed one shifted by 2 mm along y."""
    shape, spacing, origin = (20, 24, 22), (2.0, 1.5, 1.5), (10.0, -4.0, 3.0)
    img = _blobs(shape, 0)
    labels = (np.digitize(img, [0.35, 0.5, 0.65])).astype(np.int32)
    shift = torch.zeros(1, 3, *shape)
    shift[:, 1] = -3.0  # moving(x) = fixed(x - 3 mm): registering needs u = +3 mm along y
    moving = warp_image(torch.from_numpy(img)[None, None], shift, spacing)[0, 0].numpy()
    moving_labels = warp_labels(torch.from_numpy(labels)[None, None], shift, spacing)[0, 0]
    fixed_v = Volume(img, spacing, origin, name="fixed")
    moving_v = Volume(moving, spacing, origin, name="moving")
    return fixed_v, moving_v, labels, moving_labels.numpy()


def test_register_yields_progress_and_returns_result_on_fixed_grid(pair3d):
    fixed, moving, fl, ml = pair3d
    gen = register(fixed, moving, config=FAST, fixed_labels=fl, moving_labels=ml, device="cpu")
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert steps and all(isinstance(p, Progress) for p in steps)
    assert result.warped.shape == fixed.shape and result.field.shape == (3, *fixed.shape)
    assert result.spacing == fixed.spacing and result.origin == fixed.origin
    assert result.metrics["dice_after"] > result.metrics["dice_before"] + 0.05
    assert result.metrics["fold_percent"] < 0.1
    assert set(np.unique(result.warped_labels)) <= set(np.unique(ml))
    # recovered the 3 mm shift along y in the interior
    inner = result.field[1][4:-4, 5:-5, 5:-5]
    assert abs(float(np.median(inner)) - 3.0) < 0.6
    assert result.method == "instance_opt" and result.parameters["iterations"] == 15


def test_inputs_are_never_modified(pair3d):
    fixed, moving, fl, ml = pair3d
    copies = [a.copy() for a in (fixed.array, moving.array, fl, ml)]
    run_to_end(register(fixed, moving, config=FAST, fixed_labels=fl, moving_labels=ml))
    for before, after in zip(copies, (fixed.array, moving.array, fl, ml), strict=True):
        np.testing.assert_array_equal(before, after)


def test_points_give_tre(pair3d):
    fixed, moving, _, _ = pair3d
    pts = np.array([[30.0, 15.0, 18.0], [35.0, 10.0, 12.0]])  # physical mm, array order
    moved = pts + np.array([0.0, 3.0, 0.0])
    result = run_to_end(register(fixed, moving, config=FAST, fixed_points=pts, moving_points=moved))
    assert result.metrics["tre_before"] == pytest.approx(3.0)
    assert result.metrics["tre_after"] < 1.5


def test_moving_on_another_grid_is_resampled_and_user_is_told(pair3d):
    fixed, moving, _, _ = pair3d
    coarse = Volume(
        moving.array[::2, ::2, ::2], tuple(2 * s for s in moving.spacing), moving.origin
    )
    result = run_to_end(register(fixed, coarse, config=FAST))
    assert result.warped.shape == fixed.shape
    assert any("resampled" in n for n in result.notes)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda f, m: (f, Volume(np.zeros(m.shape, np.float32))), "constant"),
        (lambda f, m: (f, Volume(np.where(m.array > 0.5, np.nan, m.array))), "NaN"),
        (lambda f, m: (f, Volume(_RNG.random((18, 19, 3)).astype(np.float32))), "RGB"),
        (lambda f, m: (f, Volume(_RNG.random((4, 8, 9, 10)).astype(np.float32))), "4D"),
        (lambda f, m: (f, Volume(m.array[0])), "2D or both 3D"),
    ],
)
def test_bad_images_raise_one_clear_input_error(pair3d, change, match):
    fixed, moving, _, _ = pair3d
    f, m = change(fixed, moving)
    with pytest.raises(InputError, match=match):
        run_to_end(register(f, m, config=FAST))


@pytest.mark.parametrize(
    "labels, match",
    [
        (lambda fl: fl[:-1], "shape"),
        (lambda fl: fl.astype(np.float32) + 0.5, "non-integer"),
        (lambda fl: fl - 5, "negative"),
    ],
)
def test_bad_labels_raise(pair3d, labels, match):
    fixed, moving, fl, ml = pair3d
    with pytest.raises(InputError, match=match):
        run_to_end(register(fixed, moving, config=FAST, fixed_labels=labels(fl), moving_labels=ml))


def test_unknown_method_and_parameter_are_reported(pair3d):
    fixed, moving, _, _ = pair3d
    with pytest.raises(ValueError, match="unknown method"):
        run_to_end(register(fixed, moving, method="nope"))
    with pytest.raises(ValueError, match="unknown parameter"):
        run_to_end(register(fixed, moving, config={"itterations": 3}))


def test_method_with_wrong_dims_is_refused(pair3d):
    fixed, moving, _, _ = pair3d

    @dataclasses.dataclass
    class Cfg:
        pass

    def estimate(f, m, spacing, cfg, device):
        yield Progress(0, 1)
        return Estimate(torch.zeros(1, f.ndim - 2, *f.shape[2:]))

    register_method(MethodSpec("only2d_test", "2D only", Cfg, estimate, dims=(2,)))
    with pytest.raises(InputError, match="supports 2D"):
        run_to_end(register(fixed, moving, method="only2d_test"))
    assert get_method("only2d_test").dims == (2,)


def test_affine_is_reported_in_the_image_world_frame():
    from napari_deepreg.core import affine_to_field
    from napari_deepreg.pipeline import _affine_in_world

    local = torch.eye(4, dtype=torch.float64)
    local[:3, :3] += torch.tensor([[0.05, 0.02, 0.0], [-0.03, 0.04, 0.01], [0.0, 0.02, -0.05]])
    local[:3, 3] = torch.tensor([1.0, -2.0, 0.5])
    shape, spacing, origin = (6, 7, 8), (2.0, 1.5, 1.0), (10.0, -4.0, 3.0)
    world = torch.from_numpy(_affine_in_world(local, origin))
    # the same displacement at every voxel, whichever frame the matrix is written in
    torch.testing.assert_close(
        affine_to_field(world, shape, spacing, origin), affine_to_field(local, shape, spacing)
    )


# ----------------------------------------------------------------------------- prepare


def test_prepare_brings_moving_and_its_labels_onto_the_fixed_grid_once(pair3d):
    from napari_deepreg.pipeline import PreparedInputs, prepare

    fixed, moving, fl, ml = pair3d
    coarse = Volume(moving.array[::2, ::2, ::2], tuple(2 * s for s in moving.spacing),
                    moving.origin)
    inputs = prepare(fixed, coarse, fl, ml[::2, ::2, ::2])
    assert isinstance(inputs, PreparedInputs)
    assert inputs.moving.same_grid(fixed) and inputs.moving_labels.shape == fixed.shape
    assert inputs.moving.array.dtype == np.float32 and inputs.moving_labels.array.dtype == np.int32
    assert inputs.fixed_labels.spacing == fixed.spacing
    assert inputs.grid.shape == fixed.shape and inputs.ndim == 3
    assert len(inputs.notes) == 1 and "resampled onto the fixed grid" in inputs.notes[0]
    assert set(np.unique(inputs.moving_labels.array)) <= set(np.unique(ml))
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.notes = ()  # type: ignore[misc]
    # already on the fixed grid: nothing to say, the arrays are the inputs' values
    same = prepare(fixed, moving)
    assert same.notes == () and same.moving.same_grid(fixed)
    np.testing.assert_array_equal(same.moving.array, moving.array)


def test_prepare_checks_labels_against_their_image(pair3d):
    from napari_deepreg.pipeline import prepare

    fixed, moving, fl, ml = pair3d
    small = Volume(moving.array[:-2], moving.spacing, moving.origin)
    with pytest.raises(InputError, match="swapped"):  # fixed labels of the moving image's shape
        prepare(fixed, small, fixed_labels=fl[:-2])
    with pytest.raises(InputError, match="non-integer"):
        prepare(fixed, moving, moving_labels=ml.astype(np.float32) + 0.25)
    # labels of the right shape take their image's grid; another geometry is worth a note
    shifted = Volume(fl, fixed.spacing, tuple(o + 5.0 for o in fixed.origin))
    inputs = prepare(fixed, moving, fixed_labels=shifted, moving_labels=ml)
    assert inputs.fixed_labels.origin == fixed.origin
    assert inputs.notes == ("fixed labels carry another geometry than their image; they are "
                            "taken on the fixed image's grid",)
    assert prepare(fixed, moving, Volume(fl, fixed.spacing, fixed.origin), ml).notes == ()


@pytest.mark.parametrize(
    "fixed_points, moving_points, match",
    [
        (np.zeros((3, 2)), np.zeros((3, 2)), r"\(K, 3\)"),
        (np.zeros((3, 3)), None, "both be given"),
        (np.zeros((3, 3)), np.zeros((2, 3)), "same count"),
        (np.full((2, 3), np.nan), np.zeros((2, 3)), "NaN"),
    ],
)
def test_prepare_checks_points(pair3d, fixed_points, moving_points, match):
    from napari_deepreg.pipeline import prepare

    fixed, moving, _, _ = pair3d
    with pytest.raises(InputError, match=match):
        prepare(fixed, moving, fixed_points=fixed_points, moving_points=moving_points)


def test_prepare_points_and_dims(pair3d):
    from napari_deepreg.pipeline import prepare

    fixed, moving, _, _ = pair3d
    pts = [[30.0, 15.0, 18.0]]
    inputs = prepare(fixed, moving, fixed_points=pts, moving_points=pts)
    assert inputs.fixed_points.shape == (1, 3) and inputs.fixed_points.dtype == np.float64
    assert prepare(fixed, moving, fixed_points=np.zeros((0, 3))).fixed_points is None
    with pytest.raises(InputError, match="method 'x2d' supports 2D images, not 3D"):
        prepare(fixed, moving, ndims=(2,), method="x2d")
    with pytest.raises(InputError, match="both a fixed and a moving"):
        prepare(fixed, None)


def test_register_prepared_runs_what_prepare_made(pair3d):
    from napari_deepreg.pipeline import prepare, register_prepared

    fixed, moving, fl, ml = pair3d
    inputs = prepare(fixed, moving, fl, ml)
    result = run_to_end(register_prepared(inputs, "instance_opt", FAST, device="cpu"))
    assert result.grid.shape == fixed.shape
    assert result.metrics["dice_after"] > result.metrics["dice_before"]
