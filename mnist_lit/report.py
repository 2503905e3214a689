"""At test time: per-class accuracy, a confusion matrix and the misclassified images, to TensorBoard and PNGs."""
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image, ImageDraw, ImageFont


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
        for name, acc in zip(classes, accuracy.tolist()):
            pl_module.log(f"test/acc_class/{name}", acc, rank_zero_only=True)
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
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                for name, image in images.items():
                    logger.experiment.add_image(f"test/{name}", np.asarray(image), trainer.global_step,
                                                dataformats="HWC")


def _font(size):
    try:  # Pillow >= 10.1 scales its built-in font
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def draw_confusion(confusion: np.ndarray, classes: list, cell=36, columns=None) -> Image.Image:
    """The confusion matrix as a heat map (row-normalised, counts written in the cells); rows are true classes.

    columns: the column names when they are more than the classes (e.g. a last column of refusals).
    """
    columns = columns or classes
    n, m = len(classes), len(columns)
    font, small = _font(14), _font(max(8, cell // 3))
    widest = max(int(font.getlength(c)) for c in columns)
    rotate = widest > cell - 4  # long names are written upwards above their column
    left, top = widest + 16, (widest + 16 if rotate else 28)
    legend = "rows: true class, columns: predicted class"
    width = left + max(m * cell, int(font.getlength(legend))) + 10
    image = Image.new("RGB", (width, top + n * cell + 30), "white")
    draw = ImageDraw.Draw(image)
    rates = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    for i in range(n):
        for j in range(m):
            # Log scale, so that a few mistakes among a thousand still show.
            shade = np.log1p(rates[i, j] * 1000) / np.log1p(1000)
            colour = (int(255 * (1 - shade)), int(255 * (1 - 0.6 * shade)), 255)  # white to blue
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=colour, outline=(220, 220, 220))
            if confusion[i, j]:
                ink = "white" if shade > 0.6 else "black"
                draw.text((x0 + cell / 2, y0 + cell / 2), str(confusion[i, j]), fill=ink, font=small, anchor="mm")
        draw.text((left - 8, top + i * cell + cell / 2), classes[i], fill="black", font=font, anchor="rm")
    for j, name in enumerate(columns):
        if rotate:
            label = Image.new("RGB", (top - 8, cell), "white")
            ImageDraw.Draw(label).text((2, cell / 2), name, fill="black", font=font, anchor="lm")
            image.paste(label.rotate(90, expand=True), (left + j * cell, 0))
        else:
            draw.text((left + j * cell + cell / 2, top - 8), name, fill="black", font=font, anchor="mb")
    draw.text((left, top + n * cell + 8), legend, fill="black", font=font)
    return image


def draw_misclassified(wrong: list, classes: list, scale=3, columns=8) -> Image.Image:
    """A grid of misclassified images, dark ink on white, each captioned with its predicted and true class."""
    font = _font(12)
    if not wrong:
        image = Image.new("RGB", (300, 40), "white")
        ImageDraw.Draw(image).text((10, 12), "no misclassified images", fill="black", font=font)
        return image
    captions = [f"{classes[pred]} (true {classes[true]})" for _, pred, true in wrong]
    h, w = wrong[0][0].shape
    tile_h, caption = h * scale, 16
    tile_w = max(w * scale, *(int(font.getlength(c)) + 4 for c in captions))  # long class names widen the columns
    rows = -(-len(wrong) // columns)
    cols = min(columns, len(wrong))
    image = Image.new("RGB", (cols * (tile_w + 4) + 4, rows * (tile_h + caption + 4) + 4), "white")
    draw = ImageDraw.Draw(image)
    for k, ((pixels, _, _), text) in enumerate(zip(wrong, captions)):
        x0, y0 = 4 + (k % columns) * (tile_w + 4), 4 + (k // columns) * (tile_h + caption + 4)
        tile = Image.fromarray(255 - np.asarray(pixels), "L").resize((w * scale, tile_h), Image.NEAREST)
        image.paste(tile.convert("RGB"), (x0 + (tile_w - w * scale) // 2, y0))
        draw.text((x0 + tile_w / 2, y0 + tile_h + 2), text, fill=(200, 0, 0), font=font, anchor="ma")
    return image
