"""The LightningModule: a network from models.py, cross-entropy, accuracy metrics, optimizer and schedule."""
import ctypes
import os
import warnings

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from mnist_lit.models import build

SCHEDULES = ("none", "onecycle", "cosine")

# Lightning has torch count GPUs through NVML, which does not initialise CUDA before a fork. Where NVML's library is
# missing (torch's CUDA build on a machine without NVIDIA's driver) torch falls back to the plain count anyway, after
# a failed dlopen on every call, and every optimizer step asks: the default MLP's fused AdamW step took 1.97 ms with
# it, 1.45 ms without (2-core AMD EPYC). There the plain count is used.
if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and torch.version.cuda:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # the name torch.cuda loads
    except OSError:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


def make_optimizer(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW (with weight_decay=0 exactly the tutorial's Adam), fused: one pass over each weight tensor (CPU and GPU)
    instead of a dozen; on the CPU the unfused update took 40% of the MLP's training step."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def make_schedule(opt, schedule: str, lr: float, steps: int):
    """The learning-rate schedule stepped once per batch over `steps` batches; None for schedule=none."""
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    return None


class LitClassifier(L.LightningModule):
    """Trains a classifier; its hyperparameters are plain values, so checkpoints load with weights_only=True."""

    def __init__(self, net: dict, classes: list, lr=1e-3, weight_decay=0.0, schedule="none",
                 label_smoothing=0.0, framing="mnist"):
        # framing: how the dataset drew its characters (mnist_lit.data.Spec), kept in checkpoints for predict.
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule={schedule!r}: use one of {', '.join(SCHEDULES)}")
        self.save_hyperparameters()
        self.net = build(net)
        self.example_input_array = torch.zeros(1, *self.net.in_shape)  # the model summary counts FLOPs with it
        acc = dict(num_classes=len(classes), average="micro", validate_args=False)
        self.train_acc, self.val_acc, self.test_acc = (MulticlassAccuracy(**acc) for _ in range(3))
        self.train_loss = MeanMetric(nan_strategy="disable")  # no NaN check: it would wait for the GPU every step
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # saved in checkpoints: a resumed run remembers its best

    def forward(self, x):
        return self.net(x)

    def _step(self, batch, acc, stage):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing if stage == "train" else 0.0)
        # Counted each step, computed and logged once an epoch (_log_epoch): each self.log call costs Lightning
        # about 0.3 ms on the CPU, and a GPU value it shows in the progress bar makes it wait for the GPU.
        acc.update(logits, y)
        if stage == "train":
            self.train_loss.update(loss.detach())  # the epoch mean of the batch losses
            if self._logging_step():  # the step loss and the scheduled learning rate, when the logger writes them
                self.log("train/loss_step", loss, on_step=True, on_epoch=False)
                self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        else:  # averaged over DDP processes, once an epoch
            self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss, logits

    def _logging_step(self):
        """Whether the logger writes this training step (every trainer.log_every_n_steps)."""
        every = self.trainer.log_every_n_steps
        return every > 0 and (self.global_step + 1) % every == 0

    def _log_epoch(self, name, metric):
        """Logs a metric's value for the epoch (over all DDP processes: compute() gathers them) and resets it."""
        value = metric.compute()
        metric.reset()
        self.log(name, value, prog_bar=True, sync_dist=True)  # equal on every process: quiets a DDP warning
        return value

    def training_step(self, batch, batch_idx):
        return self._step(batch, self.train_acc, "train")[0]

    def validation_step(self, batch, batch_idx):
        self._step(batch, self.val_acc, "val")

    def test_step(self, batch, batch_idx):
        return self._step(batch, self.test_acc, "test")[1]  # the logits, for mnist_lit.callbacks.TestReport

    def on_train_batch_end(self, outputs, batch, batch_idx):
        # Checked when the logger reads the loss anyway, and at the epoch end: reading it waits for the GPU.
        if not (self._logging_step() or batch_idx + 1 >= self.trainer.num_training_batches):
            return
        loss = outputs["loss"]
        if not torch.isfinite(loss):  # a diverged run stops here rather than training on NaNs to the end
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            raise FloatingPointError(f"the training loss is {loss.item()} at step {self.global_step} (epoch "
                                     f"{self.current_epoch}, lr {lr:.3g}): lower lr (now lr={self.hparams.lr}) "
                                     f"or check the data for NaNs")

    def on_train_epoch_end(self):
        self._log_epoch("train/loss_epoch", self.train_loss)
        self._log_epoch("train/acc", self.train_acc)

    def on_validation_epoch_end(self):
        acc = self._log_epoch("val/acc", self.val_acc)
        if self.trainer.sanity_checking:
            return  # not a result: val/acc_best counts validations after training steps only
        self.val_acc_best(acc)
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def on_test_epoch_end(self):
        self._log_epoch("test/acc", self.test_acc)

    def configure_optimizers(self):
        h = self.hparams
        opt = make_optimizer(self.parameters(), h.lr, h.weight_decay)
        sched = make_schedule(opt, h.schedule, h.lr, self.trainer.estimated_stepping_batches)
        if sched is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_train_start(self):
        # A run resumed with more epochs: the checkpoint's schedule ends at the old total (one-cycle would fail past
        # it), so the same schedule is laid over the new total and continues from the step reached.
        config = (self.trainer.lr_scheduler_configs or [None])[0]
        steps = self.trainer.estimated_stepping_batches
        old = config and (getattr(config.scheduler, "total_steps", None) or getattr(config.scheduler, "T_max", None))
        if config is None or old in (None, steps):
            return
        opt = config.scheduler.optimizer
        sched = make_schedule(opt, self.hparams.schedule, self.hparams.lr, steps)  # sets lr, initial_lr for step 0
        sched.last_epoch = self.global_step - 1
        with warnings.catch_warnings():  # torch warns of a step before the optimizer's: here it is on purpose
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            sched.step()  # the lr for the step reached, on the new schedule
        config.scheduler = sched
