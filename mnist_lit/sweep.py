"""After a Hydra multirun: one table of every run's overrides and metrics, best first."""
import csv
import json
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

SORT_KEY = "val/acc_best"  # model selection by validation: the test set only reports


def status(job: Path, metrics: dict) -> str:
    """ok, or failed with the first line of the job's error.txt (written by mnist_lit.train)."""
    if metrics:
        return "ok"
    error = job / "error.txt"
    return "failed: " + error.read_text().splitlines()[0] if error.is_file() else "failed"


def summarize(sweep_dir: Path, sort_key: str = SORT_KEY) -> list[dict]:
    """Writes summary.csv and summary.md in sweep_dir from its runs' folders and returns the rows."""
    rows = []
    for job in sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()), key=lambda p: p.name):
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        metrics_file = job / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        # Scalars only: the per-class table and confusion matrix stay in each run's metrics.json.
        metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and k != "best_ckpt"}
        rows.append({"run": job.name, "overrides": " ".join(overrides), "status": status(job, metrics), **metrics})
    rows.sort(key=lambda r: -r.get(sort_key, -1.0))  # failed runs last
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(sweep_dir / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    ok = [r for r in rows if r["status"] == "ok"]
    best = (f"best: run {ok[0]['run']} ({sort_key} {fmt(ok[0].get(sort_key))}): {ok[0]['overrides']}" if ok
            else "no run succeeded")
    failed = len(rows) - len(ok)
    lines = [best + (f"; {failed} of {len(rows)} runs failed (status column)" if failed else ""), ""]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    return rows


class SweepSummary(Callback):
    """Hydra callback: writes the sweep's summary when a multirun ends."""

    def __init__(self, sort_key: str = SORT_KEY):
        self.sort_key = sort_key

    def on_multirun_end(self, config, **kwargs):
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            rows = summarize(sweep_dir, self.sort_key)
            print(f"sweep summary ({len(rows)} runs, best first): {sweep_dir / 'summary.md'}")
            print((sweep_dir / "summary.md").read_text().splitlines()[0])
            if any(r["status"] != "ok" for r in rows):
                sys.exit(1)  # the sweep finished, but not every run did: say so in the exit status
