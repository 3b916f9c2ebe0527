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
* **convergence** — the one rule of every study (:mod:`depthlab.studies.common`): the running training
  error over the last 10% of iterations against the 10% before, paired by seed.
* **depth effect** — deep − shallow of one seed (the two runs share the seed, hence the data order), one
  value per seed; compared between with and without BN to ask whether batch norm changes what depth does.
"""

from __future__ import annotations

from dataclasses import dataclass

from depthlab.stats import Estimate, estimate
from depthlab.studies.results import Condition, StudyResult
from depthlab.studies.vgg_depth.presets import BASE, DEPTH, DEPTH_LADDER, VGGDepthPreset

__all__ = [
    "Net",
    "nets",
    "preset_of",
    "Training",
    "training",
    "ladder",
    "depth_effect",
]


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
