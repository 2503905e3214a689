"""Lightning's extras: callbacks (exact resume, EMA, compile, the test report, a timed progress bar), atomic
checkpoints written in a thread, TensorBoard's layout."""
import errno
import os
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO

from mnist_lit.checkpoint import CheckpointError
from mnist_lit.report import draw_confusion, draw_misclassified


class TensorBoard(TensorBoardLogger):
    """Lightning's TensorBoardLogger without the `epoch` staircase, plus train and val on one chart (Custom Scalars)."""

    LAYOUT = {"train and val": {"loss": ["Multiline", ["train/loss_epoch", "val/loss"]],
                                "accuracy": ["Multiline", ["train/acc", "val/acc"]],
                                "learning rate": ["Multiline", ["train/lr"]]}}

    def log_metrics(self, metrics, step=None):
        if not getattr(self, "_laid_out", False):
            self.experiment.add_custom_scalars(self.LAYOUT)
            self._laid_out = True
        super().log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes `name.tmp` then renames it over `name`: a killed or failed write never leaves a half-written `name`."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic on POSIX and Windows: readers see the old file or the new one
        except OSError as e:
            tmp.unlink(missing_ok=True)
            why = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else e.strerror or str(e)
            kept = f"; the previous {path.name} is intact" if path.exists() else ""
            raise CheckpointError(f"could not save checkpoint {path}: {why}{kept}; free space in {path.parent} "
                                  f"(or set run_dir elsewhere) and resume with resume={path.parent.parent}") from e


class BackgroundCheckpointIO(AsyncCheckpointIO):
    """AtomicCheckpointIO in a thread, on a copy: the next epoch starts while a checkpoint reaches the disk."""

    def __init__(self):
        super().__init__(AtomicCheckpointIO())

    # teardown() waits for the writes queued so far and raises a failed one's error (the next save starts a new
    # thread). Lightning calls it at the end of fit; reading or removing a checkpoint waits first too, since the
    # tuner saves one and restores it in the same fit.
    def load_checkpoint(self, *args, **kwargs):
        self.teardown()
        return super().load_checkpoint(*args, **kwargs)

    def remove_checkpoint(self, *args, **kwargs):
        self.teardown()
        super().remove_checkpoint(*args, **kwargs)


class TimedProgressBar(TQDMProgressBar):
    """Lightning's tqdm progress bar, redrawn at most every `interval` seconds and at each loop's last batch."""

    def __init__(self, interval: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.interval, self._drawn = interval, float("-inf")

    def _should_update(self, current, total):
        # Lightning redraws the bar and gathers its metrics after every batch (refresh_rate counts batches, not time):
        # 0.48 ms of the default MLP's 14 ms step on a 2-core Xeon. (Were this hook renamed, the bar would only go
        # back to redrawing every batch.)
        now = time.monotonic()
        if not self.is_enabled or (current != total and now - self._drawn < self.interval):
            return False
        self._drawn = now
        return True


class RNGState(L.Callback):
    """Saves torch's random state in checkpoints and restores it, so a resumed run draws the same dropout masks."""

    def state_dict(self):
        # torch tensors only (no numpy state), so checkpoints still load with torch.load(weights_only=True).
        state = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict):
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


def warm_ema(decay: float):
    """AveragedModel's avg_fn: an exponential moving average whose decay warms up as timm's does, (1 + n) / (10 + n)
    after n updates, until it reaches `decay`."""

    @torch.no_grad()
    def update(average, current, n):
        d = min(decay, (1 + float(n)) / (10 + float(n)))
        return d * average + (1 - d) * current

    return update


class EMA(EMAWeightAveraging):
    """Lightning's EMA of the weights (validated, checkpointed and tested), warmed up, with testing a checkpoint fixed."""

    def __init__(self, decay: float = 0.999, **kwargs):
        super().__init__(decay=decay, **kwargs)
        # Lightning's average starts from the first step's weights at the full decay: after n steps 0.999**n of them
        # is still in it (5% after 3,000 steps, a short run's whole length), and BatchNorm nets suffer most.
        self._kwargs["avg_fn"] = warm_ema(decay)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        # Lightning 2.6 puts the raw training weights back (checkpoint["current_model_state"]) whenever a checkpoint
        # is loaded, so trainer.test(ckpt_path=...) would test them instead of the average: only resuming needs them.
        if trainer.state.fn == "fit":
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class Compile(L.Callback):
    """torch.compile's the network for fitting (nn.Module.compile: state_dict keys and checkpoints stay the same)."""

    def __init__(self, mode=None, backend="inductor"):
        self.mode, self.backend = mode, backend

    def setup(self, trainer, pl_module, stage):
        if stage == "fit":
            pl_module.net.compile(mode=self.mode, backend=self.backend)


class TestReport(L.Callback):
    """Collects the test predictions; at the end of the test logs and saves what the model gets wrong.

    Needs test_step to return the batch's logits. Writes confusion_matrix.png and misclassified.png to
    dirpath, logs per-class accuracy and both images to TensorBoard, and keeps `metrics` (per-class table
    and confusion matrix, plain values) for metrics.json.
    """

    def __init__(self, dirpath=".", max_images=64, scale=3):
        self.dirpath, self.max_images, self.scale = Path(dirpath), max_images, scale
        self.metrics: dict = {}

    def on_test_epoch_start(self, trainer, pl_module):
        n = len(pl_module.hparams.classes)
        self.confusion = torch.zeros(n, n, dtype=torch.long, device=pl_module.device)
        self.wrong: list = []  # (image uint8 HxW, predicted, true), in test order, at most max_images

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        x, y = batch
        pred = outputs.argmax(1)
        n = len(self.confusion)
        self.confusion += torch.bincount(y * n + pred, minlength=n * n).view(n, n)
        room = self.max_images - len(self.wrong)
        if room > 0:
            idx = (pred != y).nonzero().flatten()[:room]
            images = x[idx, 0].mul(255).round().clamp(0, 255).byte().cpu()
            self.wrong += zip(images, pred[idx].tolist(), y[idx].tolist())

    def on_test_epoch_end(self, trainer, pl_module):
        confusion = self.confusion
        if trainer.world_size > 1:  # each process tested its own shard
            confusion = trainer.strategy.reduce(confusion, reduce_op="sum")
        classes = [str(c) for c in pl_module.hparams.classes]
        confusion = confusion.cpu()
        total, correct = confusion.sum(1), confusion.diag()
        accuracy = correct.double() / total.clamp(min=1)
        self.metrics = {
            "test/per_class": {name: {"accuracy": round(a, 6), "correct": c, "total": t}
                               for name, a, c, t in zip(classes, accuracy.tolist(), correct.tolist(), total.tolist())},
            "test/confusion_matrix": confusion.tolist(),  # rows: true class, columns: predicted class
        }
        if not trainer.is_global_zero:
            return
        images = {"confusion_matrix": draw_confusion(confusion.numpy(), classes),
                  "misclassified": draw_misclassified(self.wrong, classes, self.scale)}
        self.dirpath.mkdir(parents=True, exist_ok=True)
        for name, image in images.items():
            image.save(self.dirpath / f"{name}.png")
        # One table, not a one-point chart per class (47 of them for EMNIST balanced).
        rows = [f"| {name} | {r['accuracy']:.4f} | {r['correct']} / {r['total']} |"
                for name, r in self.metrics["test/per_class"].items()]
        table = "\n".join(["| class | accuracy | correct |", "|---|---|---|", *rows])
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                for name, image in images.items():
                    logger.experiment.add_image(f"test/{name}", np.asarray(image), trainer.global_step,
                                                dataformats="HWC")
                logger.experiment.add_text("test/per_class", table, trainer.global_step)
