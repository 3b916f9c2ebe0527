"""depthlab.stats: calibration by simulation, and each statistic against a second method.

The calibration tests simulate thousands of small studies (3 seeds per side, normal seed noise) with a fixed
numpy seed: with no effect a rule must call a difference about 5% of the time (not more, and not absurdly
less); with a known effect it must find it, in the right direction.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from depthlab.errors import UsageError
from depthlab.stats import (
    OUTCOMES,
    Difference,
    Estimate,
    Interval,
    bootstrap_ci,
    compare_log,
    equivalence,
    estimate,
    mcnemar,
    mean_ci,
    paired,
    slope,
    welch,
)

SIMS = 4000


def est(values) -> Estimate:
    e = estimate(list(values))
    assert e is not None
    return e


def called_rate(outcomes: list[str], which: tuple[str, ...] = ("higher", "lower")) -> float:
    return sum(o in which for o in outcomes) / len(outcomes)


# ------------------------------------------------------------------------------------------- calibration
def test_welch_calls_a_non_existent_difference_about_5_percent_of_the_time() -> None:
    rng = np.random.default_rng(14)
    outcomes = [
        welch("a", est(rng.normal(0.3, 0.02, 3)), "b", est(rng.normal(0.3, 0.02, 3))).outcome
        for _ in range(SIMS)
    ]
    # A z interval (1.96 instead of the t quantile) calls ~12%, a 90% interval ~8%, a 99% interval <1%.
    # Welch with 3 seeds a side is slightly conservative: about 3.7% over 8,000 simulations (3.35% with this
    # seed; compare_log's seed below gives 3.0%), hence the lower bound of 2.5%.
    assert 0.025 <= called_rate(outcomes) <= 0.06
    assert set(outcomes) <= set(OUTCOMES)


def test_paired_calls_a_non_existent_difference_about_5_percent_of_the_time() -> None:
    rng = np.random.default_rng(15)
    outcomes = []
    for _ in range(SIMS):
        shared = rng.normal(0.0, 0.02, 3)  # what a seed does to both conditions (init, data order)
        a, b = 0.3 + shared + rng.normal(0, 0.01, 3), 0.3 + shared + rng.normal(0, 0.01, 3)
        outcomes.append(paired("a", est(a), "b", est(b)).outcome)
    assert 0.025 <= called_rate(outcomes) <= 0.06


def test_compare_log_calls_a_non_existent_ratio_difference_about_5_percent_of_the_time() -> None:
    rng = np.random.default_rng(16)
    outcomes = [
        compare_log("a", est(10 ** rng.normal(0, 0.3, 3)), "b", est(10 ** rng.normal(0, 0.3, 3))).outcome
        for _ in range(SIMS)
    ]
    assert 0.025 <= called_rate(outcomes) <= 0.06


def test_a_known_effect_is_detected_in_its_direction() -> None:
    rng = np.random.default_rng(17)
    n = 1000
    # Welch, 3 seeds a side, an effect of 4 seed SDs: power ~88% (3 SDs give only ~66%).
    up = [
        welch("a", est(rng.normal(0.38, 0.02, 3)), "b", est(rng.normal(0.3, 0.02, 3))).outcome
        for _ in range(n)
    ]
    assert called_rate(up, ("higher",)) > 0.8 and called_rate(up, ("lower",)) == 0
    down = [
        welch("a", est(rng.normal(0.3, 0.02, 3)), "b", est(rng.normal(0.38, 0.02, 3))).outcome
        for _ in range(n)
    ]
    assert called_rate(down, ("lower",)) > 0.8 and called_rate(down, ("higher",)) == 0
    # Ratios 10^1.2 apart, log10 seed SD 0.3 (4 SDs).
    logs = [
        compare_log("a", est(10 ** rng.normal(1.2, 0.3, 3)), "b", est(10 ** rng.normal(0, 0.3, 3))).outcome
        for _ in range(n)
    ]
    assert called_rate(logs, ("higher",)) > 0.8 and called_rate(logs, ("lower",)) == 0


def test_paired_removes_shared_seed_noise_and_finds_what_welch_misses() -> None:
    rng = np.random.default_rng(18)
    by_paired, by_welch = [], []
    for _ in range(1000):
        shared = rng.normal(0.0, 0.04, 3)
        # effect 0.06 = 4.2 SDs of the per-seed difference (0.01·√2), but 1.5 SDs of a condition over seeds
        a, b = est(0.36 + shared + rng.normal(0, 0.01, 3)), est(0.3 + shared + rng.normal(0, 0.01, 3))
        by_paired.append(paired("a", a, "b", b).outcome)
        by_welch.append(welch("a", a, "b", b).outcome)
    assert called_rate(by_paired, ("higher",)) > 0.8 and called_rate(by_paired, ("lower",)) == 0
    assert called_rate(by_welch, ("higher",)) < 0.5


def _old_margin_rule_calls(a: Estimate, b: Estimate) -> bool:
    """The margin rule depthlab used before this module (kept here only as the reason it was replaced): a
    difference beyond max(1 point, the sum of the seed SDs) was called an effect."""
    return abs(a.mean - b.mean) > max(0.01, (a.std or 0.0) + (b.std or 0.0))


def test_the_old_margin_rule_calls_a_non_existent_difference_too_often() -> None:
    # Why the margin rule (difference beyond the sum of the seed SDs) was replaced: with 2 seeds a side it
    # calls a difference about 20% of the time when there is none (issue 14 measured 22%).
    rng = np.random.default_rng(19)
    called = [
        _old_margin_rule_calls(est(rng.normal(0.3, 0.02, 2)), est(rng.normal(0.3, 0.02, 2)))
        for _ in range(SIMS)
    ]
    assert sum(called) / SIMS > 0.15


# ------------------------------------------------------------------------------------- Welch and paired t
def test_welch_matches_a_t_table_and_the_welch_satterthwaite_formula() -> None:
    # Equal variances (1) and 3 seeds each: df = 4, t(0.975, 4) = 2.776 (any t table), se = sqrt(2/3).
    d = welch("a", est([1.0, 2.0, 3.0]), "b", est([0.0, 1.0, 2.0]))
    assert d.difference == pytest.approx(1.0)
    assert d.df == pytest.approx(4.0)
    assert d.ci is not None and d.ci.level == 0.95
    assert d.ci.low == pytest.approx(1.0 - 2.776 * math.sqrt(2 / 3), abs=1e-3)
    assert d.ci.high == pytest.approx(1.0 + 2.776 * math.sqrt(2 / 3), abs=1e-3)
    assert d.outcome == "not resolved" and not d.resolved

    a, b = [0.31, 0.35, 0.29, 0.33], [0.22, 0.21, 0.25]
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    d = welch("a", est(a), "b", est(b))
    diff = np.mean(a) - np.mean(b)
    assert d.df == pytest.approx(df)
    assert (d.ci.low, d.ci.high) == pytest.approx((diff - half, diff + half))  # type: ignore[union-attr]
    # ... and scipy's own Welch test
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert d.p == pytest.approx(ref.pvalue) and d.df == pytest.approx(ref.df)
    assert d.outcome == "higher" and d.resolved
    assert welch("b", est(b), "a", est(a)).outcome == "lower"


def test_paired_matches_scipy_ttest_rel() -> None:
    a, b = [0.31, 0.35, 0.29, 0.33], [0.27, 0.30, 0.26, 0.30]
    d = paired("a", est(a), "b", est(b), level=0.9)
    ref = sps.ttest_rel(a, b)
    ci = ref.confidence_interval(0.9)
    assert d.method == "paired t" and d.df == 3
    assert (d.ci.low, d.ci.high, d.ci.level) == pytest.approx((ci.low, ci.high, 0.9))  # type: ignore[union-attr]
    assert d.p == pytest.approx(ref.pvalue)
    with pytest.raises(UsageError, match="3 seeds"):
        paired("a", est(a), "b", est(b[:3]))


def test_estimate_ci_is_the_student_t_interval() -> None:
    e = est([0.1, 0.2, 0.3, 0.6])
    ref = sps.t.interval(0.95, 3, loc=np.mean(e.values), scale=sps.sem(e.values))
    assert (e.ci().low, e.ci().high) == pytest.approx(ref)  # type: ignore[union-attr]
    assert mean_ci([0.1, 0.2, 0.3, 0.6]) == e.ci()
    assert e.std == pytest.approx(np.std(e.values, ddof=1)) and e.seeds == 4
    assert estimate([None, 0.2, None], images=100) == Estimate((0.2,), 100)
    assert estimate([None]) is None
    json.dumps(e.to_dict(), allow_nan=False)


def test_compare_log_compares_log10_values() -> None:
    d = compare_log("a", est([100.0, 1000.0, 10000.0]), "b", est([1.0, 10.0, 100.0]))
    assert d.a.values == pytest.approx((2.0, 3.0, 4.0)) and d.difference == pytest.approx(2.0)
    assert d.method == "welch t on log10"
    same = welch("a", est([2.0, 3.0, 4.0]), "b", est([0.0, 1.0, 2.0]))
    assert (d.ci.low, d.ci.high) == pytest.approx((same.ci.low, same.ci.high))  # type: ignore[union-attr]


# ------------------------------------------------------------------------------- unresolvable evidence
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_never_resolved(bad: float) -> None:
    a, b = est([0.5, 0.51, bad]), est([0.1, 0.11, 0.12])
    for d in (welch("a", a, "b", b), paired("a", a, "b", b), compare_log("a", a, "b", b)):
        assert d.outcome == "not resolved" and d.ci is None
    assert a.ci() is None and mean_ci([0.1, bad]) is None
    assert bootstrap_ci([0.1, 0.2, bad]) is None
    assert equivalence(welch("a", a, "b", b), 1.0).equivalent is False
    assert math.isnan(slope([0, 1, 2], [0.0, 1.0, bad]).slope)


@pytest.mark.parametrize("ratio", [0.0, -1.0])
def test_compare_log_of_a_non_positive_ratio_is_not_resolved(ratio: float) -> None:
    d = compare_log("a", est([100.0, 120.0, ratio]), "b", est([1.0, 1.1, 0.9]))
    assert d.outcome == "not resolved"


def test_one_seed_gives_no_ci_and_no_verdict() -> None:
    one, three = est([0.9]), est([0.1, 0.11, 0.12])
    assert one.ci() is None and one.std is None
    d = welch("a", one, "b", three)
    assert d.ci is None and d.df is None and d.p is None and d.outcome == "not resolved"
    assert paired("a", one, "b", est([0.1])).outcome == "not resolved"
    assert d.to_dict()["ci"] is None and d.to_dict()["outcome"] == "not resolved"


def test_difference_to_dict_is_strict_json_with_the_contract_keys() -> None:
    d = welch("a", est([0.3, 0.31, 0.32]), "b", est([0.2, 0.21, 0.2]))
    out = d.to_dict()
    json.dumps(out, allow_nan=False)
    for key in (
        "a",
        "b",
        "a_values",
        "b_values",
        "a_mean",
        "b_mean",
        "difference",
        "ci",
        "df",
        "p",
        "method",
    ):
        assert key in out
    # The seed is the unit (issue 23): no per-image test rides along with a comparison across seeds.
    assert out["outcome"] == "higher" and "paired_test" not in out


# ----------------------------------------------------------------------------------------------- TOST
def _tost_case() -> Difference:
    # d = 1, se = sqrt(2/3), df = 4; t(0.95, 4) = 2.132 → 90% CI 1 ± 1.7407 = [−0.741, 2.741]
    return welch("a", est([1.0, 2.0, 3.0]), "b", est([0.0, 1.0, 2.0]))


def test_equivalence_when_the_90_percent_ci_sits_inside_the_bound() -> None:
    d = _tost_case()
    eq = equivalence(d, 3.0)
    assert eq.equivalent and eq.ci is not None and eq.ci.level == pytest.approx(0.9)
    assert (eq.ci.low, eq.ci.high) == pytest.approx(
        (1 - 2.132 * math.sqrt(2 / 3), 1 + 2.132 * math.sqrt(2 / 3)), abs=1e-3
    )
    se = math.sqrt(2 / 3)
    p_low, p_high = sps.t.sf((1 + 3) / se, 4), sps.t.cdf((1 - 3) / se, 4)
    assert eq.p == pytest.approx(max(p_low, p_high)) and eq.p < 0.05
    # The bound 2 cuts the 90% CI (it reaches 2.741): not equivalent, and p is the larger one-sided p.
    eq2 = equivalence(d, 2.0)
    assert not eq2.equivalent
    assert eq2.p == pytest.approx(max(sps.t.sf(3 / se, 4), sps.t.cdf(-1 / se, 4))) and eq2.p > 0.05
    json.dumps(eq.to_dict(), allow_nan=False)


def test_equivalent_exactly_when_the_interval_is_inside_the_bound() -> None:
    d = _tost_case()
    for bound in np.linspace(0.2, 5.0, 49):
        eq = equivalence(d, float(bound))
        assert eq.ci is not None
        assert eq.equivalent == (-bound < eq.ci.low and eq.ci.high < bound), bound


def test_a_clear_difference_is_not_equivalent_and_bounds_are_checked() -> None:
    d = welch("a", est([10.0, 10.1, 9.9]), "b", est([0.0, 0.1, -0.1]))
    eq = equivalence(d, 1.0)
    assert not eq.equivalent and eq.p > 0.99
    with pytest.raises(UsageError, match="bound"):
        equivalence(d, 0.0)
    assert equivalence(welch("a", est([1.0]), "b", est([1.0, 2.0])), 5.0).equivalent is False


# -------------------------------------------------------------------------------------------- McNemar
def _flags(right: int, wrong: int) -> np.ndarray:
    return np.array([True] * right + [False] * wrong)


def _pair(
    a_only: int, b_only: int, both_right: int = 10, both_wrong: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image correctness of two conditions on the same images, with the given cell counts."""
    a = np.concatenate([_flags(a_only, b_only), _flags(both_right, both_wrong)])
    b = np.concatenate([_flags(0, a_only), _flags(b_only, 0), _flags(both_right, both_wrong)])
    return a, b


def test_mcnemar_exact_p_is_the_two_sided_binomial() -> None:
    a, b = _pair(7, 2)
    t = mcnemar([a], [b])
    assert (t.a_only, t.b_only, t.method) == (7, 2, "mcnemar (exact)")
    hand = 2 * sum(math.comb(9, k) for k in range(3)) / 2**9  # P(X ≤ 2) doubled, X ~ Bin(9, 1/2)
    assert t.p == pytest.approx(hand)  # 92/512
    assert t.direction == -1  # a right more often: a has the lower error
    assert mcnemar([b], [a]).direction == 1


def test_mcnemar_pools_discordant_counts_over_seeds() -> None:
    (a1, b1), (a2, b2) = _pair(3, 1, 20, 3), _pair(4, 1, 18, 4)
    t = mcnemar([a1, a2], [b1, b2])
    assert (t.a_only, t.b_only) == (7, 2)
    assert t.p == pytest.approx(92 / 512)


def test_mcnemar_chi_square_with_continuity_correction_for_many_discordant_images() -> None:
    a, b = _pair(40, 20)
    t = mcnemar([a], [b])
    assert (t.a_only, t.b_only, t.method) == (40, 20, "mcnemar (chi2)")
    stat = (abs(40 - 20) - 1) ** 2 / 60
    assert t.p == pytest.approx(math.erfc(math.sqrt(stat / 2)))  # chi-square(1) upper tail


def test_identical_predictions_give_p_1() -> None:
    flags = _flags(60, 40)
    t = mcnemar([flags, flags], [flags.copy(), flags.copy()])
    assert (t.a_only, t.b_only, t.p) == (0, 0, 1.0)


def test_mcnemar_rejects_unpaired_inputs() -> None:
    with pytest.raises(UsageError, match="same images"):
        mcnemar([_flags(3, 2)], [_flags(3, 3)])
    with pytest.raises(UsageError, match="number of seeds"):
        mcnemar([_flags(3, 2)], [_flags(3, 2), _flags(3, 2)])


# ------------------------------------------------------------------------------- slope and bootstrap
def test_slope_matches_polyfit_and_recovers_a_known_line() -> None:
    rng = np.random.default_rng(20)
    x = np.arange(10.0)
    y = -0.3 * x + 2.0 + rng.normal(0, 0.1, 10)
    s = slope(x, y)
    ref_slope, ref_intercept = np.polyfit(x, y, 1)
    assert (s.slope, s.intercept, s.n) == pytest.approx((ref_slope, ref_intercept, 10))
    # t interval from the residuals: se = sqrt(SSR / (n − 2) / Sxx)
    resid = y - (ref_slope * x + ref_intercept)
    se = math.sqrt(resid @ resid / 8 / ((x - x.mean()) @ (x - x.mean())))
    half = sps.t.ppf(0.975, 8) * se
    assert (s.ci.low, s.ci.high) == pytest.approx((ref_slope - half, ref_slope + half))  # type: ignore[union-attr]
    assert s.ci.low < -0.3 < s.ci.high  # type: ignore[union-attr]
    exact = slope([1, 2, 3, 4], [5.0, 7.0, 9.0, 11.0])
    assert (exact.slope, exact.intercept) == pytest.approx((2.0, 3.0))
    assert slope([0, 1], [0.0, 1.0]).ci is None
    with pytest.raises(UsageError, match="distinct x"):
        slope([1, 1, 1], [0.0, 1.0, 2.0])


def test_bootstrap_ci_is_deterministic_for_a_seed_and_covers_the_mean() -> None:
    rng = np.random.default_rng(21)
    values = rng.normal(5.0, 1.0, 300)
    ci = bootstrap_ci(values, seed=3)
    assert ci == bootstrap_ci(values, seed=3)
    assert ci != bootstrap_ci(values, seed=4)
    assert ci is not None and ci.low < values.mean() < ci.high
    t_ci = mean_ci(values.tolist())  # for a mean of 300 normal values the two nearly agree
    assert t_ci is not None
    assert (ci.low, ci.high) == pytest.approx((t_ci.low, t_ci.high), abs=0.03)
    # more than 2,000 values: the percentile interval, still around the mean
    flags = (rng.random(5000) < 0.3).astype(float)
    big = bootstrap_ci(flags, seed=0, n=500)
    se = math.sqrt(0.3 * 0.7 / 5000)
    assert big is not None and big.low < flags.mean() < big.high
    assert big.high - big.low == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_ci([2.0, 2.0, 2.0]) == Interval(2.0, 2.0)
    assert bootstrap_ci([1.0]) is None


def test_interval_excludes() -> None:
    i = Interval(-1.0, 2.0)
    assert not i.excludes() and i.excludes(2.5) and i.excludes(-1.5) and not i.excludes(2.0)
    assert i.to_dict() == {"low": -1.0, "high": 2.0, "level": 0.95}
