"""Bad input gets one line saying what is wrong and how to fix it, a non-zero exit, and no traceback."""
import re

import pytest
import torch
from hydra.errors import ConfigCompositionException

from mnist_lit.checkpoint import CheckpointError
from mnist_lit.augment import PRESETS
from mnist_lit.data import DataError, MNISTDataModule
from mnist_lit.train import ConfigError, train
from tests.conftest import compose_train, start as run_module
from tests.conftest import SMALL


def start(args, **env):
    return run_module("mnist_lit.train", *args, **env)


@pytest.mark.slow
def test_command_line_errors_are_short_and_exit_non_zero(tiny_root, tmp_path):
    runs = iter(range(10))
    run = lambda: f"hydra.run.dir={tmp_path / f'run{next(runs)}'}"  # noqa: E731
    cases = {  # started together, each in its own folder: each fails before training
        "unknown key": (start(["foo=1", run()]), "Could not override 'foo'.", "To append to your config use +foo=1"),
        "lr": (start([f"data.root={tiny_root}", "lr=0", run()]), "error: lr=0 is invalid: use a number > 0, e.g. lr=1e-3",
               None),
        "resume": (start([f"resume={tmp_path / 'nothing'}", run()]),
                   f"error: resume={tmp_path / 'nothing'} is not a run folder (it has no .hydra/): pass a run's folder, "
                   f"e.g. resume=outputs/<date>/<time>", None),
        "augment": (start([f"data.root={tiny_root}", "data.augment=flip", run()]),  # raised inside instantiate()
                    f"error: unknown data.augment='flip': use one of {', '.join(PRESETS)}, or settings such as "
                    "data.augment={translate:2,degrees:10}", None),
        "full error": (start([f"data.root={tiny_root}", "lr=0", run()], HYDRA_FULL_ERROR="1"), "Traceback", None),
    }
    for name, (proc, first, second) in cases.items():
        _, err = proc.communicate(timeout=120)
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == 1, (name, err)
        if name == "full error":  # HYDRA_FULL_ERROR=1 asks for the traceback
            assert "Traceback" in err and "ConfigError: lr=0 is invalid" in err
            continue
        assert "Traceback" not in err, name
        if second is None:  # ours: exactly one line on stderr
            assert lines == [first], (name, err)
        else:  # Hydra's own: the problem, then the fix, in a few lines
            assert lines[:2] == [first, second], (name, err)
    assert sorted(tmp_path.glob("run*")) == []  # no empty run folder left for TensorBoard to list


def test_unknown_config_option_names_the_options():
    # The command line prints this message and the available options (cnn, mlp), without a traceback.
    with pytest.raises(ConfigCompositionException, match="Could not find 'model/nope'"):
        compose_train(["model=nope"])


@pytest.mark.parametrize("override, message", [
    ("lr=-1", "lr=-1 is invalid: use a number > 0, e.g. lr=1e-3"),
    ("batch_size=0", "batch_size=0 is invalid: use a whole number > 0, e.g. batch_size=128"),
    ("batch_size=1.5", "batch_size=1.5 is invalid: use a whole number > 0"),
    ("dropout=1.0", "dropout=1.0 is invalid: use in [0, 1), e.g. dropout=0.2"),
    ("dropout=-0.1", "dropout=-0.1 is invalid: use in [0, 1)"),
    ("lr=inf", "lr=inf is invalid: use a number > 0"),
    ("epochs=0", "epochs=0 is invalid: use a whole number > 0, e.g. epochs=10"),
    ("epochs=-1", "epochs=-1 is invalid"),
    ("epochs=1.5", "epochs=1.5 is invalid"),
    ("epochs=abc", "epochs='abc' is invalid"),
    ("seed=-1", "seed=-1 is invalid: use a whole number >= 0, e.g. seed=1"),
    ("seed=abc", "seed='abc' is invalid"),
    ("label_smoothing=2", "label_smoothing=2 is invalid: use in [0, 1), e.g. label_smoothing=0.1"),
    ("schedule=foo", "schedule='foo' is invalid: use one of none, onecycle, cosine"),
    ("model.hidden=[0]", "model.hidden=[0] is invalid: use whole numbers > 0, e.g. model.hidden=[512,256]"),
    ("model.hidden=[-5]", "model.hidden=[-5] is invalid"),
    ("trainer.devices=3", "batch_size=256 does not divide over 3 processes (trainer.devices x trainer.num_nodes): "
                          "use a multiple of 3"),
    pytest.param("trainer=gpu", "trainer=gpu but torch sees no CUDA GPU here: train on the CPU with trainer=cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
    pytest.param("trainer=mps", "trainer.accelerator=mps but this machine has no Apple GPU: use trainer=cpu",
                 marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="an Apple GPU is here")),
])
def test_out_of_range_hyperparameters(override, message, tmp_path):
    with pytest.raises(ConfigError, match=re.escape(message)):
        train(compose_train([override, f"run_dir={tmp_path}"]))


def fit(tmp_path, *overrides):
    return train(compose_train(["data.val_size=100", "epochs=1", "batch_size=50", *SMALL, *overrides]))


def test_batch_larger_than_the_training_set(tiny_root, tmp_path):
    with pytest.raises(DataError, match=r"batch_size=600 is larger than the training set \(500 images\): "
                                        r"use batch_size=500 or less"):
        train(compose_train([f"data.root={tiny_root}", "data.val_size=100", "batch_size=600",
                             f"run_dir={tmp_path}", *SMALL]))


def test_batch_that_does_not_divide_over_the_processes(tiny_root):
    dm = MNISTDataModule(root=tiny_root, batch_size=51, val_size=100)
    dm.setup()
    dm.trainer = type("TwoProcesses", (), {"global_rank": 0, "world_size": 2, "current_epoch": 0})()
    with pytest.raises(DataError, match="batch_size=51 does not divide over 2 processes: use a multiple of 2"):
        dm.train_dataloader()


def test_missing_and_corrupt_data(tiny_root, tmp_path):
    with pytest.raises(DataError, match="mnist not found in .* set data.root=DIR"):
        fit(tmp_path, f"data.root={tmp_path / 'empty'}", "data.download=false", f"run_dir={tmp_path / 'a'}")
    images = tiny_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"holds 984 bytes of data but its header says .* \(truncated\?\): delete it"):
        fit(tmp_path, f"data.root={tiny_root}", f"run_dir={tmp_path / 'b'}")


@pytest.mark.slow
def test_checkpoint_of_another_model_or_dataset_or_not_a_checkpoint(tiny_root, tmp_path):
    fit(tmp_path, f"data.root={tiny_root}", f"run_dir={tmp_path / 'run'}")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    other = [f"data.root={tiny_root}", "model.hidden=[32]", f"run_dir={tmp_path / 'other'}"]
    with pytest.raises(CheckpointError, match=r"holds a different network \(model.hidden differ\): pass the model"):
        fit(tmp_path, *other, f"ckpt_path={last}")
    ckpt = torch.load(last, weights_only=True)
    ckpt["hyper_parameters"]["classes"] = list("abcdefghij")
    torch.save(ckpt, tmp_path / "letters.ckpt")
    with pytest.raises(CheckpointError, match="trained on classes abcdefghij but this run's data has 0123456789"):
        fit(tmp_path, *other, f"ckpt_path={tmp_path / 'letters.ckpt'}")
    with pytest.raises(ConfigError, match=f"{tmp_path / 'run'} already holds a run's checkpoints: continue it with "
                                          f"resume={tmp_path / 'run'}, or choose another folder"):
        fit(tmp_path, f"data.root={tiny_root}", f"run_dir={tmp_path / 'run'}")  # never overwrites another run
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt is not a readable mnist_lit checkpoint"):
        fit(tmp_path, *other, f"ckpt_path={tmp_path / 'junk.ckpt'}")


@pytest.mark.slow
def test_diverging_loss_stops_naming_the_step_and_the_lr(tiny_root, tmp_path):
    with pytest.raises(FloatingPointError, match=r"the training loss is (nan|inf) at step \d+ \(epoch 0, lr [\d.e+]+\): "
                                                 r"lower lr \(now lr=1e\+30\)") as e:
        fit(tmp_path, f"data.root={tiny_root}", "lr=1e30", "schedule=none", f"run_dir={tmp_path}")
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_a_run_that_fails_before_training_leaves_no_folder_but_never_removes_the_users(tiny_root, tmp_path):
    new, used = tmp_path / "new", tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    procs = [start([f"data.root={tiny_root}", "epochs=0", f"hydra.run.dir={d}"]) for d in (new, used)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1 and err.strip() == "error: epochs=0 is invalid: use a whole number > 0, e.g. epochs=10"
    assert not new.exists()
    assert (used / "notes.txt").read_text() == "mine"


def test_a_run_folder_that_cannot_be_made_is_one_line(monkeypatch, capsys):
    from pathlib import Path

    from mnist_lit.runs import new_run_dir

    def denied(self, *args, **kwargs):  # what mkdir raises in a read-only folder (root may write anywhere)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", denied)
    with pytest.raises(SystemExit):
        new_run_dir("outputs/read-only/x")
    assert capsys.readouterr().err.strip() == ("error: cannot create the run folder outputs/read-only/x: Permission "
                                               "denied: run from a folder you can write to, or choose one with "
                                               "hydra.run.dir=DIR")


def test_evaluation_runs_on_any_number_of_processes(tiny_root):
    dm = MNISTDataModule(root=tiny_root, batch_size=51, eval_batch_size=1000, val_size=100)
    dm.setup()
    dm.trainer = type("ThreeProcesses", (), {"global_rank": 2, "world_size": 3, "current_epoch": 0})()
    seen = [len(y) for _, y in dm.val_dataloader()]
    assert sum(seen) == 33  # its third of the 99 images that divide evenly over 3
