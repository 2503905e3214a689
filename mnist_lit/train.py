"""Train and test a classifier: python -m mnist_lit.train [key=value ...] (Hydra overrides)."""
import json
import sys
import time
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mnist_lit.data import DataError
from mnist_lit.module import LitClassifier


def train(cfg: DictConfig) -> dict:
    """Fits on train, validates on val, tests the best checkpoint on test; writes and returns metrics."""
    L.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.run_dir)
    datamodule = instantiate(cfg.data)
    model = LitClassifier(net=OmegaConf.to_container(cfg.model, resolve=True), classes=datamodule.classes,
                          lr=cfg.lr, weight_decay=cfg.weight_decay, schedule=cfg.schedule,
                          label_smoothing=cfg.label_smoothing)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
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
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> dict:
    try:
        metrics = train(cfg)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"test accuracy {metrics['test/acc']:.4f}, run folder {cfg.run_dir}")
    return metrics


if __name__ == "__main__":
    main()
