"""The page in a real headless browser (Debian's chromium, driven by Playwright): draw strokes, read the label."""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, digit_png

pytestmark = pytest.mark.slow  # subprocesses, real data or end-to-end runs: make test-fast leaves them out

# Debian's chromium (.ci/run installs it): Playwright's own browser download is not reachable offline.
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Screenshots are kept for people (and CI) to look at: outputs/ is where runs leave what they make.
ARTIFACTS = Path(os.environ.get("MNIST_LIT_ARTIFACTS") or ROOT / "outputs" / "test-artifacts")

# Strokes in pad coordinates (0..1 across, 0..1 down), as a person would draw them.
SEVEN = [[(0.28, 0.22), (0.72, 0.22)], [(0.72, 0.22), (0.62, 0.45), (0.48, 0.82)]]
ONE = [[(0.52, 0.16), (0.48, 0.84)]]


@pytest.fixture(scope="module")
def server(ckpt, tmp_path_factory):
    """`python -m mnist_lit.serve` as a user starts it; --port 0 takes a free port, which it prints."""
    log_path = tmp_path_factory.getbasetemp() / "serve.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mnist_lit.serve", "--ckpt", str(ckpt), "--port", "0"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (url := re.search(r"http://\S+", log_path.read_text())):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the server did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    yield url.group()
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"no browser at {CHROMIUM}: apt-get install chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server, request):
    context = browser.new_context(viewport={"width": 1000, "height": 720}, has_touch=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))  # (Playwright cannot wrap a builtin method)
    page.goto(server)
    page.wait_for_function("document.querySelector('#model').textContent.includes('classes')")
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{request.node.name}.png")
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def at(page, x, y):
    box = page.locator("#pad").bounding_box()
    return box["x"] + x * box["width"], box["y"] + y * box["height"]


def draw(page, strokes, left=0.0, width=1.0):
    """Draws strokes with the mouse; left/width place them in a part of the pad (for a row of characters)."""
    for stroke in strokes:
        page.mouse.move(*at(page, left + stroke[0][0] * width, stroke[0][1]))
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(*at(page, left + x * width, y), steps=12)
        page.mouse.up()


def draw_by_touch(page, strokes):
    """Draws strokes with a finger: real touch input, which the browser turns into pointer events."""
    cdp = page.context.new_cdp_session(page)
    for stroke in strokes:
        (x0, y0), *rest = stroke
        points = [at(page, x0, y0)]
        for x1, y1 in rest:  # a finger moves through many points
            points += [at(page, x0 + (x1 - x0) * t / 12, y0 + (y1 - y0) * t / 12) for t in range(1, 13)]
            x0, y0 = x1, y1
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [dict(zip("xy", points[0]))]})
        for p in points[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [dict(zip("xy", p))]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def shown(page) -> str:
    """The label on the page once the newest drawing has been read."""
    page.wait_for_selector("#result[data-state=done]", timeout=20_000)
    return page.inner_text("#label")


def api_read(page, server, multi=False) -> dict:
    """What the API answers for the pad's pixels, asked directly (not through the page)."""
    png = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    req = urllib.request.Request(f"{server}/api/predict?multi={str(multi).lower()}", method="POST",
                                 data=base64.b64decode(png.split(",", 1)[1]),
                                 headers={"Content-Type": "image/png"})
    return json.load(urllib.request.urlopen(req, timeout=30))


def ink(page, canvas="#seen") -> int:
    """How many pixels of a canvas are not blank (black for the model's view, white for the pad)."""
    return page.evaluate("""(sel) => {
        const c = document.querySelector(sel), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) n += sel === '#pad' ? d[i] < 128 : d[i] > 0;
        return n;
    }""", canvas)


def test_draw_a_seven_read_it_then_undo_and_clear(page, server):
    draw(page, SEVEN)
    label = shown(page)
    assert label == api_read(page, server)["label"]  # the page shows what the model says of what was drawn
    assert label == "7"  # the shipped reader reads what a person draws
    assert page.locator("#top li").count() == 5  # the top-k bars
    assert float(page.inner_text("#confidence").rstrip("%")) > 0
    assert ink(page) > 20  # the 28x28 image the model saw is on the page

    drawn = ink(page, "#pad")
    page.click("#undo")  # drops the diagonal: what is left is read again
    shown(page)
    assert 0 < ink(page, "#pad") < drawn
    page.click("#clear")
    page.wait_for_selector("#result[data-state=idle]")
    assert ink(page, "#pad") == 0 and page.inner_text("#label") == ""


def test_a_finger_draws_too(page, server):
    draw_by_touch(page, ONE)
    label = shown(page)
    assert ink(page, "#pad") > 100
    assert label == api_read(page, server)["label"]
    assert label == "1"


def test_a_whole_number_in_one_line(page, server):
    page.check("#multi")
    draw(page, ONE, left=0.1, width=0.25)
    draw(page, SEVEN, left=0.45, width=0.25)
    text = shown(page)
    assert text == api_read(page, server, multi=True)["text"]
    assert page.locator("#chars figure").count() == len(text) == 2
    assert text == "17"


def test_upload_a_photo_and_a_file_that_is_not_one(page):
    data, label = digit_png()
    page.set_input_files("#file", files=[{"name": "digit.png", "mimeType": "image/png", "buffer": data}])
    shown(page)
    if label is not None:
        assert page.inner_text("#label") == label
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    page.wait_for_selector("#result[data-state=error]")
    assert "notes.txt" in page.inner_text("#error")


@pytest.fixture
def letters_url():
    """The app in this process, with a 26-letter reader whose network always answers Z (the page's view of it)."""
    import numpy as np
    import uvicorn

    from mnist_lit.predict import Reader
    from mnist_lit.serve import create_app

    letters = [chr(ord("A") + i) for i in range(26)]
    reader = Reader(lambda x: np.tile(np.arange(26.0), (len(x), 1)), letters,
                    {"model": "test", "dataset": "emnist_letters", "test_acc": None})
    server = uvicorn.Server(uvicorn.Config(create_app(reader), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


def test_a_letter_model_is_a_page_for_letters(browser, letters_url):
    page = browser.new_page(viewport={"width": 1000, "height": 720})
    page.goto(letters_url)
    page.wait_for_function("document.querySelector('#model').textContent.includes('26 classes')")
    assert "letter" in page.inner_text("#hint") and "word" in page.inner_text("#multi-label")
    draw(page, ONE)
    assert shown(page) == "Z" and page.locator("#top li .name").all_inner_texts() == ["Z", "Y", "X", "W", "V"]
    page.close()
