"""The web server's API, through the framework's test client: good images, and every kind of bad request."""
import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, digit_png, encoded

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
    jpeg = encoded(Image.open(io.BytesIO(data)).convert("RGB"), "JPEG")
    r = client.post("/api/predict", files={"image": ("digit.jpg", jpeg, "image/jpeg")})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["path"] == "digit.jpg" and len(got["top"]) == 3  # the default topk
    assert got["label"] == reader.read(jpeg)["label"]
    if label is not None:
        assert got["label"] == label


@pytest.mark.parametrize("fmt, ctype", [("TIFF", "image/tiff"), ("HEIF", "image/heic"), ("AVIF", "image/avif"),
                                         ("PPM", "image/x-portable-graymap")])
def test_scanner_and_phone_formats_are_read_as_a_body_and_in_a_form(client, reader, fmt, ctype):
    data, label = digit_png()
    image = encoded(Image.open(io.BytesIO(data)).convert("RGB"), fmt)
    want = reader.read(data)["label"]
    for kwargs in (dict(content=image, headers={"content-type": ctype}),
                   dict(files={"image": ("scan", image, "application/octet-stream")})):
        r = client.post("/api/predict", **kwargs)
        assert r.status_code == 200, r.text
        assert r.json()["label"] == want and (label is None or want == label)


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
    row_png = encoded(row)
    r = client.post("/api/predict?multi=true", content=row_png, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    got = r.json()
    want = reader.read_multi(row_png)
    assert got["text"] == want["text"] and len(got["chars"]) == len(want["chars"])
    for c in got["chars"]:
        assert np.array(c["image"]).shape == (28, 28) and c["label"] == c["top"][0][0]
    if label is not None:
        assert got["text"] == label * 3


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (its data is a few bytes): a decompression bomb's header."""
    data, _ = digit_png()
    ihdr = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def other_format(fmt: str) -> bytes:
    return encoded(Image.new("RGB", (40, 40), "white"), fmt)


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
    ("not an image", dict(content=os.urandom(2000), headers={"content-type": "image/png"}), 415, "not a PNG"),
    # Only the documented formats are decoded, whatever the Content-Type says.
    ("TGA sent as PNG", dict(content=other_format("TGA"), headers={"content-type": "image/png"}), 415, "HEIC"),
    ("ICO", dict(content=other_format("ICO"), headers={"content-type": "image/png"}), 415, "not a PNG"),
    ("EPS", dict(content=b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", headers={"content-type": "image/png"}),
     415, "not a PNG"),
    ("TGA in a form", dict(files={"image": ("d.tga", other_format("TGA"), "application/octet-stream")}), 415, ""),
    ("over Pillow's bomb limit", dict(content=png_claiming(20_000, 10_000), headers={"content-type": "image/png"}),
     413, "megapixels"),
    ("corrupt", dict(content=corrupt_png(), headers={"content-type": "image/png"}), 422, ""),
    ("blank paper", dict(content=encoded(Image.new("L", (200, 200), 255)), headers={"content-type": "image/png"}),
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
    r = client.post("/api/predict", content=encoded(Image.new("L", (200, 100), 255)),
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


@pytest.mark.slow
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
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'junk.ckpt'} is a text file, not a model")


@pytest.mark.slow
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


def test_a_huge_image_within_the_limit_is_read_at_the_resolution_reading_needs(client, reader):
    data, label = digit_png(scale=8)  # 224 x 224: the same digit at 27x its size is 6048 x 6048 (36.6 MP)
    big = Image.open(io.BytesIO(data)).resize((6048, 6048), Image.NEAREST)
    r = client.post("/api/predict", content=encoded(big), headers={"content-type": "image/png"})
    assert r.status_code == 200 and r.json()["label"] == reader.read(data)["label"]


def test_the_server_answers_only_its_own_host_names_and_same_site_uploads(reader):
    from fastapi.testclient import TestClient

    from mnist_lit.serve import allowed_hosts, create_app

    assert allowed_hosts("127.0.0.1", None) == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts("0.0.0.0", None) is None and allowed_hosts("0.0.0.0", ["box.lan"]) == {"0.0.0.0", "box.lan"}
    body = dict(content=digit_png()[0], headers={"content-type": "image/png"})
    with TestClient(create_app(reader, allowed_hosts=allowed_hosts("127.0.0.1", None)),
                    base_url="http://127.0.0.1:8000") as c:
        assert c.get("/").status_code == 200 and c.head("/").status_code == 200
        assert c.post("/api/predict", **body).status_code == 200
        same = c.post("/api/predict", content=body["content"],
                      headers={**body["headers"], "origin": "http://127.0.0.1:8000"})
        assert same.status_code == 200
        # DNS rebinding: a page at attacker.example whose name now points at 127.0.0.1.
        r = c.get("/api/info", headers={"host": "attacker.example:8000"})
        assert r.status_code == 400 and "--allowed-host attacker.example" in r.json()["error"]
        # A form posted from another site's page: the browser sends that page's origin.
        r = c.post("/api/predict", content=body["content"], headers={**body["headers"], "origin": "https://evil.example"})
        assert r.status_code == 403 and "evil.example" in r.json()["error"]
    with TestClient(create_app(reader, allowed_hosts=allowed_hosts("::1", None)), base_url="http://[::1]:8000") as c:
        assert c.get("/api/info").status_code == 200


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_a_bad_upload_limit_is_one_line(value, capsys):
    from mnist_lit.serve import main

    with pytest.raises(SystemExit):
        main(["--max-upload-mb", value])
    assert "--max-upload-mb must be" in capsys.readouterr().err


def grid_png(k: int) -> bytes:
    """k x k small black squares on white: k*k separate pieces of ink."""
    a = np.full((k * 12 + 8, k * 12 + 8), 255, np.uint8)
    for i in range(k):
        for j in range(k):
            a[4 + 12 * i:8 + 12 * i, 4 + 12 * j:8 + 12 * j] = 0
    return encoded(Image.fromarray(a))


@pytest.mark.slow
def test_hostile_uploads_do_not_stall_the_server_or_its_memory():
    """A bounded load test on loopback: hostile uploads, back to back, while a user's requests are timed."""
    import threading
    import time
    import urllib.error
    import urllib.request

    huge = np.full((6600, 6000), 255, np.uint8)
    huge[2000:4600, 2800:3300] = 0
    page = encoded(Image.fromarray(huge))
    hostile = [("/api/predict?multi=true", grid_png(40)), ("/api/predict", grid_png(40)),
               ("/api/predict", page), ("/api/predict", other_format("TGA")),
               ("/api/predict", png_claiming(20_000, 10_000)), ("/api/predict?multi=true", page)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "mnist_lit.serve", "--port", "0"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def post(path, data):
        request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "image/png"})
        start = time.perf_counter()
        try:
            status = urllib.request.urlopen(request, timeout=60).status
        except urllib.error.HTTPError as e:
            status = e.code
        return status, time.perf_counter() - start

    try:
        url = p.stdout.readline().split("open ")[1].split()[0]
        post("/api/predict", digit_png()[0])  # warm
        hostile_times, normal_times, done = [], [], threading.Event()

        def attack():
            while not done.is_set():
                for path, data in hostile:
                    hostile_times.append((path, *post(path, data)))

        attacker = threading.Thread(target=attack)
        attacker.start()
        for _ in range(12):
            normal_times.append(post("/api/predict", digit_png()[0]))
            time.sleep(0.1)
        done.set()
        attacker.join(timeout=120)
        peak_mb = int(next(line.split()[1] for line in open(f"/proc/{p.pid}/status") if line.startswith("VmHWM"))) / 1024
    finally:
        p.kill()
        p.wait(timeout=30)
    assert all(status == 200 for status, _ in normal_times)
    assert max(t for _, t in normal_times) < 1.0, normal_times
    assert len(hostile_times) >= len(hostile) and max(t for *_, t in hostile_times) < 2.0, hostile_times
    assert {s for _, s, _ in hostile_times} <= {200, 413, 415, 422}
    assert peak_mb < 1024, peak_mb
