"""The LightningModule: a network from models.py, cross-entropy, accuracy metrics, optimizer and schedule."""
import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from mnist_lit.models import build

SCHEDULES = ("none", "onecycle", "cosine")


class LitClassifier(L.LightningModule):
    """Trains a classifier; its hyperparameters are plain values, so checkpoints load with weights_only=True."""

    def __init__(self, net: dict, classes: list, lr=1e-3, weight_decay=0.0, schedule="none",
                 label_smoothing=0.0):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule={schedule!r}: use one of {', '.join(SCHEDULES)}")
        self.save_hyperparameters()
        self.net = build(net)
        acc = dict(num_classes=len(classes), average="micro", validate_args=False)
        self.train_acc, self.val_acc, self.test_acc = (MulticlassAccuracy(**acc) for _ in range(3))
        self.val_acc_best = MaxMetric()

    def forward(self, x):
        return self.net(x)

    def _step(self, batch, acc, stage):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing if stage == "train" else 0.0)
        acc(logits, y)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True)
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, self.train_acc, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, self.val_acc, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, self.test_acc, "test")

    def on_train_start(self):
        self.val_acc_best.reset()  # forget the sanity check's validation

    def on_validation_epoch_end(self):
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def configure_optimizers(self):
        h = self.hparams
        # AdamW with weight_decay=0 is exactly the tutorial's Adam.
        opt = torch.optim.AdamW(self.parameters(), lr=h.lr, weight_decay=h.weight_decay)
        steps = self.trainer.estimated_stepping_batches
        if h.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=h.lr, total_steps=steps)
        elif h.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        else:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
