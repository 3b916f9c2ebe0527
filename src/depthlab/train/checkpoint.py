"""Checkpoints: atomic, safe to load, and complete enough to resume bit for bit.

A checkpoint at step s is two files in ``RUN_DIR/checkpoints/``:

* ``step-{s:08d}.safetensors`` — the model's ``state_dict`` (parameters and buffers), safetensors format,
  with ``{"step": s}`` in its metadata;
* ``step-{s:08d}.state.pt`` — trainer state: optimizer state, scheduler state (the step), the running
  training metrics, the best validation record, elapsed time and every RNG state (Python, NumPy, torch
  CPU and CUDA), all as tensors and plain Python values so ``torch.load(weights_only=True)`` reads it.

Then a pointer file, ``last.json`` (or ``best.json``), is replaced to name them. Each file is written to a
temporary file in the same directory, flushed, fsynced and renamed over its target (then the directory is
fsynced), so a crash at any instant leaves either the old or the new checkpoint, never a torn one.

``last.json`` also names, under ``"previous"``, the last checkpoint before it that the trainer wrote or
loaded, so a resume whose newest checkpoint was damaged afterwards (disk error, a partial copy) can fall
back to it; files no pointer names — neither ``last.json``, its ``previous``, nor ``best.json`` — are
deleted after the pointer moves. A run directory therefore holds at most three checkpoints.

Reading is defensive: every loader raises :class:`~depthlab.errors.CheckpointError` whose one-line message
names the file and what is wrong with it (missing, empty, truncated, not a safetensors file, not a trainer
state, weights of a different model, a pointer that is not valid JSON), and reading never writes.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import random
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from depthlab.errors import CheckpointError
from depthlab.io import write_bytes, write_text

__all__ = [
    "CheckpointError",
    "capture_rng",
    "restore_rng",
    "save_checkpoint",
    "load_pointer",
    "load_weights",
    "load_trainer_state",
    "fit_weights",
    "model_state",
    "Pointer",
    "TrainerState",
]


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
    """What ``last.json``/``best.json`` say: the checkpoint's step and file names (in the same folder),
    the checkpoint before it (``last.json`` only) and any extra values (``best.json``: the record)."""

    step: int
    weights: str
    state: str | None
    extra: dict[str, Any]
    previous: Pointer | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "weights": self.weights, "state": self.state}
        if self.previous is not None:
            out["previous"] = {k: v for k, v in self.previous.to_dict().items() if k != "previous"}
        return {**out, **self.extra}


def _name(step: int, prefix: str = "step") -> str:
    return f"{prefix}-{step:08d}"


def save_checkpoint(
    folder: Path,
    kind: str,
    step: int,
    weights: dict[str, torch.Tensor],
    trainer_state: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
    previous: Pointer | None = None,
) -> Pointer:
    """Write a ``kind`` ("last" or "best") checkpoint at ``step`` and move ``{kind}.json`` to it.

    "best" checkpoints hold weights only (``trainer_state=None``). ``previous`` (for "last"): the last
    checkpoint known to be good, kept as the fallback of a resume (ignored unless older than ``step``).
    Returns the new pointer.
    """
    # A run directory deleted under the trainer must not come back holding a lone checkpoint: its
    # config.json, written when the run started, is the sign that the directory is still the run's.
    if not (folder.parent / "config.json").is_file():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(folder.parent / "config.json"))
    folder.mkdir(exist_ok=True)
    base = _name(step, "step" if kind == "last" else kind)
    weights_file = f"{base}.safetensors"
    blob = save_safetensors(weights, metadata={"step": str(step)})
    state_file = f"{base}.state.pt" if trainer_state is not None else None
    # Serialised before any file is opened, so the only thing that can fail on disk is a plain write.
    state_blob = _torch_bytes(trainer_state) if trainer_state is not None else b""
    if previous is not None and (kind != "last" or previous.step >= step):
        previous = None
    if previous is not None:
        previous = Pointer(previous.step, previous.weights, previous.state, {})
    pointer = Pointer(step, weights_file, state_file, dict(extra or {}), previous)
    try:
        write_bytes(folder / weights_file, blob)
        if state_file is not None:
            write_bytes(folder / state_file, state_blob)
        # Not write_json: a best record may hold a non-finite evaluation loss, which a resume reads back.
        write_text(folder / f"{kind}.json", json.dumps(pointer.to_dict(), indent=1) + "\n")
    except BaseException:
        # The pointer still names the previous checkpoint; files of this one that made it to disk go.
        with contextlib.suppress(OSError):
            prune(folder)
        raise
    prune(folder)
    return pointer


def _torch_bytes(values: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(values, buffer)
    return buffer.getvalue()


def prune(folder: Path) -> None:
    """Delete checkpoint files no pointer names, and stale temporary files.

    If a pointer cannot be read, only temporary files are deleted: which checkpoint files it meant is
    unknown, and a damaged pointer must not cost the checkpoints too.
    """
    keep: set[str] | None = set()
    for kind in ("last", "best"):
        try:
            pointer = load_pointer(folder, kind)
        except CheckpointError:
            keep = None
            break
        while pointer is not None:
            keep.update(f for f in (pointer.weights, pointer.state) if f)
            pointer = pointer.previous
    for entry in folder.iterdir():
        stale_tmp = entry.name.startswith(".") and entry.name.endswith(".tmp")
        stale_ckpt = keep is not None and entry.suffix in (".safetensors", ".pt") and entry.name not in keep
        if stale_tmp or stale_ckpt:
            entry.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ reading
def _damaged(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: {what}")


def _file_name(value: Any, key: str, suffix: str, path: Path) -> str:
    """A file name a pointer gives: a plain name in the pointer's own folder (no directories)."""
    if (
        not isinstance(value, str)
        or not value.endswith(suffix)
        or Path(value).name != value
        or value[0] == "."
    ):
        raise _damaged(path, f"not a valid pointer file ({key!r} must name a *{suffix} file, got {value!r})")
    return value


def _pointer_from(data: Any, path: Path, nested: bool = False) -> Pointer:
    if not isinstance(data, dict):
        raise _damaged(path, f"not a valid pointer file (expected a JSON object, got {type(data).__name__})")
    missing = [k for k in ("step", "weights") if k not in data]
    if missing:
        raise _damaged(path, f"not a valid pointer file (no {' or '.join(map(repr, missing))})")
    step = data["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise _damaged(
            path, f"not a valid pointer file ('step' must be a non-negative integer, got {step!r})"
        )
    weights = _file_name(data["weights"], "weights", ".safetensors", path)
    state = data.get("state")
    if state is not None:
        state = _file_name(state, "state", ".state.pt", path)
    previous = None
    if not nested and data.get("previous") is not None:
        previous = _pointer_from(data["previous"], path, nested=True)
    extra = {k: v for k, v in data.items() if k not in ("step", "weights", "state", "previous")}
    return Pointer(step, weights, state, extra, previous)


def load_pointer(folder: Path, kind: str) -> Pointer | None:
    """``{kind}.json`` of ``folder`` (``None`` if there is none); :class:`CheckpointError` if it is damaged."""
    path = folder / f"{kind}.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = "empty file" if path.is_file() and path.stat().st_size == 0 else str(exc)
        raise _damaged(path, f"damaged pointer file, not valid JSON ({why})") from None
    return _pointer_from(data, path)


def _read(path: Path, named_by: str | None) -> bytes:
    by = f" (named by {named_by})" if named_by else ""
    if not path.is_file():
        raise _damaged(path, f"checkpoint file is missing{by}")
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise _damaged(path, f"cannot read checkpoint file{by}: {exc.strerror or exc}") from None
    if not blob:
        raise _damaged(path, f"checkpoint file is empty (0 bytes){by}")
    return blob


def load_weights(path: Path, named_by: str | None = None) -> tuple[dict[str, torch.Tensor], int]:
    """(state dict, step) of a safetensors checkpoint; the step is -1 if its metadata has none.

    ``named_by``: the pointer file that named ``path``, for the error message.
    """
    blob = _read(path, named_by)
    try:
        weights = load_safetensors(blob)
    except SafetensorError as exc:
        raise _damaged(path, f"damaged or truncated safetensors file ({exc}; {len(blob)} bytes)") from None
    # The header is an 8-byte little-endian length and that much JSON; load() has just validated both.
    header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
    step = (header.get("__metadata__") or {}).get("step", "-1")
    try:
        return weights, int(step)
    except ValueError:
        raise _damaged(path, f"not a depthlab checkpoint (metadata step {step!r})") from None


@dataclass(frozen=True, kw_only=True)
class TrainerState:
    """What ``*.state.pt`` holds next to a ``last`` checkpoint's weights: its keys are these fields, in this
    order, named here once. The trainer writes one (:meth:`depthlab.train.loop.TrainState.to_checkpoint`) and
    a resume reads one back (:meth:`~depthlab.train.loop.TrainState.restore`); a field with a default is one
    an older checkpoint may lack, and the default is what it then means.

    ``running``: the (loss sum, errors, images) of the training batches since the last row, summed over
    ranks; ``elapsed_s``: wall time of every session so far; ``train_time_s``: seconds in training steps;
    ``phases_s``: seconds per phase (``summary.json``'s ``time_s``); ``rng``: every RNG state, one per rank.
    """

    step: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None = None  # {"name", "step"}: a record; a resume derives it from ``step``
    running: torch.Tensor
    elapsed_s: float
    train_time_s: float
    images_seen: int
    warm_start: dict[str, Any] | None = None  # before warm starts: none
    phases_s: dict[str, float] = field(default_factory=dict)  # before summary.json's time_s: none measured
    rng: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The dict ``torch.save`` writes (not :func:`dataclasses.asdict`, which would copy every tensor)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainerState:
        """A loaded state dict (checked by :func:`load_trainer_state`); keys this depthlab does not know are
        ignored."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


TRAINER_STATE_KEYS = tuple(
    f.name for f in fields(TrainerState) if f.default is MISSING and f.default_factory is MISSING
)  # the keys every trainer state has: a resume needs them


def load_trainer_state(path: Path, named_by: str | None = None) -> dict[str, Any]:
    """The trainer state saved next to a ``last`` checkpoint, checked for the keys a resume needs."""
    blob = _read(path, named_by)
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # whatever torch.load raises on these bytes, the file is what is wrong
        first = str(exc).strip().split("\n", 1)[0][:200]
        raise _damaged(path, f"damaged or truncated trainer state ({type(exc).__name__}: {first})") from None
    if not isinstance(state, dict):
        raise _damaged(path, f"not a depthlab trainer state (a {type(state).__name__}, not a dict)")
    missing = [k for k in TRAINER_STATE_KEYS if k not in state]
    if missing:
        raise _damaged(path, f"not a depthlab trainer state (no {', '.join(missing)})")
    return state


def fit_weights(model: nn.Module, weights: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """Load ``weights`` into ``model``, or raise :class:`CheckpointError` (one line naming ``path``) when
    they are the weights of a different model: keys missing or unexpected, or shapes that differ.

    ``what`` names the model for the message (e.g. ``"resnet20 with 10 classes"``).
    """
    ours = model.state_dict()
    missing = [k for k in ours if k not in weights]
    unexpected = [k for k in weights if k not in ours]
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(ours[k].shape)}"
        for k in ours
        if k in weights and tuple(weights[k].shape) != tuple(ours[k].shape)
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if keys:
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            problems.append(f"{len(keys)} {label} ({shown})")
    if problems:
        raise _damaged(path, f"weights of a different model than {what}: " + "; ".join(problems))
    model.load_state_dict(weights)
