"""The ablation of Ha et al. (2020) on our data, in one run: two-step vs single-step, semantic
guidance vs none, addition vs composition of the two fields.

    python -m benchmarks.ablation_semantic_bspline                 # evaluate the trained variants
    python -m benchmarks.ablation_semantic_bspline --train         # train the missing ones first
    python -m benchmarks.ablation_semantic_bspline --list          # variants and their commands

Every variant is the 2D model of ``configs/semantic_bspline_2d.yaml`` trained with the same
recipe (1600 Adam steps at the paper's learning rate 1e-3, batch 4, seed 0) and one setting
changed; the single-step variant has one registration network with wider layers, so that it has
the same number of parameters as the two networks of the two-step model (639k against 640k).
Each variant's final weights (``model.pt``, step 1600) are measured, not the best validation
checkpoint, so no variant is picked on its validation pairs. 2D, because each 3D variant costs
hours of CPU training here; the 3D model uses the settings this ablation picks.

The variants run through :func:`benchmarks.run.run_benchmark` like any benchmark method (the
package pipeline, the same field measurements) on two sets of cases:

- ``held-out pairs``: synthetic pairs from MNI 2009a, the anatomy kept out of training (random
  slices, deformations and affines drawn like the training pairs, fixed seeds), with the true
  field for the endpoint error;
- ``2d-slices``: the benchmark's 2D slice cases (other anatomies and label sets, contrast
  changed).

Outputs under ``--out`` (default ``results/ablation/semantic_bspline``): ``table.md`` (the
ablation table, then the benchmark report of every case), ``results.json``, plots.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import report
from benchmarks.cases import BenchCase, suite_cases
from benchmarks.run import Method, limit_threads, run_benchmark

CONFIG = "configs/semantic_bspline_2d.yaml"
RUNS = Path("runs/ablation")
DEFAULT_OUT = Path("results/ablation/semantic_bspline")
RECIPE = ("--steps", "1600", "--set", "train.val_every=400", "--set",
          "train.checkpoint_every=400")
LONG = ("--steps", "4000", "--set", "train.lr_schedule=cosine", "--set", "train.min_lr_ratio=0.02")
LARGE = ("method.svf_magnitude_mm=[8,20]", "method.rotation_deg=15", "method.translation_mm=15",
         "method.scale=0.1")
HELD_OUT = "mni2009a"
PAIR_SEED = 900_000  # other seeds than the training (0..) and validation pairs


@dataclasses.dataclass(frozen=True)
class Variant:
    """One trained model of the ablation: its run folder name, what differs, the overrides."""

    name: str
    description: str
    overrides: tuple[str, ...] = ()
    recipe: tuple[str, ...] = RECIPE
    folder: str = ""  # run folder when not runs/ablation/<name>

    @property
    def run_dir(self) -> Path:
        return Path(self.folder) if self.folder else RUNS / self.name

    @property
    def model_file(self) -> Path:
        return self.run_dir / "model.pt"

    def train_command(self) -> list[str]:
        sets = [x for o in self.overrides for x in ("--set", o)]
        return ["napari-deepreg", "train", "semantic_bspline", "--config", CONFIG,
                "--out", str(self.run_dir), *sets, *self.recipe]


VARIANTS: tuple[Variant, ...] = (
    Variant("two_step_add", "two-step, guided (lambda_s 1), fields added (the paper's model)"),
    Variant("two_step_compose", "two-step, guided, fields composed",
            ("method.combine=compose",)),
    Variant("single_step", "single-step (one RegNet, stride 3, same parameter count), guided",
            ("method.strides=[3]", "method.regnet_channels=[23,46,91,135]")),
    Variant("no_guidance", "two-step, added, no semantic loss (lambda_s 0)",
            ("method.lambda_semantic=0",)),
    Variant("guidance_0.1", "two-step, added, weak semantic loss (lambda_s 0.1)",
            ("method.lambda_semantic=0.1",)),
    Variant("two_step_add_seed1", "as two_step_add, training seed 1", ("train.seed=1",)),
    Variant("no_guidance_seed1", "as no_guidance, training seed 1",
            ("method.lambda_semantic=0", "train.seed=1")),
    # the same question after longer training (4000 steps, cosine decay to 2 % of the rate)
    Variant("guided_4000", "two_step_add trained 4000 steps (the semantic_bspline_2d run)",
            (), LONG, "runs/semantic_bspline_2d"),
    Variant("no_guidance_4000", "no_guidance trained 4000 steps",
            ("method.lambda_semantic=0",), LONG, "runs/semantic_bspline_2d_noguide"),
    # the paper credits guidance with the large deformations: the same pair with twice the
    # deformation (SVF peak 8-20 mm, rotations to 15 deg, shifts to 15 mm, scale +-10 %);
    # evaluate them apart (--variants large_guided,large_no_guidance) so that the held-out
    # pairs follow their recipe
    Variant("large_guided", "two_step_add on large deformations", LARGE),
    Variant("large_no_guidance", "no_guidance on large deformations",
            (*LARGE, "method.lambda_semantic=0")),
)


def held_out_pairs(model_file: str | Path, count: int) -> list[BenchCase]:
    """``count`` synthetic 2D pairs from :data:`HELD_OUT` drawn with the model's pair recipe
    (working grid, deformation and affine ranges, same contrast), as benchmark cases."""
    from napari_deepreg.data.anatomy import load_anatomy
    from napari_deepreg.data.pairs import PairSampler
    from napari_deepreg.training.task import load_trained_model
    from napari_deepreg.training.tasks.semantic_bspline import SemanticBSplineTask
    from napari_deepreg.volume import Volume

    _, config = load_trained_model(str(model_file))
    task = SemanticBSplineTask(config)
    sampler = PairSampler([load_anatomy(HELD_OUT)], task._pair_config("same"), seed=0)
    cases = []
    for i in range(count):
        batch = sampler.sample(1, torch.Generator().manual_seed(PAIR_SEED + i))
        spacing = tuple(float(s) for s in batch["spacing"])
        fixed_labels = batch["fixed_labels"][0, 0].numpy().astype(np.int32)
        cases.append(BenchCase(
            name=f"{HELD_OUT}_pair{i:02d}", group="held-out pairs",
            fixed=Volume(batch["fixed"][0, 0].numpy(), spacing, name="fixed"),
            moving=Volume(batch["moving"][0, 0].numpy(), spacing, name="moving"),
            fixed_labels=fixed_labels,
            moving_labels=batch["moving_labels"][0, 0].numpy().astype(np.int32),
            true_field=batch["field"][0].numpy().astype(np.float32),
            mask=fixed_labels > 0,
            description=f"synthetic slice pair {i} from {HELD_OUT} (held out of training)",
        ))
    return cases


def parameter_count(model_file: str | Path) -> int:
    from napari_deepreg.training.task import load_trained_model

    model, _ = load_trained_model(str(model_file))
    return sum(p.numel() for p in model.parameters())


def ablation_table(results: dict[str, Any], variants: Sequence[Variant],
                   params: dict[str, int]) -> str:
    """One row per variant: parameters, then Dice / EPE / folds / SDlogJ per case set."""
    groups = [g for g in ("held-out pairs", "2d-slices") if g in report.groups_in(results)]
    header = ["variant", "what differs", "params"]
    for group in groups:
        header += [f"Dice ({group})", f"EPE mm ({group})"]
    header += ["fold %", "SDlogJ"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|"]
    rows = results["rows"]
    before = {g: report.summarise([r for r in rows if r["group"] == g], ["identity"])
              for g in groups}
    cells = ["identity", "no registration", "-"]
    for group in groups:
        b = before[group][0] if before[group] else {}
        cells += [f"{b.get('dice_after', float('nan')):.3f}",
                  f"{b.get('epe_mm', float('nan')):.2f}"]
    lines.append("| " + " | ".join(cells + ["-", "-"]) + " |")
    for variant in variants:
        cells = [variant.name, variant.description, f"{params[variant.name] / 1e3:.0f}k"]
        mine_all = [r for r in rows if r["method"] == variant.name]
        for group in groups:
            s = report.summarise([r for r in mine_all if r["group"] == group], [variant.name])
            s = s[0] if s else {}
            cells += [f"{s.get('dice_after', float('nan')):.3f}",
                      f"{s.get('epe_mm', float('nan')):.2f}"]
        s = report.summarise(mine_all, [variant.name])[0]
        cells += [f"{s['fold_percent']:.3f}", f"{s['sdlogj']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_ablation(variants: Sequence[Variant] = VARIANTS, pairs: int = 24,
                 out: str | Path = DEFAULT_OUT, slices: bool = True, device: str = "cpu",
                 cases: Sequence[BenchCase] | None = None) -> dict[str, Any]:
    """Evaluate the trained ``variants``; writes ``out/table.md`` and returns the results.

    ``cases`` replaces the held-out pairs (``pairs`` of them by default)."""
    missing = [v for v in variants if not v.model_file.is_file()]
    if missing:
        raise FileNotFoundError(
            "not trained yet: " + "; ".join(
                f"{v.name} ({shlex.join(v.train_command())})" for v in missing)
            + " - or run with --train")
    out = Path(out)
    methods = [Method(v.name, "zoo", "semantic_bspline_2d", {"model_file": str(v.model_file)},
                      dims=(2,)) for v in variants]
    methods.insert(0, Method("identity", "pipeline", "identity"))
    if cases is None:
        cases = held_out_pairs(variants[0].model_file, pairs)
    names = [n for n in suite_cases("full") if n.startswith("slice_")] if slices else []
    command = shlex.join(["python", "-m", "benchmarks.ablation_semantic_bspline",
                          *sys.argv[1:]])
    results = run_benchmark(names, methods, out=out.parent, suite=out.name, device=device,
                            cache=Path("results/bench/cases"), cases=cases, command=command)
    params = {v.name: parameter_count(v.model_file) for v in variants}
    table = ablation_table(results, variants, params)
    text = "\n".join([
        "# Ablation of the semantic B-spline networks (Ha et al. 2020) on our data", "",
        f"Command: `{command}`", "",
        "Mean over the cases of each set; fold % and SDlogJ over all cases. Each variant: "
        f"`{CONFIG}` trained 1600 steps with one change (`--list` prints the commands).", "",
        table, "", (out / "table.md").read_text(),
    ])
    (out / "table.md").write_text(text)
    print(table)
    return results


def train_missing(variants: Sequence[Variant]) -> None:
    for variant in variants:
        if not variant.model_file.is_file():
            print("training:", shlex.join(variant.train_command()), flush=True)
            subprocess.run([sys.executable, "-m", "napari_deepreg.cli",
                            *variant.train_command()[1:]], check=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablation_semantic_bspline",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=24, help="held-out synthetic pairs")
    parser.add_argument("--variants", default="", help="comma-separated subset (default all)")
    parser.add_argument("--no-slices", action="store_true", help="skip the benchmark's slices")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--train", action="store_true", help="train missing variants first")
    parser.add_argument("--list", action="store_true", help="print variants and commands")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    chosen = [v for v in VARIANTS if not args.variants or v.name in args.variants.split(",")]
    if args.list:
        for v in chosen:
            print(f"{v.name}: {v.description}\n    {shlex.join(v.train_command())}")
        return 0
    limit_threads(args.threads)
    if args.train:
        train_missing(chosen)
    try:
        run_ablation(chosen, args.pairs, args.out, not args.no_slices)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
