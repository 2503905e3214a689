"""Lightning's Tuner from the command line: python -m mnist_lit.train tune=lr | tune=batch_size (trains nothing)."""
import json
import math
from pathlib import Path

import lightning as L
from lightning.pytorch.tuner import Tuner
from omegaconf import DictConfig

from mnist_lit.report import draw_lr_finder
from mnist_lit.runs import ConfigError

MODES = ("lr", "batch_size")  # tune=...


def tune(cfg: DictConfig, trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule) -> dict:
    """Runs the learning-rate finder or the batch-size finder; writes <run>/tune.json (and lr_find.png)."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tuner = Tuner(trainer)
    if cfg.tune == "lr":
        finder = tuner.lr_find(model, datamodule=datamodule, min_lr=1e-6, max_lr=1.0, num_training=100,
                               update_attr=False)
        lr = finder.suggestion()
        if lr is None:  # too few points before the loss diverged
            raise ConfigError("the learning-rate finder found no suggestion: try a smaller batch_size")
        draw_lr_finder(finder.results["lr"], finder.results["loss"], lr).save(run_dir / "lr_find.png")
        result = {"tune/lr": lr}
        advice = (f"suggested lr {lr:.3g} (the steepest fall of the loss; plot: {run_dir / 'lr_find.png'}): "
                  f"python -m mnist_lit.train lr={lr:.2g}")
    else:
        model.hparams.schedule = "none"  # the search restarts fitting at each size: a one-cycle would run out of steps
        datamodule.prepare_data()
        datamodule.setup()
        # Doubles the batch until memory runs out (on a GPU) or the next would exceed the training set.
        doublings = int(math.log2(len(datamodule.splits["train"][0]) / cfg.batch_size))
        size = tuner.scale_batch_size(model, datamodule=datamodule, mode="power", init_val=cfg.batch_size,
                                      max_trials=max(1, min(doublings + 1, 12)), steps_per_trial=3)
        result = {"tune/batch_size": size}
        advice = (f"largest batch that fits: {size}: python -m mnist_lit.train batch_size={size} (a larger batch "
                  f"usually wants a larger lr: tune=lr with it)")
    (run_dir / "tune.json").write_text(json.dumps(result, indent=2) + "\n")
    if trainer.is_global_zero:
        print(advice)
    return result
