"""MNIST test digits re-rendered as users' images, and the measurement the README quotes.

python -m tests.user_images --ckpt PATH [--digits 2000] [--strips 500]: accuracy on the raw test tensors and on
the same digits as users' images, and the exact-string accuracy on rows of four digits.
"""
import argparse

import numpy as np
from PIL import Image

from tests.conftest import SHARED_DATA


def mnist_test(n: int):
    """The first n official test images (uint8, 28x28) and labels."""
    from mnist_lit.data import read_idx

    raw = SHARED_DATA / "MNIST" / "raw"
    return (read_idx(raw / "t10k-images-idx3-ubyte", 3).numpy()[:n],
            read_idx(raw / "t10k-labels-idx1-ubyte", 1).numpy()[:n])


def on_paper(ink: np.ndarray, rng) -> np.ndarray:
    """Ink in [0, 1] -> dark pen on paper lit unevenly (a gradient from a random side), with noise; gray in [0, 1]."""
    h, w = ink.shape
    yy, xx = np.mgrid[:h, :w]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / w + np.sin(angle) * yy / h
    paper = 0.9 - 0.3 * (ramp - ramp.min()) / (np.ptp(ramp) + 1e-9)
    gray = paper * (1 - ink) + rng.uniform(0, 0.25) * ink + rng.normal(0, 0.04, ink.shape)
    return np.clip(gray, 0, 1)


def user_image(x28: np.ndarray, rng, rgba=False) -> Image.Image:
    """One MNIST digit as a user's image: scaled up 4-10x, dark on light, off-centre in wide margins, lit unevenly."""
    side = 28 * int(rng.integers(4, 11))
    digit = np.asarray(Image.fromarray(x28).resize((side, side), Image.BILINEAR), np.float32) / 255
    h, w = side + int(rng.integers(side // 2, 2 * side)), side + int(rng.integers(side // 2, 2 * side))
    top, left = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
    ink = np.zeros((h, w), np.float32)
    ink[top:top + side, left:left + side] = digit
    g = (on_paper(ink, rng) * 255).astype(np.uint8)
    if rgba:
        return Image.fromarray(np.dstack([g, g, g, np.full_like(g, 255)]), "RGBA")
    return Image.fromarray(g, "L")


def strip_image(digits: np.ndarray, rng, min_gap=2) -> Image.Image:
    """MNIST digits cropped to their ink, side by side with gaps of min_gap..6 px (negative: overlapping), as a
    user's image scaled up 3-6x with margins."""
    crops = []
    for d in digits:
        rows, cols = np.flatnonzero(d.any(1)), np.flatnonzero(d.any(0))
        crops.append(d[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    gaps = rng.integers(min_gap, 7, len(crops))
    h = max(c.shape[0] for c in crops) + 4
    row = np.zeros((h, sum(c.shape[1] for c in crops) + int(gaps[:-1].sum()) + 4), np.uint8)
    x = 2
    for c, gap in zip(crops, gaps):
        y = int(np.clip((h - c.shape[0]) // 2 + rng.integers(-1, 2), 0, h - c.shape[0]))
        region = row[y:y + c.shape[0], x:x + c.shape[1]]
        np.maximum(region, c, out=region)
        x += c.shape[1] + int(gap)
    scale = int(rng.integers(3, 7))
    big = np.asarray(Image.fromarray(row).resize((row.shape[1] * scale, h * scale), Image.BILINEAR), np.float32)
    ink = np.pad(big / 255, [tuple(rng.integers(10, 60, 2)) for _ in range(2)])
    return Image.fromarray((on_paper(ink, rng) * 255).astype(np.uint8), "L")


def digit_accuracy(reader, n=500, seed=0) -> tuple[float, float]:
    """(accuracy on the raw test tensors, accuracy on the same digits as users' images; every third RGBA)."""
    x, y = mnist_test(n)
    raw = reader.classify(list(x.astype(np.float32) / 255), 1)
    rng = np.random.default_rng(seed)
    user = [reader.read(user_image(img, rng, rgba=i % 3 == 0), topk=1) for i, img in enumerate(x)]
    truth = [reader.classes[int(t)] for t in y]
    return (float(np.mean([r["label"] == t for r, t in zip(raw, truth)])),
            float(np.mean([r["label"] == t for r, t in zip(user, truth)])))


def strip_accuracy(reader, n=100, min_gap=2, seed=0) -> float:
    """The fraction of rows of four random test digits read exactly."""
    x, y = mnist_test(10000)
    rng = np.random.default_rng(seed)
    right = 0
    for _ in range(n):
        idx = rng.choice(len(x), 4, replace=False)
        truth = "".join(reader.classes[int(t)] for t in y[idx])
        right += reader.read_multi(strip_image(x[idx], rng, min_gap), topk=1)["text"] == truth
    return right / n


if __name__ == "__main__":
    from mnist_lit.predict import Reader

    parser = argparse.ArgumentParser(prog="python -m tests.user_images")
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--digits", type=int, default=2000)
    parser.add_argument("--strips", type=int, default=500)
    args = parser.parse_args()
    reader = Reader.load(args.ckpt)
    raw, user = digit_accuracy(reader, args.digits)
    print(f"first {args.digits} test digits: raw tensors {raw:.2%}, as users' images {user:.2%}")
    for gap, what in ((2, "apart (gaps 2-6 px)"), (-1, "some touching (gaps -1..6 px)")):
        print(f"{args.strips} rows of 4 digits {what}: read exactly {strip_accuracy(reader, args.strips, gap):.1%}")
