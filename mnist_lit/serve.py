"""Draw and read in the browser: python -m mnist_lit.serve [--ckpt PATH] [--host 127.0.0.1] [--port 8000]."""
import argparse
import io
import ipaddress
import os
import socket
import sys
import threading
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from mnist_lit.predict import DEFAULT_MODEL, Reader, ReadError, to_json
from mnist_lit.preprocess import FORMAT_NAMES, FORMATS

STATIC = Path(__file__).parent / "static"
# The Content-Types an image may be sent as (its contents decide what it is: preprocess.FORMATS).
IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp", "image/tiff", "image/heic",
               "image/heif", "image/avif", *(f"image/x-portable-{k}map" for k in ("any", "bit", "gray", "pix")))
MAX_UPLOAD_MB = 10
# A 10 MB PNG of blank paper can decode to gigabytes; 40 megapixels is more than any phone photo.
MAX_PIXELS = 40_000_000
READINGS = 2


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_upload(request: Request, max_bytes: int) -> tuple[bytes, str]:
    """The image bytes and a name, from a raw image body or a multipart form's `image` field."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in IMAGE_TYPES and ctype != "multipart/form-data":
        raise HTTPException(415, f"content type {ctype or '(none)'} is not accepted: send a "
                                 f"{FORMAT_NAMES} image as the request "
                                 "body, or as the form field 'image' of a multipart/form-data request")
    too_big = HTTPException(413, f"the upload is larger than {max_bytes / 2**20:g} MB: send a smaller image "
                                 "(or start the server with a larger --max-upload-mb)")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_big  # before reading a byte of it
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_big
    if ctype != "multipart/form-data":
        data, name = bytes(body), "upload"
    else:
        async def replay():  # the body was read (and its size checked) above; parse it from memory
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        form = await Request(request.scope, replay).form(max_files=1, max_fields=4)
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise HTTPException(400, "the multipart form has no file field 'image': "
                                     "send it as e.g. curl -F image=@digit.png")
        part_type = (upload.content_type or "").lower()
        if part_type not in (*IMAGE_TYPES, "application/octet-stream"):
            raise HTTPException(415, f"{upload.filename or 'the upload'} is {part_type}, not an image: "
                                     f"send a {FORMAT_NAMES} image")
        data, name = await upload.read(), upload.filename or "upload"
    if not data:
        raise HTTPException(400, "the image is empty (0 bytes): send the file's contents")
    return data, name


def check_image(data: bytes):
    """Refuses what is not an image in FORMATS, and images too large to decode, from the header alone."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as im:
            w, h = im.size
    except UnidentifiedImageError:  # whatever the Content-Type said: no other decoder runs on an upload
        raise HTTPException(415, f"the upload is not a {FORMAT_NAMES} image: send one of those") from None
    except Image.DecompressionBombError:  # over about 179 megapixels Pillow refuses before telling the size
        raise HTTPException(413, f"the image is over {2 * Image.MAX_IMAGE_PIXELS // 10**6} megapixels, over the "
                                 f"limit of {MAX_PIXELS // 10**6}: scale it down first") from None
    except Exception:  # a broken header: the reader says what is wrong with it
        return
    if w * h > MAX_PIXELS:
        raise HTTPException(413, f"the image is {w}x{h} pixels, over the limit of {MAX_PIXELS // 10**6} "
                                 "megapixels: scale it down first")


def host_of(netloc: str) -> str:
    """'example.org:8000' -> 'example.org', '[::1]:8000' -> '::1'."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def create_app(reader: Reader, max_upload_mb: float = MAX_UPLOAD_MB, allowed_hosts=None) -> FastAPI:
    """The web app: the drawing page at /, GET /api/info and POST /api/predict.

    allowed_hosts: the host names requests may address (None: any); a page elsewhere cannot reach the server by
    pointing its own name at this address (DNS rebinding), and cross-origin uploads are refused.
    """
    max_bytes = int(max_upload_mb * 2**20)
    # Two readings at a time (the readers are thread-safe): one slow image does not hold up the next request, and
    # at most two large images are decoded at once (memory).
    readings = threading.BoundedSemaphore(READINGS)
    # No /docs: FastAPI's docs page loads its scripts from a CDN, and this server must work offline.
    app = FastAPI(title="mnist_lit", docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def same_site_only(request: Request, call_next):
        host = request.headers.get("host", "")
        if allowed_hosts is not None and host_of(host) not in allowed_hosts:
            return error(400, f"this server does not answer to host {host_of(host) or '(none)'}: open it as "
                              f"{' or '.join(sorted(allowed_hosts))}, or start it with --allowed-host "
                              f"{host_of(host) or 'NAME'}")
        origin = request.headers.get("origin")
        if request.method == "POST" and origin is not None and origin.split("://", 1)[-1].lower() != host.lower():
            return error(403, f"upload from another site ({origin}) refused: use the page this server serves")
        return await call_next(request)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_params(request, exc):
        return error(422, "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in exc.errors()))

    @app.exception_handler(Exception)
    async def crash(request, exc):  # a bug, not a bad request: uvicorn logs its traceback, the client gets a line
        return error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/info")
    async def info():
        """The model, its dataset, class names and test accuracy, and this server's upload limits."""
        return {**reader.info, "max_upload_bytes": max_bytes, "content_types": list(IMAGE_TYPES)}

    @app.post("/api/predict")
    async def predict(request: Request, topk: int = Query(3, ge=1), multi: bool = False):
        """Reads an image (raw body or multipart field 'image'); multi=true reads a row of characters."""
        data, name = await read_upload(request, max_bytes)
        check_image(data)

        def run():
            with readings:
                read = reader.read_multi if multi else reader.read
                return read(data, topk=min(topk, len(reader.classes)))

        try:
            result = await run_in_threadpool(run)
        except ReadError as e:
            return error(422, str(e))
        return to_json(name, result, multi, image=True)  # predict --json's fields + the 28x28 images

    return app


def allowed_hosts(host: str, extra) -> set | None:
    """The host names a server listening on `host` answers to (None: any)."""
    if host in ("0.0.0.0", "::", "") and not extra:
        return None  # listening everywhere: clients use names this machine cannot know
    names = {host.strip("[]").lower(), *(h.lower() for h in extra or ())}
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            names |= {"localhost", "127.0.0.1", "::1"}
    except ValueError:  # a name, such as localhost
        if host == "localhost":
            names |= {"127.0.0.1", "::1"}
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_lit.serve",
                                     description="Serve a page to draw on and read with a trained checkpoint.")
    parser.add_argument("--ckpt", "--model", dest="ckpt", type=Path, default=DEFAULT_MODEL,
                        help="a checkpoint written by mnist_lit.train, or an exported .onnx/.pt (default: the "
                             "reader shipped with mnist_lit)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB, help="largest accepted upload")
    parser.add_argument("--allowed-host", action="append", default=None, metavar="NAME",
                        help="a host name clients may use, repeatable (default: the --host address, and "
                             "localhost for a loopback one; any name when listening on all addresses)")
    args = parser.parse_args(argv)
    if not args.max_upload_mb > 0:  # also refuses nan
        parser.error(f"--max-upload-mb must be a number of megabytes > 0, not {args.max_upload_mb}")
    try:
        reader = Reader.load(args.ckpt)
    except (ReadError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"error: reading {args.ckpt} needs {e.name}: pip install 'mnist_lit[export]'", file=sys.stderr)
        return 1

    try:  # bound here, so that a port in use is one clear line and --port 0 picks a free one
        family = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((args.host, args.port), family=family)
    except socket.gaierror as e:
        print(f"error: --host {args.host}: {e.strerror}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port}: {os.strerror(e.errno) if e.errno else e}: "
              "stop what uses it or pass another --port", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    info = reader.info
    acc = f", test accuracy {info['test_acc']:.1%}" if info.get("test_acc") is not None else ""
    print(f"reading {''.join(reader.classes)} with {str(info.get('model')).split('.')[-1]} from {args.ckpt}{acc}: "
          f"open {url} (Ctrl+C stops)", flush=True)
    allowed = allowed_hosts(args.host, args.allowed_host)
    config = uvicorn.Config(create_app(reader, args.max_upload_mb, allowed), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
