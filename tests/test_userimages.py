"""The users'-images benchmark's drawings: every kind makes a readable file, the same one each time."""
import io

import numpy as np
import pytest
from PIL import Image

from mnist_lit.userimages import ALL_KINDS, HELD_OUT, KINDS, pen, render, row, row_spans


def seven() -> np.ndarray:
    """A 28x28 white-on-black "7", MNIST-like (a bar and a stem, anti-aliased)."""
    im = Image.new("L", (112, 112), 0)
    from PIL import ImageDraw

    ImageDraw.Draw(im).line([(28, 28), (84, 28), (48, 96)], fill=255, width=10, joint="curve")
    return np.asarray(im.resize((28, 28), Image.BOX))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(ALL_KINDS))
def test_each_kind_is_a_decodable_file_and_the_same_each_time(kind):
    x = seven()
    data = render(kind, x, 7, seed=3)
    assert data == render(kind, x, 7, seed=3)
    if not kind.startswith("png28"):  # the MNIST digit as it is: nothing drawn at random
        assert len({render(kind, x, 7, seed=s) for s in range(6)}) > 1
    im = Image.open(io.BytesIO(data))
    im.load()
    assert im.format in ("PNG", "JPEG", "BMP", "GIF", "TIFF", "PPM", "HEIF") and max(im.size) >= 8
    g = np.asarray(im, np.float32) / 257 if im.mode.startswith("I") else np.asarray(im.convert("L"), np.float32)
    if im.mode != "RGBA":  # the ink is there: the image is not one shade
        assert np.ptp(g) > 60


def test_small_scans_are_their_size_and_tight_crops_have_almost_no_margin():
    x = seven()
    for n in (8, 12, 16, 20):
        im = Image.open(io.BytesIO(render(f"small{n}", x, 7, seed=0)))
        assert n <= max(im.size) <= n + 2
    g = np.asarray(Image.open(io.BytesIO(render("tight", x, 7, seed=0))).convert("L"))
    dark = g < 128
    rows, cols = np.flatnonzero(dark.any(1)), np.flatnonzero(dark.any(0))
    assert rows[0] <= 3 and cols[0] <= 3 and g.shape[0] - rows[-1] <= 4 and g.shape[1] - cols[-1] <= 4


def test_a_row_is_its_digits_side_by_side_and_every_kind_but_european_draws_it():
    x = seven()
    r = row(np.stack([x, x, x]), np.random.default_rng(0))
    cols = np.flatnonzero(x.any(0))
    inked = cols[-1] - cols[0] + 1
    assert r.shape[0] == 28 and r.dtype == np.uint8 and r.sum() == 3 * x.sum()  # each digit whole, none overlapping
    assert 3 * inked + 2 * 2 + 8 <= r.shape[1] <= 3 * inked + 2 * 6 + 8  # gaps of 2-6 px, margins of 4
    assert pen(r, 100).shape == (100, round(100 * r.shape[1] / 28))  # drawn at the row's aspect ratio
    for kind in ALL_KINDS:
        if kind == "european":  # draws a 1's flag or a 7's bar onto one digit
            continue
        data = render(kind, r, None, seed=1)
        assert data == render(kind, r, None, seed=1), kind
        im = Image.open(io.BytesIO(data))
        g = np.asarray(im, np.float32) / 257 if im.mode.startswith("I") else np.asarray(im.convert("LA"), np.float32)
        assert np.ptp(g) > 60, kind  # (RGBA: the alpha channel's strokes)
    # Kinds that box each digit apart are told where each lies (row_spans); a digit broken by empty columns is one.
    broken = x.copy()
    broken[:, 14:17] = 0
    image, spans = row_spans(np.stack([broken, x]), np.random.default_rng(0))
    assert [np.array_equal(image[:, a:b], d[:, c[0]:c[-1] + 1]) for (a, b), d, c in
            zip(spans, (broken, x), (np.flatnonzero(broken.any(0)), cols))] == [True, True]
    assert render("comb_field", image, None, 1, spans) != render("comb_field", image, None, 1)  # (guessed: 3 boxes)
    # On a screen of fixed size, a row too wide for it is written smaller, not cut.
    assert Image.open(io.BytesIO(render("phone_screenshot", np.tile(r, 3), None, seed=1))).size == (540, 1170)


def test_pen_widths_differ_as_named():
    x = seven()
    ink = {w: pen(x, 280, w) for w in ("thin", "normal", "thick")}
    assert ink["thin"].sum() < 0.5 * ink["normal"].sum() < ink["thick"].sum()
    assert set(np.unique(ink["normal"] > 0.5)) == {False, True}


def test_kinds_are_split_into_developed_and_held_out():
    assert set(KINDS).isdisjoint(HELD_OUT) and {**KINDS, **HELD_OUT} == ALL_KINDS
    assert len(KINDS) >= 20 and ALL_KINDS["european"].labels == (1, 7)
