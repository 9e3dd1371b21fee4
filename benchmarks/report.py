"""The benchmark's report: a markdown table per case group, the JSON record, two PNG plots.

Input is the results dict of :func:`benchmarks.run.run_benchmark` (``rows``: one dict per case
and method with the figures, ``None`` where a figure does not apply; ``cases``; ``environment``;
``notes``). A group's table averages each method over the group's cases (every case weighs the
same; a figure missing from a case is left out of its mean), then each case of a group with more
than one gets its own table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

GROUP_ORDER = ("3d-2mm", "3d-1mm", "3d-affine", "2d-slices", "2d-real", "phantom")

# (row key, column title, format): the columns of every table, in order
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("dice_before", "Dice before", "{:.3f}"),
    ("dice_after", "Dice after", "{:.3f}"),
    ("hd95_after", "HD95 mm", "{:.2f}"),
    ("epe_mm", "EPE mm", "{:.2f}"),
    ("ref_ncc_after", "ref NCC", "{:.3f}"),
    ("fold_percent", "fold %", "{:.3f}"),
    ("sdlogj", "SDlogJ", "{:.3f}"),
    ("time_s", "time s", "{:.1f}"),
    ("cpu_s", "CPU s", "{:.1f}"),
    ("peak_mib", "peak MiB", "{:.0f}"),
)
# columns shown even when no case of the group has them (the list); others only if used
_ALWAYS = {"dice_before", "dice_after", "hd95_after", "epe_mm", "fold_percent", "sdlogj",
           "time_s", "cpu_s", "peak_mib"}

LEGEND = (
    "Dice: mean over the fixed image's labels of the moving labels warped by the method's field "
    "(before: unwarped). HD95: mean over labels of the 95th-percentile symmetric surface "
    "distance after registration. EPE: mean endpoint error (mm) against the case's true field "
    "inside the fixed foreground. ref NCC: correlation of the warped moving image with the image "
    "it should equal (ITK pairs). fold %: voxels with Jacobian determinant <= 0. SDlogJ: "
    "standard deviation of log J (clipped at 1e-9). time: wall clock of the method call "
    "(for peers without their package import); CPU: process CPU time over the same span, all "
    "threads. peak MiB: resident memory high-water mark during "
    "the call above the level at its start. `-`: does not apply to the case."
)


def _number(value: Any) -> float:
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _mean(values: Sequence[Any]) -> float:
    numbers = [v for v in (_number(x) for x in values) if not math.isnan(v)]
    return float(np.mean(numbers)) if numbers else float("nan")


def _fmt(value: float, pattern: str) -> str:
    if math.isnan(value):
        return "-"
    if pattern == "{:.1f}" and abs(value) < 1:
        return f"{value:.2f}"
    return pattern.format(value)


def groups_in(results: dict[str, Any]) -> list[str]:
    """Groups present in the results, in the report's order."""
    present = {c["group"] for c in results.get("cases", [])} | {
        r["group"] for r in results.get("rows", [])}
    return [g for g in GROUP_ORDER if g in present] + sorted(present - set(GROUP_ORDER))


def methods_in(results: dict[str, Any]) -> list[str]:
    """Method labels in the order they ran."""
    return list(dict.fromkeys(r["method"] for r in results.get("rows", [])))


def summarise(rows: Sequence[dict[str, Any]], methods: Sequence[str]) -> list[dict[str, Any]]:
    """One dict per method: every column's mean over ``rows`` of that method with status ok,
    plus ``cases`` (ok rows) and ``errors`` (failed rows)."""
    out = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        ok = [r for r in mine if r.get("status") == "ok"]
        summary = {"method": method, "cases": len(ok), "errors": len(mine) - len(ok)}
        for key, _, _ in COLUMNS:
            summary[key] = _mean([r.get(key) for r in ok])
        out.append(summary)
    return out


def markdown_table(summaries: Sequence[dict[str, Any]], show_cases: bool = False) -> str:
    """A markdown table, one row per method summary (columns that never apply are dropped)."""
    keys = [c for c in COLUMNS if c[0] in _ALWAYS
            or any(not math.isnan(s[c[0]]) for s in summaries)]
    header = ["method"] + [title for _, title, _ in keys] + (["cases"] if show_cases else [])
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for s in summaries:
        cells = [s["method"]] + [_fmt(s[k], f) for k, _, f in keys]
        if show_cases:
            cells.append(f"{s['cases']}" + (f" ({s['errors']} failed)" if s["errors"] else ""))
        elif s["errors"]:
            cells[0] += " (failed)"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(results: dict[str, Any]) -> str:
    """The whole ``table.md``: header, one table per group, per-case tables, notes, legend."""
    env = results.get("environment", {})
    methods = methods_in(results)
    rows = results.get("rows", [])
    cases = results.get("cases", [])
    lines = [
        f"# Benchmark: suite `{results.get('suite', '?')}`",
        "",
        f"Command: `{results.get('command', 'python -m benchmarks.run')}`  ",
        f"Run: {results.get('started', '?')} to {results.get('finished', '?')}, commit "
        f"{env.get('commit') or '?'}  ",
        f"Machine: {env.get('cpu', '?')} ({env.get('cpu_count', '?')} CPUs), torch "
        f"{env.get('torch', '?')} on {env.get('torch_threads', '?')} thread(s), device "
        f"{env.get('device', '?')}"
        + (f"; every tool limited to {env['thread_limit']} thread(s)"
           if env.get("thread_limit") else ""),
        "",
    ]
    for group in groups_in(results):
        group_cases = [c for c in cases if c["group"] == group]
        group_rows = [r for r in rows if r["group"] == group]
        names = ", ".join(c["name"] for c in group_cases)
        lines += [f"## {group} ({len(group_cases)} case{'s' * (len(group_cases) != 1)}: "
                  f"{names})", ""]
        many = len(group_cases) > 1
        if many:
            lines += ["Mean over the group's cases.", ""]
        lines += [markdown_table(summarise(group_rows, methods), show_cases=many), ""]
        if many:
            for case in group_cases:
                case_rows = [r for r in group_rows if r["case"] == case["name"]]
                lines += [f"### {case['name']}", "", case.get("description", ""), "",
                          markdown_table(summarise(case_rows, methods)), ""]
        elif group_cases:
            lines += [group_cases[0].get("description", ""), ""]
    from benchmarks.startup import markdown_section

    lines += markdown_section(results.get("cli_overhead") or {})
    failures = [f"{r['method']} on {r['case']}: {r.get('note', '')}" for r in rows
                if r.get("status") != "ok"]
    notes = list(results.get("notes", [])) + failures
    settings = {r["method"]: r.get("note") for r in rows
                if r.get("status") == "ok" and r.get("kind") == "peer" and r.get("note")}
    if notes or settings:
        lines += ["## Notes", ""]
        lines += [f"- {n}" for n in notes]
        lines += [f"- {m}: {n}" for m, n in settings.items()]
        lines.append("")
    lines += ["## Legend", "", LEGEND, ""]
    return "\n".join(lines)


def _bar_plot(results: dict[str, Any], key: str, title: str, ylabel: str, path: Path,
              log_scale: bool = False, before_key: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    methods = methods_in(results)
    rows = [r for r in results.get("rows", []) if r.get("status") == "ok"]
    groups = [g for g in groups_in(results)
              if any(_number(r.get(key)) == _number(r.get(key)) for r in rows if r["group"] == g)]
    if not groups:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, f"no case has {ylabel}", ha="center", va="center")
        ax.axis("off")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return
    fig, axes = plt.subplots(1, len(groups), figsize=(max(4.0, 0.6 * len(methods) + 1.5)
                                                      * len(groups), 4.2), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, group in zip(axes[0], groups, strict=True):
        group_rows = [r for r in rows if r["group"] == group]
        shown = [m for m in methods if any(r["method"] == m for r in group_rows)]
        means = [_mean([r.get(key) for r in group_rows if r["method"] == m]) for m in shown]
        x = np.arange(len(shown))
        ax.bar(x, np.nan_to_num(means), color=[colours(i % 10) for i in range(len(shown))])
        for i, m in enumerate(shown):  # every case as a dot over its method's bar
            values = [_number(r.get(key)) for r in group_rows if r["method"] == m]
            ax.plot([i] * len(values), values, "k.", markersize=4)
        if before_key:
            before = _mean([r.get(before_key) for r in group_rows])
            if not math.isnan(before):
                ax.axhline(before, color="grey", linestyle="--", linewidth=1, label="before")
                ax.legend(loc="lower right", fontsize=8)
        if log_scale:
            ax.set_yscale("log")
        else:  # start near the lowest value shown, so close scores stay apart
            shown_values = [_number(r.get(k)) for r in group_rows for k in (key, before_key)
                            if k]
            low = min((v for v in shown_values if not math.isnan(v)), default=0.0)
            top = max((v for v in shown_values if not math.isnan(v)), default=1.0)
            ax.set_ylim(max(0.0, low - 0.1 * (top - low) - 0.02), top + 0.05 * (top - low) + 0.01)
        ax.set_xticks(x, shown, rotation=35, ha="right", fontsize=8)
        ax.set_title(group)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_dice(results: dict[str, Any], path: str | Path) -> Path:
    """Bar plot of mean Dice after registration per method, one panel per group (with labels);
    dots are the cases, the dashed line the Dice before."""
    path = Path(path)
    _bar_plot(results, "dice_after", "Dice after registration (mean over cases)", "Dice", path,
              before_key="dice_before")
    return path


def plot_time(results: dict[str, Any], path: str | Path) -> Path:
    """Bar plot (log scale) of the mean wall time per method, one panel per group."""
    path = Path(path)
    _bar_plot(results, "time_s", "Wall time of the method call (mean over cases)", "seconds",
              path, log_scale=True)
    return path


def write_json(results: dict[str, Any], path: str | Path) -> Path:
    """``results`` as indented JSON (nan written as null)."""
    path = Path(path)

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return clean(value.item())
        return value

    path.write_text(json.dumps(clean(results), indent=1, allow_nan=False) + "\n")
    return path


def write_report(results: dict[str, Any], folder: str | Path) -> dict[str, Path]:
    """Write ``table.md``, ``results.json``, ``dice.png`` and ``time.png`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "table.md"
    table.write_text(markdown_report(results))
    return {
        "table": table,
        "json": write_json(results, folder / "results.json"),
        "dice": plot_dice(results, folder / "dice.png"),
        "time": plot_time(results, folder / "time.png"),
    }


__all__ = [
    "COLUMNS",
    "GROUP_ORDER",
    "markdown_report",
    "markdown_table",
    "plot_dice",
    "plot_time",
    "summarise",
    "write_json",
    "write_report",
]
