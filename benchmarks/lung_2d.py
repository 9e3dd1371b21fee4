"""A second anatomy: the rat lung pair of ITK's deformable registration examples (2D MR, never
seen by any model), in one run against instance_opt and the classical peers.

Cases (:func:`lung_cases`):

* ``lung_real``: ``RatLungSlice2`` registered to ``RatLungSlice1`` (breathing: the diaphragm
  moves ~3 px); no known field; scored on lung masks made from each image by
  :func:`lung_labels`;
* ``lung_synthetic_*``: each lung slice warped by a known smooth random field (the held-out 2D
  recipe: SVF up to ~6 mm, a small affine) with a gamma / bias / noise change, scored on the
  warped lung labels and the endpoint error inside the body.

Lung labels (:func:`lung_labels`: label 1 = lungs, the only label scored; the body is the mask
of the endpoint error): the image smoothed (σ 1 px), Otsu's threshold, the body = the largest
bright component with its holes filled, the lungs = the two largest dark components inside it
that do not touch the border, closed with a 2-px disk. Threshold labelling, not an expert's:
both images are labelled by the same rule.

Methods as :func:`benchmarks.run.resolve_methods` takes them; default: identity, both 2D
FlowNet + ROI models (brain ``flownet_roi_2d`` and anatomy-free ``flownet_roi_shapes_2d``),
feed-forward and refined, instance_opt, elastix, ANTs SyN.

    python -m benchmarks.lung_2d --threads 1 --out results/lung_2d
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import cases as _cases
from benchmarks import heldout_2d as _heldout

DEFAULT_METHODS = ("identity,flownet_roi_2d:refine=false,flownet_roi_2d,"
                   "flownet_roi_shapes_2d:refine=false,flownet_roi_shapes_2d,instance_opt,"
                   "elastix,ants_syn")
#: (base slice, seed) of the synthetic cases: seeds no other case uses
SYNTHETIC = (("lung1", 7201), ("lung1", 7202), ("lung2", 7203), ("lung2", 7204))


def lung_labels(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lungs, body)`` of a 2D thorax MR slice: int32 labels (1 = lungs) and a bool mask."""
    from scipy import ndimage
    from skimage import filters, measure, morphology, segmentation

    smooth = filters.gaussian(np.asarray(image, np.float64), 1.0, preserve_range=True)
    threshold = filters.threshold_otsu(smooth)
    bright = measure.label(smooth > 0.5 * threshold)
    counts = np.bincount(bright.ravel())
    counts[0] = 0
    body = bright == int(np.argmax(counts))
    body = ndimage.binary_fill_holes(body)  # holes: dark regions not connected to the border
    dark = segmentation.clear_border((smooth < 0.6 * threshold) & body)
    parts = measure.label(dark)
    areas = np.bincount(parts.ravel())
    areas[0] = 0
    keep = [k for k in np.argsort(areas)[::-1][:2] if areas[k] > 100]
    lungs = morphology.closing(np.isin(parts, keep), morphology.disk(2))
    return lungs.astype(np.int32), body


def lung_cases() -> list[_cases.BenchCase]:
    """The real pair and the synthetic ones (built in well under a second: not cached)."""
    from napari_deepreg.data.templates import itk_brain_slices

    slices = itk_brain_slices()
    fixed, moving = slices["lung1"], slices["lung2"]
    (fixed_labels, body), (moving_labels, _) = lung_labels(fixed.array), lung_labels(moving.array)
    real = _cases.BenchCase(
        name="lung_real", group="2d-lung", fixed=fixed, moving=moving,
        fixed_labels=fixed_labels, moving_labels=moving_labels, mask=body,
        description="ITK RatLungSlice2 -> RatLungSlice1 (breathing), lung masks by threshold")
    out = [real]
    for key, seed in SYNTHETIC:
        base = slices[key]
        labels, body = lung_labels(base.array)
        case = _cases.synthetic_case(
            f"lung_synthetic_{key}_{seed}", "2d-lung", base, labels, seed,
            _cases._DEFORM_2D, _cases._CONTRAST, 1,
            f"ITK {key} warped by a known smooth field, gamma / bias / noise change")
        case.mask = body
        out.append(case)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lung_2d",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS,
                        help="comma-separated, as benchmarks.run takes them")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of every tool")
    parser.add_argument("--out", type=Path, default=Path("results/lung_2d"))
    args = parser.parse_args(argv)
    command, started = _heldout.start("benchmarks.lung_2d", argv, args.threads)
    cases = lung_cases()
    rows = _heldout.run(cases, args.methods, landmarks_tre=False)
    entries = _heldout.means(rows)
    table = _heldout.format_table(entries)
    print(table)
    _heldout.write_results(args.out, command, started, cases, rows, entries, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
