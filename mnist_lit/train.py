"""Train and test a classifier: python -m mnist_lit.train [key=value ...] (Hydra overrides)."""
import itertools
import json
import math
import os
import shutil
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from mnist_lit.checkpointing import AtomicCheckpointIO, CheckpointError, RNGState, check_compatible
from mnist_lit.data import DataError
from mnist_lit.module import SCHEDULES, LitClassifier


class ConfigError(ValueError):
    """A config value is out of range; the message says how to fix it."""


# Errors whose message is the whole story: printed as one line (the traceback with HYDRA_FULL_ERROR=1).
USER_ERRORS = (ConfigError, DataError, CheckpointError, FloatingPointError)
_new_dirs: dict = {}


def new_run_dir(base: str) -> str:
    """base, else base_1, base_2, ...: the first free one, created at once so that no other run can take it."""
    if base not in _new_dirs:  # Hydra resolves the run folder more than once: the same answer each time
        for i in itertools.count():
            path = Path(base if i == 0 else f"{base}_{i}")
            try:
                path.mkdir(parents=True)
                break
            except FileExistsError:
                continue
            except OSError as e:  # inside Hydra's resolver: its report of this would be a page long
                print(f"error: cannot create the run folder {path}: {e.strerror or e}: run from a folder you can "
                      f"write to, or choose one with hydra.run.dir=DIR", file=sys.stderr)
                sys.exit(1)
        _new_dirs[base] = str(path)
    return _new_dirs[base]


def resumed_folder(resume, ckpt_path) -> str | None:
    """The existing run folder that resume=<run> or ckpt_path=<run>/checkpoints/x.ckpt continues, if any."""
    if resume and (Path(resume) / ".hydra").is_dir():
        return str(resume)  # (when it is not a run folder, main says so; an error here would be a long traceback)
    if ckpt_path and (Path(ckpt_path).parent.parent / ".hydra").is_dir():
        return str(Path(ckpt_path).parent.parent)
    return None


def run_folder(resume, ckpt_path, fresh: str) -> str:
    """The folder a run writes to: the resumed run's own folder, else a new one."""
    return resumed_folder(resume, ckpt_path) or new_run_dir(fresh)


def hydra_subdir(resume, ckpt_path) -> str:
    """Where Hydra saves a run's config: a resumed run keeps the original .hydra/ and adds .hydra/resumed-<time>/."""
    return f".hydra/resumed-{datetime.now():%Y-%m-%d_%H-%M-%S}" if resumed_folder(resume, ckpt_path) else ".hydra"


def auto_accelerator() -> str:
    """trainer=auto: cuda when torch sees a CUDA GPU, else cpu (Apple's GPU is trainer=mps, chosen by hand)."""
    return "gpu" if torch.cuda.is_available() else "cpu"


def auto_precision() -> str:
    """trainer=auto: bf16 mixed precision where the GPU has bf16 (Ampere and later), else float32."""
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


for _name, _resolver in (("new_dir", new_run_dir), ("run_folder", run_folder), ("hydra_subdir", hydra_subdir),
                         ("auto_accelerator", auto_accelerator), ("auto_precision", auto_precision)):
    if not OmegaConf.has_resolver(f"mnist_lit.{_name}"):  # imported twice when run as `python -m mnist_lit.train`
        OmegaConf.register_new_resolver(f"mnist_lit.{_name}", _resolver, use_cache=True)


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
              ("schedule", lambda v: v in SCHEDULES, f"one of {', '.join(SCHEDULES)}"))
    for key, ok, want in checks:
        if not ok(cfg[key]):
            raise ConfigError(f"{key}={cfg[key]!r} is invalid: use {want}")
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


def resumed_config(cfg: DictConfig) -> DictConfig:
    """The resumed run's own config: its saved overrides (.hydra/overrides.yaml), then this command line's."""
    if cfg.get("resume") and not (Path(cfg.resume) / ".hydra").is_dir():
        raise ConfigError(f"resume={cfg.resume} is not a run folder (it has no .hydra/): pass a run's folder, "
                          f"e.g. resume=outputs/<date>/<time>")
    run = Path(HydraConfig.get().runtime.output_dir)
    saved = run / ".hydra" / "overrides.yaml"
    if not saved.is_file():  # a checkpoint outside a run folder: this command line's config as it is
        return cfg
    now = list(HydraConfig.get().overrides.task)
    key = lambda o: o.split("=", 1)[0].lstrip("+~")  # noqa: E731
    given = {key(o) for o in now}
    overrides = [o for o in OmegaConf.load(saved) if key(o) not in given] + now
    cfg = hydra.compose(HydraConfig.get().job.config_name, overrides=overrides)
    if HydraConfig.get().output_subdir:  # record what actually runs beside Hydra's record of the command line
        OmegaConf.save(cfg, run / HydraConfig.get().output_subdir / "config.yaml")
    return cfg


def train(cfg: DictConfig) -> dict:
    """Fits on train, validates on val, tests the best checkpoint on test; writes and returns metrics."""
    check_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # the seed is in .hydra/config.yaml
    run_dir = Path(cfg.run_dir)
    datamodule = instantiate(cfg.data)
    model = LitClassifier(net=OmegaConf.to_container(cfg.model, resolve=True), classes=datamodule.classes,
                          lr=cfg.lr, weight_decay=cfg.weight_decay, schedule=cfg.schedule,
                          label_smoothing=cfg.label_smoothing, framing=datamodule.framing)
    ckpt_path = cfg.get("ckpt_path") or (cfg.get("resume") and f"{cfg.resume}/checkpoints/last.ckpt") or None
    if not ckpt_path and HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        # A sweep run again in its folder (hydra.sweep.dir=<sweep>), or a job requeued by SLURM: finished jobs are
        # kept as they are, a job cut short continues from where it was.
        if (run_dir / "metrics.json").is_file():
            print(f"{run_dir} finished earlier: kept (delete its metrics.json to run it again)")
            return json.loads((run_dir / "metrics.json").read_text())
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
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()] + [RNGState()]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()])
    if (HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
            and type(trainer.strategy.launcher).__name__ == "_SubprocessScriptLauncher"):
        # Lightning relaunches `sys.argv` for each extra process: with -m that would start a whole sweep in each.
        raise ConfigError("trainer=ddp with several processes cannot run inside a local -m sweep: sweep with "
                          "hydra/launcher=slurm (one SLURM job per run), or run the DDP jobs one at a time")

    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    train_seconds = time.perf_counter() - start
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
    for callback in callbacks:  # e.g. mnist_lit.report.TestReport's per-class table
        metrics.update(getattr(callback, "metrics", {}))
    for logger in loggers:  # TensorBoard's HPARAMS tab: each run's settings beside its results, to compare a sweep
        logger.log_hyperparams(hparams_of(cfg), {"hparam/val_acc_best": metrics["val/acc_best"],
                                                 "hparam/test_acc": metrics["test/acc"]})
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def drop_if_unused(run_dir: Path):
    """Removes a new run's folder when the run stopped before writing anything but Hydra's config and log."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log"}:
        shutil.rmtree(run_dir, ignore_errors=True)


def hparams_of(cfg: DictConfig) -> dict:
    """The settings a sweep varies, flat: the top-level hyperparameters, the network's, the data and augmentation."""
    keys = ("lr", "batch_size", "dropout", "epochs", "seed", "schedule", "weight_decay", "label_smoothing")
    net = {f"model.{k}": v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items()
           if k not in ("in_shape", "num_classes", "mean", "std", "dropout")}
    return {**{k: cfg[k] for k in keys}, **net, "data": cfg.data.name, "data.augment": str(cfg.data.augment)}


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Returns validation accuracy, the objective of hparams_search=optuna (None when a sweep's job failed)."""
    try:
        if cfg.get("resume") or cfg.get("ckpt_path"):
            cfg = resumed_config(cfg)
        metrics = train(cfg)
    except SIGTERMException:
        print(f"error: stopped by SIGTERM: resume with python -m mnist_lit.train resume={cfg.run_dir}",
              file=sys.stderr)
        sys.exit(128 + 15)
    except Exception as e:
        if isinstance(e, InstantiationException) and isinstance(e.__cause__, USER_ERRORS):
            e = e.__cause__  # raised inside a config's _target_ (e.g. the datamodule): its message says it all
        if HydraConfig.get().mode == RunMode.MULTIRUN:
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
    if rank_zero_only.rank == 0:  # one line per run, not one per DDP process
        print(f"test accuracy {metrics['test/acc']:.4f}, run folder {cfg.run_dir}")
    return metrics["val/acc_best"]


if __name__ == "__main__":
    main()
