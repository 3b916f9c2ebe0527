"""Evaluation: a model's plain cross-entropy and top-1 error over a split, and a run's checkpoint tested.

* :func:`evaluate` — over every image of a loader (summed across ranks), the forward pass under the run's
  precision; with ``per_image``, which images it got right (the last step's evaluation writes them to
  ``correct-<split>.npy``, read back by :func:`load_correct`);
* :func:`evaluate_run` — ``depthlab eval``: a run's ``best`` or ``last`` checkpoint on a test split, appended
  to ``RUN_DIR/eval.jsonl``;
* :func:`round_metric` — a number as a metrics row stores it (6 significant digits).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from depthlab.data import DataBundle, Loader, load_data, make_loader
from depthlab.errors import CheckpointError
from depthlab.models.base import main_logits
from depthlab.runtime import select_device
from depthlab.train import distributed
from depthlab.train.checkpoint import load_pointer
from depthlab.train.config import ConfigError
from depthlab.train.precision import autocast
from depthlab.train.rundir import MetricsLog, load_run, load_run_model
from depthlab.train.setup import preflight, prepare_bundle, session_precision

__all__ = ["Evaluation", "correct_path", "evaluate", "evaluate_run", "load_correct", "round_metric"]


def round_metric(value: float) -> float:
    """``value`` with 6 significant digits, as metrics rows and summaries store numbers."""
    return float(f"{value:.6g}")


@dataclass(frozen=True)
class Evaluation:
    """Plain cross-entropy and top-1 error over ``images`` images; ``correct`` (when asked for): one bool
    per image, in the split's order, gathered from every rank."""

    loss: float
    error: float
    images: int
    correct: np.ndarray | None = None


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Loader,
    ctx: distributed.DistContext,
    precision: str = "fp32",
    *,
    per_image: bool = False,
) -> Evaluation:
    """Plain cross-entropy and top-1 error over every image of ``loader`` (summed across ranks), the forward
    pass under ``precision`` (logits are cast to fp32 before the loss). ``per_image``: also return which
    images were classified correctly (each rank's contiguous shard, concatenated in rank order)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # loss sum, errors, images
    correct: list[torch.Tensor] = []
    context = autocast(precision, ctx.device)
    for x, y in loader.epoch(0):
        if y.numel() == 0:
            continue
        with context:
            logits = main_logits(model(x))
        logits = logits.float()
        wrong = logits.argmax(1) != y
        sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
        sums[1] += wrong.sum()
        sums[2] += y.numel()
        if per_image:
            correct.append(~wrong)  # kept on the device: one copy to the host at the end, not one per batch
    model.train(was_training)
    loss, errors, n = distributed.all_reduce_sum(ctx, sums).tolist()
    flags: np.ndarray | None = None
    if per_image:
        local = torch.cat(correct).cpu().numpy() if correct else np.zeros(0, dtype=bool)
        if ctx.distributed:
            parts: list[Any] = [None] * ctx.world_size
            torch.distributed.all_gather_object(parts, local)
            local = np.concatenate(parts)
        flags = local.astype(bool)
    return Evaluation(loss / max(n, 1), errors / max(n, 1), int(n), flags)


def correct_path(run_dir: Path, split: str) -> Path:
    return run_dir / f"correct-{split}.npy"


def load_correct(run_dir: str | os.PathLike[str], split: str) -> np.ndarray | None:
    """Which images of ``split`` (``test``, ``val`` or ``train_eval``) the run's final evaluation got right:
    one bool per image, in the evaluated split's order (after ``test_subset``), the same order for every run
    of the same data settings — what a per-image (McNemar) test pairs. ``None`` when the run has not
    written it (not finished, a split it does not evaluate, or images that failed to decode);
    :class:`CheckpointError` naming the file when it is damaged."""
    path = correct_path(Path(run_dir), split)
    if not path.is_file():
        return None
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise CheckpointError(f"{path}: damaged, not a NumPy array file ({exc})") from None
    if values.dtype != np.bool_ or values.ndim != 1:
        raise CheckpointError(
            f"{path}: not per-image correctness (a {values.dtype} array of shape {values.shape})"
        )
    return values


def evaluate_run(
    run_dir: str | os.PathLike[str],
    data: str | None = None,
    checkpoint: str = "best",
    data_dir: str | None = None,
    device: str = "auto",
    batch_size: int = 500,
) -> dict[str, Any]:
    """Test metrics of a run's ``best`` or ``last`` checkpoint on the test split of ``data`` (default: the
    run's dataset), appended as one row to ``RUN_DIR/eval.jsonl`` and returned.

    Images are resized to the run's image size and normalised with its training statistics; the forward pass
    runs in the precision the run trained in.
    """
    folder = Path(run_dir)
    config, summary = load_run(folder)
    model = load_run_model(folder, checkpoint)
    pointer = load_pointer(folder / "checkpoints", checkpoint)
    if summary is None or pointer is None:  # load_run_model has already refused both cases
        raise CheckpointError(f"{folder} has no summary.json or no {checkpoint!r} checkpoint")
    trained = summary.data
    lacking = [k for k in ("image_size", "mean", "std") if k not in trained]
    if lacking:
        raise CheckpointError(f"{folder / 'summary.json'}: no {', '.join(lacking)} of the training data")
    name = data or config.data
    bundle = load_data(
        name, data_dir=data_dir or config.data_dir, val_size=0 if data else config.val_size,
        image_size=trained["image_size"], strict=config.strict_data,
    )  # fmt: skip
    if bundle.test is None:
        raise ConfigError(f"{name} has no test split (an image folder needs a test/ subfolder)")
    preflight(model, bundle, config.model)
    ctx = distributed.DistContext(0, 1, 0, select_device(device), owns_group=False)
    model = model.to(device=ctx.device, memory_format=torch.channels_last)
    stats = DataBundle(
        name=bundle.name, train=bundle.test, val=None, test=bundle.test, num_classes=bundle.num_classes,
        in_channels=bundle.in_channels, image_size=bundle.image_size, mean=tuple(trained["mean"]),
        std=tuple(trained["std"]), classes=bundle.classes, source=bundle.source,
        pixel_mean=prepare_bundle(config).pixel_mean if config.normalize == "pixel" else None,
    )  # fmt: skip
    loader = make_loader(stats, bundle.test, batch_size=batch_size, device=ctx.device)
    precision = session_precision(config.precision, config, ctx.device).used  # the run's own
    result = evaluate(model, loader, ctx, precision)
    row = {
        "checkpoint": checkpoint,
        "step": pointer.step,
        "data": name,
        "split": "test",
        "precision": precision,
        "loss": round_metric(result.loss),
        "error": round_metric(result.error),
        "accuracy": round_metric(1 - result.error),
        "images": result.images,
    }
    MetricsLog(folder / "eval.jsonl", True).write([row])
    return row
