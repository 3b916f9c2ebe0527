"""A run's set-up, before its first step: the data it trains on, its model at step 0, and checks.

* :func:`prepare_bundle` — ``load_data`` with the run's split, then the fixed ``train_subset`` and
  ``test_subset`` (seeded choices independent of the training seed) and the per-pixel mean;
* :func:`build_model` — ``create_model`` with the dataset's classes and channels, then ``config.init``
  (:func:`reinitialise`); seeded first, it gives the run's step-0 weights;
* :func:`warm_start` — ``config.init_from``'s ``last`` weights copied by name and shape (:class:`WarmStart`);
* :func:`preflight` — refuse data the model cannot train on (labels, channels, image size);
* :func:`session_precision` — the precision a session trains and evaluates in (a resumed run keeps its own).

The trainer (:mod:`depthlab.train.loop`) calls them in that order; the study engine (a run's initial model)
and the analyses (the training split of a run) call them to see exactly what the trainer saw.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from depthlab import create_model
from depthlab.data import DataBundle, load_data
from depthlab.errors import CheckpointError, MissingFileError
from depthlab.train.checkpoint import load_pointer, load_weights
from depthlab.train.config import ConfigError, TrainConfig
from depthlab.train.precision import PrecisionInfo, resolve_precision
from depthlab.train.rundir import load_run

__all__ = [
    "SUBSET_SEED",
    "WarmStart",
    "build_model",
    "preflight",
    "prepare_bundle",
    "reinitialise",
    "session_precision",
    "warm_start",
]

SUBSET_SEED = 0x5EED  # which images train_subset / test_subset keep: fixed, independent of the training seed


def _fixed_subset(n: int, keep: int) -> torch.Tensor:
    """``keep`` of ``n`` indices, a seeded random choice independent of the training seed, sorted (so the
    subset stays in dataset order)."""
    generator = torch.Generator().manual_seed(SUBSET_SEED)
    return torch.randperm(n, generator=generator)[:keep].sort().values


def prepare_bundle(config: TrainConfig) -> DataBundle:
    """The data a run of ``config`` trains and evaluates on: ``load_data`` with the run's split, then the
    fixed ``train_subset`` (a seeded random choice of training images, the same for every seed) and
    ``test_subset`` (the same for test images)."""
    bundle = load_data(
        config.data, data_dir=config.data_dir, download=config.download, val_size=config.val_size,
        seed=0, image_size=config.image_size, strict=config.strict_data,
    )  # fmt: skip
    if config.train_subset is not None:
        n = len(bundle.train)
        if config.train_subset > n:
            raise ConfigError(
                f"train_subset={config.train_subset} is larger than the training split ({n} images)"
            )
        bundle = dataclasses.replace(bundle, train=bundle.train.subset(_fixed_subset(n, config.train_subset)))
    if config.test_subset is not None and bundle.test is not None and config.test_subset < len(bundle.test):
        # The test split itself is never shuffled: the subset keeps dataset order.
        keep = _fixed_subset(len(bundle.test), config.test_subset)
        bundle = dataclasses.replace(bundle, test=bundle.test.subset(keep))
    if config.normalize == "pixel":
        if bundle.streamed:
            raise ConfigError("normalize=pixel needs an in-memory dataset (not an image folder)")
        pixel_mean = bundle.train.images.double().mean(0).div(255).float()  # C×H×W
        bundle = dataclasses.replace(bundle, pixel_mean=pixel_mean)
    return bundle


def reinitialise(model: nn.Module, init: str) -> None:
    """Re-initialise every Conv and Linear layer of ``model`` in place (``init`` of :class:`TrainConfig`):
    ``glorot`` — Glorot & Bengio (2010) uniform, U(±√(6/(fan_in + fan_out))); ``kaiming`` — He et al.
    (2015) normal, std √(2/fan_in); biases 0 in both. ``model`` leaves the builder's initialisation.
    Norm layers and zero-initialised scales are untouched. Draws from torch's global generator."""
    if init == "model":
        return
    if init not in ("glorot", "kaiming"):
        raise ConfigError(f"unknown init {init!r}; choose from: model, glorot, kaiming")
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd | nn.Linear):
            if init == "glorot":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def build_model(config: TrainConfig, bundle: DataBundle) -> nn.Module:
    """``create_model`` with the dataset's classes and channels (model_kwargs may override both), then
    ``config.init``. Seed first (:func:`depthlab.runtime.seed_everything`) for a run's step-0 weights; the
    warm start of ``config.init_from`` is :func:`warm_start`, applied after this."""
    kwargs = dict(config.model_kwargs)
    num_classes = kwargs.pop("num_classes", bundle.num_classes)
    in_channels = kwargs.pop("in_channels", bundle.in_channels)
    model = create_model(config.model, num_classes=num_classes, in_channels=in_channels, **kwargs)
    reinitialise(model, config.init)
    return model


@dataclass(frozen=True)
class WarmStart:
    """What :func:`warm_start` copied: from ``source`` (its ``last`` checkpoint, at ``step``), the tensors
    named in ``copied`` (parameters and buffers), of the ``total`` in the model's state dict."""

    source: str
    step: int
    copied: tuple[str, ...]
    total: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "step": self.step,
            "tensors_copied": len(self.copied),
            "tensors_total": self.total,
            "copied": list(self.copied),
        }


def warm_start(model: nn.Module, config: TrainConfig) -> WarmStart:
    """Copy into ``model`` every parameter and buffer of ``config.init_from``'s ``last`` weights whose name
    and shape match (and, when ``config.init_from_layers`` is set, whose name matches one of its patterns).

    Names are the state-dict keys, so what matches depends on the family's naming. VGG names convs by the
    paper's ``conv{stage}_{index}`` (``stages.{stage-1}.conv{stage}_{index}.conv.weight``) and the head by
    ``fc6``/``fc7``/``fc8`` (``fc1``/``fc2`` with the small head). A's eight convs (conv1_1, conv2_1,
    conv3_1, conv3_2, conv4_1, conv4_2, conv5_1, conv5_2) and its FC layers all exist with the same shapes
    in B, C, D and E of the same width and head (C's 1×1 convs are conv3_3, conv4_3 and conv5_3, which A
    lacks), so a plain warm start of D from A copies 8 convs and 3 FC layers (with BN, their norm
    parameters and running statistics too); D's other five convs keep their initialisation. The paper
    copied only "the first four convolutional layers and the last three fully-connected layers" (§3.1):
    ``init_from_layers=stages.0.conv1_1.*,stages.1.conv2_1.*,stages.2.conv3_1.*,stages.2.conv3_2.*,head.*``.
    """
    if config.init_from is None:
        raise ConfigError("warm_start needs config.init_from (a finished run directory)")
    source = Path(config.init_from)
    if not (source / "config.json").is_file():
        raise MissingFileError(f"init_from={source}: not a run directory (no config.json)")
    _, summary = load_run(source)
    if summary is None or summary.status != "completed":
        status = summary.status if summary is not None else "no summary.json"
        raise ConfigError(
            f"init_from={source}: that run has not finished ({status}); a warm start copies a completed "
            f"run's last weights"
        )
    pointer = load_pointer(source / "checkpoints", "last")
    if pointer is None:
        raise CheckpointError(f"{source / 'checkpoints' / 'last.json'}: file is missing (init_from)")
    weights, _ = load_weights(source / "checkpoints" / pointer.weights, named_by="last.json")
    patterns = config.init_from_layers
    ours = model.state_dict()
    copied = tuple(
        name
        for name, tensor in ours.items()
        if name in weights
        and tuple(weights[name].shape) == tuple(tensor.shape)
        and (not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns))
    )
    if not copied:
        limited = f" and {', '.join(patterns)}" if patterns else ""
        raise ConfigError(
            f"init_from={source}: none of its {len(weights)} tensors matches a parameter or buffer of "
            f"{config.model} by name and shape{limited}; nothing to warm-start from"
        )
    with torch.no_grad():
        for name in copied:
            ours[name].copy_(weights[name])
    return WarmStart(str(source), pointer.step, copied, len(ours))


def preflight(model: nn.Module, bundle: DataBundle, model_name: str) -> None:
    """Refuse, with a message naming the problem, data the model cannot train on."""
    num_classes = getattr(model, "num_classes", None)
    for split_name in ("train", "val", "test"):
        split = getattr(bundle, split_name)
        if split is None or len(split) == 0:
            continue
        labels = split.labels
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or (num_classes is not None and hi >= num_classes):
            raise ConfigError(
                f"{bundle.name} {split_name} labels span {lo}..{hi} but {model_name} has {num_classes} "
                f"classes (labels must be in 0..{num_classes - 1}); build it with num_classes={hi + 1}"
            )
    in_channels = getattr(model, "in_channels", bundle.in_channels)
    if in_channels != bundle.in_channels:
        raise ConfigError(
            f"{bundle.name} images have {bundle.in_channels} channel(s) but {model_name} was built for "
            f"{in_channels}; drop model_kwargs.in_channels or use a {in_channels}-channel dataset"
        )
    min_size = getattr(model, "min_input_size", 1)
    if bundle.image_size < min_size:
        raise ConfigError(
            f"{bundle.name} images are {bundle.image_size}x{bundle.image_size} but {model_name} needs at "
            f"least {min_size}x{min_size}; pass --image-size {min_size} (or larger)"
        )
    if len(bundle.train) == 0:
        raise ConfigError(f"{bundle.name} has no training images")


def session_precision(requested: str, stored: TrainConfig | None, device: torch.device) -> PrecisionInfo:
    """The precision of this session: a resumed run keeps the one it started with. Run directories from
    before precisions were recorded say ``auto``, which then meant bf16 on CUDA and fp32 on every CPU."""
    if stored is not None and stored.precision == "auto":
        info = resolve_precision("auto", device)
        legacy = "bf16" if device.type == "cuda" else "fp32"
        return dataclasses.replace(info, used=legacy)
    return resolve_precision(stored.precision if stored is not None else requested, device)
