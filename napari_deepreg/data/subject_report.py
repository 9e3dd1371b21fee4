"""Statistics and a PNG montage of synthetic label-map pairs, to see what training will see.

``python -m napari_deepreg.data.subject_report --montage /tmp/subjects.png`` draws pairs of both
splits from the label bank (:mod:`~napari_deepreg.data.atlases`; fetched and cached on first
use), prints what was drawn (label counts before / after merges and splits, contrast ranges,
inversion and affine-free rates, sources) and writes one row per pair: fixed and moving images,
the synthesis labels and the coarse labels of both, at the middle slice along a rotating axis.
``--shapes-only`` needs no registry (random shapes alone).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .contrasts import label_means
from .label_pairs import LabelPairConfig, LabelPairSampler
from .subjects import degrees


def contrast_range(image: torch.Tensor, labels: torch.Tensor) -> float:
    """Spread of the per-label mean intensities of one image over its foreground labels
    (largest minus smallest mean; 0 for a single label)."""
    values, means = label_means(image, labels)
    fg = means[values > 0]
    return float(fg.max() - fg.min()) if len(fg) > 1 else 0.0


def pair_statistics(batch: dict[str, Any]) -> dict[str, Any]:
    """Per-batch figures of :meth:`LabelPairSampler.sample`'s output (lists, one per image or
    per pair): ``labels_before``, ``labels_after``, ``contrast``, ``inverted``, ``rotation_deg``,
    ``scale``, ``has_affine``, ``source``."""
    stats: dict[str, list] = {k: [] for k in (
        "labels_before", "labels_after", "contrast", "inverted", "zero_background",
        "thick_slices", "sharpened", "rotation_deg", "scale", "has_affine", "source",
        "same_subject")}
    for i, info in enumerate(batch["info"]):
        for side in ("fixed", "moving"):
            subject, contrast = info[f"{side}_subject"], info[f"{side}_contrast"]
            stats["labels_before"].append(subject["labels_before"])
            stats["labels_after"].append(subject["labels_after"])
            labels = batch[f"{side}_synth_labels"][i]
            stats["contrast"].append(contrast_range(batch[side][i], labels))
            stats["inverted"].append(contrast["inverted"])
            stats["zero_background"].append(contrast["zero_background"])
            stats["thick_slices"].append(contrast["thickness_axis"] >= 0)
            stats["sharpened"].append(contrast["sharpen"] > 0)
        matrix = batch["affine"][i]
        d = matrix.shape[-1] - 1
        stats["rotation_deg"].append(degrees(matrix))
        stats["scale"].append(float(torch.linalg.det(matrix[:d, :d]).abs() ** (1 / d)))
        stats["has_affine"].append(bool(batch["has_affine"][i]))
        stats["source"].append(info["source"])
        stats["same_subject"].append(info["same_subject"])
    return stats


def _summary(name: str, values: Sequence[float]) -> str:
    v = np.asarray(values, dtype=float)
    return (f"{name}: min {v.min():.3g}, median {np.median(v):.3g}, max {v.max():.3g}"
            if len(v) else f"{name}: -")


def print_statistics(stats: dict[str, list], split: str, seconds: float) -> None:
    n = len(stats["has_affine"])
    print(f"[{split}] {n} pairs in {seconds:.1f} s ({seconds / max(n, 1):.2f} s a pair)")
    print("  " + _summary("labels per subject before edits", stats["labels_before"]))
    print("  " + _summary("labels per subject after merges/splits", stats["labels_after"]))
    changed = np.mean([a != b for a, b in zip(stats["labels_before"], stats["labels_after"],
                                              strict=True)])
    print(f"  label count changed by the edits in {100 * changed:.0f} % of subjects")
    print("  " + _summary("per-image contrast (label-mean max - min)", stats["contrast"]))
    for key in ("inverted", "zero_background", "thick_slices", "sharpened"):
        print(f"  {key}: {100 * np.mean(stats[key]):.0f} % of images")
    print(f"  affine-free pairs: {100 * (1 - np.mean(stats['has_affine'])):.0f} %; same subject: "
          f"{100 * np.mean(stats['same_subject']):.0f} %")
    moved = [r for r, a in zip(stats["rotation_deg"], stats["has_affine"], strict=True) if a]
    print("  " + _summary("rotation of moved pairs (deg)", moved))
    print("  " + _summary("isotropic scale", stats["scale"]))
    print(f"  sources: {dict(Counter(stats['source']).most_common())}")


def montage(batches: Sequence[dict[str, Any]], path: str) -> None:
    """One row per pair: fixed, moving, their synthesis labels and coarse labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(b, i) for b in batches for i in range(len(b["info"]))]
    cols = ("fixed", "moving", "fixed_synth_labels", "moving_synth_labels", "fixed_labels",
            "moving_labels")
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.2 * len(cols), 2.2 * len(rows)))
    axes = np.atleast_2d(axes)
    for r, (batch, i) in enumerate(rows):
        ndim = batch["fixed"].ndim - 2
        axis = r % 3 if ndim == 3 else None
        for c, key in enumerate(cols):
            volume = batch[key][i, 0].cpu().numpy()
            if axis is not None:
                volume = np.take(volume, volume.shape[axis] // 2, axis=axis)
            ax = axes[r, c]
            if key.endswith("labels"):
                # random colours per label value (synthesis labels hold huge values)
                _, inverse = np.unique(volume, return_inverse=True)
                colours = np.random.default_rng(0).random((inverse.max() + 1, 3))
                colours[0] = 0
                ax.imshow(colours[inverse.reshape(volume.shape)], origin="lower")
            else:
                ax.imshow(volume, cmap="gray", vmin=0, vmax=1, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(key.replace("_", " "), fontsize=8)
        info = batch["info"][i]
        flags = "".join(("I" if info[f"{s}_contrast"]["inverted"] else "") for s in ("fixed",))
        axes[r, 0].set_ylabel(f"{info['source']}\n{'affine' if info['has_affine'] else 'no aff'}"
                              f"{' inv' if flags else ''}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--montage", default="", help="write a PNG montage here")
    parser.add_argument("--pairs", type=int, default=24, help="pairs per split for the figures")
    parser.add_argument("--rows", type=int, default=4, help="pairs per split in the montage")
    parser.add_argument("--spacing", type=float, default=2.0, help="working grid (mm): 2 or 4")
    parser.add_argument("--ndim", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shapes-only", action="store_true", help="no registry: random shapes")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    config = LabelPairConfig(ndim=args.ndim)
    if args.shapes_only:
        from .atlases import working_grid

        grid = working_grid(args.spacing)
        bank, grid_arg = [], (grid.shape, grid.spacing)
        config.p_shapes = {"train": 1.0, "val": 1.0}
    else:
        from .atlases import load_label_bank

        bank, grid_arg = load_label_bank(spacing_mm=args.spacing), None
    shown = []
    for split in ("train", "val"):
        sampler = LabelPairSampler(bank, config, split, seed=args.seed, grid=grid_arg)
        start = time.perf_counter()
        batches = [sampler.sample(1) for _ in range(args.pairs)]
        seconds = time.perf_counter() - start
        merged = {k: [] for k in pair_statistics(batches[0])}
        for b in batches:
            for k, v in pair_statistics(b).items():
                merged[k] += v
        print_statistics(merged, split, seconds)
        shown += batches[: args.rows]
    if args.montage:
        montage(shown, args.montage)
        print(f"montage: {args.montage}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
