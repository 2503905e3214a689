"""On a CUDA GPU (skipped elsewhere): training with trainer=gpu, augmentation and reading on the device.

Run by `make gpu-check` (.ci/gpu-check) with the GPU benchmarks.
"""
import lightning as L
import numpy as np
import pytest
import torch

from mnist_lit import augment
from mnist_lit.module import LitClassifier
from mnist_lit.predict import DEFAULT_MODEL, Reader
from mnist_lit.train import train
from tests.conftest import FAST, compose_train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
seen = {}


class Probe(L.Callback):
    """Records where the data and the network are, and the precision, once training starts."""

    def on_train_start(self, trainer, pl_module):
        seen.update(data=trainer.datamodule.splits["train"][0].device.type,
                    net=next(pl_module.parameters()).device.type, precision=trainer.precision)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        seen["batch"] = batch[0].device.type


@pytest.mark.parametrize("extra", [[], ["callbacks=[default,compile]"]], ids=["eager", "compiled"])
def test_trains_on_the_gpu_with_the_dataset_resident_in_bf16(tiny_root, tmp_path, extra):
    run_dir = tmp_path / "run"
    seen.clear()
    metrics = train(compose_train([
        "trainer=gpu", "model=cnn", f"data.root={tiny_root}", "data.val_size=100",
        "epochs=3", "batch_size=50", "lr=3e-3", f"run_dir={run_dir}", "~logger", *extra, *FAST,
        "+callbacks.probe._target_=tests.test_gpu.Probe"]))
    assert seen == {"data": "cuda", "net": "cuda", "precision": "bf16-mixed", "batch": "cuda"}
    assert metrics["test/acc"] > 0.9  # the tiny data is easy
    # The checkpoint loads on a machine without a GPU, with plain values only.
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    model = LitClassifier(**ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])


@pytest.mark.parametrize("preset", ["affine", "elastic", "reader"])
def test_augmentation_on_the_gpu_matches_the_cpu_in_kind(preset):
    x = torch.zeros(256, 1, 28, 28)
    x[:, :, 6:22, 12:16] = 1  # a bar: every image has ink
    y = torch.arange(256) % 10
    aug = augment.make(preset, seed=0)
    out = aug(x.cuda(), 0, 0, y.cuda(), list("0123456789"))
    ref = augment.make(preset, seed=0)(x, 0, 0, y, list("0123456789"))
    assert out.device.type == "cuda" and out.shape == x.shape and torch.isfinite(out).all()
    assert 0 <= out.min() and out.max() <= 1
    # Different random streams per device, but the same amount of change on average.
    moved = lambda a: (a - x.to(a.device)).abs().mean().item()  # noqa: E731
    assert moved(out) == pytest.approx(moved(ref), rel=0.25) and moved(out) > 0.01


def test_the_shipped_reader_reads_the_same_on_the_gpu():
    rng = np.random.default_rng(0)
    x = (rng.random((64, 1, 28, 28)) ** 4).astype(np.float32)  # sparse bright strokes on black
    cpu = Reader.from_checkpoint(DEFAULT_MODEL)
    gpu = Reader.from_checkpoint(DEFAULT_MODEL, device="cuda")
    la, lb = cpu._logits(x), gpu._logits(x)
    # cuDNN may use TF32 for convolutions: equal to within its rounding, and the same answers.
    assert np.abs(la - lb).max() < 0.02 * np.abs(la).max()
    assert (la.argmax(1) == lb.argmax(1)).mean() >= 0.95
