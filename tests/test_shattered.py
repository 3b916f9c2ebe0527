"""Shattered gradients (Balduzzi et al. 2017) against signals and gradients whose answer is known: white
noise (no correlation, flat spectrum), brown noise (its cumulative sum: correlation near 1, spectrum 1/f²),
an AR(1) process (lag-1 autocorrelation φ), and a net whose input gradient is known in closed form; the
comparison across seeds against scipy's Welch interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from depthlab.analysis.shattered import (
    ShatteredResult,
    compare,
    comparison_text,
    condition,
    condition_text,
    lag1_autocorrelation,
    shattered_gradients,
    spectral_slope,
)

pytestmark = pytest.mark.usefixtures("one_thread")

N = 2048  # points: the slope of white noise then has a standard deviation of about 0.04


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_white_noise_has_no_correlation_and_a_flat_spectrum(seed):
    white = np.random.default_rng(seed).normal(size=N)
    # A lag-0 "autocorrelation" (a signal against itself) would be 1 here.
    assert abs(lag1_autocorrelation(white)) < 4 / math.sqrt(N)
    assert spectral_slope(white) == pytest.approx(0.0, abs=0.15)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_brown_noise_has_correlation_near_one_and_slope_minus_two(seed):
    brown = np.cumsum(np.random.default_rng(seed).normal(size=N))
    assert lag1_autocorrelation(brown) > 0.95
    assert spectral_slope(brown) == pytest.approx(-2.0, abs=0.12)
    # Integrated once more, the signal is smoother than brown noise: power falls faster than 1/f².
    assert spectral_slope(np.cumsum(brown)) < -3


def test_lag1_autocorrelation_recovers_the_coefficient_of_an_ar1_process():
    rng = np.random.default_rng(0)
    for phi in (-0.5, 0.3, 0.8):
        x = np.zeros(8192)
        for t in range(1, x.size):
            x[t] = phi * x[t - 1] + rng.normal()
        assert lag1_autocorrelation(x) == pytest.approx(phi, abs=0.04)
    assert math.isnan(lag1_autocorrelation(np.ones(16)))


class Waves(nn.Module):
    """logit 0 = Σ_i cos(ω·x_i): its input gradient is −ω·sin(ω·x), known in closed form."""

    def __init__(self, omega: float) -> None:
        super().__init__()
        self.omega = omega

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = torch.cos(self.omega * x.flatten(1)).sum(1)
        return torch.stack([first, torch.zeros_like(first)], 1)


def _by_hand(omega: float, a: torch.Tensor, b: torch.Tensor, points: int) -> tuple[float, float]:
    """(mean neighbour correlation, lag-1 autocorrelation) from the closed-form gradient, with numpy."""
    t = np.linspace(0.0, 1.0, points)[:, None]
    x = (1 - t) * a.numpy().ravel() + t * b.numpy().ravel()  # points × D
    grad = -omega * np.sin(omega * x)
    neighbour = np.mean([np.corrcoef(grad[i], grad[i + 1])[0, 1] for i in range(points - 1)])
    g = grad @ (b - a).numpy().ravel()
    lag1 = pd_lag1(g)
    return float(neighbour), lag1


def pd_lag1(g: np.ndarray) -> float:
    # The textbook estimator, written independently: autocovariance at lag 1 over the variance.
    d = g - g.mean()
    return float(np.dot(d[:-1], d[1:]) / np.dot(d, d))


@pytest.mark.parametrize(("omega", "smooth"), [(0.5, True), (400.0, False)])
def test_shattered_gradients_match_the_closed_form(omega, smooth):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1, 8, 8, generator=g, dtype=torch.float64)
    b = torch.randn(1, 8, 8, generator=g, dtype=torch.float64)
    r = shattered_gradients(Waves(omega), a, b, 0, points=64, chunk=16)
    neighbour, lag1 = _by_hand(omega, a, b, 64)
    assert r.neighbour_correlation == pytest.approx(neighbour, abs=1e-9)
    assert r.lag1_autocorrelation == pytest.approx(lag1, abs=1e-9)
    if smooth:
        assert r.neighbour_correlation > 0.99 and r.lag1_autocorrelation > 0.9
    else:
        # Shattered: consecutive gradients unrelated (a self-correlation would give 1 here).
        assert abs(r.neighbour_correlation) < 0.3 and abs(r.lag1_autocorrelation) < 0.4
    assert ShatteredResult.from_dict(r.to_dict()) == r
    assert {
        "label", "seed", "points", "directional", "neighbour_correlation", "lag1_autocorrelation",
        "spectral_slope",
    } <= set(r.to_dict())  # fmt: skip  # the degradation study reads these keys


def _seeds(label: str, lag1: list[float]) -> list[dict]:
    return [ShatteredResult(label, s, 64, (0.0,) * 64, v, v, -1.0).to_dict() for s, v in enumerate(lag1)]


def test_conditions_are_compared_on_lag1_with_welch_over_seeds():
    resnet = condition("ResNet-56", _seeds("ResNet-56", [0.60, 0.64, 0.62]))
    plain = condition("plain-56", _seeds("plain-56", [0.05, 0.09, 0.06]))
    assert resnet is not None and plain is not None
    d = compare(resnet, plain)
    expected = scipy.stats.ttest_ind([0.60, 0.64, 0.62], [0.05, 0.09, 0.06], equal_var=False)
    ci = expected.confidence_interval(0.95)
    assert (d.ci.low, d.ci.high) == pytest.approx((ci.low, ci.high), rel=1e-6)
    assert d.outcome == "higher"
    text = comparison_text(d, expected="higher")
    assert "higher" in text and "as Balduzzi et al. report" in text and "3 vs 3 seeds" in text
    assert "unlike" in comparison_text(compare(plain, resnet), expected="higher")
    # Overlapping seeds: not resolved, and then no agreement or disagreement with the paper.
    close = condition("plain-56", _seeds("plain-56", [0.55, 0.70, 0.58]))
    vague = comparison_text(compare(resnet, close), expected="higher")
    assert "not resolved" in vague and "Balduzzi" not in vague and "95% CI" in vague
    assert "lag-1 autocorrelation 0.62" in condition_text(resnet) and "3 seeds" in condition_text(resnet)
    # One seed: no interval, so no verdict.
    single = condition("plain-56", _seeds("plain-56", [0.05]))
    assert "not resolved" in comparison_text(compare(resnet, single), expected="higher")
