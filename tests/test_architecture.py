"""The layering rules of docs/architecture.md, checked on the source and on a real run.

* Inference needs no training harness, no data loaders and no GUI: a registration with a zoo
  model through the CLI's and the pipeline's code path imports neither ``napari_deepreg.training``
  nor ``napari_deepreg.data`` nor napari / Qt / magicgui.
* Who may import whom (static, from the source): only ``_napari/`` imports napari, Qt or
  magicgui; ``methods/`` imports neither ``training/`` nor ``data/``; ``core/`` imports only
  ``core/``; ``result.py`` and ``fields.py`` import no method.
* The import graph inside the package has no cycle, lazy (function-level) imports included.
* No module in the package is longer than 500 lines.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "napari_deepreg"
GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy")
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, name: str) -> set[str]:
    """Absolute names of every module imported by the file (top-level and inside functions)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            found.add(stem)
            # `from . import x` may name a submodule
            found.update(f"{stem}.{alias.name}" for alias in node.names)
    return found


def internal_graph() -> dict[str, set[str]]:
    modules = package_modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in imports_of(path, name):
            if imported in modules and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes, or None (iterative depth-first search)."""
    colour = dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done
    for start in graph:
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                colour[node] = 2
            elif colour[child] == 1:
                return path[path.index(child):] + [child]
            elif colour[child] == 0:
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def test_find_cycle_sees_a_cycle_and_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_has_no_cycle():
    graph = internal_graph()
    # a package's __init__ that re-exports its submodules is not a cycle by itself: what counts
    # is a submodule importing its own package back, so drop the parent -> child edges
    acyclic = {
        name: {t for t in targets if not t.startswith(name + ".")}
        for name, targets in graph.items()
    }
    cycle = find_cycle(acyclic)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _external(path: Path, name: str) -> set[str]:
    return {i.split(".")[0] for i in imports_of(path, name)}


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("napari_deepreg.methods", ("napari_deepreg.training", "napari_deepreg.data")),
        (
            "napari_deepreg.core",
            ("napari_deepreg.methods", "napari_deepreg.training", "napari_deepreg.data",
             "napari_deepreg.qa", "napari_deepreg._napari", "napari_deepreg.pipeline"),
        ),
        ("napari_deepreg.result", ("napari_deepreg.methods", "napari_deepreg.training")),
        ("napari_deepreg.fields", ("napari_deepreg.methods", "napari_deepreg.training")),
        ("napari_deepreg.qa", ("napari_deepreg._napari", "napari_deepreg.training")),
        (
            "napari_deepreg.batch",
            ("napari_deepreg._napari", "napari_deepreg.training", "napari_deepreg.data",
             "napari_deepreg.cli"),
        ),
    ],
)
def test_layer_does_not_import(layer, forbidden):
    graph = internal_graph()
    bad = sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        if name == layer or name.startswith(layer + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )
    assert not bad, "\n".join(bad)


def test_only_the_napari_adapter_imports_gui_toolkits():
    bad = []
    for name, path in package_modules().items():
        if name.startswith("napari_deepreg._napari"):
            continue
        gui = _external(path, name) & set(GUI_MODULES)
        if gui:
            bad.append(f"{name} imports {sorted(gui)}")
    assert not bad, "\n".join(bad)


def test_no_module_is_longer_than_500_lines():
    long = {
        name: n
        for name, path in package_modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules above {MAX_LINES} lines: {long}"


_RUN_WITHOUT_HARNESS = """
import json, sys, pkgutil, importlib
import napari_deepreg.cli, napari_deepreg.pipeline, napari_deepreg.methods as methods
for info in pkgutil.walk_packages(methods.__path__, methods.__name__ + "."):
    importlib.import_module(info.name)
from napari_deepreg.methods import available_methods
from napari_deepreg.pipeline import register, run_to_end
from napari_deepreg.sample import load_sample
zoo_2d = sorted(i for i, s in available_methods().items() if s.model_id and 2 in s.dims)
pair = load_sample("brain2d")
result = run_to_end(register(pair["fixed"], pair["moving"], method=zoo_2d[0],
                             fixed_labels=pair["fixed_labels"], moving_labels=pair["moving_labels"],
                             device="cpu"))
loaded = sorted(m for m in sys.modules
                if m.split(".")[0] in sys.argv[1].split(",")
                or m.startswith(("napari_deepreg.training", "napari_deepreg.data")))
print(json.dumps({"model": zoo_2d[0], "dice": result.metrics["dice_after"], "loaded": loaded}))
"""


def test_a_zoo_model_runs_without_training_data_or_gui_modules():
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT_HARNESS, ",".join(GUI_MODULES)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["dice"] > 0  # it really ran
    assert report["loaded"] == [], f"{report['model']} pulled in {report['loaded']}"
