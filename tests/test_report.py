import io
import json

import numpy as np
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnist_lit.report import draw_confusion, draw_misclassified
from mnist_lit.train import train
from tests.conftest import FAST, compose_train, encoded

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes):
    """Checks that data is a whole, valid PNG and returns its (width, height)."""
    assert data[:8] == PNG
    Image.open(io.BytesIO(data)).verify()
    return Image.open(io.BytesIO(data)).size


def test_confusion_image_has_a_cell_per_pair_of_classes():
    ten = draw_confusion(np.diag(np.arange(10) + 5), list("0123456789"))
    big = draw_confusion(np.eye(26, dtype=int) * 3 + 1, [chr(97 + i) for i in range(26)])
    (w10, h10), (w26, h26) = png_size(encoded(ten)), png_size(encoded(big))
    assert h26 - h10 == 16 * 36 and abs(w26 - w10 - 16 * 36) < 8  # a 36-pixel cell per extra class; margins fit names
    # A perfect classifier: dark diagonal, white off-diagonal (the grid ends 10 px from the right, 30 from the bottom).
    px = np.asarray(ten)
    cell = lambda i, j: px[h10 - 30 - (10 - i) * 36 + 3, w10 - 10 - (10 - j) * 36 + 3]  # noqa: E731
    assert cell(0, 0).sum() < cell(0, 1).sum() == 3 * 255 and cell(9, 9).sum() < cell(9, 0).sum()


def test_long_class_names_fit_in_both_images():
    names = ["T-shirt/top", "Trouser", "Ankle boot"]
    w, h = png_size(encoded(draw_confusion(np.eye(3, dtype=int), names)))
    assert h > 3 * 36 + 70  # the column names are written upwards above the grid
    wrong = [(torch.zeros(28, 28, dtype=torch.uint8), 0, 2)] * 3
    w, _ = png_size(encoded(draw_misclassified(wrong, names)))
    assert w > 3 * (84 + 4) + 4  # columns widened to hold "T-shirt/top (true Ankle boot)"


def test_misclassified_grid_captions_every_image():
    wrong = [(torch.full((28, 28), 200, dtype=torch.uint8), 3, 8)] * 10
    w, h = png_size(encoded(draw_misclassified(wrong, list("0123456789"), scale=2, columns=4)))
    assert (w, h) == (4 * (56 + 4) + 4, 3 * (56 + 16 + 4) + 4)  # 10 images: 4 columns, 3 rows
    png_size(encoded(draw_misclassified([], list("01"))))  # nothing wrong: still a valid image


def test_test_run_writes_plots_per_class_table_and_tensorboard_images(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    # Under-trained on purpose, so that there are mistakes to show.
    cfg = compose_train([f"data.root={tiny_root}", "data.val_size=100", f"run_dir={run_dir}", "epochs=1",
                         "batch_size=100", "lr=1e-3", "model.hidden=[16]", *FAST])
    metrics = train(cfg)
    saved = json.loads((run_dir / "metrics.json").read_text())
    table = saved["test/per_class"]
    assert list(table) == list("0123456789")
    assert sum(r["total"] for r in table.values()) == 200  # every test image counted once
    correct = sum(r["correct"] for r in table.values())
    assert abs(correct / 200 - metrics["test/acc"]) < 1e-6
    assert all(abs(r["accuracy"] - r["correct"] / max(r["total"], 1)) < 1e-5 for r in table.values())
    confusion = np.array(saved["test/confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.trace() == correct
    assert [r["total"] for r in table.values()] == confusion.sum(1).tolist()

    png_size((run_dir / "confusion_matrix.png").read_bytes())
    errors = 200 - correct
    assert errors > 0
    w, h = png_size((run_dir / "misclassified.png").read_bytes())
    assert h == -(-min(errors, 64) // 8) * (84 + 16 + 4) + 4  # up to 64 images, 8 a row, 3x scale

    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    assert {"test/confusion_matrix", "test/misclassified"} <= set(events.Tags()["images"])
    assert not any(t.startswith("test/acc_class") for t in events.Tags()["scalars"])  # a table, not 10 charts
    text = events.Tensors("test/per_class/text_summary")[0].tensor_proto.string_val[0].decode()
    assert f"| 7 | {table['7']['accuracy']:.4f} | {table['7']['correct']} / {table['7']['total']} |" in text
