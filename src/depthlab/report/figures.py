"""Gradient-flow figure of ``depthlab gradflow`` (the study figures live in the study's figure module,
e.g. :mod:`depthlab.studies.degradation.figures`). Only reads what was measured."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from depthlab.analysis.gradients import ModelFlow
from depthlab.present.plots import Series, plot_gradflow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["gradflow_figure"]


def gradflow_figure(flows: Sequence[ModelFlow], *, title: str) -> Figure:
    """The ``depthlab gradflow`` figure: one line per model (dashed plain, solid residual)."""
    series = []
    for f in flows:
        # A zoo name ends in its depth (plain56, resnet110); any other model is as deep as its layers.
        m = re.search(r"(\d+)$", f.name)
        depth = int(m[1]) if m else len(f.diagnostics.layers)
        residual = any(b.residual for b in f.diagnostics.blocks)
        layers = f.diagnostics.layers
        series.append(
            Series(
                f.name, depth, residual, tuple(s.index for s in layers), tuple(s.grad_norm for s in layers)
            )
        )
    return plot_gradflow(series, title=title)
