"""How often does the never-worse guard decide wrongly, label-free? A study of its rule.

Decisions: each 2D zoo model's feed-forward field (and the same field negated, a certainly bad
one) against the identity, on fresh held-out pairs: 2D slices of two synthetic subjects of the
held-out ``mni2009c`` label maps in two random contrasts (``data.label_pairs``, validation
split, seeds :data:`SEED` + i, used by no benchmark) and, with ``--lung``, the real ITK rat
lung pair (``benchmarks.lung_2d``). For each decision the guard's label-free scores (NMI and NGF
of the method and of the identity, ``guard.check`` without labels) are recorded beside the
truth: the mean Dice of the warped labels at native resolution, method against identity.

A rule is judged by its two errors: a *bad keep* (the method's result kept although its Dice
is below the identity's by more than :data:`DICE_TOL`) and a *bad replacement* (the identity
returned although the method's Dice is above it by more than :data:`DICE_TOL`). Rules:

* ``either``: the rule before ``guard.NMI_LEAD``: the identity wins when it beats the method on
  NMI (by more than ``guard.NMI_MARGIN``) or on NGF (by more than ``guard.NGF_MARGIN``);
* ``either, NMI lead T``: the same, but an NGF win is overruled when the method leads on NMI by
  more than T (``guard.wins``; the guard uses T = ``guard.NMI_LEAD``).

    python -m benchmarks.guard_decisions --pairs 40 --lung \
        --out benchmarks/guard_decisions_results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

SEED = 72_000
DICE_TOL = 0.005
MODELS = ("semantic_bspline_2d", "flownet_roi_2d", "flownet_roi_shapes_2d", "deepsim_ae_2d",
          "deepsim_seg_2d", "suits_2d")
LEADS = (0.01, 0.02, 0.03, 0.05)


def held_out_pairs(count: int) -> list[dict[str, Any]]:
    """``count`` 2D validation-split pairs ``{name, fixed, moving, fixed_labels, moving_labels,
    spacing}`` (numpy, images in [0, 1])."""
    from napari_deepreg.data.label_pairs import LabelPairConfig
    from napari_deepreg.methods.working_grid import normalise_batch
    from napari_deepreg.training.tasks.label_maps import native_sampler

    sampler = native_sampler("val", 2.0, LabelPairConfig(ndim=2, p_shapes={"val": 0.0}),
                             seed=SEED)
    out = []
    for i in range(count):
        b = sampler.sample(1, torch.Generator().manual_seed(SEED + i))
        out.append({"name": f"labelmap-{i}", "spacing": tuple(float(s) for s in b["spacing"]),
                    "fixed": normalise_batch(b["fixed"])[0, 0].numpy(),
                    "moving": normalise_batch(b["moving"])[0, 0].numpy(),
                    "fixed_labels": b["fixed_labels"][0, 0].numpy(),
                    "moving_labels": b["moving_labels"][0, 0].numpy()})
    return out


def lung_pair() -> dict[str, Any]:
    from benchmarks.lung_2d import lung_cases
    from napari_deepreg.pipeline import normalise_intensity

    case = lung_cases()[0]
    return {"name": case.name, "spacing": tuple(case.spacing),
            "fixed": normalise_intensity(case.fixed.array),
            "moving": normalise_intensity(case.moving.array),
            "fixed_labels": case.fixed_labels, "moving_labels": case.moving_labels}


def decisions(pair: dict[str, Any], models: Sequence[str]) -> list[dict[str, Any]]:
    """One record per (model, sign): the guard's scores and the true Dice of both results."""
    from napari_deepreg import guard, metrics
    from napari_deepreg.core import warp_labels
    from napari_deepreg.methods import get_method
    from napari_deepreg.methods.base import Estimate
    from napari_deepreg.pipeline import run_to_end

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]

    fixed, moving, spacing = t(pair["fixed"]), t(pair["moving"]), pair["spacing"]
    moving_labels = torch.from_numpy(pair["moving_labels"].astype(np.int64))[None, None]

    def dice(field: torch.Tensor) -> float:
        warped = warp_labels(moving_labels, field, spacing)[0, 0].numpy()
        return metrics.mean_dice(pair["fixed_labels"], warped)

    before = dice(torch.zeros(1, 2, *fixed.shape[2:]))
    out = []
    for model in models:
        spec = get_method(model)
        estimate = run_to_end(spec.estimate(fixed, moving, spacing,
                                            spec.make_config({"refine": False}), "cpu"))
        for sign in (1, -1):
            field = sign * estimate.field
            verdict = guard.check(Estimate(field=field), fixed, moving, spacing)
            out.append({"pair": pair["name"], "model": model, "negated": sign < 0,
                        "dice_method": dice(field), "dice_identity": before,
                        **{f"{k}_{c}": verdict.scores[c][k] for c in ("method", "identity")
                           for k in ("nmi", "ngf")}})
    return out


def replaced(record: dict[str, Any], lead: float | None) -> bool:
    """Whether the guard's rule (``guard.wins``) returns the identity, with ``lead`` as its NMI
    lead (None: no overruling, the rule before ``guard.NMI_LEAD``)."""
    from napari_deepreg import guard

    def scores(c: str) -> dict[str, float]:
        return {k: record[f"{k}_{c}"] for k in ("nmi", "ngf")}

    return bool(guard.wins(scores("method"), scores("identity"),
                           nmi_lead=float("inf") if lead is None else lead))


def errors(records: Sequence[dict[str, Any]], lead: float | None) -> dict[str, Any]:
    bad_keep, bad_replace = [], []
    for r in records:
        gain = r["dice_method"] - r["dice_identity"]
        swap = replaced(r, lead)
        if not swap and gain < -DICE_TOL:
            bad_keep.append(r)
        if swap and gain > DICE_TOL:
            bad_replace.append(r)
    return {"decisions": len(records), "bad_keeps": len(bad_keep),
            "bad_replacements": len(bad_replace),
            "worst_keep_dice": min((r["dice_method"] - r["dice_identity"] for r in bad_keep),
                                   default=0.0),
            "lost_dice": sum(r["dice_method"] - r["dice_identity"] for r in bad_replace)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.guard_decisions",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--lung", action="store_true", help="add the real rat lung pair")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="JSON of every decision and the rules' errors")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    pairs = held_out_pairs(args.pairs) + ([lung_pair()] if args.lung else [])
    records = [r for p in pairs for r in decisions(p, MODELS)]
    groups = {"brain label-map pairs": [r for r in records if r["pair"] != "lung_real"],
              "lung pair": [r for r in records if r["pair"] == "lung_real"]}
    table = {}
    print("| rule | pairs | decisions | bad keeps | worst kept Dice loss | bad replacements "
          "| Dice lost to them |")
    print("|---|---|---|---|---|---|---|")
    for lead in (None, *LEADS):
        rule = "either" if lead is None else f"either, NMI lead {lead:g}"
        for group, rs in groups.items():
            if not rs:
                continue
            e = errors(rs, lead)
            table[f"{rule} | {group}"] = e
            print(f"| {rule} | {group} | {e['decisions']} | {e['bad_keeps']} | "
                  f"{e['worst_keep_dice']:.3f} | {e['bad_replacements']} | {e['lost_dice']:.3f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "errors": table, "records": records}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
