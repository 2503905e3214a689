"""After a Hydra multirun: summary.csv (every digit) and summary.md (for people) of every run, best first."""
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


def rounded(key: str, value) -> str:
    """A metric as a person reads it: accuracies 0.9912, seconds 12.3, losses and other numbers 4 significant digits."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if "acc" in key:
        return f"{value:.4f}"
    if "seconds" in key:
        return f"{value:.1f}"
    return f"{value:.4g}"


def split_override(override: str) -> tuple[str, str]:
    """lr=1e-3 -> (lr, 1e-3); an override without a value (~logger) is its own key."""
    key, sep, value = override.partition("=")
    return (key, value) if sep else (override, "yes")


def markdown(rows: list[dict], overrides: dict[str, list[str]], sort_key: str) -> str:
    """summary.md: the best run's line, the overrides common to every run, then a table of what varies, best first."""
    ok = [r for r in rows if r["status"] == "ok"]
    best = (f"best: run {ok[0]['run']} ({sort_key} {rounded(sort_key, ok[0].get(sort_key))}): {ok[0]['overrides']}"
            if ok else "no run succeeded")
    failed = len(rows) - len(ok)
    lines = [best + (f"; {failed} of {len(rows)} runs failed (status column)" if failed else ""), ""]

    runs = [overrides[r["run"]] for r in rows]
    common = [o for o in runs[0] if all(o in run for run in runs)] if runs else []
    if common:
        lines += [f"common to all runs: `{' '.join(common)}`", ""]
    varying = [dict(split_override(o) for o in run if o not in common) for run in runs]
    keys = list(dict.fromkeys(k for run in varying for k in run))
    metrics = list(dict.fromkeys(k for r in rows for k in r if k not in ("run", "overrides", "status")))
    metrics.sort(key=lambda k: k != sort_key)  # the ranking first, the rest in metrics.json's order
    taken = {"run", "status", *metrics}
    header = ["run", *(f"{k}=" if k in taken else k for k in keys), "status", *metrics]  # "epochs=": the override
    cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r, run in zip(rows, varying):
        cells = [r["run"], *(run.get(k, "") for k in keys), r["status"], *(rounded(m, r.get(m, "")) for m in metrics)]
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def summarize(sweep_dir: Path, sort_key: str = SORT_KEY) -> list[dict]:
    """Writes summary.csv and summary.md in sweep_dir from its runs' folders and returns the rows."""
    rows, overrides = [], {}
    for job in sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()), key=lambda p: p.name):
        overrides[job.name] = [str(o) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml")]
        metrics_file = job / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        # Scalars only: the per-class table and confusion matrix stay in each run's metrics.json.
        metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and k != "best_ckpt"}
        rows.append({"run": job.name, "overrides": " ".join(overrides[job.name]), "status": status(job, metrics),
                     **metrics})
    rows.sort(key=lambda r: -r.get(sort_key, -1.0))  # failed runs last
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(sweep_dir / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    (sweep_dir / "summary.md").write_text(markdown(rows, overrides, sort_key))
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
