"""Sweep a few instance-optimisation settings on the 3D sample pair; print Dice / folds / time.

    .venv/bin/python benchmarks/tune_instance_opt.py                 # the default sweep
    .venv/bin/python benchmarks/tune_instance_opt.py --only default  # one named setting
    .venv/bin/python benchmarks/tune_instance_opt.py --threads 2 --sample brain2d

The defaults in ``InstanceOptConfig`` were measured on the DKT-label build of the sample (94
structures; local use only, see sample_data/README.md)::

    .venv/bin/python sample_data/build_sample_data.py --labels dkt --out /tmp/dkt_sample
    NAPARI_DEEPREG_SAMPLE_DATA=/tmp/dkt_sample .venv/bin/python benchmarks/tune_instance_opt.py \
        --threads 1

Each setting runs through :func:`napari_deepreg.pipeline.register` exactly as the GUI and the CLI
run it (resampling, native-resolution warp, metrics), so the time printed is the user's wait;
the CPU time (all threads) is printed too, as it is steadier on a shared machine.
Endpoint error is measured against the pair's true field inside the brain (fixed labels > 0).
Without the bundled sample (``sample_data/``) a synthetic pair is used: smooth random blobs with
labels from quantised intensities, warped by a known smooth field.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time

import numpy as np
import torch

from napari_deepreg.methods.instance_opt import InstanceOptConfig
from napari_deepreg.pipeline import register, run_to_end
from napari_deepreg.volume import InputError, Volume

# name -> overrides of InstanceOptConfig (the default config is "default")
SETTINGS: dict[str, dict] = {
    "default": {},
    "no_affine": {"affine_first": False},
    "reg0.1": {"regularisation": 0.1},
    "reg1": {"regularisation": 1.0},
    "reg3": {"regularisation": 3.0},
    "it10": {"iterations": 10},
    "it40": {"iterations": 40},
    "lr0.25": {"learning_rate": 0.25},
    "lr1": {"learning_rate": 1.0},
    "cps6": {"control_spacing": 6.0},
    "cps14": {"control_spacing": 14.0},
    "lncc_w5": {"lncc_window": 5},
    "lncc_w9": {"lncc_window": 9},
    "levels2": {"levels": 2},
    "ws64": {"max_working_size": 64},
    "mse": {"similarity": "mse"},
    "ncc": {"similarity": "ncc"},
    "mind": {"similarity": "mind_ssc"},
    "dense": {"transform": "dense"},
}


def synthetic_pair(seed: int = 0) -> dict:
    """A stand-in for the brain sample: 64x72x60 blobs at 2 mm, 6 intensity-band labels."""
    from napari_deepreg.core import gaussian_smooth, warp_image, warp_labels, world_grid

    shape, spacing = (64, 72, 60), (2.0, 2.0, 2.0)
    g = torch.Generator().manual_seed(seed)
    img = gaussian_smooth(torch.rand(1, 1, *shape, generator=g), 2.5)
    img = (img - img.min()) / (img.max() - img.min())
    labels = torch.bucketize(img, torch.tensor([0.3, 0.4, 0.5, 0.6, 0.7])).to(torch.int32)
    x = world_grid(shape, spacing)
    extent = [(n - 1) * s for n, s in zip(shape, spacing, strict=True)]
    u = torch.stack(
        [
            4.0 * torch.sin(2 * math.pi * x[(i + 1) % 3] / extent[(i + 1) % 3])
            * torch.cos(math.pi * x[i] / extent[i])
            for i in range(3)
        ]
    )[None]
    moving = warp_image(img, -u, spacing)
    moving_labels = warp_labels(labels, -u, spacing)
    vol = lambda a, n: Volume(a[0, 0].numpy(), spacing, name=n)  # noqa: E731
    return {
        "fixed": vol(img, "fixed"),
        "moving": vol(moving, "moving"),
        "fixed_labels": vol(labels, "fixed labels"),
        "moving_labels": vol(moving_labels, "moving labels"),
        "field": u[0].numpy(),
        "name": "synthetic blobs 64x72x60 @ 2 mm",
    }


def load_pair(name: str) -> dict:
    try:
        from napari_deepreg.sample import load_sample

        pair = load_sample(name)
        pair["name"] = f"sample {name} {pair['fixed'].shape} @ {pair['fixed'].spacing} mm"
        return pair
    except (ImportError, InputError) as err:
        print(f"[sample {name!r} unavailable: {err}]; using a synthetic pair", file=sys.stderr)
        return synthetic_pair()


def run_one(pair: dict, overrides: dict) -> dict:
    cfg = dataclasses.replace(InstanceOptConfig(), **overrides)
    start, cpu = time.perf_counter(), time.process_time()
    result = run_to_end(
        register(
            pair["fixed"],
            pair["moving"],
            "instance_opt",
            cfg,
            fixed_labels=pair.get("fixed_labels"),
            moving_labels=pair.get("moving_labels"),
            device="cpu",
            hausdorff=False,
        )
    )
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    row = {
        "dice_before": result.metrics.get("dice_before", float("nan")),
        "dice_after": result.metrics.get("dice_after", float("nan")),
        "fold_percent": result.metrics["fold_percent"],
        "sdlogj": result.metrics["sdlogj"],
        "time_s": wall,
        "cpu_s": cpu,
    }
    truth = pair.get("field")
    if truth is not None:
        labels = pair.get("fixed_labels")
        inside = (
            labels.array > 0 if labels is not None else np.ones(truth.shape[1:], dtype=bool)
        )
        err = np.linalg.norm(result.field - truth, axis=0)[inside]
        row["epe_before"] = float(np.linalg.norm(truth, axis=0)[inside].mean())
        row["epe_after"] = float(err.mean())
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default="brain3d", help="brain3d (default) or brain2d")
    parser.add_argument("--only", nargs="*", help=f"settings to run, from {sorted(SETTINGS)}")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="NAME=VALUE",
        help="extra overrides applied to every setting, e.g. iterations=40",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    extra = {}
    types = {f.name: f.type for f in dataclasses.fields(InstanceOptConfig)}
    for item in args.set:
        key, value = item.split("=", 1)
        kind = types[key]
        extra[key] = {"int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true")}.get(
            kind, str
        )(value)
    pair = load_pair(args.sample)
    names = args.only or list(SETTINGS)
    print(f"{pair['name']}; torch threads {torch.get_num_threads()}; extra {extra}")
    header = f"{'setting':<12}{'dice0':>8}{'dice':>8}{'fold%':>8}{'sdlogj':>8}{'epe0':>7}{'epe':>7}"
    print(header + f"{'time s':>8}{'cpu s':>8}")
    for name in names:
        row = run_one(pair, {**SETTINGS[name], **extra})
        print(
            f"{name:<12}{row['dice_before']:8.3f}{row['dice_after']:8.3f}"
            f"{row['fold_percent']:8.3f}{row['sdlogj']:8.3f}"
            f"{row.get('epe_before', float('nan')):7.2f}{row.get('epe_after', float('nan')):7.2f}"
            f"{row['time_s']:8.1f}{row['cpu_s']:8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
