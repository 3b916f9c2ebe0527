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
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from depthlab.errors import DepthlabError
from depthlab.present.types import Section
from depthlab.stats import ClaimTest
from depthlab.train import TrainConfig
from depthlab.train.config import config_from_dict, config_to_dict, parse_value

if TYPE_CHECKING:
    from depthlab.studies.results import StudyResult

__all__ = [
    "Answer",
    "FINDING_OUTCOMES",
    "Finding",
    "GPU_SCALE",
    "Probe",
    "ProbeContext",
    "Progress",
    "PER_RUN",
    "Recipe",
    "RunSpec",
    "STUDY_TRAIN",
    "TRAIN_FIELDS",
    "Study",
    "StudyError",
    "VERDICTS",
    "apply_preset_overrides",
    "preset_from_dict",
    "preset_keys",
    "preset_to_dict",
    "seed_list",
]

Progress = Callable[[str], None]  # a line of progress, for the command line to print


class StudyError(DepthlabError, ValueError):
    """A study that cannot run as asked: unknown study or preset key, a directory holding another study."""


# ------------------------------------------------------------------------------------------------ recipe
# The training settings a study's runs share unless its preset changes them (the studies' own base, not
# TrainConfig's defaults, which are the single-run recipe of `depthlab train`): plain SGD with momentum and
# decay on every parameter, a one-cycle lr of 0.1, no augmentation or label smoothing, evaluations every 100
# iterations that include the eval-mode training error, the test split only at the end.
STUDY_TRAIN = TrainConfig(
    epochs=None, steps=400, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=False,
    weight_decay=1e-4, decay_norm_and_bias=True, schedule="onecycle", label_smoothing=0.0, augment=False,
    eval_every=100, eval_train=True, test_at_end=True, log_every=20, eval_batch_size=500,
)  # fmt: skip
# What every study's ``gpu`` preset changes alike (each adds its own nets, budget and learning rate): the whole
# training split less a 5,000-image validation split, random crops and flips, evaluations on 5,000 images in
# batches of 2,000 (a GPU holds them; the CPU presets' 500 would leave it idle), six seeds.
GPU_SCALE: Mapping[str, Any] = MappingProxyType({
    "train_subset": None, "val_size": 5000, "augment": True, "eval_subset": 5000, "eval_batch_size": 2000,
    "seeds": 6,
})  # fmt: skip
# TrainConfig fields that each run of the grid sets itself, never a preset.
PER_RUN = ("model", "model_kwargs", "seed", "device", "data_dir", "epochs", "checkpoint_every", "init_from",
           "init_from_layers")  # fmt: skip
TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in PER_RUN)


@dataclass(frozen=True)
class Recipe:
    """A study's preset: the :class:`~depthlab.train.TrainConfig` every run shares (``train``; each run sets
    its model, seed, device and data directory) plus the study's own fields. Iterations are optimizer steps
    of ``train.batch_size``. The training fields read through the preset (``preset.steps`` is
    ``preset.train.steps``), and :meth:`replace` changes either kind by name, so a preset is written as the
    changes it makes to another: ``BASE.replace(name="quick", steps=240, seeds=6)``.

    ``full``: train on every training image (no validation split; the test split is then evaluated at
    every evaluation, as for the ResNet paper's Table 6). ``seeds``: how many seeds (their count; a grid
    gets the seeds themselves). ``diag_batch``: held-out images of the probes. ``note``: why the preset
    exists, in at most two sentences (its history is in the study's notes, ``results/<study>/NOTES.md``).

    The bounds the answers are judged by, fixed before any data were seen (issue 23; a change after results
    were seen is recorded in the study's notes):

    * ``plateau_bound`` — a net is *flat* at the end of training when its running training error changed by
      less than this (a fraction: 0.005 is half a point) between the last 10% of iterations and the 10%
      before, by TOST (:mod:`depthlab.studies.common`);
    * ``margin`` — a relative margin: "no higher than", "does not improve" and "the same" mean within this
      fraction of the reference condition's error. 0.10 is the smallest gain on error that the papers these
      studies test report as real: VGG's A → D, 29.6% → 27.0% top-1 (Table 3), a 9.6% relative gain — and
      about half the ResNet paper's ResNet-20 → 56 gap on CIFAR-10 (8.75% → 6.97%, Table 6).
    """

    name: str = "custom"
    train: TrainConfig = STUDY_TRAIN
    full: bool = False
    seeds: int = 2
    diag_batch: int = 128
    plateau_bound: float = 0.005
    margin: float = 0.10
    note: str = ""

    # Fields that judge the runs rather than produce them: a study directory is read with the values of its
    # preset as the code declares them now (and its recorded --set values), so a bound fixed after a run was
    # trained applies to it, and changing one never makes a directory "hold different settings".
    JUDGING: ClassVar[tuple[str, ...]] = ("plateau_bound", "margin", "note")

    def __getattr__(self, name: str) -> Any:
        # Called only for names the preset lacks: the shared training fields read through it.
        if name in TRAIN_FIELDS:
            return getattr(object.__getattribute__(self, "train"), name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainConfig):
            raise StudyError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        if self.train.steps is None or self.train.epochs is not None:
            raise StudyError("a study's runs are counted in iterations: set steps, not epochs")
        for key in ("seeds", "diag_batch"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise StudyError(f"{key} must be a positive integer, got {value!r}")
        for key in ("plateau_bound", "margin"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or not math.isfinite(value) or not 0 < value < 1:
                raise StudyError(f"{key} must be a fraction between 0 and 1, got {value!r}")

    def replace(self, **changes: Any) -> Recipe:
        """This preset with ``changes``: each a field of the preset or of its shared training config."""
        own = {f.name for f in dataclasses.fields(self)}
        mine = {k: v for k, v in changes.items() if k in own}
        train = {k: v for k, v in changes.items() if k not in own}
        unknown = [k for k in train if k not in TRAIN_FIELDS]
        if unknown:
            raise StudyError(
                f"unknown preset key {unknown[0]!r}; known keys: {', '.join(preset_keys(type(self)))}"
            )
        if train:
            mine["train"] = dataclasses.replace(mine.get("train", self.train), **train)
        return dataclasses.replace(self, **mine)

    def describe(self) -> str:
        t = self.train
        aug = "crop + flip" if t.augment else "no augmentation"
        sched = t.schedule + (f" ÷10 at {', '.join(f'{m:g}' for m in t.milestones)}" if t.milestones else "")
        data = f"{t.data}" + (
            f" (a fixed {t.train_subset:,}-image training subset)" if t.train_subset else ""
        )
        return (
            f"{data}, {t.steps} iterations of batch {t.batch_size}, lr {t.lr:g} ({sched}), momentum "
            f"{t.momentum:g}, weight decay {t.weight_decay:g}, {aug}, {self.seeds} seed(s)"
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
    ) -> TrainConfig:
        """The :class:`depthlab.train.TrainConfig` of one run: the shared ``train`` with the run's model,
        seed, device and data directory; ``changes`` override single fields. A checkpoint is written at every
        evaluation; ``full`` drops the validation split and evaluates the test split throughout."""
        t = self.train
        return dataclasses.replace(
            t, model=model, model_kwargs=dict(model_kwargs or {}), seed=seed, device=device, data_dir=data_dir,
            val_size=0 if self.full else t.val_size, test_at_end=t.test_at_end and not self.full,
            checkpoint_every=t.eval_every, **changes,
        )  # fmt: skip


def preset_keys(cls: type[Recipe]) -> list[str]:
    """The keys ``--set`` takes for a preset of ``cls``: its own fields (not ``name``/``train``) and the
    shared training fields."""
    own = [f.name for f in dataclasses.fields(cls) if f.name not in ("name", "train")]
    return [*own, *(k for k in TRAIN_FIELDS if k not in own)]


def apply_preset_overrides(preset: Recipe, overrides: Iterable[str]) -> Recipe:
    """``preset`` with each ``key=value`` applied (typed by its field, of the preset or of its training
    config; unknown keys rejected, naming the known ones)."""
    own = typing.get_type_hints(type(preset))
    train_hints = typing.get_type_hints(TrainConfig)
    changes: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise StudyError(f"override {item!r} is not KEY=VALUE")
        hint = own.get(key) if key not in ("name", "train", "JUDGING") else None
        if hint is None and key in TRAIN_FIELDS:
            hint = train_hints[key]
        if hint is None:
            raise StudyError(
                f"unknown preset key {key!r}; known keys: {', '.join(preset_keys(type(preset)))}"
            )
        changes[key] = parse_value(key, raw, hint)
    try:
        return preset.replace(**changes)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, DepthlabError):
            raise StudyError(f"invalid preset override: {exc}") from None
        raise StudyError(f"invalid preset override: {exc}") from None


def preset_to_dict(preset: Recipe) -> dict[str, Any]:
    """The preset as study.json records it: its own fields, and ``train`` as config.json writes one."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(preset):
        value = getattr(preset, f.name)
        out[f.name] = (
            config_to_dict(value) if f.name == "train" else list(value) if isinstance(value, tuple) else value
        )
    return out


def preset_from_dict(cls: type[Recipe], values: Mapping[str, Any]) -> Recipe:
    """A preset from study.json values. A preset written before issue 24 is flat (its training fields beside
    its own, the dataset under ``dataset``): those fields apply to :data:`STUDY_TRAIN`, which holds what the
    studies' runs used then. A key this depthlab no longer knows is dropped."""
    own = {f.name for f in dataclasses.fields(cls)}
    recorded = values.get("train")
    train = dict(recorded) if isinstance(recorded, Mapping) else {}
    base = config_to_dict(STUDY_TRAIN) if not isinstance(recorded, Mapping) else {}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key == "train":
            continue
        if key == "dataset":  # the old name of the dataset field
            train["data"] = value
        elif key in own:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        elif key in TRAIN_FIELDS:
            train[key] = value
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    merged = {k: v for k, v in {**base, **train}.items() if k in known}
    kwargs["train"] = config_from_dict(merged)
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
