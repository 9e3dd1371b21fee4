"""What a QA user sees after a run (issue 17): label names in a table that is not cut, the
canvas default (what is shown, hidden, its colormap and opacity, the legend and scale bar), the
Save report button, the device named in the status, and label names read beside a file."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from napari_deepreg._napari import _layers, _ui, _widget
from napari_deepreg._napari._legend import canvas_overlay
from napari_deepreg.io import write_volume
from napari_deepreg.methods import MethodSpec, available_methods
from napari_deepreg.methods.base import Estimate
from napari_deepreg.result import Progress
from napari_deepreg.volume import Volume

FOLD_ID = "test_fold_stub"
# where the stub folds the field (array index of the 2D sample, y x)
FOLD_AT = (90, 60)


class FoldConfig:
    """No settings."""


def fold_field(shape: tuple[int, ...], spacing: tuple[float, ...]) -> torch.Tensor:
    """``(1, D, *shape)`` mm: a smooth local fold at :data:`FOLD_AT` (d(x + u)/dx = -1 there)."""
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in shape], indexing="ij")
    r2 = sum((g - c) ** 2 for g, c in zip(grids, FOLD_AT, strict=True))
    bump = torch.exp(-r2 / (2 * 3.0**2))
    out = torch.zeros((1, len(shape), *shape))
    out[0, -1] = -2.0 * spacing[-1] * (grids[-1] - FOLD_AT[-1]) * bump
    return out


def fold_estimate(fixed, moving, spacing, config, device):
    yield Progress(1, 1, "folding")
    return Estimate(field=fold_field(tuple(fixed.shape[2:]), tuple(spacing)).to(fixed.device))


@pytest.fixture
def fold_method(monkeypatch):
    from dataclasses import dataclass

    from napari_deepreg import methods

    @dataclass
    class Config:
        pass

    available_methods()
    spec = MethodSpec(FOLD_ID, "Fold stub", Config, fold_estimate, dims=(2, 3))
    monkeypatch.setitem(methods._REGISTRY, FOLD_ID, spec)
    return spec


@pytest.fixture
def sample_run(make_napari_viewer, run_in_widget, monkeypatch, fold_method):
    """The bundled 2D pair opened as a user does (File > Open Sample), run with the fold stub."""
    errors: list[str] = []
    monkeypatch.setattr(_widget, "show_error", errors.append)
    viewer = make_napari_viewer()
    viewer.open_sample("napari-deepreg", "brain2d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
    widget.method.value = FOLD_ID
    widget.device.value = "auto"
    run_in_widget(widget, ("fixed", "moving", "fixed labels", "moving labels"), 60_000)
    assert "auto" not in widget.status.text().replace("(auto)", "")  # the device is named
    assert errors == [] and widget.result is not None, (errors, widget.status.text())
    return viewer, widget


def test_label_rows_carry_the_sample_names_and_no_column_is_cut(sample_run):
    viewer, widget = sample_run
    rows = widget.label_rows()
    assert [r[0] for r in rows] == [
        "1 Left-GM", "2 Right-GM", "3 Left-WM", "4 Right-WM", "5 Left-CSF", "6 Right-CSF"]
    header = [widget.label_table.horizontalHeaderItem(c).text()
              for c in range(widget.label_table.columnCount())]
    assert header[:3] == ["label", "Dice before", "Dice after"] and "HD95 after (mm)" in header
    assert all(r[2] not in ("", "n/a") for r in rows)
    # every text is as narrow as its column: nothing elided, however narrow the dock
    widget.resize(260, 600)
    assert _ui.cut_cells(widget.table) == []
    assert _ui.cut_cells(widget.label_table) == []
    # the per-label CSV names them too
    assert widget.result.label_names[5] == "Left-CSF"


def test_the_canvas_default_after_a_run(sample_run):
    viewer, widget = sample_run
    layers = viewer.layers
    assert layers[_layers.warped_name("moving")].visible
    contours = layers[_layers.WARPED_LABELS_NAME]
    assert contours.visible and contours.contour == 1
    hidden = (_layers.GRID_NAME, _layers.JACOBIAN_NAME, _layers.FOLDS_NAME, _layers.MAGNITUDE_NAME)
    for name in hidden:
        assert name in layers and not layers[name].visible, name
    jac = layers[_layers.JACOBIAN_NAME]
    assert jac.colormap.name == "RdBu_r"
    lo, hi = jac.contrast_limits
    assert lo < 1 < hi and abs((lo + hi) / 2 - 1) < 1e-6  # centred on J = 1
    assert 0.3 <= jac.opacity <= 0.7  # the anatomy shows through
    # the legend names what is shown, and follows what the user turns on
    assert canvas_overlay(viewer, "scale_bar").visible
    text = canvas_overlay(viewer, "text")
    assert text.visible and "warped" in text.text
    assert "Jacobian" not in text.text
    jac.visible = True
    assert f"{lo:.2f}" in text.text and f"{hi:.2f}" in text.text and "RdBu_r" in text.text


def test_status_names_the_device(sample_run):
    _, widget = sample_run
    assert "on cpu (auto)" in widget.status.text() or "on cuda (auto)" in widget.status.text()


def test_save_report_button_writes_a_png(sample_run, tmp_path, monkeypatch):
    _, widget = sample_run
    assert widget.report_button.isEnabled()
    monkeypatch.setattr(widget, "choose_report_path", lambda: str(tmp_path / "qa_report"))
    widget.report_button.click()
    path = tmp_path / "qa_report.png"
    assert path.is_file(), widget.status.text()
    image = mpimg.imread(path)
    assert image.shape[0] > 500 and image.shape[1] > 1000
    assert str(path) in widget.status.text()


def test_the_reader_names_labels_from_a_table_beside_the_file(make_napari_viewer, tmp_path):
    labels = np.zeros((6, 7), np.int32)
    labels[1:3, 1:4], labels[3:5, 2:6] = 3, 8
    path = tmp_path / "case_seg.nii.gz"
    write_volume(Volume(labels, (1.0, 1.0)), path, labels=True)
    (tmp_path / "case_seg.txt").write_text(
        '3 255 0 0 1 1 1 "left putamen"\n8 0 255 0 1 1 1 "right putamen"\n')
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-deepreg")
    from napari_deepreg._napari._inputs import layer_label_names

    assert layer_label_names(layer) == {3: "left putamen", 8: "right putamen"}


def test_fold_clusters_list_the_planted_fold_and_a_click_goes_there(sample_run):
    viewer, widget = sample_run
    panel = widget.folds
    assert panel.clusters, panel.summary.text()
    top = panel.clusters[0]
    assert np.allclose(top["centroid_vox"], FOLD_AT, atol=1.5)
    assert top["min_jacobian"] <= -0.5
    rows = panel.rows()
    assert rows[0][0] == "1" and int(rows[0][1]) == top["size_vox"]
    assert rows[0][5] != ""  # the structure it sits in, by name
    # fold % per structure: the planted fold lies in the labelled brain
    per_label = {r[0]: r for r in panel.label_rows()}
    assert "1 Left-GM" in per_label
    assert any(float(r[2]) > 0 for r in per_label.values())
    # a click on the row moves the slider and the camera there, and shows the folds
    viewer.dims.set_point(0, 0.0)
    panel.table.cellClicked.emit(0, 0)
    world = np.asarray(top["centroid_mm"])
    assert np.allclose(viewer.camera.center[-2:], world[-2:], atol=1e-3)
    assert viewer.layers[_layers.FOLDS_NAME].visible


def test_checkerboard_has_tiles_of_the_stated_size_and_flicker_alternates(sample_run):
    from napari_deepreg._napari._compare import COMPARE_NAME
    from napari_deepreg.qa.compare import unit_range

    viewer, widget = sample_run
    panel = widget.compare
    panel.mode.setCurrentText("checkerboard")
    panel.tile_mm.setValue(12.0)
    layer = panel.show_comparison()
    assert layer.name == COMPARE_NAME and COMPARE_NAME in viewer.layers
    fixed, warped = unit_range(widget._inputs_used.fixed.array), unit_range(widget.result.warped)
    data = np.asarray(layer.data)
    spacing = widget.result.spacing
    # tile (i, j) = floor(index * spacing / 12 mm): fixed where i + j is even, warped elsewhere
    yy, xx = np.meshgrid(*[np.arange(n) for n in data.shape], indexing="ij")
    parity = (np.floor(yy * spacing[0] / 12.0) + np.floor(xx * spacing[1] / 12.0)) % 2 == 0
    np.testing.assert_allclose(data, np.where(parity, fixed, warped))
    np.testing.assert_allclose(layer.scale, spacing)
    # difference and red/cyan replace it in the same layer
    panel.mode.setCurrentText("red/cyan")
    assert panel.show_comparison().rgb
    # flicker: fixed, then warped, then fixed
    panel.flicker.setChecked(True)
    assert panel.timer.isActive()
    np.testing.assert_allclose(viewer.layers[COMPARE_NAME].data, fixed)
    panel.flick()
    np.testing.assert_allclose(viewer.layers[COMPARE_NAME].data, warped)
    panel.flicker.setChecked(False)
    assert not panel.timer.isActive()


def test_save_report_and_csv_keep_a_users_file_unless_they_agree(sample_run, tmp_path,
                                                                  monkeypatch):
    """Save report / Save CSV follow the CLI's output rules (issue 18): the files are listed in
    the folder's outputs.json, a file of the user's is replaced only when the user agrees, a
    link is never written through."""
    from napari_deepreg._napari import _save_actions
    from napari_deepreg.io import read_manifest

    _, widget = sample_run
    errors: list[str] = []
    monkeypatch.setattr(widget, "_error", errors.append)
    asked: list[str] = []
    monkeypatch.setattr(widget, "confirm_overwrite", lambda message: asked.append(message))
    mine = tmp_path / "qa.png"
    mine.write_bytes(b"the user's own picture")
    monkeypatch.setattr(widget, "choose_report_path", lambda: str(mine))
    widget.report_button.click()
    assert len(asked) == 1 and "qa.png" in asked[0]
    assert mine.read_bytes() == b"the user's own picture"
    assert len(errors) == 1 and "overwrite" in errors[0]
    assert not (tmp_path / "outputs.json").exists()
    monkeypatch.setattr(widget, "confirm_overwrite", lambda message: True)
    widget.report_button.click()
    assert len(errors) == 1 and mpimg.imread(mine).shape[0] > 500
    assert read_manifest(tmp_path)["other_files"]["qa.png"]["command"] == "widget: save report"
    # ours now: saved again without a question
    monkeypatch.setattr(widget, "confirm_overwrite", lambda message: asked.append(message))
    widget.report_button.click()
    assert len(asked) == 1 and len(errors) == 1

    # Save CSV: the per-label file beside it is checked too, before anything is written
    (tmp_path / "m_labels.csv").write_text("the user's table")
    monkeypatch.setattr(_save_actions.QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(tmp_path / "m.csv"), "")))
    widget.save_button.click()
    assert len(asked) == 2 and "m_labels.csv" in asked[1]
    assert (tmp_path / "m_labels.csv").read_text() == "the user's table"
    assert not (tmp_path / "m.csv").exists()
    monkeypatch.setattr(widget, "confirm_overwrite", lambda message: True)
    widget.save_button.click()
    assert len(errors) == 2
    assert (tmp_path / "m_labels.csv").read_text().startswith("label")
    listed = read_manifest(tmp_path)["other_files"]
    assert {"qa.png", "m.csv", "m_labels.csv"} <= set(listed)

    # a link is refused even when the user agrees
    target = tmp_path / "elsewhere.png"
    target.write_bytes(b"not to be touched")
    (tmp_path / "link.png").symlink_to(target)
    monkeypatch.setattr(widget, "choose_report_path", lambda: str(tmp_path / "link.png"))
    widget.report_button.click()
    assert len(errors) == 3 and "symbolic link" in errors[2]
    assert target.read_bytes() == b"not to be touched"
