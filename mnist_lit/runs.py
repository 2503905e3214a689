"""Run folders: where a run writes (new, or the resumed run's own), Hydra's resolvers, a resumed run's config."""
import itertools
import shutil
import sys
from datetime import datetime
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value is out of range; the message says how to fix it."""


_new_dirs: dict = {}


def new_run_dir(base: str) -> str:
    """base, else base_1, base_2, ...: the first free one, created at once so that no other run can take it."""
    if base not in _new_dirs:  # Hydra resolves the run folder more than once: the same answer each time
        for i in itertools.count():
            path = Path(base if i == 0 else f"{base}_{i}")
            try:
                path.mkdir(parents=True)
                break
            except FileExistsError:
                continue
            except OSError as e:  # inside Hydra's resolver: its report of this would be a page long
                print(f"error: cannot create the run folder {path}: {e.strerror or e}: run from a folder you can "
                      f"write to, or choose one with hydra.run.dir=DIR", file=sys.stderr)
                sys.exit(1)
        _new_dirs[base] = str(path)
    return _new_dirs[base]


def resumed_folder(resume, ckpt_path) -> str | None:
    """The existing run folder that resume=<run> or ckpt_path=<run>/checkpoints/x.ckpt continues, if any."""
    if resume and (Path(resume) / ".hydra").is_dir():
        return str(resume)  # (when it is not a run folder, main says so; an error here would be a long traceback)
    if ckpt_path and (Path(ckpt_path).parent.parent / ".hydra").is_dir():
        return str(Path(ckpt_path).parent.parent)
    return None


def run_folder(resume, ckpt_path, fresh: str) -> str:
    """The folder a run writes to: the resumed run's own folder, else a new one."""
    return resumed_folder(resume, ckpt_path) or new_run_dir(fresh)


def hydra_subdir(resume, ckpt_path) -> str:
    """Where Hydra saves a run's config: a resumed run keeps the original .hydra/ and adds .hydra/resumed-<time>/."""
    return f".hydra/resumed-{datetime.now():%Y-%m-%d_%H-%M-%S}" if resumed_folder(resume, ckpt_path) else ".hydra"


def auto_accelerator() -> str:
    """trainer=auto: cuda when torch sees a CUDA GPU, else cpu (Apple's GPU is trainer=mps, chosen by hand)."""
    return "gpu" if torch.cuda.is_available() else "cpu"


def auto_precision() -> str:
    """trainer=auto: bf16 mixed precision where the GPU has bf16 (Ampere and later), else float32."""
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


for _name, _resolver in (("new_dir", new_run_dir), ("run_folder", run_folder), ("hydra_subdir", hydra_subdir),
                         ("auto_accelerator", auto_accelerator), ("auto_precision", auto_precision)):
    OmegaConf.register_new_resolver(f"mnist_lit.{_name}", _resolver, use_cache=True)


def resumed_config(cfg: DictConfig) -> DictConfig:
    """The resumed run's own config: its saved overrides (.hydra/overrides.yaml), then this command line's."""
    if cfg.get("resume") and not (Path(cfg.resume) / ".hydra").is_dir():
        raise ConfigError(f"resume={cfg.resume} is not a run folder (it has no .hydra/): pass a run's folder, "
                          f"e.g. resume=outputs/<date>/<time>")
    run = Path(HydraConfig.get().runtime.output_dir)
    saved = run / ".hydra" / "overrides.yaml"
    if not saved.is_file():  # a checkpoint outside a run folder: this command line's config as it is
        return cfg
    now = list(HydraConfig.get().overrides.task)
    key = lambda o: o.split("=", 1)[0].lstrip("+~")  # noqa: E731
    given = {key(o) for o in now}
    overrides = [o for o in OmegaConf.load(saved) if key(o) not in given] + now
    cfg = hydra.compose(HydraConfig.get().job.config_name, overrides=overrides)
    if HydraConfig.get().output_subdir:  # record what actually runs beside Hydra's record of the command line
        OmegaConf.save(cfg, run / HydraConfig.get().output_subdir / "config.yaml")
    return cfg


def drop_if_unused(run_dir: Path):
    """Removes a new run's folder when the run stopped before writing anything but Hydra's config and log."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log"}:
        shutil.rmtree(run_dir, ignore_errors=True)
