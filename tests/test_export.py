"""Export to ONNX and TorchScript: same outputs as PyTorch, any batch size, readable without torch."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mnist_lit.export import main
from mnist_lit.models import build
from mnist_lit.checkpoint import load_checkpoint
from mnist_lit.predict import Reader
from tests.conftest import ROOT, compose_train
from tests.conftest import SEVEN, TWO, draw, row


def batch(n=7, seed=0) -> np.ndarray:
    """Images like the ones the model reads: mostly dark, some bright strokes."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, 1, 28, 28)) ** 4).astype(np.float32)


@pytest.fixture(scope="module")
def cnn_checkpoint(tmp_path_factory):
    """A checkpoint of the CNN as mnist_lit.train writes it (random weights, BatchNorm statistics changed)."""
    net_cfg = OmegaConf.to_container(compose_train(["model=cnn"]).model, resolve=True)
    net = build(net_cfg)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # eval mode must use these, not the batch's statistics
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2)
    path = tmp_path_factory.mktemp("cnn") / "cnn.ckpt"
    torch.save({"hyper_parameters": {"net": net_cfg, "classes": list("abcdefghij")},
                "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("which", ["tiny_checkpoint", "cnn_checkpoint"])
def test_onnx_matches_pytorch_on_any_batch_size(which, request, tmp_path):
    ckpt = request.getfixturevalue(which)
    import onnxruntime as ort

    assert main(["--ckpt", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    net, meta = load_checkpoint(ckpt)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        x = batch(n)
        with torch.no_grad():
            want = net(torch.from_numpy(x)).numpy()
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
    stored = session.get_modelmeta().custom_metadata_map
    assert json.loads(stored["classes"]) == meta["classes"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_matches_pytorch_and_reads(cnn_checkpoint, tmp_path):
    out = tmp_path / "m.pt"
    assert main(["--ckpt", str(cnn_checkpoint), "--out", str(out)]) == 0  # format from the suffix
    net, _ = load_checkpoint(cnn_checkpoint)
    loaded = torch.jit.load(str(out))
    x = torch.from_numpy(batch(5))
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-5)
    scripted, original = Reader.load(out), Reader.from_checkpoint(cnn_checkpoint)
    assert scripted.classes == list("abcdefghij")
    assert scripted.read(draw([TWO]))["label"] == original.read(draw([TWO]))["label"]


@pytest.mark.slow
def test_predict_with_onnx_needs_neither_torch_nor_lightning_and_agrees(tiny_checkpoint, tmp_path):
    model = tmp_path / "model.onnx"
    assert main(["--ckpt", str(tiny_checkpoint), "--out", str(model)]) == 0
    draw([TWO]).save(tmp_path / "two.png")
    row([[SEVEN], [TWO]]).save(tmp_path / "row.png")
    # torch cannot be imported at all in this process: the ONNX path must not need it.
    code = ("import sys\nsys.modules['torch'] = None\nsys.modules['lightning'] = None\n"
            "from mnist_lit.predict import main\n"
            f"sys.exit(main(['--model', {str(model)!r}, '--json', {str(tmp_path / 'two.png')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    want = Reader.from_checkpoint(tiny_checkpoint).read(tmp_path / "two.png")
    assert got["label"] == want["label"] and abs(got["confidence"] - want["confidence"]) < 1e-4
    onnx_reader, ckpt_reader = Reader.load(model), Reader.from_checkpoint(tiny_checkpoint)
    assert onnx_reader.read_multi(tmp_path / "row.png")["text"] == ckpt_reader.read_multi(tmp_path / "row.png")["text"]
    assert onnx_reader.info["test_acc"] == ckpt_reader.info["test_acc"] and onnx_reader.classes == ckpt_reader.classes


def test_a_slim_checkpoint_reads_as_the_training_checkpoint_and_keeps_what_it_measured(tiny_checkpoint, tmp_path):
    assert main(["--ckpt", str(tiny_checkpoint), "--out", str(tmp_path / "slim.ckpt")]) == 0
    slim = torch.load(tmp_path / "slim.ckpt", weights_only=True)
    assert set(slim) == {"hyper_parameters", "state_dict", "info"} and "optimizer_states" not in slim
    assert (tmp_path / "slim.ckpt").stat().st_size < 0.5 * tiny_checkpoint.stat().st_size  # no optimizer state
    original, exported = Reader.from_checkpoint(tiny_checkpoint), Reader.load(tmp_path / "slim.ckpt")
    image = draw([TWO])
    assert exported.read(image)["top"] == original.read(image)["top"]
    # Copied anywhere, it still knows its dataset and test accuracy (a training checkpoint needs its run folder).
    assert exported.info == original.info and exported.info["test_acc"] is not None


def test_export_refuses_to_overwrite_and_bad_checkpoints_are_one_line(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "m.pt"
    out.write_text("the user's file")
    assert main(["--ckpt", str(tiny_checkpoint), "--out", str(out)]) == 1
    assert "--force" in capsys.readouterr().err and out.read_text() == "the user's file"
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    assert main(["--ckpt", str(tmp_path / "junk.ckpt"), "--out", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "text file, not a model" in err and len(err.splitlines()) == 1
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07\x12\x07pytorch junk")  # looks like ONNX, is not
    with pytest.raises(ValueError, match="not an ONNX model"):
        Reader.load(tmp_path / "junk.onnx")


@pytest.mark.slow
def test_models_are_told_apart_by_their_contents_and_other_files_named(cnn_checkpoint, tmp_path):
    for fmt in ("onnx", "torchscript"):
        assert main(["--ckpt", str(cnn_checkpoint), "--format", fmt, "--out", str(tmp_path / f"m.{fmt}")]) == 0
    want = Reader.load(cnn_checkpoint)._logits(batch())
    # Exported models read whatever their names say (a renamed download, a .ckpt that is really ONNX).
    for fmt in ("onnx", "torchscript"):
        misnamed = tmp_path / f"{fmt}.ckpt"
        misnamed.write_bytes((tmp_path / f"m.{fmt}").read_bytes())
        assert np.allclose(Reader.load(misnamed)._logits(batch()), want, atol=1e-4)
        with pytest.raises(ValueError, match=f"exported {fmt} model, not a checkpoint"):
            load_checkpoint(misnamed)  # export and eval need the training checkpoint itself
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(cnn_checkpoint.read_bytes())
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "notes.ckpt").write_text("my notes")
    (tmp_path / "digit.ckpt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    (tmp_path / "scan.ckpt").write_bytes(b"MM\x00*" + bytes(40))  # a big-endian TIFF
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.ckpt")  # a pickled nn.Module: never unpickled
    for path, words in ((run, f"a folder, not a model: pass a file in it, e.g. {run}/checkpoints/best.ckpt"),
                        (tmp_path / "empty.ckpt", "empty (0 bytes)"), (tmp_path / "notes.ckpt", "a text file"),
                        (tmp_path / "digit.ckpt", "a PNG image, not a model"),
                        (tmp_path / "scan.ckpt", "a TIFF image, not a model"),
                        (tmp_path / "module.ckpt", "pickled Python objects")):
        with pytest.raises(ValueError) as e:
            Reader.load(path)
        message = str(e.value)
        assert words in message and "\n" not in message and "weights_only" not in message, message


@pytest.mark.slow
def test_an_onnx_model_of_the_wrong_shape_is_one_line(cnn_checkpoint, tmp_path):
    import onnx

    assert main(["--ckpt", str(cnn_checkpoint), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    model = onnx.load(tmp_path / "m.onnx")
    for prop in model.metadata_props:  # 26 class names for a network with 10 outputs
        if prop.key == "classes":
            prop.value = json.dumps(list("abcdefghijklmnopqrstuvwxyz"))
    onnx.save(model, tmp_path / "wrong.onnx")
    with pytest.raises(ValueError, match=r"gives \(N, 26\) logits") as e:
        Reader.load(tmp_path / "wrong.onnx")
    assert "\n" not in str(e.value)


def test_a_foreign_onnx_model_with_two_inputs_is_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 10]) for n in ("x", "y"))
    out = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 10])
    model = helper.make_model(helper.make_graph([helper.make_node("Add", ["x", "y"], ["z"])], "add", [x, y], [out]),
                              opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"classes": json.dumps(list("0123456789"))})
    model.ir_version = 8
    onnx.save(model, tmp_path / "two_inputs.onnx")
    with pytest.raises(ValueError, match=r"takes \[\['N', 10\], \['N', 10\]\]") as e:
        Reader.load(tmp_path / "two_inputs.onnx")
    assert "\n" not in str(e.value)
