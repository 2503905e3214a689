"""Nothing lost: a run killed mid-epoch resumes to the same result, checkpoints are written atomically,
the same seed gives the same numbers, and runs never share a folder."""
import errno
import os
import signal
import time

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from mnist_lit import runs
from mnist_lit.callbacks import AtomicCheckpointIO, BackgroundCheckpointIO
from mnist_lit.checkpoint import CheckpointError
from mnist_lit.train import train
from tests.conftest import SMALL, comparable, compose_train, start

class KillAt(Callback):
    """Test only: the training process sends itself $KILL_AT='epoch:batch:SIGNAL' (e.g. 1:4:SIGKILL)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        epoch, step, name = (os.environ.get("KILL_AT") or "-1:-1:-").split(":")
        if (trainer.current_epoch, batch_idx) == (int(epoch), int(step)):
            # The previous epoch's checkpoint may still be being written by BackgroundCheckpointIO's thread (a few
            # tiny batches can outrun it): the kill comes once it is on disk, so what it leaves is known.
            trainer.strategy.checkpoint_io.teardown()
            os.kill(os.getpid(), getattr(signal, name))


def cli(args, kill_at=""):
    return start("mnist_lit.train", *args, KILL_AT=kill_at)


def finish(proc):
    out, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.mark.slow
def test_killed_twice_mid_epoch_then_resumed_equals_an_uninterrupted_run(tiny_root, tmp_path):
    common = [f"data.root={tiny_root}", "data.val_size=100", "epochs=3", "batch_size=50", "lr=3e-3", "seed=1",
              "+callbacks.kill._target_=tests.test_resume.KillAt", *SMALL]  # 10 steps an epoch, dropout on
    ref, run = tmp_path / "ref", tmp_path / "run"
    reference = cli([*common, f"hydra.run.dir={ref}"])

    # SIGTERM in epoch 1, batch 4: Lightning stops, the run says how to resume, exit status 143.
    rc, err = finish(cli([*common, f"hydra.run.dir={run}"], kill_at="1:4:SIGTERM"))
    assert rc == 143, err
    assert err.strip().splitlines()[-1] == f"error: stopped by SIGTERM: resume with python -m mnist_lit.train resume={run}"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    original_config = (run / ".hydra" / "config.yaml").read_text()

    # Resumed, then SIGKILLed in epoch 2, batch 3: nothing can be saved, last.ckpt stays whole (epoch 1).
    rc, err = finish(cli([f"resume={run}"], kill_at="2:3:SIGKILL"))
    assert rc == -signal.SIGKILL, err
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1

    rc, err = finish(cli([f"resume={run}"]))
    assert rc == 0, err
    assert finish(reference)[0] == 0
    assert comparable(run) == comparable(ref)  # test/acc, test/loss, val/acc_best, epochs, per-class...
    final, expected = (torch.load(r / "checkpoints" / "last.ckpt", weights_only=True) for r in (run, ref))
    assert final["global_step"] == expected["global_step"] == 30
    for key, value in expected["state_dict"].items():
        assert torch.equal(final["state_dict"][key], value), key

    # Same folder: the original config kept, each resume's own config beside it, TensorBoard appended to.
    assert (run / ".hydra" / "config.yaml").read_text() == original_config
    assert len(list(run.glob(".hydra/resumed-*/config.yaml"))) >= 1
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) > len(
        list((ref / "tensorboard").glob("events.out.tfevents.*")))


def test_same_seed_deterministic_gives_identical_metrics(tiny_root, tmp_path):
    common = [f"data.root={tiny_root}", "data.val_size=100", "epochs=2", "batch_size=50", "seed=3",
              "trainer.deterministic=true", *SMALL]
    first, second = (train(compose_train([*common, f"run_dir={tmp_path / name}"])) for name in ("a", "b"))
    assert comparable(tmp_path / "a") == comparable(tmp_path / "b")
    assert first["test/loss"] == second["test/loss"]


def test_disk_full_while_saving_is_one_clear_error_and_keeps_the_previous_checkpoint(tiny_root, tmp_path,
                                                                                     monkeypatch):
    real_save, calls = torch.save, []

    def save_until_the_disk_is_full(obj, f):
        calls.append(f.name)
        if len(calls) > 2:  # epoch 0 saved best.ckpt and last.ckpt; epoch 1 runs out of space half-way
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save_until_the_disk_is_full)
    run = tmp_path / "run"
    cfg = compose_train([f"data.root={tiny_root}", "data.val_size=100", "epochs=2", "batch_size=50",
                         f"run_dir={run}", *SMALL])
    with pytest.raises(CheckpointError, match=r"the disk is full; the previous \w+\.ckpt is intact; free space") as e:
        train(cfg)
    assert "\n" not in str(e.value)
    monkeypatch.undo()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    assert not list(run.glob("checkpoints/*.tmp"))


def test_a_checkpoint_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)
    io.save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 2} and os.listdir(tmp_path) == ["last.ckpt"]


def test_a_background_checkpoint_write_keeps_a_copy_and_a_read_waits_for_it(tmp_path, monkeypatch):
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: (time.sleep(0.3), real_save(obj, f)))  # a slow disk
    io, w, path = BackgroundCheckpointIO(), torch.zeros(1000), tmp_path / "last.ckpt"
    io.save_checkpoint({"w": w}, path)
    w += 1  # training goes on while the write is under way
    assert torch.equal(io.load_checkpoint(path)["w"], torch.zeros(1000))
    io.teardown()


def test_runs_started_in_the_same_second_get_different_folders(tmp_path, monkeypatch):
    base = str(tmp_path / "outputs" / "2026-01-01" / "12-00-00")
    first = runs.new_run_dir(base)
    monkeypatch.setattr(runs, "_new_dirs", {})  # as in a second process started in the same second
    second = runs.new_run_dir(base)
    assert (first, second) == (base, base + "_1")
    assert runs.new_run_dir(base) == second  # asked again by Hydra: the same folder


lrs = []


class LR(Callback):
    """Records the learning rate of each training step."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_resume_with_more_epochs_extends_the_run_and_its_schedule(tiny_root, tmp_path):
    run = tmp_path / "run"
    base = [f"data.root={tiny_root}", "data.val_size=100", "batch_size=50", "lr=3e-3", *SMALL]
    train(compose_train([*base, "epochs=1", f"run_dir={run}"]))  # 500 images: 10 steps an epoch
    lrs.clear()
    metrics = train(compose_train([*base, "epochs=3", f"resume={run}", f"run_dir={run}",
                                   "+callbacks.lr._target_=tests.test_resume.LR"]))
    assert metrics["epochs"] == 3 and len(lrs) == 20  # the two new epochs, continuing from step 10
    # The one-cycle schedule laid over the 30 steps of the new total, from step 10 on.
    opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=30)
    want = []
    for _ in range(30):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx(want[10:], rel=1e-6)
    # A finished run with nothing to add says so, and keeps its results.
    before = (run / "metrics.json").read_text()
    with pytest.raises(runs.ConfigError, match=r"has trained all of its 3 epoch\(s\) and epochs=3: to train it longer, "
                                              r"resume with epochs=4 or more"):
        train(compose_train([*base, "epochs=3", f"resume={run}", f"run_dir={run}"]))
    assert (run / "metrics.json").read_text() == before


@pytest.mark.slow
def test_a_sweep_run_again_in_its_folder_keeps_finished_jobs_and_runs_the_rest(tiny_root, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "lr=3e-3,1e-3", f"data.root={tiny_root}", "data.val_size=100", "epochs=1", "batch_size=50",
            f"hydra.sweep.dir={sweep}", *SMALL]
    code, err = finish(cli(args))
    assert code == 0, err
    first = (sweep / "0" / "metrics.json").read_text()
    (sweep / "1" / "metrics.json").unlink()  # job 1 as if it had been stopped after training, before its test
    proc = cli(args)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"{sweep / '0'} finished earlier: kept" in out and (sweep / "0" / "metrics.json").read_text() == first
    assert (sweep / "1" / "metrics.json").is_file()
    assert len((sweep / "summary.csv").read_text().splitlines()) == 3
