"""How numbers are written in sentences, tables and the README (one place, so every study reads alike)."""

from __future__ import annotations

import math

from depthlab.i18n import N_, _

__all__ = ["pct", "sci", "number", "signed_digits", "p_text", "difference_ci"]

MORE_DIGITS = 3  # at most this many more decimals to show a value that rounds to 0 at the asked precision


def pct(value: float | None, std: float | None = None) -> str:
    """A fraction as a percentage with one decimal (± the std in points, when given); "—" for no value (``None``,
    or the NaN mean of an estimate without values), "non-finite" for ±inf."""
    if value is None or math.isnan(value):
        return "—"
    if not math.isfinite(value):
        return _("non-finite")
    return f"{100 * value:.1f}%" + (f" ± {100 * std:.1f}" if std is not None and math.isfinite(std) else "")


def sci(value: float) -> str:
    """A ratio with three significant digits (``inf``/``nan`` spelled out)."""
    if not math.isfinite(value):
        return _("non-finite") if math.isnan(value) else _("infinite")
    return f"{value:.3g}"


def number(value: float, spec: str = ".3g") -> str:
    """``value`` in the format ``spec`` (e.g. ``"+.2f"``), or "unknown" when it is not finite: a non-finite
    number is written as null and read back as NaN, and a sentence says so instead of "nan"."""
    return format(value, spec) if math.isfinite(value) else _("unknown")


def signed_digits(value: float, digits: int = 1) -> str:
    """``value`` signed, with ``digits`` decimals — or more, up to :data:`MORE_DIGITS` more, when it is not 0
    but rounds to 0: a CI limit of −0.014 is written "−0.01", not "+0.0" or "−0.0", so that "[−4.7, −0.01]"
    (resolved lower) and "[−0.01, +2.4]" (not resolved) cannot look alike. Exactly 0 is "+0.0"."""
    for d in range(digits, digits + MORE_DIGITS + 1):
        if value == 0 or round(value, d) != 0:
            return f"{round(value, d) + 0.0:+.{d}f}"  # + 0.0: no "-0.0" for an exact 0
    return f"{value:+.1e}"  # smaller still: scientific, which keeps the sign


def p_text(p: float | None) -> str:
    """A p-value with two significant digits ("p = 0.0018", "p = 2.1e-06"; "p < 1e-300" below the double
    range's resolution); "no p-value" for ``None``."""
    if p is None or not math.isfinite(p):
        return _("no p-value")
    if p < 1e-300:
        return "p < 1e-300"
    return f"p = {p:.2g}"


def difference_ci(
    difference: float,
    low: float | None,
    high: float | None,
    *,
    scale: float = 100.0,
    unit: str = N_("points"),
    digits: int = 1,
    level: float = 0.95,
    reason: str | None = None,
    head: bool = True,
) -> str:
    """ "difference +x.x points, 95% CI [a, b]" (signed; ``scale`` 100 writes fractions as points, 1 keeps
    the value); without a CI (fewer than 2 seeds) "difference +x.x points, no CI", followed by ``reason`` in
    parentheses when given (e.g. :attr:`depthlab.stats.Difference.no_interval`). A non-finite
    difference (a side without values, or a non-finite value) is written "difference —". ``head=False`` leaves
    out the word "difference" (for a line that has already said what it compares)."""

    def signed(x: float) -> str:
        return signed_digits(scale * x, digits)

    unit = f" {_(unit)}" if unit else ""  # the unit's word in the reader's language (mark it with N_)
    value = f"{signed(difference)}{unit}" if math.isfinite(difference) else "—"
    text = _("difference {value}").format(value=value) if head else value
    if low is None or high is None:
        return _("{difference}, no CI").format(difference=text) + (f" ({reason})" if reason else "")
    return _("{difference}, {level:.0f}% CI [{low}, {high}]").format(
        difference=text, level=100 * level, low=signed(low), high=signed(high)
    )
