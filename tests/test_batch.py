"""Cohort registration on Dask (``napari_deepreg.batch``), on a LocalCluster of 2 worker processes.

The pairs are small synthetic 3D images (24^3, a ball and a box with labels, the moving one
shifted); the method is a cheap instance optimisation (1 level, 2 iterations, no affine stage),
so the tests measure the batch machinery, not the registration.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_deepreg import cli
from napari_deepreg.batch import (
    FAILED,
    OK,
    SKIPPED,
    BatchJob,
    Pair,
    PairOutcome,
    pairs_from_pattern,
    pairs_to_atlas,
    plan_cluster,
    read_cohort_table,
    read_pairs_csv,
    register_pair,
    run_batch,
)
from napari_deepreg.io import MANIFEST, read_manifest, write_volume
from napari_deepreg.volume import InputError, Volume

distributed = pytest.importorskip("distributed")

METHOD = "instance_opt"
PARAMS = {"levels": 1, "iterations": 2, "affine_first": False}
CLI_PARAMS = ["--param", "levels=1", "--param", "iterations=2", "--param", "affine_first=false"]
SHAPE = (24, 24, 24)


@pytest.fixture(scope="module")
def cluster_address():
    """A LocalCluster with 2 worker processes of 1 thread, loopback only, for the module."""
    import cloudpickle

    # the fault-injecting task below lives in this module, which the workers cannot import
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=50,
    )
    yield cluster.scheduler_address
    cluster.close()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _phantom(shift: int) -> tuple[np.ndarray, np.ndarray]:
    """A ball (label 1) and a box (label 2) on a 24^3 grid, moved by ``shift`` voxels in x."""
    z, y, x = np.indices(SHAPE)
    ball = (z - 12) ** 2 + (y - 9) ** 2 + (x - 9 - shift) ** 2 <= 25
    box = (abs(z - 12) <= 3) & (abs(y - 16) <= 3) & (abs(x - 15 - shift) <= 3)
    labels = np.zeros(SHAPE, np.int32)
    labels[ball], labels[box] = 1, 2
    image = 0.1 + 0.6 * ball + 0.9 * box
    return image.astype(np.float32), labels


def _write(path: Path, array: np.ndarray, labels: bool = False) -> Path:
    write_volume(Volume(array, spacing=(2.0, 2.0, 2.0)), path, labels=labels)
    return path


def _cohort(folder: Path, names: tuple[str, ...] = ("a", "b", "c")) -> Path:
    """One fixed image and a moving image per subject; returns the pair list (relative paths)."""
    data = folder / "data"
    data.mkdir(parents=True)
    fixed, fixed_labels = _phantom(0)
    _write(data / "fixed.nii.gz", fixed)
    _write(data / "fixed_labels.nii.gz", fixed_labels, labels=True)
    lines = ["name,fixed,moving,fixed_labels,moving_labels"]
    for shift, name in enumerate(names, start=1):
        moving, moving_labels = _phantom(shift)
        _write(data / f"{name}.nii.gz", moving)
        _write(data / f"{name}_labels.nii.gz", moving_labels, labels=True)
        lines.append(f"{name},data/fixed.nii.gz,data/{name}.nii.gz,data/fixed_labels.nii.gz,"
                     f"data/{name}_labels.nii.gz")
    table = folder / "pairs.csv"
    table.write_text("\n".join(lines) + "\n")
    return table


def _stamps(out: Path, names) -> dict[str, int]:
    """Modification times of the pairs' manifests (a rewrite changes them)."""
    return {n: (out / n / MANIFEST).stat().st_mtime_ns for n in names}


def _run(pairs, out, address, **kwargs):
    return run_batch(pairs, out, METHOD, PARAMS, scheduler=address, hausdorff=False, **kwargs)


# --------------------------------------------------------------------------- without a cluster


def test_pair_list_from_csv_pattern_and_atlas(tmp_path):
    table = _cohort(tmp_path)
    pairs = read_pairs_csv(table)
    assert [p.name for p in pairs] == ["a", "b", "c"]
    assert pairs[0].moving == tmp_path / "data" / "a.nii.gz"  # relative to the CSV's folder
    assert pairs[0].fixed_points is None and pairs[0].inputs()["fixed"].endswith("fixed.nii.gz")

    atlas = tmp_path / "data" / "fixed.nii.gz"
    (tmp_path / "to_atlas.csv").write_text("moving\ndata/a.nii.gz\n# skipped\ndata/a.nii.gz\n")
    to_atlas = read_pairs_csv(tmp_path / "to_atlas.csv", atlas=atlas)
    assert [p.name for p in to_atlas] == ["a", "a-2"] and to_atlas[1].fixed == atlas
    with pytest.raises(InputError, match="atlas is the fixed image"):
        read_pairs_csv(table, atlas=atlas)
    (tmp_path / "bad.csv").write_text("fixed,moving,colour\nf,m,red\n")
    with pytest.raises(InputError, match="unknown columns"):
        read_pairs_csv(tmp_path / "bad.csv")

    pattern = str(tmp_path / "data" / "{subject}.nii.gz")
    found = pairs_from_pattern({"moving": pattern, "moving_labels": pattern.replace(
        ".nii", "_labels.nii")}, atlas=atlas)
    # "fixed" and the label maps also match the glob: every stem is a subject
    assert {"a", "b", "c"} <= {p.name for p in found}
    assert next(p for p in found if p.name == "b").moving_labels.name == "b_labels.nii.gz"
    assert [p.name for p in pairs_to_atlas([tmp_path / "x.nii.gz"], atlas)] == ["x"]
    with pytest.raises(InputError, match="output folder"):
        Pair("../up", atlas, atlas)


def test_plan_cluster_keeps_within_the_cores():
    plan = plan_cluster(10, cores=8, memory=64 * 2**30)
    assert (plan.workers, plan.threads_per_worker, plan.torch_threads) == (4, 1, 2)
    assert plan_cluster(1, cores=8, memory=64 * 2**30).workers == 1  # no more than the tasks
    assert plan_cluster(10, cores=8, memory=4 * 2**30).workers == 1  # memory bound
    assert plan_cluster(10, workers=2, threads_per_worker=2, cores=8).torch_threads == 2
    assert plan_cluster(10, gpus=3, cores=8, memory=64 * 2**30).workers == 3


def test_cli_usage_and_bad_parameters_fail_before_any_work(tmp_path, capsys):
    assert cli.main(["batch", "--help"]) == 0
    assert "cohort.csv" in capsys.readouterr().out
    _cohort(tmp_path)
    out = tmp_path / "out"
    pattern = str(tmp_path / "data" / "{subject}.nii.gz")
    atlas = str(tmp_path / "data" / "fixed.nii.gz")
    assert cli.main(["batch", pattern, "--atlas", atlas, "--out", str(out),
                     "--param", "bogus=1"]) == 2
    assert "unknown parameter 'bogus'" in capsys.readouterr().err
    assert cli.main(["batch", pattern, "--pattern", "colour=x", "--atlas", atlas,
                     "--out", str(out)]) == 2
    assert "ROLE=TEMPLATE" in capsys.readouterr().err
    assert cli.main(["batch", str(tmp_path / "none.csv"), "--out", str(out)]) == 2
    assert not out.exists()


# --------------------------------------------------------------------------- on the cluster


def test_three_pairs_then_a_rerun_does_nothing(tmp_path, cluster_address):
    pairs = read_pairs_csv(_cohort(tmp_path))
    out = tmp_path / "out"
    said = []
    # run_batch's own LocalCluster (the default path), 2 worker processes of 1 thread
    result = run_batch(pairs, out, METHOD, PARAMS, workers=2, threads_per_worker=1,
                       hausdorff=False, log=said.append)
    assert [o.status for o in result.outcomes] == [OK, OK, OK], [o.error for o in result.outcomes]
    assert any("local cluster: 2 workers x 1 threads" in line for line in said), said
    assert len({o.worker for o in result.outcomes}) == 2  # both workers took pairs
    for name in ("a", "b", "c"):
        manifest = read_manifest(out / name)
        assert manifest["complete"] is True and manifest["parameters"]["iterations"] == 2
        assert {"warped.nii.gz", "field.nii.gz", "report.png", "labels.csv"} <= set(
            manifest["files"])
    rows = read_cohort_table(out / "cohort.csv")
    assert [(r["pair"], r["status"], r["out_dir"]) for r in rows] == [
        ("a", "ok", "a"), ("b", "ok", "b"), ("c", "ok", "c")]
    assert all(0 <= float(r["dice_before"]) <= 1 and r["fold_percent"] != "" for r in rows)
    assert float(rows[0]["worker_peak_mb"]) > 50 and float(rows[0]["runtime_s"]) > 0
    labels = read_cohort_table(out / "cohort_labels.csv")
    assert sorted({(r["pair"], r["label"]) for r in labels}) == [
        (n, lab) for n in "abc" for lab in ("1", "2")]
    assert result.plot is not None and result.plot.stat().st_size > 1000

    stamps = _stamps(out, "abc")
    said.clear()
    again = run_batch(pairs, out, METHOD, PARAMS, hausdorff=False, log=said.append)
    assert [o.status for o in again.outcomes] == [SKIPPED] * 3
    assert not any("cluster" in line for line in said)  # nothing to do: no cluster started
    assert _stamps(out, "abc") == stamps  # nothing re-registered
    # the cohort table of the rerun still carries the figures, read back from each folder
    assert read_cohort_table(out / "cohort.csv")[1]["dice_after"] == rows[1]["dice_after"]
    # another parameter is another run: the pairs are redone
    changed = run_batch(pairs[:1], out, METHOD, {**PARAMS, "iterations": 3},
                        scheduler=cluster_address, hausdorff=False, report=False)
    assert changed.outcomes[0].status == OK
    assert "report.png" not in read_manifest(out / "a")["files"]
    assert not (out / "a" / "report.png").exists()  # write_outputs removed its stale file


def kill_worker_once(pair: Pair, job: BatchJob) -> PairOutcome:
    """Kill this worker process the first time pair ``b`` runs (a marker file remembers)."""
    marker = Path(job.out_dir).parent / f"killed-{pair.name}"
    if pair.name == "b" and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)  # as the OOM killer would: no clean-up, no reply to the scheduler
    return register_pair(pair, job)


def test_a_killed_worker_loses_no_result(tmp_path, cluster_address):
    pairs = read_pairs_csv(_cohort(tmp_path))
    out = tmp_path / "out"
    result = _run(pairs, out, cluster_address, report=False, task=kill_worker_once)
    assert (tmp_path / "killed-b").exists()  # the worker did die on b
    assert [o.status for o in result.outcomes] == [OK, OK, OK], [o.error for o in result.outcomes]
    for name in "abc":
        assert read_manifest(out / name)["complete"] is True
    # the worker that ran b the second time is not the one that died
    assert result.outcomes[1].worker and result.outcomes[1].peak_mb


def test_a_bad_pair_is_recorded_and_a_rerun_retries_only_it(tmp_path, cluster_address):
    table = _cohort(tmp_path, names=("a", "b", "c", "d"))
    nan_image, _ = _phantom(2)
    nan_image[3, 4, 5] = np.nan
    # MetaImage keeps a NaN; SimpleITK reads one in a NIfTI file as 0 (so the io reader does)
    _write(tmp_path / "data" / "b.mha", nan_image)
    table.write_text(table.read_text().replace("data/b.nii.gz", "data/b.mha"))
    (tmp_path / "data" / "c.nii.gz").unlink()
    out = tmp_path / "out"

    code = cli.main(["batch", str(table), "--out", str(out), "--method", METHOD, *CLI_PARAMS,
                     "--scheduler", cluster_address, "--no-hausdorff", "--no-report", "-q"])
    assert code == 3  # some pairs failed
    rows = {r["pair"]: r for r in read_cohort_table(out / "cohort.csv")}
    assert [rows[n]["status"] for n in "abcd"] == ["ok", "failed", "failed", "ok"]
    assert "NaN" in rows["b"]["error"] and "moving" in rows["b"]["error"]
    assert "not found" in rows["c"]["error"] and rows["c"]["dice_after"] == ""
    assert read_manifest(out / "b") is None  # nothing written for a failed pair

    good = _stamps(out, "ad")
    _write(tmp_path / "data" / "b.mha", _phantom(2)[0])
    _write(tmp_path / "data" / "c.nii.gz", _phantom(3)[0])
    code = cli.main(["batch", str(table), "--out", str(out), "--method", METHOD, *CLI_PARAMS,
                     "--scheduler", cluster_address, "--no-hausdorff", "--no-report", "-q"])
    assert code == 0
    rows = {r["pair"]: r for r in read_cohort_table(out / "cohort.csv")}
    assert [rows[n]["status"] for n in "abcd"] == ["skipped", "ok", "ok", "skipped"]
    assert _stamps(out, "ad") == good  # the pairs that had finished were not redone


def test_a_folder_that_holds_a_users_file_fails_before_any_work(tmp_path, cluster_address):
    pairs = read_pairs_csv(_cohort(tmp_path, names=("a",)))
    (tmp_path / "out" / "a").mkdir(parents=True)
    (tmp_path / "out" / "a" / "warped.nii.gz").write_text("the user's")
    seen = []
    result = _run(pairs, tmp_path / "out", cluster_address, on_outcome=seen.append)
    assert result.outcomes[0].status == FAILED and "not written by" in result.outcomes[0].error
    assert seen == result.outcomes and result.plot is None
    assert (tmp_path / "out" / "a" / "warped.nii.gz").read_text() == "the user's"


def test_the_cohort_files_follow_the_output_rules(tmp_path, monkeypatch):
    """cohort.csv, cohort_labels.csv and cohort.png are listed in the cohort folder's
    outputs.json; a user's file of those names is kept (refused before any work) unless
    overwrite; an empty or linked folder is refused (issue 18). No cluster starts: the one pair
    fails its folder check."""
    from napari_deepreg.batch import COHORT_CSV, COHORT_LABELS_CSV, COHORT_PNG

    pairs = read_pairs_csv(_cohort(tmp_path, names=("a",)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_text("a file where the pair's folder would go")
    (out / COHORT_CSV).write_text("the user's table")
    (out / COHORT_PNG).write_bytes(b"the user's plot")
    with pytest.raises(InputError, match=COHORT_CSV):
        run_batch(pairs, out, "instance_opt", {"iterations": 1})
    assert (out / COHORT_CSV).read_text() == "the user's table"
    assert not (out / COHORT_LABELS_CSV).exists() and not (out / MANIFEST).exists()

    result = run_batch(pairs, out, "instance_opt", {"iterations": 1}, overwrite=True)
    assert result.outcomes[0].status == FAILED and result.plot is None
    assert read_cohort_table(out / COHORT_CSV)[0]["status"] == FAILED
    assert (out / COHORT_PNG).read_bytes() == b"the user's plot"  # not ours: not removed
    listed = read_manifest(out)["other_files"]
    assert {COHORT_CSV, COHORT_LABELS_CSV} <= set(listed)
    assert listed[COHORT_CSV]["command"] == "napari-deepreg batch"
    (out / COHORT_PNG).unlink()
    assert run_batch(pairs, out, "instance_opt", {"iterations": 1}).outcomes[0].status == FAILED

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="empty"):
        run_batch(pairs, "", "instance_opt", {"iterations": 1})
    assert not (tmp_path / COHORT_CSV).exists()
    link = tmp_path / "link"
    link.symlink_to(out, target_is_directory=True)
    with pytest.raises(InputError, match="symbolic link"):
        run_batch(pairs, link, "instance_opt", {"iterations": 1})


def test_batch_overwrite_reaches_the_pairs_folders(tmp_path):
    pairs = read_pairs_csv(_cohort(tmp_path, names=("a",)))
    job = BatchJob(out_dir=tmp_path / "out", method="instance_opt", what=("warped",),
                   overwrite=True)
    (tmp_path / "out" / "a").mkdir(parents=True)
    (tmp_path / "out" / "a" / "warped.nii.gz").write_text("the user's")
    from napari_deepreg.batch.run import _precheck

    assert _precheck(pairs[0], job) is None  # with overwrite the user's file is no obstacle
