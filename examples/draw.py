"""Draws the example images: handwriting-like pen strokes on unevenly lit, noisy paper (python examples/draw.py)."""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).parent

# Each character is a list of strokes; each stroke a list of (x, y) points in a 0..1 box (y down).
GLYPHS = {
    "0": [[(.5, 0), (.15, .2), (.08, .6), (.3, .97), (.7, .95), (.9, .55), (.8, .15), (.5, 0)]],
    "2": [[(.12, .22), (.35, .02), (.72, .04), (.85, .28), (.6, .6), (.1, .97), (.92, .95)]],
    "3": [[(.15, .1), (.55, 0), (.85, .18), (.7, .4), (.4, .48), (.75, .55), (.9, .78), (.6, .98), (.1, .9)]],
    "5": [[(.85, .03), (.25, .05), (.2, .45), (.6, .4), (.88, .62), (.75, .92), (.4, .98), (.1, .88)]],
}


def curve(points, n=60):
    """A smooth curve through the points (Catmull-Rom), as a hand would draw it."""
    p = np.array(points, float)
    p = np.vstack([p[0], p, p[-1]])
    out = []
    for i in range(1, len(p) - 2):
        for t in np.linspace(0, 1, n // (len(p) - 3) + 2)[:-1]:
            a, b, c, d = p[i - 1], p[i], p[i + 1], p[i + 2]
            out.append(0.5 * (2 * b + (c - a) * t + (2 * a - 5 * b + 4 * c - d) * t ** 2
                              + (3 * b - a - 3 * c + d) * t ** 3))
    return out + [p[-2]]


def paper(w, h, rng):
    """Off-white paper lit from one corner, with a soft shadow and grain."""
    yy, xx = np.mgrid[:h, :w]
    light = 0.95 - 0.25 * (xx / w * 0.6 + yy / h * 0.4)
    light -= 0.15 * np.exp(-((xx - 0.9 * w) ** 2 + (yy - 0.1 * h) ** 2) / (0.1 * w * h))  # a shadow
    rgb = np.stack([light * 1.0, light * 0.97, light * 0.9], -1) + rng.normal(0, 0.02, (h, w, 1))
    return rgb


def write(text, size, box, pen, width, rng, frame=False):
    w, h = size
    ink = Image.new("L", size, 0)
    draw = ImageDraw.Draw(ink)
    x0, y0, cw, ch, gap = box
    for k, char in enumerate(text):
        jitter = rng.normal(0, 0.02, 2)
        for stroke in GLYPHS[char]:
            pts = [(x0 + k * (cw + gap) + (px + jitter[0] + 0.15 * (1 - py)) * cw, y0 + (py + jitter[1]) * ch)
                   for px, py in stroke]  # slanted a little to the right
            line = [tuple(q) for q in curve(pts)]
            draw.line(line, fill=255, width=width, joint="curve")
            for q in line[::4]:  # round pen tip
                draw.ellipse([q[0] - width / 2, q[1] - width / 2, q[0] + width / 2, q[1] + width / 2], fill=255)
    if frame:  # a printed box around the writing, as on a form
        draw.rectangle([12, 12, w - 13, h - 13], outline=200, width=3)
    a = np.asarray(ink.filter(ImageFilter.GaussianBlur(1.2)), np.float32)[..., None] / 255
    rgb = paper(w, h, rng) * (1 - a) + np.array(pen) * a
    return Image.fromarray(np.clip(rgb * 255, 0, 255).astype(np.uint8), "RGB")


if __name__ == "__main__":
    rng = np.random.default_rng(5)
    write("3", (480, 360), (190, 90, 110, 170, 0), (0.1, 0.1, 0.15), 14, rng).save(HERE / "digit.jpg", quality=90)
    write("2025", (640, 240), (90, 45, 80, 140, 45), (0.1, 0.15, 0.45), 9, rng, frame=True).save(HERE / "year.png")
    print("wrote", HERE / "digit.jpg", HERE / "year.png")
