"""The training harness: loss goes down, exact resume, run folder, config files, CLI, stopping."""

import json
import os
import signal
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from napari_deepreg import zoo
from napari_deepreg.training import (
    TrainConfig,
    Trainer,
    TrainTask,
    cli_train,
    config_from_dict,
    learning_rate,
    load_checkpoint,
    load_trained_model,
    read_config_file,
    read_csv,
    resample_batch,
)
from napari_deepreg.training.cli import launch_background, resolve_settings
from napari_deepreg.training.config import parse_overrides
from napari_deepreg.training.tasks.toy import ToyConfig, ToyTask


def toy_config(out_dir, **kw):
    base = dict(
        steps=20,
        lr=1e-2,
        batch_size=2,
        val_every=10,
        val_pairs=2,
        checkpoint_every=10,
        keep_checkpoints=0,
        log_every=5,
        seed=3,
        num_threads=1,
        progress="none",
        out_dir=str(out_dir),
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def run20(tmp_path_factory):
    """An uninterrupted 20-step toy run on tiny data (a pool of two pairs)."""
    out = tmp_path_factory.mktemp("run20")
    return Trainer(ToyTask(ToyConfig(pool=2)), toy_config(out), command="test run").fit()


def test_twenty_steps_lower_the_loss(run20):
    rows = [r for r in run20.log if "loss" in r]
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    # each row is the mean over 5 steps; fitting two pairs cuts the loss well down
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"]
    assert rows[-1]["sim"] < 0.6 * rows[0]["sim"]
    assert run20.step == 20 and not run20.interrupted


def test_resume_from_step_10_gives_the_same_final_state(run20, tmp_path):
    ckpt = run20.run_dir / "checkpoints" / "step_0000010.pt"
    assert load_checkpoint(ckpt)["step"] == 10
    resumed = Trainer(ToyTask(ToyConfig(pool=2)), toy_config(tmp_path)).fit(resume=ckpt)
    assert resumed.step == 20
    a = torch.load(run20.model_path, weights_only=True)["state_dict"]
    b = torch.load(resumed.model_path, weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # optimiser moments too, and the log continues with identical figures (not the timings)
    opt_a = load_checkpoint(run20.run_dir / "checkpoints" / "last.pt")["optimizer"]["state"]
    opt_b = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["optimizer"]["state"]
    for k in opt_a:
        assert torch.equal(opt_a[k]["exp_avg_sq"], opt_b[k]["exp_avg_sq"])

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert strip(resumed.log) == strip(run20.log)
    assert [r["step"] for r in read_csv(tmp_path / "log.csv")] == [0, 5, 10, 15, 20]


def test_resume_accepts_settings_added_since_at_their_default_only(run20, tmp_path):
    from napari_deepreg.training.checkpoint import save_checkpoint

    ckpt = load_checkpoint(run20.run_dir / "checkpoints" / "step_0000010.pt")
    saved = json.loads(ckpt["config_json"])

    def resume_with(config: dict, name: str):
        path = save_checkpoint(tmp_path / f"{name}.pt", ckpt | {"config_json": json.dumps(config)})
        cfg = toy_config(tmp_path / name)
        return Trainer(ToyTask(ToyConfig(pool=2)), cfg).fit(resume=path)

    # a checkpoint from before lambda_reg existed ran with its default: it resumes
    older = {k: v for k, v in saved.items() if k != "lambda_reg"}
    assert resume_with(older, "older").step == 20
    # pool is 2 here, not its default 0: a checkpoint without it trained something else
    with pytest.raises(ValueError, match=r"other method settings \['pool'\]"):
        resume_with({k: v for k, v in saved.items() if k != "pool"}, "no_pool")
    with pytest.raises(ValueError, match=r"other method settings \['blobs'\]"):
        resume_with(saved | {"blobs": saved["blobs"] + 1}, "blobs")


def test_prefetching_draws_the_same_batches_and_checkpoints_consistently(run20, tmp_path):
    # 10 steps with batches drawn ahead in a thread, then 10 more without: same as run20
    ahead = Trainer(ToyTask(ToyConfig(pool=2)), toy_config(tmp_path / "p", steps=10, prefetch=3))
    first = ahead.fit()
    rest = Trainer(ToyTask(ToyConfig(pool=2)), toy_config(tmp_path / "r")).fit(
        resume=first.checkpoint
    )
    a = torch.load(run20.model_path, weights_only=True)["state_dict"]
    b = torch.load(rest.model_path, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_from_starts_a_new_run_from_trained_weights(run20, tmp_path):
    # fine-tuning: other method settings (here the loss weight) may differ from the source's
    task = ToyTask(ToyConfig(pool=2, lambda_reg=0.5))
    source = str(run20.model_path)
    tuned = Trainer(task, toy_config(tmp_path, steps=1, val_every=0, init_from=source))
    result = tuned.fit()
    # the zero-step validation row is that of the trained model, not of a random start
    first, trained, untrained = result.log[0], run20.log[-1], run20.log[0]
    assert first["val_epe"] == pytest.approx(trained["val_epe"], rel=1e-4)
    assert abs(first["val_epe"] - untrained["val_epe"]) > 0.05
    assert result.step == 1
    # another method's weights, or another architecture, are refused with the reason
    other = ToyTask(ToyConfig(pool=2, channels=(4, 8)))
    with pytest.raises(ValueError, match="architecture differs"):
        Trainer(other, toy_config(tmp_path / "b", steps=1, init_from=str(run20.model_path))).fit()


def test_run_folder(run20):
    run = run20.run_dir
    rows = read_csv(run / "log.csv")
    assert [r["step"] for r in rows] == [0, 5, 10, 15, 20]
    header = (run / "log.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["step", "loss", "sim", "reg", "lr", "seconds"]
    assert {"val_dice", "val_epe"} <= set(header)
    # validation every 10 steps (and at step 0), on the same held-out pairs
    assert [r["step"] for r in rows if "val_dice" in r] == [0, 10, 20]
    assert len({r["val_dice_before"] for r in rows if "val_dice" in r}) == 1
    assert (run / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((run / "config.json").read_text())
    assert record["method"] == "toy" and record["method_config"]["pool"] == 2
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")) == [
        "last.pt",
        "step_0000010.pt",
        "step_0000020.pt",
    ]
    model = torch.load(run20.model_path, weights_only=True)
    assert json.loads(model["meta_json"])["training_command"] == "test run"
    assert json.loads(model["meta_json"])["dims"] == [2]
    assert run20.best_path is not None and run20.best_path.is_file()
    dice = [(r["val_dice"], r["step"]) for r in run20.log if "val_dice" in r]
    assert (run20.best["value"], run20.best["step"]) == max(dice, key=lambda d: d[0])


# ----------------------------------------------------------------------------- an analytic task


@dataclass
class LineConfig:
    slope: float = 2.0


class LineTask(TrainTask):
    """Fit ``y = slope * x`` with one weight; samples are x = 1, 2, 3... in order (no RNG)."""

    method_id = "line_test"
    config_class = LineConfig

    def __init__(self, config=None, hook=None):
        super().__init__(config)
        self.drawn = 0
        self.hook = hook

    def build_model(self, config):
        model = nn.Linear(1, 1, bias=False)
        nn.init.zeros_(model.weight)
        return model

    def sample(self, split, batch_size, generator):
        if split == "val":
            return {"x": torch.ones(1, 1)}
        x = torch.arange(self.drawn + 1, self.drawn + batch_size + 1, dtype=torch.float32)
        self.drawn += batch_size
        return {"x": x[:, None]}

    def loss(self, model, batch):
        if self.hook is not None:
            self.hook(self.drawn)
        x = batch["x"]
        err = (model(x) - self.config.slope * x).pow(2).mean()
        return err, {"mse": err}


def line_config(tmp_path, **kw):
    base = dict(
        steps=1,
        lr=0.01,
        optimizer="sgd",
        val_pairs=0,
        checkpoint_every=0,
        num_threads=1,
        progress="none",
    )
    base.update(kw)
    return TrainConfig(out_dir=str(tmp_path), **base)


def final_weight(result):
    return torch.load(result.model_path, weights_only=True)["state_dict"]["weight"].item()


def test_one_sgd_step_matches_the_closed_form(tmp_path):
    # x = [1, 2], w0 = 0: grad = 2 (w0 - 2) mean(x^2) = -10, so w1 = 0 - 0.01 * -10 = 0.1
    threads = torch.get_num_threads()
    result = Trainer(LineTask(), line_config(tmp_path, batch_size=2, num_threads=3)).fit()
    assert torch.get_num_threads() == threads  # the thread setting does not leak
    assert final_weight(result) == pytest.approx(0.1)
    assert result.log[-1]["mse"] == pytest.approx(4 * 2.5)


def test_gradient_accumulation_equals_a_larger_batch(tmp_path):
    big = Trainer(LineTask(), line_config(tmp_path / "a", batch_size=4, steps=3)).fit()
    acc = Trainer(LineTask(), line_config(tmp_path / "b", batch_size=2, grad_accum=2, steps=3))
    accumulated = acc.fit()
    assert final_weight(accumulated) == pytest.approx(final_weight(big), rel=1e-6)


def test_a_nan_loss_stops_with_a_clear_error(tmp_path):
    task = LineTask(LineConfig(slope=float("nan")))
    with pytest.raises(FloatingPointError, match="lower train.lr"):
        Trainer(task, line_config(tmp_path)).fit()


def test_sigterm_saves_a_checkpoint_and_resume_finishes(tmp_path):
    def hook(drawn):
        if drawn == 3:  # during step 3
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    cfg = line_config(tmp_path, steps=8, checkpoint_every=100)
    stopped = Trainer(LineTask(hook=hook), cfg).fit()
    assert stopped.interrupted and stopped.step == 3
    assert signal.getsignal(signal.SIGTERM) is before
    assert load_checkpoint(stopped.checkpoint)["step"] == 3
    done = Trainer(LineTask(), cfg).fit(resume="last")
    assert done.step == 8 and not done.interrupted


def test_trained_model_goes_to_the_zoo_and_back(run20, tmp_path):
    entry = zoo.export_to_zoo(run20.model_path, "toy_blobs", zoo_dir=tmp_path)
    assert entry.dims == (2,) and entry.training_command == "test run"
    assert entry.working_resolution == "16x16 @ 1 mm"
    model, config = load_trained_model("toy_blobs", zoo_dir=tmp_path)
    same, _ = load_trained_model(run20.model_path)
    assert config == ToyConfig(pool=2) and not model.training
    batch = ToyTask(config).sample("val", 1, torch.Generator().manual_seed(1))
    pair = torch.cat([batch["fixed"], batch["moving"]], dim=1)
    with torch.no_grad():
        field = model(pair)
        assert torch.equal(field, same(pair))
    assert field.abs().max() > 0.01  # trained weights, not the near-zero initial head

    cfg = line_config(tmp_path, steps=6, checkpoint_every=2, keep_checkpoints=2)
    Trainer(LineTask(), cfg).fit()
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt"))
    assert names == ["last.pt", "step_0000004.pt", "step_0000006.pt"]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 6


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=110, lr=1.0, warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.1)
    assert learning_rate(cfg, 5) == pytest.approx(0.5)
    assert learning_rate(cfg, 10) == pytest.approx(1.0)
    assert learning_rate(cfg, 60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert learning_rate(cfg, 110) == pytest.approx(0.1)
    assert learning_rate(TrainConfig(lr=0.3), 77) == pytest.approx(0.3)


# ----------------------------------------------------------------------------- configs and CLI


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  lr: 1e-3\n  steps: 50\nmethod:\n  working_shape: [24, 20]\n")
    sections = read_config_file(path)
    train = config_from_dict(TrainConfig, sections["train"], section="train")
    assert train.lr == pytest.approx(1e-3) and train.steps == 50  # PyYAML reads 1e-3 as a str
    method = config_from_dict(ToyConfig, sections["method"], section="method")
    assert method.working_shape == (24, 20)
    assert parse_overrides(["train.steps=7", "method.channels=[4,8]", "lr=0.5"]) == {
        "train": {"steps": 7, "lr": 0.5},
        "method": {"channels": [4, 8]},
    }
    (tmp_path / "bad.yaml").write_text("trian:\n  steps: 3\n")
    with pytest.raises(ValueError, match="unknown section"):
        read_config_file(tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match=r"train.stpes"):
        config_from_dict(TrainConfig, {"stpes": 3}, section="train")
    with pytest.raises(ValueError, match="train.steps must be an integer"):
        config_from_dict(TrainConfig, {"steps": "many"}, section="train")
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")


def test_resolve_settings_precedence_and_resume(run20, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"steps": 9, "lr": 0.2}, "method": {"blobs": 5}}))
    task, train, ckpt = resolve_settings(
        "toy", path, overrides=["train.lr=0.4"], steps=11, working_shape="20x24"
    )
    assert (train.steps, train.lr) == (11, 0.4)
    assert ToyTask.default_train["val_every"] == train.val_every  # the task's preference
    assert task.config.blobs == 5 and task.config.working_shape == (20, 24)
    assert ckpt is None and train.out_dir == "runs/toy"
    # resuming takes the method settings from the checkpoint
    last = run20.run_dir / "checkpoints" / "last.pt"
    task, train, ckpt = resolve_settings("toy", resume=str(last))
    assert ckpt == last and task.config.pool == 2 and train.out_dir == str(run20.run_dir)
    with pytest.raises(ValueError, match="no training task"):
        resolve_settings("no_such_method")


def test_cli_train_runs_and_prints_the_export_command(tmp_path, capsys):
    code = cli_train(
        "toy",
        out_dir=tmp_path,
        steps=2,
        overrides=["train.val_pairs=1", "train.progress=none", "method.channels=[4,8]"],
        threads=1,
        working_shape=(12, 10),
    )
    assert code == 0
    assert "napari-deepreg zoo export" in capsys.readouterr().out
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    assert json.loads(model["config_json"])["working_shape"] == [12, 10]
    command = json.loads(model["meta_json"])["training_command"]
    assert command.startswith("napari-deepreg train toy") and "--working-shape 12x10" in command


def test_background_run_writes_its_log(tmp_path):
    argv = [
        "toy",
        "--out",
        str(tmp_path),
        "--steps",
        "2",
        "--set",
        "train.val_pairs=1",
        "--threads",
        "1",
    ]
    proc, log_path = launch_background(argv, tmp_path)
    assert proc.wait(timeout=120) == 0
    assert int((tmp_path / "train.pid").read_text()) == proc.pid
    text = log_path.read_text()
    # not a terminal: plain progress lines, no bar
    assert "step 2/2 (100%)" in text and "\r" not in text
    assert (tmp_path / "model.pt").is_file()


def test_resample_batch_geometry():
    task = ToyTask(ToyConfig(working_shape=(16, 16)))
    batch = task.sample("train", 2, torch.Generator().manual_seed(0))
    small = resample_batch(batch, (6, 6))
    assert small["fixed"].shape == (2, 1, 6, 6)
    assert small["spacing"] == (3.0, 3.0)  # 15 mm span over 5 intervals
    assert small["fixed_labels"].dtype == torch.int64
    assert set(small["fixed_labels"].unique().tolist()) <= {0, 1}
    # corner voxels keep their positions and a constant field keeps its mm values
    assert small["fixed_labels"][0, 0, 0, 0] == batch["fixed_labels"][0, 0, 0, 0]
    assert torch.allclose(small["field"][:, :, 2, 3], batch["field"][:, :, 0, 0])
    with pytest.raises(ValueError, match="must have 2 dims"):
        resample_batch(batch, (6, 6, 6))


def test_cached_model_is_read_once_and_again_after_a_rewrite(run20, tmp_path):
    import shutil

    from napari_deepreg.training.task import load_cached_model
    from napari_deepreg.volume import InputError

    path = tmp_path / "model.pt"
    shutil.copy(run20.model_path, path)
    first = load_cached_model(str(path), "cpu", ToyConfig, "toy")
    assert load_cached_model(str(path), "cpu", ToyConfig, "toy")[0] is first[0]
    os.utime(path, (1, 1))  # a newer training run rewrote the file
    assert load_cached_model(str(path), "cpu", ToyConfig, "toy")[0] is not first[0]
    with pytest.raises(InputError, match="not a semantic_bspline model"):
        load_cached_model(str(path), "cpu", int, "semantic_bspline")
