"""Export a checkpoint's network: python -m mnist_lit.export --ckpt PATH --format onnx|torchscript|ckpt --out FILE.

ONNX and TorchScript take float32 images (N, *the network's in_shape, e.g. 1, 28, 28) in [0, 1], any batch size
N, and return logits; the class names travel inside the file (ONNX metadata_props, a TorchScript extra file), so
`python -m mnist_lit.predict --model FILE` reads with it alone. `ckpt` is the checkpoint less its training state
(optimizer, callbacks): the network's config and weights, its classes and framing, and what its run measured;
mnist_lit/reader.ckpt, the reader shipped with the package, is one.
"""
import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

from mnist_lit.checkpoint import ModelError, load_checkpoint

FORMATS = ("onnx", "torchscript", "ckpt")


def example(net: torch.nn.Module) -> torch.Tensor:
    """A batch of two blank inputs of the shape the checkpoint's network takes (its config's in_shape)."""
    return torch.zeros(2, *net.in_shape)


def described(meta: dict) -> dict:
    """What ONNX and TorchScript files carry: the classes, framing and what the run measured (not the config)."""
    return {k: v for k, v in meta.items() if k != "net"}


def export_onnx(net: torch.nn.Module, meta: dict, out: Path):
    """ONNX with a dynamic batch dimension; each metadata value is stored as JSON under its key."""
    import onnx

    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(net, (example(net),), dynamo=True, input_names=["image"],
                                output_names=["logits"], dynamic_shapes=({0: batch},), verbose=False)
    model = program.model_proto  # weights inline: one self-contained file
    for key, value in described(meta).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def export_torchscript(net: torch.nn.Module, meta: dict, out: Path):
    """TorchScript (traced); the metadata is the extra file mnist_lit.json inside the archive."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.9+ deprecates TorchScript; the issue asks for it
        traced = torch.jit.trace(net, example(net))
        torch.jit.save(traced, str(out), _extra_files={"mnist_lit.json": json.dumps(described(meta))})


def export_ckpt(net: torch.nn.Module, meta: dict, out: Path):
    """The weights and what reading needs, in the layout of a training checkpoint (loads with weights_only=True)."""
    hp = {"net": meta["net"], "classes": meta["classes"], "framing": meta["framing"]}
    state = {f"net.{k}": v.detach().clone() for k, v in net.state_dict().items()}
    info = {"dataset": meta.get("dataset"), "test_acc": meta.get("test_acc")}
    torch.save({"hyper_parameters": hp, "state_dict": state, "info": info}, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_lit.export",
                                     description="Export a trained checkpoint to ONNX, TorchScript, or a "
                                                 "checkpoint with just what reading needs.")
    parser.add_argument("--ckpt", required=True, type=Path, help="a checkpoint written by mnist_lit.train")
    parser.add_argument("--format", choices=FORMATS, help="default: from --out's suffix (.onnx, .pt, .ckpt)")
    parser.add_argument("--out", required=True, type=Path, help="the file to write, e.g. model.onnx")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    fmt = args.format or {".onnx": "onnx", ".ckpt": "ckpt"}.get(args.out.suffix.lower(), "torchscript")
    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists: pass --force to replace it, or another --out", file=sys.stderr)
        return 1
    try:
        net, meta = load_checkpoint(args.ckpt)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        try:
            export_onnx(net, meta, args.out)
        except ImportError as e:
            print(f"error: ONNX export needs {e.name}: pip install 'mnist_lit[export]'", file=sys.stderr)
            return 1
    elif fmt == "ckpt":
        export_ckpt(net, meta, args.out)
    else:
        export_torchscript(net, meta, args.out)
    shape = ", ".join(map(str, net.in_shape))
    takes = "" if fmt == "ckpt" else f", any batch size of (N, {shape}) images in [0, 1]"
    print(f"wrote {args.out} ({fmt}, {len(meta['classes'])} classes{takes}): "
          f"python -m mnist_lit.predict --model {args.out} IMAGE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
