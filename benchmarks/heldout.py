"""Held-out Dice of the learned models: anatomy they were not trained on, in a few minutes.

Pairs:

* ``labelmap-K``: pairs of synthetic subjects from the held-out ``mni2009c`` label maps (DKT,
  AAL, Harvard-Oxford, Schaefer-400 on MNI 2009c; ``data.label_pairs`` validation split) at
  2 mm, 96x112x96, two independent random contrasts, affine motion from none to large
  (``unmoved-K``: no affine motion at all, where an affine stage must not invent one). Scored
  on the coarse labels (L/R GM, WM, CSF) and on the source atlas' own labels (``dice_fine``:
  dozens to hundreds of regions, the finer correspondence test).
* ``brain3d``: the bundled sample (MNI 2009a, never in any training set) with its tissue labels.

Methods: ``identity``, a zoo model id (``avsm_3d``...), or ``ID=PATH``: that zoo entry's method
with ``model_file=PATH`` (a training run's ``best_model.pt``). Learned models run feed-forward
(``refine`` off where the method has it) unless ``--refine``.

    python -m benchmarks.heldout --methods identity,avsm_affine_3d,avsm_3d_4mm,avsm_3d,\\
        semantic_bspline_3d --pairs 6 --unmoved 2 --threads 1
    python -m benchmarks.heldout --methods avsm_affine_3d=runs/avsm_labelmaps_affine_3d/\\
best_model.pt --pairs 6

Prints a table (one row per method: mean over the label-map pairs, then the bundled pair) and
with ``--out FILE`` writes every pair's figures as JSON.
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

from napari_deepreg import metrics
from napari_deepreg.core import warp_labels
from napari_deepreg.volume import Volume

IDENTITY = "identity"
#: label-map pair seeds (other than the training validation's 987654 + i)
PAIR_SEED = 55_000
SPACING_MM = 2.0


@dataclasses.dataclass
class HeldOutPair:
    """One pair on one grid: images ``(*S)`` float32, coarse and fine labels ``(*S)`` int."""

    name: str
    fixed: np.ndarray
    moving: np.ndarray
    fixed_labels: np.ndarray
    moving_labels: np.ndarray
    fixed_fine: np.ndarray | None
    moving_fine: np.ndarray | None
    spacing: tuple[float, ...]
    info: dict[str, Any]


def labelmap_pairs(count: int, seed: int = PAIR_SEED, unmoved: bool = False
                   ) -> list[HeldOutPair]:
    """``count`` held-out label-map pairs at 2 mm (pair ``i`` from seed ``seed + i``);
    ``unmoved``: without affine motion (named ``unmoved-i``, else ``labelmap-i``)."""
    from napari_deepreg.data.label_pairs import LabelPairConfig
    from napari_deepreg.training.tasks.label_maps import native_sampler

    config = LabelPairConfig(p_no_affine=1.0) if unmoved else LabelPairConfig()
    # in the array orientation of images read from files (the bank's LPS grid flipped in y, x)
    sampler = native_sampler("val", SPACING_MM, config, seed=seed)
    pairs = []
    for i in range(count):
        b = sampler.sample(1, torch.Generator().manual_seed(seed + i))
        info = b["info"][0]
        pairs.append(HeldOutPair(
            f"{'unmoved' if unmoved else 'labelmap'}-{i}",
            b["fixed"][0, 0].numpy(), b["moving"][0, 0].numpy(),
            b["fixed_labels"][0, 0].numpy(), b["moving_labels"][0, 0].numpy(),
            b["fixed_fine_labels"][0, 0].numpy(), b["moving_fine_labels"][0, 0].numpy(),
            tuple(b["spacing"]),
            {"source": info["source"], "has_affine": bool(info["has_affine"]),
             "same_subject": bool(info["same_subject"])},
        ))
    return pairs


def bundled_pair() -> HeldOutPair:
    """The bundled ``brain3d`` sample (MNI 2009a, 2 mm) with its tissue labels."""
    from napari_deepreg.sample import load_sample

    s = load_sample("brain3d")
    return HeldOutPair("brain3d", s["fixed"].array, s["moving"].array,
                       s["fixed_labels"].array, s["moving_labels"].array, None, None,
                       tuple(s["fixed"].spacing), {"source": "mni2009a sample"})


def parse_method(text: str) -> tuple[str, str, str]:
    """``(label, method id, model file)`` of ``identity``, ``ID`` or ``ID=PATH``."""
    method, _, path = text.partition("=")
    return text, method.strip(), path.strip()


def _config(method: str, model_file: str, refine: bool) -> dict[str, Any] | None:
    from napari_deepreg.methods import available_methods

    spec = available_methods()[method]
    names = {f.name for f in dataclasses.fields(spec.config_class)}
    config: dict[str, Any] = {}
    if "refine" in names:
        config["refine"] = refine
    if model_file:
        config["model_file"] = model_file
    return config or None


def register_field(pair: HeldOutPair, method: str, model_file: str = "",
                   refine: bool = False, guard: bool = False
                   ) -> tuple[np.ndarray, float, bool]:
    """``(field (D, *S) mm, method seconds, whether the guard returned another candidate)``
    of one method on one pair (identity: zeros). ``guard`` off (the default) measures the
    model itself; on, what a user gets (the never-worse guard sees the images only)."""
    if method == IDENTITY:
        return np.zeros((pair.fixed.ndim, *pair.fixed.shape), np.float32), 0.0, False
    from napari_deepreg.pipeline import register, run_to_end

    def vol(a: np.ndarray) -> Volume:
        return Volume(np.asarray(a, np.float32), pair.spacing, (0.0,) * a.ndim)

    result = run_to_end(register(vol(pair.fixed), vol(pair.moving), method=method,
                                 config=_config(method, model_file, refine), device="cpu",
                                 hausdorff=False, guard=guard))
    replaced = result.metrics.get("guard_returned", "method") != "method"
    return np.asarray(result.field, np.float32), float(result.runtime), replaced


def score(pair: HeldOutPair, field: np.ndarray) -> dict[str, float]:
    """Dice of the coarse (and fine) labels after warping the moving ones by ``field``,
    Dice before, and the folding percentage."""
    from napari_deepreg.core import jacobian_determinant

    u = torch.from_numpy(field)[None]

    def warped(labels: np.ndarray) -> np.ndarray:
        return warp_labels(torch.from_numpy(labels.astype(np.int64))[None, None], u,
                           pair.spacing)[0, 0].numpy()

    out = {
        "dice_before": metrics.mean_dice(pair.fixed_labels, pair.moving_labels),
        "dice": metrics.mean_dice(pair.fixed_labels, warped(pair.moving_labels)),
        "fold_percent": metrics.fold_percent(
            jacobian_determinant(u, pair.spacing)[0].numpy()),
    }
    if pair.fixed_fine is not None:
        out["dice_fine_before"] = metrics.mean_dice(pair.fixed_fine, pair.moving_fine)
        out["dice_fine"] = metrics.mean_dice(pair.fixed_fine, warped(pair.moving_fine))
    return out


def run(methods: Sequence[str], pairs: Sequence[HeldOutPair], refine: bool = False,
        stream: Any = sys.stdout, guard: bool = False) -> list[dict[str, Any]]:
    """One row per (method, pair): the pair's figures, ``seconds``, whether the guard
    replaced the result (``guarded``) and the pair's info."""
    rows = []
    for text in methods:
        label, method, model_file = parse_method(text)
        for pair in pairs:
            start = time.perf_counter()
            field, method_s, guarded = register_field(pair, method, model_file, refine, guard)
            row = {"method": label, "pair": pair.name, **score(pair, field),
                   "method_s": method_s, "total_s": time.perf_counter() - start,
                   "guarded": guarded, **pair.info}
            rows.append(row)
            print(f"  {label} {pair.name}: dice {row['dice']:.3f} (before "
                  f"{row['dice_before']:.3f})", file=stream, flush=True)
    return rows


def summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: means over all label-map pairs (``lm_*``), the mean Dice gain on the
    unmoved ones (``lm_gain_unmoved``) and the bundled pair's figures (``sample_*``)."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        lm = [r for r in mine if r["pair"] != "brain3d"]
        sample = [r for r in mine if r["pair"] == "brain3d"]
        entry: dict[str, Any] = {"method": method, "pairs": len(lm)}
        for key in ("dice_before", "dice", "dice_fine_before", "dice_fine", "fold_percent",
                    "method_s"):
            values = [r[key] for r in lm if key in r and np.isfinite(r[key])]
            entry[f"lm_{key}"] = float(np.mean(values)) if values else float("nan")
        unmoved = [r["dice"] - r["dice_before"] for r in lm if not r.get("has_affine", True)]
        entry["lm_gain_unmoved"] = float(np.mean(unmoved)) if unmoved else float("nan")
        entry["guarded"] = sum(bool(r.get("guarded")) for r in mine)
        for key in ("dice_before", "dice", "fold_percent"):
            entry[f"sample_{key}"] = sample[0][key] if sample else float("nan")
        out.append(entry)
    return out


def format_table(entries: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table of :func:`summary`."""
    cols = [("method", 44, "s"), ("lm_dice_before", 9, ".3f"), ("lm_dice", 9, ".3f"),
            ("lm_dice_fine_before", 9, ".3f"), ("lm_dice_fine", 9, ".3f"),
            ("lm_gain_unmoved", 9, "+.3f"), ("lm_fold_percent", 8, ".2f"),
            ("lm_method_s", 8, ".2f"), ("sample_dice_before", 9, ".3f"),
            ("sample_dice", 9, ".3f"), ("guarded", 8, "d")]
    heads = ["method", "lm before", "lm dice", "fine bef", "fine", "gain unm", "fold %",
             "sec", "smp bef", "smp dice", "guarded"]
    lines = ["".join(h.ljust(w) if i == 0 else h.rjust(w)
                     for i, (h, (_, w, _)) in enumerate(zip(heads, cols, strict=True)))]
    for e in entries:
        cells = []
        for i, (key, width, fmt) in enumerate(cols):
            value = e[key]
            cells.append(str(value).ljust(width) if i == 0 else format(value, fmt).rjust(width))
        lines.append("".join(cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default="identity,avsm_affine_3d,avsm_3d_4mm,avsm_3d,"
                        "semantic_bspline_3d", help="comma-separated: identity, ID, ID=PATH")
    parser.add_argument("--pairs", type=int, default=6, help="held-out label-map pairs")
    parser.add_argument("--unmoved", type=int, default=2,
                        help="more held-out pairs without affine motion")
    parser.add_argument("--no-sample", action="store_true", help="skip the bundled pair")
    parser.add_argument("--refine", action="store_true", help="refinement on where offered")
    parser.add_argument("--guard", action="store_true",
                        help="the never-worse guard on (default off: the models themselves)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", help="write every pair's figures as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    pairs = labelmap_pairs(args.pairs) + labelmap_pairs(args.unmoved, unmoved=True)
    if not args.no_sample:
        pairs.append(bundled_pair())
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    rows = run(methods, pairs, args.refine, sys.stderr, args.guard)
    entries = summary(rows)
    print(format_table(entries))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"rows": rows, "summary": entries}, fh, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
