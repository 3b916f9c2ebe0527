"""Loss landscape around trained weights along filter-normalised random directions.

Paper: Li, Xu, Taylor, Studer, Goldstein. *Visualizing the Loss Landscape of Neural Nets*. NeurIPS 2018,
arXiv:1712.09913 (§4 filter normalisation, Fig. 5: ResNet-56 with and without skip connections).

Directions: d has the shape of every parameter, drawn from N(0, 1) (seeded), then *filter-normalised*: each
filter d_i (slice i along the first dimension of a conv weight — one output channel —, or one row of a linear
weight) is rescaled to the norm of the same filter of the weights, d_i ← d_i/‖d_i‖ · ‖θ_i‖. Parameters with
one dimension (batch-norm scales and shifts, biases) get a zero direction, as in the paper ("ignore biasbn");
BN running statistics are buffers and stay as trained.

Loss: mean cross-entropy on a fixed set of images, model in eval mode (BN on running statistics, as the
paper's code evaluates), main logits only. The 1-D slice is L(θ + t·d₁) for ``points`` values of t evenly
spaced in [−span, span]; the 2-D grid is L(θ + α·d₁ + β·d₂) on a ``grid``×``grid`` lattice over
[−span, span]². Grid points on the β = 0 row that coincide with slice points reuse their value.

Sharpness (one number per model, defined here, not in the paper): the mean rise of the loss over its value
at the trained weights, among the evaluated points within distance ``radius`` of the origin (in units of the
filter-normalised directions) —

    sharpness_1d = mean_{|t| ≤ r} [L(θ + t·d₁) − L(θ)],   sharpness_2d = mean_{α²+β² ≤ r²} [L(θ + α·d₁ + β·d₂) − L(θ)].

``sharpness_2d`` is ``None`` when no grid point but the origin lies within the radius (a grid coarser than
the radius). Flat minima have small values; the paper's observation is that a shortcut-free net's landscape becomes
chaotic and sharp with depth while its ResNet counterpart stays smooth and nearly convex. ``local_minima``
counts the strict local minima of the 2-D grid (each point compared with its up to 8 neighbours): a convex
bowl has one, a chaotic surface many.

Resumable: pass ``partial`` (:class:`~depthlab.analysis.evaluation.PartialResults`); every evaluated point
is written to it atomically, and a call after a kill evaluates only the missing points (the directions are
regenerated from the seed, so the result equals an uninterrupted run).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from depthlab.analysis.evaluation import PartialResults, Progress, evaluate
from depthlab.errors import UsageError

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


@dataclass(frozen=True)
class LandscapeResult:
    config: LandscapeConfig
    images: int
    origin_loss: float
    origin_error: float
    slice_t: tuple[float, ...]
    slice_loss: tuple[float, ...]
    slice_error: tuple[float, ...]
    grid_coords: tuple[float, ...]  # the α (= β) values of the grid
    grid_loss: tuple[tuple[float, ...], ...]  # [row j = β_j][column i = α_i]
    grid_error: tuple[tuple[float, ...], ...]
    sharpness_1d: float
    sharpness_2d: float | None  # None without a grid, or when it is coarser than the radius
    local_minima: int | None
    evaluations: int  # points evaluated in this call (fewer when resumed)
    wall_time_s: float
    source: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LandscapeResult:
        values = dict(d)
        values["config"] = LandscapeConfig(**d["config"])
        for k in ("slice_t", "slice_loss", "slice_error", "grid_coords"):
            values[k] = tuple(d[k])
        for k in ("grid_loss", "grid_error"):
            values[k] = tuple(tuple(row) for row in d[k])
        return cls(**values)

    @property
    def sharpness(self) -> float:
        """sharpness_2d when a grid was computed, else sharpness_1d (both defined in the module docstring)."""
        return self.sharpness_2d if self.sharpness_2d is not None else self.sharpness_1d

    def findings(self, label: str | None = None) -> list[str]:
        label = label or self.source.get("model", "model")
        c = self.config
        text = (
            f"{label}: loss {self.origin_loss:.3f} at the trained weights ({self.images:,} test images, eval-mode "
            f"BN); mean loss rise within radius {c.radius:g} (filter-normalised units): "
            f"{self.sharpness_1d:.3f} along the 1-D slice"
        )
        if self.sharpness_2d is not None:
            text += f", {self.sharpness_2d:.3f} over the {c.grid}×{c.grid} grid"
        if self.local_minima is not None:
            text += (
                f"; the {c.grid}×{c.grid} grid has {self.local_minima} strict local "
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
        d = torch.randn(w.shape, generator=generator, dtype=torch.float32)
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
    """The 1-D slice and 2-D grid of ``model``'s loss on ``images``/``labels`` around its weights.

    The model's weights are restored on return, also after an exception or a ``KeyboardInterrupt``.
    """
    config = config or LandscapeConfig()
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    params = dict(model.named_parameters())
    d1 = filter_normalized_direction(model, generator)
    d2 = filter_normalized_direction(model, generator)
    base = {n: p.detach().clone() for n, p in params.items()}
    partial = partial or PartialResults(None, {})

    ts = coordinates(config.span, config.points)
    gs = coordinates(config.span, config.grid) if config.grid else ()
    slice_keys = [f"s{i}" for i in range(len(ts))]
    grid_keys = [[f"g{j}_{i}" for i in range(len(gs))] for j in range(len(gs))]
    # A grid point (α, 0) is the slice point t = α when the values coincide exactly.
    on_slice = {t: slice_keys[i] for i, t in enumerate(ts)}
    mid = len(gs) // 2
    aliases = {grid_keys[mid][i]: on_slice[a] for i, a in enumerate(gs) if a in on_slice}
    total = len(ts) + sum(len(r) for r in grid_keys) - len(aliases)
    done = sum(1 for k in slice_keys if k in partial) + sum(
        1 for row in grid_keys for k in row if k in partial and k not in aliases
    )
    evaluations = 0

    def point(key: str, a: float, b: float) -> tuple[float, float]:
        nonlocal done, evaluations
        key = aliases.get(key, key)
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

    try:
        slice_values = [point(slice_keys[i], t, 0.0) for i, t in enumerate(ts)]
        grid_values = [[point(grid_keys[j][i], a, b) for i, a in enumerate(gs)] for j, b in enumerate(gs)]
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(base[n])

    origin_loss, origin_error = slice_values[len(ts) // 2]
    near_1d = [lv for t, (lv, _) in zip(ts, slice_values, strict=True) if abs(t) <= config.radius + 1e-12]
    sharp_1d = sum(v - origin_loss for v in near_1d) / len(near_1d)
    sharp_2d: float | None = None
    minima: int | None = None
    grid_loss = [[lv for lv, _ in row] for row in grid_values]
    if gs:
        near_2d = [
            grid_loss[j][i]
            for j, b in enumerate(gs)
            for i, a in enumerate(gs)
            if a * a + b * b <= config.radius**2 + 1e-12
        ]
        # Only the origin inside the radius (a grid coarser than the radius) would make the mean 0: no value.
        sharp_2d = sum(v - origin_loss for v in near_2d) / len(near_2d) if len(near_2d) > 1 else None
        minima = _local_minima(grid_loss)
    return LandscapeResult(
        config=config,
        images=int(images.shape[0]),
        origin_loss=origin_loss,
        origin_error=origin_error,
        slice_t=ts,
        slice_loss=tuple(v for v, _ in slice_values),
        slice_error=tuple(e for _, e in slice_values),
        grid_coords=gs,
        grid_loss=tuple(tuple(r) for r in grid_loss),
        grid_error=tuple(tuple(e for _, e in row) for row in grid_values),
        sharpness_1d=sharp_1d,
        sharpness_2d=sharp_2d,
        local_minima=minima,
        evaluations=evaluations,
        wall_time_s=round(time.perf_counter() - start, 2),
        source={},
    )
