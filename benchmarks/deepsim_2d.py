"""DeepSim against the baselines trained identically (Czolbe et al. 2021, Table 1), in 2D, on
held-out pairs with a known field, plain and noisy, in one run.

Pairs: slices of synthetic subjects from the held-out ``mni2009c`` label maps (the training
validation split; no model trained on them), one random contrast per pair
(``training.tasks.flownet_roi.mono_contrast``); the moving image and labels are the fixed ones
warped by a random smooth map with affine part (``benchmarks.cases.deformation_pair``), so the
true registration field is known (endpoint error). ``noisy``: the same pairs with Gaussian noise
of ``--noise`` (fraction of the [0, 1] range) on both images.

Methods: ``LABEL=MODEL_FILE`` (a deepsim registration model file or zoo id, run feed-forward),
``identity``, ``zoo:ID`` (any registered method, through the pipeline, refine off), with
config overrides after it: ``zoo:instance_opt:similarity=deepsim`` (``:key=value`` each), or
``peer:NAME`` (a classical peer of ``benchmarks.peers``: ``ants_syn``, ``dipy_syn``,
``elastix``, with its defaults).
Reports per method and version: Dice (coarse labels), fold %, SDlogJ, EPE, wall seconds per
pair; and for every ``--deepsim`` label against every other one, the Wilcoxon signed-rank
p-value and Cohen's d (paired: mean difference over its standard deviation) of the per-pair
Dice and SDlogJ.

    python -m benchmarks.deepsim_2d --methods identity,deepsim_ae=runs/deepsim_ae_2d/\\
best_model.pt,ncc=runs/deepsim_ncc_2d/best_model.pt --deepsim deepsim_ae --pairs 24
    python -m benchmarks.deepsim_2d --methods identity,lncc=zoo:instance_opt,\
ncc=zoo:instance_opt:similarity=ncc,deepsim=zoo:instance_opt:similarity=deepsim --deepsim deepsim
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from benchmarks.cases import deformation_pair
from napari_deepreg import metrics
from napari_deepreg.core import jacobian_determinant, warp_image, warp_labels

PAIR_SEED = 61_000
DEFORM = {"svf_mm": 6.0, "smooth_mm": 12.0, "rotate_deg": 5.0, "scale": 0.05, "shift_mm": 4.0}


def heldout_pairs(count: int, noise: float, seed: int = PAIR_SEED) -> list[dict[str, Any]]:
    """``count`` pairs ``{name, fixed, moving, fixed_labels, moving_labels, true_field, spacing,
    noisy_fixed, noisy_moving}`` (2D numpy arrays, field ``(2, H, W)`` mm)."""
    from napari_deepreg.data.label_pairs import LabelPairConfig
    from napari_deepreg.methods.working_grid import normalise_batch
    from napari_deepreg.training.tasks.flownet_roi import mono_contrast
    from napari_deepreg.training.tasks.label_maps import native_sampler

    sampler = native_sampler("val", 2.0, LabelPairConfig(ndim=2, p_shapes={"val": 0.0}),
                             seed=seed)
    pairs = []
    for i in range(count):
        gen = torch.Generator().manual_seed(seed + i)
        b = sampler.sample(1, gen)
        spacing = tuple(float(s) for s in b["spacing"])
        fine, coarse = b["fixed_fine_labels"], b["fixed_labels"]
        image, _ = mono_contrast(fine, fine, gen)
        fixed = normalise_batch(image)
        u, w, _ = deformation_pair(fixed.shape[2:], spacing, seed + i, **DEFORM)
        moving = warp_image(fixed, u, spacing)
        moving_labels = warp_labels(coarse, u, spacing)
        eps = [noise * torch.randn(fixed.shape, generator=gen) for _ in range(2)]
        pairs.append({
            "name": f"heldout-{i}", "spacing": spacing,
            "fixed": fixed[0, 0].numpy(), "moving": moving[0, 0].numpy(),
            "noisy_fixed": (fixed + eps[0])[0, 0].numpy(),
            "noisy_moving": (moving + eps[1])[0, 0].numpy(),
            "fixed_labels": coarse[0, 0].numpy(), "moving_labels": moving_labels[0, 0].numpy(),
            "true_field": w[0].numpy(),
        })
    return pairs


def register(method: str, source: str, fixed: np.ndarray, moving: np.ndarray,
             spacing: Sequence[float]) -> np.ndarray:
    """The field ``(2, H, W)`` mm of one method on one pair (feed-forward)."""
    if method == "identity":
        return np.zeros((2, *fixed.shape), np.float32)
    if source.startswith("peer:"):
        from benchmarks.peers import PEERS
        from napari_deepreg.volume import Volume

        peer = PEERS[source[5:]]
        if not peer.available():
            raise RuntimeError(f"peer {source[5:]} is not installed")
        return peer.run(Volume(fixed.astype(np.float32), tuple(spacing), (0.0, 0.0)),
                        Volume(moving.astype(np.float32), tuple(spacing), (0.0, 0.0))).field
    if source.startswith("zoo:"):
        from napari_deepreg.pipeline import register as run
        from napari_deepreg.pipeline import run_to_end
        from napari_deepreg.volume import Volume

        def vol(a: np.ndarray) -> Volume:
            return Volume(a.astype(np.float32), tuple(spacing), (0.0, 0.0))

        method, config = method_config(source[4:])
        result = run_to_end(run(vol(fixed), vol(moving), method=method, config=config,
                                device="cpu", hausdorff=False, guard=False))
        return np.asarray(result.field, np.float32)
    from napari_deepreg.methods.deepsim import DeepSimConfig, estimate

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]

    config = DeepSimConfig(model_file=source if source.endswith(".pt") else "", refine=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = estimate(t(fixed), t(moving), spacing, config,
                       model_id=None if source.endswith(".pt") else source)
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            return stop.value.field[0].numpy()


def method_config(text: str) -> tuple[str, dict[str, Any]]:
    """``"ID:key=value:..."`` -> ``(ID, overrides)``; learned methods get ``refine=False``."""
    method, *options = text.split(":")
    config: dict[str, Any] = {} if method == "instance_opt" else {"refine": False}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ValueError(f"method option {option!r} of {text!r} is not key=value")
        config[key.strip()] = value.strip()
    return method, config


def timed_score(pair: dict[str, Any], label: str, source: str, prefix: str) -> dict[str, float]:
    """:func:`score` of one method on one pair (``prefix`` ``noisy_`` for the noisy images),
    with the wall seconds of the registration."""
    start = time.perf_counter()
    field = register(label, source, pair[prefix + "fixed"], pair[prefix + "moving"],
                     pair["spacing"])
    seconds = time.perf_counter() - start
    return {**score(pair, field), "seconds": seconds}


def score(pair: dict[str, Any], field: np.ndarray) -> dict[str, float]:
    """Dice after, fold %, SDlogJ, EPE against the true field (mm)."""
    u = torch.from_numpy(field)[None]
    warped = warp_labels(torch.from_numpy(pair["moving_labels"].astype(np.int64))[None, None],
                         u, pair["spacing"])[0, 0].numpy()
    jac = jacobian_determinant(u, pair["spacing"])[0].numpy()
    brain = pair["fixed_labels"] > 0
    return {"dice": metrics.mean_dice(pair["fixed_labels"], warped),
            "fold_percent": metrics.fold_percent(jac), "sdlogj": metrics.sdlogj(jac, brain),
            "epe_mm": metrics.endpoint_error(field, pair["true_field"], brain)}


def paired_stats(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Wilcoxon signed-rank p (two-sided) and Cohen's d (paired) of ``a - b``."""
    from scipy.stats import wilcoxon

    diff = np.asarray(a, float) - np.asarray(b, float)
    sd = diff.std(ddof=1)
    p = float(wilcoxon(a, b).pvalue) if np.any(diff != 0) else 1.0
    return {"mean_diff": float(diff.mean()), "p": p,
            "cohens_d": float(diff.mean() / sd) if sd > 0 else float("nan")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", required=True, help="comma list: identity, LABEL=FILE, "
                        "LABEL=zoo:ID")
    parser.add_argument("--deepsim", default="deepsim_ae,deepsim_seg",
                        help="the labels compared against every other learned one")
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="JSON file for every pair's figures and the statistics")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = [m.partition("=") for m in args.methods.split(",")]
    pairs = heldout_pairs(args.pairs, args.noise)
    rows: dict[str, dict[str, list[dict[str, float]]]] = {}
    for label, _, source in methods:
        for version in ("plain", "noisy"):
            key = "" if version == "plain" else "noisy_"
            rows.setdefault(label, {})[version] = [
                timed_score(p, label, source or label, key) for p in pairs]
    print(f"{len(pairs)} held-out 2D pairs (mni2009c label maps, known field); noise "
          f"{args.noise}")
    print(f"{'method':<21}{'version':<8}{'dice':>8}{'fold %':>8}{'sdlogj':>8}{'epe mm':>8}"
          f"{'s/pair':>8}")
    for label, versions in rows.items():
        for version, scores in versions.items():
            m = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
            print(f"{label:<21}{version:<8}{m['dice']:8.3f}{m['fold_percent']:8.2f}"
                  f"{m['sdlogj']:8.3f}{m['epe_mm']:8.2f}{m['seconds']:8.2f}")
    stats = {}
    ours = [d for d in args.deepsim.split(",") if d in rows]
    for mine in ours:
        for other in rows:
            if other in ours or other == "identity":
                continue
            for version in ("plain", "noisy"):
                for key in ("dice", "sdlogj"):
                    s = paired_stats([r[key] for r in rows[mine][version]],
                                     [r[key] for r in rows[other][version]])
                    stats[f"{mine} vs {other} {version} {key}"] = s
                    print(f"{mine} vs {other} ({version}, {key}): diff {s['mean_diff']:+.4f}, "
                          f"Wilcoxon p {s['p']:.3g}, Cohen's d {s['cohens_d']:+.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "stats": stats}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
