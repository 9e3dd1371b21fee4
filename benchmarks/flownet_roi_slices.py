"""Is registering a volume slice by slice with a 2D model consistent across slices?

The bundled ``brain3d`` pair (MNI 2009a, 2 mm, a known smooth 3D field) is registered one
axial slice (array axis 0) at a time by a 2D zoo model (feed-forward); the in-plane fields are
stacked into a 3D field with no through-plane component. Measured against the same stacking
of the true field's in-plane components (the best any slice-wise method can do) and the true
field itself:

* Dice over the labels after warping the moving labels in 3D;
* slice-to-slice jump: the mean over the fixed brain of ``|u(z + 1) - u(z)|`` (in-plane
  components, mm): how much the field changes between neighbouring slices;
* fold % of the stacked field's 3D Jacobian determinant.

    python -m benchmarks.flownet_roi_slices --model flownet_roi_2d --threads 1
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
import torch


def slice_jump(field: np.ndarray, mask: np.ndarray) -> float:
    """Mean ``|u(z + 1) - u(z)|`` (mm) of the in-plane components over voxels in ``mask``
    on both slices; ``field`` ``(3, Z, Y, X)``."""
    step = np.linalg.norm(field[1:, 1:] - field[1:, :-1], axis=0)
    both = mask[1:] & mask[:-1]
    return float(step[both].mean())


def main(argv: Sequence[str] | None = None) -> int:
    from napari_deepreg import metrics
    from napari_deepreg.core import jacobian_determinant, warp_labels
    from napari_deepreg.methods import get_method
    from napari_deepreg.pipeline import normalise_intensity, run_to_end
    from napari_deepreg.sample import load_sample

    parser = argparse.ArgumentParser(prog="python -m benchmarks.flownet_roi_slices",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="flownet_roi_2d", help="a 2D zoo model")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    pair = load_sample("brain3d")
    spacing = tuple(pair["fixed"].spacing)
    fixed = normalise_intensity(pair["fixed"].array)
    moving = normalise_intensity(pair["moving"].array)
    f_lab, m_lab = pair["fixed_labels"].array, pair["moving_labels"].array
    true = np.asarray(pair["field"], np.float32)
    spec = get_method(args.model)
    config = spec.make_config(refine=False)
    stacked = np.zeros_like(true)
    for z in range(fixed.shape[0]):
        if not (fixed[z].any() and moving[z].any()):
            continue
        f = torch.from_numpy(np.ascontiguousarray(fixed[z], np.float32))[None, None]
        m = torch.from_numpy(np.ascontiguousarray(moving[z], np.float32))[None, None]
        est = run_to_end(spec.estimate(f, m, spacing[1:], config, "cpu"))
        stacked[1:, z] = est.field[0].numpy()
    in_plane = true.copy()
    in_plane[0] = 0.0
    brain = f_lab > 0
    labels = torch.from_numpy(m_lab.astype(np.int64))[None, None]
    print(f"{args.model} slice by slice on brain3d {fixed.shape} @ {spacing[0]:g} mm "
          f"(axial slices, feed-forward)")
    print(f"  {'field':<34}{'Dice':>8}{'jump mm':>10}{'fold %':>9}")
    for name, field in (("none", np.zeros_like(true)), ("slice by slice", stacked),
                        ("true, in-plane part only", in_plane), ("true (3D)", true)):
        u = torch.from_numpy(field)[None]
        warped = warp_labels(labels, u, spacing)[0, 0].numpy()
        jac = jacobian_determinant(u, spacing)[0].numpy()
        print(f"  {name:<34}{metrics.mean_dice(f_lab, warped):8.4f}"
              f"{slice_jump(field, brain):10.3f}{metrics.fold_percent(jac):9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
