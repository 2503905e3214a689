"""The MNIST-family datasets: torchvision's layouts, EMNIST's transposition and label offset, one override to train."""
import gzip
import os
import string
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision
from hydra.utils import instantiate

from mnist_lit.data import SPECS, DataError, MNISTDataModule
from mnist_lit.train import train
from tests.conftest import FAST, compose_train, write_idx

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def emnist_names(split):
    return tuple(f"emnist-{split}-{part}-{kind}-ubyte"
                 for part in ("train", "test") for kind in ("images-idx3", "labels-idx1"))


# Written out here, not taken from data.py: torchvision's folder and file names, its constructor arguments,
# and what the labels in the files mean.
DATASETS = {
    "emnist_letters": dict(folder="EMNIST", files=emnist_names("letters"), kwargs={"split": "letters"},
                           classes=list(string.ascii_uppercase), first_label=1, transposed=True),
    "emnist_balanced": dict(folder="EMNIST", files=emnist_names("balanced"), kwargs={"split": "balanced"},
                            classes=list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"), first_label=0,
                            transposed=True),
    "emnist_digits": dict(folder="EMNIST", files=emnist_names("digits"), kwargs={"split": "digits"},
                          classes=list("0123456789"), first_label=0, transposed=True),
    "fashion_mnist": dict(folder="FashionMNIST", files=MNIST_NAMES, kwargs={}, first_label=0, transposed=False,
                          classes=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                   "Sneaker", "Bag", "Ankle boot"]),
    "kmnist": dict(folder="KMNIST", files=MNIST_NAMES, kwargs={}, first_label=0, transposed=False,
                   classes=["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]),
}


def upright_images(labels, rng):
    """Images a small network learns quickly whatever the number of classes: a bright 4x4 block whose place on a
    7x7 grid is the label (not symmetric: a transposed image shows another class), on noise."""
    x = rng.integers(0, 40, (len(labels), 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
        r, k = divmod(int(c), 7)
        x[i, 4 * r:4 * r + 4, 4 * k:4 * k + 4] = 255
    return x


def write_dataset(root, name, n_train=400, n_test=100, seed=0, images=upright_images, labels=None):
    """Writes `name` the way its publisher stores it (EMNIST: transposed, letters labelled from 1) in torchvision's
    layout; returns [(upright images, 0-based labels)] of train and test."""
    d, rng = DATASETS[name], np.random.default_rng(seed)
    labels = np.arange(len(d["classes"])) if labels is None else np.asarray(labels)
    upright = {}
    for (img_file, lbl_file), n in zip((d["files"][:2], d["files"][2:]), (n_train, n_test)):
        y = rng.permutation(labels[np.arange(n) % len(labels)])
        x = images(y, rng)
        stored = x.transpose(0, 2, 1) if d["transposed"] else x
        write_idx(root / d["folder"] / "raw" / img_file, stored)
        write_idx(root / d["folder"] / "raw" / lbl_file, (y + d["first_label"]).astype(np.uint8))
        upright[img_file] = (x, y)
    return list(upright.values())


def serve(monkeypatch, raw: Path) -> list:
    """Stands in for the network under torchvision's own download code: it gets the files in `raw`, packed as their
    publishers pack them (one .gz per file; EMNIST: gzip.zip holding gzip/<file>.gz). Returns the URLs fetched."""
    fetched = []

    def download_url(url, root, filename=None, md5=None):
        fetched.append(url)
        path = Path(root) / (filename or os.path.basename(url))
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name == "gzip.zip":
            with zipfile.ZipFile(path, "w") as z:
                for f in raw.iterdir():
                    z.writestr(f"gzip/{f.name}.gz", gzip.compress(f.read_bytes()))
        else:
            path.write_bytes(gzip.compress((raw / path.name.removesuffix(".gz")).read_bytes()))

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", download_url)
    return fetched


@pytest.mark.parametrize("name", DATASETS)
def test_each_dataset_is_one_override_away_downloads_and_trains(name, tmp_path, monkeypatch):
    d, root = DATASETS[name], tmp_path / "data"
    (train_x, train_y), (test_x, test_y) = write_dataset(tmp_path / "server", name)
    fetched = serve(monkeypatch, tmp_path / "server" / d["folder"] / "raw")

    cfg = compose_train([f"data={name}", f"data.root={root}", "data.val_size=50", f"run_dir={tmp_path / 'run'}",
                         "epochs=3", "batch_size=50", "lr=1e-2", "model.hidden=[64]", "~logger", *FAST])
    assert cfg.data.num_classes == cfg.model.num_classes == len(d["classes"]) and cfg.data.name == name
    metrics = train(cfg)  # downloads through torchvision first
    assert fetched and all((root / d["folder"] / "raw" / f).is_file() for f in d["files"])
    # Above chance by far: labels and images still belong together after the offset and the transposition.
    assert metrics["test/acc"] > 0.5 and metrics["epochs"] == 3
    ckpt = torch.load(metrics["best_ckpt"], weights_only=True)
    assert ckpt["hyper_parameters"]["classes"] == d["classes"]  # class names travel in the checkpoint
    assert list(metrics["test/per_class"]) == d["classes"]

    # The datamodule serves the images upright and the labels from 0, whatever the files hold.
    dm = instantiate(cfg.data)
    dm.setup()
    assert dm.classes == d["classes"]
    assert torch.equal(dm.splits["test"][0], torch.from_numpy(test_x))
    assert torch.equal(dm.splits["test"][1], torch.from_numpy(test_y).long())
    assert len(dm.splits["train"][0]) + len(dm.splits["val"][0]) == len(train_y)


def test_emnist_offline_is_one_clear_line(tmp_path, monkeypatch):
    def offline(url, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    dm = MNISTDataModule(name="emnist_letters", root=tmp_path, num_classes=26)
    dm.prepare_data()
    with pytest.raises(DataError) as e:
        dm.setup()
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "EMNIST" / "raw") in msg and "name resolution" in msg
    assert "emnist-letters-train-images-idx3-ubyte" in msg and "data.root=" in msg


def test_files_of_another_dataset_are_a_clear_error(tmp_path):
    # EMNIST digits' labels (0-9) where letters (1-26) are expected: label 0 has no letter.
    write_dataset(tmp_path, "emnist_digits", n_train=30, n_test=10)
    raw = tmp_path / "EMNIST" / "raw"
    for digits, letters in zip(emnist_names("digits"), emnist_names("letters")):
        (raw / digits).rename(raw / letters)
    dm = MNISTDataModule(name="emnist_letters", root=tmp_path, num_classes=26, val_size=5, download=False)
    with pytest.raises(DataError, match="labels 0 to 9, but the 26 classes of emnist_letters are labelled 1 to 26"):
        dm.setup()
    with pytest.raises(DataError, match="emnist_balanced has 47 classes"):
        MNISTDataModule(name="emnist_balanced", num_classes=26)
    assert set(SPECS) == {"mnist", *DATASETS}


# Letters drawn as strokes in a unit box (x right, y down), the way a person draws them.
STROKES = {
    "L": [(0, 0, 0, 1), (0, 1, 0.7, 1)],
    "T": [(0, 0, 1, 0), (0.5, 0, 0.5, 1)],
    "E": [(0, 0, 0, 1), (0, 0, 0.8, 0), (0, 0.5, 0.7, 0.5), (0, 1, 0.8, 1)],
    "F": [(0, 0, 0, 1), (0, 0, 0.8, 0), (0, 0.5, 0.7, 0.5)],
    "H": [(0, 0, 0, 1), (0.8, 0, 0.8, 1), (0, 0.5, 0.8, 0.5)],
    "Z": [(0, 0, 1, 0), (1, 0, 0, 1), (0, 1, 1, 1)],
    "N": [(0, 1, 0, 0), (0, 0, 0.8, 1), (0.8, 1, 0.8, 0)],
}


def draw_letter(letter, size=28, box=20, left=4, top=4, width=2, ink=255, paper=0) -> np.ndarray:
    """An upright letter drawn with straight strokes, box pixels high, its top-left corner at (left, top)."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(image)
    for x0, y0, x1, y1 in STROKES[letter]:
        draw.line([(left + x0 * box, top + y0 * box), (left + x1 * box, top + y1 * box)], fill=ink, width=width)
    return np.asarray(image)


def letter_images(labels, rng):
    """Stroke letters (label 0 = A), white on black, framed as EMNIST frames them: filling the frame but for a
    border of about 2 px (22-24 px high), their box centred; at varied stroke widths and places (+-1 px)."""
    out = np.zeros((len(labels), 28, 28), np.uint8)
    for i, c in enumerate(labels):
        letter, box, width = string.ascii_uppercase[c], int(rng.integers(22, 25)), int(rng.integers(2, 4))
        x = draw_letter(letter, box=box, left=0, top=0, width=width) > 0
        rows, cols = np.flatnonzero(x.any(1)), np.flatnonzero(x.any(0))
        jitter = rng.integers(-1, 2, 2)
        left = int(np.clip(round(14 - (cols[0] + cols[-1] + 1) / 2) + jitter[0], 0, 27 - cols[-1]))
        top = int(np.clip(round(14 - (rows[0] + rows[-1] + 1) / 2) + jitter[1], 0, 27 - rows[-1]))
        out[i] = draw_letter(letter, box=box, left=left, top=top, width=width)
    return out


def leans(image) -> tuple:
    """Where the ink's centre of mass lies from the centre of its bounding box: an upright L leans down-left."""
    a = np.asarray(image, dtype=float)
    rows, cols = np.nonzero(a > 0.5 * a.max())
    cy, cx = (np.arange(a.shape[0]) @ a.sum(1), np.arange(a.shape[1]) @ a.sum(0)) / a.sum()
    return ("down" if cy > (rows.min() + rows.max()) / 2 else "up",
            "left" if cx < (cols.min() + cols.max()) / 2 else "right")


def test_an_upright_L_is_upright_for_the_datamodule_and_for_predict(tmp_path, capsys):
    from PIL import Image

    from mnist_lit.predict import Reader, main

    root = tmp_path / "data"
    letters = [string.ascii_uppercase.index(c) for c in STROKES]
    _, (test_x, test_y) = write_dataset(root, "emnist_letters", n_train=700, n_test=140, images=letter_images,
                                        labels=letters)
    i = int(np.flatnonzero(test_y == string.ascii_uppercase.index("L"))[0])
    drawn = test_x[i]
    assert leans(drawn) == ("down", "left")
    stored = torchvision.datasets.EMNIST(root, split="letters", train=False).data[i].numpy()
    assert np.array_equal(stored, drawn.T) and leans(stored) == ("up", "right")  # as EMNIST stores it

    cfg = compose_train(["data=emnist_letters", f"data.root={root}", "data.val_size=70", f"run_dir={tmp_path / 'run'}",
                         "epochs=5", "batch_size=50", "lr=1e-2", "model.hidden=[128]", "~logger", *FAST])
    dm = instantiate(cfg.data)
    dm.setup()
    x, y = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)  # what the network is given
    assert dm.classes[y[i]] == "L" and torch.equal(x[i, 0].mul(255).round().byte(), torch.from_numpy(drawn))

    # A person's upright L, dark on white, much larger: predict's preprocessing keeps it upright.
    person = draw_letter("L", size=200, box=140, left=40, top=30, width=14, ink=0, paper=255)
    reader = Reader.from_checkpoint(train(cfg)["best_ckpt"])
    assert reader.framing == "emnist"  # from the checkpoint: letters are framed as EMNIST framed them
    read = reader.read(person)
    rows, cols = np.nonzero(read["image"] > 0.05)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 == 24 and abs((rows.min() + rows.max()) / 2 - 13.5) <= 1
    assert read["image"].shape == (28, 28) and leans(read["image"]) == leans(x[i, 0]) == ("down", "left")
    # The network learnt letters upright from EMNIST-style files: it reads the L, and not its transposition.
    assert read["label"] == "L" and reader.read(np.ascontiguousarray(person.T))["label"] != "L"
    Image.fromarray(person).save(tmp_path / "my_L.png")
    capsys.readouterr()
    assert main(["--ckpt", str(tmp_path / "run" / "checkpoints" / "best.ckpt"), str(tmp_path / "my_L.png")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'my_L.png'}: L ")


def test_experiment_emnist_letters_cnn_trains_the_cnn_on_letters(tmp_path):
    root = tmp_path / "data"
    write_dataset(root, "emnist_letters", n_train=210, n_test=70, images=letter_images,
                  labels=[string.ascii_uppercase.index(c) for c in STROKES])
    cfg = compose_train(["experiment=emnist_letters_cnn", f"data.root={root}", "data.val_size=70", "epochs=1",
                         "batch_size=70", "model.channels=[8,16]", f"run_dir={tmp_path / 'run'}", "~logger", *FAST])
    assert (cfg.data.name, cfg.model._target_, cfg.model.num_classes) == ("emnist_letters", "mnist_lit.models.CNN", 26)
    assert cfg.data.augment == "affine"
    metrics = train(cfg)
    hparams = torch.load(metrics["best_ckpt"], weights_only=True)["hyper_parameters"]
    assert hparams["net"]["_target_"] == "mnist_lit.models.CNN" and hparams["classes"] == list(string.ascii_uppercase)
    assert (tmp_path / "run" / "confusion_matrix.png").is_file() and (tmp_path / "run" / "misclassified.png").is_file()
