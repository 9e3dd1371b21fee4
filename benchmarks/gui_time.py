"""Where the Registration widget's time goes, against the CLI's method time on the same pair.

    xvfb-run -a python -m benchmarks.gui_time [--repeats 3] [--json FILE]

One process, one torch thread. The bundled 2D brain pair (``sample_data/brain2d_*``, images
and labels) is opened in a napari viewer with the Registration dock widget, and the default
``instance_opt`` runs on the CPU ``repeats + 1`` times from the widget (the first one cold: it
pays the first ``torch.optim`` optimiser's import of ``torch._dynamo``), each timed from the
click on Run to the end of the worker (the result layers, tables and panels made). Between the
widget runs the same registration runs without Qt (``pipeline.register``, what
``napari-deepreg register`` runs), and once in a fresh ``napari-deepreg register`` process,
cold like the widget's first run; its "runtime" is the CLI's method time.

Printed per run: the click-to-layers wall clock, the method's runtime (``result.runtime``:
method, guard, warp and Jacobian) and, from ``result.timings``, the split the widget shows on
its status line (worker start, prepare, method, guard, warp, metrics, layers, tables, panels,
other = Qt events not in a phase), plus how many progress reports reached the Qt thread and how
many the widget drew. A checkout without ``result.timings`` (before the split existed) prints the
wall clock and runtime only, so the same script measures the code before a change.

Measured on the shared 2-core CPU (load average 3.5-4.5 from other jobs, so +-30 %), --repeats 5,
two alternating pairs of runs before and after the change that throttled progress reports:

============================  ====================  ====================
median of warm runs (s)       before (9ec6195)      after
============================  ====================  ====================
widget, Run to layers         2.64 / 3.00           0.96 / 1.59
widget, method runtime        2.23 / 2.58           0.66 / 1.20
same run without Qt, runtime  0.48 / 0.47           0.44 / 0.48
widget cold, Run to layers    7.33 / 7.56           4.62 / 6.52
CLI cold, method runtime      1.97 / 1.79           1.86 / 1.75
============================  ====================  ====================

Then (2026-12-06, idle machine, --repeats 3) the widget warmed the first optimiser step up in a
background thread when it opens (``core.device.warm_up_optimiser``; this script waits for it,
as a user picking layers does): widget cold 4.38 s (method 2.62 s) -> 1.72 s (method 0.50 s),
against the CLI's cold method runtime 1.44 s; warm widget runs 0.58 s.

Before, all 123 per-iteration reports crossed to the Qt thread and each redrew the status line;
after, about 10 do. The cold widget run still pays the layers' first creation (about 1.1 s,
"layers" in the split) and the first optimiser's ``torch._dynamo`` import inside the method (the
CLI pays that too), and on this loaded machine the widget's method time stays above the no-Qt
one (Qt events on the GUI thread take the GIL from the worker).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def cli_cold_runtime(python: str = sys.executable) -> dict[str, float]:
    """One ``napari-deepreg register`` of the 2D pair in a fresh process, one thread:
    ``{"wall_s", "runtime_s"}`` (runtime from the ``metrics.json`` it wrote)."""
    from benchmarks.startup import time_cli

    pair = [str(SAMPLE / f"brain2d_{name}.nii.gz") for name in ("fixed", "moving")]
    labels = ["--fixed-labels", str(SAMPLE / "brain2d_fixed_labels.nii.gz"),
              "--moving-labels", str(SAMPLE / "brain2d_moving_labels.nii.gz")]
    return time_cli(lambda out: ["register", *pair, *labels, "--method", "instance_opt",
                                 "--device", "cpu", "-q", "--no-report", "--out", str(out)],
                    python, env={"OMP_NUM_THREADS": "1"})


def open_widget() -> tuple[Any, Any, dict]:
    """A shown viewer with the 2D pair and the Registration widget set to instance_opt, CPU."""
    import napari

    from napari_deepreg._napari._widget import RegistrationWidget
    from napari_deepreg.sample import load_sample

    pair = load_sample("brain2d")
    viewer = napari.Viewer(show=True)
    scale = pair["fixed"].spacing
    viewer.add_image(pair["fixed"].array, name="fixed", scale=scale)
    viewer.add_image(pair["moving"].array, name="moving", scale=scale)
    viewer.add_labels(pair["fixed_labels"].array, name="fixed labels", scale=scale)
    viewer.add_labels(pair["moving_labels"].array, name="moving labels", scale=scale)
    widget = RegistrationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Registration")
    widget.method.value = "instance_opt"
    widget.device.value = "cpu"
    widget.fixed_image.value = viewer.layers["fixed"]
    widget.moving_image.value = viewer.layers["moving"]
    widget.fixed_labels.value = viewer.layers["fixed labels"]
    widget.moving_labels.value = viewer.layers["moving labels"]
    # a user takes seconds to pick layers: the widget's background warm-up of the first
    # optimiser step (napari_deepreg.core.device.warm_up_optimiser) is over by then
    for thread in threading.enumerate():
        if thread.name == "napari-deepreg warm-up":
            thread.join()
    return viewer, widget, pair


def widget_run(widget: Any) -> dict[str, Any]:
    """Click Run and wait in a Qt event loop until the worker is done; the figures of that
    run."""
    from qtpy.QtCore import QEventLoop

    done: list[float] = []
    received = [0]
    loop = QEventLoop()  # idle until the worker is done, as napari's own event loop would
    clicked = time.perf_counter()
    worker = widget.run(start=False)
    worker.yielded.connect(lambda *_: received.__setitem__(0, received[0] + 1))
    worker.finished.connect(lambda: done.append(time.perf_counter()))
    worker.finished.connect(loop.quit)
    worker.start()
    loop.exec()
    result = widget.result
    reports = getattr(widget, "progress_reports", None)
    drawn = reports[1] if isinstance(reports, list) else reports
    return {"wall_s": done[0] - clicked, "runtime_s": result.runtime,
            "timings": dict(getattr(result, "timings", {}) or {}),
            "progress_received": received[0], "progress_drawn": drawn,
            "status": widget.status.text()}


def pipeline_run(pair: dict) -> dict[str, Any]:
    """The CLI's registration in this process, no Qt: ``pipeline.register`` to its end."""
    from napari_deepreg.pipeline import register, run_to_end

    start = time.perf_counter()
    result = run_to_end(register(pair["fixed"], pair["moving"], method="instance_opt",
                                 fixed_labels=pair["fixed_labels"],
                                 moving_labels=pair["moving_labels"], device="cpu"))
    return {"wall_s": time.perf_counter() - start, "runtime_s": result.runtime,
            "timings": dict(getattr(result, "timings", {}) or {})}


def _line(name: str, run: dict[str, Any]) -> str:
    text = f"{name:<14} wall {run['wall_s']:5.2f} s, method runtime {run['runtime_s']:5.2f} s"
    if run.get("progress_received") is not None:
        text += (f", progress reports: {run['progress_received']} reached the Qt thread, "
                 f"{run['progress_drawn']} drawn")
    if run.get("timings"):
        text += "\n" + " " * 15 + ", ".join(f"{k} {v:.2f}" for k, v in run["timings"].items())
    return text


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm runs of each (default 3)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    parser.add_argument("--no-cli", action="store_true", help="skip the fresh CLI process")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    figures: dict[str, Any] = {}
    if not args.no_cli:
        figures["cli_cold"] = cli_cold_runtime()
        print(_line("CLI (cold)", figures["cli_cold"]), flush=True)
    viewer, widget, pair = open_widget()
    figures["widget_cold"] = widget_run(widget)
    print(_line("widget (cold)", figures["widget_cold"]), flush=True)
    figures["widget"], figures["pipeline"] = [], []
    for _ in range(args.repeats):
        figures["pipeline"].append(pipeline_run(pair))
        print(_line("pipeline", figures["pipeline"][-1]), flush=True)
        figures["widget"].append(widget_run(widget))
        print(_line("widget", figures["widget"][-1]), flush=True)
    figures["median"] = {
        what: {key: statistics.median(r[key] for r in figures[what])
               for key in ("wall_s", "runtime_s")}
        for what in ("widget", "pipeline")
    }
    print("median of the warm runs: " + "; ".join(
        f"{what} wall {m['wall_s']:.2f} s, runtime {m['runtime_s']:.2f} s"
        for what, m in figures["median"].items()))
    print("widget status line after the last run:\n  " +
          figures["widget"][-1]["status"].replace("\n", "\n  "))
    viewer.close()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return figures


if __name__ == "__main__":
    main()
