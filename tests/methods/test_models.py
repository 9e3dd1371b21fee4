"""Model families and loading (methods/models.py), and the import rule of the methods layer:
inference needs neither the training harness nor the data loaders."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import napari_deepreg
from napari_deepreg import zoo
from napari_deepreg.methods import models
from napari_deepreg.methods.avsm import AvsmNetConfig
from napari_deepreg.methods.semantic_bspline import SemanticBSplineNetConfig
from napari_deepreg.volume import InputError

PACKAGE = Path(napari_deepreg.__file__).parent


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of every module ``path`` imports (lazy imports inside functions too)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def _package_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts if parts[-1] == "__init__" else parts[:-1]).replace(".__init__", "")


def test_no_method_module_imports_training_or_data():
    offenders = []
    for path in sorted((PACKAGE / "methods").rglob("*.py")):
        for name in _imports(path, _package_of(path)):
            if name.startswith(("napari_deepreg.training", "napari_deepreg.data")):
                offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == []


def test_the_task_registry_does_not_import_its_tasks_at_module_level():
    """training/task.py <-> the toy task was a cycle; tasks import task.py, not the reverse."""
    tree = ast.parse((PACKAGE / "training" / "task.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any("tasks" in (getattr(n, "module", "") or "") or "toy" in ast.dump(n)
                   for n in top)


def test_registering_with_a_zoo_model_loads_no_training_module():
    code = (
        "import sys, torch\n"
        "from napari_deepreg.methods import available_methods, get_method\n"
        "from napari_deepreg.pipeline import run_to_end\n"
        "available_methods()\n"
        "fixed = torch.rand(1, 1, 40, 36)\n"
        "run_to_end(get_method('semantic_bspline_2d').estimate(fixed, fixed.clone(), (2.0, 2.0),"
        " None, 'cpu'))\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('napari_deepreg.training',"
        " 'napari_deepreg.data.')))\n"
        "print('BAD', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    assert "BAD []" in out.stdout, out.stdout


def test_families_of_the_zoo_are_registered():
    assert models.get_family("semantic_bspline").config_class is SemanticBSplineNetConfig
    assert models.get_family("avsm").config_class is AvsmNetConfig
    assert isinstance(models.get_family("avsm"), models.ModelFamily)
    with pytest.raises(InputError, match="no model family 'nope'"):
        models.get_family("nope")


def test_every_zoo_model_loads_strictly_in_eval_mode():
    for entry in zoo.list_models():
        model, config = models.load_model(entry.id)
        assert not model.training
        family = models.get_family(entry.method)
        assert isinstance(config, family.config_class)
        assert family.describe(config)


def test_a_model_file_round_trip_and_the_cache(tmp_path):
    config = SemanticBSplineNetConfig(dims=2, working_shape=(17, 17), num_classes=3,
                                      strides=(3,), unet_channels=(4, 4, 4, 4),
                                      regnet_channels=(4, 4, 4, 4))
    family = models.get_family("semantic_bspline")
    torch.manual_seed(0)
    net = family.build(config)
    path = tmp_path / "model.pt"
    zoo.save_model_file(path, "semantic_bspline", {"dims": 2, "working_shape": [17, 17],
                        "num_classes": 3, "strides": [3], "unet_channels": [4, 4, 4, 4],
                        "regnet_channels": [4, 4, 4, 4]}, net.state_dict(), {})
    loaded, read = models.load_model(str(path))
    assert read == config  # lists in the file become the config's tuples
    for key, value in net.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    first = models.load_cached_model(str(path), "cpu", SemanticBSplineNetConfig, "x")
    assert models.load_cached_model(str(path), "cpu", SemanticBSplineNetConfig, "x")[0] is first[0]
    with pytest.raises(InputError, match="not a avsm model"):
        models.load_cached_model(str(path), "cpu", AvsmNetConfig, "avsm")
    models.clear_cache()
    assert models.load_cached_model(str(path), "cpu", SemanticBSplineNetConfig, "x")[0] \
        is not first[0]


def test_the_families_check_anatomies_against_what_data_loads():
    from napari_deepreg.data.anatomy import ANATOMIES
    from napari_deepreg.methods.net_config import TEMPLATE_ANATOMIES

    assert ANATOMIES == TEMPLATE_ANATOMIES
    with pytest.raises(ValueError, match="train_anatomies"):
        AvsmNetConfig(train_anatomies=("nowhere",))
