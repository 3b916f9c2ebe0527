"""Shattered gradients (Balduzzi et al. 2017, "The shattered gradients problem", arXiv:1702.08591).

At initialisation, walk a straight line between two images, x(t) = (1 − t)·a + t·b for P evenly spaced t in
[0, 1], and take the gradient of one output — the logit of ``a``'s class — with respect to the input at
every point. In a net whose gradients are *shattered* these gradients are nearly uncorrelated from one point
to the next (like white noise); in a net whose gradients keep their structure they change slowly (like
brown noise, the integral of white noise). Measured here:

* ``lag1_autocorrelation`` — the main measure, the quantity closest to Balduzzi et al.'s autocorrelation
  of the gradient along a 1-D line: the lag-1 sample autocorrelation of the 1-D signal
  g(t) = ∇ₓf(x(t)) · (b − a) (the derivative of the logit along the line), Σ dᵢdᵢ₊₁ / Σ dᵢ² with d the
  signal minus its mean: ≈ 0 for white noise (± 1/√P), → 1 for brown noise.
* ``neighbour_correlation`` — the mean, over neighbouring points, of the Pearson correlation between the two
  full input-gradient vectors (C·H·W numbers each): 1 = identical, 0 = unrelated.
* ``spectral_slope`` — the slope β of log power vs log frequency of g(t) (mean removed, Hann window, least
  squares over all non-zero frequencies): white noise has β ≈ 0, brown noise β ≈ −2, a smoother signal
  β < −2. Frequency k/P is measured as 2·sin(πk/P), the gain of the first difference, so that the discrete
  brown noise (a cumulative sum of white noise, power 1/(4 sin²(πk/P))) has β = −2 at every frequency; on
  plain k/P its flattening near the Nyquist frequency biases the fit to about −1.8.

Conditions are compared on the lag-1 autocorrelation across initialisation seeds (:func:`compare`: Welch t
interval from :mod:`depthlab.stats`): higher, lower or not resolved.

Batch norm: a line of near-identical images is not a batch the net would normalise with, so each BN layer
normalises with the statistics of a *reference batch* of held-out images (one training-mode forward pass
records them; the line is then evaluated with those statistics frozen). Balduzzi et al. normalised
with the statistics of their inputs; the difference is documented, and the choice is the one that matches
what training sees. Dropout, if any, is off (eval mode).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from depthlab.errors import DepthlabError
from depthlab.io import read_number
from depthlab.models.base import main_logits
from depthlab.stats import Difference, Estimate, estimate, welch

__all__ = [
    "ShatteredResult",
    "ShatterError",
    "ShatteredCondition",
    "shattered_gradients",
    "spectral_slope",
    "lag1_autocorrelation",
    "freeze_batch_stats",
    "condition",
    "compare",
    "condition_text",
    "comparison_text",
]


class ShatterError(DepthlabError, ValueError):
    """Inputs that cannot define a line (shapes, too few points)."""


@dataclass(frozen=True)
class ShatteredResult:
    label: str  # the condition, e.g. "plain-56, BN"
    seed: int  # initialisation seed
    points: int
    directional: tuple[float, ...]  # g(t) at each point
    neighbour_correlation: float
    lag1_autocorrelation: float  # the main measure (module docstring)
    spectral_slope: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShatteredResult:
        return cls(
            label=str(data["label"]),
            seed=int(data["seed"]),
            points=int(data["points"]),
            # null (non-finite when written, e.g. the NaN autocorrelation of a constant signal) → NaN
            directional=tuple(read_number(v) for v in data["directional"]),
            neighbour_correlation=read_number(data["neighbour_correlation"]),
            lag1_autocorrelation=read_number(data["lag1_autocorrelation"]),
            spectral_slope=read_number(data["spectral_slope"]),
        )


def freeze_batch_stats(model: nn.Module, reference: torch.Tensor) -> nn.Module:
    """A copy of ``model`` in eval mode whose BN layers hold the batch statistics of ``reference``."""
    net = copy.deepcopy(model)
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if bns:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
        net.train()
        with torch.no_grad():
            net(reference)
    return net.eval()


def _signal(signal: Sequence[float] | torch.Tensor, minimum: int) -> torch.Tensor:
    # A tensor stays where it is (the model's device); a list of numbers is made on the CPU.
    if isinstance(signal, torch.Tensor):
        x = signal.detach().to(torch.float64).reshape(-1)
    else:
        x = torch.as_tensor(signal, dtype=torch.float64, device="cpu").reshape(-1)
    if x.numel() < minimum:
        raise ShatterError(f"the signal needs at least {minimum} points, got {x.numel()}")
    return x


def spectral_slope(signal: Sequence[float] | torch.Tensor) -> float:
    """β in power ∝ frequency^β of a 1-D signal (mean removed, Hann window, least squares on log-log, frequency
    measured as 2·sin(πk/N); module docstring). NaN when fewer than two frequencies carry power."""
    x = _signal(signal, 8)
    # The window and the frequencies live on the signal's device (a CUDA signal on a GPU run).
    window = torch.hann_window(x.numel(), periodic=False, dtype=torch.float64, device=x.device)
    x = (x - x.mean()) * window
    power = torch.fft.rfft(x).abs() ** 2
    k = torch.arange(1, power.numel(), dtype=torch.float64, device=x.device)
    frequency = 2 * torch.sin(math.pi * k / x.numel())
    p = power[1:]
    keep = p > 0
    if int(keep.sum()) < 2:
        return float("nan")
    lx, ly = torch.log10(frequency[keep]), torch.log10(p[keep])
    lx_c = lx - lx.mean()
    return float((lx_c * (ly - ly.mean())).sum() / (lx_c**2).sum())


def lag1_autocorrelation(signal: Sequence[float] | torch.Tensor) -> float:
    """Σ dᵢ·dᵢ₊₁ / Σ dᵢ² with d = signal − mean (the usual sample autocorrelation at lag 1); NaN for a
    constant signal."""
    x = _signal(signal, 3)
    d = x - x.mean()
    denom = float((d * d).sum())
    return float((d[:-1] * d[1:]).sum() / denom) if denom > 0 else float("nan")


def _pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (N×D → N)."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    denom = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(denom > 0, (a * b).sum(1) / denom.clamp_min(1e-300), torch.zeros_like(denom))


def shattered_gradients(
    model: nn.Module,
    start: torch.Tensor,
    end: torch.Tensor,
    target: int,
    *,
    reference: torch.Tensor | None = None,
    points: int = 128,
    chunk: int = 64,
    label: str = "",
    seed: int = 0,
) -> ShatteredResult:
    """The input gradients of logit ``target`` along the line from ``start`` to ``end`` (each C×H×W,
    normalised like training inputs). ``reference``: N×C×H×W held-out images whose statistics BN uses
    (required when the model has BN). The model is not modified."""
    if start.dim() != 3 or start.shape != end.shape:
        raise ShatterError(
            f"start and end must be two C×H×W images of one shape, got {tuple(start.shape)} and "
            f"{tuple(end.shape)}"
        )
    if points < 8:
        raise ShatterError(f"points must be at least 8, got {points}")
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if has_bn and reference is None:
        raise ShatterError("a model with batch norm needs a reference batch for its statistics")
    net = freeze_batch_stats(model, reference) if has_bn else copy.deepcopy(model).eval()
    if start.device.type == "cpu":
        net = net.to(memory_format=torch.channels_last)  # ~1.5× faster convolutions on CPU

    t = torch.linspace(0.0, 1.0, points, dtype=start.dtype, device=start.device)
    direction = (end - start).reshape(-1)
    grads = []
    for lo in range(0, points, chunk):
        tt = t[lo : lo + chunk].view(-1, 1, 1, 1)
        x = ((1 - tt) * start + tt * end).detach().requires_grad_(True)  # chunk×C×H×W
        with torch.enable_grad():
            logits = main_logits(net(x))
            (g,) = torch.autograd.grad(logits[:, target].sum(), x)
        grads.append(g.reshape(g.shape[0], -1).double())
    flat = torch.cat(grads)  # points × (C·H·W)
    directional = flat @ direction.double()
    neighbour = float(_pearson_rows(flat[:-1], flat[1:]).mean())
    return ShatteredResult(
        label=label,
        seed=seed,
        points=points,
        directional=tuple(directional.tolist()),  # one copy from the device, not one per point
        neighbour_correlation=neighbour if math.isfinite(neighbour) else float("nan"),
        lag1_autocorrelation=lag1_autocorrelation(directional),
        spectral_slope=spectral_slope(directional),
    )


# ------------------------------------------------------------------------------------------ conditions
@dataclass(frozen=True)
class ShatteredCondition:
    """One condition (e.g. "plain-56, BN") over its initialisation seeds: one value per seed of each measure."""

    label: str
    points: int
    lag1: Estimate  # the main measure
    neighbour: Estimate
    slope: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "points": self.points,
            "lag1_autocorrelation": self.lag1.to_dict(),
            "neighbour_correlation": self.neighbour.to_dict(),
            "spectral_slope": self.slope.to_dict(),
        }


def _finite(values: Sequence[float]) -> list[float | None]:
    # A constant signal has no autocorrelation (NaN): left out, and the seed count says so.
    return [v if math.isfinite(v) else None for v in values]


def condition(
    label: str, results: Sequence[ShatteredResult | Mapping[str, Any]]
) -> ShatteredCondition | None:
    """The seeds of one condition (results or their ``to_dict()``); ``None`` when no seed has a finite lag-1
    autocorrelation."""
    rs = [r if isinstance(r, ShatteredResult) else ShatteredResult.from_dict(r) for r in results]
    lag1 = estimate(_finite([r.lag1_autocorrelation for r in rs]))
    neighbour = estimate(_finite([r.neighbour_correlation for r in rs]))
    slope = estimate(_finite([r.spectral_slope for r in rs]))
    if lag1 is None or neighbour is None or slope is None:
        return None
    return ShatteredCondition(label, rs[0].points, lag1, neighbour, slope)


def compare(a: ShatteredCondition, b: ShatteredCondition) -> Difference:
    """a − b of the lag-1 autocorrelation across seeds (Welch t interval): "higher" means a's gradients are
    smoother along the line (less shattered) than b's."""
    return welch(a.label, a.lag1, b.label, b.lag1)


def _ci_text(e: Estimate) -> str:
    ci = e.ci()
    seeds = f"{e.seeds} seed{'s' if e.seeds != 1 else ''}"
    return f"95% CI [{ci.low:.2f}, {ci.high:.2f}], {seeds}" if ci is not None else f"{seeds}, no CI"


def condition_text(c: ShatteredCondition) -> str:
    """ "plain-56, BN: lag-1 autocorrelation 0.12 (95% CI [0.05, 0.19], 3 seeds; neighbour correlation 0.10,
    spectral slope −0.3)"."""
    return (
        f"{c.label}: lag-1 autocorrelation {c.lag1.mean:.2f} ({_ci_text(c.lag1)}; neighbour gradient "
        f"correlation {c.neighbour.mean:.2f}, spectral slope {c.slope.mean:.1f})"
    )


def comparison_text(d: Difference, expected: str | None = None, paper: str = "Balduzzi et al.") -> str:
    """The sentence for :func:`compare`'s result: outcome, difference, CI, method and seeds. With
    ``expected`` ("higher" or "lower": what ``paper`` found for a − b) a resolved outcome adds "as … report" or
    "unlike …"; a result that is not resolved never does."""
    head = (
        f"the lag-1 autocorrelation of the gradient along the line is {d.a.mean:.2f} for {d.a_label} vs "
        f"{d.b.mean:.2f} for {d.b_label} ({d.a.seeds} vs {d.b.seeds} seeds)"
    )
    if d.ci is None:
        return f"{head}: not resolved (fewer than 2 seeds on a side, no CI)."
    interval = f"difference {d.difference:+.2f}, 95% CI [{d.ci.low:+.2f}, {d.ci.high:+.2f}], {d.method}"
    if d.outcome == "not resolved":
        return f"{head}: not resolved ({interval})."
    kind = "less" if d.outcome == "higher" else "more"
    text = f"{head}: {d.outcome} ({interval}) — {d.a_label}'s gradients are {kind} shattered"
    if expected is not None:
        text += f", as {paper} report" if d.outcome == expected else f", unlike {paper}"
    return text + "."
