"""The surface every zoo model shares: ``stem`` → ``stages`` → ``head``.

``forward_features`` runs stem and stages (the last feature map); ``forward_head`` pools and classifies.
``feature_info`` lists each stage's output channels and total stride; ``min_input_size`` is the smallest
square input side the architecture accepts. ``aux_head_names`` names the attributes holding heads that only
train (GoogLeNet's auxiliary classifiers); :func:`count_params` leaves them out with ``inference=True``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from depthlab.errors import InputTooSmallError

__all__ = [
    "FeatureInfo",
    "ZooModel",
    "ClassifierHead",
    "GoogLeNetOutputs",
    "main_logits",
    "aux_logits",
    "count_params",
]


@dataclass(frozen=True)
class FeatureInfo:
    module: str  # qualified name of the module producing this feature map
    channels: int
    reduction: int  # total stride relative to the input


class GoogLeNetOutputs(NamedTuple):
    """GoogLeNet's training-mode output: main logits, then the aux heads after inception 4a and 4d."""

    logits: torch.Tensor
    aux1: torch.Tensor | None
    aux2: torch.Tensor | None


def main_logits(output: torch.Tensor | GoogLeNetOutputs) -> torch.Tensor:
    """The main classifier's logits of any zoo model's output."""
    return output.logits if isinstance(output, GoogLeNetOutputs) else output


def aux_logits(output: torch.Tensor | GoogLeNetOutputs) -> tuple[torch.Tensor, ...]:
    """The auxiliary classifiers' logits (empty for models without them, or in eval mode)."""
    if isinstance(output, GoogLeNetOutputs):
        return tuple(a for a in (output.aux1, output.aux2) if a is not None)
    return ()


class ClassifierHead(nn.Sequential):
    """[norm → ReLU →] global average pool → flatten → [dropout →] linear."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        dropout: float = 0.0,
        pre_norm: nn.Module | None = None,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if pre_norm is not None:  # pre-activation nets end with a BN-ReLU before pooling
            layers["norm"] = pre_norm
            layers["act"] = nn.ReLU()
        layers["pool"] = nn.AdaptiveAvgPool2d(1)
        layers["flatten"] = nn.Flatten(1)
        if dropout > 0:
            layers["drop"] = nn.Dropout(dropout)
        layers["fc"] = nn.Linear(in_features, num_classes)
        super().__init__(layers)


class ZooModel(nn.Module):
    """Base class: subclasses set ``stem``, ``stages``, ``head``, ``feature_info`` and ``min_input_size``."""

    stem: nn.Module
    stages: nn.Sequential
    head: nn.Module
    feature_info: list[FeatureInfo]
    in_channels: int
    num_classes: int
    min_input_size: int = 1
    # Attributes holding training-only heads (None when built without them); dropped at inference.
    aux_head_names: ClassVar[tuple[str, ...]] = ()

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.in_channels} input channel(s), "
                f"got {x.shape[1]} (shape {tuple(x.shape)}); build it with in_channels={x.shape[1]}"
            )
        if min(x.shape[2], x.shape[3]) < self.min_input_size:
            raise InputTooSmallError(
                f"input {x.shape[2]}x{x.shape[3]} is too small for {type(self).__name__}: "
                f"the minimum size is {self.min_input_size}x{self.min_input_size}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def count_params(model: nn.Module, *, inference: bool = False) -> int:
    """Number of parameters of ``model``; ``inference=True`` leaves out its training-only heads.

    Those are the modules named by ``model.aux_head_names`` (GoogLeNet's auxiliary classifiers, which the
    paper discards at inference); for every other model both counts are equal.
    """
    skip: set[int] = set()
    if inference:
        for name in getattr(model, "aux_head_names", ()):
            head = getattr(model, name, None)
            if isinstance(head, nn.Module):
                skip.update(id(p) for p in head.parameters())
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)
