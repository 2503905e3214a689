"""Read handwriting: python -m mnist_lit.predict [--ckpt PATH] [--json] [--topk K] [--multi] IMAGE_OR_FOLDER...

Without --ckpt it reads with the reader shipped with the package (mnist_lit/reader.ckpt). Also a Python API:
`Reader.load().read("digit.jpg")`, `Reader.load("best.ckpt")`. A Lightning checkpoint is read with torch alone
(no Lightning); an exported `.onnx` file with onnxruntime alone (no torch).
"""
import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_lit.checkpoint import ModelError, first_line, load_checkpoint, model_kind
from mnist_lit.preprocess import FORMAT_NAMES, IMAGE_SUFFIXES, SIZE, ReadError, prepare, preprocess_multi

__all__ = ["Reader", "ReadError", "ModelError", "DEFAULT_MODEL", "main"]


# The reader shipped with the package: a small CNN trained by experiment=reader (see the README).
DEFAULT_MODEL = Path(__file__).parent / "reader.ckpt"


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


class Reader:
    """A trained classifier plus MNIST-style preprocessing: reads characters from images of any kind."""

    def __init__(self, logits_fn, classes, info: dict, framing: str = "mnist"):
        self._logits = logits_fn  # float32 (N, 1, 28, 28) in [0, 1] -> (N, num_classes) logits
        self.classes = [str(c) for c in classes]
        self.framing = framing  # how the training set framed its characters: preprocess frames them alike
        self.info = {**info, "classes": self.classes, "framing": framing}

    @classmethod
    def load(cls, path=DEFAULT_MODEL) -> "Reader":
        """A Lightning checkpoint, an ONNX file or a TorchScript file, told apart by their contents (whatever the
        name); without a path, the reader shipped with mnist_lit."""
        kind = model_kind(path)
        if kind == "onnx":
            return cls.from_onnx(path)
        if kind == "torchscript":
            return cls.from_torchscript(path)
        return cls.from_checkpoint(path)

    @classmethod
    def from_checkpoint(cls, path, device="cpu") -> "Reader":
        """Rebuilds the network of a checkpoint written by mnist_lit.train (torch only, weights_only=True)."""
        import torch

        net, meta = load_checkpoint(path)
        net.to(device)

        @torch.inference_mode()
        def logits(x):
            return net(torch.from_numpy(x).to(device)).float().cpu().numpy()

        classes, framing, _ = meta.pop("classes"), meta.pop("framing"), meta.pop("net")
        return cls(logits, classes, meta, framing)

    @classmethod
    def from_onnx(cls, path) -> "Reader":
        """Reads with an ONNX file written by mnist_lit.export, through onnxruntime alone (no torch)."""
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model {path} not found: write one with python -m mnist_lit.export "
                             f"--ckpt best.ckpt --format onnx --out {path.name}")
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelError(f"{path} is not an ONNX model onnxruntime can load "
                             f"({first_line(e)}): export it again") from None
        meta = session.get_modelmeta().custom_metadata_map
        if "classes" not in meta:
            raise ModelError(f"{path} has no class names in its metadata: export it with python -m mnist_lit.export")
        inputs, out = session.get_inputs(), session.get_outputs()
        classes = json.loads(meta["classes"])
        fits = lambda shape, want: len(shape) == len(want) and all(  # noqa: E731
            not isinstance(a, int) or a == b for a, b in zip(shape, want))  # symbolic sizes (batch) fit anything
        if not (len(inputs) == 1 and fits(inputs[0].shape, ["N", 1, SIZE, SIZE]) and len(out) == 1
                and fits(out[0].shape, ["N", len(classes)])):
            raise ModelError(f"{path} takes {[i.shape for i in inputs]} and gives {[o.shape for o in out]}, but a "
                             f"reader takes (N, 1, {SIZE}, {SIZE}) images and gives (N, {len(classes)}) logits for "
                             f"its {len(classes)} classes: export it with python -m mnist_lit.export")
        name = inputs[0].name

        def logits(x):
            return session.run(None, {name: x})[0]

        info = {k: json.loads(meta[k]) for k in ("model", "dataset", "test_acc") if k in meta}
        framing = json.loads(meta.get("framing", '"mnist"'))
        return cls(logits, classes, {"model": None, "dataset": None, "test_acc": None, **info},
                   framing)

    @classmethod
    def from_torchscript(cls, path) -> "Reader":
        """Reads with a TorchScript file written by mnist_lit.export (torch only)."""
        import torch

        path = Path(path)
        extra = {"mnist_lit.json": ""}
        if not path.is_file():
            raise ModelError(f"model {path} not found: write one with python -m mnist_lit.export "
                             f"--ckpt best.ckpt --format torchscript --out {path.name}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch 2.9+ deprecates TorchScript
                net = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as e:
            raise ModelError(f"{path} is not a TorchScript model torch can load "
                             f"({first_line(e)}): "
                             f"export it again with python -m mnist_lit.export") from None
        if not extra["mnist_lit.json"]:
            raise ModelError(f"{path} has no class names inside: export it with python -m mnist_lit.export")
        meta = json.loads(extra["mnist_lit.json"])
        net.eval()

        @torch.inference_mode()
        def logits(x):
            return net(torch.from_numpy(x)).float().numpy()

        classes, framing = meta.pop("classes"), meta.pop("framing", "mnist")
        return cls(logits, classes, meta, framing)

    def _probs(self, images: list) -> np.ndarray:
        """28x28 float images in [0, 1] (white ink on black) -> the class probabilities, a row per image."""
        return _softmax(np.asarray(self._logits(np.stack(images).astype(np.float32)[:, None]), dtype=np.float64))

    def classify(self, images: list, topk: int = 3) -> list[dict]:
        """28x28 float images in [0, 1] (white ink on black) -> read()'s dicts, one per image, in one batch."""
        probs = self._probs(images)
        out = []
        for img, p in zip(images, probs):
            order = np.argsort(-p, kind="stable")[:max(1, topk)]
            top = [[self.classes[i], float(p[i])] for i in order]
            out.append({"label": top[0][0], "confidence": top[0][1], "top": top, "image": img})
        return out

    def read(self, image, topk=3) -> dict:
        """One character: {'label', 'confidence', 'top': [[label, prob], ...], 'image': the 28x28 input}, and a 'hint'
        when the image looks like several characters side by side."""
        img, row = prepare(image, self.framing)
        out = self.classify([img], topk)[0]
        if row:
            out["hint"] = "this looks like several characters side by side: read them all with --multi"
        return out

    def read_multi(self, image, topk=3) -> dict:
        """A row of characters, left to right: {'text', 'chars': [read()'s dict plus 'box': [x0, y0, x1, y1]]}."""
        found = preprocess_multi(image, self.framing, lambda images: self._probs(images).max(1))
        chars = self.classify([img for _, img in found], topk)
        for c, (box, _) in zip(chars, found):
            c["box"] = list(box)
        return {"text": "".join(c["label"] for c in chars), "chars": chars}


def image_paths(args: list[str]) -> list[tuple[str, str | None]]:
    """Files and folders -> [(path, error or None)]: a folder gives its images, sorted by name."""
    out = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            out += [(str(f), None) for f in found]
            if not found:
                out.append((a, f"folder {a} holds no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images"))
        else:
            out.append((a, None))
    return out


def _save(img: np.ndarray, path: Path):
    Image.fromarray(np.round(img * 255).astype(np.uint8), "L").save(path)


def to_json(path: str, result: dict, multi: bool, image: bool = False) -> dict:
    """A read() or read_multi() result as `predict --json` prints it; image=True adds the 28x28 images (serve)."""
    def char(c):
        out = {k: v for k, v in c.items() if k != "image"}
        if image:
            out["image"] = np.round(np.asarray(c["image"], dtype=float), 3).tolist()
        return out

    if multi:
        return {"path": path, "text": result["text"], "chars": [char(c) for c in result["chars"]]}
    return {"path": path, **char(result)}


def _line(path: str, result: dict, multi: bool) -> str:
    if multi:
        chars = ", ".join(f"{c['label']} {c['confidence']:.3f}" for c in result["chars"])
        return f"{path}: {result['text']}  ({chars})"
    others = ", ".join(f"{label} {p:.3f}" for label, p in result["top"][1:])
    hint = f"  [{result['hint']}]" if "hint" in result else ""
    return f"{path}: {result['label']} {result['confidence']:.3f}" + (f"  (then {others})" if others else "") + hint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lit.predict",
        description="Read handwritten characters from images of any size and kind with a trained model.")
    parser.add_argument("--ckpt", "--model", dest="model", type=Path, metavar="PATH", default=DEFAULT_MODEL,
                        help="a checkpoint written by mnist_lit.train (.ckpt), or a model written by "
                             "mnist_lit.export (.onnx: needs only onnxruntime; .pt: TorchScript); default: the "
                             "reader shipped with mnist_lit")
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help=f"{FORMAT_NAMES} files, or folders of them")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--topk", type=int, default=3, help="how many of the likeliest labels to give (default 3)")
    parser.add_argument("--multi", action="store_true",
                        help="each image holds a row of characters (e.g. a year): read them left to right")
    parser.add_argument("--show-preprocessed", type=Path, metavar="DIR",
                        help="write the 28x28 images the model saw into DIR (as <image name>.png, "
                             "<image name>_<n>.png with --multi)")
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f"--topk {args.topk}: give 1 or more")
    try:
        reader = Reader.load(args.model)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"error: reading {args.model} needs {e.name}: pip install 'mnist_lit[export]'", file=sys.stderr)
        return 1
    topk = min(args.topk, len(reader.classes))
    show = args.show_preprocessed
    if show:
        if show.exists() and not show.is_dir():
            print(f"error: --show-preprocessed {show} is a file: give a folder", file=sys.stderr)
            return 1
        try:
            show.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            print(f"error: --show-preprocessed {show}: {e.strerror}: give a folder you can write", file=sys.stderr)
            return 1
    written: set = set()
    failed = 0
    for path, error in image_paths(args.images):
        try:
            if error:
                raise ReadError(error)
            result = reader.read_multi(path, topk) if args.multi else reader.read(path, topk)
        except ReadError as e:
            failed += 1
            message = str(e) if path in str(e) else f"{path}: {e}"
            if args.json:
                print(json.dumps({"path": path, "error": message}), flush=True)
            else:
                print(f"error: {message}", file=sys.stderr, flush=True)
            continue
        if show:
            images = [c["image"] for c in result["chars"]] if args.multi else [result["image"]]
            stem = Path(path).stem
            for n, img in enumerate(images):
                name = f"{stem}_{n}" if args.multi else stem
                while name + ".png" in written:  # two inputs with one name (from different folders)
                    name += "_"
                written.add(name + ".png")
                if (show / f"{name}.png").exists():
                    print(f"note: replacing {show / name}.png", file=sys.stderr)
                _save(img, show / f"{name}.png")
        if args.json:
            print(json.dumps(to_json(path, result, args.multi)), flush=True)
        else:
            print(_line(path, result, args.multi), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
