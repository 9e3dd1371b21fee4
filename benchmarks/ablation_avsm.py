"""The AVSM ablation (Shen et al. 2019, Table 2, Figs. 8 and 10) on our data, in one command.

    python -m benchmarks.ablation_avsm --pairs 12
    python -m benchmarks.ablation_avsm --pairs 12 --run affine5=runs/other/best_model.pt

It evaluates the trained runs of ``configs/avsm_*.yaml`` on the same held-out pairs and writes
``results/ablation/avsm/table.md`` and ``results.json`` (and prints the table):

1. multi-step vs single-step affine: the multi-step net (``affine5``, trained with 5 steps) and
   the single-step one it started from (``affine1``), each tested with 1, 3, 5 and 7 steps;
2. mk-LNCC vs NCC: ``affine1`` vs ``affine1_ncc`` (single-step, same seeds);
3. the affine symmetry loss: ``affine1`` vs ``affine1_nosym`` (lambda_as = 0), with the paper's
   inverse-consistency error ``ln(mean |Phi^-1 o (Phi^ts)^-1 - id|^2)``;
4. affine alone vs + vSVF, and Dice / folds against the number of vSVF steps at test
   (``vsvf``, 0 to 4 steps after 7 affine steps; 0 is its frozen affine net alone).

The figures come from :func:`napari_deepreg.training.tasks.avsm.evaluate_steps`: pairs drawn
like the training runs' validation pairs (held-out random deformations of the validation templates,
MNI 2009c and CAT12, on each model's working grid) but from other seeds (``--seed`` + i),
the same pairs for every model (checked: the Dice before registration must agree). Per pair,
both directions are registered; Dice is the mean over the tissue labels of the moving labels
warped by the map, EPE the mean endpoint error (mm) against the true map inside the fixed
brain, fold % the share of voxels with a Jacobian determinant <= 0, ``ln ICE`` the
inverse-consistency error above in the unit-extent frame (2 voxels in from the border).
Comparisons 2, 3 and 5 also count pair by pair how often one run beats the other.

Runs trained for different numbers of steps are not compared at equal training: the table
therefore also gives, for each pair of runs it compares, the runs' own validation figures at
the last step both reached (``log.csv``: same 8 validation pairs, same seeds).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("results/ablation/avsm")


@dataclass(frozen=True)
class RunSpec:
    """One trained run the ablation needs: where it lives by default and how it is made."""

    key: str
    folder: str
    config: str
    what: str

    @property
    def command(self) -> str:
        return f"napari-deepreg train avsm --config {self.config}"


RUNS: dict[str, RunSpec] = {s.key: s for s in (
    RunSpec("affine1", "runs/avsm_affine1_3d", "configs/avsm_affine1_3d.yaml",
            "single-step affine, mk-LNCC, symmetry loss"),
    RunSpec("affine5", "runs/avsm_affine5_3d", "configs/avsm_affine5_3d.yaml",
            "multi-step affine (5 steps, from affine1), mk-LNCC, symmetry loss"),
    RunSpec("affine1_ncc", "runs/avsm_affine1_ncc_3d", "configs/avsm_affine1_ncc_3d.yaml",
            "single-step affine, global NCC"),
    RunSpec("affine1_nosym", "runs/avsm_affine1_nosym_3d", "configs/avsm_affine1_nosym_3d.yaml",
            "single-step affine, no affine symmetry loss"),
    RunSpec("vsvf", "runs/avsm_vsvf_3d", "configs/avsm_vsvf_3d.yaml",
            "vSVF momentum net on the frozen multi-step affine net"),
    RunSpec("vsvf_nosym", "runs/avsm_vsvf_nosym_3d", "configs/avsm_vsvf_nosym_3d.yaml",
            "the same vSVF run without its symmetry loss (lambda_vs = 0)"),
)}
AFFINE_KEYS = ("affine1", "affine5", "affine1_ncc", "affine1_nosym")
# (title, the runs compared, what the paper claims, whether the runs start alike so that their
# training logs compare at equal steps; the multi-step run starts from the single-step one)
COMPARISONS = (
    ("multi-step vs single-step affine", ("affine1", "affine5"),
     "multi-step training and testing raises Dice (Af-Multi; Fig. 10: saturates with steps)",
     False),
    ("mk-LNCC vs NCC", ("affine1", "affine1_ncc"), "mk-LNCC beats NCC (Af-MK)", True),
    ("affine symmetry loss", ("affine1", "affine1_nosym"),
     "the symmetry loss lowers the inverse-consistency error (Af-Sym)", True),
    ("vSVF symmetry loss", ("vsvf", "vsvf_nosym"),
     "the vSVF symmetry loss lowers the inverse-consistency error (vSVF-Sym)", True),
)
FIGURES = ("dice", "epe", "fold_percent", "ice_log")
LOG_FIGURES = {"val_dice": "dice", "val_epe": "epe", "val_fold_percent": "fold_percent",
               "val_ice_log": "ice_log"}

Evaluate = Callable[..., list[dict[str, float]]]


class MissingRun(FileNotFoundError):
    """A run the ablation needs has no model file; the message names the training command."""


# ----------------------------------------------------------------------------------------------
# the runs


def model_file(key: str, source: str | os.PathLike) -> Path:
    """The model file of run ``key``: ``source`` itself if it is a ``.pt`` file, else
    ``source/best_model.pt``.

    Raises:
        MissingRun: neither exists (the message says which config trains it).
    """
    path = Path(source)
    if path.suffix == ".pt" and path.is_file():
        return path
    best = path / "best_model.pt"
    if best.is_file():
        return best
    spec = RUNS.get(key)
    how = (f"train it with `{spec.command}`" + (f" (its out_dir is {spec.folder})"
                                                if spec.folder != str(source) else "")
           if spec else "give a run folder or a model file")
    raise MissingRun(f"{key}: no trained model at {path} (no best_model.pt); {how}")


def read_log(folder: Path) -> list[dict[str, float]]:
    """The validation rows of a run's ``log.csv`` (those with ``val_dice``), as numbers."""
    path = folder / "log.csv"
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("val_dice"):
                rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows


def run_info(key: str, source: str | os.PathLike) -> dict[str, Any]:
    """What the table says about a run: its model file, how it was trained (``config.json``),
    the steps it ran (``log.csv``) and the step its model is from (the model file's own
    record; a stale ``train.log`` of an earlier, resumed launch could say otherwise)."""
    model = model_file(key, source)
    folder = model.parent
    info: dict[str, Any] = {"key": key, "model": str(model), "folder": str(folder)}
    config_path = folder / "config.json"
    if config_path.is_file():
        saved = json.loads(config_path.read_text())
        method = saved.get("method_config", {})
        info["command"] = saved.get("command")
        info.update({k: method.get(k) for k in ("stage", "similarity", "lambda_as",
                                                "affine_steps", "vsvf_steps", "init_from")})
    log = read_log(folder)
    if log:
        info["steps_trained"] = int(max(r["step"] for r in log))
    from napari_deepreg.zoo import read_model_file

    step = read_model_file(model)["meta"].get("step")
    if step is not None:
        info["best_step"] = int(step)
    return info


def log_at_common_step(folders: Sequence[str | os.PathLike]) -> dict[str, Any] | None:
    """Validation figures of several runs at the last step all of them logged (None if none):
    ``{"step": n, "rows": [{dice, epe, fold_percent, ice_log, dice_before} per run]}``."""
    logs = [{int(r["step"]): r for r in read_log(Path(f))} for f in folders]
    common = set.intersection(*(set(log) for log in logs)) if logs else set()
    if not common:
        return None
    step = max(common)
    rows = []
    for log in logs:
        row = log[step]
        rows.append({name: row.get(column, math.nan) for column, name in LOG_FIGURES.items()}
                    | {"dice_before": row.get("val_dice_before", math.nan)})
    return {"step": step, "rows": rows}


# ----------------------------------------------------------------------------------------------
# the evaluation


def run_ablation(
    runs: Mapping[str, str | os.PathLike] | None = None,
    pairs: int = 12,
    seed: int = 10_000,
    affine_steps: Sequence[int] = (1, 3, 5, 7),
    vsvf_steps: Sequence[int] = (0, 1, 2, 3, 4),
    vsvf_affine_steps: int = 7,
    evaluate: Evaluate | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate the runs and return the results (as in ``results.json``).

    Args:
        runs: run key (:data:`RUNS`) -> run folder or model file; missing keys take the default
            folders. A run without a model is listed in ``missing`` with its training command
            and the sections that need it are left out.
        pairs, seed: test pairs ``seed .. seed + pairs - 1`` (the same for every run).
        affine_steps: test steps of the affine runs. vsvf_steps: vSVF steps of the vSVF run,
            after ``vsvf_affine_steps`` affine steps.
        evaluate: :func:`napari_deepreg.training.tasks.avsm.evaluate_steps` (replaceable in tests).
    """
    if evaluate is None:
        from napari_deepreg.training.tasks.avsm import evaluate_steps as evaluate
    sources = {key: spec.folder for key, spec in RUNS.items()} | dict(runs or {})
    infos: dict[str, dict[str, Any]] = {}
    missing: dict[str, str] = {}
    for key in RUNS:
        try:
            infos[key] = run_info(key, sources[key])
        except MissingRun as error:
            missing[key] = str(error)
            log(f"missing run: {error}")
    evaluations: dict[str, list[dict[str, float]]] = {}
    for key, info in infos.items():
        a_steps = tuple(affine_steps) if key in AFFINE_KEYS else (vsvf_affine_steps,)
        v_steps = (0,) if key in AFFINE_KEYS else tuple(vsvf_steps)
        log(f"evaluating {key} ({info['model']}): affine steps {list(a_steps)}, vSVF steps "
            f"{list(v_steps)}, {pairs} pairs")
        rows = evaluate(info["model"], affine_steps=a_steps, vsvf_steps=v_steps, pairs=pairs,
                        seed=seed)
        evaluations[key] = [dict(r) for r in rows]
        for r in rows:
            log("  " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in r.items() if k != "per_pair"))
    before = {key: rows[0]["dice_before"] for key, rows in evaluations.items() if rows}
    notes = []
    if before and max(before.values()) - min(before.values()) > 1e-6:
        notes.append("the runs were NOT evaluated on the same pairs (Dice before differs: "
                     + ", ".join(f"{k} {v:.4f}" for k, v in before.items()) + ")")
    comparisons = []
    for title, keys, claim, alike in COMPARISONS:
        entry: dict[str, Any] = {"title": title, "runs": list(keys), "claim": claim}
        if alike and all(k in infos for k in keys):
            entry["training_log"] = log_at_common_step([infos[k]["folder"] for k in keys])
        comparisons.append(entry)
    return {
        "pairs": pairs,
        "seeds": [seed, seed + pairs - 1],
        "affine_steps": list(affine_steps),
        "vsvf_steps": list(vsvf_steps),
        "vsvf_affine_steps": vsvf_affine_steps,
        "runs": infos,
        "missing": missing,
        "evaluations": evaluations,
        "dice_before": next(iter(before.values()), None),
        "comparisons": comparisons,
        "notes": notes,
    }


# ----------------------------------------------------------------------------------------------
# the report


def _fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _cells(row: Mapping[str, Any]) -> list[str]:
    return [_fmt(row.get("dice"), 3), _fmt(row.get("epe"), 2),
            _fmt(row.get("fold_percent"), 3), _fmt(row.get("ice_log"), 2)]


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int) -> list[str]:
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"] + [
        "| " + " | ".join(r) + " |" for r in rows]


def _trained(info: Mapping[str, Any]) -> str:
    steps, best = info.get("steps_trained"), info.get("best_step")
    if steps is None:
        return "-"
    return f"{steps}" + (f" (best {best})" if best is not None and best != steps else "")


def _rows_for(results: Mapping[str, Any], key: str, affine_steps: int | None = None,
              vsvf_steps: int | None = None) -> list[dict[str, float]]:
    return [r for r in results["evaluations"].get(key, [])
            if (affine_steps is None or r["affine_steps"] == affine_steps)
            and (vsvf_steps is None or r["vsvf_steps"] == vsvf_steps)]


_FIG_HEADER = ["Dice", "EPE mm", "fold %", "ln ICE"]


def paired_counts(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, int] | None:
    """Pair by pair, how often the first of two evaluation rows (same test pairs) is better:
    ``{"pairs", "dice_higher", "epe_lower", "ice_lower"}``; None without per-pair figures."""
    a, b = first.get("per_pair"), second.get("per_pair")
    if not a or not b or len(a["dice"]) != len(b["dice"]):
        return None

    def count(key: str, better: Callable[[float, float], bool]) -> int:
        return sum(better(x, y) for x, y in zip(a[key], b[key], strict=True))

    return {"pairs": len(a["dice"]), "dice_higher": count("dice", lambda x, y: x > y),
            "epe_lower": count("epe", lambda x, y: x < y),
            "ice_lower": count("ice_log", lambda x, y: x < y)}


def _paired_line(results: Mapping[str, Any], keys: Sequence[str], affine_steps: int,
                 vsvf_steps: int) -> list[str]:
    rows = [_rows_for(results, k, affine_steps, vsvf_steps) for k in keys]
    counts = paired_counts(rows[0][0], rows[1][0]) if all(rows) else None
    if counts is None:
        return []
    return [f"Pair by pair ({counts['pairs']} test pairs), {keys[0]} against {keys[1]}: higher "
            f"Dice in {counts['dice_higher']}, lower EPE in {counts['epe_lower']}, lower ICE in "
            f"{counts['ice_lower']}.", ""]


def markdown(results: Mapping[str, Any], command: str | None = None) -> str:
    """``table.md``: one table per ablation, the training-log check, notes and legend."""
    runs, missing = results["runs"], results["missing"]
    lines = ["# AVSM ablation (Shen et al. 2019, Table 2) on our data", ""]
    if command:
        lines += [f"Command: `{command}`  "]
    if results.get("started"):
        lines += [f"Run: {results['started']} to {results.get('finished', '?')}  "]
    before = results.get("dice_before")
    lines += [
        f"Test pairs: {results['pairs']} (seeds {results['seeds'][0]}-{results['seeds'][1]}), "
        "held-out random deformations (large affine + smooth SVF) of the validation templates "
        "(MNI 2009c, CAT12) on each model's working grid, each also registered the other way "
        "round for the "
        "inverse-consistency error; mean Dice before "
        f"registration {_fmt(before, 3)}.", ""]

    def needs(keys: Sequence[str]) -> bool:
        gone = [k for k in keys if k in missing]
        if gone:
            lines.extend(["Not evaluated, missing: " + "; ".join(missing[k] for k in gone), ""])
        return not gone

    # 1. multi-step
    lines += ["## 1. Multi-step vs single-step affine (Af-Multi, Fig. 10)", "",
              f"Paper: {COMPARISONS[0][2]}.", ""]
    if needs(("affine1", "affine5")):
        rows = []
        for key in ("affine1", "affine5"):
            for r in _rows_for(results, key):
                rows.append([key, str(runs[key].get("affine_steps", "-")), _trained(runs[key]),
                             str(r["affine_steps"]), *_cells(r)])
        lines += _table(["run", "trained with steps", "training steps", "test steps",
                         *_FIG_HEADER], rows, 1) + [""]
    # 2 and 3: single-step comparisons at 1 test step
    headings = ("2. mk-LNCC vs NCC (Af-MK)", "3. Affine symmetry loss (Af-Sym)")
    for heading, (_, keys, claim, _) in zip(headings, COMPARISONS[1:3], strict=True):
        lines += [f"## {heading}, single-step runs, 1 test step", "", f"Paper: {claim}.", ""]
        if not needs(keys):
            continue
        rows = []
        for key in keys:
            info = runs[key]
            for r in _rows_for(results, key, affine_steps=1):
                rows.append([key, str(info.get("similarity", "-")),
                             _fmt(info.get("lambda_as"), 0) if info.get("lambda_as") is not None
                             else "-", _trained(info), *_cells(r)])
        lines += _table(["run", "similarity", "lambda_as", "training steps", *_FIG_HEADER],
                        rows, 1) + [""]
        lines += _paired_line(results, keys, 1, 0)
    # 4. vSVF steps
    lines += [f"## 4. Affine alone vs + vSVF, and vSVF steps at test (vSVF, Fig. 8); "
              f"{results['vsvf_affine_steps']} affine steps", ""]
    if needs(("vsvf",)):
        rows = [[str(r["vsvf_steps"]), *_cells(r)] for r in _rows_for(results, "vsvf")]
        lines += _table(["vSVF steps", *_FIG_HEADER], rows, 0) + [""]
        info = runs["vsvf"]
        lines += [f"0 vSVF steps is the vSVF run's frozen affine net alone (initialised from "
                  f"{info.get('init_from') or '?'}); the run trained with "
                  f"{info.get('vsvf_steps', '?')} vSVF step(s) for {_trained(info)} steps."]
        reference = _rows_for(results, "affine5", affine_steps=results["vsvf_affine_steps"])
        if reference:
            lines += [f"For reference, the affine5 run's model alone with the same "
                      f"{results['vsvf_affine_steps']} steps: Dice "
                      f"{_fmt(reference[0].get('dice'), 3)}, EPE "
                      f"{_fmt(reference[0].get('epe'), 2)} mm (section 1)."]
        lines += [""]
    # 5. vSVF symmetry loss
    lines += [f"## 5. vSVF symmetry loss (vSVF-Sym); {results['vsvf_affine_steps']} affine "
              "steps", "", f"Paper: {COMPARISONS[3][2]}.", ""]
    if needs(("vsvf", "vsvf_nosym")):
        rows = [[key, _trained(runs[key]), str(r["vsvf_steps"]), *_cells(r)]
                for key in ("vsvf", "vsvf_nosym") for r in _rows_for(results, key)]
        lines += _table(["run", "training steps", "vSVF steps", *_FIG_HEADER], rows, 1) + [""]
        trained = runs["vsvf"].get("vsvf_steps") or 1
        lines += _paired_line(results, ("vsvf", "vsvf_nosym"), results["vsvf_affine_steps"],
                              int(trained))
    # the training logs at equal steps
    lines += ["## Comparisons 2, 3 and 5 from the training logs at equal training steps", "",
              "The runs above may have trained for different numbers of steps; these are the "
              "validation figures both runs logged at the last step both reached (the same 8 "
              "validation pairs and seeds for every run, 1 step as trained).", ""]
    rows = []
    for entry in results["comparisons"]:
        log = entry.get("training_log")
        if not log:
            continue
        for key, r in zip(entry["runs"], log["rows"], strict=True):
            rows.append([entry["title"], key, str(log["step"]), *_cells(r)])
    if rows:
        lines += _table(["comparison", "run", "step", *_FIG_HEADER], rows, 2) + [""]
    else:
        lines += ["(no common logged step)", ""]
    if results.get("notes") or missing:
        lines += ["## Notes", ""] + [f"- {n}" for n in results.get("notes", [])] + [
            f"- missing: {m}" for m in missing.values()] + [""]
    lines += [
        "Dice: mean over the tissue labels of the moving labels warped by the map (nearest). "
        "EPE: mean |u - u_true| (mm) inside the fixed brain. fold %: voxels with Jacobian "
        "determinant <= 0. ln ICE: ln(mean |Phi^-1 o (Phi^ts)^-1 - id|^2), the map of the pair "
        "composed with the map of the swapped pair, in units of the image's largest extent, "
        "2 voxels in from the border (lower is more inverse-consistent). Means over the pairs.",
        "",
    ]
    return "\n".join(lines)


def write_report(results: dict[str, Any], folder: str | os.PathLike,
                 command: str | None = None) -> dict[str, Path]:
    """Write ``table.md`` and ``results.json`` to ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "table.md"
    table.write_text(markdown(results, command))
    saved = folder / "results.json"
    saved.write_text(json.dumps(dict(results, command=command), indent=1, default=str) + "\n")
    return {"table": table, "results": saved}


# ----------------------------------------------------------------------------------------------
# command line


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ablation_avsm",
        description="The AVSM ablation on the trained runs of configs/avsm_*.yaml.")
    parser.add_argument("--pairs", type=int, default=12, help="test pairs (default 12)")
    parser.add_argument("--seed", type=int, default=10_000, help="seed of the first test pair")
    parser.add_argument("--run", action="append", default=[], metavar="KEY=PATH",
                        help="a run folder or model file for KEY (one of "
                        f"{', '.join(RUNS)}); repeatable; defaults: "
                        + ", ".join(f"{s.key}={s.folder}" for s in RUNS.values()))
    parser.add_argument("--affine-steps", type=_int_list, default=[1, 3, 5, 7],
                        help="test steps of the affine runs (default 1,3,5,7)")
    parser.add_argument("--vsvf-steps", type=_int_list, default=[0, 1, 2, 3, 4],
                        help="vSVF steps of the vSVF run (default 0,1,2,3,4)")
    parser.add_argument("--vsvf-affine-steps", type=int, default=7,
                        help="affine steps before the vSVF (default 7, as the paper tests)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"report folder (default {DEFAULT_OUT})")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: steadier on a shared machine)")
    args = parser.parse_args(argv)
    runs = {}
    for item in args.run:
        key, sep, path = item.partition("=")
        if not sep or key not in RUNS:
            print(f"error: --run takes KEY=PATH with KEY one of {', '.join(RUNS)}, got {item!r}",
                  file=sys.stderr)
            return 2
        runs[key] = path
    import torch

    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "-m", "benchmarks.ablation_avsm",
                          *(sys.argv[1:] if argv is None else argv)])
    started = datetime.datetime.now(datetime.timezone.utc)
    results = run_ablation(runs, args.pairs, args.seed, args.affine_steps, args.vsvf_steps,
                           args.vsvf_affine_steps)
    if not results["evaluations"]:
        print("error: none of the runs has a trained model:\n  "
              + "\n  ".join(results["missing"].values()), file=sys.stderr)
        return 1
    results["started"] = started.isoformat(timespec="seconds")
    results["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")
    paths = write_report(results, args.out, command)
    print(paths["table"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 1 if results["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
