"""How numbers are written in sentences, tables and the README (one place, so every study reads alike)."""

from __future__ import annotations

import math

__all__ = ["pct", "sci"]


def pct(value: float | None, std: float | None = None) -> str:
    """A fraction as a percentage with one decimal (± the std in points, when given)."""
    if value is None:
        return "—"
    return f"{100 * value:.1f}%" + (f" ± {100 * std:.1f}" if std is not None else "")


def sci(value: float) -> str:
    """A ratio with three significant digits (``inf``/``nan`` spelled out)."""
    if not math.isfinite(value):
        return "non-finite" if math.isnan(value) else "infinite"
    return f"{value:.3g}"
