"""Typed readings of the degradation study's runs, used by both its findings and its figures.

Nothing here compares conditions or writes sentences: it reads what the runs recorded into frozen
dataclasses, one value per seed (an :class:`~depthlab.stats.Estimate`) wherever seeds are pooled.

Gradient outcomes (this study's thresholds): the per-element first/last block gradient ratio r is
``vanishing`` when the 95% t interval of the mean log10 r over seeds lies below log10 :data:`VANISH`,
``exploding`` when it lies above log10 :data:`EXPLODE`, ``neither`` when it lies between them; when it
straddles one threshold only, ``not vanishing`` (above log10 VANISH, straddling log10 EXPLODE) or ``not
exploding`` (below log10 EXPLODE, straddling log10 VANISH) — what the vanishing-gradient question needs is
resolved even when the rest is not; ``not resolved`` when it straddles both (or there is one seed, so no
interval), and ``unknown`` when any seed's ratio is non-finite or not positive — non-finite evidence never
gives an outcome.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from depthlab.analysis.gradients import Diagnostics
from depthlab.analysis.shattered import condition
from depthlab.i18n import N_
from depthlab.stats import Estimate, estimate, slope
from depthlab.studies.declare import StudyError
from depthlab.studies.degradation.grid import ConditionKey, parse_model
from depthlab.studies.results import Condition, StudyResult, StudyRun

__all__ = [
    "VANISH",
    "EXPLODE",
    "GRADIENT_OUTCOMES",
    "gradient_outcome",
    "conditions",
    "train_split",
    "ErrorEvidence",
    "error_evidence",
    "GradientReading",
    "GradientMeasure",
    "GradientEvidence",
    "gradient_evidence",
    "during_probes",
    "response_estimate",
    "ShatteredEvidence",
    "shattered_evidence",
]

VANISH = 0.1  # a first/last per-element gradient ratio below this is "vanishing"
EXPLODE = 10.0  # above this "exploding": the gradient grows toward the input
GRADIENT_OUTCOMES = (  # marked for the catalogues: a reader sees _(outcome)
    N_("vanishing"),
    N_("exploding"),
    N_("neither"),
    N_("not vanishing"),
    N_("not exploding"),
    N_("not resolved"),
    N_("unknown"),
)


def gradient_outcome(ratios: Estimate | None) -> str:
    """One of :data:`GRADIENT_OUTCOMES` for a first/last gradient ratio measured once per seed (module
    docstring)."""
    if ratios is None or any(not math.isfinite(r) or r <= 0 for r in ratios.values):
        return "unknown"
    ci = Estimate(tuple(math.log10(r) for r in ratios.values)).ci()
    if ci is None:
        return "not resolved"
    lo, hi = math.log10(VANISH), math.log10(EXPLODE)
    if ci.high < lo:
        return "vanishing"
    if ci.low > hi:
        return "exploding"
    if ci.low > lo and ci.high < hi:
        return "neither"
    if ci.low > lo:
        return "not vanishing"
    if ci.high < hi:
        return "not exploding"
    return "not resolved"


# ------------------------------------------------------------------------------------------- conditions
def conditions(result: StudyResult) -> dict[ConditionKey, Condition]:
    """The study's conditions by (depth, family); runs of a directory no study wrote are read by name."""
    out = {}
    for c in result.conditions():
        if "depth" in c.factors:
            out[ConditionKey(int(c.factors["depth"]), bool(c.factors["residual"]))] = c
        else:
            try:
                out[ConditionKey(*parse_model(c.runs[0].model))] = c
            except StudyError:
                continue
    return dict(sorted(out.items()))


def train_split(by: Mapping[ConditionKey, Condition]) -> str:
    """``train_eval`` when every run recorded it, else the running error ``train``."""
    runs = [r for c in by.values() for r in c.runs]
    return "train_eval" if runs and all("train_eval" in r.final for r in runs) else "train"


# ------------------------------------------------------------------------------------------------ errors
@dataclass(frozen=True)
class ErrorEvidence:
    """The final errors of one condition, one value per seed (fractions)."""

    key: ConditionKey
    seeds: tuple[int, ...]
    train: Estimate | None  # ``split`` at the last step
    test: Estimate | None
    split: str  # "train_eval" (eval mode over the training subset) or "train" (running error)

    @property
    def label(self) -> str:
        return self.key.label


def error_evidence(result: StudyResult) -> dict[ConditionKey, ErrorEvidence]:
    by = conditions(result)
    split = train_split(by)
    return {
        k: ErrorEvidence(k, tuple(r.seed for r in c.runs), c.error(split), c.error("test"), split)
        for k, c in by.items()
    }


# --------------------------------------------------------------------------------------------- gradients
@dataclass(frozen=True)
class GradientReading:
    """One probe of one run: per-element (RMS) block-output gradients and signals.

    ``ratio``: gradient RMS at the first block over the last (≪ 1 vanishing toward the input);
    ``growth``: the least-squares slope of log10 RMS gradient per block *toward the input* (−slope against
    the block index), so ``ratio ≈ 10**(growth·(blocks − 1))``; ``forward``: signal RMS at the last block
    over the first."""

    ratio: float
    growth: float
    forward: float
    blocks: int

    @classmethod
    def of(cls, d: Diagnostics) -> GradientReading:
        rms = np.asarray(d.block_grad_rms(), dtype=float)
        growth = math.nan
        if rms.size >= 2 and np.all(np.isfinite(rms)) and np.all(rms > 0):
            growth = -slope(np.arange(1, rms.size + 1, dtype=float), np.log10(rms)).slope
        return cls(d.block_grad_ratio(), growth, d.forward_growth(), len(d.blocks))


@dataclass(frozen=True)
class GradientMeasure:
    """One condition in one setting (e.g. "at initialisation, with BN"), one value per seed.

    During training each seed contributes the median over its probes before the last step."""

    condition: str
    setting: str
    ratio: Estimate | None
    growth: Estimate | None
    forward: Estimate | None
    probes: int = 1  # probes per seed behind each value
    blocks: int = 0  # blocks of the net (the growth's bound compounds over them)

    @property
    def outcome(self) -> str:
        return gradient_outcome(self.ratio)


@dataclass(frozen=True)
class GradientEvidence:
    """Every gradient measure of one condition."""

    key: ConditionKey
    init_bn: GradientMeasure
    during_bn: GradientMeasure
    init_no_bn: GradientMeasure
    stage_init: Estimate | None  # effective step ‖∂L/∂W‖/‖W‖ of the first stage ÷ the last, at init


def _diag(entry: Any, key: str) -> Diagnostics | None:
    if not isinstance(entry, dict) or key not in entry:
        return None
    return Diagnostics.from_dict(entry[key])


def during_probes(run: StudyRun) -> list[tuple[int, Diagnostics]]:
    """(step, diagnostics) of every probe *during* training: the probes at evaluation steps before the last
    step. The probe at the last step measures the trained net (the end), not training in progress."""
    last = int(run.config.get("steps") or 0)
    out = []
    for s, v in sorted(run.diagnostics.get("steps", {}).items(), key=lambda kv: int(kv[0])):
        d = _diag(v, "train")
        if int(s) < last and d is not None:
            out.append((int(s), d))
    return out


def _measure(condition: str, setting: str, readings: Sequence[Sequence[GradientReading]]) -> GradientMeasure:
    """One value per seed: the reading itself, or the median over a seed's several readings."""
    seeds = [rs for rs in readings if rs]

    def per_seed(field: str) -> Estimate | None:
        return estimate([statistics.median(getattr(r, field) for r in rs) for rs in seeds])

    probes = max((len(rs) for rs in seeds), default=0)
    blocks = max((r.blocks for rs in seeds for r in rs), default=0)
    return GradientMeasure(condition, setting, per_seed("ratio"), per_seed("growth"), per_seed("forward"), probes,
                           blocks)  # fmt: skip


def _stage_ratio(d: Diagnostics) -> float:
    steps = {k: v for k, v in d.stage_steps().items() if k.startswith("stages.")}
    if len(steps) < 2:
        return math.nan
    keys = sorted(steps, key=lambda k: int(k.split(".")[1]))
    return steps[keys[0]] / steps[keys[-1]] if steps[keys[-1]] > 0 else math.nan


def gradient_evidence(c: Condition, key: ConditionKey) -> GradientEvidence:
    init_bn, during, no_bn = [], [], []
    stage: list[float] = []
    for r in c.runs:
        d = _diag(r.diagnostics.get("init"), "train")
        init_bn.append([GradientReading.of(d)] if d is not None else [])
        if d is not None:
            stage.append(_stage_ratio(d))
        twin = _diag(r.diagnostics.get("init"), "no_bn")
        no_bn.append([GradientReading.of(twin)] if twin is not None else [])
        during.append([GradientReading.of(x) for _, x in during_probes(r)])
    return GradientEvidence(
        key,
        _measure(c.name, "at initialisation, with BN", init_bn),
        _measure(c.name, "during training, with BN", during),
        _measure(c.name, "at initialisation, without BN", no_bn),
        estimate(stage),
    )


# --------------------------------------------------------------------------------------------- responses
def response_estimate(c: Condition) -> Estimate | None:
    """Per seed: the mean std of the 3×3 layers' responses of the trained net (eval mode, Fig. 7). A seed
    with a non-finite response std (an overflowing net, read back as NaN) is unknown: NaN, not averaged."""
    values = []
    for r in c.runs:
        d = _diag(r.diagnostics.get("end"), "eval")
        if d is not None and d.responses:
            stds = [s.std for s in d.responses]
            values.append(statistics.fmean(stds) if all(math.isfinite(s) for s in stds) else math.nan)
    return c.estimate(values) if values or c.diverged else None


# ---------------------------------------------------------------------------------- shattered gradients
@dataclass(frozen=True)
class ShatteredEvidence:
    """The shattered-gradient conditions at initialisation (``analysis/shattered.json``) by (key, BN)."""

    points: int
    seeds: int
    conditions: Mapping[tuple[ConditionKey, bool], Any]  # → analysis.shattered.ShatteredCondition


def shattered_evidence(result: StudyResult) -> ShatteredEvidence | None:
    data = result.analysis("shattered")
    if not data or not data.get("results"):
        return None
    groups: dict[tuple[ConditionKey, bool], list[Mapping[str, Any]]] = {}
    for r in data["results"]:
        groups.setdefault((ConditionKey(int(r["depth"]), bool(r["residual"])), bool(r["bn"])), []).append(r)
    out = {}
    for (key, bn), rs in sorted(groups.items()):
        c = condition(key.label, rs)  # the setting (BN or the BN-free twin) is named by each sentence
        if c is not None:
            out[(key, bn)] = c
    seeds = data["settings"].get("seeds", [])
    return ShatteredEvidence(
        int(data["settings"]["points"]), len(seeds) if isinstance(seeds, list) else int(seeds), out
    )


# ------------------------------------------------------------------------------------ per-image results
