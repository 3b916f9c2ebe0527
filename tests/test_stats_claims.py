"""The claim tests, Holm's adjustment, the convergence rule and the outlier rule of depthlab.stats, each
against an independent computation (scipy.stats, or the definition written out by brute force)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from depthlab.stats import (
    ClaimTest,
    Estimate,
    claim_all,
    claim_margin,
    claim_sign,
    convergence,
    holm,
    one_sided,
    outlying,
    paired,
    welch,
)

RNG = np.random.default_rng(7)


def _est(values: object) -> Estimate:
    return Estimate(tuple(float(v) for v in values))  # type: ignore[union-attr]


@pytest.mark.parametrize("trial", range(20))
def test_one_sided_is_scipys_welch_and_paired_one_sided_test(trial: int) -> None:
    a, b = RNG.normal(0.3, 1.0, 5 + trial % 3), RNG.normal(0.0, 0.7, 6)
    d = welch("a", _est(a), "b", _est(b))
    for side, alternative in (("lower", "less"), ("higher", "greater")):
        expected = sps.ttest_ind(a, b, equal_var=False, alternative=alternative).pvalue
        assert one_sided(d, side) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    x, y = RNG.normal(0.2, 1.0, 6), RNG.normal(0.0, 1.0, 6)
    dp = paired("x", _est(x), "y", _est(y))
    assert one_sided(dp, "higher") == pytest.approx(
        sps.ttest_rel(x, y, alternative="greater").pvalue, rel=1e-9
    )


@pytest.mark.parametrize("margin", [-0.5, 0.0, 0.25, 1.0])
def test_claim_margin_is_the_one_sided_test_of_the_shifted_samples(margin: float) -> None:
    a, b = RNG.normal(0.1, 0.5, 6), RNG.normal(0.0, 0.5, 6)
    t = claim_margin(welch("a", _est(a), "b", _est(b)), margin, "lower")  # claim: a − b < margin
    assert t.p_support == pytest.approx(
        sps.ttest_ind(a - margin, b, equal_var=False, alternative="less").pvalue
    )
    assert t.p_contradict == pytest.approx(
        sps.ttest_ind(a - margin, b, equal_var=False, alternative="greater").pvalue
    )
    assert t.p == pytest.approx(sps.ttest_ind(a - margin, b, equal_var=False).pvalue)


def test_claim_sign_two_sided_p_and_verdicts_on_each_side() -> None:
    low, high = _est([1.0, 1.1, 0.9, 1.05]), _est([2.0, 2.1, 1.95, 2.05])
    lower = claim_sign(welch("a", low, "b", high), "lower")
    assert lower.p == pytest.approx(welch("a", low, "b", high).p)
    assert lower.p == pytest.approx(sps.ttest_ind(low.values, high.values, equal_var=False).pvalue)  # scipy
    assert lower.verdict(lower.p) == "supported"
    higher = claim_sign(welch("a", low, "b", high), "higher")
    assert higher.verdict(higher.p) == "contradicted"
    assert higher.verdict(0.2) == "not resolved"  # an adjusted p above alpha resolves nothing
    one_seed = claim_sign(welch("a", _est([1.0]), "b", high), "lower")
    assert one_seed.p is None and one_seed.verdict(None) == "not resolved"


def test_claim_all_is_an_intersection_union_test() -> None:
    parts = [ClaimTest(0.01, 0.99, "x"), ClaimTest(0.02, 0.98, "y"), ClaimTest(0.002, 0.998, "z")]
    t = claim_all(parts)
    assert t.p_support == 0.02 and t.p_contradict == pytest.approx(min(1.0, 3 * 0.98))
    assert t.p == pytest.approx(0.04) and t.verdict(t.p) == "supported"
    # Every part at 0.03: the claim's p is 0.06 (either side could have been claimed), so not resolved.
    assert claim_all([ClaimTest(0.03, 0.97, "x")] * 2).verdict(0.06) == "not resolved"
    mixed = claim_all([ClaimTest(0.01, 0.99, "x"), ClaimTest(0.995, 0.005, "y")])
    assert mixed.p_contradict == pytest.approx(0.01) and mixed.verdict(mixed.p) == "contradicted"
    assert claim_all([]).p is None and claim_all([ClaimTest(None, None, "x")]).p is None


def _holm_closed_testing(ps: list[float]) -> list[float]:
    """Holm as a closed testing procedure with Bonferroni local tests: the adjusted p of H_i is the largest,
    over every subset S of hypotheses containing i, of |S| × the smallest p in S (capped at 1)."""
    m = len(ps)
    out = []
    for i in range(m):
        worst = 0.0
        for size in range(1, m + 1):
            for subset in itertools.combinations(range(m), size):
                if i in subset:
                    worst = max(worst, min(1.0, size * min(ps[j] for j in subset)))
        out.append(worst)
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=6))
def test_holm_equals_closed_testing_with_bonferroni(ps: list[float]) -> None:
    assert holm(ps) == pytest.approx(_holm_closed_testing(ps))


def test_holm_leaves_untested_hypotheses_out() -> None:
    assert holm([0.01, None, 0.04]) == [pytest.approx(0.02), None, pytest.approx(0.04)]


def _tost_90(x: np.ndarray, bound: float) -> bool:
    """TOST written out with scipy: the 90% t interval of the mean paired change inside ±bound."""
    low, high = sps.t.interval(0.90, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    return bool(-bound < low and high < bound)


NOISE = np.array([-1.0, 0.5, 1.5, -0.5, 0.8, -1.3])  # mean 0, fixed: the states below do not depend on luck


@pytest.mark.parametrize(
    "change,spread,expected",
    [
        (-0.03, 0.005, "still falling"),
        (0.03, 0.005, "rising"),
        (0.0, 0.001, "flat"),
        (0.0, 0.02, "not resolved"),
    ],
)
def test_convergence_states_follow_the_t_interval_and_tost(
    change: float, spread: float, expected: str
) -> None:
    before = np.array([0.05, 0.12, 0.3, 0.2, 0.08, 0.15])
    after = before + change + spread * NOISE
    c = convergence("net", _est(before), _est(after), bound=0.005)
    assert c.state == expected
    diff = after - before
    low, high = sps.t.interval(0.95, 5, loc=diff.mean(), scale=sps.sem(diff))
    assert (c.change.ci.low, c.change.ci.high) == pytest.approx((low, high))
    assert c.equivalence.equivalent == _tost_90(diff, 0.005)


def test_a_resolved_fall_inside_the_bound_is_still_falling() -> None:
    # Falls by 0.2 points every seed: within the ±0.5-point bound, but resolved below 0: not converged.
    before = np.array([0.10, 0.12, 0.11, 0.13, 0.09, 0.10])
    c = convergence("net", _est(before), _est(before - 0.002 + np.linspace(-1e-4, 1e-4, 6)), bound=0.005)
    assert c.equivalence.equivalent and c.state == "still falling"


def test_convergence_with_a_non_finite_value_is_unknown() -> None:
    c = convergence("net", _est([0.1, 0.2, 0.3]), _est([0.1, math.nan, 0.3]), bound=0.005)
    assert c.state == "unknown"


def test_outlying_is_scipys_scaled_mad_rule() -> None:
    values = [0.30, 0.28, 0.33, 0.38, 0.64, 0.31]  # one seed stalled far above the others
    med = np.median(values)
    mad = sps.median_abs_deviation(values, scale="normal")
    expected = tuple(i for i, v in enumerate(values) if abs(v - med) > 3 * mad)
    assert outlying(values) == expected == (4,)
    assert outlying([0.1, 0.1, 0.1, 0.5]) == ()  # no spread among the rest: MAD 0, nothing is called out
    assert outlying([0.1, 0.2]) == ()


def test_bounded_outcome_with_a_minimum_effect_needs_the_ci_beyond_the_bound_on_either_side() -> None:
    from depthlab.stats import Difference, Equivalence, Interval, bounded_outcome

    def diff(low: float, high: float) -> Difference:
        e = Estimate((0.0, 0.0))
        return Difference("a", "b", e, e, (low + high) / 2, Interval(low, high), 5.0, 0.01, "t", se=0.001)

    not_equivalent = Equivalence(0.02, False, 0.5, None)
    assert bounded_outcome(diff(-0.0226, -0.0174), not_equivalent, minimum_effect=True) == "not resolved"
    assert bounded_outcome(diff(-0.05, -0.03), not_equivalent, minimum_effect=True) == "lower"
    assert bounded_outcome(diff(0.03, 0.05), not_equivalent, minimum_effect=True) == "higher"
    assert bounded_outcome(diff(0.0174, 0.0226), not_equivalent, minimum_effect=True) == "not resolved"
    # Without the minimum effect, the direction comes first: [−0.0226, −0.0174] is lower.
    assert bounded_outcome(diff(-0.0226, -0.0174), not_equivalent) == "lower"


@pytest.mark.parametrize(
    "value,digits,text",
    [(-0.014, 1, "-0.01"), (0.013, 1, "+0.01"), (0.0, 1, "+0.0"), (-0.0, 1, "+0.0"), (-4.7, 1, "-4.7"),
     (0.0004, 1, "+0.0004"), (0.000004, 1, "+4.0e-06")],
)  # fmt: skip
def test_a_limit_that_rounds_to_zero_keeps_its_sign(value: float, digits: int, text: str) -> None:
    """Issue 23: "[−4.7, +0.0]" (resolved lower: upper limit −0.014) and "[+0.0, +2.4]" (not resolved: lower
    limit −0.013) looked alike; a limit that is not 0 is written with the digits that show its sign."""
    from depthlab.present.format import difference_ci, signed_digits

    assert signed_digits(value, digits) == text
    assert difference_ci(-0.02, -0.047, -0.00014) == "difference -2.0 points, 95% CI [-4.7, -0.01]"
    assert difference_ci(0.012, -0.00013, 0.024) == "difference +1.2 points, 95% CI [-0.01, +2.4]"
