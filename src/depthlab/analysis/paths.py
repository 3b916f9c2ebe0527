"""Path lengths of a residual network and the gradient each length carries.

Paper: Veit, Wilber, Belongie. *Residual Networks Behave Like Ensembles of Relatively Shallow Networks*.
NeurIPS 2016, arXiv:1605.06431 (Fig. 6).

Unrolled, a stack of n residual blocks x_i = act(F_i(x_{i−1}) + s_i(x_{i−1})) is a sum over 2ⁿ paths: each
path picks, at every block, either the residual branch F_i or the shortcut s_i. A path through k branches has
*length* k; with every subset equally many, lengths follow Binomial(n, ½): P(k) = C(n, k)/2ⁿ.

With batch norm in eval mode (a fixed affine map) and the ReLU masks of one forward pass held fixed, the
gradient is linear in the per-block Jacobians, so ∂L/∂x₀ = Σ_S g_S exactly, where g_S is the gradient
through the single path S (branch at the blocks in S, shortcut at the others). :func:`path_gradient`
measures g_S by Veit et al.'s method: the forward pass is unchanged, but in the backward pass block i passes
gradient through its branch only (the shortcut's output is detached) when i ∈ S, and through its shortcut
only (the branch's output is detached) otherwise.

Measured (:func:`path_study`): x₀ is the input of the first residual block (the stem's output: every path
shares the stem, so it is left out). For each length k = 0…n, ``samples`` random k-subsets (all of them when
there are no more), each on a random batch of ``batch`` images from the given set; the magnitude of one
sample is the mean over its images of ‖∂L_j/∂x₀‖₂, L_j the cross-entropy of image j alone. |g_k| is the mean
over the samples. The total gradient magnitude of length k is T_k = P(k)·|g_k| (up to the constant 2ⁿ, the
number of paths of length k times the magnitude of one), and the *effective paths* are the shortest range
of lengths [a, b] holding ``mass`` (default 90%) of Σ_k T_k.

Compared with the binomial distribution (:meth:`PathResult.comparison`), as Veit et al. do in Fig. 6:

* the *gradient-weighted mean path length* m = Σ_k k·T_k / Σ_k T_k against the mean path length n/2 (the
  mean of Binomial(n, ½)), and the effective range against the shortest range holding ``mass`` of the
  *paths*. The j-th sample of every length forms one replicate profile g_{k,j}, which gives one m_j; the
  95% CI of the mean of the m_j is a Student t interval (:func:`depthlab.stats.mean_ci`). The
  effective paths are *shorter* than the typical path when the whole interval lies below n/2, *longer*
  when above, and otherwise *not resolved*. A per-path gradient that does not depend on k gives T_k ∝ P(k),
  so m = n/2 and no verdict, whatever the depth;
* the change of the per-path gradient with length: the least-squares slope of log10 |g_{k,j}| on k over all
  samples, with its t interval (:func:`depthlab.stats.slope`); 10^slope is the factor per residual
  branch on the path.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.analysis.evaluation import PartialResults, Progress
from depthlab.analysis.gradients import find_blocks
from depthlab.analysis.lesion import NoResidualBlocksError, _is_residual
from depthlab.errors import UsageError
from depthlab.io import read_number
from depthlab.models.base import main_logits
from depthlab.stats import LEVEL, Interval, Slope, mean_ci, slope

__all__ = [
    "PathResult",
    "PathComparison",
    "residual_blocks",
    "path_length_distribution",
    "path_gradient",
    "effective_range",
    "path_study",
]


VEIT_PAPER = (
    "Veit et al. found the effective paths of ResNet-110 on CIFAR-10 at 5–17 of its 54 blocks, "
    "against a mean path length of 27"
)


@dataclass(frozen=True)
class PathComparison:
    """The effective paths against the binomial path-length distribution (module docstring)."""

    blocks: int
    mass: float
    effective: tuple[int, int]  # shortest range with ``mass`` of the total gradient magnitude
    binomial: tuple[int, int]  # shortest range with ``mass`` of the paths
    mean_path_length: float  # n/2
    weighted_mean: float  # mean over replicates of Σ k·T_k / Σ T_k
    weighted_ci: Interval | None  # its 95% t interval over the replicates; None with < 2
    replicates: int
    decay: Slope | None  # log10 |g_k| on k; None without two positive samples at two lengths
    level: float = LEVEL

    @property
    def outcome(self) -> str:
        """ "shorter", "longer" or "not resolved": the gradient-weighted mean length against n/2."""
        return _side(self.weighted_ci, self.mean_path_length, ("shorter", "longer"))

    @property
    def decay_outcome(self) -> str:
        """ "falls", "rises" or "not resolved": the per-path gradient against path length."""
        return _side(self.decay.ci if self.decay is not None else None, 0.0, ("falls", "rises"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "blocks": self.blocks,
            "mass": self.mass,
            "effective": list(self.effective),
            "binomial": list(self.binomial),
            "mean_path_length": self.mean_path_length,
            "weighted_mean": self.weighted_mean,
            "weighted_ci": self.weighted_ci.to_dict() if self.weighted_ci is not None else None,
            "replicates": self.replicates,
            "outcome": self.outcome,
            "decay_per_branch_log10": self.decay.slope if self.decay is not None else None,
            "decay_ci": self.decay.ci.to_dict() if self.decay is not None and self.decay.ci else None,
            "decay_outcome": self.decay_outcome,
        }


def _side(ci: Interval | None, reference: float, words: tuple[str, str]) -> str:
    """words[0] when the whole interval lies below ``reference``, words[1] above, else "not resolved" (also
    for a missing or non-finite interval, and for one that touches ``reference`` up to rounding: a
    zero-width interval from identical replicates is no evidence of a difference smaller than that)."""
    if ci is None or not (math.isfinite(ci.low) and math.isfinite(ci.high)):
        return "not resolved"
    rounding = 1e-9 * max(1.0, abs(reference))
    if ci.high < reference - rounding:
        return words[0]
    if ci.low > reference + rounding:
        return words[1]
    return "not resolved"


@dataclass(frozen=True)
class PathResult:
    blocks: int  # n residual blocks
    lengths: tuple[int, ...]  # 0..n
    probability: tuple[float, ...]  # Binomial(n, 1/2)
    gradient: tuple[float, ...]  # |g_k|, see the module docstring
    gradient_spread: tuple[float, ...]  # sample standard deviation of the samples behind |g_k|
    samples: tuple[int, ...]  # samples behind each |g_k|
    total: tuple[float, ...]  # T_k = P(k)·|g_k|
    effective: tuple[int, int]  # shortest [a, b] with ``mass`` of Σ T_k
    mass: float
    full_gradient: float  # mean per-image ‖∂L_j/∂x₀‖ through all paths at once (the ordinary gradient)
    batch: int
    seed: int
    wall_time_s: float
    source: dict[str, Any] = field(default_factory=dict)
    # The samples behind |g_k|, per k (results written before they were kept have none: no CI then).
    sample_gradient: tuple[tuple[float, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "comparison": self.comparison().to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PathResult:
        tuples = ("lengths", "probability", "gradient", "gradient_spread", "samples", "total", "effective")
        numbers = ("probability", "gradient", "gradient_spread", "total")  # measured: null (non-finite) → NaN
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: (tuple(v) if k in tuples else v) for k, v in d.items() if k in names}
        for k in numbers:
            values[k] = tuple(read_number(x) for x in values[k])
        for k in ("mass", "full_gradient", "wall_time_s"):
            values[k] = read_number(values[k])
        values["sample_gradient"] = tuple(
            tuple(read_number(x) for x in row) for row in d.get("sample_gradient", ())
        )
        return cls(**values)

    @property
    def mean_length(self) -> float:
        return self.blocks / 2

    @property
    def effective_share(self) -> float:
        """The fraction of all paths whose length lies in the effective range."""
        a, b = self.effective
        return sum(self.probability[a : b + 1])

    def comparison(self) -> PathComparison:
        """The effective paths against the binomial distribution, with CIs (module docstring)."""
        replicates = min((len(row) for row in self.sample_gradient), default=0)
        weighted = [
            _weighted_mean_length(self.probability, [row[j] for row in self.sample_gradient])
            for j in range(replicates)
        ]
        weighted = [m for m in weighted if math.isfinite(m)]
        whole = _weighted_mean_length(self.probability, self.gradient)
        points = [
            (k, math.log10(v))
            for k, row in enumerate(self.sample_gradient)
            for v in row
            if v > 0 and math.isfinite(v)
        ]
        decay = (
            slope([k for k, _ in points], [y for _, y in points])
            if len({k for k, _ in points}) >= 2
            else None
        )
        # An exactly constant magnitude leaves linregress no standard error (NaN): no interval rather than NaN.
        if decay is not None and decay.ci is not None and not math.isfinite(decay.ci.high - decay.ci.low):
            decay = dataclasses.replace(decay, ci=None)
        return PathComparison(
            blocks=self.blocks,
            mass=self.mass,
            effective=self.effective,
            binomial=effective_range(self.probability, self.mass),
            mean_path_length=self.mean_length,
            weighted_mean=sum(weighted) / len(weighted) if weighted else whole,
            weighted_ci=mean_ci(weighted) if len(weighted) >= 2 else None,
            replicates=len(weighted),
            decay=decay,
        )

    def findings(self, label: str | None = None) -> list[str]:
        label = label or self.source.get("model", "model")
        c = self.comparison()
        a, b = self.effective
        lo, hi = c.binomial
        head = (
            f"{label}: {self.blocks} residual blocks → 2^{self.blocks} paths, lengths Binomial({self.blocks}, ½): "
            f"mean length {self.mean_length:g}, {100 * self.mass:.0f}% of the paths at lengths {lo}–{hi}. "
        )
        if not all(math.isfinite(t) for t in self.total):
            # The effective range and the peak would be read off non-finite numbers: none is drawn.
            return [
                head
                + "The gradient per path length is unknown (non-finite values), so neither its decay with "
                "length nor the effective path range is drawn from it."
            ]
        peak = max(range(len(self.total)), key=lambda k: self.total[k])
        return [
            head + _decay_text(c),
            f"Weighted by how many paths have each length, lengths {a}–{b} carry {100 * self.mass:.0f}% of the "
            f"total gradient magnitude (peak at length {peak}; {100 * self.effective_share:.0f}% of the paths). "
            + _length_text(c),
        ]


def _weighted_mean_length(probability: Sequence[float], gradient: Sequence[float]) -> float:
    """Σ k·P(k)·g_k / Σ P(k)·g_k (NaN when the total is 0)."""
    total = [p * g for p, g in zip(probability, gradient, strict=True)]
    whole = sum(total)
    return sum(k * t for k, t in enumerate(total)) / whole if whole > 0 else float("nan")


def _ci(ci: Interval | None, digits: int = 2) -> str:
    return f"95% CI [{ci.low:.{digits}f}, {ci.high:.{digits}f}]" if ci is not None else "no CI"


def _decay_text(c: PathComparison) -> str:
    if c.decay is None:
        return (
            "The per-path gradient against path length: not measured (fewer than two lengths with samples)."
        )
    factor = 10**c.decay.slope
    interval = (
        f"95% CI [{10**c.decay.ci.low:.3g}, {10**c.decay.ci.high:.3g}]" if c.decay.ci is not None else "no CI"
    )
    head = (
        f"Per residual branch on a path, its gradient changes by a factor {factor:.3g} ({interval}; least "
        f"squares of log10 magnitude on length, {c.decay.n} samples)"
    )
    if c.decay_outcome == "not resolved":
        return head + ": not resolved."
    return head + f": it {c.decay_outcome} with path length."


def _length_text(c: PathComparison) -> str:
    head = (
        f"Gradient-weighted mean path length {c.weighted_mean:.2f} ({_ci(c.weighted_ci)}, t over "
        f"{c.replicates} replicate{'s' if c.replicates != 1 else ''}) vs the mean path length "
        f"{c.mean_path_length:g}"
    )
    if c.outcome == "shorter":
        return (
            head + ": shorter — the gradient comes mostly from paths shorter than the typical path, as "
            f"{VEIT_PAPER}."
        )
    if c.outcome == "longer":
        return (
            head
            + f": longer — the gradient comes mostly from paths longer than the typical path, unlike {VEIT_PAPER}."
        )
    return head + ": not resolved."


# ------------------------------------------------------------------------------------------------ maths
def path_length_distribution(n: int) -> tuple[float, ...]:
    """P(k) = C(n, k) / 2ⁿ for k = 0…n."""
    if not isinstance(n, int) or n < 0:
        raise UsageError(f"the number of blocks must be a non-negative integer, got {n!r}")
    return tuple(math.comb(n, k) / 2**n for k in range(n + 1))


def effective_range(total: Sequence[float], mass: float = 0.9) -> tuple[int, int]:
    """The shortest contiguous index range [a, b] with Σ total[a..b] ≥ mass · Σ total (ties: the larger
    sum, then the earlier range)."""
    if not 0 < mass <= 1:
        raise UsageError(f"mass must be in (0, 1], got {mass!r}")
    values = [max(float(v), 0.0) for v in total]
    whole = sum(values)
    if not values or whole == 0:
        return (0, len(values) - 1)
    best: tuple[int, float, int, int] | None = None  # (width, -sum, a, b)
    for a in range(len(values)):
        s = 0.0
        for b in range(a, len(values)):
            s += values[b]
            if s >= mass * whole * (1 - 1e-12):
                cand = (b - a, -s, a, b)
                if best is None or cand < best:
                    best = cand
                break
    assert best is not None  # the whole range always qualifies
    return (best[2], best[3])


def residual_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The residual blocks of ``model`` in registration (= execution) order; ``NoResidualBlocksError`` if none."""
    blocks = [(n, m) for n, m in find_blocks(model) if _is_residual(m)]
    if not blocks:
        raise NoResidualBlocksError(
            f"{type(model).__name__} has no residual blocks, so it has a single path (paths need a ResNet)"
        )
    return blocks


# ------------------------------------------------------------------------------------------- gradients
def _one_way(block: nn.Module, through_branch: bool) -> Any:
    def forward(x: torch.Tensor) -> torch.Tensor:
        f = block.branch(x)
        s = block.shortcut(x)
        # Same value as the block's own forward; only the backward is restricted to one of the two terms.
        if through_branch:
            s = s.detach()
        else:
            f = f.detach()
        return block.act(f + s)

    return forward


@contextmanager
def _single_path(blocks: Sequence[tuple[str, nn.Module]], chosen: set[int]) -> Iterator[None]:
    try:
        for i, (_, block) in enumerate(blocks):
            block.forward = _one_way(block, i in chosen)  # type: ignore[method-assign]
        yield
    finally:
        for _, block in blocks:
            block.__dict__.pop("forward", None)


def _input_gradient(
    model: nn.Module,
    first: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
) -> torch.Tensor:
    """∂(Σ_j L_j)/∂x₀ (N, C, H, W), x₀ = the input of ``first``, eval-mode BN; row j is image j's own
    gradient because images do not interact in eval mode."""

    captured: list[torch.Tensor] = []

    def pre_hook(m: nn.Module, inp: tuple[Any, ...]) -> tuple[Any, ...]:
        x0 = inp[0].detach().requires_grad_(True)  # a fresh leaf: the stem is cut off
        captured.append(x0)
        return (x0, *inp[1:])

    handle = first.register_forward_pre_hook(pre_hook)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = main_logits(model(images))
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 → fp32; fp64 stays
            loss = F.cross_entropy(logits, labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, captured[0])
    finally:
        handle.remove()
        model.train(was_training)
    return grad


def path_gradient(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, subset: Sequence[int] | None
) -> torch.Tensor:
    """g_S = the gradient of Σ_j L_j at the first residual block's input through the single path that takes
    the branch at the blocks ``subset`` (0-based, in execution order) and the shortcut elsewhere; with
    ``subset=None``, the ordinary gradient (all paths). Shape (N, C, H, W)."""
    blocks = residual_blocks(model)
    first = blocks[0][1]
    if subset is None:
        return _input_gradient(model, first, images, labels)
    chosen = set(subset)
    if not chosen <= set(range(len(blocks))):
        raise UsageError(f"subset {sorted(chosen)} has indices outside 0..{len(blocks) - 1}")
    with _single_path(blocks, chosen):
        return _input_gradient(model, first, images, labels)


def _per_image_norm(grad: torch.Tensor) -> float:
    return float(grad.flatten(1).norm(dim=1).mean())


_PathPlan = list[
    tuple[int, list[tuple[tuple[int, ...], torch.Tensor]]]
]  # (k, [(blocks on the path, images)])


def _draw_paths(
    n: int, samples: int, batch: int, images: torch.Tensor, generator: torch.Generator
) -> _PathPlan:
    """For every path length k = 0..n, the k-subsets of the n blocks to take (all of them where there are at
    most ``samples``, else ``samples`` random ones) and for each the indices of its batch of images."""
    plan: _PathPlan = []
    for k in range(n + 1):
        if math.comb(n, k) <= samples:
            subsets = [tuple(c) for c in combinations(range(n), k)]
        else:
            subsets = [
                tuple(sorted(torch.randperm(n, generator=generator, device="cpu")[:k].tolist()))
                for _ in range(samples)
            ]
        # With fewer subsets than samples (k = 0 or n), repeat them on other batches.
        subsets = [subsets[i % len(subsets)] for i in range(max(samples, len(subsets)))]
        draws = [torch.randperm(images.shape[0], generator=generator, device="cpu")[:batch] for _ in subsets]
        plan.append((k, [(s, idx.to(images.device)) for s, idx in zip(subsets, draws, strict=True)]))
    return plan


def _path_norms(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    plan: _PathPlan,
    batch: int,
    progress: Progress | None,
    partial: PartialResults,
) -> tuple[float, list[tuple[float, ...]]]:
    """The per-image gradient norm through all paths (first ``batch`` images), and through every planned
    path (one row per length); each value is kept in ``partial`` and followed by ``progress(done, total)``."""
    total_work = 1 + sum(len(p) for _, p in plan)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total_work)

    first = min(images.shape[0], max(batch, 1))  # the all-paths gradient of the first `batch` images
    if "full" not in partial:
        partial.put("full", _per_image_norm(path_gradient(model, images[:first], labels[:first], None)))
    full = float(partial.get("full"))
    tick()
    rows = []
    for k, items in plan:
        values = []
        for j, (subset, idx) in enumerate(items):
            key = f"{k}:{j}"
            if key not in partial:
                partial.put(key, _per_image_norm(path_gradient(model, images[idx], labels[idx], subset)))
            values.append(float(partial.get(key)))
            tick()
        rows.append(tuple(values))
    return full, rows


def _sample_sd(values: Sequence[float], mean: float) -> float:
    """Sample standard deviation (n − 1); 0 for a single value."""
    if len(values) <= 1:
        return 0.0
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def path_study(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    samples: int = 5,
    batch: int = 32,
    mass: float = 0.9,
    seed: int = 0,
    progress: Progress | None = None,
    partial: PartialResults | None = None,
) -> PathResult:
    """Path-length distribution, |g_k| and the effective path range of ``model`` (module docstring)."""
    if not isinstance(samples, int) or samples < 1:
        raise UsageError(f"samples must be a positive integer, got {samples!r}")
    if not isinstance(batch, int) or batch < 1:
        raise UsageError(f"batch must be a positive integer, got {batch!r}")
    start = time.perf_counter()
    n = len(residual_blocks(model))
    # Paths and image batches are drawn on the CPU (a seed picks the same ones on any device); each batch's
    # indices are then moved to the images' device once, when drawn, not at every gradient.
    generator = torch.Generator(device="cpu").manual_seed(seed)
    batch = min(batch, images.shape[0])
    plan = _draw_paths(n, samples, batch, images, generator)
    full, rows = _path_norms(
        model, images, labels, plan, batch, progress, partial or PartialResults(None, {})
    )
    means = [sum(values) / len(values) for values in rows]
    probability = path_length_distribution(n)
    total = tuple(p * g for p, g in zip(probability, means, strict=True))
    return PathResult(
        blocks=n,
        lengths=tuple(range(n + 1)),
        probability=probability,
        gradient=tuple(means),
        gradient_spread=tuple(_sample_sd(values, mean) for values, mean in zip(rows, means, strict=True)),
        samples=tuple(len(values) for values in rows),
        total=total,
        effective=effective_range(total, mass),
        mass=mass,
        full_gradient=full,
        batch=batch,
        seed=seed,
        wall_time_s=round(time.perf_counter() - start, 2),
        sample_gradient=tuple(rows),
    )
