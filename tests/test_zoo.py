"""The model zoo: export/load round trip, checksum refusal, weights_only loading, manifest."""

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from napari_deepreg import zoo
from napari_deepreg.training.checkpoint import save_checkpoint
from napari_deepreg.volume import InputError


def tiny_state(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.Conv2d(4, 2, 1)).state_dict()


META = {
    "dims": [3],
    "modality": "MR T1 brain",
    "working_resolution": "48x56x48 @ 4 mm",
    "training_command": "napari-deepreg train demo --config configs/demo.yaml",
    "training_data": "MNI152 2009c + DKT labels, random SVF deformations",
}


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "run" / "model.pt"
    zoo.save_model_file(path, "demo", {"levels": 3, "shape": [48, 56, 48]}, tiny_state(), META)
    return path


def test_export_and_load_round_trip(model_file, tmp_path):
    zoo_dir = tmp_path / "zoo"
    entry = zoo.export_to_zoo(model_file, "demo_t1_3d", zoo_dir=zoo_dir, description="demo")
    # fields not given come from the file's provenance
    assert entry.method == "demo" and entry.dims == (3,)
    assert entry.modality == "MR T1 brain"
    assert entry.training_command == META["training_command"]
    assert entry.file == "weights/demo_t1_3d.pt"
    path = zoo_dir / entry.file
    assert entry.sha256 == zoo.sha256_file(path) and entry.size_bytes == path.stat().st_size
    manifest = json.loads((zoo_dir / "manifest.json").read_text())
    assert [m["id"] for m in manifest["models"]] == ["demo_t1_3d"]
    assert manifest["models"][0]["sha256"] == entry.sha256

    config, state = zoo.load_model("demo_t1_3d", zoo_dir=zoo_dir)
    assert config == {"levels": 3, "shape": [48, 56, 48]}
    expected = tiny_state()
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in state)
    _, _, meta = zoo.load_model("demo_t1_3d", zoo_dir=zoo_dir, with_meta=True)
    assert meta["model_id"] == "demo_t1_3d" and meta["training_data"] == META["training_data"]


def test_export_from_a_training_checkpoint_keeps_weights_only(tmp_path):
    ckpt = save_checkpoint(
        tmp_path / "last.pt",
        {
            "method": "demo",
            "config_json": json.dumps({"levels": 2}),
            "meta_json": json.dumps({"dims": [2]}),
            "state_dict": tiny_state(1),
            "optimizer": {"state": {0: {"exp_avg": torch.ones(100_000)}}, "param_groups": []},
            "step": 10,
        },
    )
    entry = zoo.export_to_zoo(ckpt, "demo_2d", modality="CT", zoo_dir=tmp_path / "zoo")
    assert entry.dims == (2,) and entry.modality == "CT"
    assert entry.working_resolution == "native" and entry.training_data == "unrecorded"
    raw = torch.load(tmp_path / "zoo" / entry.file, weights_only=True)
    assert set(raw) == {"format", "method", "config_json", "meta_json", "state_dict"}
    assert entry.size_bytes < ckpt.stat().st_size / 10  # the optimiser state stayed behind


def test_a_tampered_weight_file_is_refused(model_file, tmp_path):
    zoo_dir = tmp_path / "zoo"
    entry = zoo.export_to_zoo(model_file, "demo_t1_3d", zoo_dir=zoo_dir)
    path = zoo_dir / entry.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.ChecksumError) as err:
        zoo.load_model("demo_t1_3d", zoo_dir=zoo_dir)
    message = str(err.value)
    assert str(path) in message
    assert entry.sha256 in message and zoo.sha256_file(path) in message
    assert isinstance(err.value, InputError)
    path.unlink()
    with pytest.raises(InputError, match="missing"):
        zoo.load_model("demo_t1_3d", zoo_dir=zoo_dir)


class Payload:
    """An arbitrary object: weights_only loading must refuse to build it."""


def test_loading_uses_weights_only_even_with_a_matching_checksum(tmp_path):
    weights = tmp_path / "zoo" / "weights"
    weights.mkdir(parents=True)
    path = weights / "evil.pt"
    torch.save(
        {
            "format": zoo.MODEL_FORMAT,
            "method": "demo",
            "config_json": "{}",
            "meta_json": "{}",
            "state_dict": {},
            "extra": Payload(),
        },
        path,
    )
    entry = zoo.ZooEntry(
        id="evil",
        method="demo",
        dims=(2,),
        modality="-",
        working_resolution="-",
        training_command="-",
        training_data="-",
        file="weights/evil.pt",
        sha256=zoo.sha256_file(path),
    )
    zoo.write_manifest([entry], tmp_path / "zoo")
    with pytest.raises(InputError, match="cannot read model file"):
        zoo.load_model("evil", zoo_dir=tmp_path / "zoo")


def test_dims_check_refuses_a_3d_model_for_a_2d_pair(model_file, tmp_path):
    entry = zoo.export_to_zoo(model_file, "demo_t1_3d", zoo_dir=tmp_path)
    assert entry.supports(3) and not entry.supports(2)
    entry.check_dims(3)
    with pytest.raises(InputError, match=r"3D images only and this pair is 2D.*instance_opt"):
        entry.check_dims(2)


def test_list_table_and_benchmark_figures(model_file, tmp_path):
    assert "no models" in zoo.format_table(zoo_dir=tmp_path)
    zoo.export_to_zoo(model_file, "b_model", zoo_dir=tmp_path)
    zoo.export_to_zoo(model_file, "a_model", dims=(2, 3), zoo_dir=tmp_path)
    assert [e.id for e in zoo.list_models(tmp_path)] == ["a_model", "b_model"]
    assert [e.id for e in zoo.zoo_method_specs(tmp_path)] == ["a_model", "b_model"]
    zoo.set_benchmark("b_model", {"dice": 0.8123, "fold_percent": 0.01}, zoo_dir=tmp_path)
    table = zoo.format_table(zoo_dir=tmp_path)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["id", "method", "dims", "modality"]
    assert "2D/3D" in lines[2] and "dice 0.812, fold_percent 0.01" in lines[3]
    verbose = zoo.format_table(zoo_dir=tmp_path, verbose=True)
    assert "training_command" in verbose and META["training_command"] in verbose
    # re-exporting the same weights keeps the figures; other weights drop them
    assert zoo.export_to_zoo(model_file, "b_model", zoo_dir=tmp_path).benchmark["dice"] == 0.8123
    other = tmp_path / "other.pt"
    zoo.save_model_file(other, "demo", {"levels": 3}, tiny_state(5), META)
    assert zoo.export_to_zoo(other, "b_model", zoo_dir=tmp_path).benchmark == {}


def test_bad_ids_methods_and_paths_are_refused(model_file, tmp_path):
    with pytest.raises(ValueError, match="invalid model id"):
        zoo.export_to_zoo(model_file, "../escape", zoo_dir=tmp_path)
    with pytest.raises(InputError, match="trained for method 'demo'"):
        zoo.export_to_zoo(model_file, "x", method="suits", zoo_dir=tmp_path)
    with pytest.raises(InputError, match="inside the zoo folder"):
        zoo.export_to_zoo(model_file, "x", zoo_dir=tmp_path / "zoo", out_dir=tmp_path / "else")
    with pytest.raises(ValueError, match="no zoo model 'nope'"):
        zoo.load_model("nope", zoo_dir=tmp_path)
    not_a_model = tmp_path / "state.pt"
    torch.save(tiny_state(), not_a_model)
    with pytest.raises(InputError, match="not a napari-deepreg model"):
        zoo.export_to_zoo(not_a_model, "x", zoo_dir=tmp_path)


def test_command_line_list_check_export(model_file, tmp_path, capsys):
    parser = zoo.add_zoo_arguments(argparse.ArgumentParser())
    zoo_dir = str(tmp_path / "zoo")

    def run(*argv):
        code = zoo.zoo_from_args(parser.parse_args(list(argv)))
        return code, capsys.readouterr().out

    code, out = run(
        "export", str(model_file), "--id", "cli_3d", "--modality", "MR", "--zoo-dir", zoo_dir
    )
    assert code == 0 and "exported cli_3d" in out
    code, out = run("list", "--zoo-dir", zoo_dir)
    assert code == 0 and "cli_3d" in out and "MR" in out
    assert run("check", "--zoo-dir", zoo_dir) == (0, "all weight files match\n")
    weight = tmp_path / "zoo" / "weights" / "cli_3d.pt"
    weight.write_bytes(weight.read_bytes()[:-1])
    code, out = run("check", "--zoo-dir", zoo_dir)
    assert code == 1 and "cli_3d: weight file" in out


def test_environment_variable_selects_the_zoo(model_file, tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_ZOO_DIR, str(tmp_path / "mine"))
    zoo.export_to_zoo(model_file, "mine_3d")
    assert (tmp_path / "mine" / "manifest.json").is_file()
    assert [e.id for e in zoo.list_models()] == ["mine_3d"]


def test_shipped_manifest_is_valid_and_every_file_matches(monkeypatch):
    monkeypatch.delenv(zoo.ENV_ZOO_DIR, raising=False)
    assert (zoo.default_zoo_dir() / "manifest.json").is_file()
    for entry in zoo.list_models():
        zoo.verify_file(zoo.model_path(entry), entry.sha256)
        assert entry.size_bytes <= zoo.SIZE_BUDGET_BYTES


def test_benchmark_figures_of_zoo_models_go_into_the_manifest(model_file, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import record_zoo

    zoo.export_to_zoo(model_file, "b_model", zoo_dir=tmp_path)
    row = {"case": "c1", "kind": "zoo", "status": "ok", "dice_before": 0.5, "dice_after": 0.81234,
           "epe_mm": None, "fold_percent": 0.0}
    results = {"command": "python -m benchmarks.run --suite quick", "started": "2026-11-21T09:00",
               "rows": [{**row, "method": "b_model"},
                        {**row, "method": "b_model:refine=true", "dice_after": 0.9},  # overridden
                        {**row, "method": "gone_model"},  # not in this zoo
                        {**row, "method": "instance_opt", "kind": "pipeline"}]}
    assert record_zoo.record(results, tmp_path) == ["b_model"]
    (entry,) = zoo.list_models(tmp_path)
    assert entry.benchmark == {"command": "python -m benchmarks.run --suite quick",
                               "date": "2026-11-21",
                               "cases": {"c1": {"dice_before": 0.5, "dice_after": 0.8123,
                                                "fold_percent": 0.0}}}
