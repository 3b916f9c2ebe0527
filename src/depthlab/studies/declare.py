"""What a study declares: its presets, its grid of runs, its probe, and how it draws findings and answers.

A :class:`Study` declares
* ``presets`` — frozen :class:`Recipe` subclasses (the training recipe and the study's own factors);
* ``grid(preset, seed_list)`` — the runs: one :class:`RunSpec` (model × settings × seed) each;
* ``probe`` — diagnostics recorded on one fixed held-out batch at initialisation, at every evaluation step
  during training, and at the end (``None``: none), from a :class:`ProbeContext`;
* ``prepare`` — study-level analyses that need no training (e.g. shattered gradients at init), idempotent;
* ``findings(result)`` — :class:`Finding` sentences computed from the runs, each naming its numbers, when they
  were measured, and its margin; ``answers(result, findings)`` — its questions, each an :class:`Answer`;
* ``sections(result)`` — what the report draws (tables and figures), from the runs only.

Nothing here runs or reads a study: :mod:`.results` reads a study directory back, :mod:`.worker` and
:mod:`.run` run one, :mod:`.plan` says where one stands and what it would cost.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from depthlab.errors import DepthlabError
from depthlab.present.types import Section
from depthlab.stats import ClaimTest
from depthlab.train import TrainConfig
from depthlab.train.config import parse_value

if TYPE_CHECKING:
    from depthlab.studies.results import StudyResult

__all__ = [
    "Answer",
    "FINDING_OUTCOMES",
    "Finding",
    "Probe",
    "ProbeContext",
    "Progress",
    "Recipe",
    "RunSpec",
    "Study",
    "StudyError",
    "VERDICTS",
    "apply_preset_overrides",
    "preset_from_dict",
    "preset_to_dict",
    "seed_list",
]

Progress = Callable[[str], None]  # a line of progress, for the command line to print


class StudyError(DepthlabError, ValueError):
    """A study that cannot run as asked: unknown study or preset key, a directory holding another study."""


# ------------------------------------------------------------------------------------------------ recipe
@dataclass(frozen=True)
class Recipe:
    """The training recipe every run of a study shares. Iterations are optimizer steps of ``batch_size``.

    ``train_subset``: train on a fixed random subset of that many training images (None: all).
    ``test_subset``: evaluate a fixed random subset of that many test images (None: all).
    ``eval_subset``: intermediate evaluations use the first N images of each split; the last evaluates all.
    ``eval_train``: also evaluate the training (sub)set in eval mode — the training error of Fig. 6.
    ``test_at_end``: evaluate the test split only at the end (held-out curves come from validation).
    ``full``: train on every training image (no validation split; the test split is then evaluated at
    every evaluation, as for the ResNet paper's Table 6).

    The bounds the answers are judged by, fixed before any data were seen (issue 23; a change after results
    were seen is recorded in the study's ``results/<study>/NOTES.md``):

    * ``plateau_bound`` — a net is *flat* at the end of training when its running training error changed by
      less than this (a fraction: 0.005 is half a point) between the last 10% of iterations and the 10%
      before, by TOST (:mod:`depthlab.studies.common`);
    * ``margin`` — a relative margin: "no higher than", "does not improve" and "the same" mean within this
      fraction of the reference condition's error. 0.10 is the smallest gain on error that the papers these
      studies test report as real: VGG's A → D, 29.6% → 27.0% top-1 (Table 3), a 9.6% relative gain — and
      about half the ResNet paper's ResNet-20 → 56 gap on CIFAR-10 (8.75% → 6.97%, Table 6).
    """

    name: str = "custom"
    dataset: str = "fashion-mnist"
    steps: int = 400
    batch_size: int = 128
    lr: float = 0.1
    schedule: str = "onecycle"
    milestones: tuple[float, ...] = ()
    warmup: int | None = None
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    augment: bool = False
    val_size: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    eval_every: int = 100
    eval_subset: int | None = None
    eval_train: bool = True
    test_at_end: bool = True
    full: bool = False
    normalize: str = "channel"
    image_size: int | None = None
    label_smoothing: float = 0.0
    log_every: int = 20
    seeds: int = 2
    diag_batch: int = 128
    eval_batch_size: int = 500
    plateau_bound: float = 0.005
    margin: float = 0.10
    note: str = ""

    # Fields that judge the runs rather than produce them: a study directory is read with the values of its
    # preset as the code declares them now (and its recorded --set values), so a bound fixed after a run was
    # trained applies to it, and changing one never makes a directory "hold different settings".
    JUDGING: ClassVar[tuple[str, ...]] = ("plateau_bound", "margin", "note")

    def __post_init__(self) -> None:
        for key in (
            "steps",
            "batch_size",
            "eval_every",
            "log_every",
            "seeds",
            "diag_batch",
            "eval_batch_size",
        ):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise StudyError(f"{key} must be a positive integer, got {value!r}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise StudyError(f"lr must be a positive number, got {self.lr!r}")
        for key in ("plateau_bound", "margin"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or not math.isfinite(value) or not 0 < value < 1:
                raise StudyError(f"{key} must be a fraction between 0 and 1, got {value!r}")

    def describe(self) -> str:
        aug = "crop + flip" if self.augment else "no augmentation"
        sched = self.schedule + (
            f" ÷10 at {', '.join(f'{m:g}' for m in self.milestones)}" if self.milestones else ""
        )
        data = f"{self.dataset}" + (
            f" (a fixed {self.train_subset:,}-image training subset)" if self.train_subset else ""
        )
        return (
            f"{data}, {self.steps} iterations of batch {self.batch_size}, lr {self.lr:g} ({sched}), momentum "
            f"{self.momentum:g}, weight decay {self.weight_decay:g}, {aug}, {self.seeds} seed(s)"
        )

    def train_config(
        self,
        model: str,
        seed: int,
        *,
        model_kwargs: Mapping[str, Any] | None = None,
        device: str = "auto",
        data_dir: str | None = None,
        **changes: Any,
    ) -> Any:
        """The :class:`depthlab.train.TrainConfig` of one run; ``changes`` override single fields."""

        values: dict[str, Any] = dict(
            model=model,
            model_kwargs=dict(model_kwargs or {}),
            data=self.dataset,
            data_dir=data_dir,
            image_size=self.image_size,
            val_size=0 if self.full else self.val_size,
            train_subset=self.train_subset,
            test_subset=self.test_subset,
            epochs=None,
            steps=self.steps,
            batch_size=self.batch_size,
            optimizer="sgd",
            lr=self.lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
            decay_norm_and_bias=True,
            schedule=self.schedule,
            milestones=self.milestones,
            warmup=self.warmup,
            label_smoothing=self.label_smoothing,
            augment=self.augment,
            eval_every=self.eval_every,
            eval_subset=self.eval_subset,
            eval_train=self.eval_train,
            test_at_end=self.test_at_end and not self.full,
            normalize=self.normalize,
            log_every=self.log_every,
            eval_batch_size=self.eval_batch_size,
            checkpoint_every=self.eval_every,
            seed=seed,
            device=device,
        )
        values.update(changes)
        return TrainConfig(**values)


def apply_preset_overrides(preset: Recipe, overrides: Iterable[str]) -> Recipe:
    """``preset`` with each ``key=value`` applied (typed by the field; unknown keys rejected)."""
    hints = typing.get_type_hints(type(preset))
    changes: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise StudyError(f"override {item!r} is not KEY=VALUE")
        if key not in hints or key == "name":
            known = ", ".join(k for k in hints if k != "name")
            raise StudyError(f"unknown preset key {key!r}; known keys: {known}")
        changes[key] = parse_value(key, raw, hints[key])
    try:
        return dataclasses.replace(preset, **changes)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, DepthlabError):
            raise
        raise StudyError(f"invalid preset override: {exc}") from None


def preset_to_dict(preset: Recipe) -> dict[str, Any]:
    out = dataclasses.asdict(preset)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def preset_from_dict(cls: type[Recipe], values: Mapping[str, Any]) -> Recipe:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            continue  # a field an older depthlab wrote and this one dropped
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


# ------------------------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class RunSpec:
    """One run of a study: trained into ``DIR/runs/NAME``; ``condition`` groups seeds for aggregation and
    ``factors`` are the study's variables for this run (e.g. {"depth": 56, "residual": False})."""

    name: str
    condition: str
    factors: Mapping[str, Any]
    seed: int
    config: Any  # TrainConfig


@dataclass(frozen=True)
class ProbeContext:
    """What a probe gets: the model as it stands, the diagnostics batch, and when it is measured."""

    model: Any  # nn.Module
    images: Any  # N×C×H×W normalised, on the model's device
    labels: Any  # N int64
    moment: str  # "init", "step" or "end"
    step: int
    spec: RunSpec
    bundle: Any  # DataBundle


Probe = Callable[[ProbeContext], dict[str, Any]]


FINDING_OUTCOMES = ("higher", "lower", "not resolved", "equivalent", "unknown")
VERDICTS = ("supported", "contradicted", "not resolved")


@dataclass(frozen=True)
class Finding:
    """A sentence and what it rests on.

    ``key``: a stable name of what is compared (e.g. ``train_error:plain-56:plain-20``), the same in every
    directory of the study, so a replication can be matched to it. ``question``: the :class:`Answer` id it
    is evidence for. ``numbers``: name → value (a :class:`~depthlab.stats.Difference` as a dict for
    a comparison). ``when``: ``init``/``during``/``end``. ``outcome``: for a comparison, one of
    :data:`FINDING_OUTCOMES` (``higher``/``lower`` of the first named condition, ``not resolved``,
    ``equivalent`` from an equivalence test, ``unknown`` from non-finite numbers); ``None`` for a finding
    that compares nothing (a definition, a measured value).
    """

    text: str
    topic: str
    when: str
    numbers: Mapping[str, Any] = field(default_factory=dict)
    outcome: str | None = None
    key: str = ""
    question: str = ""

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in FINDING_OUTCOMES:
            raise StudyError(
                f"unknown finding outcome {self.outcome!r}; choose from: {', '.join(FINDING_OUTCOMES)}"
            )

    @property
    def resolved(self) -> bool:
        return self.outcome in ("higher", "lower", "equivalent")

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "question": self.question,
            "text": self.text,
            "topic": self.topic,
            "when": self.when,
            "outcome": self.outcome,
            "numbers": dict(self.numbers),
        }


@dataclass(frozen=True)
class Answer:
    """One question a study asks, answered first in its report and README.

    ``verdict`` is about the paper's (or the lecture notes') claim. Each question rests on one primary test,
    ``test`` (:class:`~depthlab.stats.ClaimTest`, of the finding ``primary``); a study's answers are
    Holm-adjusted together (``p_holm``, :func:`depthlab.studies.common.finalize`), and the verdict is
    ``supported`` or ``contradicted`` only when the adjusted p-value is below 0.05, else ``not resolved``.
    ``numbers``: the key numbers with their 95% CIs, one line of text; ``paper``: what the paper claims;
    ``evidence``: the keys of the findings it rests on (listed under it; every one but ``primary`` is
    secondary). ``budget``: what the answer holds for ("after 240 iterations of batch 128 …", "at
    initialisation"); ``states``: each compared net's state at the end of training (still falling, flat, …).
    """

    id: str
    question: str
    verdict: str
    numbers: str
    paper: str
    evidence: tuple[str, ...] = ()
    primary: str = ""
    test: ClaimTest | None = None
    p_holm: float | None = None
    budget: str = ""
    states: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise StudyError(f"unknown verdict {self.verdict!r}; choose from: {', '.join(VERDICTS)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "verdict": self.verdict,
            "numbers": self.numbers,
            "paper": self.paper,
            "evidence": list(self.evidence),
            "primary": self.primary,
            "test": self.test.to_dict() if self.test is not None else None,
            "p_holm": self.p_holm,
            "budget": self.budget,
            "states": dict(self.states),
        }


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    claim: str  # one paragraph: what the study tests, against which paper
    presets: Mapping[str, Recipe]
    # (preset, seed_list, device, data_dir): seed_list holds the seeds themselves, Recipe.seeds their count
    grid: Callable[[Any, Sequence[int], str, str | None], list[RunSpec]]
    findings: Callable[[StudyResult], list[Finding]]
    sections: Callable[[StudyResult], list[Section]]
    # The study's questions, answered from its findings (``answers(result, findings)``): first in the report.
    answers: Callable[[StudyResult, Sequence[Finding]], list[Answer]] | None = None
    probe: Probe | None = None
    prepare: Callable[[Any, Path, Any, Any, Any, Sequence[int]], None] | None = (
        None  # (preset, root, bundle, images, labels, seed_list)
    )
    # (result, device): post-training analyses by name, run on the study's device (a torch.device).
    analyses: Mapping[str, Callable[[StudyResult, Any], None]] = field(default_factory=dict)


def seed_list(seeds: int, offset: int = 0) -> range:
    """The seeds of a study: ``seeds`` consecutive integers from ``offset`` (a replication on fresh seeds
    uses an offset past the seeds of the run it replicates)."""
    return range(offset, offset + seeds)
