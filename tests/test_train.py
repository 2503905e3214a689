import json
import os
import subprocess
import sys

import pytest
import torch

from mnist_lit.module import LitClassifier
from mnist_lit.train import train
from tests.conftest import FAST, ROOT, compose_train


def run_cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mnist_lit.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_experiment_seed_is_the_tutorials_hyperparameters():
    cfg = compose_train(["experiment=seed"])
    assert (cfg.lr, cfg.batch_size, cfg.dropout, cfg.schedule) == (1e-4, 256, 0.5, "none")
    assert cfg.model.dropout == 0.5 and cfg.data.batch_size == 256
    steps = cfg.epochs * -(-(60000 - cfg.data.val_size) // cfg.batch_size)
    assert 1900 <= steps <= 2300  # "about 2000 iterations"


def test_short_fit_writes_metrics_checkpoints_and_logs(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose_train([f"data.root={tiny_root}", "data.val_size=100", f"run_dir={run_dir}", "epochs=3",
                         "batch_size=50", "lr=3e-3", *FAST])
    metrics = train(cfg)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved == metrics
    assert {"test/acc", "test/loss", "val/acc_best", "epochs", "train_seconds"} <= saved.keys()
    assert saved["epochs"] == 3 and saved["test/acc"] > 0.9  # the tiny data is easy
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert any((run_dir / "tensorboard").glob("events.out.tfevents.*"))

    # The checkpoint holds plain values only and rebuilds the network.
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["classes"] == list("0123456789")
    model = LitClassifier(**ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])


def test_multirun_sweep_writes_a_summary_best_first(tiny_root, tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli("-m", "lr=1e-4,3e-3", f"data.root={tiny_root}", "data.val_size=100", "epochs=2",
                "batch_size=50", f"hydra.sweep.dir={sweep}", *FAST)
    assert r.returncode == 0, r.stderr
    lines = (sweep / "summary.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("run,overrides,status,test/acc")
    val = lines[0].split(",").index("val/acc_best")  # ranked by validation accuracy, never by test accuracy
    accs = [float(line.split(",")[val]) for line in lines[1:]]
    assert accs == sorted(accs, reverse=True)
    assert "lr=" in (sweep / "summary.md").read_text()
    for job in ("0", "1"):
        assert (sweep / job / "metrics.json").is_file() and (sweep / job / ".hydra" / "config.yaml").is_file()
    # The per-class table and confusion matrix stay in each run's metrics.json, out of the one-row-per-run table.
    assert "test/per_class" in json.loads((sweep / "0" / "metrics.json").read_text())
    assert "per_class" not in lines[0] and "confusion" not in lines[0]


def test_missing_data_is_one_clear_line(tmp_path):
    r = run_cli(f"data.root={tmp_path}", "data.download=false", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: mnist not found in")
    assert "Traceback" not in r.stderr


def test_the_default_trainer_takes_the_gpu_in_bf16_when_there_is_one(monkeypatch):
    import mnist_lit.train  # noqa: F401  (registers the config's resolvers)

    cfg = compose_train([])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert (cfg.trainer.accelerator, cfg.trainer.precision, cfg.trainer.devices) == ("cpu", "32-true", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    cfg = compose_train([])
    assert (cfg.trainer.accelerator, cfg.trainer.precision, cfg.trainer.devices) == ("gpu", "bf16-mixed", 1)


def test_tensorboard_gets_hparams_with_results_and_the_learning_rate(tiny_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    train(compose_train([f"data.root={tiny_root}", "data.val_size=100", f"run_dir={run_dir}", "epochs=2",
                         "batch_size=50", "trainer.log_every_n_steps=2", *FAST]))
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    lr = [e.value for e in events.Scalars("train/lr")]
    assert len(lr) == 10 and max(lr) == pytest.approx(2e-3, rel=0.1) and lr[-1] < lr[len(lr) // 2]  # one cycle
    assert {"hparam/val_acc_best", "hparam/test_acc", "train/loss_step"} <= set(events.Tags()["scalars"])
    # The HPARAMS tab reads the hparams plugin's data: the settings and the two results.
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["lr"].number_value == pytest.approx(2e-3) and session.hparams["data"].string_value == "mnist"
    assert session.hparams["model.hidden"].string_value == "[1024, 512, 256]"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"hparam/val_acc_best", "hparam/test_acc"}
