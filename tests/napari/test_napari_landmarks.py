"""Landmarks in the dock (issue 17): TRE per point before/after from paired Points layers, the
points coloured by error, the residual vectors, the worst point first and a click that goes there.

A translation stub makes the answer analytic: the field is ``u = t`` everywhere, so a fixed
landmark ``p`` lands at ``p + t`` and a moving landmark ``q = p + t + e`` has TRE ``|e|`` after
and ``|t + e|`` before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from napari_deepreg._napari import _widget
from napari_deepreg._napari._landmarks import POINTS_NAME, VECTORS_NAME
from napari_deepreg.methods import MethodSpec, available_methods
from napari_deepreg.methods.base import Estimate
from napari_deepreg.result import Progress

SHIFT_ID = "test_shift_stub"
T = np.array([3.0, -2.0])  # mm, (y, x)
ERR = np.array([[0.0, 0.0], [1.5, 0.0], [0.0, -4.0], [0.6, 0.8]])  # residual per point, mm


def shift_estimate(fixed, moving, spacing, config, device):
    yield Progress(1, 1, "shifting")
    field = torch.zeros((1, 2, *fixed.shape[2:]), dtype=torch.float32, device=fixed.device)
    field[0, 0], field[0, 1] = float(T[0]), float(T[1])
    return Estimate(field=field)


@pytest.fixture
def landmark_run(make_napari_viewer, run_in_widget, monkeypatch):
    from napari_deepreg import guard, methods

    @dataclass
    class Config:
        pass

    available_methods()
    monkeypatch.setitem(methods._REGISTRY, SHIFT_ID,
                        MethodSpec(SHIFT_ID, "Shift stub", Config, shift_estimate, dims=(2, 3)))
    # the stub's field is made to be measured, not to win: no guard swaps it
    monkeypatch.setattr(guard, "check", lambda estimate, *a, **k: guard.Verdict(estimate))
    errors: list[str] = []
    monkeypatch.setattr(_widget, "show_error", errors.append)
    viewer = make_napari_viewer()
    viewer.open_sample("napari-deepreg", "brain2d")
    fixed = viewer.layers["fixed"]
    origin = np.asarray(fixed.translate, dtype=float)
    extent = np.asarray(fixed.data.shape) * np.asarray(fixed.scale)
    fixed_mm = origin + extent * np.array([[0.3, 0.3], [0.5, 0.6], [0.7, 0.4], [0.4, 0.7]])
    # the points layers hold world mm (scale 1); the moving ones are where the fixed ones land
    viewer.add_points(fixed_mm, name="fixed landmarks")
    viewer.add_points(fixed_mm + T + ERR, name="moving landmarks")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
    widget.method.value = SHIFT_ID
    widget.fixed_points.value = viewer.layers["fixed landmarks"]
    widget.moving_points.value = viewer.layers["moving landmarks"]
    run_in_widget(widget, ("fixed", "moving", "fixed labels", "moving labels"), 60_000)
    assert errors == [] and widget.result is not None, (errors, widget.status.text())
    return viewer, widget, fixed_mm


def test_tre_per_point_is_the_planted_error_worst_first(landmark_run):
    viewer, widget, fixed_mm = landmark_run
    panel = widget.landmarks
    after = np.linalg.norm(ERR, axis=1)
    before = np.linalg.norm(T + ERR, axis=1)
    np.testing.assert_allclose(panel.errors.after, after, atol=1e-5)
    np.testing.assert_allclose(panel.errors.before, before, atol=1e-9)
    # the table lists the worst point (3: 4 mm) first, then 2 (1.5 mm), 4 (1 mm), 1 (0 mm)
    rows = panel.rows()
    assert [r[0] for r in rows] == ["3", "2", "4", "1"]
    assert rows[0][1:3] == (f"{before[2]:.2f}", "4.00")
    # the pipeline's own summary (metrics.tre) is the mean of these rows: one implementation
    np.testing.assert_allclose(widget.result.metrics["tre_after"], after.mean(), atol=1e-5)
    np.testing.assert_allclose(widget.result.metrics["tre_before"], before.mean(), atol=1e-9)
    assert "worst point 3 (4.00 mm)" in panel.summary.text()


def test_landmark_layers_show_error_and_residual_and_a_click_goes_there(landmark_run):
    viewer, widget, fixed_mm = landmark_run
    points, vectors = viewer.layers[POINTS_NAME], viewer.layers[VECTORS_NAME]
    np.testing.assert_allclose(points.data, fixed_mm)
    np.testing.assert_allclose(points.features["tre_after"], np.linalg.norm(ERR, axis=1),
                               atol=1e-5)
    sizes = np.asarray(points.size)
    assert sizes[2] == sizes.max() and sizes[0] == sizes.min()  # sized by the error
    assert not np.allclose(points.face_color[2], points.face_color[0])  # and coloured by it
    # residual vectors start at the fixed landmark and point to the moving one: q - (p + t)
    np.testing.assert_allclose(vectors.data[:, 0], fixed_mm)
    np.testing.assert_allclose(vectors.data[:, 1], ERR, atol=1e-5)
    widget.landmarks.table.cellClicked.emit(0, 0)  # the worst point, number 3
    np.testing.assert_allclose(viewer.camera.center[-2:], fixed_mm[2], atol=1e-3)
