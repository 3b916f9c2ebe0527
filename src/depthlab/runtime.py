"""The three helpers the trainer and the study engine share: seeding, atomic JSON writes, device choice.

One definition each, so a run's step-0 weights, a study's ``diagnostics.json`` and a run's ``config.json``
are produced the same way wherever they are written. Nothing is imported at module import time beyond the
standard library (``depthlab experiment --help`` stays fast); torch is imported on first use.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICES", "seed_everything", "select_device", "strict_json", "read_number", "write_json_atomic"]

DEVICES = ("auto", "cpu", "cuda")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (torch seeds every CUDA device too).

    NumPy takes seeds below 2³², so larger seeds are reduced modulo 2³²; the trainer calls this right before
    building the model, so a model built after ``seed_everything(config.seed)`` has the run's step-0 weights.
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def write_json_atomic(path: str | Path, values: Any) -> None:
    """Write ``values`` as indented JSON (one trailing newline) so that a reader, or a crash at any
    instant, sees the old file or the new one, never half of one: a temporary file in the same folder is
    written, fsynced and renamed over ``path`` (:func:`depthlab.train.checkpoint.atomic_write`, the one
    atomic-write primitive). Missing parent folders are created."""
    from depthlab.train.checkpoint import atomic_write_text

    atomic_write_text(Path(path), json.dumps(strict_json(values), indent=1, allow_nan=False) + "\n")


def strict_json(values: Any) -> Any:
    """``values`` with every non-finite float (NaN, ±inf) replaced by ``None``: JSON has no such numbers, and
    Python's ``NaN``/``Infinity`` extensions are rejected by strict parsers (``jq``, browsers, other
    languages). A reader sees ``null`` where a diverged run's loss was NaN."""
    if isinstance(values, float):
        return values if math.isfinite(values) else None
    if isinstance(values, dict):
        return {k: strict_json(v) for k, v in values.items()}
    if isinstance(values, (list, tuple)):
        return [strict_json(v) for v in values]
    return values


def read_number(value: Any) -> float:
    """The reader's half of :func:`strict_json`: a number read back from a depthlab JSON file, ``null`` (a
    non-finite number when it was written) as NaN — "unknown", which every statistic of
    :mod:`depthlab.studies.stats` withholds its result from. One rule for every reader of runs and studies
    (losses, gradients, responses, landscapes, lesion accuracies), so that a ``null`` never crashes one."""
    return math.nan if value is None else float(value)


def select_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """The device a run uses: ``auto`` → CUDA when available (GPU ``local_rank`` modulo the GPU count),
    else the CPU; ``cuda`` without a GPU is a :class:`~depthlab.train.ConfigError` naming the fix."""
    import torch

    if preference not in DEVICES:
        from depthlab.train.config import ConfigError

        raise ConfigError(f"unknown device {preference!r}; choose from: {', '.join(DEVICES)}")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from depthlab.train.config import ConfigError

            raise ConfigError("device=cuda but no CUDA device is available; use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")
