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
