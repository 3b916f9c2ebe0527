"""Shared pieces of the "why it works" analyses: evaluation on a fixed image set, and resumable results.

* :func:`evaluate` — cross-entropy and top-1 correctness of a model on a fixed set of (already normalised)
  images, with batch norm in evaluation mode (running statistics), main logits only (a GoogLeNet's aux
  heads never run in eval mode). Per-image correctness is returned so that two configurations evaluated on
  the same images can be compared pairwise.
* :func:`binomial_se` — the sampling error of an error rate measured on ``n`` images.
* :class:`PartialResults` — a small JSON file of finished work items, rewritten atomically after each one,
  so that a killed analysis continues where it stopped; it is discarded when its fingerprint (what the
  analysis was asked to compute, on which weights) differs from the current one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.errors import DepthlabError
from depthlab.io import read_json, write_text
from depthlab.models.base import main_logits

__all__ = [
    "AnalysisError",
    "EvalResult",
    "Progress",
    "evaluate",
    "binomial_se",
    "PartialResults",
]

# progress(done, total): called after every unit of work (an evaluation, a grid point, ...).
Progress = Callable[[int, int], None]


class AnalysisError(DepthlabError, ValueError):
    """An analysis cannot run on this model or input (e.g. lesion's residual mode on a plain net)."""


@dataclass(frozen=True, eq=False)
class EvalResult:
    """``loss``: mean cross-entropy; ``correct``: bool (N,) per image; ``error`` = 1 − mean(correct)."""

    loss: float
    correct: torch.Tensor

    @property
    def images(self) -> int:
        return int(self.correct.numel())

    @property
    def error(self) -> float:
        return 1.0 - float(self.correct.float().mean()) if self.images else float("nan")


@torch.inference_mode()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 100
) -> EvalResult:
    """Mean cross-entropy and per-image correctness of ``model`` (eval mode) on ``images`` (N, C, H, W).

    The model's train/eval flag is restored afterwards. Batches of ``batch_size`` keep the working set in
    cache on a CPU (measured fastest at 100 on this project's 2-core machine).
    """
    was_training = model.training
    model.eval()
    try:
        loss_sum = 0.0
        correct = []
        for lo in range(0, images.shape[0], batch_size):
            x = images[lo : lo + batch_size]
            y = labels[lo : lo + batch_size]
            logits = main_logits(model(x))
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct.append(logits.argmax(1) == y)
    finally:
        model.train(was_training)
    n = images.shape[0]
    # Per-image flags are returned on the CPU whatever the model's device (callers pair them with numpy).
    flags = torch.cat(correct).cpu() if correct else torch.zeros(0, dtype=torch.bool, device="cpu")
    return EvalResult(loss_sum / max(n, 1), flags)


def binomial_se(error: float, n: int) -> float:
    """sqrt(p(1−p)/n): the standard error of an error rate ``p`` measured on ``n`` images."""
    if n <= 0 or not math.isfinite(error):
        return float("nan")
    return math.sqrt(max(error * (1.0 - error), 0.0) / n)


class PartialResults:
    """Finished work items of one analysis, kept in ``path`` (JSON) until the analysis completes.

    ``fingerprint`` is any JSON-able description of the work (config, model, checkpoint step); a file whose
    fingerprint differs is ignored and overwritten. Every :meth:`put` rewrites the file atomically (temp
    file + rename), so a kill at any moment leaves either the previous or the new version, never a torn one.
    """

    def __init__(self, path: Path | None, fingerprint: dict[str, Any]) -> None:
        self.path = path
        self.fingerprint = json.loads(json.dumps(fingerprint))  # normalise tuples → lists
        self.items: dict[str, Any] = {}
        self.resumed = False
        if path is not None and path.is_file():
            try:
                stored = read_json(path)
            except (OSError, json.JSONDecodeError):
                stored = None
            if isinstance(stored, dict) and stored.get("fingerprint") == self.fingerprint:
                self.items = dict(stored.get("items", {}))
                self.resumed = bool(self.items)

    def __contains__(self, key: str) -> bool:
        return key in self.items

    def get(self, key: str) -> Any:
        return self.items[key]

    def put(self, key: str, value: Any) -> None:
        self.items[key] = value
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text(self.path, json.dumps({"fingerprint": self.fingerprint, "items": self.items}))

    def discard(self) -> None:
        """Remove the file (the analysis finished and wrote its result)."""
        if self.path is not None:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
