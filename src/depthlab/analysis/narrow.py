"""Narrow variants: the models with a ``width`` multiplier (VGG, GoogLeNet, ResNet and its plain twins) at a
few widths, at study scale.

Narrow nets are what make VGG and Inception trainable to convergence on a CPU (and the degradation study's
quick preset fit its budget), so their sizes are listed where the studies use them: ``STUDY_CLASSES`` = 10
classes and a ``STUDY_INPUT`` = 1×32×32 image
(Fashion-MNIST padded to 32), VGG with its small head (``STUDY_KWARGS``; the ImageNet head's fc6 expects a
7×7 map), GoogLeNet as built by default (paper variant, with its aux heads). ``depthlab models --width``
prints them; the README's second model table is that output.

Conventions: ``params`` counts every parameter (GoogLeNet: with its aux heads, what a training step
updates), ``inference_params`` leaves training-only heads out (:func:`depthlab.models.count_params`).
``macs`` as :func:`depthlab.analysis.summarize` counts them: Conv2d and Linear, one image, eval mode (so
without GoogLeNet's aux heads); FLOPs = 2 × MACs. Models are built on the meta device: no memory, no init.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from depthlab.analysis.complexity import summarize
from depthlab.errors import UsageError
from depthlab.layers import check_width
from depthlab.models.base import count_params
from depthlab.registry import accepted_kwargs, create_model, list_models, model_info

__all__ = ["STUDY_CLASSES", "STUDY_INPUT", "STUDY_KWARGS", "WidthRow", "width_models", "describe_widths"]

STUDY_CLASSES = 10
STUDY_INPUT: tuple[int, int, int] = (1, 32, 32)
STUDY_KWARGS: dict[str, dict[str, object]] = {"vgg": {"head": "small"}}  # by family; others: defaults


@dataclass(frozen=True)
class WidthRow:
    """One model at one width multiplier, at ``num_classes`` classes and one ``input_shape`` image."""

    name: str
    family: str
    width: float
    settings: tuple[tuple[str, object], ...]  # keyword arguments other than width (VGG: head="small")
    num_classes: int
    input_shape: tuple[int, int, int]
    params: int
    inference_params: int
    macs: int


def width_models(pattern: str = "*") -> list[str]:
    """Registered models matching ``pattern`` that accept ``width``; ``UsageError`` if there are none."""
    names = [n for n in list_models(pattern) if "width" in accepted_kwargs(n)]
    if not names:
        scalable = sorted({model_info(n).family for n in list_models() if "width" in accepted_kwargs(n)})
        raise UsageError(
            f"no model matching {pattern!r} has a width multiplier; the families that do: {', '.join(scalable)}"
        )
    return names


def describe_widths(
    widths: Sequence[float],
    pattern: str = "*",
    *,
    num_classes: int = STUDY_CLASSES,
    input_shape: tuple[int, int, int] = STUDY_INPUT,
) -> list[WidthRow]:
    """Parameters and MACs of every width-scalable model matching ``pattern`` at each of ``widths`` (model
    by model, widths in the order given)."""
    if not widths:
        raise UsageError("widths must name at least one width multiplier, got none")
    widths = [check_width(w) for w in widths]
    rows = []
    for name in width_models(pattern):
        family = model_info(name).family
        settings = STUDY_KWARGS.get(family, {})
        for width in widths:
            with torch.device("meta"):
                model = create_model(
                    name, num_classes=num_classes, in_channels=input_shape[0], width=width, **settings
                )
            rows.append(
                WidthRow(
                    name=name,
                    family=family,
                    width=width,
                    settings=tuple(settings.items()),
                    num_classes=num_classes,
                    input_shape=input_shape,
                    params=count_params(model),
                    inference_params=count_params(model, inference=True),
                    macs=summarize(model, input_shape).macs,
                )
            )
    return rows
