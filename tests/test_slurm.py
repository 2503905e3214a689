"""Scale-out through a real SLURM scheduler: sweeps as jobs, DDP over SLURM tasks, requeue and scancel.

The cluster is the one-node cluster of tests/slurm/start.sh (slurmctld, slurmd and munged on this machine; .ci/run
starts it where it can, else the first test here does, as root). Where there is none, every test here skips and
says why. Real MNIST from ../shared/data when it is there (a few batches an epoch), else tiny written data.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from mnist_lit.data import MNIST_FILES
from mnist_lit.train import train
from tests.conftest import ROOT, SHARED_DATA, compose_train, write_idx, write_mnist

pytestmark = pytest.mark.slow  # jobs that train, through a scheduler

SLURM_DIR = Path(os.environ.get("MNIST_LIT_SLURM_DIR", "/tmp/mnist_lit-slurm"))
SLURM_CONF = SLURM_DIR / "slurm.conf"
SCRIPTS = ROOT / "tests" / "slurm"

# Each job on one of the node's CPUs, no GPU (the test node has none), little memory: two jobs at a time.
LAUNCHER = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.gpus_per_node=0",
            "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10"]
# A small network, a few batches an epoch, no test report or TensorBoard: quick jobs.
QUICK = ["model.hidden=[64]", "batch_size=50", "+trainer.limit_train_batches=10", "~callbacks.report", "~logger",
         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
WAIT = 240  # seconds for a sweep to finish: a hang fails the test instead of the suite


class Probe(Callback):
    """Test only: each process writes <run>/probe-<rank>.json: who it is to Lightning and to SLURM, its batch size."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch or batch_idx:
            return
        environment = getattr(trainer.strategy, "cluster_environment", None)
        seen = {"environment": type(environment).__name__,
                "global_rank": trainer.global_rank, "world_size": trainer.world_size,
                "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
                "external": bool(environment and environment.creates_processes_externally),
                "batch": len(batch[0]), "pid": os.getpid(),
                **{k: os.environ.get(k) for k in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_ID")}}
        Path(trainer.default_root_dir).mkdir(parents=True, exist_ok=True)
        (Path(trainer.default_root_dir) / f"probe-{trainer.global_rank}.json").write_text(json.dumps(seen))


class PauseOnce(Callback):
    """Test only: at epoch 1, batch `step`, the first time only, writes <run>/paused (its SLURM job id) and waits there
    until SIGTERM (at most 2 minutes), so that a test can requeue or cancel the job mid-epoch. step=-1: never.
    Each start of training adds a line to <run>/starts.jsonl: the checkpoint it continues from, its epoch and step."""

    def __init__(self, step: int = -1):
        self.step = step

    def on_train_start(self, trainer, pl_module):
        start = {"ckpt_path": trainer.ckpt_path, "epoch": trainer.current_epoch, "step": trainer.global_step,
                 "restarts": os.environ.get("SLURM_RESTART_COUNT")}
        with open(Path(trainer.default_root_dir) / "starts.jsonl", "a") as f:
            f.write(json.dumps(start) + "\n")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        marker = Path(trainer.default_root_dir) / "paused"
        if (trainer.current_epoch, batch_idx) != (1, self.step) or marker.exists():
            return
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ.get("SLURM_JOB_ID", "")
        marker.write_text(job)
        deadline = time.monotonic() + 120
        while not trainer.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.1)


def slurm(*args, env, timeout=30):
    return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout)


def node_state(env) -> str:
    try:
        r = slurm("sinfo", "-h", "-o", "%t", env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"sinfo failed: {e}"
    return r.stdout.strip() if r.returncode == 0 else f"sinfo failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}"


@pytest.fixture(scope="module")
def cluster():
    """The environment of commands that use the test cluster; starts it (and stops it after) when it is not running."""
    if not shutil.which("sinfo"):
        pytest.skip("no SLURM cluster: sinfo not found (apt-get install slurm-wlm munge, then tests/slurm/start.sh)")
    env = {**os.environ, "SLURM_CONF": str(SLURM_CONF), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           # sacct for submitit, from scontrol: the test cluster keeps no accounting database
           "PATH": f"{SCRIPTS / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    started = False
    if not SLURM_CONF.is_file() or node_state(env).startswith("sinfo failed"):
        if os.geteuid() != 0 or not all(shutil.which(t) for t in ("slurmctld", "slurmd", "munged")):
            pytest.skip(f"no SLURM cluster: none running at {SLURM_DIR} (tests/slurm/start.sh starts one, as root, "
                        f"with slurm-wlm and munge installed)")
        r = subprocess.run([str(SCRIPTS / "start.sh")], capture_output=True, text=True, timeout=120)
        started = True
        if r.returncode:
            subprocess.run([str(SCRIPTS / "stop.sh")], timeout=60)
            why = (r.stderr.strip().splitlines() or ["?"])[-1]
            pytest.skip(f"no SLURM cluster: tests/slurm/start.sh failed: {why}")
    state = node_state(env)
    if state != "idle":
        if started:
            subprocess.run([str(SCRIPTS / "stop.sh")], timeout=60)
        pytest.skip(f"no SLURM cluster: node not idle ({state})")
    yield env
    if started:
        subprocess.run([str(SCRIPTS / "stop.sh")], timeout=60)


class Sweeps:
    """Runs sweeps on the test cluster under one job name, and cancels that name's jobs at the end of the test."""

    def __init__(self, env: dict, name: str):
        self.env, self.name, self.started = env, name, []

    def start(self, sweep: Path, *args) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "mnist_lit.train", "-m", *LAUNCHER, f"hydra.launcher.name={self.name}", *QUICK,
               f"hydra.sweep.dir={sweep}", *args]
        self.started.append(subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True))
        return self.started[-1]

    def __call__(self, *args, timeout=30):
        return slurm(*args, env=self.env, timeout=timeout)


@pytest.fixture
def sweeps(cluster, tmp_path):
    runner = Sweeps(cluster, f"mnist_lit-test-{os.getpid()}-{tmp_path.name}")
    yield runner
    for proc in runner.started:  # a failed test leaves nothing queued or running: its sweeps, then their jobs
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    runner("scancel", f"--name={runner.name}")


@pytest.fixture(scope="module")
def data_args(tmp_path_factory) -> list:
    if (SHARED_DATA / "MNIST" / "raw").is_dir():
        return [f"data.root={SHARED_DATA}", "data.val_size=1000"]
    root = tmp_path_factory.mktemp("slurm-data")
    write_mnist(root)
    return [f"data.root={root}", "data.val_size=100"]


def finish(proc: subprocess.Popen, timeout=WAIT) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the sweep did not finish within {timeout} s:\n{(out + err)[-3000:]}")
    return proc.returncode, out + err


def wait_for(path: Path, proc: subprocess.Popen, timeout=180):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before {path} appeared:\n{''.join(proc.communicate())[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.2)


def job_log(sweep: Path, task: int, rank: int = 0) -> str:
    """Everything the job (array task `task`) printed, process `rank`: submitit's .out and .err of every attempt."""
    folders = list(sweep.glob(f".submitit/*_{task}"))  # <array job>_<task>; a sweep of one job is no array
    folders += [p for p in sweep.glob(".submitit/*") if task == 0 and p.is_dir() and p.name.isdigit()]
    logs = sorted(p for folder in folders for p in folder.glob(f"*_{rank}_log.*"))
    assert logs, f"no log of job {task}, process {rank} under {sweep}/.submitit"
    return "".join(p.read_text() for p in logs)


def table(sweep: Path) -> dict:
    with open(sweep / "summary.csv") as f:
        return {row["run"]: row for row in csv.DictReader(f)}


def comparable(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in ("train_seconds", "best_ckpt")}


def test_a_sweep_runs_as_two_slurm_jobs_and_the_summary_lists_both(sweeps, data_args, tmp_path):
    sweep = tmp_path / "sweep"
    rc, out = finish(sweeps.start(sweep, "lr=1e-3,1e-4", "epochs=1", *data_args))
    assert rc == 0, out[-3000:]
    rows = table(sweep)
    assert set(rows) == {"0", "1"}
    assert "lr=0.001" in rows["0"]["overrides"].split() and "lr=0.0001" in rows["1"]["overrides"].split()
    for run, row in rows.items():
        assert row["status"] == "ok" and 0 < float(row["test/acc"]) <= 1 and float(row["val/acc_best"]) > 0, row
        assert (sweep / run / "metrics.json").is_file()
        # Each ran as a SLURM job (its own array task), not in the sweep's process.
        assert f"test accuracy {float(row['test/acc']):.4f}, run folder {sweep / run}" in job_log(sweep, int(run))
    first = (sweep / "summary.md").read_text().splitlines()[0]
    assert first.startswith("best: run ") and "failed" not in first


def test_ddp_over_two_slurm_tasks_takes_its_ranks_from_slurm_and_agrees_with_one_process(sweeps, data_args, tmp_path):
    # The test set with its odd-numbered labels made wrong (as in tests/test_ddp.py): an unsynchronised process 0
    # would report about twice the true accuracy.
    source = Path(next(a.split("=", 1)[1] for a in data_args if a.startswith("data.root="))) / "MNIST" / "raw"
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES[:3]:
        (raw / name).symlink_to(source / name)
    labels = np.frombuffer((source / MNIST_FILES[3]).read_bytes()[8:], dtype=np.uint8).copy()
    labels[1::2] = (labels[1::2] + 1) % 10
    write_idx(raw / MNIST_FILES[3], labels)
    common = [f"data.root={tmp_path / 'data'}", *(a for a in data_args if not a.startswith("data.root=")),
              "epochs=3", "trainer.limit_train_batches=50", "lr=3e-3",
              "+callbacks.probe._target_=tests.test_slurm.Probe"]

    sweep = tmp_path / "sweep"
    proc = sweeps.start(sweep, *common, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2")
    single = train(compose_train([*QUICK, *common, f"run_dir={tmp_path / 'single'}"]))  # meanwhile, here
    rc, out = finish(proc)
    assert rc == 0, out[-3000:]
    run = sweep / "0"
    probes = [json.loads((run / f"probe-{rank}.json").read_text()) for rank in (0, 1)]
    for rank, seen in enumerate(probes):
        # Two processes started by SLURM (srun, one per task), not by Lightning; ranks from SLURM_PROCID.
        assert seen["environment"] == "SLURMEnvironment" and seen["external"], seen
        assert (seen["global_rank"], seen["SLURM_PROCID"], seen["world_size"], seen["SLURM_NTASKS"]) == (
            rank, str(rank), 2, "2"), seen
        assert seen["batch"] == 25, seen  # batch_size=50 stays the global batch: 25 on each process
    assert probes[0]["pid"] != probes[1]["pid"] and probes[0]["SLURM_JOB_ID"] == probes[1]["SLURM_JOB_ID"]
    assert probes[0]["backend"] == probes[1]["backend"] == "gloo"
    assert "test accuracy" in job_log(sweep, 0, rank=0) and "test accuracy" not in job_log(sweep, 0, rank=1)
    ddp = json.loads((run / "metrics.json").read_text())
    assert 0.3 < single["test/acc"] < 0.6  # about half: the odd-numbered half of the test set is labelled wrong
    assert abs(ddp["test/acc"] - single["test/acc"]) <= 0.03  # the tolerance of tests/test_ddp.py
    assert ddp["epochs"] == single["epochs"] == 3
    steps = [torch.load(r / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
             for r in (run, tmp_path / "single")]
    assert steps[0] == steps[1] > 0  # as many steps as one process: each step took the whole global batch


def test_a_requeued_job_resumes_in_its_folder_and_ends_as_an_uninterrupted_one(sweeps, data_args, tmp_path):
    sweep = tmp_path / "sweep"
    # Two identical jobs but for the pause: job 0 is requeued in epoch 1, batch 4; job 1 runs through.
    proc = sweeps.start(sweep, "epochs=2", "lr=3e-3", "seed=1", *data_args,
                       "+callbacks.pause._target_=tests.test_slurm.PauseOnce", "+callbacks.pause.step=4,-1")
    wait_for(sweep / "0" / "paused", proc)
    job = (sweep / "0" / "paused").read_text()
    assert torch.load(sweep / "0" / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    r = sweeps("scontrol", "requeue", job)
    assert r.returncode == 0, r.stderr
    # Slurm holds a requeued batch job back for two minutes (Reason=BeginTime) before it may start again; let it go
    # as soon as it is back in the queue (what a preempted job does on a busy cluster is wait anyway).
    deadline = time.monotonic() + 60
    while "JobState=PENDING" not in sweeps("scontrol", "show", "job", "-o", job).stdout:
        assert time.monotonic() < deadline, "the requeued job did not come back to the queue within 60 s"
        time.sleep(0.2)
    r = sweeps("scontrol", "update", f"JobId={job}", "StartTime=now")
    assert r.returncode == 0, r.stderr
    rc, out = finish(proc)
    assert rc == 0, out[-3000:]

    assert "Restarts=1 " in sweeps("scontrol", "show", "job", "-o", job).stdout  # it ran twice
    log = job_log(sweep, 0)
    message = f"error: stopped by SIGTERM: resume with python -m mnist_lit.train resume={sweep / '0'}"
    assert log.count(message) == 1, log[-3000:]  # the first attempt stopped on requeue's SIGTERM ...
    # ... and the second found its own folder and continued from its last.ckpt (epoch 0 done), in its own folder
    starts = [json.loads(line) for line in (sweep / "0" / "starts.jsonl").read_text().splitlines()]
    assert starts == [{"ckpt_path": None, "epoch": 0, "step": 0, "restarts": None},
                      {"ckpt_path": str(sweep / "0" / "checkpoints" / "last.ckpt"), "epoch": 1, "step": 10,
                       "restarts": "1"}], starts
    assert sorted(p.name for p in sweep.iterdir() if not p.name.startswith(".") and p.is_dir()) == ["0", "1"]
    rows = table(sweep)
    assert rows["0"]["status"] == rows["1"]["status"] == "ok"
    assert comparable(sweep / "0") == comparable(sweep / "1")  # test/acc, test/loss, val/acc_best, epochs
    final, expected = (torch.load(sweep / r / "checkpoints" / "last.ckpt", weights_only=True) for r in ("0", "1"))
    assert final["global_step"] == expected["global_step"] == 20
    for key, value in expected["state_dict"].items():
        assert torch.equal(final["state_dict"][key], value), key


def test_a_failed_job_is_marked_in_the_summary_and_the_other_job_completes(sweeps, data_args, tmp_path):
    sweep = tmp_path / "sweep"
    rc, out = finish(sweeps.start(sweep, "lr=1e-3,-1", "epochs=1", *data_args))
    assert rc == 1, out[-3000:]  # the sweep ran to its end, but not every job succeeded
    rows = table(sweep)
    assert rows["1"]["status"] == "failed: lr=-1 is invalid: use a number > 0, e.g. lr=1e-3"
    assert (sweep / "1" / "error.txt").is_file() and not (sweep / "1" / "metrics.json").exists()
    assert rows["0"]["status"] == "ok" and float(rows["0"]["test/acc"]) > 0 and (sweep / "0" / "metrics.json").is_file()
    assert (sweep / "summary.md").read_text().splitlines()[0].endswith("; 1 of 2 runs failed (status column)")
    assert "error: lr=-1 is invalid" in job_log(sweep, 1)


def test_scancel_stops_a_job_with_the_one_line_sigterm_message_and_a_resumable_last_ckpt(sweeps, data_args, tmp_path):
    sweep = tmp_path / "sweep"
    proc = sweeps.start(sweep, "epochs=2", "lr=3e-3", *data_args,
                       "+callbacks.pause._target_=tests.test_slurm.PauseOnce", "+callbacks.pause.step=4")
    wait_for(sweep / "0" / "paused", proc)
    r = sweeps("scancel", (sweep / "0" / "paused").read_text())
    assert r.returncode == 0, r.stderr
    rc, out = finish(proc)
    assert rc != 0 and "CANCELLED" in out, out[-3000:]  # the sweep learns of it (sacct), and fails: no result
    run = sweep / "0"
    log = job_log(sweep, 0)
    assert f"error: stopped by SIGTERM: resume with python -m mnist_lit.train resume={run}" in log.splitlines(), log
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0  # epoch 0 kept whole
    assert not (run / "metrics.json").exists()

    # The message's command, as given (here, without SLURM): it continues in the same folder to the end.
    r = subprocess.run([sys.executable, "-m", "mnist_lit.train", f"resume={run}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=WAIT, env={k: v for k, v in sweeps.env.items() if not k.startswith("SLURM")})
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"run folder {run}" in r.stdout
    starts = [json.loads(line) for line in (run / "starts.jsonl").read_text().splitlines()]
    assert [(s["ckpt_path"], s["epoch"]) for s in starts] == [(None, 0), (str(run / "checkpoints" / "last.ckpt"), 1)]
    assert comparable(run)["epochs"] == 2
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 20
