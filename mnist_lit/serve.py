"""Draw and read in the browser: python -m mnist_lit.serve [--ckpt PATH] [--host 127.0.0.1] [--port 8000]."""
import argparse
import io
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
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from mnist_lit.predict import DEFAULT_MODEL, Reader, ReadError, to_json

STATIC = Path(__file__).parent / "static"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp")
KINDS = "/".join(t.split("/")[1] for t in IMAGE_TYPES)  # png/jpeg/bmp/gif/webp, for messages
MAX_UPLOAD_MB = 10
# A 10 MB PNG of blank paper can decode to gigabytes; 40 megapixels is more than any phone photo.
MAX_PIXELS = 40_000_000


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_upload(request: Request, max_bytes: int) -> tuple[bytes, str]:
    """The image bytes and a name, from a raw image body or a multipart form's `image` field."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in IMAGE_TYPES and ctype != "multipart/form-data":
        raise HTTPException(415, f"content type {ctype or '(none)'} is not accepted: send a "
                                 f"{KINDS} image as the request "
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
                                     f"send a {KINDS} image")
        data, name = await upload.read(), upload.filename or "upload"
    if not data:
        raise HTTPException(400, "the image is empty (0 bytes): send the file's contents")
    return data, name


def check_pixels(data: bytes):
    """Refuses images too large to decode safely; reading only the header (the reader judges the rest)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Exception:  # not an image PIL knows: the reader says what is wrong with it
        return
    if w * h > MAX_PIXELS:
        raise HTTPException(413, f"the image is {w}x{h} pixels, over the limit of {MAX_PIXELS // 10**6} "
                                 "megapixels: scale it down first")


def create_app(reader: Reader, max_upload_mb: float = MAX_UPLOAD_MB) -> FastAPI:
    """The web app: the drawing page at /, GET /api/info and POST /api/predict."""
    max_bytes = int(max_upload_mb * 2**20)
    lock = threading.Lock()  # one reading at a time: the reader need not be thread-safe, and a page needs no more
    # No /docs: FastAPI's docs page loads its scripts from a CDN, and this server must work offline.
    app = FastAPI(title="mnist_lit", docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_params(request, exc):
        return error(422, "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in exc.errors()))

    @app.exception_handler(Exception)
    async def crash(request, exc):  # a bug, not a bad request: uvicorn logs its traceback, the client gets a line
        return error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    @app.get("/", include_in_schema=False)
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
        check_pixels(data)

        def run():
            with lock:
                read = reader.read_multi if multi else reader.read
                return read(data, topk=min(topk, len(reader.classes)))

        try:
            result = await run_in_threadpool(run)
        except ReadError as e:
            return error(422, str(e))
        return to_json(name, result, multi, image=True)  # predict --json's fields + the 28x28 images

    return app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_lit.serve",
                                     description="Serve a page to draw on and read with a trained checkpoint.")
    parser.add_argument("--ckpt", "--model", dest="ckpt", type=Path, default=DEFAULT_MODEL,
                        help="a checkpoint written by mnist_lit.train, or an exported .onnx/.pt (default: the "
                             "reader shipped with mnist_lit)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB, help="largest accepted upload")
    args = parser.parse_args(argv)
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
    config = uvicorn.Config(create_app(reader, args.max_upload_mb), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
