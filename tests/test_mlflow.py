"""logger=mlflow end to end with the real MLflow: a tiny run, then its store read back with MLflow's client."""
import os
import subprocess
import sys

import pytest

from mnist_lit.train import train
from tests.conftest import FAST, ROOT, compose_train

pytestmark = pytest.mark.slow  # subprocesses, real data or end-to-end runs: make test-fast leaves them out

mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed: pip install -e '.[mlflow]'")

TINY = ["data.val_size=100", "epochs=1", "batch_size=50", "lr=3e-3", "dropout=0.1"]


def only_run(uri: str):
    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name("mnist_lit")
    assert experiment is not None, f"no experiment mnist_lit in {uri}"
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return runs[0]


def test_a_run_lands_in_experiment_mnist_lit_with_its_settings_and_results(tiny_root, tmp_path):
    run_dir, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose_train([f"data.root={tiny_root}", *TINY, f"run_dir={run_dir}", "logger=[tensorboard,mlflow]",
                         f"logger.mlflow.tracking_uri={uri}", *FAST])
    metrics = train(cfg)

    run = only_run(uri)
    assert run.info.run_name == str(run_dir) and run.info.status == "FINISHED"
    assert {k: run.data.params[k] for k in ("lr", "batch_size", "dropout")} == {"lr": "0.003", "batch_size": "50",
                                                                                "dropout": "0.1"}
    assert run.data.metrics["val/acc_best"] == metrics["val/acc_best"]
    assert run.data.metrics["test/acc"] == metrics["test/acc"]
    assert any((run_dir / "tensorboard").glob("events.out.tfevents.*"))  # beside TensorBoard, not instead of it


def test_the_default_store_is_outputs_mlflow_db_and_a_run_prints_no_mlflow_chatter(tiny_root, tmp_path):
    # As a person runs it: from a folder of their own, no MLFLOW_* variables, the store where `mlflow ui` looks.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-m", "mnist_lit.train", f"data.root={tiny_root}", *TINY, "logger=mlflow",
                        *FAST], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "outputs" / "mlflow.db").is_file()
    assert "INFO mlflow" not in r.stderr and "database tables" not in r.stderr, r.stderr
    run = only_run(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    assert run.info.run_name.startswith(str(tmp_path / "outputs")) and "test/acc" in run.data.metrics
