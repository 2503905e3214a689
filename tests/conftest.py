"""Shared test helpers: tiny MNIST-layout IDX files, config composition, the real-data location."""
import functools
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"
REAL = (SHARED_DATA / "MNIST" / "raw").is_dir()
needs_real_mnist = pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(),
                                      reason="real MNIST not found in ../shared/data")


def write_idx(path: Path, array: np.ndarray):
    """Writes a uint8 array as an IDX file, the format of MNIST's files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def make_images(labels: np.ndarray, size=28, rng=None) -> np.ndarray:
    """Images a small network learns quickly: a bright bar whose position encodes the label, plus noise."""
    rng = rng or np.random.default_rng(0)
    x = rng.integers(0, 40, (len(labels), size, size), dtype=np.uint8)
    for i, c in enumerate(labels):
        x[i, 2 + 2 * c: 4 + 2 * c, 4:24] = 255
    return x


def write_mnist(root: Path, n_train=600, n_test=200, folder="MNIST", files=None, num_classes=10, seed=0):
    """Writes a small dataset in torchvision's layout (root/<folder>/raw/...) and returns the arrays."""
    from mnist_lit.data import MNIST_FILES

    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, num_classes, n).astype(np.uint8)
        arrays[split] = (make_images(y, rng=rng), y)
    names = files or MNIST_FILES
    raw = root / folder / "raw"
    for (x, y), (img_name, lbl_name) in zip(arrays.values(), (names[:2], names[2:])):
        write_idx(raw / img_name, x)
        write_idx(raw / lbl_name, y)
    return arrays


@pytest.fixture
def tiny_root(tmp_path):
    root = tmp_path / "data"
    write_mnist(root)
    return root


def compose_train(overrides=()):
    """The real training config, composed as `python -m mnist_lit.train` would (without a Hydra run)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


# Quiet, fast trainer settings for tests that fit.
FAST = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
SMALL = ["model.hidden=[64]", "~callbacks.report", *FAST]  # a small network, no test report: quick runs


def start(module: str, *args, **env) -> subprocess.Popen:
    """python -m <module> args... from the repo root, as a user runs it (stdout and stderr piped, text)."""
    return subprocess.Popen([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run(module: str, *args, timeout=600, **env) -> subprocess.CompletedProcess:
    """start() and wait for it: its returncode, stdout and stderr."""
    proc = start(module, *args, **env)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def comparable(run_dir: Path) -> dict:
    """A run's metrics.json less what differs between equal runs (wall time, the checkpoint's path)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in ("train_seconds", "best_ckpt")}


# A "2" and a "7" as pen strokes in a 0..1 box.
TWO = [(.15, .25), (.4, .02), (.75, .08), (.8, .35), (.5, .65), (.12, .97), (.9, .95)]
SEVEN = [(.1, .05), (.9, .05), (.45, .98)]


def draw(strokes, size=(400, 300), box=(150, 60, 100, 180), width=12, ink=0, paper=255, mode="L"):
    """Strokes (lists of points in a unit box) drawn into box=(x, y, w, h) of an image."""
    im = Image.new(mode, size, paper)
    d = ImageDraw.Draw(im)
    x, y, w, h = box
    for stroke in strokes:
        d.line([(x + px * w, y + py * h) for px, py in stroke], fill=ink, width=width, joint="curve")
    return im


def row(chars, gap=40, width=12, size=(120, 180)):
    """A row of characters drawn left to right, each in a box of the given size."""
    w, h = size
    im = Image.new("L", (60 + len(chars) * (w + gap), h + 80), 255)
    d = ImageDraw.Draw(im)
    for k, strokes in enumerate(chars):
        x = 30 + k * (w + gap)
        for stroke in strokes:
            d.line([(x + px * w, 40 + py * h) for px, py in stroke], fill=0, width=width, joint="curve")
    return im


def _fit(run_dir: Path, overrides: list) -> Path:
    """Fits with the real config into run_dir (no logger) and returns its best checkpoint."""
    from mnist_lit.train import train

    train(compose_train([*overrides, f"run_dir={run_dir}", "~logger", *FAST]))
    return run_dir / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint of the default MLP fitted for 3 epochs on tiny written data (for unit tests of inference)."""
    run_dir = tmp_path_factory.mktemp("tiny-run")
    write_mnist(run_dir / "data")
    return _fit(run_dir, [f"data.root={run_dir / 'data'}", "data.val_size=100", "batch_size=50", "lr=3e-3",
                          "epochs=3"])


@pytest.fixture(scope="session")
def real_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint of the default MLP fitted for 200 steps on real MNIST (about 95% on the test set)."""
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip("real MNIST not found in ../shared/data")
    run_dir = tmp_path_factory.mktemp("real-run")
    return _fit(run_dir, [f"data.root={SHARED_DATA}", "epochs=1", "+trainer.limit_train_batches=200",
                          "+trainer.limit_val_batches=0.2"])


@pytest.fixture(scope="session")
def ckpt() -> Path:
    """The reader shipped with the package: what a user reads with after install (it reads drawn digits)."""
    from mnist_lit.predict import DEFAULT_MODEL

    return DEFAULT_MODEL


def encoded(im: Image.Image, fmt="PNG", **kwargs) -> bytes:
    """The bytes of an image saved in a format (Pillow's save options as keywords)."""
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


@functools.cache
def digit_png(scale=8) -> tuple[bytes, str | None]:
    """A user's image of a digit (dark on light, scaled up) and its label; without real MNIST, a bare stroke."""
    if REAL:
        from mnist_lit.data import read_idx

        x = read_idx(SHARED_DATA / "MNIST" / "raw" / "t10k-images-idx3-ubyte", 3)[0].numpy()
        label = str(int(read_idx(SHARED_DATA / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", 1)[0]))
    else:
        x, label = np.zeros((28, 28), np.uint8), None
        x[6:22, 12:16] = 255
    return encoded(Image.fromarray(255 - x).resize((28 * scale, 28 * scale), Image.BILINEAR)), label
