"""Typed readings of the inception-aux study's runs, used by its findings and its figures (never retrains).

Definitions (errors are fractions):

* **conditions** — ``aux 0.3``: heads on, training loss L = L_main + 0.3·(L_aux1 + L_aux2); ``aux 0``: heads
  on (they run, and draw dropout masks) but weight 0, so the trainable network, its initial weights and its
  data order equal those of ``aux 0.3`` for the same seed; ``no aux heads``: ``aux_logits=False``, a
  different draw of the initial weights from the same seed (the heads' construction consumes random numbers).
* **early training** — the running training error (training mode, the main classifier on the batches being
  trained on: what Szegedy et al. plot as training progress) averaged over the logged rows of iterations
  1 … ``early_step``, i.e. over ``early_step × batch_size`` images.
* **final** — the eval-mode error over the whole fixed training subset at the last step, and the test error.
* **convergence** — the one rule of every study (:mod:`depthlab.studies.common`): the running training
  error over the last 10% of iterations against the 10% before, paired by seed.
* **gradient readings** — :mod:`depthlab.studies.inception_aux.probe` at a tap, at initialisation, during
  training (per seed the median over the probes after initialisation and before the last step) and at the end.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from depthlab.i18n import N_
from depthlab.stats import Estimate, estimate
from depthlab.studies.inception_aux.presets import BASE, PAPER_WEIGHT, InceptionAuxPreset
from depthlab.studies.inception_aux.probe import AuxGradients, TapGradient
from depthlab.studies.results import Condition, StudyResult, StudyRun

__all__ = [
    "MOMENTS",
    "Groups",
    "groups",
    "early_step",
    "early_mean",
    "early_error",
    "probe_at",
    "probes_during",
    "GradientReading",
    "gradient_reading",
    "main_rms",
]

MOMENTS = (N_("init"), N_("during"), N_("end"))  # shown as _(moment)


# ------------------------------------------------------------------------------------------- conditions
@dataclass(frozen=True)
class Groups:
    """The study's conditions: ``aux`` (the weight > 0 nearest the paper's), ``zero`` (weight 0, heads on),
    ``none`` (heads removed), ``others`` (further weights > 0)."""

    aux: Condition | None
    zero: Condition | None
    none: Condition | None
    others: tuple[Condition, ...]

    @property
    def baselines(self) -> tuple[Condition, ...]:
        """What ``aux`` is compared with: weight 0, then the net without heads."""
        return tuple(c for c in (self.zero, self.none) if c is not None)


def weight(c: Condition) -> float:
    return float(c.factors.get("aux_weight", 0.0))


def groups(result: StudyResult) -> Groups:
    on = [c for c in result.conditions() if c.factors.get("aux_heads", True)]
    weighted = sorted((c for c in on if weight(c) > 0), key=lambda c: abs(weight(c) - PAPER_WEIGHT))
    zero = next((c for c in on if c.factors.get("aux_weight") is not None and weight(c) == 0), None)
    none = next((c for c in result.conditions() if c.factors.get("aux_heads") is False), None)
    return Groups(weighted[0] if weighted else None, zero, none, tuple(weighted[1:]))


def preset_of(result: StudyResult) -> InceptionAuxPreset:
    """The study's preset, or the base one for a directory of runs no study wrote (for its bounds)."""

    return result.preset if isinstance(result.preset, InceptionAuxPreset) else BASE


# ---------------------------------------------------------------------------------------------- errors
def early_step(result: StudyResult) -> int | None:
    """The preset's early step, else half of the shortest run."""
    if isinstance(result.preset, InceptionAuxPreset):
        return result.preset.early_step
    steps = [r.step for r in result.runs if r.step > 0]
    return min(steps) // 2 if steps else None


def early_mean(run: StudyRun, step: int) -> float | None:
    """The mean running training error of the rows logged at iterations 1 … ``step`` (each row covers the
    same number of batches: ``log_every``)."""
    rows = [e for s, e in run.curves.get("train", ()) if 1 <= s <= step]
    return sum(rows) / len(rows) if rows else None


def early_error(c: Condition, step: int) -> Estimate | None:
    """Early training of condition ``c`` over seeds; ``images`` = step × batch size."""
    batch = max((int(r.config.get("batch_size", 0)) for r in c.runs), default=0)
    return c.estimate([early_mean(r, step) for r in c.runs], step * batch)


# -------------------------------------------------------------------------------------------- gradients
def _read(entry: Any) -> AuxGradients | None:
    if not isinstance(entry, dict) or "aux_grad" not in entry:
        return None
    return AuxGradients.from_dict(entry["aux_grad"])


def probe_at(run: StudyRun, moment: str) -> AuxGradients | None:
    """The probe at ``init`` or ``end`` (``None`` if the run did not record it)."""
    return _read(run.diagnostics.get(moment))


def probes_during(run: StudyRun) -> list[tuple[int, AuxGradients]]:
    """(step, probe) of the probes during training: after initialisation, before the last step."""
    last = int(run.config.get("steps") or 0)
    steps = run.diagnostics.get("steps", {})
    out = [(int(s), _read(v)) for s, v in steps.items() if 0 < int(s) < last]
    return sorted((s, g) for s, g in out if g is not None)


def _per_seed(run: StudyRun, moment: str, tap: str, value: Callable[[TapGradient], float]) -> float | None:
    if moment == "during":
        vals = [value(t) for _, g in probes_during(run) if (t := g.at(tap)) is not None]
        return statistics.median(vals) if vals else None
    g = probe_at(run, moment)
    t = g.at(tap) if g is not None else None
    return value(t) if t is not None else None


@dataclass(frozen=True)
class GradientReading:
    """The aux share ‖w·g_aux‖ ÷ ‖g_main‖ and cos(g_aux, g_main) of one condition at one tap and moment, one
    value per seed (``during``: the median over the seed's probes, ``probes`` of them at most)."""

    condition: str
    weight: float
    tap: str
    moment: str
    share: Estimate
    cosine: Estimate
    probes: int


def gradient_reading(c: Condition, tap: str, moment: str) -> GradientReading | None:
    """The reading of ``c`` (heads on, weight w > 0) at ``tap`` and ``moment`` (:data:`MOMENTS`)."""
    w = weight(c)
    share = estimate([_per_seed(r, moment, tap, lambda t: t.share(w)) for r in c.runs])
    cosine = estimate([_per_seed(r, moment, tap, lambda t: t.cosine) for r in c.runs])
    if share is None or cosine is None:
        return None
    probes = max((len(probes_during(r)) for r in c.runs), default=0) if moment == "during" else 1
    return GradientReading(c.name, w, tap, moment, share, cosine, probes)


def main_rms(c: Condition, tap: str, moment: str) -> Estimate | None:
    """‖∂L_main/∂y‖ per element (RMS) of ``c`` at ``tap`` and ``moment``, one value per seed: comparable
    across taps of different sizes and across conditions."""
    return estimate([_per_seed(r, moment, tap, lambda t: t.main_rms) for r in c.runs])
