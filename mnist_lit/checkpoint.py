"""Checkpoint files, read with torch alone (no Lightning): what a model file is, its network, whether it fits a run."""
import json
import zipfile
from pathlib import Path

from mnist_lit.preprocess import ReadError

IMAGE_SIGNATURES = {"PNG": b"\x89PNG", "JPEG": b"\xff\xd8\xff", "GIF": b"GIF8", "BMP": b"BM", "WebP": b"RIFF",
                    "TIFF": (b"II*\x00", b"MM\x00*")}


class ModelError(ReadError):
    """The checkpoint or exported model cannot be used; the one-line message says why and what to do."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or does not fit this run; the message says how to fix it."""


def first_line(e: Exception) -> str:
    """An exception's first line (at most 200 characters), or its type when it has no message."""
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def model_kind(path) -> str:
    """What a model file holds, by its contents: 'onnx', 'torchscript' or 'checkpoint'; ModelError for anything else."""
    path = Path(path)
    if path.is_dir():
        best = next((str(c) for c in (path / "checkpoints" / "best.ckpt", path / "best.ckpt") if c.is_file()), None)
        raise ModelError(f"{path} is a folder, not a model: pass a file in it" + (f", e.g. {best}" if best else
                         ": a .ckpt written by mnist_lit.train (<run>/checkpoints/best.ckpt) or an exported model"))
    if not path.is_file():
        return "onnx" if path.suffix.lower() == ".onnx" else (
            "torchscript" if path.suffix.lower() in (".pt", ".ts", ".torchscript") else "checkpoint")  # "not found"
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except PermissionError:
        raise ModelError(f"{path}: permission denied: make the file readable (chmod +r) or copy it") from None
    if not head:
        raise ModelError(f"{path} is empty (0 bytes): an interrupted copy or save? Copy or export it again")
    if zipfile.is_zipfile(path):  # torch.save's files and TorchScript's are both zip archives
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        return "checkpoint"
    if head[:1] == b"\x80":  # a pickle: torch.save's legacy format
        return "checkpoint"
    if head[:1] == b"\x08":  # protobuf field 1 as a varint: ONNX's ModelProto starts with its ir_version
        return "onnx"
    image = next((k for k, sig in IMAGE_SIGNATURES.items() if head.startswith(sig)), None)
    if image:
        raise ModelError(f"{path} is a {image} image, not a model: pass it as an image to read, and the model with "
                         f"--ckpt (or none, for the shipped reader)")
    try:
        head.decode("utf-8")
        what = "a text file"
    except UnicodeDecodeError:
        what = "neither a checkpoint nor an exported model"
    raise ModelError(f"{path} is {what}, not a model: pass a .ckpt written by mnist_lit.train or a model written "
                     f"by mnist_lit.export")


def read(path) -> dict:
    """The contents of a mnist_lit checkpoint (torch.load with weights_only=True); ModelError for anything else."""
    import torch

    path = Path(path)
    if not path.is_file() and not path.is_dir():
        raise ModelError(f"checkpoint {path} not found: pass a .ckpt written by mnist_lit.train, "
                         f"e.g. outputs/<date>/<time>/checkpoints/best.ckpt")
    kind = model_kind(path)
    if kind != "checkpoint":
        raise ModelError(f"{path} is an exported {kind} model, not a checkpoint: pass the .ckpt written by "
                         f"mnist_lit.train (predict, eval and serve read exported models too)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e):  # pickled objects: never loaded, they can run code
            raise ModelError(f"{path} holds pickled Python objects (a whole nn.Module?), which mnist_lit never "
                             f"loads: use a .ckpt written by mnist_lit.train or mnist_lit.export --format ckpt") from None
        raise ModelError(f"{path} is not a checkpoint torch can load ({first_line(e)}): pass a .ckpt written "
                         f"by mnist_lit.train, or an exported .onnx / TorchScript .pt file") from None
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or "net" not in hp or "classes" not in hp or "state_dict" not in ckpt:
        raise ModelError(f"{path} is not a mnist_lit checkpoint (it has no network config, class names and "
                         f"weights): pass a .ckpt written by mnist_lit.train")
    return ckpt


def run_info(ckpt: Path) -> dict:
    """The dataset name and test accuracy of the run that wrote <run>/checkpoints/<name>.ckpt, when known."""
    info = {"dataset": None, "test_acc": None}
    if ckpt.resolve().parent.name != "checkpoints":  # copied elsewhere: nothing beside it describes its run
        return info
    run = ckpt.resolve().parent.parent
    try:
        info["test_acc"] = float(json.loads((run / "metrics.json").read_text())["test/acc"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        import yaml  # comes with Hydra; the run's composed config names the dataset

        info["dataset"] = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["data"]["name"]
    except Exception:  # no Hydra folder beside the checkpoint (copied elsewhere), or no yaml: unknown
        pass
    return info


def load_checkpoint(path):
    """A checkpoint of mnist_lit.train -> (its network in eval mode, {'classes', 'model', 'net', 'framing', 'dataset',
    'test_acc'})."""
    from mnist_lit.models import build

    path = Path(path)
    ckpt = read(path)
    hp = ckpt["hyper_parameters"]
    try:
        net = build(hp["net"])
        net.load_state_dict({k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")})
    except (ValueError, TypeError, RuntimeError) as e:
        raise ModelError(f"{path}: its weights do not fit its network ({first_line(e)}): "
                         f"the checkpoint is damaged or from another version of mnist_lit; train again") from None
    info = ckpt.get("info") if isinstance(ckpt.get("info"), dict) else run_info(path)  # a slim export has its own
    meta = {"classes": [str(c) for c in hp["classes"]], "model": hp["net"].get("_target_"), "net": hp["net"],
            "framing": hp.get("framing", "mnist"), "dataset": info.get("dataset"), "test_acc": info.get("test_acc")}
    return net.eval(), meta


def check_compatible(ckpt_path: Path, net: dict, classes: list) -> int | None:
    """Raises CheckpointError unless ckpt_path is a readable checkpoint of the same network and classes; returns the
    epochs it has trained."""
    if not ckpt_path.is_file():
        raise CheckpointError(f"checkpoint {ckpt_path} not found: pass ckpt_path=<run>/checkpoints/last.ckpt "
                              f"or resume=<run folder> of an existing run")
    try:
        ckpt = read(ckpt_path)
    except ModelError as e:
        why = str(e).removeprefix(f"{ckpt_path} ").split(":")[0].removeprefix("is ")  # "a text file, not a model"
        raise CheckpointError(f"{ckpt_path} is not a readable mnist_lit checkpoint ({why}): use another "
                              f"checkpoint, e.g. <run>/checkpoints/last.ckpt") from None
    hp = ckpt["hyper_parameters"]
    if hp.get("classes") != classes:
        raise CheckpointError(f"{ckpt_path} was trained on classes {''.join(map(str, hp.get('classes') or []))} "
                              f"but this run's data has {''.join(map(str, classes))}: pass the data=... of that run")
    if hp.get("net") != net:
        diff = sorted(k for k in {*net, *hp.get("net", {})} if net.get(k) != hp.get("net", {}).get(k))
        raise CheckpointError(f"{ckpt_path} holds a different network (model.{', model.'.join(diff)} differ): "
                              f"pass the model overrides of that run, or resume=<run folder> to reuse its config")
    progress = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("total", {})
    return progress.get("processed")
