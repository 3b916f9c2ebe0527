"""The degradation study's grid: plainD and resnetD for every depth D of the preset, for every seed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from depthlab.i18n import N_
from depthlab.studies.declare import RunSpec, StudyError
from depthlab.studies.degradation.presets import DegradationPreset

__all__ = ["ConditionKey", "parse_model", "label", "grid", "no_bn_kwargs", "NO_BN_TWIN"]

_NAME = re.compile(r"^(?P<family>[a-z_]+?)(?P<depth>\d+)$")

# The BN-free twins measured at initialisation (model keywords, and how every sentence names them). A
# residual twin scales each branch by 1/√(number of residual blocks) — Balduzzi et al.'s rescaled ResNet,
# x + α·F(x) — so its branches are live at init and its forward signal stays bounded; SkipInit's zero scale
# would switch every branch off and leave only the stem, the shortcuts and the head to measure. The study
# trains no BN-free net, so nothing here needs SkipInit.
NO_BN_TWIN = N_("without BN (ResNets: branches scaled by 1/√blocks)")  # shown as _(NO_BN_TWIN)


def no_bn_kwargs(residual: bool) -> dict[str, Any]:
    """The BN-free twin's model keywords (see :data:`NO_BN_TWIN`); the plain twin only drops BN."""
    return {"norm": None, "branch_scale": "1/sqrt(blocks)"} if residual else {"norm": None}


@dataclass(frozen=True, order=True)
class ConditionKey:
    """One condition of the grid: a depth and a family (ordered plain before ResNet within a depth)."""

    depth: int
    residual: bool

    @property
    def label(self) -> str:
        return label(self.depth, self.residual)

    @property
    def model(self) -> str:
        return f"{'resnet' if self.residual else 'plain'}{self.depth}"


def parse_model(name: str) -> tuple[int, bool]:
    """(depth, residual) of a zoo name such as ``plain56`` or ``resnet110``."""
    m = _NAME.match(name)
    if m is None:
        raise StudyError(f"cannot read a depth from model name {name!r} (expected e.g. plain56, resnet20)")
    return int(m["depth"]), m["family"] != "plain"


def label(depth: int, residual: bool) -> str:
    return f"{'ResNet' if residual else 'plain'}-{depth}"


def grid(
    preset: DegradationPreset, seed_list: Sequence[int], device: str, data_dir: str | None
) -> list[RunSpec]:
    """seed → depth → plain, ResNet: the first seed of every condition finishes first."""
    specs = []
    for seed in seed_list:
        for model in preset.models:
            depth, residual = parse_model(model)
            changes: dict[str, Any] = {}
            if preset.warmup_lr is not None and depth >= preset.warmup_lr_depth:
                changes = {"warmup": preset.warmup_lr_steps, "warmup_lr": preset.warmup_lr}
            config = preset.train_config(
                model, seed, model_kwargs=preset.model_kwargs, device=device, data_dir=data_dir, **changes
            )
            specs.append(
                RunSpec(
                    f"{model}-s{seed}",
                    label(depth, residual),
                    {"depth": depth, "residual": residual},
                    seed,
                    config,
                )
            )
    return specs
