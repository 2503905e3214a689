"""Checkpoints that survive crashes: atomic writes, the random state for exact resume, and a compatibility check."""
import errno
import os
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or does not fit this run; the message says how to fix it."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes `name.tmp` then renames it over `name`: a killed or failed write never leaves a half-written `name`."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic on POSIX and Windows: readers see the old file or the new one
        except OSError as e:
            tmp.unlink(missing_ok=True)
            why = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else e.strerror or str(e)
            kept = f"; the previous {path.name} is intact" if path.exists() else ""
            raise CheckpointError(f"could not save checkpoint {path}: {why}{kept}; free space in {path.parent} "
                                  f"(or set run_dir elsewhere) and resume with resume={path.parent.parent}") from e


class RNGState(Callback):
    """Saves torch's random state in checkpoints and restores it, so a resumed run draws the same dropout masks."""

    def state_dict(self):
        # torch tensors only (no numpy state), so checkpoints still load with torch.load(weights_only=True).
        state = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict):
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


def check_compatible(ckpt_path: Path, net: dict, classes: list) -> int | None:
    """Raises CheckpointError unless ckpt_path is a readable checkpoint of the same network and classes; returns the
    epochs it has trained."""
    if not ckpt_path.is_file():
        raise CheckpointError(f"checkpoint {ckpt_path} not found: pass ckpt_path=<run>/checkpoints/last.ckpt "
                              f"or resume=<run folder> of an existing run")
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        hp = ckpt["hyper_parameters"]
    except Exception as e:
        raise CheckpointError(f"{ckpt_path} is not a readable mnist_lit checkpoint ({type(e).__name__}): "
                              f"use another checkpoint, e.g. <run>/checkpoints/best.ckpt") from None
    if hp.get("classes") != classes:
        raise CheckpointError(f"{ckpt_path} was trained on classes {''.join(map(str, hp.get('classes') or []))} "
                              f"but this run's data has {''.join(map(str, classes))}: pass the data=... of that run")
    if hp.get("net") != net:
        diff = sorted(k for k in {*net, *hp.get("net", {})} if net.get(k) != hp.get("net", {}).get(k))
        raise CheckpointError(f"{ckpt_path} holds a different network (model.{', model.'.join(diff)} differ): "
                              f"pass the model overrides of that run, or resume=<run folder> to reuse its config")
    progress = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("total", {})
    return progress.get("processed")
