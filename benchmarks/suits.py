"""SUITS on multi-modal 2D pairs it never saw: held-out anatomy, two independently synthesised
contrasts, the moving one inverted (training never inverted a contrast).

Pairs:

* ``mm-K``: 2D slices of two synthetic subjects from the held-out ``mni2009c`` label maps
  (``data.label_pairs`` validation split, 2 mm, 112x112), each image from its own random
  contrast, then the moving image inverted inside its brain (``1 - I``, background kept);
* ``brain2d-inv``: the bundled 2D sample (MNI 2009a, never in any training set) with its moving
  image inverted the same way.

Methods: ``identity``, any registered method with config overrides
(``suits_mind:lam=2``, ``instance_opt:similarity=mind_ssc``), ``ID=PATH`` (a zoo entry's method
with ``model_file=PATH``), and ``elastix`` (the peer: affine + B-spline, Mattes mutual
information). Figures per pair: Dice (coarse labels; the sample's tissues), HD95 (mm, mean over
labels), fold %, SDlogJ, wall time of the method; the table is the mean over the ``mm`` pairs
and the sample's own row.

    python -m benchmarks.suits --pairs 8 --threads 1 --methods identity,suits_mind,\\
suits_mind:lam=2,suits_2d,instance_opt:similarity=mind_ssc,semantic_bspline_2d,elastix
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from benchmarks.heldout import IDENTITY, HeldOutPair, score
from napari_deepreg import metrics
from napari_deepreg.core import jacobian_determinant, warp_labels
from napari_deepreg.volume import Volume

PAIR_SEED = 56_000  # not the training validation's 987654 + i, nor heldout.py's 55_000
ELASTIX = "elastix"


def invert(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``1 - I`` inside the brain (labels > 0) of an image in [0, 1], background kept."""
    lo, hi = float(image.min()), float(image.max())
    norm = (image - lo) / (hi - lo if hi > lo else 1.0)
    return np.where(labels > 0, 1.0 - norm, norm).astype(np.float32)


def multimodal_pairs(count: int, seed: int = PAIR_SEED) -> list[HeldOutPair]:
    """``count`` held-out 2D label-map pairs, moving contrast inverted (pair ``i``: seed + i)."""
    from napari_deepreg.data.contrasts import ContrastConfig
    from napari_deepreg.data.label_pairs import LabelPairConfig
    from napari_deepreg.training.tasks.label_maps import native_sampler

    config = LabelPairConfig(ndim=2, contrast=ContrastConfig(p_invert=0.0), rotation_deg=5.0,
                             scale=0.05, translation_mm=6.0)
    sampler = native_sampler("val", 2.0, config, seed=seed)
    pairs = []
    for i in range(count):
        b = sampler.sample(1, torch.Generator().manual_seed(seed + i))
        ml = b["moving_labels"][0, 0].numpy()
        pairs.append(HeldOutPair(
            f"mm-{i}", b["fixed"][0, 0].numpy(), invert(b["moving"][0, 0].numpy(), ml),
            b["fixed_labels"][0, 0].numpy(), ml, None, None, tuple(b["spacing"]),
            {"source": b["info"][0]["source"]}))
    return pairs


def bundled_inverted() -> HeldOutPair:
    """The bundled ``brain2d`` sample with its moving image inverted inside the brain."""
    from napari_deepreg.sample import load_sample

    s = load_sample("brain2d")
    ml = s["moving_labels"].array
    return HeldOutPair("brain2d-inv", s["fixed"].array.astype(np.float32),
                       invert(s["moving"].array.astype(np.float32), ml),
                       s["fixed_labels"].array, ml, None, None, tuple(s["fixed"].spacing),
                       {"source": "mni2009a sample"})


def parse(text: str) -> tuple[str, dict[str, Any], str]:
    """``(method id, config overrides, model file)`` of ``ID[:k=v...][=PATH]``."""
    head, _, path = text.partition("=") if ":" not in text.split("=")[0] else (text, "", "")
    parts = head.split(":")
    overrides: dict[str, Any] = {}
    for item in parts[1:]:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return parts[0], overrides, path


def register(pair: HeldOutPair, text: str) -> tuple[np.ndarray, float]:
    """``(field (D, *S) mm, wall seconds)`` of one method on one pair."""
    method, overrides, path = parse(text)
    if method == IDENTITY:
        return np.zeros((pair.fixed.ndim, *pair.fixed.shape), np.float32), 0.0

    def vol(a: np.ndarray) -> Volume:
        return Volume(np.asarray(a, np.float32), pair.spacing, (0.0,) * a.ndim)

    if method == ELASTIX:
        from benchmarks.peers import elastix

        result = elastix(vol(pair.fixed), vol(pair.moving))
        return result.field.astype(np.float32), float(result.runtime)
    from napari_deepreg.methods import available_methods
    from napari_deepreg.pipeline import register as run_register
    from napari_deepreg.pipeline import run_to_end

    names = {f.name for f in dataclasses.fields(available_methods()[method].config_class)}
    config = dict(overrides)
    if "refine" in names:
        config.setdefault("refine", False)
    if path:
        config["model_file"] = path
    start = time.perf_counter()
    result = run_to_end(run_register(vol(pair.fixed), vol(pair.moving), method=method,
                                     config=config or None, device="cpu", hausdorff=False,
                                     guard=False))
    return np.asarray(result.field, np.float32), time.perf_counter() - start


def figures(pair: HeldOutPair, field: np.ndarray) -> dict[str, float]:
    """Dice before / after, HD95 after (mm, mean over labels), fold %, SDlogJ."""
    out = score(pair, field)
    u = torch.from_numpy(field)[None]
    warped = warp_labels(torch.from_numpy(pair.moving_labels.astype(np.int64))[None, None], u,
                         pair.spacing)[0, 0].numpy()
    hd = metrics.hd95_per_label(pair.fixed_labels, warped, pair.spacing)
    out["hd95"] = float(np.nanmean(list(hd.values()))) if hd else float("nan")
    out["sdlogj"] = metrics.sdlogj(jacobian_determinant(u, pair.spacing)[0].numpy())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default="identity,suits_mind,suits_2d,"
                        "instance_opt:similarity=mind_ssc,elastix")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="every pair's figures and the summary as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    pairs = multimodal_pairs(args.pairs) + [bundled_inverted()]
    rows = []
    for text in [m.strip() for m in args.methods.split(",") if m.strip()]:
        for pair in pairs:
            field, seconds = register(pair, text)
            row = {"method": text, "pair": pair.name, **figures(pair, field), "time_s": seconds}
            rows.append(row)
            print(f"  {text} {pair.name}: dice {row['dice']:.3f} (before "
                  f"{row['dice_before']:.3f}) {seconds:.2f} s", file=sys.stderr, flush=True)
    keys = ("dice_before", "dice", "hd95", "fold_percent", "sdlogj", "time_s")
    summary = []
    print(f"{'method':40s}" + "".join(f"{k:>13s}" for k in keys) + f"{'sample dice':>13s}")
    for method in dict.fromkeys(r["method"] for r in rows):
        mm = [r for r in rows if r["method"] == method and r["pair"].startswith("mm-")]
        sample = [r for r in rows if r["method"] == method and r["pair"] == "brain2d-inv"]
        entry = {"method": method, **{k: float(np.nanmean([r[k] for r in mm])) for k in keys},
                 "worse_than_before": sum(r["dice"] < r["dice_before"] for r in mm),
                 "sample_dice": sample[0]["dice"], "sample_dice_before": sample[0]["dice_before"]}
        summary.append(entry)
        print(f"{method:40s}" + "".join(f"{entry[k]:13.3f}" for k in keys)
              + f"{entry['sample_dice']:13.3f}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"rows": rows, "summary": summary}, fh, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
