"""The benchmark runner (benchmarks/run.py), its cases (cases.py) and its report (report.py).

The end-to-end test runs a tiny synthetic phantom (no registry) with identity, a fast
instance_opt and SimpleITK demons, and checks the table, the JSON and the plots it writes, and
that the figures make sense (registration beats identity; identity changes nothing). Tests marked
``registry`` use the pinned ITK example slices and skip when the registry cannot be reached.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# benchmarks/ is not an installed package: make the repository root importable
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import cases, report, run  # noqa: E402
from napari_deepreg.core import warp_labels  # noqa: E402
from napari_deepreg.metrics import mean_dice  # noqa: E402

FAST_OPT = "instance_opt:levels=2:iterations=40:affine_first=false"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"




@pytest.fixture(scope="module")
def case_cache(tmp_path_factory):
    """A case cache shared by the module: the phantom is built once."""
    return tmp_path_factory.mktemp("cases")


@pytest.fixture(scope="module")
def phantom(case_cache):
    return cases.get_case("phantom_2d", case_cache)


def _warped_dice(case: cases.BenchCase, field: np.ndarray) -> float:
    labels = torch.from_numpy(case.moving_labels.astype(np.int64))[None, None]
    warped = warp_labels(labels, torch.from_numpy(field)[None], case.spacing)[0, 0].numpy()
    return mean_dice(case.fixed_labels, warped)


# ----------------------------------------------------------------------------------------------
# cases


def test_phantom_case_is_seeded_and_its_true_field_registers_it(phantom, tmp_path):
    assert phantom.group == "phantom" and phantom.shape == (64, 64)
    again = cases.build_phantom(**cases.CASES["phantom_2d"].params)
    np.testing.assert_array_equal(again.moving.array, phantom.moving.array)
    np.testing.assert_array_equal(again.true_field, phantom.true_field)
    before = mean_dice(phantom.fixed_labels, phantom.moving_labels)
    # the true field undoes the warp: the labels line up again up to interpolation
    assert _warped_dice(phantom, phantom.true_field) > 0.97 > before + 0.1
    peak = np.sqrt((phantom.true_field**2).sum(0)).max()
    assert 3.0 < peak < 5.0  # the recipe asks for 4 mm
    assert phantom.meta["deformation"]["inverse_residual_max_interior_mm"] < 0.01


def test_case_save_load_round_trip(phantom, tmp_path):
    path = phantom.save(tmp_path / "c.npz")
    loaded = cases.BenchCase.load(path)
    assert (loaded.name, loaded.group, loaded.description) == (
        phantom.name, phantom.group, phantom.description)
    assert loaded.spacing == phantom.spacing and loaded.fixed.origin == phantom.fixed.origin
    for key in ("fixed_labels", "moving_labels", "true_field", "mask"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(phantom, key))
    assert loaded.reference is None

def test_get_case_caches_under_the_recipe_key(phantom, case_cache):
    # the fixture's get_case wrote the cache once, named by the recipe; now it is only read
    files = list(case_cache.glob("phantom_2d-*.npz"))
    assert len(files) == 1 and cases.CASES["phantom_2d"].cache_key() in files[0].name
    stamp = files[0].stat().st_mtime_ns
    again = cases.get_case("phantom_2d", case_cache)
    assert files[0].stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.moving.array, phantom.moving.array)
    assert again.meta["cache_key"] == cases.CASES["phantom_2d"].cache_key()


def test_unknown_case_and_suite():
    with pytest.raises(cases.CaseUnavailable, match="unknown case"):
        cases.get_case("no_such_case")
    with pytest.raises(ValueError, match="unknown suite"):
        cases.suite_cases("huge")
    for names in cases.SUITES.values():
        assert set(names) <= set(cases.CASES)


def test_random_affine_matrix_is_bounded_rigid_ish():
    gen = torch.Generator().manual_seed(3)
    matrix = cases.random_affine_matrix(3, (10.0, 20.0, 30.0), gen, 2.0, 0.02, 2.0)
    linear = matrix[:3, :3]
    singular = np.linalg.svd(linear, compute_uv=False)
    assert np.all(np.abs(singular - 1) <= 0.02 + 1e-9)
    # the centre moves by the translation only (at most 2 mm per axis)
    centre = np.array([10.0, 20.0, 30.0])
    assert np.all(np.abs(linear @ centre + matrix[:3, 3] - centre) <= 2.0 + 1e-9)


def test_crop_box_outside_the_array_pads_with_zeros():
    array = np.arange(100, dtype=np.float32).reshape(10, 10) + 1
    mask = np.zeros((10, 10), bool)
    mask[2:4, 5:8] = True
    box = cases.crop_box(mask, (1.0, 1.0), margin_mm=3.0, inside=False)
    assert box == (slice(-1, 7), slice(2, 11))
    crop = cases.crop_padded(array, box)
    assert crop.shape == (8, 9)
    assert np.all(crop[0] == 0) and np.all(crop[:, -1] == 0)  # the padded row and column
    np.testing.assert_array_equal(crop[1:, :-1], array[0:7, 2:10])
    # clipped to the array (the default) nothing changes for the existing cases
    assert cases.crop_box(mask, (1.0, 1.0), margin_mm=3.0) == (slice(0, 7), slice(2, 10))
    # a box of odd size for a 2-times coarser grid
    assert all((s.stop - s.start - 1) % 2 == 0 for s in
               cases.crop_box(mask, (1.0, 1.0), step=2, margin_mm=3.0, inside=False))


def _small_anatomy(name: str):
    """A 1 mm ellipsoid 'brain' (52 x 64 x 48 mm) with five labels, standing in for a template."""
    from napari_deepreg.volume import Volume

    shape = (70, 80, 66)
    z, y, x = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij")
    r = (z / 26) ** 2 + (y / 32) ** 2 + (x / 24) ** 2
    labels = np.where(r < 1, 1 + (y > 0) + 2 * (x > 0), 0).astype(np.int32)
    labels[r < 0.3] = 5
    image = np.array([0, 0.3, 0.5, 0.7, 0.9, 1.0], np.float32)[labels]
    return Volume(image, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)), labels, "small ellipsoid"


def test_affine_cases_are_registered_in_the_suites():
    affine = [n for n, s in cases.CASES.items() if s.group == "3d-affine"]
    assert sorted(affine) == ["cat12_lpba40_2mm_affine", "mni2009a_tissues_2mm_affine",
                              "mni2009c_dkt_2mm_affine"]
    assert "3d-affine" in cases.GROUPS
    assert set(affine) <= set(cases.SUITES["full"])
    assert [n for n in cases.SUITES["quick"] if n in affine] == ["mni2009a_tissues_2mm_affine"]
    used = {s.params["seed"] for n, s in cases.CASES.items() if "seed" in s.params
            and n not in affine}
    for name in affine:
        params = cases.CASES[name].params
        assert params["seed"] not in used  # held-out seeds
        assert (params["rotate_deg"], params["scale"], params["shift_mm"]) == (20.0, 0.15, 15.0)


def test_affine_case_true_field_registers_the_labels(monkeypatch):
    """The 3d-affine recipe (20 deg, 15 %, 15 mm + SVF, 2 mm from 1 mm) on a small stand-in
    anatomy: the stored true field carries the moving labels back onto the fixed ones."""
    monkeypatch.setattr(cases, "load_anatomy", _small_anatomy)
    params = cases.CASES["mni2009a_tissues_2mm_affine"].params
    case = cases.build_affine_3d(**params)
    assert case.group == "3d-affine" and case.spacing == (2.0, 2.0, 2.0)
    assert case.true_field.shape == (3, *case.shape)
    # the grid keeps the margin around the brain: origin and world centre of the labels
    centroid = np.argwhere(case.fixed_labels > 0).mean(0) * 2.0 + np.asarray(case.fixed.origin)
    np.testing.assert_allclose(centroid, [34.5, 39.5, 32.5], atol=1.0)
    assert min(case.fixed.origin) < 0  # the 24 mm margin reaches past the stand-in's grid
    before = mean_dice(case.fixed_labels, case.moving_labels)
    magnitude = np.sqrt((case.true_field**2).sum(0))[case.mask]
    assert magnitude.mean() > 8.0 and before < 0.5  # a large misalignment
    assert _warped_dice(case, case.true_field) > 0.94
    assert _warped_dice(case, -case.true_field) < before  # the sign matters
    assert case.meta["deformation"]["inverse_residual_max_interior_mm"] < 0.01
    assert case.meta["outside_fov_percent"] < 1.0


@pytest.mark.registry
def test_itk_shifted_pair_truth_is_the_13_by_17_shift(tmp_path):
    from napari_deepreg.data.registry import RegistryError

    try:
        case = cases.get_case("itk_t1_pd_shifted", tmp_path)
    except (cases.CaseUnavailable, RegistryError) as error:
        pytest.skip(f"ITK example data unavailable: {error}")
    assert case.true_field[:, 0, 0].tolist() == [17.0, 13.0]
    before = run.masked_ncc(case.moving.array, case.reference, case.mask)
    after = run.measure_field(case, case.true_field)["ref_ncc_after"]
    # warping with the stated truth recovers the PD slice; the opposite sign and every
    # neighbouring one-pixel shift do worse
    assert after > 0.95 and before < 0.4
    assert run.measure_field(case, -case.true_field)["ref_ncc_after"] < 0.4
    for step in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        off = case.true_field + np.asarray(step, np.float32).reshape(2, 1, 1)
        assert run.measure_field(case, off)["ref_ncc_after"] < after - 0.05


# ----------------------------------------------------------------------------------------------
# runner pieces


def test_parse_method_overrides():
    assert run.parse_method("instance_opt:iterations=30:similarity=mind_ssc") == (
        "instance_opt", {"iterations": 30, "similarity": "mind_ssc"})
    assert run.parse_method("elastix") == ("elastix", {})
    with pytest.raises(ValueError, match="not key=value"):
        run.parse_method("instance_opt:30")
    with pytest.raises(ValueError, match="unknown method"):
        run.resolve_methods("identity,no_such_method")


def test_identity_method_is_registered_only_during_the_run():
    from napari_deepreg.methods import available_methods

    before = set(available_methods())
    with run.identity_method():
        assert run.IDENTITY in available_methods()
        labels = [m.label for m in run.resolve_methods("all")]
        assert labels[0] == run.IDENTITY and "instance_opt" in labels
        assert {"elastix", "ants_syn", "dipy_syn", "sitk_demons"} <= set(labels)
    assert set(available_methods()) == before


def test_peak_memory_sees_a_large_allocation():
    with run.PeakMemory() as memory:
        block = np.ones(160 * 2**20 // 8)  # 160 MiB, every page touched
        del block
    assert 120 < memory.peak_mib < 1000
    with run.PeakMemory() as idle:
        pass
    assert idle.peak_mib < 60


def test_measure_field_known_answers(phantom):
    zero = np.zeros_like(phantom.true_field)
    at_zero = run.measure_field(phantom, zero)
    assert at_zero["dice_after"] == pytest.approx(run.measure_before(phantom)["dice_before"])
    assert at_zero["fold_percent"] == 0 and at_zero["sdlogj"] == pytest.approx(0, abs=1e-6)
    magnitude = np.sqrt((phantom.true_field**2).sum(0))
    assert at_zero["epe_mm"] == pytest.approx(magnitude[phantom.mask].mean(), rel=1e-5)
    at_truth = run.measure_field(phantom, phantom.true_field)
    assert at_truth["epe_mm"] == pytest.approx(0, abs=1e-6)
    assert at_truth["dice_after"] > 0.97
    # a field that flips space folds everything
    flipped = run.measure_field(phantom, np.stack(
        [-2 * (np.arange(64, dtype=np.float32)[:, None] - 31.5) * np.ones((1, 64), np.float32),
         np.zeros((64, 64), np.float32)]))
    assert flipped["fold_percent"] == pytest.approx(100)


def test_report_averages_over_cases_and_marks_missing_figures():
    rows = [
        {"case": "a", "group": "g", "method": "m", "status": "ok", "dice_after": 0.5,
         "epe_mm": None, "time_s": 1.0},
        {"case": "b", "group": "g", "method": "m", "status": "ok", "dice_after": 0.7,
         "epe_mm": 2.0, "time_s": 3.0},
        {"case": "b", "group": "g", "method": "n", "status": "error", "note": "boom"},
    ]
    summary = report.summarise(rows, ["m", "n"])
    assert summary[0]["dice_after"] == pytest.approx(0.6)
    assert summary[0]["epe_mm"] == pytest.approx(2.0)  # a case without the figure is left out
    assert summary[0]["time_s"] == pytest.approx(2.0) and summary[0]["cases"] == 2
    assert summary[1]["errors"] == 1 and math.isnan(summary[1]["dice_after"])
    table = report.markdown_table(summary, show_cases=True)
    lines = table.splitlines()
    assert lines[0].startswith("| method | Dice before | Dice after | HD95 mm | EPE mm |")
    assert "ref NCC" not in lines[0]  # no case of the group has a reference image
    assert "| m | - | 0.600 | - | 2.00 |" in lines[2]
    assert lines[3].startswith("| n | - |") and lines[3].endswith("| 0 (1 failed) |")


# ----------------------------------------------------------------------------------------------
# end to end


def test_tiny_benchmark_end_to_end(phantom, tmp_path, one_thread):
    methods = f"identity,{FAST_OPT},sitk_demons"
    results = run.run_benchmark(cases=[phantom], methods=methods, out=tmp_path, suite="tiny",
                                device="cpu", log=lambda _: None)
    folder = tmp_path / "tiny"
    for name in ("table.md", "results.json", "dice.png", "time.png"):
        assert (folder / name).is_file(), name
    for name in ("dice.png", "time.png"):
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC

    saved = json.loads((folder / "results.json").read_text())
    assert saved["suite"] == "tiny" and saved["environment"]["torch"] == torch.__version__
    assert [c["name"] for c in saved["cases"]] == ["phantom_2d"]
    rows = {r["method"]: r for r in saved["rows"]}
    assert set(rows) == {"identity", FAST_OPT, "sitk_demons"}
    assert all(r["status"] == "ok" for r in rows.values())
    identity, opt, demons = rows["identity"], rows[FAST_OPT], rows["sitk_demons"]
    assert identity["dice_after"] == pytest.approx(identity["dice_before"])
    assert identity["epe_mm"] > 1.0 and identity["fold_percent"] == 0
    for row in (opt, demons):  # registration beats doing nothing, without folding space
        assert row["dice_after"] > identity["dice_after"] + 0.1
        assert row["epe_mm"] < 0.6 * identity["epe_mm"]
        assert row["hd95_after"] <= identity["hd95_after"]
        assert 0 <= row["fold_percent"] < 1 and row["sdlogj"] > 0
        assert row["time_s"] > 0 and row["cpu_s"] >= 0 and row["peak_mib"] >= 0
    assert results["rows"] == saved["rows"]

    table = (folder / "table.md").read_text()
    assert "## phantom (1 case: phantom_2d)" in table
    line = next(x for x in table.splitlines() if x.startswith(f"| {FAST_OPT} |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert float(cells[2]) == pytest.approx(opt["dice_after"], abs=5e-4)
    assert "sitk_demons: SimpleITK" in table  # the peer's settings are noted


def test_command_line_and_missing_peer(case_cache, tmp_path, monkeypatch, one_thread, capsys):
    from benchmarks import peers, startup

    monkeypatch.setitem(peers.PEERS, "sitk_demons",
                        peers.Peer(peers.PEERS["sitk_demons"].run, lambda: False))
    # the CLI overhead's plumbing; test_cli_overhead_of_a_real_call times a real one
    fake = iter([5.0, 4.0, 3.0, 2.0])
    monkeypatch.setattr(startup, "time_register", lambda extra: {
        "wall_s": (w := next(fake)), "runtime_s": 1.0, "overhead_s": w - 1.0})
    code = run.main(["--cases", "phantom_2d", "--methods", "identity,sitk_demons",
                     "--out", str(tmp_path), "--cache", str(case_cache), "--device", "cpu",
                     "--cli-overhead", "2"])
    assert code == 0
    saved = json.loads((tmp_path / "custom" / "results.json").read_text())
    assert [r["method"] for r in saved["rows"]] == ["identity"]
    assert any("sitk_demons skipped" in n for n in saved["notes"])
    assert saved["cli_overhead"]["figures"]["all outputs"]["overhead_s"] == 3.5
    table = (tmp_path / "custom" / "table.md").read_text()
    assert "sitk_demons skipped" in table
    assert "| lean | --no-report --no-hausdorff | 2.50 | 1.00 | 1.50 |" in table
    assert run.main(["--cases", "phantom_2d", "--methods", "nope", "--out",
                     str(tmp_path)]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_cli_overhead_of_a_real_call():
    from benchmarks import startup

    figures = startup.time_register(startup.VARIANTS["lean"])
    assert figures["wall_s"] > figures["runtime_s"] > 0
    assert figures["overhead_s"] == pytest.approx(figures["wall_s"] - figures["runtime_s"])


def test_heldout_3d_rows_and_means_on_a_shifted_pair(tmp_path):
    """benchmarks.heldout_3d on one small pair whose moving labels are the fixed ones shifted
    by two voxels: the identity keeps the Dice before, instance_opt raises it, the means leave
    the bundled pair apart and the files are written."""
    from benchmarks import heldout, heldout_3d

    rng = np.random.default_rng(0)
    labels = np.zeros((24, 28, 24), np.int32)
    labels[6:18, 7:21, 6:18] = 1
    labels[9:15, 10:18, 9:15] = 2
    image = (labels * 0.4 + 0.05 * rng.random(labels.shape)).astype(np.float32)
    shifted = np.roll(labels, 2, axis=1)
    moving = np.roll(image, 2, axis=1)
    pair = heldout.HeldOutPair("labelmap-0", image, moving, labels, shifted, None, None,
                               (2.0, 2.0, 2.0), {"source": "test"})
    case = heldout_3d.as_case(pair)
    rows = heldout_3d.run([case], "identity,instance_opt", log=lambda *a, **k: None)
    by = {r["method"]: r for r in rows}
    assert by["identity"]["dice_after"] == pytest.approx(by["identity"]["dice_before"])
    assert by["instance_opt"]["dice_after"] > by["instance_opt"]["dice_before"] + 0.1
    entries = heldout_3d.means(rows)
    assert [e["pairs"] for e in entries] == [1, 1] and entries[1]["worse"] == 0
    assert math.isnan(entries[0]["dice_sample"])  # no bundled pair in this run
    assert "| instance_opt | 1 |" in heldout_3d.format_table(entries)


def test_lung_labels_find_two_dark_lungs_inside_a_bright_body():
    from benchmarks.heldout_2d import with_clutter
    from benchmarks.lung_2d import lung_labels

    yy, xx = np.mgrid[:128, :128].astype(float)
    body = ((yy - 64) / 58) ** 2 + ((xx - 64) / 56) ** 2 < 1
    lungs = ((((yy - 55) / 25) ** 2 + ((xx - 40) / 13) ** 2 < 1)
             | (((yy - 55) / 25) ** 2 + ((xx - 88) / 13) ** 2 < 1))
    rng = np.random.default_rng(0)
    image = np.where(body, 120.0, 5.0) - 100.0 * lungs + rng.normal(0, 4, body.shape)
    labels, found_body = lung_labels(image)
    assert set(np.unique(labels)) == {0, 1}
    assert mean_dice(lungs.astype(np.int32), labels) > 0.9
    assert (found_body & body).sum() / body.sum() > 0.95 and not found_body[0, 0]
    # the clutter variant of a case keeps the brain, labels and field and changes the outside
    case = cases.BenchCase(
        name="c", group="2d-slices",
        fixed=cases.Volume(image.astype(np.float32), (1.0, 1.0)),
        moving=cases.Volume(image.astype(np.float32), (1.0, 1.0)),
        fixed_labels=lungs.astype(np.int32), moving_labels=lungs.astype(np.int32))
    cluttered = with_clutter(case, 1)
    inside = lungs
    unit = np.clip(image / np.percentile(image, 99.5), 0, 1)
    np.testing.assert_allclose(cluttered.fixed.array[inside], unit[inside], atol=1e-6)
    assert np.abs(cluttered.fixed.array[~inside] - unit[~inside]).mean() > 0.05
    assert cluttered.fixed_labels is case.fixed_labels and cluttered.name == "c_clutter"


def test_deepsim_lambda_rule_and_sweep_read_finished_runs_only(tmp_path):
    from benchmarks import deepsim_lambda as dl

    def fig(d):
        return {"val_dice": d}
    # best Dice wins; a larger λ within TIE of it wins over it (the smoother field)
    assert dl.pick({0.1: fig(0.764), 0.5: fig(0.760), 2.0: fig(0.732)}) == 0.5
    assert dl.pick({0.1: fig(0.760), 0.5: fig(0.741), 2.0: fig(0.706)}) == 0.1
    for lam, dice in ((0.1, 0.70), (0.5, 0.69), (2.0, 0.68), (0.02, 0.72)):
        run = dl.run_dir(tmp_path, "mse", lam)
        run.mkdir()
        (run / "log.csv").write_text(f"step,val_dice,val_fold_percent\n0,0.6,0\n600,{dice},0\n")
        (run / "model.pt").write_bytes(b"")
    unfinished = dl.run_dir(tmp_path, "mse", 0.004)
    unfinished.mkdir()
    (unfinished / "log.csv").write_text("step,val_dice\n0,0.9\n")  # no model.pt yet
    result = dl.sweep(tmp_path, do_train=False)
    # the pick at the grid's low end (0.1) extends it to 0.02, whose run wins; 0.004 unfinished
    assert result["mse"]["lambda"] == 0.02
    assert set(result["mse"]["runs"]) == {"0.02", "0.1", "0.5", "2.0"}
    assert result["mse"]["runs"]["0.02"]["step"] == 600
