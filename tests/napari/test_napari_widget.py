"""The Registration dock widget: running, replacing, cancelling, bad input, the grid, metrics.

A stub method returns a known field (a translation of exactly one voxel along x, or a smooth
bend), so these tests check what the widget does with layers and geometry independently of any
real optimiser; it can also be slowed down (for Cancel) or made to fail (for error reports).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox

from napari_deepreg._napari import _parameters, _widget
from napari_deepreg._napari._layers import (
    FOLDS_NAME,
    GRID_NAME,
    JACOBIAN_NAME,
    MAGNITUDE_NAME,
    PREFIX,
    WARPED_LABELS_NAME,
    grid_data,
    warped_name,
)
from napari_deepreg._napari._widget import RegistrationWidget
from napari_deepreg.methods import Estimate, MethodSpec, Progress, available_methods

SHAPE = (24, 28, 24)
SCALE = (1.5, 1.0, 1.2)  # mm per array axis (z, y, x)
TRANSLATE = (10.0, -5.0, 3.0)  # mm
STUB_ID = "test_stub"


@dataclass
class StubConfig:
    iterations: int = field(default=3, metadata={"help": "progress reports", "min": 1,
                                                 "max": 1_000_000})
    delay_s: float = field(default=0.0, metadata={"help": "sleep per step (s)", "min": 0.0,
                                                  "max": 1.0})
    fail_at: int = field(default=-1, metadata={"help": "raise at this step (-1: never)",
                                               "min": -1, "max": 1_000_000})
    mode: str = field(default="translate", metadata={"help": "which field to return",
                                                     "choices": ("translate", "bend")})
    smooth: bool = field(default=False, metadata={"help": "unused flag (a bool widget)"})


def stub_field(shape: tuple[int, ...], spacing: tuple[float, ...], mode: str) -> torch.Tensor:
    """``(1, D, *shape)`` field in mm: one voxel along the last axis, or a smooth bend."""
    ndim = len(shape)
    out = torch.zeros((1, ndim, *shape), dtype=torch.float32)
    if mode == "translate":
        out[0, -1] = spacing[-1]
        return out
    grids = torch.meshgrid(*[torch.linspace(0, np.pi, n) for n in shape], indexing="ij")
    for axis in range(ndim):
        # each component varies along another axis, so every grid direction bends
        out[0, axis] = 1.5 * spacing[axis] * torch.sin(grids[(axis + 1) % ndim])
    return out


def stub_estimate(fixed, moving, spacing, config: StubConfig, device):
    for step in range(config.iterations):
        if step == config.fail_at:
            raise RuntimeError("stub failure on purpose")
        if config.delay_s:
            time.sleep(config.delay_s)
        yield Progress(step + 1, config.iterations, "stub step")
    field_mm = stub_field(tuple(fixed.shape[2:]), tuple(spacing), config.mode).to(fixed.device)
    return Estimate(field=field_mm, info={"iterations": config.iterations})


@pytest.fixture
def stub_method(monkeypatch):
    """Register the stub method for one test (after the built-in ones, so they stay loaded)."""
    from napari_deepreg import methods

    available_methods()
    spec = MethodSpec(STUB_ID, "Test stub", StubConfig, stub_estimate, dims=(2, 3))
    # monkeypatch puts the registry back as it was after the test
    monkeypatch.setitem(methods._REGISTRY, STUB_ID, spec)
    return spec


def _blobs(shape: tuple[int, ...], centres: list[tuple[float, ...]], radius: float) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    image = np.zeros(shape, dtype=np.float32)
    for k, c in enumerate(centres, start=1):
        d2 = sum((g - ci) ** 2 for g, ci in zip(grids, c, strict=True))
        image += (0.5 + 0.5 * k / len(centres)) * np.exp(-d2 / (2 * radius**2))
    return image


@pytest.fixture
def pair3d() -> dict[str, np.ndarray]:
    """Fixed and moving images (moving = fixed shifted one voxel along x) with label maps."""
    fixed = _blobs(SHAPE, [(8, 9, 8), (15, 18, 15), (12, 10, 16)], radius=3.0)
    fixed += 0.05 * np.linspace(0, 1, SHAPE[-1], dtype=np.float32)  # no flat background
    moving = np.roll(fixed, 1, axis=-1)
    fixed_labels = (fixed > 0.35).astype(np.int32) + (fixed > 0.7).astype(np.int32)
    moving_labels = np.roll(fixed_labels, 1, axis=-1)
    return {
        "fixed": fixed,
        "moving": moving,
        "fixed_labels": fixed_labels,
        "moving_labels": moving_labels,
    }


@pytest.fixture
def loaded_viewer(make_napari_viewer, pair3d, stub_method):
    """A viewer with the pair as layers (scaled and translated) and the docked widget, which
    opens through the plugin manifest with the stub method chosen."""
    viewer = make_napari_viewer()
    geometry = {"scale": SCALE, "translate": TRANSLATE}
    viewer.add_image(pair3d["fixed"], name="fixed", **geometry)
    viewer.add_image(pair3d["moving"], name="moving", **geometry)
    viewer.add_labels(pair3d["fixed_labels"], name="fixed labels", **geometry)
    viewer.add_labels(pair3d["moving_labels"], name="moving labels", **geometry)
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
    widget.method.value = STUB_ID
    return viewer, widget


RESULT_NAMES = {
    warped_name("moving"),
    WARPED_LABELS_NAME,
    GRID_NAME,
    JACOBIAN_NAME,
    FOLDS_NAME,
    MAGNITUDE_NAME,
}


@pytest.fixture
def errors(monkeypatch) -> list[str]:
    """Messages the widget sends to napari's error notifications."""
    shown: list[str] = []
    monkeypatch.setattr(_widget, "show_error", lambda message: shown.append(str(message)))
    return shown


def snapshot(viewer) -> list[tuple[str, int, np.ndarray]]:
    """(name, id, copy of data) of every layer, to prove nothing changed."""
    return [(layer.name, id(layer), np.array(layer.data, copy=True)) for layer in viewer.layers]


def assert_unchanged(viewer, before) -> None:
    after = [(layer.name, id(layer), layer.data) for layer in viewer.layers]
    assert [(n, i) for n, i, _ in after] == [(n, i) for n, i, _ in before]
    for (_, _, old), (_, _, new) in zip(before, after, strict=True):
        np.testing.assert_array_equal(np.asarray(new), old)


def run_to_finish(qtbot, widget, timeout_ms: int = 30_000):
    worker = widget.run(start=False)
    assert worker is not None, "the widget refused to start"
    with qtbot.waitSignal(worker.finished, timeout=timeout_ms):
        worker.start()
    return worker


def select_inputs(widget, viewer, labels: bool = True) -> None:
    widget.fixed_image.value = viewer.layers["fixed"]
    widget.moving_image.value = viewer.layers["moving"]
    if labels:
        widget.fixed_labels.value = viewer.layers["fixed labels"]
        widget.moving_labels.value = viewer.layers["moving labels"]


def test_widget_opens_through_the_manifest(loaded_viewer):
    viewer, widget = loaded_viewer
    assert isinstance(widget, RegistrationWidget)
    assert [layer.name for layer in widget.fixed_image.choices] == ["fixed", "moving"]
    assert [layer.name for layer in widget.fixed_labels.choices if layer is not None] == [
        "fixed labels",
        "moving labels",
    ]
    # moving defaults to the other image, labels named "fixed ..." / "moving ..." are picked
    assert widget.fixed_image.value.name == "fixed"
    assert widget.moving_image.value.name == "moving"
    assert widget.fixed_labels.value.name == "fixed labels"
    assert widget.moving_labels.value.name == "moving labels"
    assert widget.fixed_points.value is None
    assert list(widget.device.choices)[:3] == ["auto", "cpu", "cuda"]
    assert STUB_ID in widget.method.choices


def test_parameters_follow_the_method(loaded_viewer):
    _, widget = loaded_viewer
    params = {w.name: w for w in widget.params}
    assert set(params) == {"iterations", "delay_s", "fail_at", "mode", "smooth"}
    assert isinstance(params["iterations"], SpinBox)
    assert (params["iterations"].min, params["iterations"].max) == (1, 1_000_000)
    assert isinstance(params["delay_s"], FloatSpinBox)
    assert isinstance(params["mode"], ComboBox)
    assert list(params["mode"].choices) == ["translate", "bend"]
    assert isinstance(params["smooth"], CheckBox)
    assert params["iterations"].tooltip == "progress reports"
    widget.set_parameters(iterations=7, mode="bend")
    config = widget.config()
    assert (config.iterations, config.mode) == (7, "bend")

    others = [m for m in widget.method.choices if m != STUB_ID]
    if others:  # the built-in methods have their own fields
        widget.method.value = others[0]
        assert {w.name for w in widget.params} != set(params)
        widget.method.value = STUB_ID
    assert {w.name for w in widget.params} == set(params)


def test_run_adds_result_layers_with_fixed_geometry(qtbot, loaded_viewer, errors, tmp_path):
    viewer, widget = loaded_viewer
    select_inputs(widget, viewer)
    inputs = snapshot(viewer)
    run_to_finish(qtbot, widget)
    assert errors == []

    names = [layer.name for layer in viewer.layers]
    assert set(names) - {n for n, _, _ in inputs} == RESULT_NAMES
    assert all(name.startswith(PREFIX) for name in RESULT_NAMES)
    for name in RESULT_NAMES:
        layer = viewer.layers[name]
        np.testing.assert_allclose(layer.scale, SCALE)
        np.testing.assert_allclose(layer.translate, TRANSLATE)
        assert layer.data.shape == viewer.layers["fixed"].data.shape
    # inputs: same layers, same data
    for name, ident, data in inputs:
        assert id(viewer.layers[name]) == ident
        np.testing.assert_array_equal(viewer.layers[name].data, data)

    # the stub field is one voxel (1.2 mm) along x and the moving image is the fixed one
    # rolled by one voxel: the warp brings it back exactly (away from the border)
    fixed = viewer.layers["fixed"].data
    warped = viewer.layers[warped_name("moving")].data
    np.testing.assert_allclose(warped[..., 1:-1], fixed[..., 1:-1], atol=1e-5)
    warped_labels = viewer.layers[WARPED_LABELS_NAME].data
    np.testing.assert_array_equal(
        warped_labels[..., 1:-1], viewer.layers["fixed labels"].data[..., 1:-1]
    )
    magnitude = viewer.layers[MAGNITUDE_NAME].data
    np.testing.assert_allclose(magnitude, SCALE[-1], rtol=1e-5)
    assert viewer.layers[JACOBIAN_NAME].data == pytest.approx(1.0, abs=1e-4)
    assert viewer.layers[FOLDS_NAME].data.max() == 0

    # the metrics table: Dice goes up to 1, no folds
    rows = {row[0]: row for row in widget.table_rows()}
    assert float(rows["Dice"][2]) == pytest.approx(1.0, abs=1e-3)
    assert float(rows["Dice"][1]) < 0.99
    # ... and the per-label table (no names for these labels: the number alone)
    assert [row[0] for row in widget.label_rows()] == ["label 1", "label 2"]
    assert float(rows["fold percent (%)"][2]) == 0.0
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()

    # Save CSV: the summary and the per-label table
    assert widget.save_button.isEnabled()
    written = widget.save_csv(tmp_path / "metrics")
    assert [p.name for p in written] == ["metrics.csv", "metrics_labels.csv"]
    with written[0].open() as handle:
        summary = {row["name"]: row for row in csv.DictReader(handle)}
    assert float(summary["dice_after"]["value"]) == pytest.approx(1.0, abs=1e-3)
    assert summary["method"]["value"] == STUB_ID
    with written[1].open() as handle:
        assert [int(row["label"]) for row in csv.DictReader(handle)] == [1, 2]


def _guard_off(monkeypatch):
    """The stub methods' fields are made to be seen, not to register: no guard swaps them."""
    from napari_deepreg import guard

    monkeypatch.setattr(guard, "check", lambda estimate, *a, **k: guard.Verdict(estimate))


def test_second_run_replaces_result_layers_only(qtbot, loaded_viewer, errors, monkeypatch):
    _guard_off(monkeypatch)
    viewer, widget = loaded_viewer
    select_inputs(widget, viewer)
    user_points = viewer.add_points(np.array([[12.0, 14.0, 12.0]]), name=PREFIX + "my notes")
    run_to_finish(qtbot, widget)
    first = {layer.name: id(layer) for layer in viewer.layers}
    viewer.layers[GRID_NAME].visible = False  # the user hides the grid

    widget.set_parameters(mode="bend")
    run_to_finish(qtbot, widget)
    assert errors == []
    names = [layer.name for layer in viewer.layers]
    assert len(names) == len(first) and len(set(names)) == len(names)
    assert set(names) == set(first)
    # the bend field is not the translation: the layers hold the new run's data...
    magnitude = viewer.layers[MAGNITUDE_NAME].data
    assert magnitude.min() < 0.1 and magnitude.max() > 1.5
    np.testing.assert_array_equal(
        viewer.layers[GRID_NAME].data, grid_data(widget.result.field, SCALE, (1, 2))
    )
    assert not viewer.layers[GRID_NAME].visible  # ...and keep what the user hid
    for name in ("fixed", "moving", "fixed labels", "moving labels"):
        assert id(viewer.layers[name]) == first[name]
    assert viewer.layers[PREFIX + "my notes"] is user_points
    np.testing.assert_array_equal(user_points.data, [[12.0, 14.0, 12.0]])

    # a run without labels drops the stale warped labels
    widget.fixed_labels.value = None
    widget.moving_labels.value = None
    run_to_finish(qtbot, widget)
    assert WARPED_LABELS_NAME not in [layer.name for layer in viewer.layers]
    assert len(viewer.layers) == len(first) - 1


def test_cancel_stops_quickly_and_adds_nothing(qtbot, loaded_viewer, errors):
    viewer, widget = loaded_viewer
    select_inputs(widget, viewer)
    widget.set_parameters(iterations=100_000, delay_s=0.01)
    before = snapshot(viewer)
    worker = widget.run(start=False)
    cancelled_at: list[float] = []

    def cancel_once(_progress) -> None:
        if not cancelled_at:
            cancelled_at.append(time.perf_counter())
            widget.cancel()

    worker.yielded.connect(cancel_once)
    with qtbot.waitSignal(worker.finished, timeout=20_000):
        worker.start()
    finished_at = time.perf_counter()
    assert cancelled_at, "no progress was reported"
    assert finished_at - cancelled_at[0] < 1.0
    qtbot.wait(50)  # let any late signal arrive
    assert_unchanged(viewer, before)
    assert widget.result is None
    assert "cancel" in widget.status.text()
    assert errors == []
    assert widget.run_button.isEnabled() and widget.worker is None


def test_bad_input_is_refused_with_one_error_and_nothing_changes(qtbot, loaded_viewer, errors):
    viewer, widget = loaded_viewer
    rng = np.random.default_rng(0)
    geometry = {"scale": SCALE, "translate": TRANSLATE}  # the pair's grid: only the data is bad
    viewer.add_image(np.full((24, 28, 24), 3.0, dtype=np.float32), name="flat", **geometry)
    viewer.add_labels(np.zeros((24, 28, 20), dtype=np.int32), name="odd labels", **geometry)
    viewer.add_image(rng.random((28, 24), dtype=np.float32), name="slice")
    viewer.add_image(rng.random((28, 24, 3), dtype=np.float32), name="photo", rgb=True)
    viewer.add_points(np.array([[5.0, 6.0, 7.0]]), name="lonely points")
    before = snapshot(viewer)

    # (what to change, words the message must hold, refused before a worker starts): a layer
    # that cannot become a volume is refused at once; input that does not fit together is the
    # pipeline's to refuse, from the worker, before any work
    cases = [
        ({"moving_image": "flat"}, ["constant"], False),
        ({"fixed_labels": "odd labels"}, ["shape", "fixed labels"], False),
        ({"moving_image": "slice"}, ["3D", "2D"], False),
        ({"fixed_image": "photo"}, ["RGB"], True),
        ({"fixed_points": "lonely points"}, ["points"], False),
    ]
    for change, words, at_once in cases:
        select_inputs(widget, viewer)
        widget.fixed_points.value = widget.moving_points.value = None
        for combo, layer_name in change.items():
            getattr(widget, combo).value = viewer.layers[layer_name]
        errors.clear()
        worker = widget.run(start=False)
        assert (worker is None) == at_once, change
        if worker is not None:
            with qtbot.waitSignal(worker.finished, timeout=10_000):
                worker.start()
        assert len(errors) == 1, (change, errors)
        assert all(word in errors[0] for word in words), (change, errors[0])
        assert_unchanged(viewer, before)
        assert widget.worker is None and widget.run_button.isEnabled()
        assert widget.result is None


def test_error_in_the_worker_is_one_notification(qtbot, loaded_viewer, errors):
    viewer, widget = loaded_viewer
    select_inputs(widget, viewer)
    widget.set_parameters(iterations=5, fail_at=2)
    before = snapshot(viewer)
    run_to_finish(qtbot, widget)
    assert len(errors) == 1
    assert "RuntimeError" in errors[0] and "stub failure on purpose" in errors[0]
    assert_unchanged(viewer, before)
    assert widget.run_button.isEnabled()


def test_points_give_tre_in_world_coordinates(qtbot, loaded_viewer, errors):
    viewer, widget = loaded_viewer
    select_inputs(widget, viewer, labels=False)
    # landmarks in data (voxel) coordinates of layers carrying the image geometry; the moving
    # ones sit one voxel further along x, which is what the stub's field maps to
    vox = np.array([[5.0, 6.0, 7.0], [12.0, 20.0, 10.0], [18.0, 9.0, 15.0]])
    viewer.add_points(vox, name="fixed points", scale=SCALE, translate=TRANSLATE)
    viewer.add_points(vox + [0, 0, 1], name="moving points", scale=SCALE, translate=TRANSLATE)
    widget.fixed_points.value = viewer.layers["fixed points"]
    widget.moving_points.value = viewer.layers["moving points"]
    job = widget.build_job()
    np.testing.assert_allclose(job.fixed_points, vox * SCALE + TRANSLATE)
    run_to_finish(qtbot, widget)
    assert errors == []
    rows = {row[0]: row for row in widget.table_rows()}
    assert float(rows["TRE (mm)"][1]) == pytest.approx(SCALE[-1], rel=1e-3)
    assert float(rows["TRE (mm)"][2]) == pytest.approx(0.0, abs=1e-3)


def test_grid_follows_the_displayed_axes(qtbot, loaded_viewer):
    viewer, widget = loaded_viewer
    select_inputs(widget, viewer)
    widget.set_parameters(mode="bend")
    run_to_finish(qtbot, widget)
    field = widget.result.field
    grid = viewer.layers[GRID_NAME]
    np.testing.assert_array_equal(grid.data, grid_data(field, SCALE, (1, 2)))

    viewer.dims.order = (1, 0, 2)  # now slicing along y: z and x are on screen
    np.testing.assert_array_equal(grid.data, grid_data(field, SCALE, (0, 2)))
    assert not np.array_equal(grid.data, grid_data(field, SCALE, (1, 2)))
    viewer.dims.order = (2, 1, 0)  # slicing along x, axes (y, z) shown
    np.testing.assert_array_equal(grid.data, grid_data(field, SCALE, (0, 1)))
    assert viewer.layers[GRID_NAME] is grid  # updated in place


def test_float_parameters_keep_small_bounds_and_values(qtbot):
    @dataclass
    class Config:
        lr: float = field(default=0.5, metadata={"help": "step", "min": 1e-4, "max": 50.0})
        tol: float = field(default=2e-6, metadata={"help": "tolerance"})
        shape: tuple = field(default=(3, 4), metadata={"help": "a literal"})

    widgets = {w.name: w for w in _parameters.parameter_widgets(Config)}
    lr = widgets["lr"]
    assert (lr.min, lr.max, lr.value) == (pytest.approx(1e-4), 50.0, 0.5)
    lr.value = 2.5e-4
    assert widgets["tol"].value == pytest.approx(2e-6)
    widgets["shape"].value = "(5, 6)"
    values = _parameters.parameter_values(list(widgets.values()))
    assert values == {"lr": pytest.approx(2.5e-4), "tol": pytest.approx(2e-6), "shape": (5, 6)}


def test_instance_opt_offers_deepsim_in_its_parameter_list(qtbot):
    from napari_deepreg.methods.extractors import ZOO_EXTRACTORS
    from napari_deepreg.methods.instance_opt import InstanceOptConfig

    widgets = {w.name: w for w in _parameters.parameter_widgets(InstanceOptConfig)}
    similarity, extractor = widgets["similarity"], widgets["deepsim_extractor"]
    assert isinstance(similarity, ComboBox) and isinstance(extractor, ComboBox)
    assert {"lncc", "mind_ssc", "deepsim"} <= set(similarity.choices)
    assert set(extractor.choices) == set(ZOO_EXTRACTORS)
    similarity.value = "deepsim"
    values = _parameters.parameter_values(list(widgets.values()))
    assert InstanceOptConfig(**values).similarity == "deepsim"


def test_a_3d_only_method_is_refused_for_a_2d_pair_and_the_chooser_says_so(
    make_napari_viewer, qtbot, monkeypatch, errors
):
    from napari_deepreg import methods

    available_methods()
    only3d = MethodSpec("only3d_stub", "3D-only stub", StubConfig, stub_estimate, dims=(3,))
    monkeypatch.setitem(methods._REGISTRY, only3d.id, only3d)
    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    viewer.add_image(rng.random((32, 30), dtype=np.float32), name="fixed")
    viewer.add_image(rng.random((32, 30), dtype=np.float32), name="moving")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
    widget.method.reset_choices()
    titles = [widget.method.native.itemText(i) for i in range(widget.method.native.count())]
    assert "3D-only stub [3D]" in titles and any(t.endswith("[2D/3D]") for t in titles), titles
    widget.method.value = only3d.id
    widget.fixed_image.value = viewer.layers["fixed"]
    widget.moving_image.value = viewer.layers["moving"]
    n_layers = len(viewer.layers)
    run_to_finish(qtbot, widget)  # the pipeline refuses it before any work
    assert len(errors) == 1 and "3D" in errors[0] and "2D" in errors[0], errors
    assert len(viewer.layers) == n_layers


def _itk_image(array: np.ndarray):
    """The array as a SimpleITK image on the layers' grid (built independently of the package)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.asarray(array, dtype=np.float64))
    image.SetSpacing(tuple(reversed(SCALE)))
    image.SetOrigin(tuple(reversed(TRANSLATE)))
    return image


def _inside(field: np.ndarray, margin: float = 1.5) -> np.ndarray:
    """Voxels whose sampling point ``i + u / spacing`` stays ``margin`` voxels inside the grid
    (and off the rim, where ITK leaves the field), as in tests/test_io.py."""
    shape = field.shape[1:]
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    mask = np.ones(shape, dtype=bool)
    for axis, (n, s) in enumerate(zip(shape, SCALE, strict=True)):
        pos = idx[axis] + field[axis] / s
        mask &= (pos >= margin) & (pos <= n - 1 - margin) & (idx[axis] >= 1) & (idx[axis] <= n - 2)
    return mask


def test_save_transform_writes_the_cli_files_and_itk_reproduces_the_warp(
    qtbot, loaded_viewer, errors, tmp_path, monkeypatch
):
    _guard_off(monkeypatch)
    import SimpleITK as sitk

    viewer, widget = loaded_viewer
    select_inputs(widget, viewer, labels=False)
    assert not widget.transform_button.isEnabled()  # nothing to save before a run
    # the learned affine network: a fast run whose result has an affine stage (its field is
    # that affine alone)
    widget.method.value = "avsm_affine_3d"
    next(w for w in widget.params if w.name == "refine").value = False  # the affine alone
    run_to_finish(qtbot, widget)
    assert errors == []
    result = widget.result
    assert result.affine is not None and widget.transform_button.isEnabled()
    # a general affine (not a shift), so the frame of its translation matters
    assert np.abs(result.affine[:3, :3] - np.eye(3)).max() > 0.01

    folder = tmp_path / "transform"
    folder.mkdir()
    monkeypatch.setattr(widget, "choose_transform_folder", lambda: str(folder))
    widget.transform_button.click()
    assert errors == []
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["affine.tfm", "field.nii.gz", "outputs.json", "transform.h5"]
    assert str(folder) in widget.status.text() and "affine.tfm" in widget.status.text()

    # affine.tfm is the world-frame matrix of the metrics table, in ITK's (x, y, z) order
    affine = sitk.AffineTransform(sitk.ReadTransform(str(folder / "affine.tfm")))
    np.testing.assert_allclose(affine.GetCenter(), 0.0, atol=0)
    matrix = np.array(affine.GetMatrix()).reshape(3, 3)[::-1, ::-1]
    np.testing.assert_allclose(matrix, result.affine[:3, :3], atol=1e-9)
    np.testing.assert_allclose(affine.GetTranslation()[::-1], result.affine[:3, 3], atol=1e-9)

    # field.nii.gz: the displacement field with the fixed layer's geometry
    field_image = sitk.ReadImage(str(folder / "field.nii.gz"))
    np.testing.assert_allclose(field_image.GetSpacing()[::-1], SCALE, rtol=1e-6)
    np.testing.assert_allclose(field_image.GetOrigin()[::-1], TRANSLATE, atol=1e-5)
    vectors = sitk.GetArrayFromImage(field_image)  # (z, y, x, 3), vectors in (x, y, z)
    np.testing.assert_allclose(
        np.moveaxis(vectors[..., ::-1], -1, 0), result.field, atol=1e-4, rtol=0
    )

    # ITK resampling the moving layer through transform.h5 (and, the field being the affine,
    # through affine.tfm) gives the widget's warped layer
    moving = viewer.layers["moving"].data
    moving_itk, fixed_itk = _itk_image(moving), _itk_image(viewer.layers["fixed"].data)
    warped = np.asarray(viewer.layers[warped_name("moving")].data)
    mask = _inside(np.asarray(result.field))
    assert mask.mean() > 0.3, mask.mean()
    for name in ("transform.h5", "affine.tfm"):
        transform = sitk.ReadTransform(str(folder / name))
        itk = sitk.GetArrayFromImage(
            sitk.Resample(moving_itk, fixed_itk, transform, sitk.sitkLinear, 0.0,
                          sitk.sitkFloat64)
        )
        np.testing.assert_allclose(warped[mask], itk[mask], atol=1e-3, rtol=0, err_msg=name)
    # the transform matters: the moving image itself is far from the warped one
    assert np.abs(moving[mask] - warped[mask]).max() > 0.05

    # a method without an affine stage into the same folder: no affine.tfm is left behind
    widget.method.value = STUB_ID
    run_to_finish(qtbot, widget)
    assert widget.result.affine is None
    widget.transform_button.click()
    assert errors == []
    assert sorted(p.name for p in folder.iterdir()) == [
        "field.nii.gz", "outputs.json", "transform.h5"]
    assert "removed affine.tfm" in widget.status.text()
    field_image = sitk.ReadImage(str(folder / "field.nii.gz"))
    np.testing.assert_allclose(sitk.GetArrayFromImage(field_image)[..., 0], SCALE[-1], rtol=1e-6)

    # a folder that cannot be written: one error for the user, the viewer carries on
    (tmp_path / "gone").write_text("a file, not a folder")
    monkeypatch.setattr(widget, "choose_transform_folder", lambda: str(tmp_path / "gone"))
    widget.transform_button.click()
    assert len(errors) == 1 and "gone" in errors[0], errors
    assert "could not save" in widget.status.text()
    # a cancelled dialog does nothing
    monkeypatch.setattr(widget, "choose_transform_folder", lambda: "")
    widget.transform_button.click()
    assert len(errors) == 1

    # a user's own file of an output's name: replaced only when the user agrees
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "field.nii.gz").write_bytes(b"the user's file")
    monkeypatch.setattr(widget, "choose_transform_folder", lambda: str(mine))
    asked = []
    monkeypatch.setattr(widget, "confirm_overwrite", lambda message: asked.append(message))
    widget.transform_button.click()
    assert len(asked) == 1 and "field.nii.gz" in asked[0]
    assert (mine / "field.nii.gz").read_bytes() == b"the user's file"
    assert sorted(p.name for p in mine.iterdir()) == ["field.nii.gz"]
    assert len(errors) == 2 and "overwrite" in errors[1]
    monkeypatch.setattr(widget, "confirm_overwrite", lambda message: True)
    widget.transform_button.click()
    assert len(errors) == 2
    assert "overwriting field.nii.gz" in widget.status.text()
    field_image = sitk.ReadImage(str(mine / "field.nii.gz"))
    assert field_image.GetNumberOfComponentsPerPixel() == 3
