"""Any image of handwriting -> the 28x28 float images in [0, 1] that MNIST-trained networks expect.

MNIST was made from bilevel scans: each character's bounding box was scaled (keeping its aspect ratio,
with anti-aliasing) so that its longest side is 20 px, then pasted into 28x28 with its centre of mass
at the centre. This module does the same to a photo, scan or drawing: it finds the ink (either polarity),
removes uneven lighting, drops specks and frame lines, binarises, and then renders each character as MNIST
did, bringing unusually thin or thick strokes into MNIST's range. numpy, scipy and Pillow only (no torch).
"""
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage as ndi

SIZE, BOX = 28, 20  # MNIST's canvas and the box its characters are scaled into
CENTRE = 14.0  # where MNIST's centres of mass lie (row and column, pixel-index coordinates; measured: 13.99, 14.00)
FINE = 100  # each character is drawn this large (5x) before the anti-aliased reduction to 20 px
# Mean stroke width on the 28x28 canvas (see stroke_width): MNIST's 5th..95th percentiles, measured by passing
# 2,000 training images through this module (2.18..4.72, median 3.02). Strokes outside are brought to the edge.
STROKE_RANGE = (2.2, 4.7)
WORK_SIDE = (256, 1024)  # images are resampled so their longest side lies in this range
MIN_CONTRAST = 0.08  # ink must differ from the paper by this much (of the full 0..1 range)
SPLIT_ASPECT = 1.15  # a piece of ink wider than this times the row's height holds several characters
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class ReadError(ValueError):
    """The input cannot be read as handwriting; the one-line message says why and what to do."""


def load_gray(image) -> np.ndarray:
    """A path, bytes, open file, PIL image or 2-d array -> float32 gray in [0, 1]; transparent pixels are paper."""
    if isinstance(image, np.ndarray):
        a = np.asarray(image, dtype=np.float32)
        if a.ndim != 2 or not a.size:
            raise ReadError(f"expected a 2-d gray image array, got shape {a.shape}")
        return a / 255 if a.max() > 1 else a
    if isinstance(image, Image.Image):
        im, name = image, "the image"
    else:
        if isinstance(image, (bytes, bytearray)):
            name, source = "the image", io.BytesIO(image)
        elif hasattr(image, "read"):  # an open file
            name, source = str(getattr(image, "name", "the image")), image
        elif isinstance(image, (str, Path)):
            name, source = str(image), Path(image)
        else:
            raise ReadError(f"cannot read a {type(image).__name__}: pass a path, bytes, a PIL image or a 2-d array")
        try:
            im = Image.open(source)
            im.load()  # decode now, so a truncated file fails here
        except FileNotFoundError:
            raise ReadError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise ReadError(f"{name} is a folder, not an image") from None
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
            why = "not an image Pillow can read" if isinstance(e, UnidentifiedImageError) else f"unreadable ({e})"
            raise ReadError(f"{name} is {why}: use a PNG, JPEG, BMP, GIF or WebP file".replace("\n", " ")) from None
    im = ImageOps.exif_transpose(im)  # phone photos store their rotation in EXIF
    if im.width * im.height == 0:
        raise ReadError(f"{name} is empty (0 pixels)")
    if im.mode in ("P", "PA") or (im.mode in ("L", "LA", "RGB", "RGBA") and "transparency" in im.info):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
        rgba = np.asarray(im, dtype=np.float32) / 255
        gray = np.asarray(im.convert("L"), dtype=np.float32) / 255
        alpha = rgba[..., 3]
        if alpha.min() < 1:
            # Transparent pixels are paper: the paper is the opposite shade of the (alpha-weighted) drawn pixels,
            # so black strokes on a transparent canvas become black on white, white ones white on black.
            drawn = float((gray * alpha).sum() / max(alpha.sum(), 1e-6))
            paper = 0.0 if drawn > 0.5 else 1.0
            gray = gray * alpha + paper * (1 - alpha)
        return gray
    if im.mode.startswith(("I", "F")):  # 16-bit and float scans: keep their depth
        a = np.asarray(im, dtype=np.float32)
        return a / a.max() if a.max() > 0 else a
    return np.asarray(im.convert("L"), dtype=np.float32) / 255


def _resize(a: np.ndarray, shape, resample=Image.BILINEAR) -> np.ndarray:
    """Resizes a float array to (rows, cols); Pillow anti-aliases when reducing."""
    return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize(shape[::-1], resample), dtype=np.float32)


def _fit(a: np.ndarray, side: float, resample=Image.BILINEAR) -> np.ndarray:
    """Resizes a float array so that its longest side is `side` pixels, keeping the aspect ratio."""
    f = side / max(a.shape)
    return _resize(a, (max(1, round(a.shape[0] * f)), max(1, round(a.shape[1] * f))), resample)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """A mask with some ink -> the ink's bounding box (x0, y0, x1, y1), end exclusive."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _crop(mask: np.ndarray) -> np.ndarray:
    """A mask with some ink -> the part inside the ink's bounding box."""
    x0, y0, x1, y1 = _bbox(mask)
    return mask[y0:y1, x0:x1]


def ink_map(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """Gray image -> (ink as bright on dark with the paper's lighting removed, working scale vs. the input)."""
    h, w = gray.shape
    side = min(max(max(h, w), WORK_SIDE[0]), WORK_SIDE[1])
    scale = side / max(h, w)
    if scale != 1:
        gray = _fit(gray, side)
    # A reduced copy (area-averaged, so noise averages away) judges the polarity and the paper's shade.
    small = _fit(gray, 128)
    lo, mid, hi = np.percentile(small, [0.5, 50, 99.5])
    if hi - lo < MIN_CONTRAST:
        raise ReadError("no ink found: the image is all one shade (blank paper?): give an image of writing")
    # Polarity: the paper is the bulk of the image, so its median is nearer one extreme; the ink is the other.
    if mid - lo > hi - mid:
        gray, small = 1 - gray, 1 - small
    # The paper's shade (lighting, shadows, tint): a low percentile over windows a third of the image wide, on
    # a 64 px copy. Wider than any stroke, and robust to ink covering up to 3/4 of a window; not the minimum,
    # which follows the paper's noise.
    tiny = _fit(small, 64)
    k = max(3, round(max(tiny.shape) / 3))
    paper = ndi.uniform_filter(ndi.percentile_filter(tiny, 25, size=k, mode="nearest"), size=max(1, k // 2),
                               mode="nearest")
    ink = np.clip(gray - _resize(paper, gray.shape), 0, None)
    return ink, scale


def ink_mask(ink: np.ndarray) -> np.ndarray:
    """Ink map -> boolean mask of the character strokes (specks and frame lines removed)."""
    smooth = ndi.gaussian_filter(ink, 1.0)
    peak = float(smooth.max())
    # The paper's level and noise from the lower half of the ink map, which is paper even when ink covers
    # a third of the image (a spread around the median would count the ink as noise).
    sample = smooth[::2, ::2]  # plenty for the paper's statistics, at a quarter of the cost
    p10, med = np.percentile(sample, [10, 50])
    med, noise = float(med), float(med - p10) / 1.2816  # a normal distribution's 10th percentile is 1.28 sd down
    if peak - med < max(MIN_CONTRAST, 8 * noise):
        raise ReadError("no ink found: nothing stands out from the paper (too faint?): "
                        "use darker ink, more light, or a closer crop")
    # Half-way up the strokes, like the bilevel scans MNIST was made from, but above the paper's noise.
    mask = smooth > max(med + 0.45 * (peak - med), med + 5 * noise)
    return clean(mask)


def clean(mask: np.ndarray) -> np.ndarray:
    """Drops specks (tiny next to the largest piece of ink) and frame lines (borders, axes, ruled lines)."""
    labels, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        raise ReadError("no ink found")
    areas = np.bincount(labels.ravel())[1:]
    boxes = ndi.find_objects(labels)
    h, w = mask.shape
    keep = areas >= 0.02 * areas.max()
    frames = np.zeros(n, bool)
    for i, (rows, cols) in enumerate(boxes):
        bh, bw = rows.stop - rows.start, cols.stop - cols.start
        # A frame line spans most of the image and is thin for its length (a hand-drawn stroke is not).
        if keep[i] and (bh >= 0.85 * h or bw >= 0.85 * w):
            frames[i] = areas[i] / (bh + bw) < max(bh, bw) / 40
    if (keep & ~frames).any():  # a lone line is the character itself (a "1" drawn edge to edge)
        keep &= ~frames
    mask = np.isin(labels, np.flatnonzero(keep) + 1)
    return mask


def stroke_width(fine: np.ndarray) -> float:
    """Mean stroke width of a binary character drawn FINE px large, in pixels of the 28x28 canvas.

    For a stroke of width w the distance to the nearest paper pixel averages w/4 over the stroke.
    """
    padded = np.pad(fine, 1)  # the paper around the character counts as paper
    return 4 * float(ndi.distance_transform_edt(padded)[padded].mean()) * BOX / FINE


def _box20(fine: np.ndarray) -> np.ndarray:
    """A binary character -> gray, cropped to its ink, longest side 20 px, anti-aliased by area averaging."""
    return np.clip(_fit(_crop(fine), BOX, Image.BOX), 0, 1)


def _centre(box: np.ndarray) -> np.ndarray:
    """Pastes a character into 28x28 with its centre of mass at MNIST's centre (whole pixels, kept inside)."""
    h, w = box.shape
    cy, cx = ndi.center_of_mass(box)
    top = int(np.clip(round(CENTRE - cy), 0, SIZE - h))
    left = int(np.clip(round(CENTRE - cx), 0, SIZE - w))
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top:top + h, left:left + w] = box
    return out


def render(mask: np.ndarray) -> np.ndarray:
    """One character's boolean mask (any size) -> the 28x28 float image, as MNIST was made."""
    if not mask.any():
        raise ReadError("no ink found")
    crop = _crop(mask)
    fine = _fit(crop, FINE) > 0.5
    if not fine.any():
        fine = _resize(crop, fine.shape, Image.NEAREST) > 0.5
    lo, hi = STROKE_RANGE
    for _ in range(3):  # the estimate is rough for very thin strokes: measure again after each change
        width = stroke_width(fine)
        if lo <= width <= hi:
            break
        # Grow or shrink the strokes by the distance that brings the width to the range's edge
        # (a width change of d canvas pixels is d/2 per side, times FINE/BOX at this scale).
        delta = (min(max(width, lo), hi) - width) * FINE / BOX / 2
        padded = np.pad(fine, int(np.ceil(abs(delta))) + 1)
        changed = (ndi.distance_transform_edt(~padded) <= delta if delta > 0
                   else ndi.distance_transform_edt(padded) > -delta)
        if not changed.any():
            break
        fine = _crop(changed)
    box = _box20(fine)
    return _centre(box)


def preprocess(image) -> np.ndarray:
    """Any image of one character -> the 28x28 float32 array in [0, 1] (white ink on black) the model reads."""
    ink, _ = ink_map(load_gray(image))
    return render(ink_mask(ink))


def segment(mask: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """A row of characters -> [((x0, y0, x1, y1), mask of that character alone)], left to right.

    Connected pieces of ink are merged when they share most of their columns (the dot of an i, a 5's bar)
    or when one is a short fragment (a broken stroke) next to another; a piece much wider than the row's
    characters are tall is split where the fewest ink pixels cross its columns (characters that touch).
    """
    labels, n = ndi.label(mask, structure=np.ones((3, 3)))
    groups = [[i + 1] for i in range(n)]
    boxes = [[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in ndi.find_objects(labels)]  # x0 y0 x1 y1
    height = float(np.percentile([b[3] - b[1] for b in boxes], 75))  # the row's character height

    def column_overlap(a, b):
        return max(0, min(a[2], b[2]) - max(a[0], b[0])) / max(1, min(a[2] - a[0], b[2] - b[0]))

    def gap(a, b):
        dx, dy = max(0, a[0] - b[2], b[0] - a[2]), max(0, a[1] - b[3], b[1] - a[3])
        return float(np.hypot(dx, dy))

    def merge(i, j):
        groups[i] += groups.pop(j)
        a, b = boxes[i], boxes.pop(j)
        boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]

    def next_pair():
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if column_overlap(boxes[i], boxes[j]) >= 0.5:
                    return i, j
        # The shortest fragment joins its nearest neighbour, if that is close.
        short = [i for i in range(len(groups)) if boxes[i][3] - boxes[i][1] < 0.6 * height]
        if len(groups) > 1 and short:
            i = min(short, key=lambda k: boxes[k][3] - boxes[k][1])
            j = min((k for k in range(len(groups)) if k != i), key=lambda k: gap(boxes[i], boxes[k]))
            if gap(boxes[i], boxes[j]) < 0.25 * height:
                return min(i, j), max(i, j)
        return None

    while (pair := next_pair()) is not None:
        merge(*pair)

    chars = []
    for i in sorted(range(len(groups)), key=lambda k: boxes[k][0]):
        chars += _split(np.isin(labels, groups[i]), height)
    return [(_bbox(m), m) for m in chars]


def _split(m: np.ndarray, height: float) -> list[np.ndarray]:
    """Splits a piece of ink that is too wide for one character at its thinnest column, recursively."""
    cols = np.flatnonzero(m.any(0))
    x0, x1 = cols[0], cols[-1] + 1
    width = x1 - x0
    # Handwritten digits are at most about as wide as the row is tall (measured on MNIST: 99% have w/h < 1.1).
    n = max(2, round(width / (0.75 * height)))
    if width < SPLIT_ASPECT * height:
        return [m]
    profile = m[:, x0:x1].sum(0).astype(np.float32)
    # Look for the cut near where the first of n equal characters would end, not at the piece's edges.
    centre, reach = width / n, 0.35 * width / n
    lo, hi = max(1, int(centre - reach)), min(width - 1, int(centre + reach) + 1)
    if hi <= lo:
        return [m]
    window = ndi.uniform_filter1d(profile, 3)[lo:hi]
    cut = x0 + lo + int(np.argmin(window + 1e-3 * np.abs(np.arange(lo, hi) - centre)))
    left, right = m.copy(), m.copy()
    left[:, cut:] = False
    right[:, :cut] = False
    if not left.any() or not right.any():
        return [m]
    return [left] + _split(right, height)


def preprocess_multi(image) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Any image of a row of characters -> [((x0, y0, x1, y1) in the input's pixels, 28x28 array)], left to right."""
    ink, scale = ink_map(load_gray(image))
    out = []
    for (x0, y0, x1, y1), m in segment(ink_mask(ink)):
        box = tuple(int(round(v / scale)) for v in (x0, y0, x1, y1))
        out.append((box, render(m)))
    return out
