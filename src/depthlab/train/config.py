"""The training configuration: one frozen dataclass holding every hyperparameter, with units.

The defaults are the recipe with which ResNet-20 reaches ≥ 93% test accuracy on Fashion-MNIST in the least
wall time we found on a 2-core CPU (see the README): SGD with Nesterov momentum, one-cycle learning rate,
label smoothing, no weight decay on BatchNorm parameters and biases, random crop (pad 4) and flip.

Overrides are typed: ``apply_overrides(config, ["lr=0.05", "model_kwargs.norm=none"])`` parses each value
by its field's type and rejects unknown keys, naming the closest ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from depthlab.errors import ConfigError

__all__ = [
    "ConfigError",
    "TrainConfig",
    "OPTIMIZERS",
    "SCHEDULES",
    "DEVICES",
    "NORMALIZATIONS",
    "PRECISIONS",
    "INITS",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "parse_value",
]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda")
NORMALIZATIONS = ("channel", "pixel")
PRECISIONS = ("auto", "fp32", "bf16")  # see depthlab.train.precision
# "model": the builder's own initialisation; the others re-initialise every Conv2d and Linear layer.
INITS = ("model", "glorot", "kaiming")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run.

    Length: exactly one of ``epochs`` (passes over the training split) or ``steps`` (optimizer steps) is
    set. ``batch_size`` is the global batch (split across processes under torchrun). ``lr`` is the peak
    learning rate. ``schedule``: ``step`` divides the lr by 10 at each of ``milestones`` (in epochs when
    the run is given in epochs, else in steps; default: at 50% and 75% of training, the ResNet paper's
    32k/48k of 64k iterations); ``cosine`` decays to 0; ``onecycle`` rises linearly from lr/25 to lr
    over ``warmup`` steps (default 25% of training) and then falls linearly to 0. ``warmup`` (steps) is
    a linear warm-up from 0 for ``step``/``cosine``. ``weight_decay`` is decoupled for AdamW and L2 for
    SGD; with ``decay_norm_and_bias=False`` BatchNorm weights and all biases are not decayed.
    ``clip_grad``: max global gradient norm (``None``: no clipping). ``aux_weight``: weight of
    auxiliary-classifier losses (GoogLeNet; 0 disables). ``eval_every`` / ``checkpoint_every``: steps
    (``None``: once per epoch; the last step always evaluates and checkpoints). ``log_every``: steps per
    training row of ``metrics.jsonl``. ``device``: ``auto`` picks CUDA when available. ``compile`` applies
    ``torch.compile``. ``cuda_graph``: on CUDA, replay each training step's forward and backward pass from
    a CUDA graph (one process, in-memory data; :mod:`depthlab.train.step`) — the same steps, without
    launching a small net's kernels one by one. ``workers``: decoding processes for image folders.

    Study options (all off by default): ``train_subset`` trains on a fixed random subset of N training
    images (seeded independently of ``seed``, so every run of a study fits the same images — several
    passes over a small set reach the converged regime the ResNet paper's Fig. 6 plots); ``test_subset``
    evaluates a fixed random subset of N test images (the same for every run; a CPU budget). ``eval_train``
    also evaluates the training split in eval mode (rows with split ``train_eval``: the error on the data
    the net is fitting, not the running error of batches it has not seen yet). ``eval_subset``: evaluations
    before the last step use only the first N images of each evaluated split (a fixed held-out subset, so a
    curve can have many points); the last step evaluates every image. ``test_at_end``: the test split is
    evaluated only at the last step (model selection never sees it). ``warmup_lr``: with ``step``/``cosine``
    schedules, a constant lr for the ``warmup`` steps instead of a linear ramp (the ResNet paper's
    ResNet-110 recipe: 0.01 for ~400 iterations, then 0.1). ``normalize``: ``channel`` subtracts the
    per-channel mean and divides by the std, and crop padding is black (0) before normalising; ``pixel``
    subtracts the per-pixel mean image of the training split and pads *after* normalising, so the pad is
    the mean (He et al. 2015 §4.2).

    Precision: ``precision`` is ``fp32``, ``bf16`` (autocast of each forward pass; parameters, optimizer
    state and loss stay fp32) or ``auto``: bf16 on CUDA and on a CPU with native bf16 (AVX512-BF16 or AMX),
    fp32 elsewhere (:mod:`depthlab.train.precision`). A run records the resolved value in ``config.json``.

    Initialisation: ``init`` is ``model`` (the builder's own: He normal for ResNets and VGG convs), or
    re-initialises every Conv2d and Linear layer after the model is built: ``glorot`` — Glorot & Bengio
    (2010) uniform weights, U(±√(6/(fan_in + fan_out))), zero biases: what VGG's paper (arXiv:1409.1556 v6,
    §3.1 footnote) found trains the deep configurations without pre-training; ``kaiming`` — He et al. (2015)
    normal weights, std √(2/fan_in), zero biases. Norm layers and zero-initialised scales (SkipInit,
    ``zero_init_residual``) keep the builder's values. ``init_from``: a finished run directory whose ``last``
    weights warm-start this run before step 0 — every parameter and buffer whose name *and* shape match is
    copied (VGG's paper initialised D and E from net A, §3.1); ``init_from_layers``, if given, limits the
    copy to names matching one of these ``fnmatch`` patterns. A resumed run restores its checkpoint and
    does not warm-start again.
    """

    model: str = "resnet20"
    data: str = "fashion-mnist"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    download: bool = False
    image_size: int | None = None
    val_size: int | None = None
    strict_data: bool = False
    epochs: int | None = 12
    steps: int | None = None
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = False
    schedule: str = "onecycle"
    milestones: tuple[float, ...] = ()
    warmup: int | None = None
    label_smoothing: float = 0.1
    clip_grad: float | None = None
    aux_weight: float = 0.3
    augment: bool = True
    crop_padding: int = 4
    eval_every: int | None = None
    eval_batch_size: int = 500
    log_every: int = 50
    checkpoint_every: int | None = None
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    cuda_graph: bool = True
    workers: int = 2
    sync_bn: bool = False
    train_subset: int | None = None
    test_subset: int | None = None
    eval_train: bool = False
    eval_subset: int | None = None
    test_at_end: bool = False
    warmup_lr: float | None = None
    normalize: str = "channel"
    precision: str = "auto"
    init: str = "model"
    init_from: str | None = None
    init_from_layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), _field_types()[f.name])
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))
        object.__setattr__(self, "init_from_layers", tuple(self.init_from_layers))
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        _all_finite(self)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("device", self.device, DEVICES)
        _choice("normalize", self.normalize, NORMALIZATIONS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("init", self.init, INITS)
        if self.init_from is not None and not self.init_from.strip():
            raise ConfigError("init_from must name a run directory, or be none")
        if self.init_from_layers and self.init_from is None:
            raise ConfigError("init_from_layers limits a warm start: set init_from too (or drop it)")
        if any(not pattern.strip() for pattern in self.init_from_layers):
            raise ConfigError(
                f"init_from_layers must be non-empty name patterns, got {self.init_from_layers}"
            )
        if (self.epochs is None) == (self.steps is None):
            raise ConfigError(
                f"set exactly one of epochs and steps (got epochs={self.epochs}, steps={self.steps})"
            )
        _positive("epochs", self.epochs)
        _positive("steps", self.steps)
        _positive("batch_size", self.batch_size)
        _positive("eval_batch_size", self.eval_batch_size)
        _positive("log_every", self.log_every)
        _positive("eval_every", self.eval_every)
        _positive("checkpoint_every", self.checkpoint_every)
        _positive("image_size", self.image_size)
        _positive("train_subset", self.train_subset)
        _positive("test_subset", self.test_subset)
        _positive("eval_subset", self.eval_subset)
        if self.warmup_lr is not None and (not math.isfinite(self.warmup_lr) or self.warmup_lr <= 0):
            raise ConfigError(f"warmup_lr must be a positive number or none, got {self.warmup_lr}")
        if self.warmup_lr is not None and self.schedule == "onecycle":
            raise ConfigError("warmup_lr applies to the step and cosine schedules; onecycle has its own rise")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("nesterov needs optimizer=sgd and momentum > 0 (set nesterov=false)")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be ≥ 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ConfigError(f"clip_grad must be positive or none, got {self.clip_grad}")
        if self.aux_weight < 0:
            raise ConfigError(f"aux_weight must be ≥ 0, got {self.aux_weight}")
        if self.crop_padding < 0 or self.workers < 0:
            raise ConfigError("crop_padding and workers must be ≥ 0")
        if self.warmup is not None and self.warmup < 0:
            raise ConfigError(f"warmup must be ≥ 0 steps, got {self.warmup}")
        if self.val_size is not None and self.val_size < 0:
            raise ConfigError(f"val_size must be ≥ 0, got {self.val_size}")
        if any(m <= 0 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ConfigError(f"milestones must be positive and increasing, got {list(self.milestones)}")


def _all_finite(config: TrainConfig) -> None:
    """NaN and infinity slip through every range check (``nan < 0`` is false): refuse them first."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        values = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ConfigError(f"{f.name} must be a finite number, got {value!r}")


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose from: {', '.join(choices)}")


@functools.cache  # get_type_hints re-evaluates every annotation: ~1 ms, and __post_init__ asks per field
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _check_type(name: str, value: Any, hint: Any) -> None:
    """Reject values of the wrong type (bool is not an int; an int is accepted for a float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    ok: bool
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    elif origin is tuple:
        if args[0] is str:
            ok = isinstance(value, tuple | list) and all(isinstance(v, str) for v in value)
        else:
            ok = isinstance(value, tuple | list) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value
            )
    elif origin is dict:
        ok = isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{name} must be {_type_name(hint)}, got {value!r}")


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is tuple:
        what = "names" if typing.get_args(hint)[0] is str else "numbers"
        return f"a list of {what} (comma-separated)"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


# ------------------------------------------------------------------------------------ (de)serialisation
def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    out = dataclasses.asdict(config)
    out["milestones"] = list(config.milestones)
    out["init_from_layers"] = list(config.init_from_layers)
    return out


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """A config from ``config.json``-style values; unknown keys are rejected."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ConfigError(_unknown_message(unknown[0], names))
    kwargs = dict(values)
    for key in ("milestones", "init_from_layers"):
        if key in kwargs and isinstance(kwargs[key], list):
            kwargs[key] = tuple(kwargs[key])
    return TrainConfig(**kwargs)


def _unknown_message(key: str, names: Iterable[str]) -> str:
    names = list(names)
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown config key {key!r}{hint}; known keys: {', '.join(names)}"


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null", ""}


def parse_value(name: str, raw: str, hint: Any) -> Any:
    """``raw`` (command-line text) as a value of type ``hint``: bool, int, float, str, ``X | None`` or
    ``tuple[X, ...]`` (comma-separated). Shared by every ``--set key=value`` in depthlab."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if raw.strip().lower() in _NONE:
            return None
        hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint)
    text = raw.strip()
    try:
        if hint is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint is str:
            return text
        if origin is tuple:
            item = typing.get_args(hint)[0]
            return tuple(item(v.strip()) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: {name} must be {_type_name(hint)}") from None
    raise ConfigError(f"{name} cannot be set from the command line")


def _parse_loose(raw: str) -> Any:
    """A model keyword value: JSON (numbers, true/false, lists, quoted strings), ``none``, else a string."""
    text = raw.strip()
    if text.lower() in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, an integer beyond the digit limit, or nested too deep
        return text


def apply_overrides(config: TrainConfig, overrides: Iterable[str]) -> TrainConfig:
    """``config`` with each ``key=value`` applied, typed by the field (``model_kwargs.NAME=value`` sets one
    model keyword). Setting ``epochs`` clears ``steps`` and vice versa. Unknown keys are rejected."""
    hints = _field_types()
    changes: dict[str, Any] = {}
    model_kwargs = dict(config.model_kwargs)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value")
        if key.startswith("model_kwargs."):
            model_kwargs[key.split(".", 1)[1]] = _parse_loose(raw)
            changes["model_kwargs"] = model_kwargs
            continue
        if key not in hints:
            raise ConfigError(_unknown_message(key, hints))
        if key == "model_kwargs":
            value = _parse_loose(raw)
            if not isinstance(value, dict):
                raise ConfigError(f"model_kwargs must be a JSON object, got {raw!r}")
            model_kwargs = value
            changes[key] = value
            continue
        changes[key] = parse_value(key, raw, hints[key])
        if key == "epochs" and changes[key] is not None:
            changes.setdefault("steps", None)
        if key == "steps" and changes[key] is not None:
            changes.setdefault("epochs", None)
    return dataclasses.replace(config, **changes)
