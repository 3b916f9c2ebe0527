"""Estimates, confidence intervals and comparisons: the one statistics module, built on :mod:`scipy.stats`.

Every study and analysis draws its verdicts from here (issue 14). No formatting (that is
:mod:`depthlab.present.format`) and no study-specific thresholds.

Conventions
-----------
* An :class:`Estimate` is one quantity of one condition, one value per seed. Error rates are fractions;
  ``images`` is the number of images behind each value (0: not an error rate).
* A :class:`Difference` is always ``a − b`` (``a.mean − b.mean``) with a two-sided ``LEVEL`` (95%) CI:

  - :func:`welch` — Welch's t interval (unequal variances, Welch–Satterthwaite df);
  - :func:`paired` — a paired t interval over seeds, seeds paired by position (same seed, same data order);
  - :func:`compare_log` — positive ratios compared as log10 values with Welch; ``10**difference`` is the
    ratio of the two geometric means.

* :attr:`Difference.outcome` is one of :data:`OUTCOMES`: ``"higher"`` when the CI lies above 0, ``"lower"``
  when below, else ``"not resolved"``. With one seed on either side there is no CI, and any non-finite value
  makes the comparison unresolved: non-finite evidence never gives a verdict.
* One rule for what cannot be compared (issue 22), so that no interval is invented and no statistic is fed
  a number that is not one:

  - a *non-finite* value (NaN, ±inf: written as ``null`` in JSON and read back as NaN, "unknown") stays in
    its :class:`Estimate`; every interval, test and outcome computed from it is withheld
    (:attr:`Difference.unknown`; the studies call such a comparison ``unknown``);
  - a seed whose run *diverged* (its loss or weights became non-finite and training stopped) has no value:
    it is left out of the values and counted in :attr:`Estimate.diverged`, so an estimate may hold no value
    at all (its mean is then NaN and it is compared with nothing);
  - with fewer than two values on a side there is no interval; :attr:`Difference.no_interval` says why (how
    many seeds each side has, and how many diverged), for the sentence to say it.
* The seed is the unit of every comparison across conditions (issue 23): no per-image test stands beside a
  Difference. :func:`mcnemar` compares two predictions of *one* trained net on the same images (the lesion
  analysis: a net with a block deleted against the intact net), a statement conditional on that net.
* "Not resolved" is not "the same". "The same" needs :func:`equivalence` (two one-sided tests, TOST) against a
  bound the sentence states.
* :func:`slope` (least squares, t CI), :func:`mean_ci` (t interval) and :func:`bootstrap_ci` (for CIs over
  images) complete the set.

Why not the old margin rule (bottom of this file, kept only until the studies are ported): with the seed
spread as the margin, it calls a difference 22% of the time when there is none (2 seeds per side, normal
noise), and its binomial term counts the same test images once per seed. The calibration tests in
``tests/test_stats.py`` check that the rules here call a non-existent difference about 5% of the time.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as sps

from depthlab.errors import UsageError
from depthlab.i18n import N_, _

__all__ = [
    "LEVEL",
    "OUTCOMES",
    "Interval",
    "Estimate",
    "estimate",
    "seeds_text",
    "PairedTest",
    "Difference",
    "welch",
    "paired",
    "compare_log",
    "mcnemar",
    "Equivalence",
    "equivalence",
    "bounded_outcome",
    "Slope",
    "slope",
    "mean_ci",
    "bootstrap_ci",
    "one_sided",
    "CLAIM_VERDICTS",
    "ClaimTest",
    "claim_sign",
    "claim_margin",
    "claim_all",
    "holm",
    "CONVERGENCE_STATES",
    "Convergence",
    "convergence",
    "OUTLIER_MADS",
    "outlying",
]

LEVEL = 0.95
# The words of every outcome, state and verdict, marked once here for the catalogues (depthlab.i18n): the code
# and JSON keep the English word, a reader sees _(word).
OUTCOMES = (N_("higher"), N_("lower"), N_("not resolved"))
EQUIVALENT, UNKNOWN = N_("equivalent"), N_("unknown")  # the outcomes a bound or a non-finite value adds

# Below this many discordant pairs McNemar's chi-square approximation is poor; scipy's exact binomial test
# is cheap there.
_EXACT_BELOW = 50
# The BCa bootstrap's jackknife costs O(n²); above this many values the percentile interval (0.2 s at 10,000
# values vs 3 s for BCa, measured on this project's 2-core machine) is used instead. The two agree closely
# at such sizes.
_BCA_MAX = 2000


def _all_finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise UsageError(f"confidence level {level!r} must lie strictly between 0 and 1 (e.g. 0.95)")


# The t distribution through scipy.special's ufuncs (stdtr: CDF, stdtrit: quantile), which scipy.stats.t
# itself calls: 2 µs a call instead of 300 µs for scipy.stats.t.ppf and 1.7 ms for scipy.stats.ttest_ind
# (measured here), so that the calibration tests can run thousands of simulated studies in seconds.
# tests/test_stats.py checks welch/paired against scipy.stats.ttest_ind/ttest_rel.
def _t_cdf(t: float, df: float) -> float:
    return float(special.stdtr(df, t))


def _t_half_width(se: float, df: float, level: float) -> float:
    """Half width of a two-sided t interval; 0 when the standard error is 0 (no spread observed)."""
    return 0.0 if se == 0.0 else float(special.stdtrit(df, 0.5 + level / 2)) * se


# ----------------------------------------------------------------------------------------------- estimates
@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval ``[low, high]`` at ``level``."""

    low: float
    high: float
    level: float = LEVEL

    def excludes(self, x: float = 0.0) -> bool:
        """Whether ``x`` lies outside ``[low, high]`` (the interval resolves a difference from ``x``)."""
        return x < self.low or x > self.high

    def to_dict(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high, "level": self.level}


@dataclass(frozen=True)
class Estimate:
    """One quantity of one condition: ``values`` (one per seed) and ``images`` behind each value (0: not an
    error rate). ``std`` is the sample standard deviation (``None`` with one seed). ``diverged``: seeds of the
    condition left out because their run diverged (they have no value; see the module docstring)."""

    values: tuple[float, ...]
    images: int = 0
    diverged: int = 0

    @property
    def mean(self) -> float:
        """The mean over the values; NaN when there is none (every seed diverged)."""
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float | None:
        if len(self.values) < 2:
            return None
        with np.errstate(invalid="ignore"):
            return float(np.std(self.values, ddof=1))

    @property
    def seeds(self) -> int:
        return len(self.values)

    @property
    def finite(self) -> bool:
        """Every value is finite (a non-finite value makes any comparison "not resolved")."""
        return _all_finite(self.values)

    def ci(self, level: float = LEVEL) -> Interval | None:
        """Student t interval of the mean over seeds; ``None`` with fewer than 2 values or a non-finite one."""
        _check_level(level)
        if self.seeds < 2 or not self.finite:
            return None
        se = (self.std or 0.0) / math.sqrt(self.seeds)
        half = _t_half_width(se, self.seeds - 1, level)
        return Interval(self.mean - half, self.mean + half, level)

    def to_dict(self) -> dict[str, Any]:
        ci = self.ci()
        return {
            "values": list(self.values),
            "mean": self.mean,
            "std": self.std,
            "seeds": self.seeds,
            "diverged": self.diverged,
            "images": self.images,
            "ci": ci.to_dict() if ci else None,
        }


def estimate(values: Sequence[float | None], images: int = 0, *, diverged: int = 0) -> Estimate | None:
    """An :class:`Estimate` of the non-missing ``values`` (``None`` is dropped; NaN and inf are kept, so that
    they make comparisons unresolved) and of ``diverged`` seeds left out; ``None`` when there is neither a
    value nor a diverged seed (nothing was measured)."""
    vals = tuple(float(v) for v in values if v is not None)
    return Estimate(vals, images, diverged) if vals or diverged else None


def seeds_text(e: Estimate) -> str:
    """ "1 seed", "3 seeds", "no seed (2 diverged)", "1 seed (1 diverged)": what an estimate rests on."""
    count = f"{e.seeds} seed{'s' if e.seeds != 1 else ''}" if e.seeds else "no seed"
    return count + (f" ({e.diverged} diverged)" if e.diverged else "")


def mean_ci(values: Sequence[float], *, level: float = LEVEL) -> Interval | None:
    """Student t interval of the mean of ``values``; ``None`` with fewer than 2 values or a non-finite one."""
    e = estimate(values)
    return e.ci(level) if e is not None else None


def bootstrap_ci(
    values: Sequence[float],
    *,
    statistic: Callable[..., Any] = np.mean,
    level: float = LEVEL,
    seed: int = 0,
    n: int = 2000,
) -> Interval | None:
    """Bootstrap CI of ``statistic`` over ``values`` (e.g. one value per image), deterministic for a ``seed``.

    :func:`scipy.stats.bootstrap` with ``n`` resamples: BCa up to 2,000 values, the percentile interval above
    (BCa's jackknife is quadratic in the number of values). ``statistic`` must accept an ``axis`` keyword (as
    numpy's reductions do). ``None`` with fewer than 2 values or a non-finite one; a zero-width interval when
    every value is equal (resampling cannot vary the statistic).
    """
    _check_level(level)
    if n < 1:
        raise UsageError(f"bootstrap resamples n={n!r} must be a positive integer (e.g. 2000)")
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise UsageError(f"bootstrap_ci takes a 1-D sequence of values, got shape {arr.shape}")
    if arr.size < 2 or not np.isfinite(arr).all():
        return None
    if np.all(arr == arr[0]):
        v = float(statistic(arr))
        return Interval(v, v, level)
    res = sps.bootstrap(
        (arr,),
        statistic,
        n_resamples=n,
        confidence_level=level,
        method="BCa" if arr.size <= _BCA_MAX else "percentile",
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return Interval(float(ci.low), float(ci.high), level)


# ------------------------------------------------------------------------------------------- paired tests
@dataclass(frozen=True)
class PairedTest:
    """McNemar's test on the images where the two conditions disagree, pooled over paired seeds.

    ``a_only``: images ``a`` got right and ``b`` wrong (summed over seeds); ``b_only`` the reverse; ``p`` the
    two-sided p-value of "a and b are equally often right where they disagree"."""

    method: str
    a_only: int
    b_only: int
    p: float

    @property
    def direction(self) -> int:
        """Sign of ``error(a) − error(b)`` these counts show: −1 when ``a`` is right more often, +1, or 0."""
        return (self.b_only > self.a_only) - (self.a_only > self.b_only)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "a_only": self.a_only, "b_only": self.b_only, "p": self.p}


def mcnemar(a_correct: Sequence[np.ndarray], b_correct: Sequence[np.ndarray]) -> PairedTest:
    """McNemar's test of two conditions evaluated on the same images.

    ``a_correct[i]`` and ``b_correct[i]`` are boolean per-image correctness of seed ``i`` of each condition,
    on the same images in the same order (seeds paired by position). The discordant counts are summed over
    seeds — a stratified McNemar test, valid because under "no difference" each discordant image is equally
    likely to favour either side, within every seed. Exact (two-sided binomial, :func:`scipy.stats.binomtest`)
    below 50 discordant pairs, else the chi-square statistic with continuity correction. No discordant pair at
    all gives p = 1.
    """
    if len(a_correct) != len(b_correct) or not a_correct:
        raise UsageError(
            f"mcnemar needs the same positive number of seeds on both sides, got {len(a_correct)} and "
            f"{len(b_correct)}"
        )
    a_only = b_only = 0
    for i, (a, b) in enumerate(zip(a_correct, b_correct, strict=True)):
        a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
        if a.shape != b.shape:
            raise UsageError(
                f"seed {i}: per-image correctness of shapes {a.shape} and {b.shape}; both sides must be "
                f"evaluated on the same images"
            )
        a_only += int(np.count_nonzero(a & ~b))
        b_only += int(np.count_nonzero(~a & b))
    n = a_only + b_only
    if n == 0:
        return PairedTest("mcnemar (exact)", 0, 0, 1.0)
    if n < _EXACT_BELOW:
        return PairedTest("mcnemar (exact)", a_only, b_only, float(sps.binomtest(a_only, n, 0.5).pvalue))
    stat = (abs(a_only - b_only) - 1) ** 2 / n
    return PairedTest("mcnemar (chi2)", a_only, b_only, float(sps.chi2.sf(stat, 1)))


# ------------------------------------------------------------------------------------------- differences
@dataclass(frozen=True)
class Difference:
    """``a − b`` (``difference = a.mean − b.mean``) with its CI across seeds; see the module docstring.

    ``ci``, ``df``, ``p`` and ``se`` (the standard error of the difference) are ``None`` when either side
    has fewer than 2 seeds or a non-finite value. ``df`` is also ``None`` when no seed spread was observed
    at all (every value equal on each side): the CI then has zero width. For :func:`compare_log`, ``a`` and
    ``b`` hold the log10 values."""

    a_label: str
    b_label: str
    a: Estimate
    b: Estimate
    difference: float
    ci: Interval | None
    df: float | None
    p: float | None
    method: str
    se: float | None = None

    @property
    def outcome(self) -> str:
        """``"higher"`` (CI above 0), ``"lower"`` (CI below 0) or ``"not resolved"``.

        Unresolved when there is no CI or any value is non-finite."""
        if self.ci is None or not (self.a.finite and self.b.finite and math.isfinite(self.difference)):
            return "not resolved"
        if self.ci.low > 0:
            return "higher"
        if self.ci.high < 0:
            return "lower"
        return "not resolved"

    @property
    def resolved(self) -> bool:
        return self.outcome != "not resolved"

    @property
    def unknown(self) -> bool:
        """A non-finite value on either side, or a non-finite difference of two sides that both have values:
        nothing can be said (the studies' ``unknown`` outcome). A side without values (every seed diverged)
        is not unknown: it has too few seeds (:attr:`no_interval`)."""
        if not (self.a.finite and self.b.finite):
            return True
        return bool(self.a.values and self.b.values) and not math.isfinite(self.difference)

    @property
    def no_interval(self) -> str | None:
        """Why there is no CI, for a sentence: too few seeds (naming each short side, with its diverged seeds),
        or a non-finite value; ``None`` when there is a CI."""
        if self.ci is not None:
            return None
        sides = ((self.a_label, self.a), (self.b_label, self.b))
        short = [
            (_("{label} has {n}").format(label=label, n=e.seeds) if e.seeds else _("{label} has none").format(
                label=label)) + (_(", {n} diverged").format(n=e.diverged) if e.diverged else "")
            for label, e in sides
            if e.seeds < 2
        ]  # fmt: skip
        if short:  # e.g. "fewer than two seeds: plain-110 has none, 2 diverged; plain-20 has 1"
            return _("fewer than two seeds: {sides}").format(sides="; ".join(short))
        if self.unknown:
            return _("a non-finite value")
        return None  # not reached: welch and paired give a CI whenever both sides have 2 finite seeds

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a_label,
            "b": self.b_label,
            "a_values": list(self.a.values),
            "b_values": list(self.b.values),
            "a_mean": self.a.mean,
            "b_mean": self.b.mean,
            "a_seeds": self.a.seeds,
            "b_seeds": self.b.seeds,
            "a_diverged": self.a.diverged,
            "b_diverged": self.b.diverged,
            "difference": self.difference,
            "ci": self.ci.to_dict() if self.ci else None,
            "no_interval": self.no_interval,
            "df": self.df,
            "p": self.p,
            "method": self.method,
            "outcome": self.outcome,
        }


def _from_t(
    a_label: str, a: Estimate, b_label: str, b: Estimate, se: float, df: float, level: float, method: str
) -> Difference:
    """``a − b`` with standard error ``se`` on ``df`` degrees of freedom (t distribution)."""
    d = a.mean - b.mean
    if se == 0.0:  # no spread observed on either side: the difference is exact as far as the seeds show
        ci = Interval(d, d, level)
        return Difference(a_label, b_label, a, b, d, ci, None, 1.0 if d == 0 else 0.0, method, se=0.0)
    half = _t_half_width(se, df, level)
    p = 2.0 * _t_cdf(-abs(d) / se, df)
    ci = Interval(d - half, d + half, level)
    return Difference(a_label, b_label, a, b, d, ci, float(df), p, method, se=se)


def welch(a_label: str, a: Estimate, b_label: str, b: Estimate, *, level: float = LEVEL) -> Difference:
    """``a − b`` with Welch's t interval: unequal variances, standard error sqrt(s²ₐ/nₐ + s²_b/n_b), and the
    Welch–Satterthwaite degrees of freedom (s²ₐ/nₐ + s²_b/n_b)² / ((s²ₐ/nₐ)²/(nₐ−1) + (s²_b/n_b)²/(n_b−1)),
    as :func:`scipy.stats.ttest_ind` with ``equal_var=False``."""
    _check_level(level)
    if a.seeds < 2 or b.seeds < 2 or not (a.finite and b.finite):
        return Difference(a_label, b_label, a, b, a.mean - b.mean, None, None, None, "welch t")
    va, vb = (a.std or 0.0) ** 2 / a.seeds, (b.std or 0.0) ** 2 / b.seeds
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.seeds - 1) + vb**2 / (b.seeds - 1)) if se > 0 else math.inf
    return _from_t(a_label, a, b_label, b, se, df, level, "welch t")


def paired(a_label: str, a: Estimate, b_label: str, b: Estimate, *, level: float = LEVEL) -> Difference:
    """``a − b`` with a paired t interval over seeds: ``a.values[i]`` and ``b.values[i]`` share seed ``i``
    (same initialisation seed, same data order), which removes the seed-to-seed spread both share.

    The t interval of the per-seed differences (df = seeds − 1), as :func:`scipy.stats.ttest_rel`. Both
    sides must hold the same number of seeds."""
    _check_level(level)
    if a.seeds != b.seeds:
        raise UsageError(
            f"paired comparison of {a_label!r} ({a.seeds} seeds) and {b_label!r} ({b.seeds} seeds): the seeds "
            f"must pair one to one; use welch() for unpaired seeds"
        )
    if a.seeds < 2 or not (a.finite and b.finite):
        return Difference(a_label, b_label, a, b, a.mean - b.mean, None, None, None, "paired t")
    se = float(np.std(np.subtract(a.values, b.values), ddof=1)) / math.sqrt(a.seeds)
    return _from_t(a_label, a, b_label, b, se, a.seeds - 1, level, "paired t")


def _log10(e: Estimate) -> Estimate:
    # A ratio that is zero, negative or non-finite has no logarithm: NaN keeps the comparison unresolved.
    return Estimate(
        tuple(math.log10(v) if v > 0 and math.isfinite(v) else math.nan for v in e.values),
        e.images,
        e.diverged,
    )


def compare_log(a_label: str, a: Estimate, b_label: str, b: Estimate, *, level: float = LEVEL) -> Difference:
    """Two positive ratios (one per seed: gradient norms, activation RMS, ...) compared as log10 values with
    Welch's interval. The result's ``a``/``b`` hold the log10 values, ``difference`` is in log10 units and
    ``10**difference`` is the ratio of geometric means. Any non-positive or non-finite ratio: not resolved."""
    d = welch(a_label, _log10(a), b_label, _log10(b), level=level)
    return dataclasses.replace(d, method="welch t on log10")


# ------------------------------------------------------------------------------------------- equivalence
@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests (TOST) of ``|a − b| < bound``. ``ci`` is the (1 − 2α) interval (90% for α = 0.05):
    ``equivalent`` ⇔ it lies inside ``(−bound, bound)`` ⇔ ``p`` (the larger one-sided p) < α. ``ci`` is
    ``None`` (and ``equivalent`` false) when the difference has no CI."""

    bound: float
    equivalent: bool
    p: float
    ci: Interval | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bound": self.bound,
            "equivalent": self.equivalent,
            "p": self.p,
            "ci": self.ci.to_dict() if self.ci else None,
        }


def bounded_outcome(d: Difference, e: Equivalence | None, *, minimum_effect: bool = False) -> str:
    """The outcome of ``d`` read with its TOST ``e``: ``higher``/``lower`` when the CI excludes 0, else
    ``equivalent`` when ``e`` holds, else ``not resolved``. With ``minimum_effect`` the bound is also the
    smallest change that counts (the studies' plateau checks): equivalence first, and a direction only when
    the CI lies wholly beyond ±bound, so that a replication cannot flip between "plateau" and "still falling"
    through a deviation smaller than the bound."""
    if e is None:
        return d.outcome
    if minimum_effect:
        if e.equivalent:
            return "equivalent"
        beyond = d.ci is not None and (d.ci.low > e.bound or d.ci.high < -e.bound)
        return d.outcome if beyond else "not resolved"
    if d.outcome != "not resolved":
        return d.outcome
    return "equivalent" if e.equivalent else "not resolved"


def equivalence(d: Difference, bound: float, *, alpha: float = 0.05) -> Equivalence:
    """TOST of ``d`` against ``±bound`` (in ``d``'s units), with the same standard error and df as ``d``.

    H0₁: difference ≤ −bound, rejected by a large ``(d + bound)/se``; H0₂: difference ≥ bound, rejected by a
    small ``(d − bound)/se``; equivalent iff both p < ``alpha``."""
    if not bound > 0 or not math.isfinite(bound):
        raise UsageError(
            f"equivalence bound {bound!r} must be a positive finite number (in the difference's units)"
        )
    if not 0.0 < alpha < 0.5:
        raise UsageError(f"equivalence alpha {alpha!r} must lie strictly between 0 and 0.5 (e.g. 0.05)")
    level = 1.0 - 2.0 * alpha
    if d.ci is None or d.se is None or not (d.a.finite and d.b.finite):
        return Equivalence(bound, False, 1.0, None)
    x = d.difference
    if d.se == 0.0 or d.df is None:
        inside = abs(x) < bound
        return Equivalence(bound, inside, 0.0 if inside else 1.0, Interval(x, x, level))
    p_low = _t_cdf(-(x + bound) / d.se, d.df)  # H0₁: difference ≤ −bound (upper tail, by symmetry)
    p_high = _t_cdf((x - bound) / d.se, d.df)  # H0₂: difference ≥ bound
    p = max(p_low, p_high)
    half = _t_half_width(d.se, d.df, level)
    return Equivalence(bound, p < alpha, p, Interval(x - half, x + half, level))


# -------------------------------------------------------------------------------------------------- slope
@dataclass(frozen=True)
class Slope:
    """Least-squares slope of y on x and its t interval (df = n − 2). ``ci`` is ``None`` with fewer than 3
    points; any non-finite value (or fewer than 2 points) gives NaN ``slope``/``intercept`` and no CI."""

    slope: float
    ci: Interval | None
    intercept: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "slope": self.slope,
            "ci": self.ci.to_dict() if self.ci else None,
            "intercept": self.intercept,
            "n": self.n,
        }


def slope(x: Sequence[float], y: Sequence[float], *, level: float = LEVEL) -> Slope:
    """Least-squares slope of ``y`` against ``x`` (:func:`scipy.stats.linregress`) and its t interval."""
    _check_level(level)
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise UsageError(
            f"slope needs two 1-D sequences of the same length, got shapes {xs.shape} and {ys.shape}"
        )
    n = int(xs.size)
    if n < 2 or not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        return Slope(math.nan, None, math.nan, n)
    if np.all(xs == xs[0]):
        raise UsageError(f"slope needs at least two distinct x values, got x = {xs.tolist()}")
    res = sps.linregress(xs, ys)
    ci = None
    if n >= 3:
        half = _t_half_width(float(res.stderr), n - 2, level)
        ci = Interval(float(res.slope) - half, float(res.slope) + half, level)
    return Slope(float(res.slope), ci, float(res.intercept), n)


# ------------------------------------------------------------------------------------------- one-sided
def one_sided(d: Difference, side: str, *, against: float = 0.0) -> float | None:
    """The one-sided p-value of ``a − b < against`` (``side="lower"``) or ``a − b > against``
    (``side="higher"``) with ``d``'s standard error and degrees of freedom: the probability, were the
    difference exactly ``against``, of a t statistic at least as far to that side. ``None`` without an
    interval (fewer than two seeds a side, or a non-finite value)."""
    if side not in ("lower", "higher"):
        raise UsageError(f"side must be 'lower' or 'higher', got {side!r}")
    if d.ci is None or d.se is None or d.unknown:
        return None
    x = d.difference - against
    if d.se == 0.0 or d.df is None:  # no spread observed: the difference is exact as far as the seeds show
        return 0.0 if (x < 0 if side == "lower" else x > 0) else 1.0
    t = x / d.se
    return _t_cdf(t, d.df) if side == "lower" else _t_cdf(-t, d.df)


# --------------------------------------------------------------------------------------------- claims
CLAIM_VERDICTS = (N_("supported"), N_("contradicted"), N_("not resolved"))


@dataclass(frozen=True)
class ClaimTest:
    """The test of one claim (a study's question): ``p_support``, the one-sided p-value of the evidence
    for the claim, and ``p_contradict``, of the evidence against it. At most one of them can be small.

    ``p`` (two-sided) is ``min(1, 2·min(p_support, p_contradict))``: for a claim about the sign of a
    difference it is the Welch test's two-sided p-value; for a claim that a difference stays on one side of
    a margin, that of "the difference equals the margin". A study adjusts the ``p`` of its answers together
    (:func:`holm`); a verdict is drawn only when the adjusted value is below ``alpha``, on the side whose
    one-sided p-value is the smaller. ``None`` p-values: no test could be made (too few seeds, a
    non-finite value); the verdict is then not resolved."""

    p_support: float | None
    p_contradict: float | None
    method: str

    @property
    def p(self) -> float | None:
        if self.p_support is None or self.p_contradict is None:
            return None
        return min(1.0, 2.0 * min(self.p_support, self.p_contradict))

    def verdict(self, p_adjusted: float | None, alpha: float = 1.0 - LEVEL) -> str:
        """``supported``/``contradicted`` when ``p_adjusted`` < ``alpha`` on the smaller side, else not
        resolved."""
        if p_adjusted is None or self.p_support is None or self.p_contradict is None or p_adjusted >= alpha:
            return "not resolved"
        return "supported" if self.p_support < self.p_contradict else "contradicted"

    def to_dict(self) -> dict[str, Any]:
        return {"p_support": self.p_support, "p_contradict": self.p_contradict, "p": self.p,
                "method": self.method}  # fmt: skip


def claim_sign(d: Difference, expected: str) -> ClaimTest:
    """The claim "``a − b`` is ``expected`` (``lower`` or ``higher``) than 0": one-sided Welch (or paired)
    tests each way; its ``p`` is the two-sided p-value of ``d``."""
    other = "higher" if expected == "lower" else "lower"
    return ClaimTest(one_sided(d, expected), one_sided(d, other), f"{d.method}, two-sided")


def claim_margin(d: Difference, margin: float, side: str) -> ClaimTest:
    """The claim "``a − b`` stays ``side`` of ``margin``" (``side="lower"``: a − b < margin, i.e. ``a`` is
    no worse than ``b`` by ``margin`` or more — a non-inferiority claim; ``"higher"``: a − b > margin).
    Supported by the one-sided test that the difference lies on that side of the margin, contradicted by the
    one-sided test that it lies beyond it; ``p`` tests "the difference equals the margin"."""
    other = "higher" if side == "lower" else "lower"
    return ClaimTest(one_sided(d, side, against=margin), one_sided(d, other, against=margin),
                     f"{d.method} against the margin {margin:+g}")  # fmt: skip


def claim_all(parts: Sequence[ClaimTest]) -> ClaimTest:
    """The claim that every part holds (e.g. "lower at every depth"). Supported only when every part is:
    an intersection-union test, whose p-value is the largest part's (no multiplicity penalty, since every
    part must reject). Contradicted when any part is contradicted: a union over the parts, Bonferroni-
    adjusted (k times the smallest). No parts, or a part without a test: no test."""
    if not parts or any(t.p_support is None or t.p_contradict is None for t in parts):
        return ClaimTest(None, None, "intersection-union over its parts")
    support = max(float(t.p_support) for t in parts)  # type: ignore[arg-type]
    contradict = min(1.0, len(parts) * min(float(t.p_contradict) for t in parts))  # type: ignore[arg-type]
    return ClaimTest(support, contradict, f"intersection-union over {len(parts)} parts")


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of ``p_values`` (``None`` — no test — is left out and stays ``None``):
    sorted ascending, the i-th smallest of m is multiplied by m − i + 1, then each adjusted value is raised to
    the largest before it (monotone) and capped at 1. Rejecting where the adjusted value is below α controls
    the probability of any false rejection among the m at α."""
    known = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(known)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(known):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


# ---------------------------------------------------------------------------------------- convergence
CONVERGENCE_STATES = (N_("still falling"), N_("flat"), N_("rising"), N_("not resolved"), N_("unknown"))


@dataclass(frozen=True)
class Convergence:
    """Whether a quantity (a net's training error) had stopped changing at the end of training: ``change``
    is its mean over the last window minus the window before, paired by seed, and ``equivalence`` its TOST
    against ``±bound``.

    ``state``: ``still falling`` when the 95% CI of the change lies below 0, ``rising`` when above, else
    ``flat`` when the TOST keeps it within ±bound, else ``not resolved``; ``unknown`` for a non-finite
    value. A resolved fall is reported however small it is: a net that still falls has not converged, and
    the answers that rest on it say so."""

    change: Difference
    equivalence: Equivalence
    bound: float

    @property
    def state(self) -> str:
        d = self.change
        if d.unknown:
            return "unknown"
        if d.ci is not None and d.ci.high < 0:
            return "still falling"
        if d.ci is not None and d.ci.low > 0:
            return "rising"
        return "flat" if self.equivalence.equivalent else "not resolved"

    def to_dict(self) -> dict[str, Any]:
        return {**self.change.to_dict(), "equivalence": self.equivalence.to_dict(), "state": self.state}


def convergence(label: str, before: Estimate, after: Estimate, bound: float) -> Convergence:
    """The change of ``label``'s quantity from the window ``before`` to the window ``after`` (one value
    per seed each, the same seeds in the same order), judged against ``bound`` (:class:`Convergence`)."""
    d = paired(f"{label} (last window)", after, f"{label} (window before)", before)
    return Convergence(d, equivalence(d, bound), bound)


# --------------------------------------------------------------------------------------------- outliers
OUTLIER_MADS = 3.0  # fixed in advance: a value more than 3 scaled MADs from the median is called outlying


def outlying(values: Sequence[float], k: float = OUTLIER_MADS) -> tuple[int, ...]:
    """Positions of the values more than ``k`` scaled median absolute deviations (MAD × 1.4826, the normal
    distribution's SD) from the median: seeds that stalled, or fitted far better than the rest, which a mean
    and a t interval would hide. Fewer than 3 values, no spread (MAD 0) or a non-finite value: none."""
    arr = np.asarray(values, dtype=float)
    if arr.size < 3 or not np.isfinite(arr).all():
        return ()
    med = float(np.median(arr))
    mad = 1.4826 * float(np.median(np.abs(arr - med)))
    if mad == 0.0:
        return ()
    return tuple(int(i) for i in np.flatnonzero(np.abs(arr - med) > k * mad))
