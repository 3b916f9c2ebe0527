"""Shattered gradients (Balduzzi et al. 2017, "The shattered gradients problem", arXiv:1702.08591).

At initialisation, walk a straight line between two images, x(t) = (1 − t)·a + t·b for P evenly spaced t in
[0, 1], and take the gradient of one output — the logit of ``a``'s class — with respect to the input at
every point. In a net whose gradients are *shattered* these gradients are nearly uncorrelated from one point
to the next (like white noise); in a net whose gradients keep their structure they change slowly (like
brown noise, the integral of white noise). Measured here:

* ``neighbour_correlation`` — the mean, over neighbouring points, of the Pearson correlation between the two
  full input-gradient vectors (C·H·W numbers each): 1 = identical, 0 = unrelated. This is the quantity the
  paper's argument is about.
* ``lag1_autocorrelation`` of the 1-D signal g(t) = ∇ₓf(x(t)) · (b − a) (the derivative of the logit along
  the line).
* ``spectral_slope`` — the slope β of log power vs log frequency of g(t) (mean removed, Hann window, least
  squares over all non-zero frequencies): white noise has β ≈ 0, brown noise β ≈ −2, a smooth function
  β < −2.

Batch norm: a line of near-identical images is not a batch the net would normalise with, so each BN layer
normalises with the statistics of a *reference batch* of held-out images (one training-mode forward pass
records them; the line is then evaluated with those statistics frozen). Balduzzi et al. normalised
with the statistics of their inputs; the difference is documented, and the choice is the one that matches
what training sees. Dropout, if any, is off (eval mode).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from depthlab.errors import DepthlabError

__all__ = ["ShatteredResult", "ShatterError", "shattered_gradients", "spectral_slope", "freeze_batch_stats"]


class ShatterError(DepthlabError, ValueError):
    """Inputs that cannot define a line (shapes, too few points)."""


@dataclass(frozen=True)
class ShatteredResult:
    label: str  # the condition, e.g. "plain-56, BN"
    seed: int  # initialisation seed
    points: int
    directional: tuple[float, ...]  # g(t) at each point
    neighbour_correlation: float
    lag1_autocorrelation: float
    spectral_slope: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ShatteredResult:
        values = dict(data)
        values["directional"] = tuple(values["directional"])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


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


def spectral_slope(signal: Sequence[float] | torch.Tensor) -> float:
    """β in power ∝ frequency^β of a 1-D signal (mean removed, Hann window, least squares on log-log)."""
    x = torch.as_tensor(signal, dtype=torch.float64)
    if x.numel() < 8:
        raise ShatterError(f"a spectrum needs at least 8 points, got {x.numel()}")
    x = (x - x.mean()) * torch.hann_window(x.numel(), periodic=False, dtype=torch.float64)
    power = torch.fft.rfft(x).abs() ** 2
    k = torch.arange(1, power.numel(), dtype=torch.float64)
    p = power[1:]
    keep = p > 0
    if int(keep.sum()) < 2:
        return float("nan")
    lx, ly = torch.log10(k[keep]), torch.log10(p[keep])
    lx_c = lx - lx.mean()
    return float((lx_c * (ly - ly.mean())).sum() / (lx_c**2).sum())


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
    from depthlab.models.base import main_logits

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
    d = directional - directional.mean()
    denom = float((d * d).sum())
    lag1 = float((d[:-1] * d[1:]).sum() / denom) if denom > 0 else float("nan")
    slope = spectral_slope(directional)
    return ShatteredResult(
        label=label,
        seed=seed,
        points=points,
        directional=tuple(float(v) for v in directional),
        neighbour_correlation=neighbour if math.isfinite(neighbour) else float("nan"),
        lag1_autocorrelation=lag1,
        spectral_slope=slope,
    )
