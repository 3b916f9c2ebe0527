"""Loss landscape around trained weights along filter-normalised random directions.

Paper: Li, Xu, Taylor, Studer, Goldstein. *Visualizing the Loss Landscape of Neural Nets*. NeurIPS 2018,
arXiv:1712.09913 (§4 filter normalisation, Fig. 5: ResNet-56 with and without skip connections).

Directions: d has the shape of every parameter, drawn from N(0, 1) (seeded), then *filter-normalised*: each
filter d_i (slice i along the first dimension of a conv weight — one output channel —, or one row of a linear
weight) is rescaled to the norm of the same filter of the weights, d_i ← d_i/‖d_i‖ · ‖θ_i‖. Parameters with
one dimension (batch-norm scales and shifts, biases) get a zero direction, as in the paper ("ignore biasbn");
BN running statistics are buffers and stay as trained.

Loss: mean cross-entropy on a fixed set of images — :func:`depthlab.studies.why.run_landscape` passes a
fixed subset of the run's *training* split, the loss Li et al. plot —, model in eval mode (BN on running
statistics, as the paper's code evaluates), main logits only. The 1-D slice is L(θ + t·d₁) for ``points``
values of t evenly spaced in [−span, span]; the 2-D grid is L(θ + α·d₁ + β·d₂) on a ``grid``×``grid``
lattice over [−span, span]². Grid points on the β = 0 row that coincide with slice points reuse their value.

Direction pairs: ``pairs`` seeded pairs (d₁, d₂) are drawn one after the other from one generator seeded
with ``seed`` (pair 0 first). Pair 0 gets the full grid (the contour figure); every other pair gets its full
1-D slice and the grid points within ``radius`` of the origin, all its sharpness needs. One pair is one
random view of the landscape; the spread over pairs is what a sharpness interval is computed from.

Sharpness (per direction pair, defined here, not in the paper): the mean rise of the loss over its value
at the trained weights, among the evaluated points within distance ``radius`` of the origin (in units of the
filter-normalised directions), boundary included —

    sharpness_1d = mean_{|t| ≤ r} [L(θ + t·d₁) − L(θ)],   sharpness_2d = mean_{α²+β² ≤ r²} [L(θ + α·d₁ + β·d₂) − L(θ)].

``sharpness_2d`` is ``None`` when no grid point but the origin lies within the radius (a grid coarser than
the radius). A model's sharpness is the mean over its pairs (2-D with a grid, else 1-D), with a Student t
interval over the pairs (:meth:`LandscapeResult.sharpness_estimate`). Flat minima have small values; the
paper's observation is that a shortcut-free net's landscape becomes chaotic and sharp with depth while its
ResNet counterpart stays smooth and nearly convex. ``local_minima``
counts the strict local minima of the 2-D grid (each point compared with its up to 8 neighbours): a convex
bowl has one, a chaotic surface many.

Resumable: pass ``partial`` (:class:`~depthlab.analysis.evaluation.PartialResults`); every evaluated point
is written to it atomically, and a call after a kill evaluates only the missing points (the directions are
regenerated from the seed, so the result equals an uninterrupted run).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn

from depthlab.analysis.evaluation import PartialResults, Progress, evaluate
from depthlab.errors import UsageError
from depthlab.io import read_number
from depthlab.present.format import number
from depthlab.stats import Estimate, estimate

__all__ = [
    "LandscapeConfig",
    "LandscapeResult",
    "filter_normalized_direction",
    "coordinates",
    "loss_landscape",
]


@dataclass(frozen=True)
class LandscapeConfig:
    span: float = 1.0  # coordinates run over [−span, span]
    points: int = 41  # 1-D slice points
    grid: int = 21  # 2-D grid side (0: no grid)
    radius: float = 0.5  # sharpness radius
    seed: int = 0  # directions
    pairs: int = 3  # random direction pairs (pair 0 gets the full grid)

    def __post_init__(self) -> None:
        if not (isinstance(self.span, (int, float)) and self.span > 0 and math.isfinite(self.span)):
            raise UsageError(f"span must be a positive number, got {self.span!r}")
        if not isinstance(self.points, int) or self.points < 3 or self.points % 2 == 0:
            raise UsageError(
                f"points must be an odd integer ≥ 3 (so t = 0 is one of them), got {self.points!r}"
            )
        if (
            not isinstance(self.grid, int)
            or self.grid < 0
            or self.grid == 1
            or (self.grid and self.grid % 2 == 0)
        ):
            raise UsageError(f"grid must be 0 (no grid) or an odd integer ≥ 3, got {self.grid!r}")
        if not (isinstance(self.radius, (int, float)) and 0 < self.radius <= self.span):
            raise UsageError(f"radius must be in (0, span={self.span}], got {self.radius!r}")
        if not isinstance(self.pairs, int) or self.pairs < 1:
            raise UsageError(f"pairs must be a positive integer, got {self.pairs!r}")


@dataclass(frozen=True)
class LandscapeResult:
    config: LandscapeConfig
    images: int
    origin_loss: float
    origin_error: float
    slice_t: tuple[float, ...]
    slice_loss: tuple[float, ...]  # pair 0's slice
    slice_error: tuple[float, ...]
    grid_coords: tuple[float, ...]  # the α (= β) values of the grid
    grid_loss: tuple[tuple[float, ...], ...]  # pair 0, [row j = β_j][column i = α_i]
    grid_error: tuple[tuple[float, ...], ...]
    sharpness_1d: float  # mean over the pairs
    sharpness_2d: (
        float | None
    )  # mean over the pairs; None without a grid, or when it is coarser than the radius
    local_minima: int | None  # of pair 0's grid
    evaluations: int  # points evaluated in this call (fewer when resumed)
    wall_time_s: float
    source: dict[str, Any] = field(default_factory=dict)
    # Per direction pair (results written before pairs existed hold one pair, filled in by from_dict).
    pair_sharpness_1d: tuple[float, ...] = ()
    pair_sharpness_2d: tuple[float | None, ...] = ()
    pair_slice_loss: tuple[tuple[float, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        e = self.sharpness_estimate()
        return {**asdict(self), "sharpness": e.to_dict() if e is not None else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LandscapeResult:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        values["config"] = LandscapeConfig(**d["config"])
        # Measured numbers through read_number (a non-finite one was written as null: NaN here). The 2-D
        # sharpness keeps its None, which means "no grid" (a non-finite one reads back as that too).
        for k in ("slice_t", "slice_loss", "slice_error", "grid_coords"):
            values[k] = tuple(read_number(v) for v in d[k])
        for k in ("grid_loss", "grid_error"):
            values[k] = tuple(tuple(read_number(v) for v in row) for row in d[k])
        for k in ("origin_loss", "origin_error", "sharpness_1d", "wall_time_s"):
            values[k] = read_number(d[k])
        # One pair when the result predates direction pairs: pair 0 is the stored one.
        values["pair_sharpness_1d"] = tuple(
            read_number(v) for v in d.get("pair_sharpness_1d", (d["sharpness_1d"],))
        )
        values["pair_sharpness_2d"] = tuple(d.get("pair_sharpness_2d", (d["sharpness_2d"],)))
        values["pair_slice_loss"] = tuple(
            tuple(read_number(v) for v in r) for r in d.get("pair_slice_loss", (d["slice_loss"],))
        )
        return cls(**values)

    @property
    def pairs(self) -> int:
        return len(self.pair_sharpness_1d)

    def _pair_2d(self) -> tuple[float, ...] | None:
        two = tuple(v for v in self.pair_sharpness_2d if v is not None)
        return two if two and len(two) == len(self.pair_sharpness_2d) else None

    @property
    def pair_sharpness(self) -> tuple[float, ...]:
        """Per pair: the 2-D sharpness when every pair has one, else the 1-D sharpness."""
        two = self._pair_2d()
        return two if two is not None else self.pair_sharpness_1d

    @property
    def sharpness_kind(self) -> str:
        """Which sharpness :attr:`pair_sharpness` holds."""
        return f"{self.config.grid}×{self.config.grid} grid" if self._pair_2d() is not None else "1-D slice"

    @property
    def sharpness(self) -> float:
        """The mean of :attr:`pair_sharpness` (the number compared between models)."""
        values = self.pair_sharpness
        return sum(values) / len(values)

    def sharpness_estimate(self) -> Estimate | None:
        """:attr:`pair_sharpness` as an estimate: its ``ci()`` is the t interval over the direction pairs."""
        return estimate(list(self.pair_sharpness))

    def findings(self, label: str | None = None) -> list[str]:
        label = label or self.source.get("model", "model")
        c = self.config
        e = self.sharpness_estimate()
        ci = e.ci() if e is not None else None
        interval = f"95% CI [{ci.low:.3f}, {ci.high:.3f}]" if ci is not None else "one pair, no CI"
        split = self.source.get("split")  # "train" from run_landscape; unknown for a bare loss_landscape call
        kind = {"train": " fixed training", "test": " fixed test"}.get(split, "")
        data = f"{self.images:,}{kind} images"
        text = (
            f"{label}: loss {number(self.origin_loss, '.3f')} at the trained weights ({data}, eval-mode BN); sharpness (mean loss rise within radius {c.radius:g} in "
            f"filter-normalised units, {self.sharpness_kind}) {number(self.sharpness, '.3f')} ({interval}, t over "
            f"{self.pairs} random direction pair{'s' if self.pairs != 1 else ''}: "
            + ", ".join(number(v, ".3f") for v in self.pair_sharpness)
            + ")"
        )
        grid_known = all(math.isfinite(v) for row in self.grid_loss for v in row)
        if self.local_minima is not None and not grid_known:
            text += (
                f"; pair 0's {c.grid}×{c.grid} grid holds non-finite losses, so its local minima are unknown"
            )
        elif self.local_minima is not None:
            text += (
                f"; pair 0's {c.grid}×{c.grid} grid has {self.local_minima} strict local "
                f"minim{'um' if self.local_minima == 1 else 'a'}"
            )
        return [text + "."]


# -------------------------------------------------------------------------------------------- directions
def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A random direction in parameter space, filter-normalised (module docstring); keyed like
    ``model.named_parameters()``. Drawn on the CPU (so a seed gives the same direction on any device) and
    moved to each parameter's device."""
    direction: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if p.dim() <= 1:
            direction[name] = torch.zeros_like(p)  # BN scale/shift and biases: left out
            continue
        w = p.detach().float().cpu()
        d = torch.randn(w.shape, generator=generator, dtype=torch.float32, device="cpu")
        # Per filter (first dimension): ‖d_i‖ → ‖θ_i‖. Shapes: norms (out,) viewed as (out, 1, 1, ...).
        scale = w.flatten(1).norm(dim=1) / d.flatten(1).norm(dim=1).clamp_min(1e-10)
        direction[name] = (d * scale.view(-1, *([1] * (w.dim() - 1)))).to(device=p.device, dtype=p.dtype)
    return direction


def coordinates(span: float, count: int) -> tuple[float, ...]:
    """``count`` evenly spaced values over [−span, span]; the middle one is exactly 0. Computed as
    span·(2i − (count−1))/(count−1) so that the 41-point slice and the 21-point grid share values exactly."""
    m = count - 1
    return tuple(span * (2 * i - m) / m for i in range(count))


# -------------------------------------------------------------------------------------------- landscape
def _local_minima(grid: list[list[float]]) -> int:
    rows, cols = len(grid), len(grid[0]) if grid else 0
    count = 0
    for j in range(rows):
        for i in range(cols):
            v = grid[j][i]
            neighbours = [
                grid[jj][ii]
                for jj in range(max(j - 1, 0), min(j + 2, rows))
                for ii in range(max(i - 1, 0), min(i + 2, cols))
                if (jj, ii) != (j, i)
            ]
            if all(v < w for w in neighbours):
                count += 1
    return count


def _sharpness(
    origin: float, ts: Sequence[float], slice_loss: Sequence[float], disc: Sequence[float], radius: float
) -> tuple[float, float | None]:
    """(1-D, 2-D) sharpness (module docstring). ``disc``: the grid losses within the radius, origin included;
    points exactly on the radius count (the 1e-12 absorbs the rounding of the coordinates)."""
    near_1d = [v for t, v in zip(ts, slice_loss, strict=True) if abs(t) <= radius + 1e-12]
    sharp_1d = sum(v - origin for v in near_1d) / len(near_1d)
    # Only the origin inside the radius (a grid coarser than the radius) would make the mean 0: no value.
    sharp_2d = sum(v - origin for v in disc) / len(disc) if len(disc) > 1 else None
    return sharp_1d, sharp_2d


_Cell = tuple[int, int]  # (j, i): row j (β = gs[j]), column i (α = gs[i]) of the grid
_Direction = dict[str, torch.Tensor]


@dataclass(frozen=True)
class _Plan:
    """The points of one landscape: coordinates, and per direction pair the keys of its work items."""

    ts: tuple[float, ...]  # slice coordinates t
    gs: tuple[float, ...]  # grid coordinates (α and β); () without a grid
    inside: list[_Cell]  # grid cells within the sharpness radius
    pairs: list[tuple[list[str], dict[_Cell, str]]]  # per pair: slice keys, grid keys by cell
    aliases: dict[str, str]  # a grid key whose point is a slice point -> that slice point's key

    def keys(self) -> set[str]:
        """The distinct work items (aliased grid points counted once, as their slice point)."""
        return {
            self.aliases.get(k, k)
            for slice_keys, grid_keys in self.pairs
            for k in (*slice_keys, *grid_keys.values())
        }


def _plan(config: LandscapeConfig) -> _Plan:
    """The coordinates and, per pair, the keys of its work items (slice point i, grid cell (j, i)); pair 0
    keeps the keys of single-pair results ("s3", "g2_5")."""
    ts = coordinates(config.span, config.points)
    gs = coordinates(config.span, config.grid) if config.grid else ()
    inside = [
        (j, i)
        for j, b in enumerate(gs)
        for i, a in enumerate(gs)
        if a * a + b * b <= config.radius**2 + 1e-12
    ]
    plans: list[tuple[list[str], dict[_Cell, str]]] = []
    aliases: dict[str, str] = {}
    for p in range(config.pairs):
        tag = "" if p == 0 else f"p{p}"
        slice_keys = [f"{tag}s{i}" for i in range(len(ts))]
        cells = [(j, i) for j in range(len(gs)) for i in range(len(gs))] if p == 0 else inside
        grid_keys = {(j, i): f"{tag}g{j}_{i}" for j, i in cells}
        # A grid point (α, 0) is the slice point t = α when the values coincide exactly.
        on_slice = {t: slice_keys[i] for i, t in enumerate(ts)}
        mid = len(gs) // 2
        for (j, i), key in grid_keys.items():
            if j == mid and gs[i] in on_slice:
                aliases[key] = on_slice[gs[i]]
        plans.append((slice_keys, grid_keys))
    return _Plan(ts, gs, inside, plans, aliases)


def _evaluate_plan(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    directions: Sequence[tuple[_Direction, _Direction]],
    plan: _Plan,
    batch_size: int,
    progress: Progress | None,
    partial: PartialResults,
) -> tuple[list[list[tuple[float, float]]], list[dict[_Cell, tuple[float, float]]], int]:
    """(loss, error) at every slice and grid point of every pair, and the number of points evaluated here
    (the rest come from ``partial``). The weights are restored on return, also after an exception."""
    params = dict(model.named_parameters())
    base = {n: p.detach().clone() for n, p in params.items()}
    total = len(plan.keys())
    done = sum(1 for k in plan.keys() if k in partial)
    evaluations = 0

    def point(key: str, d1: _Direction, d2: _Direction, a: float, b: float) -> tuple[float, float]:
        nonlocal done, evaluations
        key = plan.aliases.get(key, key)
        if key not in partial:
            with torch.no_grad():
                for n, p in params.items():
                    # θ + a·d₁ + b·d₂; at a = b = 0 this is exactly θ (x + 0 = x in floating point).
                    p.copy_(base[n] + a * d1[n] + b * d2[n])
            r = evaluate(model, images, labels, batch_size)
            partial.put(key, [r.loss, r.error])
            evaluations += 1
            done += 1
            if progress is not None:
                progress(done, total)
        loss, error = partial.get(key)
        return float(loss), float(error)

    ts, gs = plan.ts, plan.gs
    slices: list[list[tuple[float, float]]] = []
    grids: list[dict[_Cell, tuple[float, float]]] = []
    try:
        for (d1, d2), (slice_keys, grid_keys) in zip(directions, plan.pairs, strict=True):
            slices.append([point(slice_keys[i], d1, d2, t, 0.0) for i, t in enumerate(ts)])
            grids.append({(j, i): point(key, d1, d2, gs[i], gs[j]) for (j, i), key in grid_keys.items()})
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(base[n])
    return slices, grids, evaluations


def loss_landscape(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: LandscapeConfig | None = None,
    *,
    batch_size: int = 100,
    progress: Progress | None = None,
    partial: PartialResults | None = None,
) -> LandscapeResult:
    """The 1-D slices and 2-D grid of ``model``'s loss on ``images``/``labels`` around its weights, for
    ``config.pairs`` direction pairs (module docstring).

    The model's weights are restored on return, also after an exception or a ``KeyboardInterrupt``.
    """
    config = config or LandscapeConfig()
    start = time.perf_counter()
    generator = torch.Generator(device="cpu").manual_seed(config.seed)  # directions are drawn on the CPU
    # Pair 0 first, so that pair 0 is the pair a single-pair run of the same seed draws.
    directions = [
        (filter_normalized_direction(model, generator), filter_normalized_direction(model, generator))
        for _ in range(config.pairs)
    ]
    plan = _plan(config)
    slices, grids, evaluations = _evaluate_plan(
        model, images, labels, directions, plan, batch_size, progress, partial or PartialResults(None, {})
    )
    ts, gs = plan.ts, plan.gs
    origin_loss, origin_error = slices[0][len(ts) // 2]
    per_pair = [
        _sharpness(
            origin_loss,
            ts,
            [v for v, _ in sl],
            [grid[c][0] for c in plan.inside] if gs else [],
            config.radius,
        )
        for sl, grid in zip(slices, grids, strict=True)
    ]
    sharp_1d = [a for a, _ in per_pair]
    sharp_2d = [b for _, b in per_pair]
    grid_values = [[grids[0][(j, i)] for i in range(len(gs))] for j in range(len(gs))]
    grid_loss = [[lv for lv, _ in row] for row in grid_values]
    return LandscapeResult(
        config=config,
        images=int(images.shape[0]),
        origin_loss=origin_loss,
        origin_error=origin_error,
        slice_t=ts,
        slice_loss=tuple(v for v, _ in slices[0]),
        slice_error=tuple(e for _, e in slices[0]),
        grid_coords=gs,
        grid_loss=tuple(tuple(r) for r in grid_loss),
        grid_error=tuple(tuple(e for _, e in row) for row in grid_values),
        sharpness_1d=sum(sharp_1d) / len(sharp_1d),
        sharpness_2d=(
            sum(v for v in sharp_2d if v is not None) / len(sharp_2d)
            if all(v is not None for v in sharp_2d)
            else None
        ),
        local_minima=_local_minima(grid_loss) if gs else None,
        evaluations=evaluations,
        wall_time_s=round(time.perf_counter() - start, 2),
        source={},
        pair_sharpness_1d=tuple(sharp_1d),
        pair_sharpness_2d=tuple(sharp_2d),
        pair_slice_loss=tuple(tuple(v for v, _ in sl) for sl in slices),
    )
