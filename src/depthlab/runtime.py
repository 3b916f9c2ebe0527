"""The two helpers the trainer, the analyses and the study engine share: seeding and the choice of device.

One definition each, so a run's step-0 weights and its device are chosen the same way wherever a model is
built. Nothing is imported at module import time beyond the standard library and :mod:`depthlab.errors`
(``depthlab study --help`` stays fast); torch is imported on first use. Atomic writes and the JSON rule
for non-finite numbers live in :mod:`depthlab.io`.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from depthlab.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICES", "seed_everything", "select_device"]

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


def select_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """The device a run uses: ``auto`` → CUDA when available (GPU ``local_rank`` modulo the GPU count),
    else the CPU; ``cuda`` without a GPU is a :class:`~depthlab.errors.ConfigError` naming the fix."""
    import torch

    if preference not in DEVICES:
        raise ConfigError(f"unknown device {preference!r}; choose from: {', '.join(DEVICES)}")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device=cuda but no CUDA device is available; use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")
