"""Optimizers, learning-rate schedules, and when periodic actions are due.

A schedule is a pure function of the step: ``lr_factor(config, step, total_steps, steps_per_epoch)``
multiplies the peak ``lr``, and :meth:`Schedule.lr_at` is the lr itself. The trainer sets each parameter
group's lr from it before every step, so the scheduler's whole state is the step counter (saved in every
checkpoint).

Every periodic action of the trainer (a training row, an evaluation, the monitor, a checkpoint) asks one
rule, :func:`due`: after ``step`` completed steps an action repeated ``every`` steps is due when ``step`` is
a multiple of ``every``, and every action is due after the last step (big_vision's ``itstime``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from depthlab.train.config import TrainConfig

__all__ = ["Schedule", "build_optimizer", "due", "lr_factor", "parameter_groups"]

ONECYCLE_START = 1 / 25  # torch.optim.lr_scheduler.OneCycleLR's default div_factor
ONECYCLE_WARMUP = 0.25  # fraction of training spent rising when warmup is not given


def parameter_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    """One group with weight decay (conv and linear weights) and, unless ``decay_norm_and_bias``, one
    without (norm-layer parameters and every bias: 1-D tensors)."""
    if decay_norm_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.dim() <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (with ``momentum``/``nesterov``) or AdamW over :func:`parameter_groups`. On CUDA the update is
    torch's fused kernel (one launch per parameter group instead of several per tensor list: a small net's
    step is launch-bound there); on the CPU the default (foreach) implementation, whose results earlier runs
    reproduce bit for bit."""
    groups = parameter_groups(model, config.weight_decay, config.decay_norm_and_bias)
    fused = _fused_for(model)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, fused=fused
        )
    return torch.optim.AdamW(groups, lr=config.lr, fused=fused)


def _fused_for(model: nn.Module) -> bool | None:
    """``True`` when every parameter is on a CUDA device, else ``None`` (torch's default choice)."""
    params = list(model.parameters())
    return True if params and all(p.is_cuda for p in params) else None


def match_implementation(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """Set ``optimizer``'s fused/foreach flags for where ``model`` lives now: a checkpoint's
    ``load_state_dict`` restores the flags of the device it was saved on, and a run may resume on another."""
    fused = _fused_for(model)
    for group in optimizer.param_groups:
        group["fused"] = fused
        if fused:
            group["foreach"] = None


def _milestone_steps(config: TrainConfig, total_steps: int, steps_per_epoch: int) -> list[int]:
    if not config.milestones:
        return [round(0.5 * total_steps), round(0.75 * total_steps)]
    unit = steps_per_epoch if config.epochs is not None else 1
    return [round(m * unit) for m in config.milestones]


def lr_factor(config: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The multiplier of the peak lr for the optimizer step that follows ``step`` completed steps."""
    if config.schedule == "onecycle":
        rise = config.warmup if config.warmup is not None else round(ONECYCLE_WARMUP * total_steps)
        rise = max(1, min(rise, total_steps - 1))
        if step < rise:
            return ONECYCLE_START + (1 - ONECYCLE_START) * step / rise
        return max(0.0, (total_steps - step) / (total_steps - rise))
    warmup = config.warmup or 0
    if step < warmup:
        if config.warmup_lr is not None:  # a constant warm-up lr (ResNet-110 in He et al. 2015)
            return config.warmup_lr / config.lr
        return (step + 1) / (warmup + 1)
    if config.schedule == "cosine":
        span = max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / span)))
    passed = sum(step >= m for m in _milestone_steps(config, total_steps, steps_per_epoch))
    return 0.1**passed


def due(step: int, every: int, total: int) -> bool:
    """Whether an action repeated every ``every`` steps is due after ``step`` completed steps of ``total``:
    at each multiple of ``every``, and always after the last step (so a run ends evaluated and saved)."""
    return step % every == 0 or step >= total


@dataclass(frozen=True)
class Schedule:
    """A run's length and the periods of its actions, fixed once the training loader is built.

    ``total_steps``: ``config.steps``, else ``config.epochs`` × ``steps_per_epoch``. ``eval_every`` and
    ``checkpoint_every`` default to one epoch. All in optimizer steps.
    """

    config: TrainConfig
    steps_per_epoch: int
    total_steps: int
    log_every: int
    eval_every: int
    checkpoint_every: int

    @classmethod
    def of(cls, config: TrainConfig, steps_per_epoch: int) -> Schedule:
        total = config.steps if config.steps is not None else int(config.epochs or 0) * steps_per_epoch
        return cls(
            config=config,
            steps_per_epoch=steps_per_epoch,
            total_steps=total,
            log_every=config.log_every,
            eval_every=config.eval_every or steps_per_epoch,
            checkpoint_every=config.checkpoint_every or steps_per_epoch,
        )

    def lr_at(self, step: int) -> float:
        """The learning rate of the optimizer step that follows ``step`` completed steps."""
        return self.config.lr * lr_factor(self.config, step, self.total_steps, self.steps_per_epoch)

    def epoch(self, step: int) -> float:
        """Epochs done after ``step`` steps (fractional)."""
        return step / self.steps_per_epoch
