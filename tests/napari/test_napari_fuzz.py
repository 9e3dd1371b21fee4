"""Bad arrays as napari layers through the Registration widget (issue 18).

Each case of ``fuzz_corpus`` becomes layers (spacing -> scale, origin -> translate, direction ->
metadata) and runs through ``build_job`` and the worker. It must end in one clear error in the
status line and one notification, or a correct result; never a traceback, a hang, a silent wrong
result; and the input layers' data and metadata are identical afterwards.

The default run tries each defect once (a few dozen cases, one viewer; the slow good cases only
three times). ``NAPARI_DEEPREG_FUZZ=N`` is the nightly run: exactly N cases, every defect (good
ones included) in turn with other random details each time. The outcome counts are printed (see
them with ``-s``)::

    NAPARI_DEEPREG_FUZZ=200 pytest --xvfb-backend xvfb -s tests/napari/test_napari_fuzz.py
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_deepreg._napari import _widget

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fuzz_corpus as fc  # noqa: E402

NIGHTLY = int(os.environ.get("NAPARI_DEEPREG_FUZZ", "0") or 0)  # cases; 0: the default run
OUTCOMES = (*fc.OUTCOMES[:-1], "mutated layer")  # a widget touches layers, not files
# defects the widget cannot be given: points go through Points layers (tested elsewhere); a
# non-finite scale or translate breaks napari's own canvas before the plugin sees the layer;
# this test gives fixed labels only (moving label maps go through the same prepare())
WIDGET_DEFECTS = sorted(set(fc.ARRAY_DEFECTS) - {"points_huge", "points_nan", "nan_spacing",
                                                 "inf_spacing", "nan_origin", "labels_disjoint"})
# widget-only defects: labels whose layer sits elsewhere than their image, a bad direction
EXTRA = {"labels_other_scale": "bad", "labels_other_translate": "bad",
         "direction_wrong_shape": "bad", "labels_float_layer": "bad"}


def _snapshot(layer) -> tuple:
    return (np.array(layer.data, copy=True), copy.deepcopy(dict(layer.metadata)),
            tuple(layer.scale), tuple(layer.translate), layer.name)


def _same(layer, snap) -> bool:
    data, metadata, scale, translate, name = snap
    now = np.asarray(layer.data)
    equal_nan = now.dtype.kind in "fc"
    return (now.shape == data.shape and np.array_equal(now, data, equal_nan=equal_nan)
            and repr(dict(layer.metadata)) == repr(metadata)
            and np.array_equal(layer.scale, scale, equal_nan=True)
            and np.array_equal(layer.translate, translate, equal_nan=True)
            and layer.name == name)


def _add_layers(viewer, case: dict, defect: str):
    """The case as layers; None when napari itself refuses the array (not the plugin's job)."""
    fixed, moving = case["fixed"], case["moving"]
    ndim = fixed.ndim
    m_meta = {}
    if case["m_direction"] is not None:
        m_meta["direction"] = case["m_direction"]
    if defect == "direction_wrong_shape":
        m_meta["direction"] = np.eye(ndim + 1)
    try:
        layers = [viewer.add_image(fixed, name="fixed", scale=case["f_spacing"]),
                  viewer.add_image(moving, name="moving",
                                   scale=case["m_spacing"][-moving.ndim:] if moving.ndim <= ndim
                                   else None,
                                   translate=case["m_origin"][-moving.ndim:]
                                   if moving.ndim <= ndim else None,
                                   metadata=m_meta, rgb=moving.shape[-1] == 3 and defect == "rgb")]
        labels = case["fixed_labels"]
        if defect == "labels_float_layer":
            labels = fixed  # a float image put in the labels box
        if labels is not None:
            scale = tuple(case["f_spacing"])
            translate = (0.0,) * ndim
            if defect == "labels_other_scale":
                scale = tuple(2.0 * s for s in scale)
            if defect == "labels_other_translate":
                translate = (5.0,) * ndim
            if defect == "labels_float_layer":
                layers.append(viewer.add_image(labels, name="fixed labels", scale=scale))
            else:
                layers.append(viewer.add_labels(labels, name="fixed labels", scale=scale,
                                                translate=translate))
    except Exception:  # noqa: BLE001 - napari refuses complex, 1D-RGB, zero scale... itself
        return None
    return layers


def _run_case(viewer, widget, qtbot, errors, case, defect) -> str:
    for layer in list(viewer.layers):
        viewer.layers.remove(layer)
    layers = _add_layers(viewer, case, defect)
    if layers is None:
        return "clean error"
    snaps = [_snapshot(layer) for layer in layers]
    errors.clear()
    widget.fixed_image.reset_choices()
    widget.fixed_image.value = viewer.layers["fixed"]
    widget.moving_image.value = viewer.layers["moving"]
    if "fixed labels" in viewer.layers:
        box = widget.fixed_labels
        box.reset_choices()
        target = viewer.layers["fixed labels"]
        if target not in box.choices:  # a float image is not offered as labels: refused by
            return "clean error"  # the widget's own choices, nothing to run
        box.value = target
    else:
        widget.fixed_labels.value = None
    widget.moving_labels.value = None
    worker = widget.run(start=False)
    if worker is None:  # refused while building the job
        text = widget.status.text()
        outcome = fc.judge(case["expect"], "error", False)
        if not text.startswith("not started:") or len(errors) != 1 or "\n" in text:
            outcome = "traceback"
    else:
        try:
            with qtbot.waitSignal(worker.finished, timeout=60_000):
                worker.start()
        except Exception:  # noqa: BLE001 - pytest-qt's TimeoutError
            widget.cancel()
            return "hang"
        text = widget.status.text()
        if text.startswith("failed:"):
            # RunFailure: clean only for a refusal the pipeline made on purpose
            clean = "registration failed (" not in text and len(errors) == 1
            outcome = fc.judge(case["expect"], "error", False) if clean else "traceback"
        else:
            result = widget.result
            ok = (result is not None and result.warped.shape == case["fixed"].shape
                  and np.isfinite(result.warped).all() and np.isfinite(result.field).all()
                  and not errors)
            outcome = fc.judge(case["expect"], None, ok)
    if not all(_same(layer, snap) for layer, snap in zip(layers, snaps, strict=True)):
        outcome = "mutated layer"
    return outcome


@pytest.mark.usefixtures("one_thread")
def test_bad_layers_through_the_widget(make_napari_viewer, qtbot, monkeypatch):
    errors: list[str] = []
    monkeypatch.setattr(_widget, "show_error", errors.append)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
    widget.method.value = "instance_opt"
    widget.set_parameters(levels=1, iterations=1, affine_first=False)
    rng = np.random.default_rng(18)
    outcomes: dict[str, list[str]] = {}
    # good cases run a registration and fill the result views (seconds each): the default run
    # keeps three of them, the nightly run all
    good = [d for d in WIDGET_DEFECTS if fc.ARRAY_DEFECTS[d] != "bad"]
    defects = [*WIDGET_DEFECTS, *EXTRA] if NIGHTLY else [
        *[d for d in WIDGET_DEFECTS if d not in good], "none", "2d", "labels_ok", *EXTRA]
    n_cases = NIGHTLY or len(defects)
    for i in range(n_cases):
        defect = defects[i % len(defects)]
        base = defect if defect in fc.ARRAY_DEFECTS else (
            "labels_ok" if defect.startswith("labels") else "none")
        case = fc.make_array_case(base, rng)
        case["expect"] = EXTRA.get(defect, case["expect"])
        outcome = _run_case(viewer, widget, qtbot, errors, case, defect)
        outcomes.setdefault(outcome, []).append(defect)
    counts = ", ".join(f"{len(outcomes.get(o, []))} {o}" for o in OUTCOMES)
    print(f"\nwidget fuzz: {n_cases} cases ({len(defects)} defects): {counts}")
    bad = {k: v for k, v in outcomes.items() if k not in fc.FINE}
    assert not bad, bad
    rounds = n_cases // len(defects)
    assert len(outcomes.get("correct result", [])) >= 3 * max(rounds, 1)
    assert len(outcomes.get("clean error", [])) >= 15 * max(rounds, 1)
