"""Training speed side by side: python -m mnist_lit.bench [--model mlp] [--batch-size N] [key=value ...].

Times one training epoch (55k images, then the 5k validation images) of the same network, batch size,
optimizer and schedule through (a) the real training path (mnist_lit.train.train: LitClassifier,
MNISTDataModule and a Trainer from the Hydra config, default callbacks, logger and progress bar on),
(b) a bare PyTorch loop over preloaded tensors (the floor) and (c) torchvision's per-sample pipeline
(datasets.MNIST + ToTensor + Normalize in a DataLoader, as most templates do). Each measurement runs in a
fresh process (its own peak memory); the three alternate, repeated, and the medians are reported. Then the
default config trains until validation accuracy first reaches --target. --recipes fast,cnn_best runs whole
experiments (--seeds of each): their time to 99% and 99.5%, test accuracy and FLOPs, against the machine's
measured matmul peak. Beside one training step of the network it times each augmentation preset on a batch.
Writes <out>/bench.json.
"""
import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mnist_lit.data import TensorLoader
from mnist_lit.models import build
from mnist_lit.module import make_optimizer, make_schedule
from mnist_lit.runs import new_run_dir

CONF = Path(__file__).resolve().parents[1] / "conf"
PIPELINES = {
    "real": "(a) mnist_lit: Lightning + Hydra config",
    "bare": "(b) bare PyTorch loop, preloaded tensors",
    "torchvision": "(c) torchvision MNIST + DataLoader",
}


def compose(overrides):
    """The real training config, as `python -m mnist_lit.train` composes it."""
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=list(overrides))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def rss_mb() -> float:
    """This process's resident memory now (0 where /proc is missing)."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmRSS:")), 0.0)


class Clock(L.Callback):
    """Times each training epoch (its validation, checkpoints and logs included); optionally stops at a target.

    Its `metrics` end up in what train() returns (and in metrics.json).
    """

    def __init__(self, target=None):
        self.target, self.starts, self.cpu, self.reached, self.val_acc = target, [], [], None, []
        self.fit_started, self.train_images = None, None

    def on_fit_start(self, trainer, pl_module):
        self.fit_started = time.time()

    def on_train_start(self, trainer, pl_module):
        self.train_images = len(trainer.datamodule.splits["train"][0])

    def _now(self, pl_module):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter(), time.process_time()

    def on_train_epoch_start(self, trainer, pl_module):
        wall, cpu = self._now(pl_module)
        self.starts.append(wall)
        self.cpu.append(cpu)

    def on_validation_end(self, trainer, pl_module):
        acc = trainer.callback_metrics.get("val/acc")
        if trainer.sanity_checking or acc is None:
            return
        self.val_acc.append(round(float(acc), 4))  # each epoch's: time to any accuracy, read off afterwards
        if self.target is None or self.reached:
            return
        if float(acc) >= self.target:
            self.reached = {"time": time.time(), "epoch": trainer.current_epoch + 1, "val_acc": float(acc)}
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module):
        wall, cpu = self._now(pl_module)
        self.starts.append(wall)
        self.cpu.append(cpu)

    @property
    def metrics(self):
        diff = lambda t: [round(b - a, 4) for a, b in zip(t, t[1:])]  # noqa: E731
        return {"bench/epoch_seconds": diff(self.starts), "bench/epoch_cpu_seconds": diff(self.cpu),
                "bench/val_acc_epochs": self.val_acc,
                "bench/reached": self.reached, "bench/fit_started": self.fit_started,
                "bench/train_images": self.train_images}


def run_real(overrides, run_dir, target=None):
    """(a): the project's own train(), with a Clock callback added through the config."""
    extra = [f"run_dir={run_dir}", "+callbacks.bench_clock._target_=mnist_lit.bench.Clock"]
    if target is not None:
        extra.append(f"+callbacks.bench_clock.target={target}")
    from mnist_lit.train import train  # (a) is the entry point's own train()

    metrics = train(compose([*overrides, *extra]))
    out = {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("bench/")}
    return {**out, "val_acc": metrics["val/acc_best"], "test_acc": metrics["test/acc"],
            "train_seconds": metrics["train_seconds"]}


def _autocast(cfg, device):
    """What trainer.precision asks of Lightning: bf16-mixed is autocast to bfloat16."""
    return torch.autocast(device.type, torch.bfloat16, enabled="bf16" in str(cfg.trainer.precision))


def _train_step(cfg, net, opt, x, y, autocast):
    """One training step as LitClassifier takes it: the loss (label smoothing included), backward, the update."""
    with autocast:
        loss = F.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _loop(cfg, net, train_batches, val_batches, steps_per_epoch, device):
    """Trains and validates cfg.epochs epochs like LitClassifier does; returns the per-epoch times."""
    net.to(device)
    opt = make_optimizer(net.parameters(), cfg.lr, cfg.weight_decay)  # LitClassifier's optimizer and schedule
    sched = make_schedule(opt, cfg.schedule, cfg.lr, cfg.epochs * steps_per_epoch)
    autocast = _autocast(cfg, device)
    walls, cpus, acc = [], [], None
    for epoch in range(cfg.epochs):
        wall, cpu = time.perf_counter(), time.process_time()
        net.train()
        for x, y in train_batches(epoch):
            _train_step(cfg, net, opt, x, y, autocast)
            if sched is not None:
                sched.step()
        net.eval()
        correct = total = 0
        with torch.inference_mode(), autocast:
            for x, y in val_batches():
                correct += (net(x).argmax(1) == y).sum()
                total += len(y)
        acc = float(correct / total)  # .item(): waits for the device, so the epoch is over
        walls.append(round(time.perf_counter() - wall, 4))
        cpus.append(round(time.process_time() - cpu, 4))
    return {"epoch_seconds": walls, "epoch_cpu_seconds": cpus, "val_acc": acc}


def _compiled(cfg, net):
    """The network compiled as callbacks=[default,compile] compiles it in the real path, else as it is."""
    if "compile" in (cfg.get("callbacks") or {}):
        net.compile(mode=cfg.callbacks.compile.get("mode"), backend=cfg.callbacks.compile.get("backend", "inductor"))
    return net


def _device(cfg):
    return torch.device("cuda" if cfg.trainer.accelerator in ("gpu", "cuda") else "cpu")


def run_bare(overrides):
    """(b): the datamodule's tensors, indexed batch by batch in a plain loop: no framework at all."""
    cfg = compose(overrides)
    device = _device(cfg)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    (xt, yt), (xv, yv) = ((x.to(device), y.to(device)) for x, y in (dm.splits["train"], dm.splits["val"]))

    def train_batches(epoch):  # the real path's batches: the same order, conversion and augmentation
        return (dm.inputs(b, epoch) for b in TensorLoader(xt, yt, cfg.batch_size, True, dm.seed, epoch=lambda: epoch))

    def val_batches():
        return (dm.inputs(b) for b in TensorLoader(xv, yv, dm.eval_batch_size))

    torch.manual_seed(cfg.seed)  # as train() seeds before building: the same initial weights
    net = _compiled(cfg, build(OmegaConf.to_container(cfg.model, resolve=True)))
    steps = len(TensorLoader(xt, yt, cfg.batch_size))
    return {**_loop(cfg, net, train_batches, val_batches, steps, device), "train_images": len(xt)}


def run_torchvision(overrides):
    """(c): torchvision.datasets.MNIST on the same raw files, ToTensor + Normalize per sample, a DataLoader."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    cfg = compose(overrides)
    device = _device(cfg)
    dm = instantiate(cfg.data)
    dm.prepare_data()  # the files torchvision reads below
    if dm.spec.folder != "MNIST":
        raise SystemExit(f"error: the torchvision pipeline is written for MNIST, not data={dm.name}")
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((cfg.data.mean,), (cfg.data.std,))])
    full = datasets.MNIST(str(cfg.data.root), train=True, download=False, transform=tf)
    # The same 55k/5k split as MNISTDataModule.setup.
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(cfg.data.split_seed)).tolist()
    train_set, val_set = Subset(full, perm[cfg.data.val_size:]), Subset(full, perm[:cfg.data.val_size])
    pin = device.type == "cuda"
    # num_workers=0 and no pinning on the CPU: the Lightning-Hydra template's MNIST defaults.
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, num_workers=0, pin_memory=pin)
    val_loader = DataLoader(val_set, batch_size=dm.eval_batch_size, num_workers=0, pin_memory=pin)
    to = lambda loader: ((x.to(device, non_blocking=True), y.to(device, non_blocking=True)) for x, y in loader)  # noqa: E731

    # The same network, normalising nothing itself (mean 0, std 1): the transform has normalised already.
    torch.manual_seed(cfg.seed)
    net = _compiled(cfg, build({**OmegaConf.to_container(cfg.model, resolve=True), "mean": 0.0, "std": 1.0}))
    times = _loop(cfg, net, lambda epoch: to(train_loader), lambda: to(val_loader), len(train_loader), device)
    return {**times, "train_images": len(train_set)}


def _warm_up():
    """A process's first backward pass starts autograd's engine (about a second): paid here, before any clock runs."""
    w = torch.zeros(1, requires_grad=True)
    (w * 2).sum().backward()


def _measure(name, overrides, result, log, threads, stop_at):
    """One measurement, in a process of its own; writes its figures as JSON to result, its output to log."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    imported = rss_mb()  # Python, torch, Lightning, Hydra and torchvision loaded: the same in all three
    if threads:
        torch.set_num_threads(threads)
    _warm_up()
    started = time.time()
    if name == "real":
        out = run_real(overrides, Path(result).with_suffix(""), stop_at)
    elif name == "bare":
        out = run_bare(overrides)
    else:
        out = run_torchvision(overrides)
    out.update(started=started, peak_rss_mb=round(peak_rss_mb(), 1), import_rss_mb=round(imported, 1))
    Path(result).write_text(json.dumps(out))
    sys.stdout.flush()


_context = None


def spawn(name, overrides, work: Path, tag, threads=None, stop_at=None):
    """Runs one measurement in a new process (forked from a server that has imported the libraries once)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["torchvision", "torch.utils.tensorboard", "mnist_lit.train", __name__])
    result, log = work / f"{tag}.json", work / f"{tag}.log"
    proc = _context.Process(target=_measure, args=(name, overrides, str(result), str(log), threads, stop_at))
    proc.start()
    proc.join()
    if proc.exitcode != 0 or not result.is_file():
        tail = log.read_text().strip().splitlines()[-1:] if log.is_file() else []
        raise SystemExit(f"error: benchmark {name} failed ({(tail or ['no output'])[0]}): see {log}")
    return json.loads(result.read_text())


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def matmul_peak(device) -> float:
    """The machine's measured matrix-product rate in GFLOP/s (float32 on the CPU, bfloat16 on a GPU)."""
    n, dtype = (4096, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return round(2 * n ** 3 / _ms(lambda: a @ b, device) / 1e6, 1)


def _ms(fn, device, rounds=7, n=10) -> float:
    """Median milliseconds of one call of fn, over rounds of n calls (the first two rounds warm up)."""
    times = []
    for _ in range(rounds):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) / n * 1000)
    return statistics.median(times[2:])


def augment_cost(cfg, device, presets=("affine", "elastic")) -> dict:
    """Milliseconds to augment one training batch with each preset, beside one training step of the network."""
    from mnist_lit.augment import make

    x = torch.rand(cfg.batch_size, *cfg.data.shape, device=device)
    y = torch.randint(cfg.data.num_classes, (cfg.batch_size,), device=device)
    net = build(OmegaConf.to_container(cfg.model, resolve=True)).to(device).train()
    opt = make_optimizer(net.parameters(), cfg.lr, cfg.weight_decay)
    autocast = _autocast(cfg, device)
    ms = {"step": round(_ms(lambda: _train_step(cfg, net, opt, x, y, autocast), device), 3)}
    ms.update({name: round(_ms(lambda a=make(name): a(x), device), 3) for name in presets})
    return {"batch_size": cfg.batch_size, "ms": ms,
            "fraction_of_step": {name: round(ms[name] / ms["step"], 4) for name in presets}}


def train_flops(cfg) -> int:
    """Floating-point operations to train on one image: the forward pass's, times 3 (backward: about twice)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = build(OmegaConf.to_container(cfg.model, resolve=True)).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.zeros(1, *cfg.data.shape))
    return 3 * counter.get_total_flops()


def time_to(run, target):
    """Seconds of training until the validation accuracy first reached target (None if it never did)."""
    for i, acc in enumerate(run["val_acc_epochs"]):
        if acc >= target:
            return round(sum(run["epoch_seconds"][:i + 1]), 2)
    return None


def recipe_report(name, runs, cfg, peak):
    """One recipe's figures over its seeds."""
    mean_sd = lambda v: (round(statistics.mean(v), 5), round(statistics.stdev(v), 5) if len(v) > 1 else 0.0)  # noqa: E731
    flops = train_flops(cfg)
    per_run = flops * runs[0]["train_images"] * cfg.epochs
    seconds = [r["train_seconds"] for r in runs]
    return {"experiment": name, "seeds": len(runs), "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "test_acc": mean_sd([r["test_acc"] for r in runs]), "train_seconds": mean_sd(seconds),
            "seconds_to": {str(t): [time_to(r, t) for r in runs] for t in (0.99, 0.995)},
            "train_flops_per_image": flops, "train_flops_per_run": per_run,
            "fraction_of_matmul_peak": round(per_run / statistics.mean(seconds) / (peak * 1e9), 4),
            "runs": runs}


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m mnist_lit.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="Hydra overrides for all three, e.g. model.hidden=[2048,1024]")
    p.add_argument("--model", default=None, help="model config group: mlp (default) or cnn")
    p.add_argument("--batch-size", type=int, default=None, help="default: the config's batch_size")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs per measurement (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="measurements of each pipeline (default 3)")
    p.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu",
                   help="cpu (trainer=cpu) or gpu (trainer=gpu: bf16, dataset on the GPU)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network in all three (callbacks=[default,compile] in the real path)")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw/ (default: the config's data.root)")
    p.add_argument("--target", type=float, default=0.98,
                   help="validation accuracy to reach with the default config (0: skip)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads in each measurement (default: torch's, one per core); 1 on a busy machine")
    p.add_argument("--pipelines", default="real,bare,torchvision",
                   help="which to run (default: all three; none: only --recipes)")
    p.add_argument("--recipes", default="", help="experiments to run whole, e.g. fast,cnn_best: time to 99%% "
                   "and 99.5%%, test accuracy, FLOPs")
    p.add_argument("--seeds", type=int, default=1, help="seeds of each recipe (default 1)")
    p.add_argument("--out", default=None, help="output folder (default outputs/bench/<date>/<time>)")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1 or args.seeds < 1:
        p.error("--epochs, --repeats and --seeds must be at least 1")
    names = lambda v: [s.strip() for s in v.split(",") if s.strip() and s.strip() != "none"]  # noqa: E731
    args.pipelines, args.recipes = names(args.pipelines), names(args.recipes)
    unknown = [s for s in args.pipelines if s not in PIPELINES]
    if unknown:
        p.error(f"unknown pipeline {', '.join(unknown)}: use some of {','.join(PIPELINES)}")
    if not (args.pipelines or args.recipes):
        p.error("nothing to run: name some --pipelines, or --recipes (e.g. --recipes fast)")
    missing = [r for r in args.recipes if not (CONF / "experiment" / f"{r}.yaml").is_file()]
    if missing:
        p.error(f"unknown recipe {', '.join(missing)}: use experiments from conf/experiment/, e.g. fast,cnn_best")
    return args


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def summarise(results, n_train):
    """Medians over every timed epoch of every repeat, and the ratios the issue asks for."""
    summary = {}
    for name, runs in results.items():
        epochs = [t for run in runs for t in run["epoch_seconds"]]
        med = statistics.median(epochs)
        summary[name] = {"label": PIPELINES[name], "epoch_seconds": round(med, 4),
                         "samples_per_s": round(n_train / med, 1),
                         "epoch_cpu_seconds": round(statistics.median(
                             [t for run in runs for t in run["epoch_cpu_seconds"]]), 4),
                         "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
                         "import_rss_mb": max(run["import_rss_mb"] for run in runs),
                         "epoch_seconds_all": epochs}
        first = [t for run in runs for t in run.get("compile_epoch_seconds", [])]
        if first:  # --compile: the first epoch, compiling included, left out of the figures above
            summary[name]["compile_epoch_seconds"] = round(statistics.median(first), 3)
    ratios = {}
    for key, (slow, fast) in {"real_over_bare": ("real", "bare"), "torchvision_over_real": ("torchvision", "real")}.items():
        if {slow, fast} <= summary.keys():
            ratios[key] = round(summary[slow]["epoch_seconds"] / summary[fast]["epoch_seconds"], 3)
            # The same in CPU seconds: steadier than wall time when other programs share the cores.
            ratios[key + "_cpu"] = round(summary[slow]["epoch_cpu_seconds"] / summary[fast]["epoch_cpu_seconds"], 3)
            # Repeat by repeat (each repeat runs the pipelines one after the other): their spread shows how much
            # of the ratio is the machine's drift rather than the pipelines.
            if len(results[slow]) == len(results[fast]) > 1:
                ratios[key + "_repeats"] = [round(statistics.median(s["epoch_seconds"]) /
                                                  statistics.median(f["epoch_seconds"]), 3)
                                            for s, f in zip(results[slow], results[fast])]
    return summary, ratios


def format_report(report) -> str:
    """The printed table: one row per pipeline, then the ratios and the time to the target accuracy."""
    # The range of the timed epochs beside their median: a shared or throttled CPU shows as a wide one.
    rows = [[s["label"], f"{s['epoch_seconds']:.2f}", f"{min(s['epoch_seconds_all']):.2f}-"
             f"{max(s['epoch_seconds_all']):.2f}", f"{s['samples_per_s']:,.0f}", f"{s['epoch_cpu_seconds']:.2f}",
             f"{s['peak_rss_mb']:,.0f}"] for s in report["pipelines"].values()]
    lines = [table(rows, ["pipeline", "s/epoch", "range", "samples/s", "CPU s/epoch", "peak RSS MB"])]
    r = report["ratios"]
    spread = lambda k: (f" (repeats {min(r[k + '_repeats']):.2f}-{max(r[k + '_repeats']):.2f})"  # noqa: E731
                        if k + "_repeats" in r else "")
    if "real_over_bare" in r:
        lines.append(f"(a)/(b) time: {r['real_over_bare']:.2f}x{spread('real_over_bare')}, CPU time "
                     f"{r['real_over_bare_cpu']:.2f}x  (the real path over the bare loop; target <= 1.10)")
    if "torchvision_over_real" in r:
        lines.append(f"(c)/(a) time: {r['torchvision_over_real']:.2f}x{spread('torchvision_over_real')}, CPU time "
                     f"{r['torchvision_over_real_cpu']:.2f}x  (torchvision over the real path; target >= 2.5)")
    a = report.get("augmentation")
    if a:
        shares = ", ".join(f"{name} {a['ms'][name]:.2f} ms ({100 * f:.1f}%)"
                           for name, f in a["fraction_of_step"].items())
        lines.append(f"augmentation of a batch of {a['batch_size']}: {shares} of a training step "
                     f"({a['ms']['step']:.1f} ms; target <= 10%)")
    t = report["time_to_target"]
    if t:
        what = (f"{t['seconds']:.1f} s from the start of train() (epoch {t['epoch']}, val acc {t['val_acc']:.4f})"
                if t["reached"] else f"not reached in {len(t['epoch_seconds'])} epochs")
        lines.append(f"time to {t['target']:.0%} validation accuracy, default config: {what}")
    if report["recipes"]:
        bare = report["pipelines"].get("bare", {}).get("epoch_seconds")
        rows = []
        for r in report["recipes"].values():
            (acc, acc_sd), (secs, _) = r["test_acc"], r["train_seconds"]
            to = lambda t: ", ".join("-" if v is None else f"{v:.1f}" for v in r["seconds_to"][t])  # noqa: E731
            rows.append([r["experiment"], f"{100 * acc:.2f} +- {100 * acc_sd:.2f} ({r['seeds']})", f"{secs:.1f}",
                         f"{secs / bare:.1f}x" if bare else "-", to("0.99"), to("0.995"),
                         f"{r['train_flops_per_image'] / 1e6:.1f}", f"{r['train_flops_per_run'] / 1e12:.2f}",
                         f"{100 * r['fraction_of_matmul_peak']:.1f}%"])
        lines += ["", table(rows, ["recipe", "test % (seeds)", "train s", "/ (b) epoch", "s to 99% val",
                                   "s to 99.5% val", "MFLOP/image", "TFLOP/run", "of peak"])]
        lines.append(f"matmul peak {report['machine']['matmul_peak_gflops']:,.0f} GFLOP/s "
                     f"({report['machine']['matmul_dtype']}); {report['machine'].get('gpu') or report['machine']['cpu']}")
    la = report["load_average"]
    lines.append(f"load average (1 min) {la['start'][0]:.1f} at start, {la['end'][0]:.1f} at end, "
                 f"on {report['machine']['cores']} cores")
    return "\n".join(lines)


def main(argv=None):
    args = parse(argv)
    common = [f"trainer={args.accelerator}", *([f"data.root={args.data_root}"] if args.data_root else []),
              *args.overrides]
    skip = 1 if args.compile else 0  # compiling happens in the first epoch: run one more, and leave it out
    bench = [*common, f"epochs={args.epochs + skip}", *([f"model={args.model}"] if args.model else []),
             *([f"batch_size={args.batch_size}"] if args.batch_size else []),
             *(["callbacks=[default,compile]"] if args.compile else [])]
    cfg = compose(bench)  # a bad override fails here, before anything runs
    # A new folder (with _1, _2... when it exists), as for training runs: never an earlier benchmark's.
    out = Path(new_run_dir(args.out or f"outputs/bench/{datetime.now():%Y-%m-%d/%H-%M-%S}"))
    work = out / "runs"  # each measurement's log and result; the real path's run folders are deleted
    work.mkdir()
    load_start = os.getloadavg()
    net = cfg.model._target_.rsplit(".", 1)[1]
    print(f"benchmark: {net}, batch {cfg.batch_size}, {args.epochs} epoch(s) x {args.repeats} repeats, "
          f"trainer={args.accelerator}; load average {load_start[0]:.1f} on {os.cpu_count()} cores; {out}", flush=True)

    results = {name: [] for name in args.pipelines}
    for r in range(args.repeats if args.pipelines else 0):
        # Rotate the order each repeat: no pipeline always goes first, or always runs after the same one.
        k = r % len(args.pipelines)
        for name in args.pipelines[k:] + args.pipelines[:k]:
            res = spawn(name, bench, work, f"{name}-{r}", args.threads)
            res["compile_epoch_seconds"] = res["epoch_seconds"][:skip]
            res["epoch_seconds"], res["epoch_cpu_seconds"] = res["epoch_seconds"][skip:], res["epoch_cpu_seconds"][skip:]
            results[name].append(res)
            print(f"  {PIPELINES[name]}: {statistics.median(res['epoch_seconds']):.2f} s/epoch "
                  f"(repeat {r + 1}/{args.repeats})", flush=True)
    n_train = next(iter(results.values()))[0]["train_images"] if results else None
    summary, ratios = summarise(results, n_train)

    target = None
    if args.target > 0:
        print(f"  training the default config until {args.target:.0%} validation accuracy ...", flush=True)
        res = spawn("real", common, work, "target", args.threads, stop_at=args.target)
        hit = res["reached"]
        target = {"target": args.target, "overrides": common, "reached": hit is not None,
                  "seconds": round(hit["time"] - res["started"], 2) if hit else None,
                  "seconds_in_fit": round(hit["time"] - res["fit_started"], 2) if hit else None,
                  "epoch": hit["epoch"] if hit else None, "val_acc": round(hit["val_acc"], 4) if hit else None,
                  "epoch_seconds": res["epoch_seconds"], "peak_rss_mb": res["peak_rss_mb"]}
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    augmentation = augment_cost(cfg, device) if args.pipelines else None
    peak = matmul_peak(device)
    recipes = {}
    for name in args.recipes:
        runs = []
        for seed in range(args.seeds):
            print(f"  experiment={name} seed={seed}: the whole recipe ...", flush=True)
            res = spawn("real", [*common, f"experiment={name}", f"seed={seed}"], work, f"{name}-{seed}", args.threads)
            runs.append({k: res[k] for k in ("train_seconds", "test_acc", "val_acc", "epoch_seconds",
                                             "val_acc_epochs", "train_images")})
        recipes[name] = recipe_report(name, runs, compose([*common, f"experiment={name}"]), peak)
    for run in work.iterdir():  # checkpoints and logs of the real path: not results
        if run.is_dir():
            shutil.rmtree(run)

    report = {
        "command": " ".join(["python -m mnist_lit.bench", *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": {**machine(), "torch_threads": args.threads or torch.get_num_threads(),
                    "matmul_peak_gflops": peak, "matmul_dtype": "bfloat16" if device.type == "cuda" else "float32"},
        "load_average": {"start": [round(v, 2) for v in load_start], "end": [round(v, 2) for v in os.getloadavg()]},
        "setup": {"model": OmegaConf.to_container(cfg.model, resolve=True), "batch_size": cfg.batch_size,
                  "train_images": n_train, "epochs": args.epochs, "repeats": args.repeats,
                  "accelerator": args.accelerator, "overrides": bench},
        "pipelines": summary,
        "ratios": ratios,
        "augmentation": augmentation,
        "time_to_target": target,
        "recipes": recipes,
    }
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + format_report(report) + f"\nwrote {out / 'bench.json'}")
    return report


if __name__ == "__main__":
    main()
