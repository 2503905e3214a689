"""The web server's API, through the framework's test client: good images, and every kind of bad request."""
import functools
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, SHARED_DATA

REAL = (SHARED_DATA / "MNIST" / "raw").is_dir()


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
    im = Image.fromarray(255 - x).resize((28 * scale, 28 * scale), Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue(), label


def png(im: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def ckpt(request):
    """The session's checkpoint: one epoch on real MNIST where ../shared/data has it (it reads drawn digits)."""
    return request.getfixturevalue("real_checkpoint" if REAL else "tiny_checkpoint")


@pytest.fixture(scope="module")
def reader(ckpt):
    from mnist_lit.predict import Reader

    return Reader.from_checkpoint(ckpt)


@pytest.fixture(scope="module")
def client(reader):
    from fastapi.testclient import TestClient

    from mnist_lit.serve import create_app

    # raise_server_exceptions=False: a crash must come back as the client sees it (a 500), not as an exception.
    with TestClient(create_app(reader, max_upload_mb=0.5), raise_server_exceptions=False) as c:
        yield c


def test_info_names_the_model_and_limits(client, reader):
    r = client.get("/api/info")
    assert r.status_code == 200
    info = r.json()
    assert info["classes"] == reader.classes == list("0123456789")
    assert {k: info[k] for k in reader.info} == reader.info
    assert info["max_upload_bytes"] == int(0.5 * 2**20) and "image/png" in info["content_types"]


def test_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for src in ("/static/app.js", "/static/style.css"):
        assert src in page.text
        assert client.get(src).status_code == 200


def test_a_raw_png_is_read_as_the_reader_reads_it(client, reader):
    data, label = digit_png()
    r = client.post("/api/predict?topk=4", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    got = r.json()
    want = reader.read(data, topk=4)
    assert got["label"] == want["label"] and got["confidence"] == pytest.approx(want["confidence"])
    assert [t[0] for t in got["top"]] == [t[0] for t in want["top"]] and len(got["top"]) == 4
    probs = [t[1] for t in got["top"]]
    assert probs == sorted(probs, reverse=True) and got["confidence"] == probs[0]
    image = np.array(got["image"])
    assert image.shape == (28, 28) and 0 <= image.min() and image.max() <= 1 and image.max() > 0.5
    assert np.allclose(image, want["image"], atol=1e-3)
    if label is not None:
        assert got["label"] == label


def test_a_multipart_jpeg_upload_is_read(client, reader):
    data, label = digit_png()
    jpeg = png(Image.open(io.BytesIO(data)).convert("RGB"), "JPEG")
    r = client.post("/api/predict", files={"image": ("digit.jpg", jpeg, "image/jpeg")})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["path"] == "digit.jpg" and len(got["top"]) == 3  # the default topk
    assert got["label"] == reader.read(jpeg)["label"]
    if label is not None:
        assert got["label"] == label


def test_topk_larger_than_the_classes_gives_every_class(client):
    data, _ = digit_png()
    r = client.post("/api/predict?topk=50", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 200 and len(r.json()["top"]) == 10
    assert sum(p for _, p in r.json()["top"]) == pytest.approx(1, abs=1e-3)


def test_multi_reads_a_row_of_characters(client, reader):
    data, label = digit_png(scale=4)
    one = Image.open(io.BytesIO(data))
    row = Image.new("L", (one.width * 3, one.height), 255)
    for i in range(3):
        row.paste(one, (i * one.width, 0))
    row_png = png(row)
    r = client.post("/api/predict?multi=true", content=row_png, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    got = r.json()
    want = reader.read_multi(row_png)
    assert got["text"] == want["text"] and len(got["chars"]) == len(want["chars"])
    for c in got["chars"]:
        assert np.array(c["image"]).shape == (28, 28) and c["label"] == c["top"][0][0]
    if label is not None:
        assert got["text"] == label * 3


def corrupt_png() -> bytes:
    data, _ = digit_png()
    return data[: len(data) // 2]  # a real header, then nothing


# Every kind of bad request: (what, request kwargs, status, words the error must contain).
BAD = [
    ("wrong type", dict(content=b"hello", headers={"content-type": "text/plain"}), 415, "text/plain"),
    ("no type", dict(content=b"hello"), 415, "content type"),
    ("form part not an image", dict(files={"image": ("notes.txt", b"hello", "text/plain")}), 415, "notes.txt"),
    ("form without image field", dict(files={"photo": ("d.png", b"x", "image/png")}), 400, "'image'"),
    ("empty", dict(content=b"", headers={"content-type": "image/png"}), 400, "empty"),
    ("empty form file", dict(files={"image": ("d.png", b"", "image/png")}), 400, "empty"),
    ("too big", dict(content=b"\x89PNG" + bytes(600_000), headers={"content-type": "image/png"}), 413, "MB"),
    ("too big, streamed", dict(content=iter([bytes(100_000)] * 6), headers={"content-type": "image/png"}),
     413, "MB"),
    ("not an image", dict(content=os.urandom(2000), headers={"content-type": "image/png"}), 422, ""),
    ("corrupt", dict(content=corrupt_png(), headers={"content-type": "image/png"}), 422, ""),
    ("blank paper", dict(content=png(Image.new("L", (200, 200), 255)), headers={"content-type": "image/png"}),
     422, ""),
    ("topk not a number", dict(params={"topk": "many"}, content=b"x", headers={"content-type": "image/png"}),
     422, "topk"),
    ("topk zero", dict(params={"topk": 0}, content=b"x", headers={"content-type": "image/png"}), 422, "topk"),
]


@pytest.mark.parametrize("what,kwargs,status,words", BAD, ids=[b[0] for b in BAD])
def test_a_bad_request_gets_a_clear_4xx_and_the_server_keeps_serving(client, what, kwargs, status, words):
    r = client.post("/api/predict", **kwargs)
    assert r.status_code == status, r.text
    message = r.json()["error"]
    assert words in message and "\n" not in message and "Traceback" not in message
    ok = client.post("/api/predict", content=digit_png()[0], headers={"content-type": "image/png"})
    assert ok.status_code == 200


def test_an_image_too_large_to_decode_is_refused(client, monkeypatch):
    monkeypatch.setattr("mnist_lit.serve.MAX_PIXELS", 100 * 100)
    r = client.post("/api/predict", content=png(Image.new("L", (200, 100), 255)),
                    headers={"content-type": "image/png"})
    assert r.status_code == 413 and "200x100 pixels" in r.json()["error"]


def test_a_crash_in_the_reader_is_a_json_500_without_a_traceback(reader):
    from fastapi.testclient import TestClient

    from mnist_lit.serve import create_app

    class Broken:
        classes, info = reader.classes, reader.info

        def read(self, image, topk=3):
            raise RuntimeError("a bug\nwith a long story")

    with TestClient(create_app(Broken()), raise_server_exceptions=False) as c:
        r = c.post("/api/predict", content=digit_png()[0], headers={"content-type": "image/png"})
        assert r.status_code == 500
        assert r.json() == {"error": "internal error (RuntimeError); the server log has the details"}
        assert c.get("/api/info").status_code == 200


def test_unknown_paths_and_methods_get_json_errors(client):
    assert client.get("/api/nothing").json() == {"error": "Not Found"}
    r = client.get("/api/predict")
    assert r.status_code == 405 and "error" in r.json()


def test_the_server_reads_without_lightning_and_a_bad_checkpoint_is_one_line(ckpt, tmp_path):
    # In a fresh process: load, read one image, then fail on a junk checkpoint; then look at sys.modules.
    (tmp_path / "d.png").write_bytes(digit_png()[0])
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from mnist_lit.predict import Reader\n"
        "from mnist_lit.serve import create_app, main\n"
        f"c = TestClient(create_app(Reader.from_checkpoint({str(ckpt)!r})))\n"
        f"r = c.post('/api/predict', content=open({str(tmp_path / 'd.png')!r}, 'rb').read(),"
        " headers={'content-type': 'image/png'})\n"
        "assert r.status_code == 200, r.text\n"
        f"assert main(['--ckpt', {str(tmp_path / 'junk.ckpt')!r}]) == 1\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr  # inference never imports training
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'junk.ckpt'} is not a checkpoint")


def test_serve_starts_with_the_shipped_reader_when_given_no_checkpoint():
    import json
    import urllib.request

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "mnist_lit.serve", "--port", "0"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("reading 0123456789 with CNN from ") and "reader.ckpt" in line, line
        url = line.split("open ")[1].split()[0]
        data, label = digit_png()
        request = urllib.request.Request(f"{url}/api/predict", data=data, headers={"Content-Type": "image/png"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
    finally:
        p.kill()
        p.wait(timeout=30)
    assert answer["label"] == (label or answer["label"]) and len(answer["image"]) == 28
