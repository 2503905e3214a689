"""Any image of handwriting -> the 28x28 float images in [0, 1] that MNIST-trained networks expect.

MNIST was made from bilevel scans: each character's bounding box was scaled (keeping its aspect ratio,
with anti-aliasing) so that its longest side is 20 px, then pasted into 28x28 with its centre of mass
at the centre. This module does the same to a photo, scan, screenshot or drawing: it finds the ink (either
polarity, any colour), removes uneven lighting and shadows, binarises, drops specks, printed frames and ruled
lines, and then renders each character as the model's dataset did (MNIST's or EMNIST's framing), bringing
unusually thin or thick strokes into MNIST's range; a character only a few pixels tall is drawn from its gray
ink. numpy, scipy and Pillow (with pillow-heif for HEIC) only (no torch).
"""
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull

register_heif_opener()  # iPhones save their photos as HEIC, which Pillow reads through pillow-heif

SIZE, BOX = 28, 20  # MNIST's canvas and the box its characters are scaled into
# How each dataset framed its characters (a checkpoint names its framing, from mnist_lit.data's Spec): the longest
# side in pixels, and what is centred. MNIST: 20 px, centre of mass; EMNIST: the frame less a 2 px border, box.
FRAMINGS = {"mnist": (BOX, "mass"), "emnist": (SIZE - 4, "box")}
CENTRE = 14.0  # where MNIST's centres of mass lie (row and column, pixel-index coordinates; measured: 13.99, 14.00)
FINE = 100  # each character is drawn this large (5x) before the anti-aliased reduction to 20 px
# Mean stroke width on the 28x28 canvas (see stroke_width): MNIST's 5th..95th percentiles, measured by passing
# 2,000 training images through this module (2.18..4.72, median 3.02). Strokes outside are brought to the edge.
STROKE_RANGE = (2.2, 4.7)
WORK_SIDE = (256, 1024)  # images are resampled so their longest side lies in this range
MIN_CONTRAST = 0.08  # ink must differ from the paper by this much (of the full 0..1 range)
SMALL = 12  # characters whose longest side is under this many pixels in the input are drawn from their gray ink
SPLIT_ASPECT = 1.15  # a piece of ink wider than this times the row's height holds several characters
WHOLE = 1.4  # with a model to judge, one up to this wide may still be one (a sheet seen at an angle widens them)
# With a model to judge, up to JOIN candidates join into one character: each within JOIN_GAP of the next, together
# up to JOIN_WIDTH wide (times the row's height)
JOIN, JOIN_GAP, JOIN_WIDTH = 3, 0.3, 1.3
# Two neighbours (a 0 in two arcs, each as tall as the row) may also join within PAIR_GAP, together up to JOIN_WIDTH
# wide, when the model reads neither alone with ALONE or more
PAIR_GAP, ALONE = 0.45, 0.8
MIN_CHAR, MAX_CHAR = 0.15, 1.5  # with a model to judge: the narrowest and widest character (times the row's height)
ROW_ASPECT = 1.3  # ink wider than this times its height, in several tall pieces, is a row (a hint to read it so)
# The formats decoded (by content, whatever the name), as Pillow and as messages name them: none of Pillow's other
# decoders (EPS runs Ghostscript). TIFF and PNM are what scanners and SANE's scanimage write, HEIC what iPhones do.
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM", "HEIF", "AVIF")
FORMAT_NAMES = "PNG, JPEG, BMP, GIF, WebP, TIFF, PNM, HEIC or AVIF"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pnm", ".pbm", ".pgm", ".ppm",
                  ".heic", ".heif", ".avif")  # what a folder's images are called
MAX_SIDE = 2 * WORK_SIDE[1]  # larger images are reduced while decoding: reading never uses more pixels
ZOOM = 0.25  # writing narrower and shorter than this share of a large page is read again from a crop around it
THIN = 1 / 15  # printed lines are at most this share of their length thick (a slanted 1 cropped tight: 0.08-0.1)
PRINTED = 0.6  # a piece with this share of its ink in straight runs (see _straight) is a printed mark, not writing
MAX_PIECES = 150  # a row of characters has fewer separate pieces of ink (preprocess_multi)
# A row's slopes tried (a row photographed at an angle or written drifting up or down), level first: up to 30 degrees
SLOPES = np.tan(np.deg2rad(np.r_[0, np.repeat(np.arange(1, 31), 2) * np.tile([1, -1], 30)]))
TILTS = np.tan(np.deg2rad(np.r_[-5:5.01:0.25]))  # the slopes lines across a photo are looked for at (_lines)


class ReadError(ValueError):
    """The input cannot be read as handwriting; the one-line message says why and what to do."""


def load_gray(image) -> np.ndarray:
    """A path, bytes, open file, PIL image or 2-d array -> float32 gray in [0, 1]; transparent pixels are paper."""
    return read_gray(image)[0]


def read_gray(image) -> tuple[np.ndarray, float]:
    """load_gray's array, and how many of the input's pixels make one of its pixels (1 unless over MAX_SIDE)."""
    if isinstance(image, np.ndarray):
        a = np.asarray(image, dtype=np.float32)
        if a.ndim != 2 or not a.size:
            raise ReadError(f"expected a 2-d gray image array, got shape {a.shape}")
        return (a / 255 if a.max() > 1 else a), 1.0
    if isinstance(image, Image.Image):
        name, source = "the image", None
    elif isinstance(image, (bytes, bytearray)):
        name, source = "the image", io.BytesIO(image)
    elif hasattr(image, "read"):  # an open file
        name, source = str(getattr(image, "name", "the image")), image
    elif isinstance(image, (str, Path)):
        name, source = str(image), Path(image)
    else:
        raise ReadError(f"cannot read a {type(image).__name__}: pass a path, bytes, a PIL image or a 2-d array")
    if (isinstance(source, Path) and source.is_file() and source.stat().st_size == 0) or image == b"":
        raise ReadError(f"{name} is empty (0 bytes): an interrupted download or copy? Save or copy it again")
    try:
        if isinstance(source, Path):  # read into memory: from a path, Pillow 13 maps an uncompressed TIFF and then
            source = io.BytesIO(source.read_bytes())  # drops its orientation tag unapplied (the page stays on its side)
        im = image if source is None else Image.open(source, formats=FORMATS)
        width = im.width
        k = -(-max(im.size) // MAX_SIDE)
        if k > 1 and im.format == "JPEG":
            im.draft(im.mode, (im.width // k, im.height // k))  # decodes at 1/2, 1/4 or 1/8 of the size
        im.load()  # decode now, so a truncated file fails here
        k = -(-max(im.size) // MAX_SIDE)
        if k > 1:  # a box filter: each pixel the mean of k x k, the full-size image never held as floats
            wide = {"P": "RGBA", "PA": "RGBA", "1": "L"}.get(im.mode, "I" if im.mode.startswith("I;") else im.mode)
            im = im.convert(wide).reduce(k) if wide != im.mode else im.reduce(k)
    except FileNotFoundError:
        raise ReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ReadError(f"{name} is a folder, not an image") from None
    except PermissionError:
        raise ReadError(f"{name}: permission denied: make the file readable (chmod +r) or copy it") from None
    except Image.DecompressionBombError as e:
        raise ReadError(f"{name} is too large to decode safely ({e}): scale it down first".replace("\n", " ")) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, UnidentifiedImageError):
            raise ReadError(f"{name} is not an image in a format read here ({FORMAT_NAMES}): "
                            "convert it to PNG") from None
        raise ReadError(f"{name} is unreadable ({e}): use a {FORMAT_NAMES} file".replace("\n", " ")) from None
    return _gray(im, name), width / max(im.width, 1)


def _gray(im: Image.Image, name: str) -> np.ndarray:
    """A decoded image -> float32 gray in [0, 1], ink in the channel where it stands out; transparency is paper."""
    im = ImageOps.exif_transpose(im)  # phone photos store their rotation in EXIF
    if im.width * im.height == 0:
        raise ReadError(f"{name} is empty (0 pixels)")
    if im.mode in ("P", "PA") or (im.mode in ("L", "LA", "RGB", "RGBA") and "transparency" in im.info):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
        rgba = np.asarray(im, dtype=np.float32) / 255
        alpha = rgba[..., 3]
        if alpha.min() == 1:
            return _ink_channel(im.convert("RGB"))
        gray = np.asarray(im.convert("L"), dtype=np.float32) / 255
        # Transparent pixels are paper: the paper is the opposite shade of the (alpha-weighted) drawn pixels,
        # so black strokes on a transparent canvas become black on white, white ones white on black.
        drawn = float((gray * alpha).sum() / max(alpha.sum(), 1e-6))
        paper = 0.0 if drawn > 0.5 else 1.0
        return gray * alpha + paper * (1 - alpha)
    if im.mode.startswith(("I", "F")):  # 16-bit and float scans: keep their depth
        a = np.asarray(im, dtype=np.float32)
        return a / a.max() if a.max() > 0 else a
    if im.mode == "L":
        return np.asarray(im, dtype=np.float32) / 255
    return _ink_channel(im.convert("RGB"))


def _ink_channel(im: Image.Image) -> np.ndarray:
    """An RGB image -> the gray channel in which the ink stands out most from the paper.

    Usually the luminance; but a green pen on pink paper can have the paper's luminance, and stands out in red.
    Each candidate is judged on a reduced copy by how far its extreme lies from its median (the paper), and by how
    much ink it shows: a yellow pen beside black print is faint in the luminance, and stands out in blue. Ink is
    strokes: what a channel shows beyond the luminance in broad areas (a highlighter's band) is colour, not ink.
    """
    channels = {"L": [0.299, 0.587, 0.114], "R": [1, 0, 0], "G": [0, 1, 0], "B": [0, 0, 1]}
    small = np.asarray(im.reduce(max(1, max(im.size) // 128)), dtype=np.float32) / 255
    extreme, ink, dev = {}, {}, {}
    for c, weights in channels.items():
        v = small @ np.asarray(weights, np.float32)
        dev[c] = np.abs(v - np.median(v))
        extreme[c], ink[c] = float(dev[c].max()), float(np.clip(dev[c] - MIN_CONTRAST, 0, None).sum())
    best = max(extreme, key=extreme.get)
    if extreme[best] < 1.25 * extreme["L"]:  # the luminance, unless a single channel is clearly better
        best = max(ink, key=ink.get)  # or shows far more ink, as strong at its strongest, in strokes
        extra = dev[best] - dev["L"] > MIN_CONTRAST
        width = 4 * ndi.distance_transform_edt(extra)[extra].mean() if extra.any() else 0  # see stroke_width
        if ink[best] < 1.25 * ink["L"] or extreme[best] < 0.8 * extreme["L"] or width > 0.1 * min(small.shape[:2]):
            best = "L"
    return np.asarray(im.convert("L") if best == "L" else im.getchannel(best), dtype=np.float32) / 255


def _resize(a: np.ndarray, shape, resample=Image.BILINEAR) -> np.ndarray:
    """Resizes a float array to (rows, cols); Pillow anti-aliases when reducing."""
    return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize(shape[::-1], resample), dtype=np.float32)


def _scale(a: np.ndarray, f: float, resample=Image.BILINEAR) -> np.ndarray:
    """Resizes a float array by the factor f, keeping the aspect ratio."""
    return _resize(a, (max(1, round(a.shape[0] * f)), max(1, round(a.shape[1] * f))), resample)


def _fit(a: np.ndarray, side: float, resample=Image.BILINEAR) -> np.ndarray:
    """Resizes a float array so that its longest side is `side` pixels, keeping the aspect ratio."""
    return _scale(a, side / max(a.shape), resample)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """A mask with some ink -> the ink's bounding box (x0, y0, x1, y1), end exclusive."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _crop(mask: np.ndarray) -> np.ndarray:
    """A mask (or an ink map) with some ink -> the part inside the ink's bounding box."""
    x0, y0, x1, y1 = _bbox(mask)
    return mask[y0:y1, x0:x1]


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold: the level that best splits the values into two classes."""
    hist, edges = np.histogram(values, 128)
    p = hist / max(1, hist.sum())
    w = np.cumsum(p)
    mu = np.cumsum(p * (edges[:-1] + edges[1:]) / 2)
    between = (mu[-1] * w - mu) ** 2 / np.maximum(w * (1 - w), 1e-12)
    return float(edges[1:][int(np.argmax(between))])


def _dark_ink(small: np.ndarray) -> bool:
    """Whether the ink is darker than the paper (small: a reduced gray copy of the image).

    The ink is the minority of the two shades and the paper holds the image's border. Light ink is chosen only when
    both say so clearly: a tight crop of a thick character can be half ink, and dark on light is the usual case.
    """
    t = _otsu(small)
    lit = small > t
    ring = np.concatenate([small[:2].ravel(), small[-2:].ravel(), small[:, :2].ravel(), small[:, -2:].ravel()])
    if not (lit.mean() < 0.4 and float((ring > t).mean()) < 0.25):
        return True
    # Light ink lies on paper of one flat shade: the darker shade's 10-90% spread is under 0.2 of the contrast in
    # every light-ink kind. A flash's hotspot on paper, the light falling off to dark corners round it, spreads the
    # darker shade (the dim paper and the writing) over 0.7 of it and more.
    paper, ink = small[~lit], small[lit]
    if np.subtract(*np.percentile(paper, (90, 10))) > 0.4 * (np.median(ink) - np.median(paper)):
        return True
    # Light strokes, or a patch of paper left lit beside a shadow over the rest: strokes are far thinner than the
    # image (light ink measured 0.06-0.31 of its shorter side, such patches 0.65-0.71; see stroke_width).
    return 4 * float(ndi.distance_transform_edt(lit)[lit].mean()) > 0.45 * min(small.shape)


def _grain(gray: np.ndarray) -> float:
    """The standard deviation of the paper's pixel noise, from differences of neighbouring pixels: their lower
    quartile, which lighting gradients barely move and the writing's edges (even in a small, tight scan) do not
    reach. (For noise of deviation s a difference is normal of deviation s * sqrt(2); its absolute value's lower
    quartile is 0.3186 of that.)"""
    if min(gray.shape) < 32:  # a small scan is mostly edges: no estimate, and no grain to speak of
        return 0.0
    rows = gray[:: max(1, gray.shape[0] // 256)]  # enough pairs, at a bounded cost
    d = np.abs(np.diff(rows, axis=1)).ravel()
    return float(np.percentile(d, 25)) / (0.3186 * np.sqrt(2)) if d.size else 0.0


def _enlarge(gray: np.ndarray, scale: float, pad: int = 2) -> np.ndarray:
    """A small gray image enlarged smoothly by `scale` as if paper lay beyond its edges: ink that reaches the edge of
    a tight crop fades out there as it does elsewhere, instead of running on (Pillow repeats the edge pixels)."""
    h, w = gray.shape
    paper = float(np.percentile(gray, 95 if _dark_ink(gray) else 5))  # (a tight crop's border can be mostly ink)
    big = _scale(np.pad(gray, pad, constant_values=paper), scale, Image.BICUBIC)
    p = round(pad * scale)
    return np.clip(big[p:p + round(h * scale), p:p + round(w * scale)], 0, 1)


def ink_map(gray: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Gray image -> (ink as bright on dark with the paper's lighting removed, working scale vs. the input, the
    noise's standard deviation in the ink map once smoothed as ink_mask smooths it)."""
    h, w = gray.shape
    if max(h, w) < 6:
        raise ReadError(f"the image is {w}x{h} pixels, too small to hold a character: give one at least 8 px tall")
    side = min(max(max(h, w), WORK_SIDE[0]), WORK_SIDE[1])
    scale = side / max(h, w)
    # Noise averages away when the image is reduced (by the factor scale); ink_mask's Gaussian of 1 px then takes
    # white noise to 0.27 of itself, and noise enlarged to blobs of `scale` pixels hardly at all.
    noise = _grain(gray) * min(1.0, scale) / np.sqrt(1 + 4 * np.pi / max(1.0, scale) ** 2)
    if scale > 1:  # a small scan: smooth enlargement, so that the strokes' edges come out round, not blocky
        gray = _enlarge(gray, scale)
    elif scale < 1:
        gray = _fit(gray, side)
    # Any marks at all? The 4th darkest and lightest pixels of a copy at most 512 px on a side, not percentiles: a
    # small character on a clean page (a drawing app's canvas, a 1-bit scan of a page) covers far under 1% of it.
    fine = gray if max(gray.shape) <= 512 else _fit(gray, 512)
    lo, hi = np.partition(fine.ravel(), (3, fine.size - 4))[[3, -4]]
    if hi - lo < MIN_CONTRAST:
        raise ReadError("no ink found: the image is all one shade (blank paper?): give an image of writing")
    # A reduced copy (area-averaged, so noise averages away) judges the polarity and the paper's shade.
    small = _fit(gray, 128)
    dark = _dark_ink(small)
    if dark:
        gray, small = 1 - gray, 1 - small  # from here on the ink is bright
    # The paper's shade (lighting, shadows, tint): a grey opening of the reduced copy (its minimum over a window,
    # then the maximum) with a window about three strokes wide, which no stroke fills but the paper's shading does.
    # The strokes' width is measured on a first, rougher removal of the shading (a window a quarter of the image).
    small = ndi.gaussian_filter(small, 0.7)
    rough = small - ndi.grey_opening(small, size=max(3, max(small.shape) // 4), mode="nearest")
    rough = rough > _otsu(rough)
    stroke = 4 * float(ndi.distance_transform_edt(rough)[rough].mean()) if rough.any() else 1.0
    k = int(np.clip(3 * stroke + 3, 3, 64))
    paper = ndi.uniform_filter(ndi.grey_opening(small, size=k, mode="nearest"), size=max(1, k // 2), mode="nearest")
    paper = _resize(paper, gray.shape)
    ink = np.clip(gray - paper, 0, None)
    if dark:  # ink darkens paper by a share of the light that falls on it: in a shadow, by less
        light = np.maximum(1 - paper, 0.25)
        ink /= light
        noise /= float(np.percentile(light, 10))  # and the grain grows with it where the light is low
    return ink, scale, noise


def _alike(size: np.ndarray, ink: np.ndarray, which=slice(None), boxes: np.ndarray | None = None) -> np.ndarray:
    """Which marks (of `which`) have two others or more alike: their sizes (height, width) each within 10% or 2 px,
    their ink within 15%. Given their boxes (as _corners gives them): a column of such marks, one above another, none
    beside them (not a grid of dots), each a blob, not a hairline (a faint box's side thresholded into dashes)."""
    s, m = size[which], ink[which]
    alike = ((np.abs(s[:, None] - size[None]) <= np.maximum(2, 0.1 * s[:, None])).all(2) &
             (np.abs(m[:, None] - ink[None]) <= 0.15 * m[:, None]))
    if boxes is None:
        return alike.sum(1) > 2
    c = boxes[which]
    below = (alike & (c[:, None, 1] < boxes[None, :, 3]) & (boxes[None, :, 1] < c[:, None, 3])).sum(1) > 2
    beside = (alike & (c[:, None, 0] < boxes[None, :, 2]) & (boxes[None, :, 0] < c[:, None, 2])).sum(1) > 1
    return below & ~beside & (s.min(1) >= 0.25 * s.max(1))


def _levels(sample: np.ndarray) -> tuple[float, float, np.ndarray | None]:
    """Smoothed ink map's sample -> (the paper's level, the strokes' full darkness, the pixels of an app's chrome
    when nothing else stands out, else None)."""
    top = float(sample.max())
    floor = float(np.percentile(sample, 10))  # paper, unless ink covers 90% of the image
    level = float(np.median(sample[sample < floor + 0.3 * (top - floor)]))
    # The strokes' full darkness (robust to a darker speck), on the pieces of marks with half the ink of the one with
    # the most or more: a screenshot's status bar or a printed label can stand out twice as far as the writing.
    labels, n = ndi.label(sample >= level + 0.3 * (top - level))
    mass = ndi.sum_labels(sample - level, labels, np.arange(1, n + 1))
    boxes = ndi.find_objects(labels)
    # An app's chrome does not count: a dark toolbar along the edge, solid colour swatches (a stroke is far thinner
    # than it is long).
    depth = 2 * ndi.maximum(ndi.distance_transform_edt(np.pad(labels > 0, 1))[1:-1, 1:-1], labels, np.arange(1, n + 1))
    b = _corners(boxes)
    shape = b[:, 2:] - b[:, :2]  # (height, width)
    sizes = shape.max(1)
    big = mass >= 0.1 * mass.max()
    bars = np.asarray([_bar(*s, *sample.shape, b[big & (np.arange(n) != i)]) for i, s in enumerate(boxes)])
    chrome = bars | (depth >= 0.6 * sizes)
    writing = (big & ~chrome).any()
    if writing:
        mass[chrome] = 0

    def darkness(mass):  # the 75th percentile of the pieces with half the most ink or more
        return float(np.percentile(sample[np.isin(labels, np.flatnonzero(mass >= 0.5 * mass.max()) + 1)], 75))

    peak = darkness(mass)
    # Three or more hollow marks alike (an app's sidebar of icons, a form's boxes) printed darker than a light pen's
    # writing beside them do not set its darkness either.
    among = np.flatnonzero(big & (mass > 0))
    icons = [i for i in among[_alike(shape[among], mass[among])]
             if ndi.binary_fill_holes(piece := labels[boxes[i]] == i + 1).sum() >= 2 * piece.sum()]
    if icons and len(icons) < len(among):
        rest = mass.copy()
        rest[icons] = 0
        peak = min(peak, darkness(rest))
    # Only chrome stands out: a bar, or several blobs (not one blob: a thick or blurred 0 is one).
    only = not writing and ((big & bars).any() or (big & chrome).sum() >= 2)
    return level, peak, np.isin(labels, np.flatnonzero(chrome) + 1) if only else None


def _field(sample: np.ndarray, level: float, peak: float, noise: float, one: bool = True):
    """The inside of a printed box round the writing (a form's field, perhaps printed far fainter than its label),
    in the sample's pixels, and the columns of the sides its boxes share when it is a comb (a row of boxes in one
    frame, a digit in each): the straight lines of a piece found at a tenth of the strokes' darkness, closed round an
    inside clear of them (not a grid) that holds ink, apart or touching them; the one holding the most (one=False, a
    row: the only one). None without one."""
    labels, _ = ndi.label(sample > level + max(0.1 * (peak - level), 5 * noise), structure=np.ones((3, 3)))
    best, most, found = None, 0, 0
    objects = ndi.find_objects(labels)
    for i, (rows, cols) in enumerate(objects):
        if min(rows.stop - rows.start, cols.stop - cols.start) < 16:  # too small for a box round writing (below)
            continue
        piece = labels[rows, cols] == i + 1
        straight = _straight(piece)  # (less any writing that touches them)
        if not straight.any():
            continue
        x0, y0, x1, y1 = _bbox(straight)
        lines, writing = straight[y0:y1, x0:x1], (piece & ~straight)[y0:y1, x0:x1]
        bh, bw = lines.shape
        # Their thickness (their ink over the perimeter; or, when less, half the rows the top and bottom lines fill:
        # a comb's inner sides add ink), and a pixel for their blur.
        across = int((lines.mean(1) >= 0.6).sum())
        t = int(np.ceil(min(lines.sum() / (2 * (bh + bw)), across / 2 if across >= 2 else np.inf))) + 1
        if min(bh, bw) < max(16, 8 * t) or ndi.binary_fill_holes(lines).mean() < 0.9:
            continue  # (too small: 8 times its lines, 2 px or more; not closed)
        inside = (slice(rows.start + y0 + t, rows.start + y1 - t), slice(cols.start + x0 + t, cols.start + x1 - t))
        core = lines[t:-t, t:-t]  # (the inside, in the lines' box)
        sides = _sides(core, t)
        # Mostly straight lines; or, where writing touches them, a comb's: sides along the edges of their box, and
        # inner ones that split it evenly (not a thick 0's straight parts, nor a highlighter's band)
        edges = (lines[:2].any(0), lines[-2:].any(0), lines[:, :2].any(1), lines[:, -2:].any(1))
        if not (_printed(piece, straight) or len(sides) and min(e.mean() for e in edges) >= 0.9):
            continue
        held = int(((labels[inside] > 0) & (labels[inside] != i + 1)).sum() + writing[t:-t, t:-t].sum())
        if core.sum() <= 0.4 * lines.sum() and held >= 0.01 * core.size:
            found += 1
            if held > most:
                best, most, which = (inside, sides + inside[1].start), held, i
    if one or best is None:
        return best
    # A row: in the only box that holds ink, with no other piece outside it half its size or more (a row in separate
    # boxes: each holds part of it, and one the writing touches holds none apart from it)
    areas = np.bincount(labels.ravel())[1:]
    big = (areas >= 0.5 * areas[which]) & ~_within(_corners(objects), which)
    return best if found == 1 and not big.any() else None


def _sides(core: np.ndarray, t: int) -> np.ndarray:
    """The columns of a comb's inner sides in the inside of its frame (lines t px thick): straight lines down 90% of
    it, one at each of the places that split the frame into equal boxes, for the most boxes that has all of them (a
    1 written down a box is not one)."""
    cols = np.flatnonzero(_runs(core, 0, max(3, int(0.9 * core.shape[0]))).any(0))
    lines = np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1) if len(cols) else []
    at = np.asarray([c.mean() for c in lines]) + t  # from the frame's left side
    for n in range(len(lines) + 1, 1, -1):
        pitch = (core.shape[1] + 2 * t) / n
        near = np.abs(at[:, None] - pitch * np.arange(1, n)) <= 0.15 * pitch
        if near.any(0).all():
            return np.concatenate([c for c, keep in zip(lines, near.any(1)) if keep])
    return cols[:0]


def ink_mask(ink: np.ndarray, noise: float, one: bool = False) -> np.ndarray:
    """Ink map and its smoothed noise (from ink_map) -> boolean mask of the character strokes (specks, frames and
    ruled lines removed; one: see clean)."""
    smooth = ndi.gaussian_filter(ink, 1.0)
    sample = smooth[::2, ::2]  # plenty for the statistics, at a quarter of the cost
    level, peak, chrome = _levels(sample)
    if chrome is not None:  # only an app's chrome stands out: a light pen may lie under it
        light, faint, _ = _levels(np.where(ndi.binary_dilation(chrome, iterations=2), level, sample))
        if faint - light >= max(MIN_CONTRAST, 8 * noise):  # it does: read it, without the chrome
            level, peak = light, faint
        else:
            chrome = None
    if peak - level < MIN_CONTRAST:
        raise ReadError(f"no ink found: the darkest marks differ from the paper by only {peak - level:.0%} "
                        f"(too faint): write with darker ink, or photograph it in more light")
    # Standing out from the paper's grain: eight times its estimate, or six for marks 40% darker than the paper or
    # more (the estimate is rough for a small dim photo, enlarged: digits there measured 6.5-7.5 of it and 0.55 or
    # more darker; blank pages' grain reaching 6 of it, under 0.2 darker).
    if peak - level < (6 if peak - level >= 0.4 else 8) * noise:
        raise ReadError(f"no ink found: nothing stands out from the paper's grain (marks {peak - level:.0%} darker, "
                        f"grain {noise:.1%}): photograph it in more light, or scan it")
    field = _field(sample, level, peak, noise, one)
    if field is not None:  # writing in a form's box: read inside it, at the level of what it holds
        field, sides = tuple(slice(2 * s.start, 2 * s.stop) for s in field[0]), 2 * field[1]
        inner, inner_peak, _ = _levels(smooth[field][::2, ::2])
        if inner_peak - inner >= max(MIN_CONTRAST, 8 * noise):
            level, peak, chrome = inner, inner_peak, None
        else:
            field = None
    # Half-way up the strokes, like the bilevel scans MNIST was made from, but above the paper's noise.
    mask = smooth > level + max(0.5 * (peak - level), 5 * noise)
    if field is not None:
        inside = np.zeros_like(mask)
        inside[field] = True
        mask &= inside
        if len(sides):  # a comb: the sides its boxes share go too, faint ones being dashes at this level
            cols = np.unique(np.clip((sides[:, None] + np.arange(-1, 3)).ravel(), 0, mask.shape[1] - 1))
            band = np.zeros_like(mask)
            band[field[0], cols] = True
            labels, n = ndi.label(mask, structure=np.ones((3, 3)))
            dashes = np.isin(labels, np.flatnonzero(ndi.minimum(band, labels, np.arange(1, n + 1))) + 1)
            # where writing touches one, only its straight run across the inside, and not where a stroke crosses it
            line = _runs(mask & band, 0, int(0.9 * (field[0].stop - field[0].start)))
            mask &= ~dashes & ~_uncrossed(line, mask, 0, len(cols) / (1 + (np.diff(cols) > 1).sum()))
    if chrome is not None:  # the pieces of ink that are mostly chrome go
        labels, n = ndi.label(mask)
        chrome = chrome.repeat(2, 0).repeat(2, 1)[:mask.shape[0], :mask.shape[1]]
        mask &= ~np.isin(labels, np.flatnonzero(ndi.mean(chrome, labels, np.arange(1, n + 1)) >= 0.5) + 1)
    return clean(mask, one)


def _runs(mask: np.ndarray, axis: int, length: int) -> np.ndarray:
    """The pixels of mask in straight runs of at least `length` along axis (1: rows): an opening by a segment."""
    structure = np.zeros((3, 3), bool)
    structure[1, :] = True
    labels, _ = ndi.label(mask if axis == 1 else mask.T, structure=structure)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    out = (sizes >= length)[labels]
    return out if axis == 1 else out.T


def _lines(mask: np.ndarray, axis: int) -> tuple[np.ndarray, bool]:
    """The pixels of lines along axis (1: rows) across 90% of the mask, and whether they are level: straight runs
    (_runs) at the slope of TILTS along which the ink lines up most (the sum of squares of its projection the largest;
    off level, each column shifted so that they lie level, a row off here and there: a thin line, the slope a little
    off), and those level too."""
    length = max(3, int(0.9 * mask.shape[axis]))
    line = _runs(mask, axis, length)
    m = mask if axis == 1 else mask.T
    if m.sum() < length:
        return line, True
    y, x = np.nonzero(m)
    k = max(1, len(y) // 4000)  # (a sample of the ink is plenty to find the slope)
    lift = int(np.ceil(TILTS.max() * m.shape[1])) + 1

    def profile(slope, every=1):  # the ink in each row, along this slope
        return np.bincount(y[::every] - np.round(slope * x[::every]).astype(int) + lift)

    def best(slopes):
        return slopes[int(np.argmax([np.square(profile(s, k), dtype=np.float64).sum() for s in slopes]))]

    coarse = best(TILTS[::4])  # each degree, then each quarter degree round the best
    slope = best(TILTS[np.abs(TILTS - coarse) < np.tan(np.deg2rad(1))])
    if slope == 0 or np.convolve(profile(slope), np.ones(3)).max() < length:  # (none holds a line's length of ink)
        return line, True
    shift = np.round(slope * np.arange(m.shape[1])).astype(int)
    rows = np.arange(m.shape[0])[:, None] + shift.max() - shift[None, :]
    cols = np.broadcast_to(np.arange(m.shape[1]), rows.shape)
    level = np.zeros((m.shape[0] + np.ptp(shift), m.shape[1]), bool)
    level[rows, cols] = m
    across = np.ones((3, 1), bool)
    runs = _runs(ndi.binary_dilation(level, across), 1, length)
    tilted = (level & ndi.binary_dilation(runs, across))[rows, cols]
    # Printed lines are thin, not a slanted 1 cropped tight.
    pieces, n = ndi.label(tilted, structure=np.ones((3, 3)))
    tilted &= (np.bincount(pieces.ravel(), minlength=n + 1) <= THIN * m.shape[1] ** 2)[pieces]
    return line | (tilted if axis == 1 else tilted.T), False


def _straight(piece: np.ndarray) -> np.ndarray:
    """The pixels of a piece of ink in straight runs, along rows or columns, over 60% of its box: printed lines."""
    h, w = piece.shape
    return _runs(piece, 1, max(3, int(0.6 * w))) | _runs(piece, 0, max(3, int(0.6 * h)))


def _printed(piece: np.ndarray, straight: np.ndarray | None = None) -> bool:
    """Whether a piece of ink is a printed mark (a box, axes, a border, a lone line): mostly straight runs."""
    return (_straight(piece) if straight is None else straight).sum() >= PRINTED * piece.sum()


def _bar(rows: slice, cols: slice, h: int, w: int, others: np.ndarray = np.zeros((0, 4), int)) -> bool:
    """Whether a piece's box (its slices in an h x w image) is a bar along the image's edge: under a quarter of the
    image thick, and across all of it or across 85% and twelve times as long as thick (an app's toolbar, also where a
    crop cuts it; a scan's dark border), and over 1.5 times as long as the other pieces (boxes `others`, as _corners
    gives them) along it: not a 1 in a crop cut tight round a row, as tall as the row."""
    bh, bw = rows.stop - rows.start, cols.stop - cols.start
    tall, wide = (others[:, 2:] - others[:, :2]).max(0, initial=0)
    return (bh <= 0.25 * h and (rows.start == 0 or rows.stop == h) and (bw == w or bw >= max(0.85 * w, 12 * bh)) and
            bw > 1.5 * wide or
            bw <= 0.25 * w and (cols.start == 0 or cols.stop == w) and (bh == h or bh >= max(0.85 * h, 12 * bw)) and
            bh > 1.5 * tall)


def _thin_lines(piece: np.ndarray, axis: int, width: float) -> np.ndarray:
    """The pixels of straight lines along axis (1: horizontal) over 60% of the piece, thinner than half the
    writing's stroke width, except where a stroke crosses them."""
    line = _runs(piece, axis, max(3, int(0.6 * piece.shape[axis])))
    if not line.any():
        return line
    labels, n = ndi.label(line, structure=np.ones((3, 3)))
    extent = np.asarray([sl[axis].stop - sl[axis].start for sl in ndi.find_objects(labels)])
    thick = np.bincount(labels.ravel())[1:] / extent
    thin = thick < 0.5 * width
    return _uncrossed(np.isin(labels, np.flatnonzero(thin) + 1), piece, axis, thick[thin].max()) if thin.any() \
        else np.zeros_like(piece)


def _uncrossed(line: np.ndarray, mask: np.ndarray, axis: int, thick: float) -> np.ndarray:
    """The line's pixels less those where a stroke of mask crosses it: there ink lies just beyond the line (of the
    given thickness) on both sides."""
    t = int(np.ceil(thick))
    across = np.ones((2 * t + 3, 1) if axis == 1 else (1, 2 * t + 3), bool)
    return line & ~ndi.binary_closing(mask & ~line, structure=across)


def _width(mask: np.ndarray) -> float:
    """The mean stroke width of a mask, in its own pixels (4x the mean distance to the paper)."""
    return 4 * float(ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1][mask].mean()) if mask.any() else 0.0


def clean(mask: np.ndarray, one: bool = False) -> np.ndarray:
    """Drops specks, printed frames (a box, plot axes, a border) and ruled lines, keeping the writing.

    Printed lines are long, straight and, where they touch the writing, thinner than its strokes. The writing in a
    frame is what is read: marks outside it (its label) go too. one=False: the image may hold a row of characters.
    """
    h, w = mask.shape
    # Ruled or squared paper, a grid: lines across the whole image, level or at a photo's tilt, where the writing does
    # not reach; a grid's wherever the writing lies (lines both ways, two or more one way: a sudoku's cell cropped, its
    # neighbours' printed digits at the crop's edges; not a 4's or a footed 1's two strokes cropped tight).
    found = [_lines(mask, axis) for axis in (1, 0)]
    count = [ndi.label(line)[1] for line, _ in found]
    # (a grid's lines are thin, not the rows of a 1 cropped tight)
    thin = all(line.sum() <= n * THIN * mask.shape[axis] ** 2 for (line, _), n, axis in zip(found, count, (1, 0)))
    grid = min(count) >= 1 and max(count) >= 2 and thin
    for axis, (line, level), n in zip((1, 0), found, count):
        if line.any():
            line &= mask  # (less what went with the lines the other way)
            if grid:  # and their ragged edges, where a row of a line's pixels is broken by its crossings
                line = mask & ndi.binary_dilation(line, np.ones((3, 1) if axis == 1 else (1, 3), bool))
            rows = line.any(axis=axis)  # (for horizontal lines) the rows they lie on
            thick = rows.sum() / ndi.label(rows)[1] if level else line.sum() / n / mask.shape[axis]
            line = _uncrossed(line, mask, axis, thick)
            rest = mask & ~line
            span = np.flatnonzero(rest.any(axis=1 - axis)) if rest.any() else np.array([0, mask.shape[axis] - 1])
            if grid and rest.any() or span[0] > 0.05 * mask.shape[axis] and span[-1] < 0.95 * mask.shape[axis]:
                mask = rest
    labels, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        raise ReadError("no writing found, only ruled lines: give an image of writing")
    areas = np.bincount(labels.ravel())[1:]
    boxes = ndi.find_objects(labels)
    b = _corners(boxes)
    keep = areas >= 0.02 * areas.max()  # specks: tiny next to the largest piece of ink
    size = b[:, 2:] - b[:, :2]
    frames, holds, empty = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)  # printed frames; those round
    # the writing; closed ones round nothing (a row of boxes' boxes left empty)
    printed = np.zeros(n, bool)
    touched = False

    def writing_width():  # the median stroke width of the pieces not mostly straight runs (0: all are)
        widths = [_width(p) for k in np.flatnonzero(keep) if not _printed(p := labels[boxes[k]] == k + 1)]
        return float(np.median(widths)) if widths else 0.0

    for i, (rows, cols) in enumerate(boxes):
        if not keep[i]:
            continue
        bh, bw = rows.stop - rows.start, cols.stop - cols.start
        piece = labels[rows, cols] == i + 1
        straight = _straight(piece)
        mostly = printed[i] = _printed(piece, straight)
        if mostly:
            others = keep & (np.arange(n) != i)
            within = others & _within(b, i)
            # Round the writing: all the other pieces inside it, or some with a quarter of its ink or more, or the
            # largest other piece, half its size or more (a form's box, its printed label beside it; not a fragment
            # in a straight-stroked 4's box).
            j = int(np.argmax(np.where(others, areas, 0)))
            holds[i] = within.any() and ((within == others).all() or areas[within].sum() >= 0.25 * areas[i] or
                                         within[j] and (b[j, 2:] - b[j, :2]).max() >= 0.5 * max(bh, bw))
            empty[i] = not within.any() and ndi.binary_fill_holes(piece).mean() >= 0.9
        rest = (piece & ~straight).sum()
        if straight.any() and rest and not (holds[i] and rest < 0.02 * areas.max()):
            # Writing that touches a frame (a box, axes; not a frame alone round the writing, with rounded corners):
            # the frame has lines both ways, thinner than the strokes.
            width = _width(piece & ~straight)
            across, down = _thin_lines(piece, 1, width), _thin_lines(piece, 0, width)
            cut = across | down if across.any() and down.any() else None
            if rest < 0.05 * piece.sum() and bw >= 4 * bh and (pen := writing_width()):
                # A long frame alone (straight runs but for a few pixels at its joints: a comb's base line and
                # ticks) has no strokes to measure but those few pixels, and its ticks, thicker than its base line,
                # were left: measured against the writing's pen, if its lines both ways leave only specks, it goes.
                across, down = _thin_lines(piece, 1, pen), _thin_lines(piece, 0, pen)
                left, _ = ndi.label(piece & ~(across | down), structure=np.ones((3, 3)))
                if across.any() and down.any() and (np.bincount(left.ravel())[1:] < 0.05 * piece.sum()).all():
                    cut = piece
            if cut is not None:
                mask[rows, cols] &= ~cut
                touched = True
                continue
        if mostly:
            # A long thin line across most of the image is a border, an axis or a ruled line; so is a bar along its
            # edge.
            spans = (bh >= 0.85 * h or bw >= 0.85 * w) and areas[i] / (bh + bw) < max(bh, bw) / 40 or \
                _bar(rows, cols, h, w, b[keep & (np.arange(n) != i)])
            # Three or more printed marks alike are not one character's ink (an app's sidebar of icons, a form's
            # checkboxes); a row of them may be (typed 1s).
            alike = one and _alike(size, areas, [i])[0]
            frames[i] = holds[i] or spans or alike
    if touched:  # the pieces have changed: judge them again
        return clean(mask, one)
    frames |= empty & holds.any()
    writing = keep & ~frames
    if holds.sum() == 1 and writing.any():
        # The writing in the one frame that holds writing: what lies outside (the box's printed label) goes, unless
        # the largest piece does (then the frame holds a fragment, not the character). Writing across its box's edge
        # is in it (a frame broken by faint lines ends short of its box).
        f = int(np.flatnonzero(holds)[0])
        inner = ((b[:, :2] < b[f, 2:]) & (b[:, 2:] > b[f, :2])).all(1)
        if inner[np.argmax(np.where(writing, areas, 0))]:
            keep &= inner | frames
    # A column of three marks alike or more, one above another (a spiral notebook's punched holes), is not writing,
    # not even in a row (typed characters alike stand side by side). (Judged for the kept pieces only: all n x n
    # pairs of a grainy mask's thousands of specks would be needless work.)
    frames[keep] |= _alike(size, areas, np.flatnonzero(keep), boxes=b)
    frames |= _from_edge(labels, b, keep & ~frames)
    frames |= _marks_around(b, areas, keep & ~frames, one, printed)
    if not (keep & ~frames).any():
        if keep.sum() > 1 or not frames.any():
            raise ReadError("no writing found, only a printed frame or lines: give an image of writing")
        # a lone line is the character itself (a "1" drawn edge to edge)
    else:
        keep &= ~frames
    return _inside_ring(np.isin(labels, np.flatnonzero(keep) + 1))


def _corners(boxes) -> np.ndarray:
    """The pieces' boxes from ndi.find_objects as an array of rows y0 x0 y1 x1 (end exclusive)."""
    return np.asarray([(r.start, c.start, r.stop, c.stop) for r, c in boxes]).reshape(-1, 4)


def _within(b: np.ndarray, i: int) -> np.ndarray:
    """Which of the boxes b (from _corners) lie inside box i (itself among them)."""
    return (b[:, :2] >= b[i, :2]).all(1) & (b[:, 2:] <= b[i, 2:]).all(1)


def _marks_around(b: np.ndarray, areas, kept: np.ndarray, one: bool, printed: np.ndarray) -> np.ndarray:
    """Which kept pieces (boxes b from _corners; printed: which are printed marks) are drawn around the writing, not
    part of it: a ring round the other pieces (a circled answer), or a line under them all (an underline, a form's
    base line with ticks). one=False: the writing may be a row, which a round ring encloses with room above and
    below."""
    marks = np.zeros(len(kept), bool)
    while True:  # again after each mark: once the lower of two underlines goes, the upper lies beneath the rest
        pieces = np.flatnonzero(kept & ~marks)
        if len(pieces) < 2:
            return marks
        # Only the piece that starts highest can enclose the others, only the one that starts lowest lie under them.
        for i in {pieces[np.argmin(b[pieces, 0])], pieces[np.argmax(b[pieces, 0])]}:
            others = pieces[pieces != i]
            (y0, x0), (y1, x1) = b[others, :2].min(0), b[others, 2:].max(0)
            bh, bw = b[i, 2] - b[i, 0], b[i, 3] - b[i, 1]
            # A ring: the others well inside its box, and large (a fragment in a 9's loop is not another
            # character); its ink lies round them, far lighter than its box. (A 0 round a speck: specks are gone.)
            big = y1 - y0 >= 0.35 * bh or not one and x1 - x0 >= 0.5 * bw
            ring = (b[i, 0] < y0 and y1 < b[i, 2] and b[i, 1] < x0 and x1 < b[i, 3] and big
                    and areas[others].sum() >= 0.2 * areas[i] and areas[i] < 0.35 * bh * bw)
            # An underline: long and flat, beneath all the others (a 5's flag, a 7's bar lie above), spanning them;
            # or a base line with ticks rising from it (a form's comb), under the writing's bottom, not to its top
            # third, printed or running far beyond the writing (a 2's base broken off, rising to the rest, is neither).
            ticks = b[i, 2] >= y1 and b[i, 0] >= y0 + 0.3 * (y1 - y0) and (printed[i] or bw >= 1.5 * (x1 - x0))
            under = bw >= 4 * bh and bw >= 0.6 * (x1 - x0) and (b[i, 0] >= y1 or ticks)
            if ring or under:
                marks[i] = True
                break
        else:
            return marks


def _from_edge(labels: np.ndarray, b: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Which kept pieces (labels from ndi.label, boxes b from _corners) reach in from beyond one side of the image, not
    writing: a thumb holding the paper (its outline, or all of it when dark), wholly beyond the rest of the writing on
    that side. Closed by the edge, such a piece is broad: over two pens' widths across where it meets the edge, and
    deep enough to hold a disc 2.4 pens across (not a stroke running off the edge or along it, nor a 7 cropped tight,
    its bar and stem closing a sliver with the edge; a thumb beside a marker's strokes is only 2.4-3 of them across);
    and it meets the edge where it is widest (not a character touching it). A character written in a corner meets two
    sides."""
    out = np.zeros(len(kept), bool)
    pieces = np.flatnonzero(kept)
    if len(pieces) < 2:
        return out
    h, w = labels.shape
    m = max(2, 0.01 * max(h, w))  # at the edge: within this many pixels of it
    edge = [(0, slice(None)), (slice(None), -1), (-1, slice(None)), (slice(None), 0)]  # top, right, bottom, left
    inner = [(1, slice(1, -1)), (slice(1, -1), -2), (-2, slice(1, -1)), (slice(1, -1), 1)]  # the rows beside them
    for i in pieces:
        (y0, x0, y1, x1), rest = b[i], b[pieces[pieces != i]]
        at = [y0 <= m, x1 >= w - m, y1 >= h - m, x0 <= m]
        beyond = [y1 <= rest[:, 0].min(), x0 >= rest[:, 3].max(), y0 >= rest[:, 2].max(), x1 <= rest[:, 1].min()]
        if sum(at) != 1 or not beyond[k := at.index(True)]:
            continue
        piece = labels[y0:y1, x0:x1] == i + 1
        closed = np.pad(piece, 1)
        closed[edge[k]] = True
        filled = ndi.binary_fill_holes(closed)
        across = filled[inner[k]].sum()
        pen = float(np.median([_width(labels[y:Y, x:X] == j + 1)
                               for j, (y, x, Y, X) in zip(pieces, b[pieces]) if j != i]))
        out[i] = (across > 2 * pen and across >= 0.9 * piece.shape[1 - k % 2] and
                  ndi.distance_transform_edt(filled).max() >= 1.2 * pen)
    return out


def _inside_ring(mask: np.ndarray) -> np.ndarray:
    """The writing inside a ring drawn round it tight enough to touch it (one piece of ink): the ring cut away."""
    labels, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask
    i = int(np.argmax(np.bincount(labels.ravel())[1:]))
    rows, cols = ndi.find_objects(labels)[i]
    piece = labels[rows, cols] == i + 1
    filled = ndi.binary_fill_holes(piece)
    # A ring's outline is an ellipse: it fills about 79% of its box and all of its convex hull (an 8 has a waist).
    if min(piece.shape) < 8 or filled.mean() < 0.7:
        return mask
    if filled.sum() < 0.95 * ConvexHull(np.argwhere(filled & ~ndi.binary_erosion(filled))).volume:
        return mask
    # The ring's width: the depth, from the outline inwards, down to which ink fills the band at that depth.
    depth = np.ceil(ndi.distance_transform_edt(np.pad(filled, 1))[1:-1, 1:-1]).astype(int)
    inked = np.bincount(depth[piece], minlength=depth.max() + 1) / np.maximum(np.bincount(depth.ravel()), 1)
    width = int(np.argmax(inked[1:] < 0.5))  # inked[1:width+1] are full
    inner = piece & (depth > width + 1)
    if width == 0 or inner.sum() < 0.2 * piece.sum():  # nothing inside, or a fragment in a 0: not writing
        return mask
    # Inside a ring, paper (under a third inked) begins within a few pixels of where its band stops being full
    # (measured: 0-2 px); a fat character's ink (a blurred or bold 8, its loops small) thins out over more (6-7).
    thinning, paper = inked[1:] < 0.9, inked[1:] < 0.35
    if not paper.any() or np.argmax(paper) - np.argmax(thinning) > 4:
        return mask
    out = mask.copy()
    out[rows, cols] &= ~(piece & ~inner)
    return out


def _pieces(labels: np.ndarray, row: bool = False):
    """The pieces of ink of a labelled mask: (their boxes from _corners, their sizes in pixels, the largest, which are
    printed marks, and gap[i, j], how far apart the boxes of pieces i and j lie (<= 0 where they overlap)). A straight
    piece that is a stroke of the pen's width is writing: up to half the largest's length, the pen's width the
    largest's; in a row (row=True), however long (a 1), the pen's width the median of the other pieces'."""
    boxes = ndi.find_objects(labels)
    b = _corners(boxes)
    sizes = np.bincount(labels.ravel())[1:]
    largest = int(np.argmax(sizes))
    printed = np.asarray([_printed(labels[s] == i + 1) for i, s in enumerate(boxes)])
    printed[largest] = False  # (a character drawn with straight strokes: its largest piece)
    # A short straight piece that is a stroke of the pen's width (a skipping pen's fragment of a 2's base or a 3's
    # bar), not a block or a thin printed line, is writing.
    side = (b[:, 2:] - b[:, :2]).max(1)
    strokes = np.flatnonzero(printed & (row | (side <= 0.5 * side[largest])))
    if row and len(strokes):
        pen = float(np.median([_width(labels[boxes[i]] == i + 1) for i in np.flatnonzero(~printed)]))
    else:
        pen = _width(labels[boxes[largest]] == largest + 1) if len(strokes) else 0.0  # (only when needed: hot)
    for i in strokes:
        width = _width(labels[boxes[i]] == i + 1)
        printed[i] = not (side[i] >= 2 * width and 0.6 * pen <= width <= 1.6 * pen)
    gap = np.max([b[None, :, 0] - b[:, None, 2], b[:, None, 0] - b[None, :, 2],
                  b[None, :, 1] - b[:, None, 3], b[:, None, 1] - b[None, :, 3]], axis=0)
    return b, sizes, largest, printed, gap


def _main_row(mask: np.ndarray) -> np.ndarray:
    """The ink of one row of characters: its largest piece and the pieces near a piece so added: within 0.3 of the
    row's height (a broken stroke's fragment), or within the row's height and centred between its top and bottom
    along its slope (the next character), or from any distance when also as tall as the row. Marks off the row (an
    app's toolbar, a phone's status bar, a sidebar of icons, a small label far to its left, a box's sides) are left
    out."""
    labels, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n < 2 or n > MAX_PIECES:  # (segment refuses a texture of many pieces)
        return mask
    b, sizes, largest, printed, gap = _pieces(labels, row=True)
    tall, middle, across = b[:, 2] - b[:, 0], (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    # within[i, j]: half of piece j's columns or more lie within piece i's (a 7's bar over its stem)
    within = (np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])) >= \
        0.5 * (b[:, 3] - b[:, 1])[None, :]
    # A thin line twice as tall as the characters (where half the ink lies, hairlines left out: a box's sides may hold
    # more than thin characters) is a box's or a table's side: it starts nothing and joins nothing.
    wide = b[:, 3] - b[:, 1]
    upright = tall >= 6 * wide

    def typical(among):  # the height at which half the ink of these pieces lies
        order = np.argsort(tall[among])
        return tall[among][order][np.searchsorted(np.cumsum(sizes[among][order]), sizes[among].sum() / 2)]

    hair = upright & (wide <= 0.08 * typical(np.ones(n, bool)))
    usual = typical(~hair if not hair.all() else hair)
    line = (tall > 2 * usual) & upright
    # A faint side breaks into dashes: hairlines in the same columns, together half as tall again as the characters,
    # are one too.
    dashes = np.flatnonzero(upright & (wide <= 0.08 * usual))
    if len(dashes) > 1:
        cover = np.zeros(mask.shape[1], bool)
        for i in dashes:
            cover[b[i, 1]:b[i, 3]] = True
        band = ndi.label(cover)[0][b[dashes, 1]]
        for k in np.unique(band):
            side = dashes[band == k]
            line[side] |= b[side, 2].max() - b[side, 0].min() > 1.5 * usual
    if line[largest] and not line.all():
        largest = int(np.argmax(np.where(line, 0, sizes)))
        printed[largest] = False
    group = np.arange(n) == largest
    while True:
        words = group & ~printed
        row = b[words]
        height = (row[:, 2] - row[:, 0]).max()
        # On the row's line: the middle between its top and bottom, along the slope (of SLOPES, the most level of
        # those) that puts the most pieces of writing half its height or more on it.
        level, lift = middle - SLOPES[:, None] * across, SLOPES[:, None] * across[words]
        on = ((row[:, 0] - lift).min(1)[:, None] <= level) & (level <= (row[:, 2] - lift).max(1)[:, None])
        on_row = on[np.argmax((on & ~printed & (tall >= 0.5 * height)).sum(1))]
        # The next character joins from farther than a fragment, and writing of the row's height on its line from
        # any distance (a number written with wide spaces). A printed mark (a 1, a marker's stroke; an icon) brings
        # in only the next character, and joins as a character only when of the row's height; a smaller one only
        # within a character's columns or between two of them (not at the row's end: a sidebar's icons).
        reach = np.where(on_row[None, :], 1.0, np.where(printed[:, None], -np.inf, 0.3)) * height
        reach[:, on_row & ~printed & (tall >= 0.7 * height)] = np.inf
        mark = printed & (tall < 0.5 * height)
        close = (gap <= height) & (group & ~printed)[:, None]
        between = (close & (b[:, None, 1] < b[None, :, 1])).any(0) & (close & (b[:, None, 3] > b[None, :, 3])).any(0)
        reach[:, mark] = np.where(within[:, mark] | between[mark], 0.3 * height, -np.inf)
        reach[:, line] = -np.inf
        near = (gap[group] <= reach[group]).any(0) & ~group
        if not near.any():
            return np.isin(labels, np.flatnonzero(group) + 1)
        group |= near


def _main_group(mask: np.ndarray) -> np.ndarray:
    """The ink of one character: its largest piece and the pieces within 0.3 of the character's size (as found so
    far) of it, or of a piece so added (a faint or broken character's fragments); marks farther away (a printed label
    or question number beside it, an app's toolbar and icons, a phone's home bar, a page number) are left out. A
    printed mark (a bar, an outlined icon) near the character joins it, but does not bring in the marks near itself
    (an app's sidebar), nor counts in its size; a short stroke of the pen's width is writing, not a printed mark.
    When the group so found holds under half the writing's ink (a pen that skips: its largest fragment no larger
    than the others), it grows again from every piece of writing with a third of the largest's ink or more."""
    labels, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n < 2:
        return mask
    b, sizes, largest, printed, gap = _pieces(labels)
    linked = ~(printed[:, None] & printed[None, :])  # two printed marks do not bring each other in

    def grow(group):
        while True:  # pieces within reach of the group, until none is added
            writing = b[group & ~printed]
            lo, hi = writing[:, :2].min(0), writing[:, 2:].max(0)
            size = (hi - lo).max()
            # Twice as far for a piece of writing that leaves the character no wider than tall (a broken stroke's
            # fragment above or below), not for one beside it (a question number, a label).
            joined = np.maximum(hi, b[:, 2:]) - np.minimum(lo, b[:, :2])
            reach = np.where(~printed & (joined[:, 1] <= joined[:, 0]), 0.6, 0.3) * size
            near = ((gap[group] <= reach) & linked[group]).any(0) & ~group
            if not near.any():
                return group
            group |= near

    group = grow(np.arange(n) == largest)
    big = ~printed & (sizes >= sizes[largest] / 3)
    if sizes[group & ~printed].sum() < 0.5 * sizes[~printed].sum() and (big & ~group).any():
        group = grow(big)
    return np.isin(labels, np.flatnonzero(group) + 1)


def stroke_width(fine: np.ndarray) -> float:
    """Mean stroke width of a binary character drawn FINE px large, in pixels of the 28x28 canvas.

    For a stroke of width w the distance to the nearest paper pixel averages w/4 over the stroke.
    """
    padded = np.pad(fine, 1)  # the paper around the character counts as paper
    return 4 * float(ndi.distance_transform_edt(padded)[padded].mean()) * BOX / FINE


def _centre(box: np.ndarray, by: str = "mass") -> np.ndarray:
    """Pastes a character into 28x28 with its centre of mass (by="mass", MNIST) or its box (by="box", EMNIST) at
    the centre, in whole pixels and kept inside."""
    h, w = box.shape
    cy, cx = ndi.center_of_mass(box) if by == "mass" else ((h - 1) / 2, (w - 1) / 2)
    top = int(np.clip(round(CENTRE - cy), 0, SIZE - h))
    left = int(np.clip(round(CENTRE - cx), 0, SIZE - w))
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top:top + h, left:left + w] = box
    return out


def render(mask: np.ndarray, framing: str = "mnist", ink: np.ndarray | None = None, scale=1.0) -> np.ndarray:
    """One character's boolean mask (any size) -> the 28x28 float image, framed as the model's dataset was.

    With the ink map and its scale (from ink_map), a character under SMALL pixels in the input is drawn from its
    gray ink instead: binarising a few pixels breaks the strokes that cross them only in part.
    """
    if framing not in FRAMINGS:
        raise ValueError(f"unknown framing {framing!r}: use one of {', '.join(FRAMINGS)}")
    if not mask.any():
        raise ReadError("no ink found")
    side, by = FRAMINGS[framing]
    x0, y0, x1, y1 = _bbox(mask)
    if ink is not None and max(x1 - x0, y1 - y0) < SMALL * scale:
        r = int(np.ceil(scale))  # an input pixel around the mask: the strokes' soft edges
        near = ndi.maximum_filter(mask, 2 * r + 1)  # binary_dilation by a square, 500x faster
        # Padded, so that a crop tight to the ink has the same margin as any other.
        gray = np.pad(ink * near, r)[y0:y1 + 2 * r, x0:x1 + 2 * r]
        gray = np.clip(gray / max(float(np.percentile(ink[mask], 90)), 1e-6), 0, 1)
        f = side / max(x1 - x0, y1 - y0)  # the mask's box to `side`, as below; the soft edges around it
        box = _scale(gray, f, Image.BOX)
        box = _crop(np.clip((box - 0.1) / 0.9, 0, 1))  # the paper's faint halo back to black
        return _centre(_fit(box, SIZE, Image.BOX) if max(box.shape) > SIZE else box, by)
    crop = _crop(mask)
    fine = _fit(crop, FINE) > 0.5
    if not fine.any():
        fine = _resize(crop, fine.shape, Image.BOX) > 0  # every pixel that holds any of the ink
    lo, hi = STROKE_RANGE  # relative to the character's size, so the same for both framings
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
    # Anti-aliased by area averaging, as the datasets were.
    return _centre(np.clip(_fit(_crop(fine), side, Image.BOX), 0, 1), by)


def preprocess(image, framing: str = "mnist") -> np.ndarray:
    """Any image of one character -> the 28x28 float32 array in [0, 1] (white ink on black) the model reads."""
    return prepare(image, framing)[0]


def _sheet(gray: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """A sheet of paper lying on something darker (a note or card on a desk), a phone's screen, a dark board: its box
    in gray, inset from its edge, and the pixels of the box off the sheet (a tilted sheet's corners); None when the
    paper fills the image."""
    small = _fit(gray, 128)
    t = _otsu(small)
    # Three looks: paper lighter than all round it; a screen in a phone's dark body on a lighter desk (the screen's
    # level is then among the light pixels); a dark screen or board with light writing on a lighter desk.
    found = _sheet_at(gray, small, small > t, "paper")
    if found is None:
        found = _sheet_at(gray, small, small > _otsu(small[small > t]), "screen")
    if found is None:
        found = _sheet_at(1 - gray, 1 - small, small < t, "dark")
    return found


def _sheet_at(gray: np.ndarray, small: np.ndarray, light: np.ndarray, look: str):
    """_sheet for the paper's pixels `light` in small (gray reduced, inverted for the "dark" look)."""
    labels, n = ndi.label(light)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    piece = labels == 1 + int(np.argmax(sizes))
    sheet = ndi.binary_fill_holes(piece)
    inside = int(sheet.sum())
    # A tenth of the image or more, with a surround mostly dark of a tenth or more; mostly paper (few holes).
    if not (0.1 * sheet.size <= inside <= 0.9 * sheet.size) or light[~sheet].mean() > 0.4:
        return None
    if inside - sizes.max() > 0.3 * inside:
        return None
    # Four straight sides (turned, or foreshortened into a trapezium): it fills its convex hull, and the four hull
    # points farthest along two crossed diagonals (its corners) enclose nearly all of it, which a character's
    # outline (an 0 or 8 written light on dark) does not.
    points = np.argwhere(sheet)
    hull = ConvexHull(points)
    corners = points[hull.vertices].astype(np.float64)
    turns = np.deg2rad(np.arange(90))[:, None] + np.deg2rad([45, 135, 225, 315])
    quads = corners[np.argmax(np.einsum("nk,kti->nti", corners, np.stack([np.cos(turns), np.sin(turns)])), 0)]
    y, x = quads[..., 0], quads[..., 1]
    best = quads[np.argmax(np.abs((x * np.roll(y, 1, 1) - y * np.roll(x, 1, 1)).sum(1)))]  # (the shoelace formula)
    # Where the photo's edge cuts the sheet (a page's corner), that edge is one of its sides: its pixels along the
    # image's border (the ends of their runs) are corners too.
    border = np.zeros_like(sheet)
    border[[0, -1], :] = border[:, [0, -1]] = True
    area = ConvexHull(np.r_[best, np.argwhere(sheet & border)].astype(np.float64)).volume
    if inside < 0.95 * hull.volume or area < 0.9 * inside:  # (a 2-d hull's volume is its area)
        return None
    # A sheet's edge is sharp, a shadow's or a lighting gradient's soft (measured: 0.37-0.46 against 0.04-0.22):
    # the shade's slope across the outline, per pixel of this copy, as a share of the step from surround to sheet.
    inner = ndi.binary_erosion(sheet)
    edge = sheet & ~inner
    edge[[0, -1], :] = edge[:, [0, -1]] = False  # where the image's border cuts the sheet
    step = float(np.median(small[piece]) - np.median(small[~sheet]))
    slope = np.hypot(ndi.sobel(small, 0), ndi.sobel(small, 1)) / 8
    if not edge.any() or step <= 0 or np.median(slope[edge]) < 0.3 * step:
        return None
    # Writing in it, well inside its edge: pixels darker than its paper by a quarter of that step, found in a finer
    # copy (a row's thin strokes on a large card leave almost no holes in this one); on a dark screen or board, by
    # the whole step (light writing is lighter than the desk; a shadow's lighter edge is not).
    fine = _fit(gray, 512)
    core = _resize(ndi.binary_erosion(inner).astype(np.float32), fine.shape) > 0.5
    writing = core & (fine < np.median(fine[core]) - (1 if look == "dark" else 0.25) * step)
    if writing.sum() < 0.001 * core.sum():
        return None
    # A shadow over part of the paper is not a desk: the writing goes on in it (3% of the surround or more as dark,
    # against the surround's shade, as writing is on the sheet; measured: desks none, shadows 13-17%). A dark frame
    # hugging the sheet (a piece of it along half its outline or more: a phone's body round its screen) is not
    # writing; a look for a screen within a frame needs one along 70% of it (all round, but where the photo cuts it).
    around = _resize(ndi.binary_erosion(~sheet, iterations=2).astype(np.float32), fine.shape) > 0.5
    framed = False
    if around.any():
        # (the frame darker than the desk by a tenth of the step, found up to the sheet: a thin one lies within
        # `around`'s margin)
        beyond = _resize((~sheet).astype(np.float32), fine.shape) > 0.5
        desk = np.median(fine[around])
        labels, _ = ndi.label(beyond & (fine < desk - 0.1 * step), structure=np.ones((3, 3)))
        hug = beyond & (_resize((ndi.binary_dilation(sheet, iterations=4)).astype(np.float32), fine.shape) > 0.5)
        hugging = np.bincount(labels[hug], minlength=labels.max() + 1)[1:] / max(1, hug.sum())
        framed = bool((hugging >= 0.7).any())
        rest = around & ~np.r_[False, hugging >= 0.5][labels]
        if look == "paper":
            marks = rest & (fine < desk - 0.25 * step)
        else:  # a desk near the screen's shade, in a room's uneven light: a mark stands out from the desk near it
            # (in a box an eighth of the image across), either way, by more than the desk's grain
            near = ndi.uniform_filter(fine * rest, 65) / (ndi.uniform_filter(rest.astype(np.float32), 65) + 1e-6)
            noise = 4.5 * np.median(np.abs(fine - near)[rest]) if rest.any() else 0  # (3 standard deviations)
            marks = rest & (np.abs(fine - near) > max(0.25 * step, noise))
        if marks.sum() >= 0.03 * around.sum():
            return None
    # A screen is lit: far lighter than the desk (measured: phones' screens 0.21 or more over 100 validation images;
    # a form's faint printed box round paper lit a little unevenly, 0.08-0.12)
    if look == "screen" and not (framed and step >= 0.15):
        return None
    x0, y0, x1, y1 = _bbox(sheet)
    # Its sides, but those the photo's edge cuts (a quarter of the sheet's extent along it or more: a long receipt,
    # a page filling the photo): the sheet's edge and its shadow stay out, 4% of it across each; 1% within a frame
    # (no shadow: a phone's screen, written on up to its edges).
    sides = np.asarray([sheet[:, 0].sum() / (y1 - y0), sheet[0].sum() / (x1 - x0), sheet[:, -1].sum() / (y1 - y0),
                        sheet[-1].sum() / (x1 - x0)]) < 0.25
    inset = sides * (0.01 if framed else 0.04) * np.asarray([x1 - x0, y1 - y0] * 2)
    holes = sheet & ~piece  # (the writing's box in this copy where it leaves holes, else in the finer one)
    r = max(small.shape) / max(fine.shape)
    hx0, hy0, hx1, hy1 = _bbox(holes) if holes.any() else (v * r for v in _bbox(writing))
    if not framed and (np.asarray([hx0 - x0, hy0 - y0, x1 - hx1, y1 - hy1]) < 2 * inset).any():  # writing runs
        return None  # to the edge: a shadow's
    f = max(gray.shape) / max(small.shape)
    box = tuple(int(round((v + d) * f)) for v, d in zip((x0, y0, x1, y1), inset * [1, 1, -1, -1]))
    # Off the sheet: beyond its edge as found in this copy, less a pixel of it (the edge's line lies within that)
    off = _resize((~inner).astype(np.float32), gray.shape)[box[1]:box[3], box[0]:box[2]] > 0.5
    return box, off


def find_ink(gray: np.ndarray, one: bool = False) -> tuple[np.ndarray, float, np.ndarray, tuple[int, int]]:
    """ink_map and ink_mask of a gray image: (ink, scale, mask, where in gray the ink map starts (x, y)).

    A sheet photographed on a darker desk (a phone's screen, a dark board on a lighter one) is read inside its edges.
    Writing that spans under ZOOM of a page larger than the working size is found again in a crop of the page around
    it (the writing's size on each side), so it is read from all the pixels it has, not the few it keeps when the
    whole page is reduced.
    """
    left = top = 0
    sheet = _sheet(gray)
    if sheet is not None:
        (left, top, x1, y1), off = sheet
        crop = gray[top:y1, left:x1]
        gray = np.where(off, np.median(crop[~off]), crop).astype(np.float32)
    ink, scale, noise = ink_map(gray)
    mask = ink_mask(ink, noise, one)
    if scale >= 1 or not mask.any():
        return ink, scale, mask, (left, top)
    x0, y0, x1, y1 = (v / scale for v in _bbox(mask))  # in gray's pixels
    size = max(x1 - x0, y1 - y0)
    if size > ZOOM * max(gray.shape):
        return ink, scale, mask, (left, top)
    x, y = max(0, int(x0 - size)), max(0, int(y0 - size))
    crop = gray[y:int(y1 + size) + 1, x:int(x1 + size) + 1]
    try:
        zoomed, zoom_scale, zoom_noise = ink_map(crop)
        return zoomed, zoom_scale, ink_mask(zoomed, zoom_noise, one), (left + x, top + y)
    except ReadError:  # a very grainy page: the reduction averaged away the grain that now hides faint writing
        return ink, scale, mask, (left, top)


def prepare(image, framing: str = "mnist") -> tuple[np.ndarray, bool]:
    """preprocess's array, and whether the ink looks like a row of characters (then preprocess_multi reads it)."""
    ink, scale, mask, _ = find_ink(load_gray(image), one=True)
    return render(_main_group(mask), framing, ink, scale), looks_like_a_row(mask)


def looks_like_a_row(mask: np.ndarray) -> bool:
    """Ink much wider than tall, in at least two pieces each most of its height: characters side by side."""
    if not mask.any():
        return False
    x0, y0, x1, y1 = _bbox(mask)
    if x1 - x0 < ROW_ASPECT * (y1 - y0):
        return False
    labels, _ = ndi.label(mask, structure=np.ones((3, 3)))
    tall = [s for s in ndi.find_objects(labels) if s[0].stop - s[0].start >= 0.5 * (y1 - y0)]
    return len(tall) >= 2


def segment(mask: np.ndarray, sure=None) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """A row of characters -> [((x0, y0, x1, y1), mask of that character alone)], left to right.

    Connected pieces of ink are merged when they share most of their columns (the dot of an i, a 5's bar)
    or when one is a short fragment (a broken stroke) next to another; a piece much wider than the row's
    characters are tall is split where the fewest ink pixels cross its columns (characters that touch), or with
    sure (masks -> how sure a model is of each as one character) where the model is surest of the characters made
    (_cuts); with sure, neighbours that are fragments of one character are joined where the model is surer so (_join).
    """
    labels, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n > MAX_PIECES:  # merging is quadratic in the pieces: refuse a texture, a grid or noise at once
        raise ReadError(f"the image holds {n} separate pieces of ink, more than a row of characters has (at most "
                        f"{MAX_PIECES}): crop it to one row of characters on plain paper")
    groups = [[i + 1] for i in range(n)]
    boxes = [[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in ndi.find_objects(labels)]  # x0 y0 x1 y1

    def gap(a, b):
        dx, dy = max(0, a[0] - b[2], b[0] - a[2]), max(0, a[1] - b[3], b[1] - a[3])
        return float(np.hypot(dx, dy))

    def merge(i, j):
        groups[i] += groups.pop(j)
        a, b = boxes[i], boxes.pop(j)
        boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]

    def shared():
        # The first pair (in order) sharing at least half the columns of the narrower: all pairs at once.
        x0, x1 = (np.array([b[k] for b in boxes], np.float64) for k in (0, 2))
        common = np.minimum(x1[:, None], x1) - np.maximum(x0[:, None], x0)
        narrower = np.maximum(1, np.minimum((x1 - x0)[:, None], x1 - x0))
        pairs = np.argwhere(np.triu(common / narrower >= 0.5, 1))
        return (int(pairs[0][0]), int(pairs[0][1])) if len(pairs) else None

    def fragment():
        # The shortest fragment joins its nearest neighbour, if that is close.
        short = [i for i in range(len(groups)) if boxes[i][3] - boxes[i][1] < 0.6 * height]
        if len(groups) > 1 and short:
            i = min(short, key=lambda k: boxes[k][3] - boxes[k][1])
            j = min((k for k in range(len(groups)) if k != i), key=lambda k: gap(boxes[i], boxes[k]))
            if gap(boxes[i], boxes[j]) < 0.25 * height:
                return min(i, j), max(i, j)
        return None

    while (pair := shared()) is not None:
        merge(*pair)
    # The row's character height, of pieces that share columns merged (a skipping pen's fragments are not characters)
    height = float(np.percentile([b[3] - b[1] for b in boxes], 75))
    # Most pieces fragments (a skipping pen's): the ink's height along the row (windows twice as wide as that) is theirs
    if (tall := _ink_height(mask, 2 * height)) > 1.3 * height:
        height = tall
    while (pair := shared() or fragment()) is not None:
        merge(*pair)

    group_of = np.zeros(n + 1, np.int32)  # each label's group, numbered from 1 (0: paper)
    for g, members in enumerate(groups):
        group_of[members] = g + 1
    grouped = group_of[labels]
    chars = []
    for i in sorted(range(len(groups)), key=lambda k: boxes[k][0]):
        piece = grouped == i + 1
        chars += _cuts(piece, height, sure) if sure else _split(piece, height)
    if sure and len(chars) > 1:
        chars = _join(chars, height, sure)
    return [(_bbox(m), m) for m in chars]


def _ink_height(mask: np.ndarray, width: float) -> float:
    """How tall the ink is along its row's slope, in windows of columns this wide: the median over the inked columns
    (a broken stroke's fragments together span their character's height)."""
    inked = mask.any(0)
    top = np.where(inked, mask.argmax(0), np.inf)
    bottom = np.where(inked, mask.shape[0] - mask[::-1].argmax(0), -np.inf)
    x = np.flatnonzero(inked)
    if len(x) > 1:  # along the row's slope (least squares through the middles of the columns' ink)
        mid = (top[x] + bottom[x]) / 2
        lift = np.cov(x, mid)[0, 1] / np.var(x, ddof=1) * np.arange(len(inked))
        top, bottom = top - lift, bottom - lift
    size = max(1, int(width))
    return float(np.median((ndi.maximum_filter1d(bottom, size) - ndi.minimum_filter1d(top, size))[inked]))


def _join(chars: list[np.ndarray], height: float, sure) -> list[np.ndarray]:
    """Joins neighbouring candidates into one character where a model is surer of it so (a skipping pen's fragments,
    a stroke broken off a 5 or a 9): of the ways to group consecutive candidates, the one whose characters'
    probabilities have the largest product. Offered: up to JOIN candidates, each close to the next, no wider than a
    character together, and all but the tallest short beside them; and any two neighbours up to PAIR_GAP apart, no
    wider than a character together, when the model is unsure of each alone (a 0's two arcs), as it is not of each
    of two close 1s (which it also reads surely as one 1)."""
    boxes = [_bbox(m) for m in chars]
    n = len(chars)

    def apart(k):  # how far apart candidates k and k + 1 lie (their nearest ink), in pixels
        x0, y0 = min(boxes[k][0], boxes[k + 1][0]), min(boxes[k][1], boxes[k + 1][1])
        x1, y1 = max(boxes[k][2], boxes[k + 1][2]), max(boxes[k][3], boxes[k + 1][3])
        a, b = chars[k][y0:y1, x0:x1], chars[k + 1][y0:y1, x0:x1]
        return ndi.distance_transform_edt(~a)[b].min()

    def fragments(k, l):  # all but the tallest of candidates k..l-1 are short beside them joined, and it is narrow
        x0, y0, x1, y1 = (f(b[i] for b in boxes[k:l]) for f, i in ((min, 0), (min, 1), (max, 2), (max, 3)))
        tall = sorted(b[3] - b[1] for b in boxes[k:l])
        return x1 - x0 <= JOIN_WIDTH * height and tall[-2] < 0.75 * (y1 - y0)

    def narrow(k):  # k and k + 1 together no wider than a character
        return max(boxes[k][2], boxes[k + 1][2]) - min(boxes[k][0], boxes[k + 1][0]) <= JOIN_WIDTH * height

    gaps = [apart(k) for k in range(n - 1)]
    near = [g <= JOIN_GAP * height for g in gaps]
    runs = [(k, l) for k in range(n) for l in range(k + 2, min(n, k + JOIN) + 1)
            if all(near[k:l - 1]) and fragments(k, l)]
    pairs = [(k, k + 2) for k in range(n - 1) if narrow(k) and gaps[k] <= PAIR_GAP * height and (k, k + 2) not in runs]
    if not runs + pairs:
        return chars
    joined = {r: np.logical_or.reduce(chars[r[0]:r[1]]) for r in runs + pairs}
    probs = dict(zip([(k, k + 1) for k in range(n)] + runs + pairs, sure(chars + list(joined.values()))))
    for k, l in pairs:  # either read surely alone: two characters (two close 1s, which a model also reads as one 1)
        if max(probs[k, k + 1], probs[k + 1, l]) >= ALONE:
            del probs[k, l]
    return [chars[k] if l == k + 1 else joined[k, l] for k, l in _likeliest(probs, n)]


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


def _cuts(m: np.ndarray, height: float, sure) -> list[np.ndarray]:
    """Cuts a piece of ink too wide for one character into the characters a model is surest of (up to WHOLE rows wide,
    the piece itself among them): of the ways to cut it at columns an eighth of the row's height apart, the one whose
    characters' probabilities have the largest product (dynamic programming over the columns)."""
    cols = np.flatnonzero(m.any(0))
    x0, x1 = cols[0], cols[-1] + 1
    if x1 - x0 < SPLIT_ASPECT * height:
        return [m]
    at = np.unique(np.linspace(x0, x1, max(2, round(8 * (x1 - x0) / height)) + 1).round().astype(int))
    columns = np.arange(m.shape[1])
    inked = np.r_[0, np.cumsum(m.any(0))]  # inked[x]: how many of the columns before x hold ink

    def part(i, j):
        return m & (columns >= at[i]) & (columns < at[j])

    # Every character the cutting may make: of a character's width, with ink; the whole piece only up to WHOLE.
    whole = (0, len(at) - 1) if x1 - x0 > WHOLE * height else None
    spans = [(i, j) for j in range(1, len(at)) for i in range(j) if (i, j) != whole
             and MIN_CHAR * height <= at[j] - at[i] <= MAX_CHAR * height and inked[at[j]] > inked[at[i]]]
    if not spans:
        return _split(m, height)
    probs = {}
    for k in range(0, len(spans), 64):  # a few masks at a time: a long row of touching writing has thousands
        batch = spans[k:k + 64]
        probs.update(zip(batch, sure([part(i, j) for i, j in batch])))
    cutting = _likeliest(probs, len(at) - 1)
    return _split(m, height) if cutting is None else [part(i, j) for i, j in cutting]


def _likeliest(probs: dict, end: int) -> list[tuple[int, int]] | None:
    """Of the ways to go from 0 to end in steps (i, j) of probs (each a character, with a model's probability), the
    one whose probabilities have the largest product (dynamic programming); None when there is none."""
    best = {0: (0.0, [])}  # position -> (log probability of the best way to it, its steps)
    for j in range(1, end + 1):
        options = [(best[i][0] + np.log(max(probs[i, j], 1e-9)), best[i][1] + [(i, j)])
                   for i in range(j) if i in best and (i, j) in probs]
        if options:
            best[j] = max(options, key=lambda o: o[0])
    return best[end][1] if end in best else None


def preprocess_multi(image, framing: str = "mnist", sure=None) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Any image of a row of characters -> [((x0, y0, x1, y1) in the input's pixels, 28x28 array)], left to right.

    sure: 28x28 arrays -> how sure a model is of each as one character; touching characters are then cut where it
    is surest of the characters made (segment).
    """
    gray, factor = read_gray(image)
    ink, scale, mask, (left, top) = find_ink(gray)
    mask = _main_row(mask)
    judge = sure and (lambda masks: sure([render(m, framing, ink, scale) for m in masks]))
    out = []
    for (x0, y0, x1, y1), m in segment(mask, judge):
        box = tuple(int(round((v / scale + o) * factor)) for v, o in zip((x0, y0, x1, y1), (left, top) * 2))
        out.append((box, render(m, framing, ink, scale)))
    return out
