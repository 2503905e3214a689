"""Trains on the real MNIST files when they are beside the repo (../shared/data); skipped otherwise."""
import pytest

from mnist_lit.train import train
from tests.conftest import FAST, SHARED_DATA, compose_train, needs_real_mnist

pytestmark = pytest.mark.slow  # subprocesses, real data or end-to-end runs: make test-fast leaves them out


@needs_real_mnist
def test_one_epoch_on_real_mnist_reaches_95_percent_validation(tmp_path):
    cfg = compose_train([f"data.root={SHARED_DATA}", f"run_dir={tmp_path}", "epochs=1", *FAST])
    metrics = train(cfg)
    assert metrics["val/acc_best"] >= 0.95
    assert metrics["test/acc"] >= 0.95
