"""Gradient-flow figure of ``depthlab gradflow`` (the study figures live in the study's figure module,
e.g. :mod:`depthlab.report.degradation_figures`). Only reads what was measured."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from depthlab.analysis.gradients import ModelFlow
from depthlab.errors import DepthlabError
from depthlab.report.plots import Series, plot_gradflow

__all__ = ["gradflow_figure"]


def gradflow_figure(flows: Sequence[ModelFlow], *, title: str) -> Figure:
    """The ``depthlab gradflow`` figure: one line per model (dashed plain, solid residual)."""
    from depthlab.experiments.degradation import parse_model

    series = []
    for f in flows:
        try:
            depth, _ = parse_model(f.name)
        except DepthlabError:
            depth = len(f.diagnostics.layers)
        residual = any(b.residual for b in f.diagnostics.blocks)
        layers = f.diagnostics.layers
        series.append(
            Series(
                f.name, depth, residual, tuple(s.index for s in layers), tuple(s.grad_norm for s in layers)
            )
        )
    return plot_gradflow(series, title=title)
