"""Pictures of a test: the confusion matrix and the misclassified images (mnist_lit.callbacks.TestReport, eval)."""
import numpy as np
from PIL import Image, ImageDraw, ImageFont


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


def draw_lr_finder(lrs: list, losses: list, suggestion: float, size=(640, 400)) -> Image.Image:
    """The learning-rate finder's loss against lr (log scale), the suggested lr marked in red."""
    font = _font(12)
    w, h = size
    left, right, top, bottom = 60, 20, 20, 50
    x, y = np.log10(np.asarray(lrs, float)), np.asarray(losses, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    if len(x) < 2:
        draw.text((10, 10), "too few points to plot", fill="black", font=font)
        return image
    x0, x1 = x.min(), x.max()
    y0, y1 = y.min(), np.percentile(y, 95)  # the diverged tail would flatten the rest
    px = lambda v: left + (v - x0) / max(x1 - x0, 1e-12) * (w - left - right)  # noqa: E731
    py = lambda v: top + (1 - (min(v, y1) - y0) / max(y1 - y0, 1e-12)) * (h - top - bottom)  # noqa: E731
    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    for decade in range(int(np.ceil(x0)), int(np.floor(x1)) + 1):
        draw.line([px(decade), h - bottom, px(decade), h - bottom + 5], fill="black")
        draw.text((px(decade), h - bottom + 8), f"1e{decade}", fill="black", font=font, anchor="ma")
    for v in (y0, (y0 + y1) / 2, y1):
        draw.text((left - 6, py(v)), f"{v:.3g}", fill="black", font=font, anchor="rm")
    draw.line([(px(a), py(b)) for a, b in zip(x, y)], fill=(30, 90, 200), width=2)
    s = np.log10(suggestion)
    draw.line([px(s), top, px(s), h - bottom], fill=(200, 0, 0), width=1)
    draw.text((px(s) + 4, top + 4), f"suggested lr {suggestion:.3g}", fill=(200, 0, 0), font=font)
    draw.text((w / 2, h - 18), "learning rate (log scale); loss of each step", fill="black", font=font, anchor="ma")
    return image
