"""Where a widget run's time goes: the split on the status line, and no signal per iteration.

A method yields a Progress every iteration (over 200 a second on the 2D sample); passing each to
the Qt thread (and drawing it) took the GIL from the worker often enough to make a 2D
``instance_opt`` run 2-3x slower in the widget than without Qt (benchmarks/gui_time.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from napari_deepreg._napari._run import PROGRESS_INTERVAL_S, throttled, time_split
from napari_deepreg.methods import Estimate, MethodSpec, Progress, available_methods
from napari_deepreg.pipeline import register, run_to_end

STUB_ID = "test_many_steps"


@dataclass
class ManyStepsConfig:
    iterations: int = field(default=2000, metadata={"help": "progress reports", "min": 1,
                                                    "max": 1_000_000})


def many_steps(fixed, moving, spacing, config: ManyStepsConfig, device):
    for step in range(config.iterations):
        yield Progress(step + 1, config.iterations, f"step {step + 1}")
    return Estimate(field=torch.zeros((1, fixed.ndim - 2, *fixed.shape[2:])))


@pytest.fixture
def many_steps_method(monkeypatch):
    from napari_deepreg import methods

    available_methods()
    spec = MethodSpec(STUB_ID, "Many steps", ManyStepsConfig, many_steps, dims=(2, 3))
    monkeypatch.setitem(methods._REGISTRY, STUB_ID, spec)
    return spec


def _pair() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[:40, :48].astype(np.float32)
    fixed = np.exp(-((y - 20) ** 2 + (x - 22) ** 2) / 60.0) + 0.01 * x
    return fixed, np.roll(fixed, 2, axis=1)


def test_pipeline_books_its_phases():
    fixed, moving = _pair()
    labels = (fixed > 0.5).astype(np.int32)
    result = run_to_end(register(fixed, moving, method="instance_opt",
                                 config={"levels": 1, "iterations": 3, "affine_first": False},
                                 fixed_labels=labels, moving_labels=np.roll(labels, 2, axis=1),
                                 device="cpu"))
    assert list(result.timings) == ["prepare", "normalise", "method", "guard", "warp", "metrics"]
    assert all(seconds >= 0 for seconds in result.timings.values())
    # the CLI's "runtime" is the method, the guard and the warp
    method_phases = sum(result.timings[k] for k in ("method", "guard", "warp"))
    assert method_phases == pytest.approx(result.runtime, abs=0.05)


def test_time_split_puts_the_method_first_and_states_the_rest():
    text = time_split({"worker start": 0.01, "prepare": 0.001, "method": 0.4, "warp": 0.02,
                       "metrics": 0.1, "layers": 0.3}, total=1.0)
    assert text.startswith("method 0.40 s, warp 0.02 s, layers 0.30 s, metrics 0.10 s")
    assert "prepare" not in text  # under 5 ms
    assert text.endswith("other 0.17 s")


def test_throttled_passes_the_first_each_phase_end_and_one_per_interval():
    def steps():
        for step in range(1, 6):
            yield Progress(step, 5, "a")
            time.sleep(0.03)
        yield Progress(1, 1, "b")
        return "value"

    gen, passed = throttled(steps(), interval=0.1), []
    while True:
        try:
            passed.append(next(gen))
        except StopIteration as stop:
            assert stop.value == "value"
            break
    assert passed[0] == Progress(1, 5, "a")  # at once: the bar starts moving
    assert Progress(5, 5, "a") in passed and passed[-1] == Progress(1, 1, "b")
    assert len(passed) <= 5


def test_widget_shows_the_split_and_gets_no_signal_per_iteration(
        make_napari_viewer, qtbot, many_steps_method):
    fixed, moving = _pair()
    viewer = make_napari_viewer()
    viewer.add_image(fixed, name="fixed")
    viewer.add_image(moving, name="moving")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepreg", "Registration")
    widget.method.value = STUB_ID
    widget.fixed_image.value = viewer.layers["fixed"]
    widget.moving_image.value = viewer.layers["moving"]
    drawn: list[str] = []
    set_status = widget._set_status
    widget._set_status = lambda text: (drawn.append(text), set_status(text))
    worker = widget.run(start=False)
    received: list = []
    worker.yielded.connect(received.append)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        clock = time.perf_counter()
        worker.start()
    seconds = time.perf_counter() - clock

    # 2000 iterations (and the pipeline's own reports), at most one per PROGRESS_INTERVAL_S
    # plus each phase's end reach the Qt thread
    assert len(received) <= seconds / PROGRESS_INTERVAL_S + 6
    assert len(received) < 100 and widget.progress_reports == len(received)
    assert "step 2000 (2000/2000)" in drawn  # a phase's last step is always shown

    timings = widget.result.timings
    for phase in ("copy inputs", "worker start", "prepare", "method", "warp", "metrics",
                  "layers", "tables", "panels"):
        assert phase in timings, phase
    status = widget.status.text()
    assert status.startswith("done in")
    split = status.splitlines()[-1]
    assert " s from Run to layers: " in split and "layers" in split
    assert PROGRESS_INTERVAL_S <= 0.2


def test_the_widget_warms_the_optimiser_up_in_the_background(make_napari_viewer, monkeypatch):
    """The first optimiser step of a process imports torch._dynamo (~1.4 s; 2.6 s of a first
    2D run in the widget against 0.4 s later): the widget does it off the Qt thread when it
    opens, so the user's first Run does not wait for it."""
    import threading

    from napari_deepreg._napari import _widget
    from napari_deepreg.core.device import warm_up_optimiser

    seen: list[str] = []
    monkeypatch.setattr(_widget, "warm_up_optimiser",
                        lambda: seen.append(threading.current_thread().name))
    _widget.RegistrationWidget(make_napari_viewer())
    for thread in threading.enumerate():
        if thread.name == "napari-deepreg warm-up":
            thread.join(timeout=30)
    assert seen == ["napari-deepreg warm-up"]  # once, and not on the Qt (main) thread
    assert warm_up_optimiser() >= 0.0  # the real one runs a step
