"""Feed-forward time of the FlowNet + ROI networks per 256x256 pair, on the CPU.

Three measurements, each the median of ``--repeats`` calls after two warm-up calls, under
``torch.no_grad`` on ``--threads`` threads:

* ``net <variant> @ HxW``: the network alone (random weights of the shipped widths) on a pair
  at that grid: PN (no ROI module) and PN+mask, at 256x256 and at 128x128;
* ``predict_field 256x256 @ 1 mm``: the shipped model's whole prediction for a 256x256 pair
  of 1 mm pixels (resampled to its 2 mm working grid, 128x128, normalised, registered, the
  field brought back to 256x256);
* ``register 256x256 @ 1 mm``: ``pipeline.register`` with refinement off (input checks,
  normalisation, prediction, the single warp at native resolution, the Jacobian, the
  never-worse guard).

    python -m benchmarks.time_flownet_roi --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``call`` in ms, after two untimed calls."""
    for _ in range(2):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    from napari_deepreg.core import gaussian_smooth
    from napari_deepreg.methods.flownet_roi import FlowNetROINetConfig, build_net, load_model
    from napari_deepreg.methods.flownet_roi.method import predict_field
    from napari_deepreg.pipeline import register, run_to_end
    from napari_deepreg.volume import Volume

    parser = argparse.ArgumentParser(prog="python -m benchmarks.time_flownet_roi",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    g = torch.Generator().manual_seed(0)
    pair = gaussian_smooth(torch.rand(2, 1, 256, 256, generator=g), 4.0)
    pair = (pair - pair.min()) / (pair.max() - pair.min())
    fixed, moving = pair[:1], pair[1:]
    rows = []
    for variant in ("PN", "PN+mask"):
        net = build_net(FlowNetROINetConfig(variant=variant)).eval()
        for size in (256, 128):
            f = torch.nn.functional.interpolate(fixed, size=(size, size), mode="area")
            m = torch.nn.functional.interpolate(moving, size=(size, size), mode="area")
            with torch.no_grad():
                ms = median_ms(lambda: net(f, m, (1.0, 1.0)), args.repeats)  # noqa: B023
            rows.append((f"net {variant} @ {size}x{size}", ms))
    model, net_config = load_model("flownet_roi_2d", "cpu")
    rows.append(("predict_field 256x256 @ 1 mm (flownet_roi_2d, working 128x128 @ 2 mm)",
                 median_ms(lambda: predict_field(model, net_config, fixed, moving, (1.0, 1.0)),
                           args.repeats)))
    vol = [Volume(np.asarray(x[0], np.float32), (1.0, 1.0), (0.0, 0.0)) for x in pair]
    rows.append(("register 256x256 @ 1 mm (pipeline, refine off, guard on)",
                 median_ms(lambda: run_to_end(register(
                     vol[0], vol[1], method="flownet_roi_2d", config={"refine": False},
                     device="cpu", hausdorff=False)), max(5, args.repeats // 4))))
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats}")
    for name, ms in rows:
        print(f"  {name:<72} {ms:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
