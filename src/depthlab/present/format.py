"""How numbers are written in sentences, tables and the README (one place, so every study reads alike)."""

from __future__ import annotations

import math

__all__ = ["pct", "sci", "number", "difference_ci"]


def pct(value: float | None, std: float | None = None) -> str:
    """A fraction as a percentage with one decimal (± the std in points, when given); "—" for no value (``None``,
    or the NaN mean of an estimate without values), "non-finite" for ±inf."""
    if value is None or math.isnan(value):
        return "—"
    if not math.isfinite(value):
        return "non-finite"
    return f"{100 * value:.1f}%" + (f" ± {100 * std:.1f}" if std is not None and math.isfinite(std) else "")


def sci(value: float) -> str:
    """A ratio with three significant digits (``inf``/``nan`` spelled out)."""
    if not math.isfinite(value):
        return "non-finite" if math.isnan(value) else "infinite"
    return f"{value:.3g}"


def number(value: float, spec: str = ".3g") -> str:
    """``value`` in the format ``spec`` (e.g. ``"+.2f"``), or "unknown" when it is not finite: a non-finite
    number is written as null and read back as NaN, and a sentence says so instead of "nan"."""
    return format(value, spec) if math.isfinite(value) else "unknown"


def difference_ci(
    difference: float,
    low: float | None,
    high: float | None,
    *,
    scale: float = 100.0,
    unit: str = "points",
    digits: int = 1,
    level: float = 0.95,
    reason: str | None = None,
) -> str:
    """ "difference +x.x points, 95% CI [a, b]" (signed; ``scale`` 100 writes fractions as points, 1 keeps
    the value); without a CI (fewer than 2 seeds) "difference +x.x points, no CI", followed by ``reason`` in
    parentheses when given (e.g. :attr:`depthlab.stats.Difference.no_interval`). A non-finite
    difference (a side without values, or a non-finite value) is written "difference —"."""

    def signed(x: float) -> str:
        return (
            f"{round(scale * x, digits) + 0.0:+.{digits}f}"  # + 0.0: no "-0.0" for a value that rounds to 0
        )

    unit = f" {unit}" if unit else ""
    head = f"difference {signed(difference)}{unit}" if math.isfinite(difference) else "difference —"
    if low is None or high is None:
        return f"{head}, no CI" + (f" ({reason})" if reason else "")
    return f"{head}, {100 * level:.0f}% CI [{signed(low)}, {signed(high)}]"
