"""The sweep summary (mnist_lit.sweep) on run folders written by hand: summary.md for people, summary.csv in full."""
import csv
import json

import pytest
from omegaconf import OmegaConf

from mnist_lit.sweep import SweepSummary, summarize

COMMON = ["data.root=../shared/data", "epochs=1"]


def job(sweep, name, overrides, metrics=None, error=None):
    """A run folder as a sweep leaves it: .hydra/overrides.yaml, and metrics.json or error.txt."""
    folder = sweep / name
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (folder / "error.txt").write_text(error + "\n\nTraceback ...\n")


def metrics(val, test, loss=0.0371534218, seconds=12.3456789):
    return {"test/acc": test, "test/loss": loss, "val/acc_best": val, "epochs": 1, "train_seconds": seconds,
            "best_ckpt": "/somewhere/best.ckpt", "test/per_class": {"0": {"accuracy": 1.0}}}


def table(md: str) -> list[list[str]]:
    """The markdown table's header and rows as cells (the |---| line left out)."""
    rows = [line.strip("|").split(" | ") for line in md.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row] for row in rows]


@pytest.fixture
def sweep(tmp_path):
    sweep = tmp_path / "sweep"
    job(sweep, "0", [*COMMON, "lr=1e-3", "batch_size=64"], metrics(0.98123456, 0.97654321))
    job(sweep, "1", [*COMMON, "lr=1e-4", "batch_size=64"], metrics(0.99123456, 0.98876543, seconds=7.04))
    job(sweep, "2", [*COMMON, "lr=-1.0", "batch_size=256"], error="lr=-1.0 is invalid: use a number > 0, e.g. lr=1e-3")
    return sweep


def test_md_names_common_overrides_once_and_has_a_column_per_varying_one(sweep):
    summarize(sweep)
    md = (sweep / "summary.md").read_text()
    lines = md.splitlines()
    assert lines[0] == ("best: run 1 (val/acc_best 0.9912): data.root=../shared/data epochs=1 lr=1e-4 batch_size=64; "
                        "1 of 3 runs failed (status column)")
    assert "common to all runs: `data.root=../shared/data epochs=1`" in lines
    header, *rows = table(md)
    # run, the overrides that vary, status, then the metrics: the ranking first, the rest in metrics.json's order.
    assert header == ["run", "lr", "batch_size", "status", "val/acc_best", "test/acc", "test/loss", "epochs",
                      "train_seconds"]
    assert [r[:4] for r in rows] == [["1", "1e-4", "64", "ok"], ["0", "1e-3", "64", "ok"],
                                     ["2", "-1.0", "256", "failed: lr=-1.0 is invalid: use a number > 0, e.g. lr=1e-3"]]
    assert "data.root" not in "\n".join(line for line in lines if line.startswith("|"))


def test_md_rounds_for_people_and_csv_keeps_full_precision(sweep):
    summarize(sweep)
    header, *rows = table((sweep / "summary.md").read_text())
    best = dict(zip(header, rows[0]))
    assert (best["val/acc_best"], best["test/acc"]) == ("0.9912", "0.9888")  # accuracies: 4 decimals
    assert best["test/loss"] == "0.03715"  # losses: 4 significant digits
    assert best["train_seconds"] == "7.0" and dict(zip(header, rows[1]))["train_seconds"] == "12.3"  # 1 decimal
    assert best["epochs"] == "1"
    assert rows[2][4:] == [""] * 5  # the failed run has no metrics

    with open(sweep / "summary.csv") as f:
        full = list(csv.DictReader(f))
    # The CSV keeps its columns (every override of a run in one column) and every digit.
    assert list(full[0]) == ["run", "overrides", "status", "test/acc", "test/loss", "val/acc_best", "epochs",
                             "train_seconds"]
    assert full[0]["overrides"] == "data.root=../shared/data epochs=1 lr=1e-4 batch_size=64"
    assert float(full[0]["val/acc_best"]) == 0.99123456 and float(full[0]["test/loss"]) == 0.0371534218
    assert float(full[1]["train_seconds"]) == 12.3456789
    assert [r["run"] for r in full] == ["1", "0", "2"] and full[2]["status"].startswith("failed: lr=-1.0")


def test_an_override_in_some_runs_only_and_one_named_like_a_metric(tmp_path):
    sweep = tmp_path / "sweep"
    job(sweep, "0", ["epochs=2", "~logger"], metrics(0.5, 0.5))
    job(sweep, "1", ["epochs=3", "+trainer.limit_train_batches=5", "~logger"], metrics(0.75, 0.625))
    summarize(sweep)
    md = (sweep / "summary.md").read_text()
    assert "common to all runs: `~logger`" in md
    header, *rows = table(md)
    # The override epochs= beside the metric epochs (the epochs a run trained); blank where a run lacks an override.
    assert header[:4] == ["run", "epochs=", "+trainer.limit_train_batches", "status"] and "epochs" in header[4:]
    assert [r[:3] for r in rows] == [["1", "3", "5"], ["0", "2", ""]]


def test_one_run_and_a_cell_with_a_bar(tmp_path):
    sweep = tmp_path / "sweep"
    job(sweep, "0", ["lr=1e-3"], error="ValueError: a|b")
    summarize(sweep)
    md = (sweep / "summary.md").read_text()
    assert md.splitlines()[0] == "no run succeeded; 1 of 1 runs failed (status column)"
    assert "common to all runs: `lr=1e-3`" in md
    assert "| 0 | failed: ValueError: a\\|b |" in md  # a | in a cell would split it


def test_callback_prints_the_best_line_and_exits_1_when_a_run_failed(sweep, capsys):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    with pytest.raises(SystemExit) as exit_:
        SweepSummary().on_multirun_end(config)
    assert exit_.value.code == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"sweep summary (3 runs, best first): {sweep / 'summary.md'}"
    assert out[1].startswith("best: run 1 (val/acc_best 0.9912): ")
