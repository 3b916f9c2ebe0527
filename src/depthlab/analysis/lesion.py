"""Lesion study: delete or re-order blocks of a trained network and measure its test error.

Paper: Veit, Wilber, Belongie. *Residual Networks Behave Like Ensembles of Relatively Shallow Networks*.
NeurIPS 2016, arXiv:1605.06431 (Fig. 3: single-block deletion; Fig. 5: deleting and re-ordering k blocks).

Two modes, chosen by the model (``mode="auto"``) or by the caller:

* ``"residual"`` — every residual block (a module with class attribute ``residual = True``, a ``.branch``
  and a ``.shortcut``) can be deleted by dropping its residual function F and keeping the shortcut: the
  block's output becomes ``act(shortcut(x))`` instead of ``act(F(x) + shortcut(x))``. For an identity
  shortcut that is ``ReLU(x)`` (= x, since x is itself a ReLU output); for a downsampling block with the
  option-A shortcut it is the zero-padded subsample, with option B/C the 1×1 projection. Downsampling
  blocks (output shape ≠ input shape) are marked: deleting them removes the only learned path across the
  resolution change, and Veit et al. saw the largest errors there.
* ``"plain"`` — a block whose output has the shape of its input (found by a probe forward pass) can be
  replaced by the identity. For a plain ResNet these are all blocks except each stage's first; for other
  families, the children of each stage that have parameters and keep the shape (e.g. Inception 4b/4c).

Measured, each on the same fixed images with eval-mode batch norm (:func:`~depthlab.analysis.evaluation.
evaluate`):

* **single** — error with each deletable block deleted alone;
* **deletions** — error with k blocks deleted at once, k = 1…n, ``draws`` random sets per k (all sets when
  there are no more than ``draws`` of them; k = 1 reuses the single deletions, i.e. all n sets);
* **swaps** — error after k random swaps (k = 1…``max_swaps``) of two shape-preserving blocks of the same
  stage (same parent ``nn.Sequential``), ``draws`` random draws per k.

Verdicts (:meth:`LesionResult.evidence`, intervals from :mod:`depthlab.stats`; one trained net, so
the blocks are the replicates):

* residual mode — the mean rise of the error over the non-downsampling single deletions, with its 95%
  Student t interval over those blocks, against ``BARELY`` (two points): "barely hurts" (as Veit et al.
  found) when the whole interval lies below it, "hurts" when above, else not resolved. The downsampling
  blocks' rises are compared with the others' by a Welch t interval over blocks. Each single deletion is
  also tested against the intact net on the same images (McNemar, from the images that flip);
* plain mode — the mean error after one deletion, with its t interval over blocks, against halfway from the
  intact error to chance: "falls to near chance" (as Veit et al. found for VGG) when the interval lies
  above, "stays well above chance" when below, else not resolved;
* k deletions and k swaps — the least-squares slope of the error on k over every draw (k = 0: the intact
  net) with its t interval: the error rises, falls or is not resolved.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import torch
from torch import nn

from depthlab.analysis.evaluation import (
    AnalysisError,
    EvalResult,
    PartialResults,
    Progress,
    binomial_se,
    evaluate,
)
from depthlab.analysis.gradients import find_blocks
from depthlab.errors import UsageError
from depthlab.io import read_number
from depthlab.models.base import main_logits
from depthlab.stats import (
    Difference,
    Estimate,
    Interval,
    PairedTest,
    Slope,
    estimate,
    mcnemar,
    mean_ci,
    slope,
    welch,
)

__all__ = [
    "MODES",
    "LesionUnit",
    "SingleLesion",
    "KLesion",
    "LesionResult",
    "LesionEvidence",
    "NoResidualBlocksError",
    "lesion_units",
    "lesioned",
    "swapped",
    "lesion_study",
]

MODES = ("auto", "residual", "plain")
BARELY = 0.02  # "barely hurts": the mean single-deletion rise is resolved below two percentage points


class NoResidualBlocksError(AnalysisError):
    """Residual mode was asked of a model without residual blocks."""


@dataclass(frozen=True)
class LesionUnit:
    """A block the study can delete. ``index`` is 1-based in execution order among the deletable blocks."""

    index: int
    name: str  # qualified module name, e.g. "stages.1.0"
    stage: int  # index into model.stages (-1 if the block is not inside a stage)
    downsampling: bool  # output shape differs from input shape (stride or channel change)
    swappable: bool  # shape-preserving, inside an nn.Sequential: can trade places with a sibling


@dataclass(frozen=True)
class SingleLesion:
    name: str
    index: int
    stage: int
    downsampling: bool
    error: float
    loss: float
    to_wrong: int  # images right when intact, wrong when this block is deleted
    to_right: int  # images wrong when intact, right when deleted

    def paired_se(self, n: int) -> float:
        """Standard error of (error − intact error) on the same n images (McNemar)."""
        b, c = self.to_wrong, self.to_right
        return math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n if n else float("nan")

    def paired_test(self) -> PairedTest:
        """McNemar's test of this deletion against the intact net on the same images. Only the images that
        flip enter it, so the per-image flags are rebuilt from the two counts (a = lesioned, b = intact)."""
        lesioned_ok = np.r_[np.zeros(self.to_wrong, bool), np.ones(self.to_right, bool)]
        return mcnemar([lesioned_ok], [~lesioned_ok])


@dataclass(frozen=True)
class KLesion:
    """Errors of ``len(errors)`` random configurations with ``k`` blocks deleted (or k pairs swapped)."""

    k: int
    errors: tuple[float, ...]
    sets: tuple[tuple[int, ...], ...]  # deleted block indices (1-based) or swapped positions, per draw

    @property
    def mean(self) -> float:
        return statistics.fmean(self.errors)

    @property
    def spread(self) -> float:
        """Sample standard deviation over the draws (0 with one draw; NaN, unknown, when one is not finite:
        no statistic is computed from a non-finite error)."""
        if not all(math.isfinite(e) for e in self.errors):
            return math.nan
        return statistics.stdev(self.errors) if len(self.errors) > 1 else 0.0


@dataclass(frozen=True)
class LesionResult:
    mode: str
    images: int
    num_classes: int
    intact_error: float
    intact_loss: float
    units: tuple[LesionUnit, ...]
    single: tuple[SingleLesion, ...]
    deletions: tuple[KLesion, ...]
    swaps: tuple[KLesion, ...]
    draws: int
    seed: int
    wall_time_s: float
    source: dict[str, Any] = field(default_factory=dict)  # run directory, model, checkpoint, data

    # ----------------------------------------------------------------------------------------- json
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LesionResult:
        # Every measured number through read_number: a non-finite one was written as null, and is NaN here.
        def k_lesions(rows: list[dict[str, Any]]) -> tuple[KLesion, ...]:
            return tuple(
                KLesion(
                    int(r["k"]),
                    tuple(read_number(e) for e in r["errors"]),
                    tuple(tuple(s) for s in r["sets"]),
                )
                for r in rows
            )

        return cls(
            mode=d["mode"],
            images=int(d["images"]),
            num_classes=int(d["num_classes"]),
            intact_error=read_number(d["intact_error"]),
            intact_loss=read_number(d["intact_loss"]),
            units=tuple(LesionUnit(**u) for u in d["units"]),
            single=tuple(
                SingleLesion(**{**s, "error": read_number(s["error"]), "loss": read_number(s["loss"])})
                for s in d["single"]
            ),
            deletions=k_lesions(d["deletions"]),
            swaps=k_lesions(d["swaps"]),
            draws=int(d["draws"]),
            seed=int(d["seed"]),
            wall_time_s=read_number(d["wall_time_s"]),
            source=dict(d.get("source", {})),
        )

    # ------------------------------------------------------------------------------------- findings
    @property
    def chance_error(self) -> float:
        return 1.0 - 1.0 / self.num_classes

    def evidence(self) -> LesionEvidence:
        """The numbers behind the verdicts, with their intervals (module docstring)."""
        inner = [s for s in self.single if not s.downsampling]
        down = [s for s in self.single if s.downsampling]
        rises = [s.error - self.intact_error for s in inner]
        inner_rise = estimate(rises)
        down_rise = estimate([s.error - self.intact_error for s in down])
        errors = estimate([s.error for s in self.single])
        return LesionEvidence(
            inner_rise=inner_rise,
            inner_ci=mean_ci(rises) if len(rises) >= 2 else None,
            down_vs_inner=(
                welch("downsampling", down_rise, "other", inner_rise)
                if down_rise is not None and inner_rise is not None
                else None
            ),
            single_error=errors,
            single_ci=mean_ci([s.error for s in self.single]) if len(self.single) >= 2 else None,
            halfway=self.intact_error + (self.chance_error - self.intact_error) / 2,
            raised=sum(1 for s in self.single if _raises(s)),
            deletion_slope=_k_slope(self.intact_error, self.deletions),
            swap_slope=_k_slope(self.intact_error, self.swaps),
        )

    def above_chance_p(self) -> float:
        """One-sided exact binomial p-value of the intact accuracy against chance (1 / classes): small when
        the net learned something a lesion could destroy."""
        import scipy.stats

        if not math.isfinite(self.intact_error):
            return math.nan  # unknown: no test of a number that is not one
        correct = round((1 - self.intact_error) * self.images)
        return float(scipy.stats.binomtest(correct, self.images, 1 / self.num_classes, "greater").pvalue)

    def findings(self, label: str | None = None) -> list[str]:
        """Sentences comparing the measured numbers with Veit et al.'s pattern, each with its interval."""
        label = label or self.source.get("model", "model")
        pct = _pct
        se = binomial_se(self.intact_error, self.images)
        out = [
            f"{label} ({self.mode} mode, {self.images:,} test images, eval-mode BN): intact error "
            f"{pct(self.intact_error)} ± {pct(se)} (binomial SE); chance is {pct(self.chance_error)}."
        ]
        if not self.single:
            return out
        if not math.isfinite(self.intact_error):
            out.append(
                f"The intact error of {label} is unknown (a non-finite number), so no lesion verdict is drawn from it."
            )
            return out
        p_trained = self.above_chance_p()
        if p_trained >= 0.05:
            # A net that never left chance has nothing for a lesion to destroy: any verdict on it would be
            # read as "the blocks do not matter", which is not what the numbers could show.
            out.append(
                f"The intact {label} is not resolved above chance (one-sided exact binomial test, "
                f"p = {p_trained:.2g}): it did not train, so no lesion verdict is drawn from it."
            )
            return out
        e = self.evidence()
        if self.mode == "residual" and e.inner_rise is not None:
            out += _residual_text(self, e, e.inner_rise)
        elif self.mode == "plain" and e.single_error is not None:
            out.append(_plain_text(self, e, e.single_error))
        if self.deletions:
            out.append(
                _k_text(
                    "Deleting k random blocks", self.deletions, self.draws, e.deletion_slope, "block",
                    paper=self.mode == "residual",
                )
            )  # fmt: skip
        if self.swaps:
            out.append(
                _k_text(
                    "Swapping k random pairs of same-stage blocks",
                    self.swaps,
                    self.draws,
                    e.swap_slope,
                    "swap",
                )
            )
        return out


@dataclass(frozen=True)
class LesionEvidence:
    """Typed readings of a :class:`LesionResult` (fractions; rises are lesioned − intact error)."""

    inner_rise: Estimate | None  # over the non-downsampling blocks (None without any)
    inner_ci: Interval | None  # 95% t interval of its mean
    down_vs_inner: Difference | None  # downsampling − other blocks' rises (Welch over blocks)
    single_error: Estimate | None  # the single-deletion errors over all blocks (None without any)
    single_ci: Interval | None
    halfway: float  # intact + (chance − intact)/2
    raised: int  # single deletions whose rise McNemar resolves (p < 0.05, error up)
    deletion_slope: Slope | None  # error on k (k = 0: intact), every draw
    swap_slope: Slope | None

    @property
    def residual_outcome(self) -> str:
        """ "barely hurts" / "hurts" / "not resolved": the mean rise's interval against ``BARELY``."""
        return _against(self.inner_ci, BARELY, below="barely hurts", above="hurts")

    @property
    def plain_outcome(self) -> str:
        """ "near chance" / "above chance" / "not resolved": the mean error's interval against halfway."""
        return _against(self.single_ci, self.halfway, below="well above chance", above="near chance")


def _against(ci: Interval | None, bound: float, *, below: str, above: str) -> str:
    if ci is None or not (math.isfinite(ci.low) and math.isfinite(ci.high)):
        return "not resolved"
    if ci.high < bound:
        return below
    if ci.low > bound:
        return above
    return "not resolved"


def _raises(s: SingleLesion) -> bool:
    return s.to_wrong > s.to_right and s.paired_test().p < 0.05


def _k_slope(intact: float, rows: Sequence[KLesion]) -> Slope | None:
    xs = [0.0] + [float(r.k) for r in rows for _ in r.errors]
    ys = [intact] + [e for r in rows for e in r.errors]
    if len(set(xs)) < 2 or len(xs) < 3:
        return None
    fit = slope(xs, ys)
    # Errors that do not vary at all leave linregress no standard error (NaN): no interval rather than NaN.
    if fit.ci is not None and not (math.isfinite(fit.ci.low) and math.isfinite(fit.ci.high)):
        fit = dataclasses.replace(fit, ci=None)
    return fit


def _ci_pts(ci: Interval | None) -> str:
    return f"95% CI [{100 * ci.low:+.1f}, {100 * ci.high:+.1f}] points" if ci is not None else "no CI"


def _residual_text(r: LesionResult, e: LesionEvidence, rise: Estimate) -> list[str]:
    inner = [s for s in r.single if not s.downsampling]
    down = [s for s in r.single if s.downsampling]
    worst = max(inner, key=lambda s: s.error)
    text = (
        f"Deleting one of the {len(inner)} non-downsampling residual blocks: mean rise "
        f"{_pts(rise.mean)} ({_ci_pts(e.inner_ci)}, t over blocks), largest "
        f"{_pts(worst.error - r.intact_error)} ({worst.name}); McNemar resolves a rise for "
        f"{sum(1 for s in inner if _raises(s))} of {len(inner)}."
    )
    if down:
        text += (
            " Downsampling blocks: "
            + ", ".join(f"{s.name} {_pts(s.error - r.intact_error)}" for s in down)
            + "."
        )
    bound = _pts(BARELY, sign=False)
    outcome = e.residual_outcome
    if outcome == "barely hurts":
        verdict = f"Single deletions barely hurt the residual net (the interval lies below {bound}), as Veit et al. found"
    elif outcome == "hurts":
        verdict = f"Single deletions do hurt this residual net (the interval lies above {bound}), unlike Veit et al.'s ResNets"
    else:
        verdict = f"Whether single deletions barely hurt the residual net (a mean rise below {bound}) is not resolved"
    verdict += f": mean rise {_pts(rise.mean)}, {_ci_pts(e.inner_ci)}, {len(inner)} blocks."
    d = e.down_vs_inner
    if d is not None:
        head = f" Downsampling vs other blocks: difference of mean rises {_pts(d.difference)}, {_ci_pts(d.ci)} (Welch t)"
        if d.outcome == "higher":
            verdict += head + ": the downsampling blocks hurt more, as in the paper."
        elif d.outcome == "lower":
            verdict += head + ": the downsampling blocks hurt less, unlike the paper."
        else:
            verdict += head + ": not resolved."
    return [text, verdict]


def _plain_text(r: LesionResult, e: LesionEvidence, mean_error: Estimate) -> str:
    errors = [s.error for s in r.single]
    head = (
        f"Replacing one of the {len(r.single)} shape-preserving blocks by the identity: mean error "
        f"{_pct(mean_error.mean)} ({_ci_pct(e.single_ci)}, t over blocks; range {_pct(min(errors))}–"
        f"{_pct(max(errors))}) vs {_pct(e.halfway)}, halfway from intact to chance"
    )
    outcome = e.plain_outcome
    if outcome == "near chance":
        return head + ": above it — the net falls toward chance, as Veit et al. found for a plain VGG."
    if outcome == "well above chance":
        return head + ": below it — the net does not fall to near chance, unlike Veit et al.'s plain VGG."
    return head + ": not resolved."


def _ci_pct(ci: Interval | None) -> str:
    return f"95% CI [{_pct(ci.low)}, {_pct(ci.high)}]" if ci is not None else "no CI"


def _k_text(
    what: str, rows: Sequence[KLesion], draws: int, fit: Slope | None, unit: str, *, paper: bool = False
) -> str:
    """``paper``: Veit et al.'s Fig. 5 (residual nets) is the reference for a resolved rise."""
    shown = [rows[0], rows[len(rows) // 2], rows[-1]] if len(rows) >= 3 else list(rows)
    head = f"{what} ({draws} draws per k): mean error " + ", ".join(
        f"{_pct(r.mean)} at k={r.k}" for r in shown
    )
    if fit is None:
        return head + "."
    slope_text = (
        f"{_pts(fit.slope)} per {unit} ({_ci_pts(fit.ci)}, least squares over every draw and the intact net)"
    )
    ci = fit.ci
    resolved = (
        ci is not None and math.isfinite(ci.low) and math.isfinite(ci.high) and (ci.low > 0 or ci.high < 0)
    )
    if not resolved:
        return f"{head}; the change with k, {slope_text}, is not resolved."
    direction = "rises" if ci.low > 0 else "falls"
    text = f"{head}; the error {direction} with k, {slope_text}"
    if paper and direction == "rises":
        means = [r.mean for r in rows]
        steps = [b - a for a, b in zip(means, means[1:], strict=False)]
        total = means[-1] - means[0]
        if steps and total > 0:
            text += f"; the largest step between consecutive k is {100 * max(steps) / total:.0f}% of the rise from k={rows[0].k} to k={rows[-1].k}"
        text += ", as in Veit et al.'s Fig. 5"
    return text + "."


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if math.isfinite(x) else "unknown"  # NaN: a non-finite number read back


def _pts(x: float, sign: bool = True) -> str:
    if not math.isfinite(x):
        return "unknown"
    return f"{100 * x:+.1f} points" if sign else f"{100 * x:.1f} points"


# ------------------------------------------------------------------------------------------- the blocks
def _stage_of(name: str) -> int:
    parts = name.split(".")
    if len(parts) >= 2 and parts[0] == "stages" and parts[1].isdigit():
        return int(parts[1])
    return -1


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _is_residual(module: nn.Module) -> bool:
    return bool(getattr(type(module), "residual", False)) and getattr(module, "shortcut", None) is not None


@torch.no_grad()
def _probe_shapes(
    model: nn.Module, names: Sequence[str], input_shape: tuple[int, ...]
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input shape, output shape) without the batch dimension, of each module in ``names``."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    handles = []
    for n in names:

        def hook(m: nn.Module, inp: tuple[Any, ...], out: Any, n: str = n) -> None:
            if isinstance(inp[0], torch.Tensor) and isinstance(out, torch.Tensor):
                shapes[n] = (tuple(inp[0].shape[1:]), tuple(out.shape[1:]))

        handles.append(modules[n].register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return shapes


def lesion_units(
    model: nn.Module, input_shape: tuple[int, int, int], mode: str = "auto"
) -> tuple[str, list[LesionUnit]]:
    """(resolved mode, deletable blocks in execution order) of ``model`` for images of ``input_shape``.

    ``NoResidualBlocksError`` for ``mode="residual"`` on a model without residual blocks; ``AnalysisError``
    when nothing can be deleted.
    """
    if mode not in MODES:
        raise UsageError(f"lesion mode must be one of {MODES}, got {mode!r}")
    blocks = find_blocks(model)
    residual = [(n, m) for n, m in blocks if _is_residual(m)]
    if mode == "auto":
        mode = "residual" if residual else "plain"
    if mode == "residual" and not residual:
        raise NoResidualBlocksError(
            f"{type(model).__name__} has no residual blocks: residual mode needs a ResNet; use mode 'plain' "
            "(delete shape-preserving blocks instead)"
        )
    candidates = residual if mode == "residual" else [(n, m) for n, m in blocks if _has_params(m)]
    shapes = _probe_shapes(model, [n for n, _ in candidates], input_shape)
    modules = dict(model.named_modules())
    units: list[LesionUnit] = []
    # Execution order: the probe's hooks fired in order, and dicts keep insertion order.
    for name in shapes:
        in_shape, out_shape = shapes[name]
        same = in_shape == out_shape
        if mode == "plain" and not same:
            continue
        parent = modules.get(name.rpartition(".")[0]) if "." in name else model
        swappable = same and isinstance(parent, nn.Sequential)
        units.append(LesionUnit(len(units) + 1, name, _stage_of(name), not same, swappable))
    if not units:
        raise AnalysisError(
            f"{type(model).__name__} has no block that keeps its input's shape, so nothing can be replaced "
            "by the identity (plain mode)"
        )
    return mode, units


# --------------------------------------------------------------------------------------- interventions
def _shortcut_only(block: nn.Module) -> Any:
    def forward(x: torch.Tensor) -> torch.Tensor:
        return block.act(block.shortcut(x))  # the block with F(x) dropped

    return forward


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@contextmanager
def lesioned(model: nn.Module, names: Sequence[str], mode: str) -> Iterator[nn.Module]:
    """Within the context, the blocks ``names`` are deleted (``mode`` "residual": shortcut only; "plain":
    identity). The original forward methods are restored on exit, even after an exception."""
    if mode not in ("residual", "plain"):
        raise UsageError(f"lesion mode must be 'residual' or 'plain', got {mode!r}")
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise UsageError(f"no module named {', '.join(missing)} in {type(model).__name__}")
    patched: list[tuple[nn.Module, Any]] = []
    try:
        for n in names:
            block = modules[n]
            if mode == "residual" and not _is_residual(block):
                raise NoResidualBlocksError(f"{n} is not a residual block")
            # An instance attribute shadows the class's forward; nn.Module.__call__ looks it up per call.
            patched.append((block, block.__dict__.get("forward")))
            block.forward = _shortcut_only(block) if mode == "residual" else _identity  # type: ignore[method-assign]
        yield model
    finally:
        for block, previous in reversed(patched):
            if previous is None:
                del block.forward
            else:
                block.forward = previous  # type: ignore[method-assign]


@contextmanager
def swapped(model: nn.Module, swaps: Sequence[tuple[str, str]]) -> Iterator[nn.Module]:
    """Within the context, each pair of sibling modules (same parent ``nn.Sequential``) trades places, in
    order: pairs name *positions*, so a later swap moves whatever an earlier one put there."""
    modules = dict(model.named_modules())
    saved: list[tuple[nn.Module, dict[str, nn.Module]]] = []
    try:
        for a, b in swaps:
            pa, _, ka = a.rpartition(".")
            pb, _, kb = b.rpartition(".")
            parent = modules.get(pa)
            if (
                pa != pb
                or not isinstance(parent, nn.Sequential)
                or ka not in parent._modules
                or kb not in parent._modules
            ):
                raise UsageError(f"cannot swap {a} and {b}: they must be children of one nn.Sequential")
            if not any(p is parent for p, _ in saved):
                saved.append((parent, dict(parent._modules)))  # type: ignore[arg-type]
            parent._modules[ka], parent._modules[kb] = parent._modules[kb], parent._modules[ka]
        yield model
    finally:
        for parent, original in reversed(saved):
            parent._modules.clear()
            parent._modules.update(original)


# --------------------------------------------------------------------------------------------- draws
def _draw_sets(n: int, k: int, draws: int, generator: torch.Generator) -> list[tuple[int, ...]]:
    """``draws`` distinct k-subsets of range(n) (sorted tuples), or all of them if there are no more."""
    if math.comb(n, k) <= draws:
        return [tuple(c) for c in combinations(range(n), k)]
    chosen: list[tuple[int, ...]] = []
    while len(chosen) < draws:
        s = tuple(sorted(torch.randperm(n, generator=generator, device="cpu")[:k].tolist()))
        if s not in chosen:
            chosen.append(s)
    return chosen


def _draw_swaps(
    groups: list[list[int]], k: int, draws: int, generator: torch.Generator
) -> list[tuple[int, ...]]:
    """``draws`` sequences of k swaps; each swap is two unit positions of one group, flattened (a1, b1, ...)."""
    weights = torch.tensor([len(g) * (len(g) - 1) / 2 for g in groups], dtype=torch.float64, device="cpu")
    out = []
    for _ in range(draws):
        seq: list[int] = []
        for _ in range(k):
            g = groups[int(torch.multinomial(weights, 1, generator=generator))]
            i, j = torch.randperm(len(g), generator=generator, device="cpu")[:2].tolist()
            seq += [g[i], g[j]]
        out.append(tuple(seq))
    return out


# ---------------------------------------------------------------------------------------------- study
def _check_study(draws: int, max_swaps: int, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Refuse bad draw counts, or images and labels that are not one non-empty batch and its labels."""
    if not isinstance(draws, int) or draws < 1:
        raise UsageError(f"draws must be a positive integer, got {draws!r}")
    if not isinstance(max_swaps, int) or max_swaps < 0:
        raise UsageError(f"max_swaps must be a non-negative integer, got {max_swaps!r}")
    if images.dim() != 4 or labels.shape != (images.shape[0],) or images.shape[0] == 0:
        raise UsageError(
            f"images must be (N, C, H, W) with N ≥ 1 and labels (N,), got {tuple(images.shape)} and "
            f"{tuple(labels.shape)}"
        )


_Plan = list[tuple[int, list[tuple[int, ...]]]]  # (k, the drawn k-deletions or k-swap sequences)


def _draw_plans(units: Sequence[LesionUnit], draws: int, max_swaps: int, seed: int) -> tuple[_Plan, _Plan]:
    """The k-deletions (k ≥ 2) and the swap sequences (k = 1..max_swaps) to evaluate, drawn from one seed."""
    n = len(units)
    # The draws are made on the CPU whatever the model's device: a seed deletes the same blocks everywhere.
    generator = torch.Generator(device="cpu").manual_seed(seed)
    deletion_plan = [(k, _draw_sets(n, k, draws, generator)) for k in range(2, n + 1)]
    groups: dict[str, list[int]] = {}
    for i, u in enumerate(units):
        if u.swappable:
            groups.setdefault(u.name.rpartition(".")[0], []).append(i)
    swap_groups = [g for g in groups.values() if len(g) >= 2]
    swap_plan = (
        [(k, _draw_swaps(swap_groups, k, draws, generator)) for k in range(1, max_swaps + 1)]
        if swap_groups
        else []
    )
    return deletion_plan, swap_plan


@dataclass
class _Lesioner:
    """Evaluates the model with blocks deleted or swapped against the intact net, keeping every result in
    ``partial`` under its key and calling ``progress(done, total)`` after each."""

    model: nn.Module
    images: torch.Tensor
    labels: torch.Tensor
    intact: EvalResult
    mode: str
    batch_size: int
    partial: PartialResults
    progress: Progress | None
    total: int
    done: int = 0

    def tick(self) -> None:
        """Count one finished evaluation."""
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)

    def measure(
        self, key: str, names: Sequence[str] = (), swaps: Sequence[tuple[str, str]] = ()
    ) -> dict[str, Any]:
        """Error, loss and the images turned wrong / right with the blocks ``names`` deleted and ``swaps`` made."""
        if key in self.partial:
            self.tick()
            return self.partial.get(key)
        with lesioned(self.model, names, self.mode), swapped(self.model, swaps):
            r = evaluate(self.model, self.images, self.labels, self.batch_size)
        value = {
            "error": r.error,
            "loss": r.loss,
            "to_wrong": int((self.intact.correct & ~r.correct).sum()),
            "to_right": int((~self.intact.correct & r.correct).sum()),
        }
        self.partial.put(key, value)
        self.tick()
        return value


def _single_lesions(units: Sequence[LesionUnit], lesioner: _Lesioner) -> list[SingleLesion]:
    """Every unit deleted on its own."""
    single = []
    for u in units:
        v = lesioner.measure(f"single:{u.index}", [u.name])
        single.append(
            SingleLesion(
                u.name, u.index, u.stage, u.downsampling, v["error"], v["loss"], v["to_wrong"], v["to_right"]
            )
        )
    return single


def _deletions(
    units: Sequence[LesionUnit], single: Sequence[SingleLesion], plan: _Plan, lesioner: _Lesioner
) -> list[KLesion]:
    """The k-deletion curve: k = 1 is the single deletions, then the drawn sets of every larger k."""
    deletions = [KLesion(1, tuple(s.error for s in single), tuple((s.index,) for s in single))]
    for k, sets in plan:
        errors = []
        for s in sets:
            v = lesioner.measure("del:" + ",".join(map(str, s)), [units[i].name for i in s])
            errors.append(v["error"])
        deletions.append(KLesion(k, tuple(errors), tuple(tuple(i + 1 for i in s) for s in sets)))
    return deletions


def _swaps(units: Sequence[LesionUnit], plan: _Plan, lesioner: _Lesioner) -> list[KLesion]:
    """The k-swap curve: each drawn sequence of k swaps (two units of one stage each), made together."""
    swaps = []
    for k, seqs in plan:
        errors = []
        for seq in seqs:
            pairs = [(units[seq[i]].name, units[seq[i + 1]].name) for i in range(0, len(seq), 2)]
            v = lesioner.measure("swap:" + ",".join(map(str, seq)), swaps=pairs)
            errors.append(v["error"])
        swaps.append(KLesion(k, tuple(errors), tuple(tuple(i + 1 for i in seq) for seq in seqs)))
    return swaps


def lesion_study(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    mode: str = "auto",
    draws: int = 3,
    max_swaps: int = 8,
    seed: int = 0,
    batch_size: int = 100,
    progress: Progress | None = None,
    partial: PartialResults | None = None,
) -> LesionResult:
    """Single deletions, random k-deletions and random swaps of ``model`` on ``images`` (N, C, H, W,
    normalised) with ``labels`` (N,); see the module docstring. ``partial`` keeps finished evaluations so a
    killed study resumes; ``progress(done, total)`` is called after every evaluation."""
    _check_study(draws, max_swaps, images, labels)
    start = time.perf_counter()
    mode, units = lesion_units(model, tuple(images.shape[1:]), mode)  # type: ignore[arg-type]
    deletion_plan, swap_plan = _draw_plans(units, draws, max_swaps, seed)
    total = 1 + len(units) + sum(len(s) for _, s in deletion_plan) + sum(len(s) for _, s in swap_plan)
    intact = evaluate(model, images, labels, batch_size)
    num_classes = _num_classes(model, images)
    lesioner = _Lesioner(
        model, images, labels, intact, mode, batch_size, partial or PartialResults(None, {}), progress, total
    )
    lesioner.tick()
    single = _single_lesions(units, lesioner)
    deletions = _deletions(units, single, deletion_plan, lesioner)
    swaps = _swaps(units, swap_plan, lesioner)
    return LesionResult(
        mode=mode,
        images=int(images.shape[0]),
        num_classes=num_classes,
        intact_error=intact.error,
        intact_loss=intact.loss,
        units=tuple(units),
        single=tuple(single),
        deletions=tuple(deletions),
        swaps=tuple(swaps),
        draws=draws,
        seed=seed,
        wall_time_s=round(time.perf_counter() - start, 2),
    )


@torch.inference_mode()
def _num_classes(model: nn.Module, images: torch.Tensor) -> int:
    n = getattr(model, "num_classes", None)
    if isinstance(n, int):
        return n
    was_training = model.training
    model.eval()
    try:
        return int(main_logits(model(images[:1])).shape[1])
    finally:
        model.train(was_training)
