"""Preprocessing: images of every kind come out as MNIST-style 28x28 characters; segmentation of rows."""
import re
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps
from scipy import ndimage as ndi

from mnist_lit.preprocess import (BOX, CENTRE, MAX_PIECES, MAX_SIDE, SIZE, STROKE_RANGE, FINE, ReadError,
                                  _dark_ink, _fit, _ink_channel, _inside_ring, _main_group, _main_row, _sheet, find_ink,
                                  ink_map, ink_mask, load_gray, preprocess, preprocess_multi, read_gray, render, segment,
                                  stroke_width)
from mnist_lit.userimages import render as draw_as
from tests.conftest import SEVEN, TWO, draw, encoded, row

def gray(im) -> np.ndarray:
    return np.asarray(im.convert("L"), np.float32) / 255


def close(a, b, tol=0.04):
    return float(np.abs(a - b).mean()) < tol


def test_output_is_mnist_shaped_scaled_and_centred():
    out = preprocess(draw([TWO]))
    assert out.shape == (SIZE, SIZE) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    rows, cols = np.flatnonzero(out.max(1) > 0), np.flatnonzero(out.max(0) > 0)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == BOX  # longest side 20 px
    assert np.allclose(ndi.center_of_mass(out), CENTRE, atol=0.6)  # centre of mass at MNIST's centre
    assert out.max() > 0.95 and out[0].max() == 0 and out[:, 0].max() == 0  # white ink on black, inside


def test_aspect_ratio_is_kept():
    bar = Image.new("L", (300, 300), 255)
    ImageDraw.Draw(bar).rectangle([140, 50, 160, 250], fill=0)  # 21 x 201: a "1"
    out = preprocess(bar)
    rows, cols = np.flatnonzero(out.max(1) > 0.05), np.flatnonzero(out.max(0) > 0.05)
    assert len(rows) == BOX and 2 <= len(cols) <= 5


def test_polarity_size_and_position_do_not_matter():
    base = preprocess(draw([TWO]))
    assert close(preprocess(draw([TWO], ink=255, paper=0)), base)  # white on black
    assert close(preprocess(draw([TWO], size=(2000, 1500), box=(200, 700, 400, 720), width=48)), base)  # big, offset
    assert close(preprocess(draw([TWO], size=(40, 40), box=(12, 4, 17, 31), width=2)), base, 0.08)  # tiny


def test_uneven_lighting_and_noise_are_removed():
    clean = draw([TWO], ink=40, paper=230)
    g = gray(clean)
    yy, xx = np.mgrid[:g.shape[0], :g.shape[1]]
    lit = g * (0.45 + 0.55 * xx / g.shape[1]) + np.random.default_rng(0).normal(0, 0.05, g.shape)  # dark left side
    assert close(preprocess((np.clip(lit, 0, 1) * 255).astype(np.uint8)), preprocess(clean))


def test_a_flash_photos_hotspot_is_paper_and_light_ink_under_a_flash_stays_light():
    # A flash in a dark room: paper lit round the writing, the light falling off to dark corners, the flash's glare.
    # The lit patch is the lighter shade's minority, away from the border and cut by the strokes, as light ink is.
    yy, xx = np.mgrid[:300, :400]
    for ink, paper in ((30, 230), (230, 40)):
        g = gray(draw([TWO], ink=ink, paper=paper))
        for cy, cx, fall, spot in ((150, 200, 8, 0.005), (120, 230, 12, 0.003), (140, 190, 10, 0.004)):
            d2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / 400 ** 2
            lit = g / (1 + fall * d2)
            photo = lit + (1 - lit) * 0.4 * np.exp(-d2 / spot) + np.random.default_rng(0).normal(0, 0.02, g.shape)
            photo = np.clip(photo, 0, 1).astype(np.float32)
            assert _dark_ink(_fit(photo, 128)) == (ink < paper), (ink, fall)
            assert close(preprocess(photo), preprocess(g), 0.06), (ink, fall)


def test_transparent_background_is_paper():
    base = preprocess(draw([TWO]))
    for ink in ((0, 0, 0, 255), (255, 255, 255, 255)):  # black or white strokes on a transparent canvas
        im = draw([TWO], ink=ink, paper=(0, 0, 0, 0), mode="RGBA")
        assert close(preprocess(im), base)
    rgb = draw([TWO], ink=(20, 40, 160), paper=(250, 240, 200), mode="RGB")  # blue pen on yellow paper
    assert close(preprocess(rgb), base)


def test_specks_and_frame_lines_are_dropped():
    base = preprocess(draw([SEVEN]))
    im = draw([SEVEN])
    d = ImageDraw.Draw(im)
    d.rectangle([5, 5, 394, 294], outline=0, width=3)  # a printed border
    for x, y in ((40, 40), (350, 260), (60, 250)):
        d.ellipse([x, y, x + 3, y + 3], fill=0)  # specks of dust
    assert close(preprocess(im), base)
    axes = draw([SEVEN])
    ImageDraw.Draw(axes).line([(20, 10), (20, 285), (395, 285)], fill=0, width=2)  # plot axes
    assert close(preprocess(axes), base)


def test_a_box_or_axes_touching_the_writing_and_lines_crossing_it_are_dropped():
    base = preprocess(draw([SEVEN]))
    boxed = draw([SEVEN])
    ImageDraw.Draw(boxed).rectangle([140, 50, 260, 250], outline=0, width=2)  # the 7's bar touches the box
    assert close(preprocess(boxed), base)
    plot = draw([SEVEN])
    d = ImageDraw.Draw(plot)
    d.line([(150, 20), (150, 280), (390, 280)], fill=0, width=2)  # axes through the 7's bar end
    for t in range(160, 390, 20):
        d.line([(t, 280), (t, 287)], fill=0, width=1)  # tick marks
    assert close(preprocess(plot), base)
    ruled = draw([SEVEN])
    for y in range(30, 300, 45):
        ImageDraw.Draw(ruled).line([(0, y), (400, y)], fill=0, width=2)  # dark ruled lines through the 7
    assert close(preprocess(ruled), base, 0.06)  # (where a line runs along the 7's bar, the bar loses its rows)
    for x in (20, 215):  # a form's box, its printed label beside it: far, and as near as the 7's own strokes
        form = draw([SEVEN], size=(600, 300), box=(320, 60, 100, 180), ink=120)  # pencilled
        d = ImageDraw.Draw(form)
        d.rectangle([300, 30, 480, 270], outline=110, width=2)
        d.text((x, 130), "Age", fill=0, font=ImageFont.load_default(size=40))
        assert close(preprocess(form), preprocess(draw([SEVEN], ink=120))), x
    for outline, width in ((190, 2), (200, 1)):  # a box printed far fainter than its label: the 7 is read inside it
        form = draw([SEVEN], size=(600, 300), box=(320, 60, 100, 180), ink=160, width=8)
        d = ImageDraw.Draw(form)
        d.rectangle([300, 30, 480, 270], outline=outline, width=width)
        d.text((140, 130), "Qty", fill=0, font=ImageFont.load_default(size=40))
        assert close(preprocess(form), preprocess(draw([SEVEN], ink=160, width=8))), outline


def test_a_ring_round_the_writing_and_a_line_under_it_are_dropped():
    base = preprocess(draw([SEVEN]))
    circled = draw([SEVEN])
    ImageDraw.Draw(circled).ellipse([95, 25, 305, 275], outline=0, width=10)  # a circled answer, the pen's width
    assert close(preprocess(circled), base)
    underlined = draw([SEVEN])
    ImageDraw.Draw(underlined).line([(130, 262), (280, 270)], fill=0, width=10)  # drawn by hand: a little tilted
    assert close(preprocess(underlined), base)
    # A flat stroke above the rest is part of the character (a 5's flag, written apart), not an underline.
    body = [(.2, .15), (.15, .5), (.6, .42), (.85, .65), (.6, .95), (.15, .9)]
    five, flag = draw([body, [(.2, 0), (.9, 0)]]), draw([body])
    assert not close(preprocess(five), preprocess(flag))


def test_a_grid_round_the_writing_goes_level_or_photographed_at_a_tilt_but_a_slanted_1_cropped_tight_stays():
    for angle in (0, 2.5, -4):  # a sudoku's cell cropped: its lines across the crop, a neighbour's printed digit cut
        cell = draw([SEVEN])
        d = ImageDraw.Draw(cell)
        for x in (110, 290):
            d.line([(x, 0), (x, 300)], fill=0, width=3)
        for y in (30, 270):
            d.line([(0, y), (400, y)], fill=0, width=3 if y == 30 else 8)
        d.text((-20, 90), "8", fill=0, font=ImageFont.load_default(size=110))
        alone = preprocess(draw([SEVEN]).rotate(angle, Image.BILINEAR, fillcolor=255))
        assert close(preprocess(cell.rotate(angle, Image.BILINEAR, fillcolor=255)), alone), angle
    one = Image.new("L", (40, 200), 255)
    ImageDraw.Draw(one).line([(12, 0), (28, 200)], fill=0, width=12)  # 4.6 degrees off upright, edge to edge
    wide = Image.new("L", (200, 300), 255)
    wide.paste(one, (80, 50))
    assert close(preprocess(one), preprocess(wide))


def test_a_thumb_over_the_papers_edge_is_dropped_but_writing_at_the_edge_stays():
    base = preprocess(draw([SEVEN]))
    for fill, outline in ((90, 90), (215, 60)):  # a dark thumb (all of it ink), a light one (its outline)
        held = draw([SEVEN])
        d = ImageDraw.Draw(held)
        d.rounded_rectangle([20, 250, 110, 380], radius=40, fill=fill, outline=outline, width=6)  # from the bottom
        assert close(preprocess(held), base), fill
    marker = draw([SEVEN], width=30)  # a dark thumb only 2.5 of a marker's strokes across, from the bottom
    ImageDraw.Draw(marker).ellipse([160, 262, 236, 338], fill=90)
    assert close(preprocess(marker), preprocess(draw([SEVEN], width=30)))
    # A 7 written into a page's corner, a label beside it, is writing; so, in a row cropped tight, is a 1 along the
    # image's left edge and a 7 whose bar runs along its top.
    five = [[(.3, .05), (1.05, 0)], [(.3, .05), (.2, .45), (.6, .4), (.85, .7), (.6, 1.03), (.1, .9)]]
    corner = draw(five, box=(290, 110, 110, 190))  # its flag runs off the right side, its bowl off the bottom
    ImageDraw.Draw(corner).text((10, 10), "Quiz 3", fill=0, font=ImageFont.load_default(size=24))
    assert close(preprocess(corner), preprocess(draw(five, box=(290, 110, 110, 190))))
    tight = row([[[(.5, 0), (.5, 1)]], [SEVEN], [TWO]], gap=30).crop((83, 43, 397, 221))
    found = preprocess_multi(tight)
    assert len(found) == 3 and found[0][0][0] <= 2 and found[-1][0][2] >= tight.width - 2, [b for b, _ in found]


def test_a_ring_touching_the_writing_is_cut_away_but_a_0_an_8_and_a_slashed_0_stay_whole():
    tight = draw([SEVEN])
    ImageDraw.Draw(tight).ellipse([125, 35, 275, 265], outline=0, width=10)  # touches the ends of the 7's bar
    assert close(preprocess(tight), preprocess(draw([SEVEN])), 0.06)  # (the bar's ends lose what touched the ring)

    def mask(*ellipses, slash=None):
        im = Image.new("L", (300, 300), 255)
        d = ImageDraw.Draw(im)
        for box in ellipses:
            d.ellipse(box, outline=0, width=14)
        if slash:
            d.line(slash, fill=0, width=14)
        return np.asarray(im) < 128

    zero = [90, 40, 210, 260]
    for m in (mask(zero), mask([100, 30, 200, 140], [90, 130, 210, 270]),  # a 0, an 8
              mask(zero, slash=[(215, 25), (85, 275)])):  # a 0 slashed through (its ring no longer an ellipse)
        assert (_inside_ring(m) == m).all()
    bold = Image.new("L", (300, 300), 255)  # a bold 8 drawn boxy (or blurred): an ellipse, its loops small in its ink
    d = ImageDraw.Draw(bold)
    d.rounded_rectangle([60, 40, 240, 270], 60, fill=0)
    d.ellipse([110, 70, 215, 120], fill=255)
    d.ellipse([85, 150, 215, 245], fill=255)
    m = np.asarray(bold) < 128
    assert (_inside_ring(m) == m).all()


def test_marks_far_from_a_single_character_are_left_out():
    base = preprocess(draw([TWO]))
    app = draw([TWO], size=(700, 500), box=(300, 250, 100, 180))
    for x in range(20, 260, 40):
        ImageDraw.Draw(app).rectangle([x, 10, x + 24, 34], fill=0)  # a drawing app's toolbar
    assert close(preprocess(app), base)
    notes = draw([TWO], size=(700, 500), box=(400, 250, 100, 180))
    for y in range(20, 420, 100):  # a notes app's sidebar: outlined icons half the character's size
        ImageDraw.Draw(notes).rectangle([20, y, 110, y + 90], outline=0, width=4)
    assert close(preprocess(notes), base)
    sheet = draw([TWO], size=(700, 500), box=(300, 250, 100, 180))  # a worksheet's question number, half its size
    ImageDraw.Draw(sheet).text((40, 300), "12.", fill=0, font=ImageFont.load_default(size=90))
    assert close(preprocess(sheet), base)
    near = draw([TWO], size=(700, 500), box=(145, 250, 100, 180))  # the sidebar as near as the 2's own strokes
    for y in range(20, 420, 100):
        ImageDraw.Draw(near).rectangle([20, y, 110, y + 90], outline=0, width=4)
    _, scale, mask, _ = find_ink(load_gray(near), one=True)
    one = _main_group(mask)
    assert scale == 1 and one[250:].any() and not one[:115].any()  # the icons beside it, not the sidebar beyond


def test_marks_alike_in_a_sidebar_or_a_column_of_holes_are_never_characters_but_a_row_of_typed_ones_is_read():
    base = preprocess(draw([TWO], width=6))
    notes = draw([TWO], size=(700, 500), box=(450, 250, 100, 180), width=6)  # a fine pen: less ink than an icon
    for y in range(20, 480, 115):  # a notes app's sidebar of icons, each with more ink than the 2, as near
        ImageDraw.Draw(notes).rectangle([20, y, 130, y + 110], outline=0, width=7)
    assert close(preprocess(notes), base)
    typed = Image.new("L", (400, 160), 255)  # three printed marks alike in a row are characters: "111" typed
    ImageDraw.Draw(typed).text((40, 20), "111", fill=0, font=ImageFont.load_default(size=110))
    assert len(preprocess_multi(typed)) == 3
    # A column of marks alike beside a row (a spiral notebook's punched holes, drawn as the benchmark's kind draws
    # them; the seeds whose holes were read as a character): none is a character.
    r = row([[SEVEN], [TWO], [SEVEN], [TWO]])
    x = 255 - np.asarray(r.resize((round(r.width * 28 / r.height), 28), Image.BILINEAR))
    for seed in (12, 18, 38):
        assert len(preprocess_multi(draw_as("spiral_notebook", x, None, seed))) == 4, seed


@pytest.mark.parametrize("pen", [(115, 180, 255), (240, 115, 165)])
def test_a_light_pen_beside_a_sidebar_of_dark_icons_is_not_taken_for_paper(pen):
    # Sky blue, pink: a third of the black icons' contrast in the luminance, and a fine pen's 2 has about an icon's
    # ink: the icons, not the 2, would set the strokes' darkness, and the 2 fall under half of it.
    base = preprocess(draw([TWO], width=6))
    page = draw([TWO], size=(1000, 750), box=(550, 450, 100, 180), width=6, ink=pen, paper=(250, 250, 245),
                mode="RGB")
    d = ImageDraw.Draw(page)
    d.text((110, 20), "Quiz 3", fill=(25, 25, 25), font=ImageFont.load_default(size=34))
    for y in range(120, 600, 80):
        d.rectangle([25, y, 65, y + 40], outline=(25, 25, 25), width=4)
    assert close(preprocess(page), base)


@pytest.mark.parametrize("strokes, gaps, width, pieces", [(TWO, (0.2, 0.45, 0.7), 12, 3),
                                                         (TWO, (0.3, 0.6, 0.8, 0.9), 12, 5),
                                                         (SEVEN, (0.45, 0.65), 8, 3)])
def test_a_character_drawn_by_a_pen_that_skips_is_read_whole(strokes, gaps, width, pieces):
    # Gaps 28 px wide (a sixth of the 2's height) leave pieces farther apart than 0.3 of the largest piece's size:
    # the character's reach grows with the pieces found, and further for pieces above or below it. With four, the
    # 2's base is two short straight pieces: strokes of the pen's width, not printed marks, so they bring each
    # other in. The 7's largest piece holds under half its ink, and the next is beyond its reach: the character
    # grows from each piece a third of the largest's size or more.
    im = draw([strokes], width=width)
    (x, y, w, h), d = (150, 60, 100, 180), ImageDraw.Draw(im)
    pts = np.asarray([(x + px * w, y + py * h) for px, py in strokes])
    along = np.r_[0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
    for f in gaps:
        cx, cy = (np.interp(f * along[-1], along, pts[:, k]) for k in (0, 1))
        d.ellipse([cx - 14, cy - 14, cx + 14, cy + 14], fill=255)
    _, _, mask, _ = find_ink(load_gray(im), one=True)
    assert ndi.label(mask)[1] == pieces and (_main_group(mask) == mask).all()


def test_a_screenshots_bright_status_and_home_bars_do_not_hide_or_join_a_fainter_pen():
    base = preprocess(draw([TWO]))
    for paper, pen, chrome in ((20, 110, 245), (255, 150, 10)):  # a blue pen in dark mode, an orange one in light
        shot = draw([TWO], size=(400, 800), box=(150, 300, 100, 180), ink=pen, paper=paper)
        d = ImageDraw.Draw(shot)
        for x in (30, 50, 70, 90, 300, 330, 360):  # the time, signal, wi-fi, battery: twice the pen's contrast
            d.rectangle([x, 30, x + 14, 54], fill=chrome)
        d.rounded_rectangle([140, 770, 260, 778], 4, fill=chrome)  # the home bar
        assert close(preprocess(shot), base), (paper, pen)
    def drawing_app(size, box, pen, swatches=()):
        """A drawing app: a dark toolbar along the top with its menu words, dark colour swatches at these rows."""
        app = draw([TWO], size=size, box=box, ink=pen, paper=(252, 252, 252), mode="RGB")
        d = ImageDraw.Draw(app)
        d.rectangle([0, 0, size[0] - 1, 50], fill=(45, 45, 50))
        d.text((20, 12), "File   Edit   View   Brush", fill=(230, 230, 230), font=ImageFont.load_default(size=24))
        for y in swatches:
            d.rectangle([size[0] - 70, y, size[0] - 30, y + 40], fill=(45, 45, 50))
        return app

    assert close(preprocess(drawing_app((900, 600), (400, 200, 100, 180), (120, 180, 255))), base)  # a sky-blue pen
    # Its swatches too, and pens so light that only the chrome stands out in the luminance (a small 2 is read again
    # from a crop that cuts the toolbar).
    for pen, box in (((120, 180, 255), (400, 200, 100, 180)), ((245, 215, 60), (400, 200, 100, 180)),
                     ((130, 215, 130), (300, 250, 50, 90))):
        assert close(preprocess(drawing_app((1200, 750), box, pen, range(90, 500, 60))), base), pen


def test_coloured_ink_as_light_as_the_paper_is_found():
    base = preprocess(draw([TWO]))
    im = draw([TWO], ink=(60, 200, 60), paper=(235, 170, 190), mode="RGB")  # green pen on pink: equal luminance
    assert abs(np.asarray(im.convert("L"), float).mean() - np.asarray(im.convert("L"), float).max()) < 25
    assert close(preprocess(im), base)
    # A yellow pen beside black print: faint in the luminance, strong in blue.
    page = draw([TWO], size=(800, 500), box=(400, 150, 100, 180), ink=(245, 205, 50), paper=(250, 250, 245),
                mode="RGB")
    d = ImageDraw.Draw(page)
    d.text((120, 20), "Untitled note", fill=(25, 25, 25), font=ImageFont.load_default(size=34))
    for y in range(100, 460, 80):  # a notes app's sidebar of outlined icons
        d.rectangle([25, y, 65, y + 40], outline=(25, 25, 25), width=4)
    assert close(preprocess(page), base)
    # A black pen highlighted afterwards: the yellow band is dark in blue, and broad; the pen is dark everywhere.
    marked = np.asarray(draw([TWO], paper=(255, 255, 255), mode="RGB"), np.float32)
    band = np.zeros(marked.shape[:2], np.float32)
    band[90:190, 145:255] = 1
    marked *= 1 - ndi.gaussian_filter(band, 1.5)[..., None] * np.float32([0, 0.05, 0.7])  # a highlighter multiplies
    assert close(preprocess(Image.fromarray(marked.round().astype(np.uint8))), base)


def test_a_highlighters_band_along_a_row_is_colour_not_ink():
    # The band is as broad as a third of the row's height: measured against the image's longer side (a row's length)
    # it looked as thin as a stroke, and the channel it is dark in was read, the band with the writing.
    r = row([[SEVEN], [TWO], [SEVEN], [TWO]], width=8)
    page = np.asarray(r.convert("RGB"), np.float32)
    for colour in ((255, 235, 60), (250, 150, 200), (140, 240, 120)):  # yellow, pink, green
        marked = page.copy()
        marked[90:150, 30:-100] *= np.float32(colour) / 255  # a highlighter multiplies
        im = Image.fromarray(marked.round().astype(np.uint8))
        assert np.abs(_ink_channel(im) - np.asarray(im.convert("L"), np.float32) / 255).max() < 0.02, colour


def test_tight_crops_and_small_scans_read_like_the_full_image():
    big = draw([TWO], size=(400, 400), box=(100, 60, 200, 280), width=36)  # a marker, with margins
    base = preprocess(big)
    tight = big.crop((82, 42, 318, 358))  # cropped to within a pixel or two of the ink
    assert close(preprocess(tight), base)
    out = preprocess(tight)
    assert (out > 0.9).sum() > 0.5 * (out > 0.1).sum()  # solid strokes, not hollow outlines
    for side in (8, 12, 16):  # small scans that the character fills (under 12 px: drawn from the gray)
        small = tight.resize((round(side * tight.width / tight.height), side), Image.BOX)
        assert close(preprocess(small), base, 0.12), side


@pytest.mark.parametrize("size, box, width", [((1000, 1000), (480, 480, 25, 40), 4),
                                              ((2480, 3508), (1200, 1700, 40, 60), 5),  # an A4 page at 300 dpi
                                              ((3840, 2160), (1900, 1000, 25, 40), 4)])  # a 4K screenshot
def test_a_small_character_on_a_large_clean_page_is_found_and_read_from_its_own_pixels(size, box, width):
    # A drawing app's canvas, a screenshot, a 1-bit scan of a page: no grain, ink on under 0.1% of the pixels; the
    # character read again from a crop around it, not from the page reduced to 1,024 px (where it is 10 px tall).
    for strokes in ([TWO], [SEVEN]):
        for ink, paper in ((0, 255), (255, 30)):
            assert close(preprocess(draw(strokes, size=size, box=box, width=width, ink=ink, paper=paper)),
                         preprocess(draw(strokes)), 0.05)


def test_faint_writing_on_a_very_grainy_large_page_is_still_read_from_the_whole_page():
    # The crop around the writing keeps the grain that reducing the whole page averaged away; the page's reading
    # stands when the crop's is refused.
    g = np.asarray(draw([TWO], size=(3000, 2000), box=(1400, 900, 40, 60), width=6), np.float32) / 255
    g = np.clip(0.8 - 0.3 * (1 - g) + np.random.default_rng(0).normal(0, 0.2, g.shape), 0, 1)
    assert close(preprocess(g), preprocess(draw([TWO])), 0.08)


def test_a_digit_in_a_small_dim_photo_is_read_through_its_grain():
    # Drawn as the benchmark's low_light kind draws them (80-170 px, a dim room, the sensor's noise in each channel,
    # JPEG), the seeds whose clearly visible digit was refused as "nothing stands out from the paper's grain".
    for strokes, seed in ((SEVEN, 33), (SEVEN, 194), (SEVEN, 249), (SEVEN, 299), (TWO, 11)):
        x = 255 - np.asarray(draw([strokes], size=(28, 28), box=(6, 4, 14, 20), width=2))
        assert close(preprocess(draw_as("low_light", x, None, seed)), preprocess(draw_as("png28", x, None, seed))), seed


def test_a_card_photographed_on_a_darker_desk_is_read_inside_its_edges():
    # The card is lighter than the desk and the image's border is desk: without finding the sheet, the card was
    # taken for light ink, with the digit as its holes.
    card = draw([SEVEN], size=(300, 300), box=(100, 60, 100, 180), width=12, paper=235)
    base = preprocess(card)
    for angle, desk in ((0, 90), (12, 60), (-20, 120)):
        photo = Image.new("L", (700, 560), desk)
        turned = card.rotate(angle, resample=Image.BILINEAR, expand=True, fillcolor=desk)
        photo.paste(turned, (150, 110))
        g = ndi.gaussian_filter(np.asarray(photo, np.float32), 0.8) / 255  # a camera's slight blur
        assert close(preprocess(g), preprocess(np.asarray(card.rotate(angle, fillcolor=235), np.float32) / 255),
                     0.05), angle
    assert close(base, preprocess(np.asarray(card, np.float32) / 255), 0.01)


def test_a_card_photographed_from_an_angle_a_trapezium_is_read_inside_its_edges():
    card = np.asarray(draw([SEVEN], size=(300, 300), box=(100, 60, 100, 180), width=12, paper=235), np.float32) / 255

    def photo(desk):
        g = np.full((560, 700), desk, np.float32)
        for y in range(300):  # each row narrowed about the middle: the far edge 60% of the near edge's width
            w = int(300 * (0.6 + 0.4 * y / 299))
            g[130 + y, 350 - w // 2:350 - w // 2 + w] = np.interp(np.linspace(0, 299, w), np.arange(300), card[y])
        return ndi.gaussian_filter(g, 0.8)

    assert _sheet(photo(90 / 255)) is not None
    assert close(preprocess(photo(90 / 255)), preprocess(photo(235 / 255)), 0.05)


def test_a_sheet_running_off_the_photos_edges_is_read_inside_its_own_edges():
    # A till receipt across the photo, its printed lines running to where the photo's edge cuts it: the writing ran
    # to the sheet's edge there, which only a shadow's does, and the table beside it was read as ink.
    for strokes in ([SEVEN], [TWO]):
        strip = draw(strokes, size=(200, 700), box=(50, 260, 100, 180), width=12, paper=235)
        alone = strip.copy()
        for y in (60, 90, 120, 560, 590, 620):
            ImageDraw.Draw(strip).rectangle((30, y, 170, y + 10), fill=130)
        for angle, desk in ((0, 60), (6, 40), (-8, 90)):
            photo = Image.new("L", (520, 520), desk)
            turned = strip.rotate(angle, resample=Image.BILINEAR, expand=True, fillcolor=desk)
            photo.paste(turned, (160, 260 - turned.height // 2))  # its top and bottom beyond the photo's
            g = ndi.gaussian_filter(np.asarray(photo, np.float32), 0.8) / 255
            assert _sheet(g) is not None, angle
            assert close(preprocess(g), preprocess(np.asarray(alone.rotate(angle, fillcolor=235), np.float32) / 255),
                         0.05), angle


def test_a_pages_corner_running_off_two_sides_of_the_photo_is_read_inside_its_own_edges():
    # Rows drawn as the benchmark's page_corner kind draws them (the page turned, running off two sides, the desk in
    # the opposite corner), the seeds that failed: five or six corners, not four, so no sheet was found and the desk's
    # corners were read with the row (two characters of four).
    r = row([[SEVEN], [TWO], [SEVEN], [TWO]])
    x = 255 - np.asarray(r.resize((round(r.width * 28 / r.height), 28), Image.BILINEAR))
    for seed in (1, 6, 8, 15, 16):
        gray, _ = read_gray(draw_as("page_corner", x, None, seed))
        assert _sheet(gray) is not None, seed
        assert len(preprocess_multi(draw_as("page_corner", x, None, seed))) == 4, seed


@pytest.mark.parametrize("screen, pen, desk", [(245, 20, 90), (245, 20, 180), (30, 235, 180), (30, 235, 110)])
def test_a_phone_on_a_desk_is_read_inside_its_screen(screen, pen, desk):
    # A drawing app on a phone lying on a desk: its black body round the screen was taken for writing in a shadow,
    # and a desk lighter than the body, or a dark screen (read as a dark sheet), hid the screen from the search.
    app = draw([SEVEN], size=(220, 400), box=(60, 110, 100, 180), width=10, ink=pen, paper=screen)
    phone = Image.new("L", (260, 440), 12)
    phone.paste(app, (20, 20))
    rng = np.random.default_rng(desk)
    for angle in (0, 10, -14):
        photo = Image.new("L", (640, 620), desk)
        turned = phone.rotate(angle, resample=Image.BILINEAR, expand=True, fillcolor=desk)
        photo.paste(turned, (200, 310 - turned.height // 2))
        xx = np.mgrid[:620, :640][1]
        light = 0.8 + 0.2 * xx / 640  # from the right
        g = ndi.gaussian_filter(np.asarray(photo, np.float32), 0.8) / 255 * light
        g = np.clip(g + rng.normal(0, 0.03, g.shape), 0, 1)
        assert _sheet(g) is not None, angle
        assert close(preprocess(g), preprocess(np.asarray(app.rotate(angle, fillcolor=screen), np.float32) / 255),
                     0.05), angle


def test_a_shadow_or_lighting_gradient_is_not_taken_for_a_sheets_edge():
    page = np.asarray(draw([TWO], size=(400, 300)), np.float32) / 255
    xx = np.mgrid[:300, :400][1]
    for light in (0.45 + 0.55 * np.clip((xx - 150) / 100, 0, 1),  # a soft shadow over the left side
                  0.5 + 0.5 * xx / 400):  # light from the right
        assert _sheet(page * light) is None
        assert close(preprocess(page * light), preprocess(page), 0.05)


def test_a_row_half_in_a_hard_shadow_is_read_whole_as_dark_ink():
    # Rows drawn as the benchmark's shadow kind draws them (a lighting gradient, a shadow's edge 1-5% of the page
    # wide), the seeds that failed: a patch of paper left lit was taken for light ink (20-98), or for a sheet on a
    # desk, and the writing in the shadow cut off (60-133).
    r = row([[SEVEN], [TWO], [SEVEN], [TWO]])
    x = 255 - np.asarray(r.resize((round(r.width * 28 / r.height), 28), Image.BILINEAR))
    for seed in (20, 21, 31, 37, 98, 60, 112, 133):
        gray, _ = read_gray(draw_as("shadow", x, None, seed))
        assert _dark_ink(_fit(gray, 128)) and _sheet(gray) is None, seed
        assert len(preprocess_multi(draw_as("shadow", x, None, seed))) == 4, seed


def test_a_small_row_on_a_large_page_is_read_like_the_row_with_boxes_on_the_page():
    small = row([[SEVEN], [TWO], [SEVEN]], width=3, size=(30, 45), gap=10)
    page = Image.new("L", (3000, 2000), 255)
    page.paste(small, (1200, 900))
    found, alone = preprocess_multi(page), preprocess_multi(small)
    assert len(found) == len(alone) == 3
    for (box, img), (box0, img0) in zip(found, alone):
        assert np.allclose(box, np.add(box0, (1200, 900) * 2), atol=3) and close(img, img0, 0.03)


def test_a_small_scan_reads_the_same_cropped_to_its_ink_or_with_paper_around():
    big = draw([TWO], size=(400, 400), box=(100, 60, 200, 280), width=36)
    small = np.asarray(big.crop((82, 42, 318, 358)).resize((6, 8), Image.BOX))
    rows, cols = np.flatnonzero(small.min(1) < 250), np.flatnonzero(small.min(0) < 250)
    edge = small[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # ink in every edge row and column
    a, b = preprocess(edge), preprocess(np.pad(edge, 3, constant_values=255))
    assert abs(a.sum() - b.sum()) < 0.05 * b.sum()  # the same amount of ink: none runs on at the edges
    for out in (a, b):  # and the same size: the box of the strokes' cores is MNIST's 20 px
        rows, cols = np.flatnonzero(out.max(1) > 0.5), np.flatnonzero(out.max(0) > 0.5)
        assert BOX - 2 <= rows[-1] - rows[0] + 1 <= BOX, out.round(1)


def test_emnist_framing_fills_the_frame_and_centres_the_box():
    out = preprocess(draw([TWO]), framing="emnist")
    rows, cols = np.flatnonzero(out.max(1) > 0.05), np.flatnonzero(out.max(0) > 0.05)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == SIZE - 4  # longest side 24 px
    assert abs((rows[0] + rows[-1]) / 2 - CENTRE) <= 1 and abs((cols[0] + cols[-1]) / 2 - CENTRE) <= 1
    with pytest.raises(ValueError, match="unknown framing"):
        preprocess(draw([TWO]), framing="kmnist")


def test_a_character_drawn_edge_to_edge_is_not_taken_for_a_frame():
    one = Image.new("L", (60, 300), 255)
    ImageDraw.Draw(one).line([(30, 0), (30, 299)], fill=0, width=4)
    out = preprocess(one)
    assert len(np.flatnonzero(out.max(1) > 0.5)) == BOX and out.sum() > 25


def test_a_1_as_tall_as_a_row_cropped_tight_is_a_character_not_a_bar_along_the_images_edge():
    # An image trimmed to its ink: a 1 at either end, as tall as the row, touches the image's side from top to bottom,
    # and was dropped as a bar along the edge (an app's toolbar, a scan's border): "17" was read as "7".
    one = [(.5, 0), (.5, 1)]
    for chars in ([one, SEVEN], [SEVEN, one], [one, TWO, one]):
        im = row([[c] for c in chars], gap=30)
        tight = im.crop(ImageOps.invert(im).getbbox())
        assert len(preprocess_multi(tight)) == len(chars), chars


def test_stroke_width_is_brought_into_mnists_range():
    for width in (2, 60):  # a fine pen on a big page, a marker
        out = preprocess(draw([TWO], size=(800, 800), box=(250, 200, 300, 400), width=width))
        fine = np.asarray(Image.fromarray(out).resize((FINE * SIZE // BOX,) * 2, Image.BILINEAR)) > 0.5
        assert STROKE_RANGE[0] - 0.5 <= stroke_width(fine) <= STROKE_RANGE[1] + 0.5, width


@pytest.mark.parametrize("image, words", [
    (Image.new("L", (50, 50), 200), "no ink"),
    ((np.random.default_rng(0).normal(128, 6, (200, 200))).clip(0, 255).astype(np.uint8), "no ink"),
    (np.clip(200 - 80 * np.mgrid[:300, :400][1] / 400 + np.random.default_rng(1).normal(0, 8, (300, 400)), 0, 255)
     .astype(np.uint8), "no ink"),  # blank paper, lit from one side, grainy
    (encoded(Image.fromarray((np.float32([97, 82, 69]) + np.random.default_rng(2).normal(0, 15, (150, 120, 3)))
                             .clip(0, 255).astype(np.uint8)), "JPEG", quality=70), "no ink"),  # a dim photo of it
    (b"this is not an image", "not an image"),
    (np.full((5, 4), 255, np.uint8), "too small"),
    ("/nonexistent/digit.png", "no such file"),
])
def test_bad_input_is_one_clear_line(image, words):
    with pytest.raises(ReadError) as e:
        preprocess(image)
    assert words in str(e.value) and "\n" not in str(e.value)


YY, XX = np.mgrid[:300, :400]
R2 = ((YY - 150) ** 2 + (XX - 200) ** 2) / (150 ** 2 + 200 ** 2)  # 0 at the centre, 1 in the corners


@pytest.mark.xfail(strict=True, reason="open (README, What the preprocessing does): the paper's shade rising to the "
                   "edges is left as marks along them, read as a character")
@pytest.mark.parametrize("light", [1 - 0.4 * R2, 1 / (1 + 3 * R2)], ids=["vignette", "lamp"])
def test_blank_paper_lit_unevenly_to_the_corners_is_refused(light):
    page = np.clip(200 * light + np.random.default_rng(3).normal(0, 4, light.shape), 0, 255).astype(np.uint8)
    with pytest.raises(ReadError, match="no ink"):
        preprocess(page)


def test_a_truncated_file_is_reported(tmp_path):
    (tmp_path / "cut.png").write_bytes(encoded(draw([TWO]))[:200])
    with pytest.raises(ReadError, match="cut.png"):
        preprocess(tmp_path / "cut.png")


def test_load_gray_accepts_paths_bytes_and_images(tmp_path):
    im = draw([TWO], mode="RGB", ink=(0, 0, 0), paper=(250, 250, 250))
    im.save(tmp_path / "two.webp", lossless=True)
    for source in (im, tmp_path / "two.webp", str(tmp_path / "two.webp"), encoded(im, "BMP")):
        assert np.array_equal(load_gray(source), gray(im))


def test_multi_reads_characters_left_to_right_with_boxes():
    im = row([[SEVEN], [TWO], [SEVEN]])
    found = preprocess_multi(im)
    assert len(found) == 3
    lefts = [box[0] for box, _ in found]
    assert lefts == sorted(lefts) and all(30 + k * 160 - 10 <= x <= 30 + k * 160 + 20 for k, x in enumerate(lefts))
    assert close(found[1][1], preprocess(draw([TWO], box=(150, 60, 120, 180))), 0.05)
    assert close(found[0][1], found[2][1], 0.01)


def test_broken_strokes_are_merged_and_touching_characters_split():
    five = [[(.85, .05), (.25, .05)], [(.2, .2), (.2, .45), (.6, .42), (.85, .65), (.7, .95), (.1, .9)]]
    broken = row([five, [TWO]])  # the 5's bar is a separate piece of ink
    assert len(preprocess_multi(broken)) == 2
    touching = row([[TWO], [TWO], [SEVEN]], gap=-50, size=(170, 180))  # strokes of neighbours cross
    ink, _, noise = ink_map(load_gray(touching))
    mask = ink_mask(ink, noise)
    assert ndi.label(mask)[1] < 3  # the test really has touching characters
    assert len(segment(mask)) == 3


def test_with_a_model_to_judge_touching_characters_are_cut_where_it_is_surest_of_them():
    mask = np.zeros((120, 300), bool)
    mask[10:110, 10:270] = True  # one solid piece 2.6 rows wide: no thin column says where characters meet
    truth = [(10, 100), (100, 200), (200, 270)]  # columns of the characters a model would read with confidence

    def sure(masks):
        spans = [(int(np.flatnonzero(m.any(0))[0]), int(np.flatnonzero(m.any(0))[-1]) + 1) for m in masks]
        return np.array([0.95 if any(abs(a - t0) < 8 and abs(b - t1) < 8 for t0, t1 in truth) else 0.2
                         for a, b in spans])

    judged = [(box[0], box[2]) for box, _ in segment(mask, sure)]
    assert len(judged) == 3 and all(abs(a - t0) < 8 and abs(b - t1) < 8 for (a, b), (t0, t1) in zip(judged, truth))
    assert [(box[0], box[2]) for box, _ in segment(mask)] != judged  # without it: near equal thirds
    assert len(segment(mask[:, :120], sure)) == 1  # as narrow as one character: not cut, whatever the model says
    # 1.3 rows wide (a character widened by a sheet seen at an angle): whole, when the model is surest of it so
    assert len(segment(mask[:, :140], lambda masks: np.array([0.99 if m[:, 10:140].all() else 0.5 for m in masks]))) == 1
    assert len(segment(mask, lambda masks: np.array([0.99 if m[:, 10:270].all() else 0.5 for m in masks]))) > 1


def test_with_a_model_to_judge_a_character_broken_into_pieces_is_joined_but_whole_characters_never_are():
    mask = np.zeros((120, 330), bool)
    mask[10:75, 10:40] = True  # a 9's loop, broken off its stem by a skipping pen: 0.65 of the row high
    mask[10:110, 46:56] = True  # its stem, 6 px away
    mask[10:110, 120:180] = True  # a whole character
    mask[10:110, 220:232] = mask[10:110, 238:250] = True  # two whole characters 6 px apart (1 1)

    def sure(masks):  # as a model would be: surest of the whole 9, and (wrongly) of the two 1s as one character
        spans = [(int(np.flatnonzero(m.any(0))[0]), int(np.flatnonzero(m.any(0))[-1]) + 1) for m in masks]
        return np.array([{(10, 56): 0.95, (220, 250): 0.99}.get(s, 0.9 if s != (220, 232) else 0.6) for s in spans])

    assert [(box[0], box[2]) for box, _ in segment(mask, sure)] == [(10, 56), (120, 180), (220, 232), (238, 250)]
    assert len(segment(mask)) == 5  # without a model the loop is too tall to be taken for a fragment


def test_with_a_model_to_judge_a_character_in_two_pieces_each_as_tall_as_it_is_joined_unless_each_reads_alone():
    mask = np.zeros((120, 400), bool)
    mask[10:110, 10:30] = mask[10:110, 70:90] = True  # a skipping pen's 0: two arcs 40 px (0.4 rows) apart
    mask[10:110, 150:200] = True  # a whole character
    mask[10:110, 250:262] = mask[10:110, 270:282] = True  # two ones 8 px apart
    mask[10:110, 320:330] = mask[10:110, 380:390] = True  # two arcs too far apart (0.5 rows) for one character

    def sure(masks):  # as a model would be: unsure of an arc, sure of each 1 and (wrongly) of the two as one
        spans = [(int(np.flatnonzero(m.any(0))[0]), int(np.flatnonzero(m.any(0))[-1]) + 1) for m in masks]
        known = {(10, 90): 0.95, (250, 262): 0.95, (270, 282): 0.95, (250, 282): 0.99, (320, 390): 0.95}
        return np.array([known.get(s, 0.9 if s == (150, 200) else 0.4) for s in spans])

    found = [(box[0], box[2]) for box, _ in segment(mask, sure)]
    assert found == [(10, 90), (150, 200), (250, 262), (270, 282), (320, 330), (380, 390)]
    assert len(segment(mask)) == 7  # without a model, each arc is a character


def test_a_row_of_characters_all_in_fragments_is_measured_by_its_inks_height_not_theirs():
    # A skipping pen's row: every character a slanted stroke 100 px tall broken into three fragments 30 px tall that
    # share no columns, on a row drifting down: the characters' height is the ink's along the row, and each
    # character's fragments join (measured by the pieces alone, 30 px, each fragment was a character).
    mask = np.zeros((200, 420), bool)
    for k in range(4):
        for part in range(3):
            for y in range(10 + 35 * part, 40 + 35 * part):
                x = 20 + 100 * k + (120 - y) // 4
                mask[y + 15 * k, x:x + 4] = True
    assert ndi.label(mask, structure=np.ones((3, 3)))[1] == 12
    cols = [np.flatnonzero(mask[:, 100 * k:100 * k + 100].any(0)) + 100 * k for k in range(4)]
    assert [(box[0], box[2]) for box, _ in segment(mask)] == [(c[0], c[-1] + 1) for c in cols]


def test_a_huge_image_is_reduced_while_decoding_and_read_as_the_small_one(tmp_path):
    im = row([[SEVEN], [TWO], [SEVEN]])  # 510 x 260
    small = preprocess_multi(im)
    big = im.resize((im.width * 9, im.height * 9), Image.NEAREST)  # 4590 x 2340: reduced by 3 while decoding
    gray, factor = read_gray(big)
    assert max(gray.shape) <= MAX_SIDE and factor == pytest.approx(big.width / gray.shape[1])
    found = preprocess_multi(big)
    assert len(found) == 3
    for (box, img), (small_box, small_img) in zip(found, small):
        assert np.allclose(box, np.array(small_box) * 9, atol=30)  # boxes in the input's own pixels
        assert close(img, small_img, 0.05)
    path = tmp_path / "big.jpg"
    big.convert("RGB").save(path, quality=90)  # a JPEG decodes at a reduced scale directly
    assert close(preprocess(path), preprocess(im), 0.05)


def _scans():
    """The files scanners, scanning tools and phones write of one drawing: (name, bytes)."""
    im = draw([TWO])
    big = im.resize((im.width * 12, im.height * 12))  # an A4 page's size at 300-600 dpi: reduced while decoding
    deep = Image.fromarray(np.asarray(im).astype(np.uint16) * 257)  # 16-bit gray
    turned = Image.Exif()
    turned[0x0112] = 6  # stored on its side, the orientation tag turns it upright
    side = im.rotate(90, expand=True)
    return [
        ("TIFF, LZW, colour", encoded(im.convert("RGB"), "TIFF", compression="tiff_lzw")),
        ("TIFF, JPEG-compressed", encoded(im.convert("RGB"), "TIFF", compression="jpeg")),
        ("TIFF, 1-bit fax (CCITT G4), a 600 dpi page", encoded(big.convert("1"), "TIFF", compression="group4")),
        ("TIFF, 16-bit gray", encoded(deep, "TIFF")),
        ("TIFF, 32-bit float", encoded(Image.fromarray(np.asarray(im, np.float32) / 255), "TIFF")),
        ("TIFF, CMYK", encoded(im.convert("CMYK"), "TIFF")),
        ("TIFF, two pages (the first is read)", encoded(im, "TIFF", save_all=True,
                                                          append_images=[Image.new("L", im.size, 255)])),
        ("TIFF, stored on its side", encoded(side, "TIFF", exif=turned)),
        ("PBM (scanimage --mode lineart)", encoded(im.convert("1"), "PPM")),
        ("PGM, 16-bit", encoded(deep.convert("I;16"), "PPM")),
        ("PPM", encoded(im.convert("RGB"), "PPM")),
        ("HEIC (an iPhone photo)", encoded(im.convert("RGB"), "HEIF", quality=50)),
        ("HEIC stored on its side", encoded(side.convert("RGB"), "HEIF", quality=50, exif=turned.tobytes())),
        ("AVIF", encoded(im.convert("RGB"), "AVIF", quality=50)),
    ]


@pytest.mark.parametrize("name, data", _scans(), ids=[n for n, _ in _scans()])
def test_scans_and_phone_formats_read_like_the_png(tmp_path, name, data):
    base = preprocess(draw([TWO]))
    suffix = {"T": ".tif", "P": ".pnm", "H": ".heic", "A": ".avif"}[name[0]]
    path = tmp_path / f"page{suffix}"
    path.write_bytes(data)
    for image in (path, data):
        assert close(preprocess(image), base, 0.01), name


@pytest.mark.parametrize("fmt, words", [("TGA", "not an image in a format read here (PNG, JPEG"),
                                        ("ICO", "not an image in a format read here"),
                                        ("EMPTY", "empty (0 bytes)")])
def test_only_the_documented_formats_are_decoded(tmp_path, fmt, words):
    path = tmp_path / "digit.png"  # the name says PNG; the contents decide
    if fmt == "EMPTY":
        path.write_bytes(b"")
    else:
        draw([TWO]).save(path, fmt)
    for image in (path, path.read_bytes()):
        with pytest.raises(ReadError, match=re.escape(words)):
            preprocess(image)


def test_an_unreadable_file_says_permission_denied(tmp_path, monkeypatch):
    path = tmp_path / "digit.png"
    draw([TWO]).save(path)

    def denied(*args, **kwargs):  # what opening a file without read permission raises (root may read anything)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(ReadError, match="digit.png: permission denied"):
        preprocess(path)


def on_page(im: Image.Image, size, at) -> Image.Image:
    page = Image.new("L", size, 255)
    page.paste(im, at)
    return page


def lefts(image) -> list[int]:
    return [box[0] for box, _ in preprocess_multi(image)]


def test_a_row_is_read_without_the_marks_around_it():
    three = row([[SEVEN], [TWO], [SEVEN]])  # 540 x 260: characters 180 px high at x = 30, 190, 350
    app = on_page(three, (900, 700), (100, 300))
    d = ImageDraw.Draw(app)
    for x in range(20, 600, 60):
        d.rectangle([x, 10, x + 30, 40], fill=0)  # a drawing app's toolbar
    for y in range(100, 650, 60):  # a notes app's sidebar of icons, 70 px from the row (under its height of 180)
        d.rectangle([20, y, 60, y + 40], outline=0, width=4)
    assert lefts(app) == lefts(on_page(three, (900, 700), (100, 300)))
    circled = on_page(three, (700, 700), (80, 220))
    ImageDraw.Draw(circled).ellipse([40, 40, 660, 660], outline=0, width=10)  # a round ring, room above and below
    assert len(lefts(circled)) == 3
    form = on_page(three, (900, 400), (300, 70))
    d = ImageDraw.Draw(form)
    d.rectangle([300, 60, 850, 340], outline=190, width=2)  # a faint form box round the row, its label beside it
    d.text((120, 180), "Qty", fill=0, font=ImageFont.load_default(size=40))
    assert len(lefts(form)) == 3 and min(lefts(form)) > 300
    boxes = three.copy()
    for k in range(3):  # each character in a box of its own: all are read
        ImageDraw.Draw(boxes).rectangle([20 + 160 * k, 30, 160 + 160 * k, 230], outline=0, width=3)
    assert len(lefts(boxes)) == 3
    assert len(lefts(row([[TWO], [SEVEN]], gap=400))) == 2  # writing as tall as the row, on its line: however far


def test_a_forms_row_of_boxes_is_read_as_its_characters_not_its_boxes():
    three = row([[SEVEN], [TWO], [SEVEN]])  # 540 x 260: characters 180 px high at x = 30, 190, 350, 120 wide
    plain = preprocess_multi(three)

    def comb(chars, ink, boxes, top=20, bottom=240):  # a frame from x = 10, split into boxes 160 px wide
        im = Image.new("L", (60 + 160 * boxes, 260), 255)
        im.paste(chars, (0, 0))
        d = ImageDraw.Draw(im)
        d.rectangle([10, top, 10 + 160 * boxes, bottom], outline=ink, width=2)
        for x in range(170, 10 + 160 * boxes, 160):
            d.line([(x, top), (x, bottom)], fill=ink, width=2)
        return im

    for ink, boxes in ((0, 3), (150, 4)):  # printed black; fainter than the writing, a box left empty after it
        found = preprocess_multi(comb(three, ink, boxes))
        assert len(found) == 3 and all(close(a, b, 0.02) for (_, a), (_, b) in zip(found, plain)), ink
    # Separate boxes, 234 px square, the last two left empty, and the 2 in a smaller one that it touches: the row is
    # not read inside that one.
    apart = Image.new("L", (1465, 260), 255)
    apart.paste(row([[SEVEN], [TWO], [SEVEN]], gap=161), (0, 0))  # the characters at x = 30 + 281 k
    for ink in (0, 150):
        for k in range(5):
            x = 90 + 281 * k
            ImageDraw.Draw(apart).rectangle([x - 117, 13, x + 117, 247] if k != 1 else [x - 67, 33, x + 67, 227],
                                            outline=ink, width=2)
        assert len(preprocess_multi(apart)) == 3, ink
    seven = row([[SEVEN]])  # one character in the first box, the others left empty: read alone
    assert close(preprocess(comb(seven, 0, 3)), preprocess(seven), 0.02)
    # A 1 written down its box from the top side to the bottom one is writing: it is not where a side would be.
    one = row([[SEVEN], [[(.5, 0), (.5, 1)]], [SEVEN]])
    found = preprocess_multi(comb(one, 0, 5, top=40, bottom=220))
    assert len(found) == 3
    middle = found[1][1]
    assert np.ptp(np.flatnonzero(middle.max(1) > 0.5)) >= BOX - 2 and middle[:, 10:18].sum() > 0.95 * middle.sum()


def test_a_mask_of_scattered_pixels_is_drawn_not_refused_with_a_nan():
    m = np.zeros((400, 400), bool)
    m[0, 0] = m[399, 399] = m[0, 399] = True  # (a candidate character that holds only a few stray pixels)
    out = render(m)
    assert out.shape == (SIZE, SIZE) and np.isfinite(out).all() and out.max() > 0


def test_a_texture_of_many_pieces_is_refused_at_once_in_a_row():
    k = int(MAX_PIECES ** 0.5) + 2  # a k x k grid of small squares: more pieces than a row of characters has
    a = np.full((k * 12 + 8, k * 12 + 8), 255, np.uint8)
    for i in range(k):
        for j in range(k):
            a[4 + 12 * i:8 + 12 * i, 4 + 12 * j:8 + 12 * j] = 0
    with pytest.raises(ReadError, match=f"{k * k} separate pieces of ink"):
        preprocess_multi(a)
    # Just under the limit, the worst case for merging (every piece a fragment beside a stroke) stays quick.
    n = MAX_PIECES // 2
    m = np.zeros((60, n * 16 + 10), bool)
    for i in range(n):
        m[10:50, 5 + 16 * i:9 + 16 * i] = True  # a stroke
        m[30:34, 12 + 16 * i:15 + 16 * i] = True  # a fragment beside it
    start = time.process_time()
    assert len(segment(m)) == n
    assert time.process_time() - start < 2.0


def test_a_row_photographed_at_a_slant_or_small_on_a_large_card_is_read_whole():
    # A number written with wide spaces, photographed turned: each character lies on the row's line along its slope.
    wide = row([[SEVEN], [TWO], [SEVEN], [TWO]], gap=200)
    for angle in (15, 25, -20):
        assert len(lefts(wide.rotate(angle, resample=Image.BILINEAR, expand=True, fillcolor=255))) == 4, angle
    # A row of thin strokes on a large card on a darker desk, which leave almost no holes in the card in a 128 px
    # copy: found inside the card, and no trace of the card's edge read as a 1.
    three = row([[SEVEN], [TWO], [SEVEN]], width=8).resize((270, 130), Image.BILINEAR)
    card = Image.new("L", (900, 650), 235)
    card.paste(three.point(lambda v: min(v, 235)), (315, 260))
    for angle in (0, 15, -20):
        photo = Image.new("L", (1500, 1100), 60)
        photo.paste(card.rotate(angle, resample=Image.BILINEAR, expand=True, fillcolor=60), (200, 100))
        g = ndi.gaussian_filter(np.asarray(photo, np.float32), 0.8) / 255
        assert _sheet(g) is not None and len(preprocess_multi(g)) == 3, angle


def test_a_forms_faint_comb_is_read_without_its_dashes_or_ticks():
    # Rows drawn as the benchmark draws them, the seeds that failed: a faint box's sides thresholded into dashes, each
    # as tall as a character, read as 1s (comb_box, width 18 and 24); a box's sides holding more ink than the thin
    # characters, so taken for the characters' height, and read as 1s (comb_box, width 12); a comb's base line cut
    # away from its thicker ticks, which were then read as 1s (tick_comb).
    for kind, width, seeds in (("comb_box", 18, (3, 75, 109)), ("comb_box", 24, (82,)),
                               ("comb_box", 12, (10, 31, 81, 87)), ("tick_comb", 18, (57, 70)),
                               ("tick_comb", 24, (70, 83, 84))):
        r = row([[SEVEN], [TWO], [SEVEN], [TWO]], width=width)
        x = 255 - np.asarray(r.resize((round(r.width * 28 / r.height), 28), Image.BILINEAR))
        for seed in seeds:
            assert len(preprocess_multi(draw_as(kind, x, None, seed))) == 4, (kind, width, seed)


def test_a_tall_1_among_a_skipping_pens_fragments_is_writing_not_a_boxs_side():
    # A 1 of the pen's width, over twice as tall as the fragments that hold most of the row's ink: writing, not a
    # side (hairlines only are left out of the characters' height).
    mask = np.zeros((300, 800), bool)
    mask[40:220, 100:112] = True  # the 1
    for x in (200, 260, 420, 480):
        mask[120:170, x:x + 12] = True  # fragments
    mask[80:180, 320:340] = True
    assert _main_row(mask)[40:220, 100:112].all()


def test_writing_across_the_end_of_a_boxs_broken_lines_is_read():
    # A box whose top and bottom lines fade out before its right side (a faint print, photographed): the frame's ink
    # ends inside the last character, which is still in the box, not a label beside it.
    three = row([[SEVEN], [TWO], [SEVEN]])  # 540 x 260: characters 180 px high at x = 30, 190, 350, 120 wide
    for end in (400, 430):
        im = Image.new("L", (600, 300), 255)
        im.paste(three, (20, 20))
        d = ImageDraw.Draw(im)
        for y in (20, 280):
            d.line([(10, y), (end, y)], fill=0, width=2)
        d.line([(10, 20), (10, 280)], fill=0, width=2)
        d.line([(560, 40), (560, 260)], fill=0, width=2)
        assert len(preprocess_multi(im)) == 3, end


def test_a_row_written_in_a_tall_box_is_read_without_the_boxs_sides():
    # A form's box cropped from a photo: its top and bottom lines run across the crop (and go as ruled lines), its
    # sides, a little tilted, are far taller than the characters: they are no characters, nor start the row.
    three = row([[SEVEN], [TWO], [SEVEN]]).resize((180, 87), Image.BILINEAR)  # characters 60 px high
    for h, tilt in ((360, 3), (360, -3), (360, 4), (420, 3)):
        im = Image.new("L", (400, h), 255)
        im.paste(three, (110, (h - 87) // 2))
        d = ImageDraw.Draw(im)
        for y in (10, h - 10):
            d.line([(0, y), (400, y)], fill=0, width=2)
        for x in (40, 360):
            d.line([(x, 10), (x + tilt, h - 10)], fill=0, width=2)
        assert len(preprocess_multi(im)) == 3, (h, tilt)


@pytest.mark.slow
def test_no_trace_of_a_cards_edge_is_read_as_a_character():
    # A row drawn as the benchmark's card_on_table draws it (a card with its shadow, on a dark table, JPEG): the
    # card's outline, found in a 128 px copy, missed its edge by a pixel there, and the edge's line was read as ones.
    r = row([[SEVEN], [TWO], [SEVEN], [TWO]])
    x = 255 - np.asarray(r.resize((round(r.width * 28 / r.height), 28), Image.BILINEAR))
    assert [len(preprocess_multi(draw_as("card_on_table", x, None, seed))) for seed in range(10)] == [4] * 10


def test_a_forms_base_line_with_ticks_under_a_character_is_left_out():
    # A comb drawn as a base line with ticks rising between the boxes (the benchmark's tick_comb): not the line under
    # the writing an underline is, as its ticks rise beside the character.
    for strokes in ([SEVEN], [TWO]):
        x = 255 - np.asarray(draw(strokes, size=(280, 280), box=(90, 40, 100, 200), width=22).resize((28, 28)))
        alone = preprocess(255 - x)
        assert all(close(preprocess(draw_as("tick_comb", x, 0, seed)), alone, 0.05) for seed in range(16))
