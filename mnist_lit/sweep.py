"""After a Hydra multirun: one table of every run's overrides and metrics, best first."""
import csv
import json
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

SORT_KEY = "test/acc"


def summarize(sweep_dir: Path) -> list[dict]:
    """Writes summary.csv and summary.md in sweep_dir from its runs' folders and returns the rows."""
    rows = []
    for job in sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()), key=lambda p: p.name):
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        metrics_file = job / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        metrics.pop("best_ckpt", None)
        rows.append({"run": job.name, "overrides": " ".join(overrides),
                     "status": "ok" if metrics else "failed", **metrics})
    rows.sort(key=lambda r: -r.get(SORT_KEY, -1.0))
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(sweep_dir / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    return rows


class SweepSummary(Callback):
    """Hydra callback: writes the sweep's summary when a multirun ends."""

    def on_multirun_end(self, config, **kwargs):
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            rows = summarize(sweep_dir)
            print(f"sweep summary ({len(rows)} runs, best first): {sweep_dir / 'summary.md'}")
