"""Margins and verdicts shared by every study: what counts as an effect, and how a gradient ratio is named.

Errors are fractions. A difference between two conditions is called an effect only if it exceeds their
*margin*::

    margin = max(MIN_EFFECT, s₁ + s₂, 2·sqrt(p₁(1−p₁)/n₁ + p₂(1−p₂)/n₂))

with sᵢ the standard deviation of condition i over seeds (0 with one seed) and nᵢ the images behind its mean
over all seeds (the binomial sampling error of the difference, doubled: about a 95% interval). The one-point
floor keeps a difference that no reader would act on from being called an effect when both other terms are
tiny (errors near 0 on small sets).

Ratios (gradient norms, activation norms) are compared on a log scale: each seed gives log10(ratio); the
margin of a difference of two conditions' mean log-ratios is the sum of their seed standard deviations,
floored at ``MIN_LOG_EFFECT`` (a factor of 10^0.1 ≈ 1.26).

A first/last gradient-norm ratio r names one of four outcomes (:func:`gradient_outcome`), for every seed:
``vanishing`` r < VANISH, ``exploding`` r > EXPLODE, ``neither`` in between, and ``unknown`` when any
seed's ratio is zero, negative or non-finite, or when seeds fall on different sides of a threshold.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MIN_EFFECT",
    "MIN_LOG_EFFECT",
    "VANISH",
    "EXPLODE",
    "OUTCOMES",
    "Estimate",
    "Comparison",
    "estimate",
    "error_margin",
    "compare",
    "compare_log",
    "gradient_outcome",
]

MIN_EFFECT = 0.01  # one percentage point
MIN_LOG_EFFECT = 0.1  # log10 units
VANISH = 0.1  # a first/last gradient ratio below this (for every seed) is "vanishing"
EXPLODE = 10.0  # above this (for every seed) "exploding": the gradient grows toward the input
OUTCOMES = ("vanishing", "exploding", "neither", "unknown")


@dataclass(frozen=True)
class Estimate:
    """One quantity of one condition over seeds: ``values`` (one per seed), their mean and sample std
    (``None`` with one seed), and ``images`` behind each value (0: not an error rate / unknown)."""

    values: tuple[float, ...]
    images: int = 0

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    @property
    def seeds(self) -> int:
        return len(self.values)


def estimate(values: Sequence[float | None], images: int = 0) -> Estimate | None:
    """An :class:`Estimate` of the non-missing ``values``, or ``None`` when every value is missing."""
    vals = tuple(float(v) for v in values if v is not None)
    return Estimate(vals, images) if vals else None


def error_margin(a: Estimate, b: Estimate) -> float:
    """The smallest difference of two error rates called an effect (module docstring)."""
    margin = max(MIN_EFFECT, (a.std or 0.0) + (b.std or 0.0))
    na, nb = a.images * a.seeds, b.images * b.seeds
    if na > 0 and nb > 0:
        pa, pb = min(max(a.mean, 0.0), 1.0), min(max(b.mean, 0.0), 1.0)
        margin = max(margin, 2 * math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb))
    return margin


@dataclass(frozen=True)
class Comparison:
    """``a`` − ``b`` against its margin. ``sign``: +1 (a above b beyond the margin), −1, or 0 (within)."""

    a_label: str
    b_label: str
    a: Estimate
    b: Estimate
    difference: float
    margin: float

    @property
    def sign(self) -> int:
        if abs(self.difference) <= self.margin:
            return 0
        return 1 if self.difference > 0 else -1

    @property
    def within(self) -> bool:
        return self.sign == 0

    def to_dict(self) -> dict[str, object]:
        return {
            "a": self.a_label,
            "b": self.b_label,
            "a_values": list(self.a.values),
            "b_values": list(self.b.values),
            "a_mean": self.a.mean,
            "b_mean": self.b.mean,
            "difference": self.difference,
            "margin": self.margin,
            "within_margin": self.within,
        }


def compare(a_label: str, a: Estimate, b_label: str, b: Estimate) -> Comparison:
    """Two error rates (fractions) against :func:`error_margin`."""
    return Comparison(a_label, b_label, a, b, a.mean - b.mean, error_margin(a, b))


def compare_log(a_label: str, a: Estimate, b_label: str, b: Estimate) -> Comparison:
    """Two positive ratios compared as log10 values: ``a``/``b`` hold log10(ratio) per seed."""
    margin = max(MIN_LOG_EFFECT, (a.std or 0.0) + (b.std or 0.0))
    return Comparison(a_label, b_label, a, b, a.mean - b.mean, margin)


def gradient_outcome(ratios: Sequence[float]) -> str:
    """One of :data:`OUTCOMES` for a first/last gradient-norm ratio measured once per seed."""
    if not ratios or any(not math.isfinite(r) or r <= 0 for r in ratios):
        return "unknown"
    names = {"vanishing" if r < VANISH else "exploding" if r > EXPLODE else "neither" for r in ratios}
    return names.pop() if len(names) == 1 else "unknown"
