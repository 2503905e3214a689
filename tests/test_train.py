import json
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from mnist_lit.module import LitClassifier
from mnist_lit.train import train
from tests.conftest import CONF, FAST, compose_train, run


def run_cli(*args):
    return run("mnist_lit.train", *args)


def test_experiment_seed_trains_the_tutorials_network_with_adam_at_a_constant_lr(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose_train(["experiment=seed", f"data.root={tiny_root}", "data.val_size=100", f"run_dir={run_dir}",
                         "epochs=1", "trainer.log_every_n_steps=1", *FAST])
    train(cfg)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    model = LitClassifier(**ckpt["hyper_parameters"])
    linears = [m for m in model.net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 1024), (1024, 512), (512, 256), (256, 10)]
    assert {m.p for m in model.net.modules() if isinstance(m, torch.nn.Dropout)} == {0.5}
    opt = ckpt["optimizer_states"][0]["param_groups"][0]
    assert opt["weight_decay"] == 0 and opt["betas"] == (0.9, 0.999)  # AdamW without decay: Adam
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    lrs = [e.value for e in EventAccumulator(str(run_dir / "tensorboard")).Reload().Scalars("train/lr")]
    assert lrs == pytest.approx([1e-4, 1e-4])  # both steps (500 images, batch 256) at 1e-4: no schedule
    seed = compose_train(["experiment=seed"])
    assert 1900 <= seed.epochs * -(-(60000 - seed.data.val_size) // seed.batch_size) <= 2300  # "about 2000 iterations"


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_missing_data_is_one_clear_line(tmp_path):
    r = run_cli(f"data.root={tmp_path}", "data.download=false", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: mnist not found in")
    assert "Traceback" not in r.stderr


def test_the_default_trainer_takes_the_gpu_in_bf16_when_there_is_one(monkeypatch):
    import mnist_lit.runs  # noqa: F401  (registers the config's resolvers)

    cfg = compose_train([])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert (cfg.trainer.accelerator, cfg.trainer.precision, cfg.trainer.devices) == ("cpu", "32-true", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    cfg = compose_train([])
    assert (cfg.trainer.accelerator, cfg.trainer.precision, cfg.trainer.devices) == ("gpu", "bf16-mixed", 1)


def test_gpus_are_counted_through_nvml_only_where_its_library_loads():
    import ctypes
    import subprocess
    import sys

    try:  # where it loads, Lightning's NVML count spares a fork a CUDA start; where not, it was a dlopen every step
        ctypes.CDLL("libnvidia-ml.so.1")
        loads = True
    except OSError:
        loads = False
    kept = loads or not torch.version.cuda
    probe = ("import os, torch, mnist_lit.module; "
             "print(os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK'), torch.cuda.is_available())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == [("1" if kept else "None"), str(torch.cuda.is_available())]


def test_tensorboard_gets_hparams_with_results_and_the_learning_rate(tiny_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    train(compose_train([f"data.root={tiny_root}", "data.val_size=100", f"run_dir={run_dir}", "epochs=2",
                         "batch_size=50", "trainer.log_every_n_steps=2", *FAST]))
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    lr = [e.value for e in events.Scalars("train/lr")]
    assert len(lr) == 10 and max(lr) == pytest.approx(2e-3, rel=0.1) and lr[-1] < lr[len(lr) // 2]  # one cycle
    assert {"hparam/val_acc_best", "hparam/test_acc", "train/loss_step"} <= set(events.Tags()["scalars"])
    assert "epoch" not in events.Tags()["scalars"]  # Lightning's epoch staircase
    assert "custom_scalars__config__" in events.Tags()["tensors"]  # train and val on one chart
    # The HPARAMS tab reads the hparams plugin's data: the settings and the two results.
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["lr"].number_value == pytest.approx(2e-3) and session.hparams["data"].string_value == "mnist"
    assert session.hparams["model.hidden"].string_value == "[1024, 512, 256]"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"hparam/val_acc_best", "hparam/test_acc"}


@pytest.mark.slow
def test_tune_finds_an_lr_or_the_largest_batch_and_trains_nothing(tiny_root, tmp_path):
    common = [f"data.root={tiny_root}", "data.val_size=100", "batch_size=50", *FAST]
    found = train(compose_train([*common, "tune=lr", f"run_dir={tmp_path / 'lr'}"]))
    assert 1e-6 < found["tune/lr"] < 1 and json.loads((tmp_path / "lr" / "tune.json").read_text()) == found
    assert (tmp_path / "lr" / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "lr" / "checkpoints").exists() and not (tmp_path / "lr" / "metrics.json").exists()
    found = train(compose_train([*common, "tune=batch_size", f"run_dir={tmp_path / 'bs'}"]))
    assert found == {"tune/batch_size": 400}  # 50 doubled while the next fits in the 500 training images
    with pytest.raises(ValueError, match="tune='fast' is invalid: use tune=lr"):
        train(compose_train([*common, "tune=fast", f"run_dir={tmp_path / 'x'}"]))


def test_the_progress_bar_redraws_at_most_every_interval_and_at_each_last_batch(tiny_root, tmp_path, monkeypatch):
    from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

    from mnist_lit.callbacks import TimedProgressBar
    from mnist_lit.train import make_trainer

    common = [f"data.root={tiny_root}", f"run_dir={tmp_path}", "trainer.enable_model_summary=false"]
    bars = lambda trainer: [c for c in trainer.callbacks if isinstance(c, ProgressBar)]  # noqa: E731
    assert [type(b) for b in bars(make_trainer(compose_train(common)))] == [TimedProgressBar]
    assert bars(make_trainer(compose_train([*common, "trainer.enable_progress_bar=false"]))) == []
    rich = compose_train([*common, "+callbacks.bar._target_=lightning.pytorch.callbacks.RichProgressBar"])
    assert [type(b) for b in bars(make_trainer(rich))] == [RichProgressBar]  # the config's own bar, alone

    bar, clock = TimedProgressBar(interval=0.5), iter([100.0, 100.1, 100.2, 100.7, 100.8])
    monkeypatch.setattr("mnist_lit.callbacks.time", SimpleNamespace(monotonic=lambda: next(clock)))  # its clock only
    assert [bar._should_update(n, 5) for n in range(1, 6)] == [True, False, False, True, True]  # 5: the last


def test_early_stopping_and_gradient_clipping_come_from_the_config(tiny_root, tmp_path):
    from mnist_lit.train import make_trainer

    cfg = compose_train([f"data.root={tiny_root}", "data.val_size=100", "batch_size=50", "lr=3e-3", "schedule=none",
                         "epochs=20", "callbacks=[default,early_stopping]", "callbacks.early_stopping.patience=1",
                         "trainer.gradient_clip_val=0.5", f"run_dir={tmp_path}", *FAST])
    assert make_trainer(cfg).gradient_clip_val == 0.5
    metrics = train(cfg)
    assert metrics["val/acc_best"] == 1.0 and metrics["epochs"] < 20  # stopped once val/acc stopped rising


@pytest.mark.slow
def test_a_run_prints_its_config_and_summary_without_chatter(tiny_root, tmp_path):
    from mnist_lit.train import CHATTER

    run = tmp_path / "run"
    r = run_cli(f"data.root={tiny_root}", "data.val_size=100", "epochs=1", "batch_size=50",
                f"hydra.run.dir={run}", "trainer.enable_progress_bar=false")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert f"config of {run}:" in out and "    num_classes: 10" in out  # resolved, as a tree
    assert "num_classes: 10" in (run / ".hydra" / "resolved.yaml").read_text()
    assert "Total FLOPs: 2.9 M" in out  # the MLP's 1.46M multiply-adds for one image
    assert not [line for line in out.splitlines() if line.startswith(CHATTER) or "srun" in line
                or "Warning" in line], out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_each_experiment_composes_and_trains_its_own_network(name, tiny_root, tmp_path):
    overrides = [f"experiment={name}", f"data.root={tiny_root}", "data.val_size=100", "epochs=1", "batch_size=50",
                 f"run_dir={tmp_path}", "~logger", *FAST]
    if compose_train(overrides).data.name != "mnist":
        overrides.append("data=mnist")  # the tiny data is MNIST's: the experiment's network and schedule still run
    cfg = compose_train(overrides)
    metrics = train(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["net"] == OmegaConf.to_container(cfg.model, resolve=True)
    assert ckpt["hyper_parameters"]["lr"] == cfg.lr and metrics["epochs"] == 1 and 0 < metrics["test/acc"] <= 1
