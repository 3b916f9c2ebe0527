"""Checkpoints: atomic, safe to load, and complete enough to resume bit for bit.

A checkpoint at step s is two files in ``RUN_DIR/checkpoints/``:

* ``step-{s:08d}.safetensors`` — the model's ``state_dict`` (parameters and buffers), safetensors format,
  with ``{"step": s}`` in its metadata;
* ``step-{s:08d}.state.pt`` — trainer state: optimizer state, scheduler state (the step), the running
  training metrics, the best validation record, elapsed time and every RNG state (Python, NumPy, torch
  CPU and CUDA), all as tensors and plain Python values so ``torch.load(weights_only=True)`` reads it.

Then a pointer file, ``last.json`` (or ``best.json``), is replaced to name them. Each file is written to a
temporary file in the same directory, flushed, fsynced and renamed over its target (then the directory is
fsynced), so a crash at any instant leaves either the old or the new checkpoint, never a torn one. Files no
pointer names are deleted after the pointer moves.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from depthlab.errors import DepthlabError

__all__ = [
    "CheckpointError",
    "atomic_write",
    "atomic_write_text",
    "capture_rng",
    "restore_rng",
    "save_checkpoint",
    "load_pointer",
    "load_weights",
    "load_trainer_state",
    "model_state",
]


class CheckpointError(DepthlabError):
    """A checkpoint that is missing or does not match the run."""


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` through ``write(binary file)`` via a temporary file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _FILE_MODE)  # mkstemp creates 0600; run directories are meant to be shared
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


# ------------------------------------------------------------------------------------------------- RNG
def capture_rng() -> dict[str, Any]:
    """Every RNG state as tensors and plain values (``torch.load(weights_only=True)``-safe)."""
    version, mt_state, gauss = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(mt_state), "gauss": gauss},
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


# ------------------------------------------------------------------------------------------ checkpoints
def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of the state dict (safetensors needs contiguous, unshared tensors)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


@dataclass(frozen=True)
class Pointer:
    step: int
    weights: str
    state: str | None
    extra: dict[str, Any]


def _name(step: int, prefix: str = "step") -> str:
    return f"{prefix}-{step:08d}"


def save_checkpoint(
    folder: Path,
    kind: str,
    step: int,
    weights: dict[str, torch.Tensor],
    trainer_state: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a ``kind`` ("last" or "best") checkpoint at ``step`` and move ``{kind}.json`` to it.

    "best" checkpoints hold weights only (``trainer_state=None``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = _name(step, "step" if kind == "last" else kind)
    weights_file = f"{base}.safetensors"
    blob = save_safetensors(weights, metadata={"step": str(step)})
    atomic_write(folder / weights_file, lambda f: f.write(blob))
    state_file = None
    if trainer_state is not None:
        state_file = f"{base}.state.pt"
        atomic_write(folder / state_file, lambda f: torch.save(trainer_state, f))
    pointer = {"step": step, "weights": weights_file, "state": state_file, **(extra or {})}
    atomic_write_text(folder / f"{kind}.json", json.dumps(pointer, indent=1) + "\n")
    prune(folder)


def prune(folder: Path) -> None:
    """Delete checkpoint files no pointer names, and stale temporary files."""
    keep = set()
    for kind in ("last", "best"):
        pointer = load_pointer(folder, kind)
        if pointer is not None:
            keep.update(f for f in (pointer.weights, pointer.state) if f)
    for entry in folder.iterdir():
        stale_tmp = entry.name.startswith(".") and entry.name.endswith(".tmp")
        stale_ckpt = entry.suffix in (".safetensors", ".pt") and entry.name not in keep
        if stale_tmp or stale_ckpt:
            entry.unlink(missing_ok=True)


def load_pointer(folder: Path, kind: str) -> Pointer | None:
    path = folder / f"{kind}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    extra = {k: v for k, v in data.items() if k not in ("step", "weights", "state")}
    return Pointer(int(data["step"]), data["weights"], data.get("state"), extra)


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """(state dict, step) of a safetensors checkpoint."""
    blob = path.read_bytes()
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return load_safetensors(blob), int(meta.get("step", -1))


def load_trainer_state(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)
