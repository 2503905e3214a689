"""Train and test a classifier: python -m mnist_lit.train [key=value ...] (Hydra overrides)."""
import json
import logging
import math
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from mnist_lit.callbacks import BackgroundCheckpointIO, RNGState, TimedProgressBar
from mnist_lit.checkpoint import CheckpointError, check_compatible
from mnist_lit.data import DataError
from mnist_lit.module import SCHEDULES, LitClassifier
from mnist_lit.runs import ConfigError, drop_if_unused, resumed_config, resumed_folder
from mnist_lit.tune import MODES as TUNE_MODES, tune

# Errors whose message is the whole story: printed as one line (the traceback with HYDRA_FULL_ERROR=1).
USER_ERRORS = (ConfigError, DataError, CheckpointError, FloatingPointError)


# Lightning's lines that tell a user nothing about their run: advertisements, hardware nobody asked for, the
# checkpoints that testing and the tuner load, and a hint to prepend srun (hydra/launcher=slurm runs the jobs).
CHATTER = ("💡 Tip", "GPU available", "TPU available", "HPU available", "Loading `train_dataloader`",
           "Restoring states from", "Loaded model weights from", "Restored all states from", "`weights_only` was not",
           "Finished batch size finder")


def _not_chatter(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(CHATTER)


def quiet():
    """Keeps a run's output to its config, the model summary, progress and results."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.trainer.connectors.checkpoint_connector"):
        if _not_chatter not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_not_chatter)
    warnings.filterwarnings("ignore", message="The `srun` command is available")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # Lightning 2.6 on torch 2.10+


def check_config(cfg: DictConfig):
    """Raises ConfigError for settings out of range, before anything is built."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    checks = (("lr", lambda v: number(v) and v > 0, "a number > 0, e.g. lr=1e-3"),
              ("batch_size", lambda v: whole(v) and v > 0, "a whole number > 0, e.g. batch_size=128"),
              ("epochs", lambda v: whole(v) and v > 0, "a whole number > 0, e.g. epochs=10"),
              ("seed", lambda v: whole(v) and 0 <= v < 2**32, "a whole number >= 0, e.g. seed=1"),
              ("dropout", lambda v: number(v) and 0 <= v < 1, "in [0, 1), e.g. dropout=0.2"),
              ("weight_decay", lambda v: number(v) and v >= 0, "a number >= 0, e.g. weight_decay=1e-4"),
              ("label_smoothing", lambda v: number(v) and 0 <= v < 1, "in [0, 1), e.g. label_smoothing=0.1"),
              ("schedule", lambda v: v in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
              ("tune", lambda v: v is None or v in TUNE_MODES, "tune=lr (the learning-rate finder) or "
                                                               "tune=batch_size"))
    for key, ok, want in checks:
        if not ok(cfg.get(key)):
            raise ConfigError(f"{key}={cfg.get(key)!r} is invalid: use {want}")
    for key, example in (("hidden", "[512,256]"), ("channels", "[32,64,128]"), ("convs_per_block", "2"),
                         ("stem_stride", "2")):
        value = cfg.model.get(key)
        sizes = list(value) if OmegaConf.is_list(value) else [value]
        if value is not None and not (sizes and all(whole(v) and v > 0 for v in sizes)):
            shown = f"[{','.join(map(str, sizes))}]" if OmegaConf.is_list(value) else repr(value)
            raise ConfigError(f"model.{key}={shown} is invalid: use whole numbers > 0, e.g. model.{key}={example}")
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError("trainer=gpu but torch sees no CUDA GPU here: train on the CPU with trainer=cpu, or "
                          "use trainer=auto to take a GPU when there is one")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator=mps but this machine has no Apple GPU: use trainer=cpu")
    devices, nodes = cfg.trainer.get("devices", 1), cfg.trainer.get("num_nodes", 1)
    if whole(devices) and whole(nodes) and cfg.batch_size % (devices * nodes):
        raise ConfigError(f"batch_size={cfg.batch_size} does not divide over {devices * nodes} processes "
                          f"(trainer.devices x trainer.num_nodes): use a multiple of {devices * nodes}")


def sweep_job(cfg: DictConfig) -> bool:
    """Whether this run is one job of a sweep (-m)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def start_from(cfg: DictConfig, model: LitClassifier, run_dir: Path) -> str | None:
    """The checkpoint this run continues from (resume=, ckpt_path=, or a sweep job's own last.ckpt), checked."""
    ckpt_path = cfg.get("ckpt_path") or (cfg.get("resume") and f"{cfg.resume}/checkpoints/last.ckpt") or None
    if not ckpt_path and sweep_job(cfg):
        # A sweep run again in its folder (hydra.sweep.dir=<sweep>), or a job requeued by SLURM: a job cut short
        # continues from where it was.
        last = run_dir / "checkpoints" / "last.ckpt"
        ckpt_path = str(last) if last.is_file() else None
    if ckpt_path:
        done = check_compatible(Path(ckpt_path), model.hparams.net, model.hparams.classes)
        if isinstance(done, int) and done >= cfg.epochs and (Path(ckpt_path).parent.parent / "metrics.json").is_file():
            raise ConfigError(f"{ckpt_path} has trained all of its {done} epoch(s) and epochs={cfg.epochs}: to train "
                              f"it longer, resume with epochs={done + 1} or more (the schedule is stretched over the "
                              f"new total); its test results are in its metrics.json")
    elif any((run_dir / "checkpoints").glob("*.ckpt")):  # e.g. hydra.run.dir= or run_dir= set to an old run
        raise ConfigError(f"{run_dir} already holds a run's checkpoints: continue it with resume={run_dir}, "
                          f"or choose another folder")
    return ckpt_path


def make_trainer(cfg: DictConfig) -> L.Trainer:
    """The Trainer of the config, with its callbacks and loggers."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()] + [RNGState()]
    if cfg.trainer.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(TimedProgressBar())  # in place of Lightning's, which redraws after every batch
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[BackgroundCheckpointIO()])
    if (sweep_job(cfg) and type(trainer.strategy.launcher).__name__ == "_SubprocessScriptLauncher"
            and not trainer.strategy.cluster_environment.creates_processes_externally):  # (SLURM starts them itself)
        # Lightning relaunches `sys.argv` for each extra process: with -m that would start a whole sweep in each.
        raise ConfigError("trainer=ddp with several processes cannot run inside a local -m sweep: sweep with "
                          "hydra/launcher=slurm (one SLURM job per run), or run the DDP jobs one at a time")
    return trainer


def train(cfg: DictConfig) -> dict:
    """Fits on train, validates on val, tests the best checkpoint on test; writes and returns metrics."""
    quiet()
    check_config(cfg)
    run_dir = Path(cfg.run_dir)
    resuming = cfg.get("ckpt_path") or cfg.get("resume")
    if sweep_job(cfg) and not resuming and (run_dir / "metrics.json").is_file():  # a sweep run again: kept as it was
        print(f"{run_dir} finished earlier: kept (delete its metrics.json to run it again)")
        return json.loads((run_dir / "metrics.json").read_text())
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # the seed is in .hydra/config.yaml
    datamodule = instantiate(cfg.data)
    model = LitClassifier(net=OmegaConf.to_container(cfg.model, resolve=True), classes=datamodule.classes,
                          lr=cfg.lr, weight_decay=cfg.weight_decay, schedule=cfg.schedule,
                          label_smoothing=cfg.label_smoothing, framing=datamodule.framing)
    ckpt_path = start_from(cfg, model, run_dir)
    trainer = make_trainer(cfg)
    if cfg.get("tune"):
        return tune(cfg, trainer, model, datamodule)  # Lightning's Tuner: finds lr or batch_size, trains nothing

    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    train_seconds = time.perf_counter() - start
    # Process 0's fit has waited for its checkpoint writes: the others wait for it before reading the best one.
    trainer.strategy.barrier("checkpoints written")
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    test = trainer.test(model, datamodule=datamodule, ckpt_path=best or None)[0]

    metrics = {
        "test/acc": test["test/acc"],
        "test/loss": test["test/loss"],
        "val/acc_best": float(model.val_acc_best.compute()),
        "epochs": trainer.current_epoch,
        "train_seconds": round(train_seconds, 2),
        "best_ckpt": best,
    }
    for callback in trainer.callbacks:  # e.g. mnist_lit.callbacks.TestReport's per-class table
        extra = getattr(callback, "metrics", None)
        metrics.update(extra if isinstance(extra, dict) else {})
    final = {"hparam/val_acc_best": metrics["val/acc_best"], "hparam/test_acc": metrics["test/acc"]}
    for logger in trainer.loggers:  # each run's settings beside its results (TensorBoard's HPARAMS tab, MLflow)
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hparams_of(cfg), final)
        else:
            logger.log_hyperparams(hparams_of(cfg))
            logger.log_metrics(final, step=trainer.global_step)
        logger.save()
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def hparams_of(cfg: DictConfig) -> dict:
    """The settings a sweep varies, flat: the top-level hyperparameters, the network's, the data and augmentation."""
    keys = ("lr", "batch_size", "dropout", "epochs", "seed", "schedule", "weight_decay", "label_smoothing")
    net = {f"model.{k}": v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items()
           if k not in ("in_shape", "num_classes", "mean", "std", "dropout")}
    return {**{k: cfg[k] for k in keys}, **net, "data": cfg.data.name, "data.augment": str(cfg.data.augment)}


@rank_zero_only
def show_config(cfg: DictConfig):
    """Prints the composed config as a tree, every value resolved, and saves it beside Hydra's record of the run."""
    text = OmegaConf.to_yaml(cfg, resolve=True)
    if cfg.get("print_config", True) and not sweep_job(cfg):  # a sweep's jobs: Hydra prints each one's overrides
        print(f"config of {cfg.run_dir}:\n" + "".join(f"  {line}\n" for line in text.splitlines()), end="")
    if HydraConfig.initialized() and HydraConfig.get().output_subdir:
        saved = Path(HydraConfig.get().runtime.output_dir) / HydraConfig.get().output_subdir / "resolved.yaml"
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(text)


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parents[1] / "conf"), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Returns validation accuracy, the objective of hparams_search=optuna (None when a sweep's job failed)."""
    quiet()
    try:
        if cfg.get("resume") or cfg.get("ckpt_path"):
            cfg = resumed_config(cfg)
        show_config(cfg)
        metrics = train(cfg)
    except SIGTERMException:
        print(f"error: stopped by SIGTERM: resume with python -m mnist_lit.train resume={cfg.run_dir}",
              file=sys.stderr)
        sys.exit(128 + 15)
    except Exception as e:
        if isinstance(e, InstantiationException) and isinstance(e.__cause__, USER_ERRORS):
            e = e.__cause__  # raised inside a config's _target_ (e.g. the datamodule): its message says it all
        if sweep_job(cfg):
            # One failed job must not end the sweep: the summary marks it from error.txt, optuna records a failure.
            message = str(e) if isinstance(e, USER_ERRORS) else f"{type(e).__name__}: {e}"
            message = (message.splitlines() or [type(e).__name__])[0]
            Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
            (Path(cfg.run_dir) / "error.txt").write_text(message + "\n\n" + traceback.format_exc())
            print(f"error: {message}", file=sys.stderr)
            return None  # optuna records a failed trial (NaN would crash hydra-optuna-sweeper 1.2 with optuna 4)
        if isinstance(e, USER_ERRORS) and resumed_folder(cfg.get("resume"), cfg.get("ckpt_path")) is None:
            drop_if_unused(Path(cfg.run_dir))
        if isinstance(e, USER_ERRORS) and os.environ.get("HYDRA_FULL_ERROR") != "1":
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        raise
    if cfg.get("tune"):
        return None
    if rank_zero_only.rank == 0:  # one line per run, not one per DDP process
        print(f"test accuracy {metrics['test/acc']:.4f}, run folder {cfg.run_dir}")
    return metrics["val/acc_best"]


if __name__ == "__main__":
    # The importable module's main, not this __main__ copy: hydra/launcher=slurm pickles the task function for its
    # jobs, and cloudpickle would pickle __main__'s by value with all it calls, torch.backends included, which it
    # cannot (cloudpipe/cloudpickle#405). Hence also the absolute config_path above.
    from mnist_lit.train import main as module_main

    module_main()
