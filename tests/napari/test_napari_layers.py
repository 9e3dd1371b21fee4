"""Result -> layer data tuples (pure functions, no viewer)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepreg import qa
from napari_deepreg._napari._layers import (
    FOLDS_NAME,
    GRID_NAME,
    JACOBIAN_NAME,
    MAGNITUDE_NAME,
    METADATA_KEY,
    PREFIX,
    WARPED_LABELS_NAME,
    apply_display,
    grid_data,
    grid_period,
    is_result_layer,
    normalise_axes,
    result_layers,
    warped_name,
)
from napari_deepreg.result import Grid, RegistrationResult

SPACING = (2.0, 1.0, 0.5)
ORIGIN = (-4.0, 7.0, 1.5)


def make_result(with_labels: bool = True) -> RegistrationResult:
    shape = (6, 8, 10)
    field = np.zeros((3, *shape), dtype=np.float32)
    field[0] = 3.0  # 3 mm along z everywhere: magnitude 3
    field[2, :, :, 4:6] = 4.0  # ... and 4 mm along x in a slab: magnitude 5 there
    jac = np.ones(shape, dtype=np.float32)
    jac[2, 3, 4] = -0.5  # one folded voxel
    jac[1, 1, 1] = 0.0  # J = 0 folds too
    return RegistrationResult(
        warped=np.linspace(0, 1, np.prod(shape), dtype=np.float32).reshape(shape),
        warped_labels=np.ones(shape, dtype=np.int32) if with_labels else None,
        field=field,
        jacobian=jac,
        grid=Grid(shape, SPACING, ORIGIN),
        affine=None,
        metrics={},
        label_metrics=[],
        runtime=0.1,
        method="m",
        model=None,
        parameters={},
    )


def by_name(tuples):
    return {kwargs["name"]: (data, kwargs, kind) for data, kwargs, kind in tuples}


def test_every_layer_has_the_fixed_geometry_and_a_prefixed_name():
    layers = by_name(result_layers(make_result(), "fixed", "brain"))
    assert set(layers) == {
        warped_name("brain"), MAGNITUDE_NAME, JACOBIAN_NAME, GRID_NAME, WARPED_LABELS_NAME,
        FOLDS_NAME,
    }
    for name, (data, kwargs, _) in layers.items():
        assert name.startswith(PREFIX)
        assert kwargs["scale"] == SPACING and kwargs["translate"] == ORIGIN
        assert data.shape == (6, 8, 10)
        assert is_result_layer(name, kwargs["metadata"])
        assert kwargs["metadata"][METADATA_KEY]["fixed"] == "fixed"
    kinds = {name: kind for name, (_, _, kind) in layers.items()}
    assert kinds[WARPED_LABELS_NAME] == kinds[FOLDS_NAME] == "labels"
    assert kinds[warped_name("brain")] == kinds[GRID_NAME] == "image"
    grid_style = layers[GRID_NAME][1]
    assert grid_style["colormap"]["colors"][0][3] == 0.0  # no line: fully transparent
    # an identity grid (no direction) adds nothing the writer would read
    assert all("direction" not in kwargs["metadata"] for _, kwargs, _ in layers.values())


def test_every_layer_carries_the_fixed_direction():
    import dataclasses

    direction = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    result = make_result()
    result = dataclasses.replace(result, grid=Grid(result.grid.shape, SPACING, ORIGIN, direction))
    tuples = result_layers(result, "fixed", "moving")
    assert len(tuples) == 6
    for _, kwargs, _ in tuples:
        np.testing.assert_array_equal(kwargs["metadata"]["direction"], direction.tolist())
        assert kwargs["scale"] == SPACING and kwargs["translate"] == ORIGIN


def test_layer_contents():
    result = make_result()
    layers = by_name(result_layers(result, "fixed", "moving"))
    magnitude = layers[MAGNITUDE_NAME][0]
    assert magnitude[:, :, :4] == pytest.approx(3.0)
    assert magnitude[:, :, 4:6] == pytest.approx(5.0)
    folds = layers[FOLDS_NAME][0]
    assert sorted(zip(*np.nonzero(folds), strict=True)) == [(1, 1, 1), (2, 3, 4)]
    jac_data, jac_kwargs, _ = layers[JACOBIAN_NAME]
    _, limits, cmap = qa.jacobian_display(result.jacobian)
    np.testing.assert_array_equal(jac_data, result.jacobian)
    assert jac_kwargs["contrast_limits"] == pytest.approx(limits)
    assert jac_kwargs["colormap"] == cmap
    np.testing.assert_array_equal(layers[GRID_NAME][0], grid_data(result.field, SPACING, (1, 2)))


def test_no_labels_layer_without_labels():
    names = [kw["name"] for _, kw, _ in result_layers(make_result(False), "f", "m")]
    assert WARPED_LABELS_NAME not in names and len(names) == 5


def test_grid_lines_lie_in_the_displayed_plane():
    # zero field: lines every `period` voxels along each displayed axis only
    field = np.zeros((3, 16, 48, 48), dtype=np.float32)
    grid = grid_data(field, (1.0, 1.0, 1.0), (1, 2))
    # no line depends on z: every z slice is the same picture
    assert all(np.array_equal(grid[0], grid[k]) for k in range(16))
    period = grid_period((16, 48, 48), (1, 2))
    assert period == 5  # about 12 cells across 48 voxels would be 4: at least 5
    assert grid[0, 0, :].max() == 1.0 and grid[0, 1, 1] == 0.0
    assert grid[0, period, 1] == 1.0 and grid[0, 1, period] == 1.0
    grid_zx = grid_data(field, (1.0, 1.0, 1.0), (0, 2))
    assert all(np.array_equal(grid_zx[:, 0], grid_zx[:, k]) for k in range(48))


def test_normalise_axes():
    assert normalise_axes(None, 3) == (1, 2)
    assert normalise_axes((-1, 0), 3) == (0, 2)
    assert normalise_axes((5,), 2) == (0, 1)


def test_apply_display_sets_what_constructors_do_not_take():
    class Fake:
        metadata = {METADATA_KEY: {"display": {"contour": 1}}}
        contour = 0

    layer = Fake()
    apply_display(layer)
    assert layer.contour == 1
    labels = by_name(result_layers(make_result(), "f", "m"))[WARPED_LABELS_NAME]
    assert labels[1]["metadata"][METADATA_KEY]["display"] == {"contour": 1}


def test_metrics_table_shows_the_affine_rows():
    import dataclasses

    affine = np.eye(4)
    affine[:3, 3] = (1.5, -2.0, 0.25)
    affine[0, 1] = 0.1
    rows = {r[0]: r for r in qa.metrics_rows(dataclasses.replace(make_result(), affine=affine))}
    assert rows["affine row 0"][2].split() == ["1", "0.1", "0", "1.5"]
    assert rows["affine row 2"][2].split() == ["0", "0", "1", "0.25"]
    assert not any(name.startswith("affine") for name in dict(
        (r[0], r) for r in qa.metrics_rows(make_result())))
