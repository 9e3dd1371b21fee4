"""λ per similarity on validation (Czolbe et al. 2021, Figure 3 protocol), 2D.

Every similarity (DeepSim-ae, DeepSim-seg and the baselines MSE, NCC, NCC + supervised Dice) is
trained exactly as its ``configs/deepsim_*_2d.yaml`` says, once per diffusion weight λ of the
grid, into ``runs/lam_<similarity>_<λ>``; each run's validation (held-out mni2009c slice pairs,
the trainer's own) gives its best Dice. The rule, fixed before the figures were seen: the λ of
the best validation Dice, except that a larger λ within :data:`TIE` of it wins (the smoother
field); when the pick is at the low end of the grid, the grid is extended downwards
(:data:`EXTRA`) and the rule applied again. The test pairs of ``benchmarks.deepsim_2d`` are
other pairs (other seeds) and take no part in the choice.

    python -m benchmarks.deepsim_lambda --train     # the missing runs (about 6 min each, 1 core)
    python -m benchmarks.deepsim_lambda --out benchmarks/deepsim_lambda_results.json

The extractors come from ``configs/deepsim_{ae,seg}_extractor_2d.yaml`` (``runs/``) first.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SIMILARITIES = ("deepsim_ae", "deepsim_seg", "mse", "ncc", "ncc_sup")
GRID = (0.1, 0.5, 2.0)
#: extensions below the grid, per similarity, for picks at its low end
EXTRA = {"deepsim_seg": (0.02,), "mse": (0.02, 0.004), "ncc_sup": (0.02,)}
TIE = 0.005


def config_file(similarity: str) -> str:
    return f"configs/deepsim_{similarity.removeprefix('deepsim_')}_2d.yaml"


def run_dir(runs: Path, similarity: str, lam: float) -> Path:
    return runs / f"lam_{similarity}_{lam}"


def best_validation(run: Path) -> dict[str, float] | None:
    """The validation row with the best ``val_dice`` of a finished run (None if absent or
    still training: a finished run has its ``model.pt``)."""
    log = run / "log.csv"
    if not log.is_file() or not (run / "model.pt").is_file():
        return None
    rows = [r for r in csv.DictReader(log.open()) if r.get("val_dice")]
    if not rows:
        return None
    best = max(rows, key=lambda r: float(r["val_dice"]))
    keys = ("step", "val_dice", "val_dice_before", "val_fold_percent", "val_train_dice")
    return {k: float(best[k]) for k in keys if best.get(k)}


def pick(figures: dict[float, dict[str, float]]) -> float:
    """The rule: best validation Dice; a larger λ within :data:`TIE` of it wins."""
    top = max(f["val_dice"] for f in figures.values())
    return max(lam for lam, f in figures.items() if f["val_dice"] >= top - TIE)


def train(runs: Path, similarity: str, lam: float) -> None:
    subprocess.run(["napari-deepreg", "train", "deepsim", "--config", config_file(similarity),
                    "--threads", "1", "--out", str(run_dir(runs, similarity, lam)),
                    "--set", f"method.lambda_diffusion={lam:g}",
                    "--set", "train.val_every=200"], check=True)


def sweep(runs: Path, do_train: bool) -> dict[str, Any]:
    """Per similarity: every λ's best validation figures and the picked λ."""
    out: dict[str, Any] = {}
    for similarity in SIMILARITIES:
        grid = list(GRID)
        figures: dict[float, dict[str, float]] = {}
        while True:
            for lam in grid:
                if lam in figures:
                    continue
                found = best_validation(run_dir(runs, similarity, lam))
                if found is None and do_train:
                    train(runs, similarity, lam)
                    found = best_validation(run_dir(runs, similarity, lam))
                if found is not None:
                    figures[lam] = found
            if not figures:
                break
            chosen = pick(figures)
            lower = [x for x in EXTRA.get(similarity, ()) if x not in grid]
            if chosen != min(grid) or not lower:
                break
            grid.append(lower[0])
        if figures:
            out[similarity] = {"lambda": pick(figures),
                               "runs": {str(lam): f for lam, f in sorted(figures.items())}}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deepsim_lambda",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--train", action="store_true", help="train the runs that are missing")
    parser.add_argument("--out", type=Path, help="JSON of every run's figures and the picks")
    args = parser.parse_args(argv)
    result = sweep(args.runs, args.train)
    print("| similarity | " + " | ".join(f"λ {lam:g}" for lam in sorted(
        {float(k) for r in result.values() for k in r["runs"]})) + " | picked λ |")
    lams = sorted({float(k) for r in result.values() for k in r["runs"]})
    print("|---|" + "---|" * (len(lams) + 1))
    for similarity, r in result.items():
        cells = []
        for lam in lams:
            f = r["runs"].get(str(lam))
            cells.append("" if f is None else
                         f"{f['val_dice']:.3f} ({f.get('val_fold_percent', 0):.2f} %)")
        print(f"| {similarity} | " + " | ".join(cells) + f" | {r['lambda']:g} |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
