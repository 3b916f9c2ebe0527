"""Typed readings of the vgg-depth study's runs, used by its findings and its figures (never retrains).

Definitions (errors are fractions):

* **conditions** — one per configuration and normalisation (:class:`Net`): ``E`` is the paper's net (no
  batch norm), ``E+BN`` the same with BN after every conv.
* **training error** — the eval-mode error over the whole fixed training subset the nets fit, at the last
  step; **test error** — the test images, at the end. Table 3 reports a held-out error, so the depth, LRN
  and 1×1 questions are asked of the test error; the training error says whether a net fitted its data.
* **did not train** — a run whose final training error is at least chance (1 − 1/classes) minus the
  preset's ``chance_margin`` (85% for 10 classes and the default 5 points): it never left chance, which is
  a failure to start, not the degradation of a net that trains (He et al. 2016). A condition enters a
  comparison only when every seed trained.
* **plateau** — the change of the training error over the last 10% of iterations: from the last evaluation
  at or before 90% of the run to the end, on the same images, one value per seed.
* **depth effect** — deep − shallow of one seed (the two runs share the seed, hence the data order), one
  value per seed; compared between with and without BN to ask whether batch norm changes what depth does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from depthlab.stats import Estimate, estimate
from depthlab.studies.results import Condition, StudyResult
from depthlab.studies.vgg_depth.presets import BASE, DEPTH, DEPTH_LADDER, VGGDepthPreset
from depthlab.train.evaluation import load_correct

__all__ = [
    "PLATEAU_FRACTION",
    "Net",
    "nets",
    "preset_of",
    "Training",
    "training",
    "ladder",
    "Plateau",
    "plateau",
    "depth_effect",
    "LoadCorrect",
    "test_correct",
]

PLATEAU_FRACTION = 0.1  # the plateau check looks at the last 10% of iterations

LoadCorrect = Callable[[Any, str], np.ndarray | None]


@dataclass(frozen=True)
class Net:
    """A condition of the grid: a configuration of Table 1 with or without batch norm."""

    config: str
    bn: bool

    @property
    def label(self) -> str:
        return f"{self.config}+BN" if self.bn else self.config

    @property
    def depth(self) -> int:
        return DEPTH[self.config]

    @property
    def named(self) -> str:
        """The label with its depth, for sentences: ``E+BN (19 layers)``."""
        return f"{self.label} ({self.depth} layers)"


def nets(result: StudyResult) -> dict[Net, Condition]:
    """The study's conditions by :class:`Net` (conditions without a configuration factor are left out)."""
    return {
        Net(str(c.factors["config"]), bool(c.factors["bn"])): c
        for c in result.conditions()
        if "config" in c.factors and str(c.factors["config"]) in DEPTH
    }


def preset_of(result: StudyResult) -> VGGDepthPreset:
    """The study's preset, or the base one for a directory of runs no study wrote (for its bounds)."""
    return result.preset if isinstance(result.preset, VGGDepthPreset) else BASE


def ladder(by: dict[Net, Condition], bn: bool) -> list[Net]:
    """The 3×3-only, LRN-free configurations present for ``bn``, shallowest first (A, B, D, E)."""
    return [Net(c, bn) for c in DEPTH_LADDER if Net(c, bn) in by]


# ----------------------------------------------------------------------------------------- did it train
@dataclass(frozen=True)
class Training:
    """Whether each seed of a condition left chance: ``errors`` its final training errors (seed order),
    ``chance`` 1 − 1/classes, ``threshold`` the error at or above which a run did not train."""

    condition: str
    errors: tuple[float, ...]
    chance: float
    threshold: float

    @property
    def untrained(self) -> int:
        """Seeds that did not train (a non-finite error counts: the run did not train)."""
        return sum(not e < self.threshold for e in self.errors)

    @property
    def seeds(self) -> int:
        return len(self.errors)

    @property
    def all_trained(self) -> bool:
        return self.untrained == 0


def training(c: Condition, margin: float) -> Training | None:
    """The :class:`Training` of ``c``; ``None`` when a run has no final training error or its summary does
    not name the number of classes (chance is then unknown)."""
    errors = [r.final.get("train_eval") for r in c.runs]
    classes = {r.data.get("num_classes") for r in c.runs}
    if any(e is None for e in errors) or len(classes) != 1:
        return None
    k = classes.pop()
    if not isinstance(k, int) or k < 2:
        return None
    chance = 1.0 - 1.0 / k
    return Training(c.name, tuple(float(e) for e in errors if e is not None), chance, chance - margin)


# ------------------------------------------------------------------------------------------------ plateau
@dataclass(frozen=True)
class Plateau:
    """The training error of one condition at ``start`` (the last evaluation at or before 90% of the run)
    and at ``end``, on the same images, one value per seed (seeds in the same order on both)."""

    condition: str
    start: int
    end: int
    before: Estimate
    after: Estimate


def plateau(c: Condition, fraction: float = PLATEAU_FRACTION) -> Plateau | None:
    """The plateau reading of ``c``, or ``None`` unless every seed evaluated the training subset before the
    last ``fraction`` of its run and at its end."""
    starts, ends, before, after = [], [], [], []
    for r in c.runs:
        curve = dict(r.curves.get("train_eval", ()))
        steps = int(r.config.get("steps") or r.step)
        early = [s for s in curve if s <= steps - fraction * steps]
        if steps not in curve or not early:
            return None
        s = max(early)
        starts.append(s)
        ends.append(steps)
        before.append(curve[s])
        after.append(curve[steps])
    if not starts:
        return None
    k = len(c.diverged)  # counted in the sentence's seeds, not compared
    return Plateau(
        c.name, min(starts), max(ends), Estimate(tuple(before), 0, k), Estimate(tuple(after), 0, k)
    )


# ------------------------------------------------------------------------------------------ depth effect
def depth_effect(deep: Condition, shallow: Condition, split: str) -> Estimate | None:
    """deep − shallow of ``split``'s final error, one value per seed both conditions ran."""
    a = {r.seed: r.final.get(split) for r in deep.runs}
    b = {r.seed: r.final.get(split) for r in shallow.runs}
    values = []
    for seed in sorted(set(a) & set(b)):
        x, y = a[seed], b[seed]
        values.append(None if x is None or y is None else x - y)
    # A seed where either net diverged has no depth effect: counted, not compared.
    diverged = len({r.seed for r in deep.diverged} | {r.seed for r in shallow.diverged})
    return estimate(values, diverged=diverged)


# ------------------------------------------------------------------------------------ per-image results
def test_correct(
    a: Condition, b: Condition, load: LoadCorrect | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Per-image test correctness of ``a`` and ``b``, seed-matched (the seeds both ran), from each run's
    ``correct-test.npy``; ``None`` unless every matched run wrote it, on the same number of images."""
    if load is None:
        load = load_correct
    seeds = sorted({r.seed for r in a.runs} & {r.seed for r in b.runs})
    if not seeds:
        return None
    by_a, by_b = {r.seed: r for r in a.runs}, {r.seed: r for r in b.runs}
    xs = [load(by_a[s].run_dir, "test") for s in seeds]
    ys = [load(by_b[s].run_dir, "test") for s in seeds]
    xa = [np.asarray(x, dtype=bool) for x in xs if x is not None]
    ya = [np.asarray(y, dtype=bool) for y in ys if y is not None]
    if len(xa) != len(seeds) or len(ya) != len(seeds):
        return None
    if any(x.shape != y.shape for x, y in zip(xa, ya, strict=True)):
        return None
    return xa, ya
