"""The study engine: a study is declared data; this module runs it, reads it back and aggregates it.

A :class:`Study` declares
* ``presets`` — frozen :class:`Recipe` subclasses (the training recipe and the study's own factors);
* ``grid(preset, seeds)`` — the runs: one :class:`RunSpec` (model × settings × seed) each;
* ``probe`` — diagnostics recorded on one fixed held-out batch at initialisation, at every evaluation step
  during training, and at the end (``None``: none);
* ``prepare`` — study-level analyses that need no training (e.g. shattered gradients at init), idempotent;
* ``findings(result)`` — sentences computed from the runs, each naming its numbers, when they were
  measured, and its margin;
* ``sections(result)`` — what the report draws (tables and figures), from the runs only.

Layout of a study directory::

    DIR/study.json             {"study", "preset": {...}, "seeds", "overrides"}: a re-run must match it
    DIR/runs/NAME/             one ordinary training run directory per RunSpec (see depthlab.train.rundir),
                               plus diagnostics.json: {"init": {...}, "steps": {"STEP": {...}}, "end": {...}}
    DIR/analysis/*.json        study-level analyses (``prepare``) and post-training analyses (--analyses)
    DIR/results.json           see :func:`results_json`

Running: every run of the grid is trained (or resumed from its last checkpoint, or skipped when finished)
by an *executor*: ``local`` runs them one after another in this process; ``ray`` submits each run as a Ray
task (``pip install depthlab[ray]``) with its CPU/GPU request — the study directory must be on a path every
node sees, and a failed task is retried from its checkpoint. Several processes may work on one study
directory at once (the same command started N times, on one machine or on machines sharing the file
system): each run is locked by the process training it (:mod:`depthlab.train.runlock`), a local worker
trains the runs nobody holds and then waits for the others (taking over any whose holder died), and the
study-level steps (study.json, ``prepare``, results.json, analyses) run under a study lock, one worker at a
time. Ctrl-C stops after the current run's checkpoint; running the same command again resumes.
results.json is rebuilt from the run directories every time (nothing else is stored).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depthlab.errors import DepthlabError
from depthlab.io import read_json, read_number, write_json
from depthlab.present.types import ReportFigure, ReportTable, Section
from depthlab.runtime import seed_everything, select_device
from depthlab.stats import Estimate, estimate
from depthlab.train.config import parse_value

__all__ = [
    "StudyError",
    "Recipe",
    "RunSpec",
    "ProbeContext",
    "Study",
    "StudyRun",
    "Condition",
    "StudyResult",
    "Finding",
    "Section",
    "ReportFigure",
    "ReportTable",
    "apply_preset_overrides",
    "run_study",
    "run_one",
    "read_study",
    "read_run",
    "find_run_dirs",
    "results_json",
    "reproduce_commands",
    "train_command",
    "initial_model",
    "EXECUTORS",
    "HELD",
    "RunState",
    "study_status",
    "recorded_settings",
    "RecordedSettings",
    "status_findings",
    "PlannedRun",
    "StepTiming",
    "StudyPlan",
    "plan_study",
]

FINISHED = ("completed", "diverged")  # a re-run skips these (a diverged run would diverge again)
HELD = "held"  # run_one(wait=False): another live process is training the run
EXECUTORS = ("local", "ray")


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
    note: str = ""

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "eval_every", "log_every", "seeds", "diag_batch", "eval_batch_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise StudyError(f"{key} must be a positive integer, got {value!r}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise StudyError(f"lr must be a positive number, got {self.lr!r}")

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
        from depthlab.train import TrainConfig

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

    ``verdict`` is about the paper's (or the lecture notes') claim: ``supported`` or ``contradicted`` only
    from resolved comparisons, otherwise ``not resolved``. ``numbers``: the key numbers with their 95% CIs,
    one line of text; ``paper``: what the paper claims; ``evidence``: the keys of the findings it rests on
    (they are listed under it).
    """

    id: str
    question: str
    verdict: str
    numbers: str
    paper: str
    evidence: tuple[str, ...] = ()

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
        }


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    claim: str  # one paragraph: what the study tests, against which paper
    presets: Mapping[str, Recipe]
    grid: Callable[[Any, Sequence[int], str, str | None], list[RunSpec]]  # (preset, seeds, device, data_dir)
    findings: Callable[[StudyResult], list[Finding]]
    sections: Callable[[StudyResult], list[Section]]
    # The study's questions, answered from its findings (``answers(result, findings)``): first in the report.
    answers: Callable[[StudyResult, Sequence[Finding]], list[Answer]] | None = None
    probe: Probe | None = None
    prepare: Callable[[Any, Path, Any, Any, Any, Sequence[int]], None] | None = (
        None  # (preset, root, bundle, images, labels, seeds)
    )
    # (result, device): post-training analyses by name, run on the study's device (a torch.device).
    analyses: Mapping[str, Callable[[StudyResult, Any], None]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ reading runs
@dataclass(frozen=True)
class StudyRun:
    """One run directory of a study, as read back (nothing is recomputed)."""

    run_dir: Path
    name: str
    model: str
    condition: str
    factors: Mapping[str, Any]
    seed: int
    status: str  # from summary.json; "missing" if the run never wrote one
    step: int
    curves: Mapping[str, tuple[tuple[int, float], ...]]  # split → ((step, error), ...)
    final: Mapping[str, float]  # split → error at the last row of that split
    images: Mapping[str, int]  # split → images behind the final error
    wall_seconds: float
    diagnostics: Mapping[str, Any]  # diagnostics.json as stored
    config: Mapping[str, Any]
    environment: Mapping[str, Any]
    data: Mapping[str, Any]
    images_per_s: float
    # summary.json's record of a diverged run: {"step", "loss", ...} (None when it did not diverge)
    diverged: Mapping[str, Any] | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def label(self) -> str:
        return self.condition


def read_run(run_dir: str | Path, spec: RunSpec | None = None) -> StudyRun:
    """A run directory as a :class:`StudyRun`; without ``spec`` the condition is the model name."""
    folder = Path(run_dir)
    if not (folder / "config.json").is_file():
        raise StudyError(f"{folder} is not a run directory (no config.json)")
    config = read_json(folder / "config.json")
    summary = read_json(folder / "summary.json") if (folder / "summary.json").is_file() else {}
    environment = read_json(folder / "environment.json") if (folder / "environment.json").is_file() else {}
    rows: list[dict[str, Any]] = []
    if (folder / "metrics.jsonl").is_file():
        for line in (folder / "metrics.jsonl").read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line torn by a kill mid-write
                continue
    curves: dict[str, dict[int, float]] = {}
    images: dict[str, int] = {}
    for r in rows:
        if "error" in r and "split" in r:  # a non-finite error was written as null: read back as NaN, unknown
            curves.setdefault(r["split"], {})[int(r["step"])] = read_number(r["error"])
            if "images" in r:
                images[r["split"]] = int(r["images"])
    sorted_curves = {k: tuple(sorted(v.items())) for k, v in curves.items()}
    final = {k: v[-1][1] for k, v in sorted_curves.items() if v}
    if "train" in sorted_curves:
        images["train"] = int(config.get("log_every", 0)) * int(config.get("batch_size", 0))
    diagnostics = read_json(folder / "diagnostics.json") if (folder / "diagnostics.json").is_file() else {}
    train_curve = sorted_curves.get("train", ())
    return StudyRun(
        run_dir=folder,
        name=spec.name if spec else folder.name,
        model=str(config["model"]),
        condition=spec.condition if spec else str(config["model"]),
        factors=dict(spec.factors) if spec else {},
        seed=int(config.get("seed", 0)),
        status=str(summary.get("status", "missing")),
        step=int(summary.get("step", train_curve[-1][0] if train_curve else 0)),
        curves=sorted_curves,
        final=final,
        images=images,
        wall_seconds=read_number(summary.get("wall_time_s", 0.0)),
        diagnostics=diagnostics,
        config=config,
        environment=environment,
        data=dict(summary.get("data", {})),
        images_per_s=read_number(summary.get("images_per_s", 0.0)),
        diverged=summary.get("diverged") if str(summary.get("status")) == "diverged" else None,
    )


def find_run_dirs(directory: str | Path) -> list[Path]:
    """Run directories (holding config.json) at ``directory``, in ``directory/runs/*`` or ``directory/*``."""
    root = Path(directory)
    if not root.is_dir():
        raise StudyError(f"no such directory: {root}")
    if (root / "config.json").is_file():
        return [root]
    found = sorted(p.parent for p in root.glob("runs/*/config.json"))
    return found or sorted(p.parent for p in root.glob("*/config.json"))


# ------------------------------------------------------------------------------------------- aggregates
@dataclass(frozen=True)
class Condition:
    """One condition of the grid aggregated over its seeds.

    ``runs``: the runs whose numbers are compared — every run that did not diverge (finished or not);
    ``diverged``: the runs whose loss or weights became non-finite. A diverged run stopped early, so its
    numbers say nothing about the trained net: it is left out of every comparison and counted instead
    (:attr:`Estimate.diverged`, :func:`status_findings`)."""

    name: str
    factors: Mapping[str, Any]
    runs: tuple[StudyRun, ...]
    diverged: tuple[StudyRun, ...] = ()

    def estimate(self, values: Sequence[float | None], images: int = 0) -> Estimate | None:
        """An :class:`Estimate` of one value per compared run, counting this condition's diverged seeds."""
        return estimate(values, images, diverged=len(self.diverged))

    def error(self, split: str) -> Estimate | None:
        """The final error of ``split`` ("train" running, "train_eval", "val", "test") over seeds."""
        values = [r.final.get(split) for r in self.runs]
        images = max((r.images.get(split, 0) for r in self.runs), default=0)
        # Every seed diverged: an estimate without values that counts them (a run may diverge before its first
        # evaluation of the split), so that comparisons with this condition say why they have no interval.
        return self.estimate(values, images)

    @property
    def seeds(self) -> int:
        """Seeds whose numbers are compared (not diverged)."""
        return len(self.runs)


@dataclass(frozen=True)
class StudyResult:
    study: Study | None  # None for a directory of runs that no study wrote
    preset: Recipe | None
    seeds: int
    overrides: tuple[str, ...]
    root: Path
    runs: tuple[StudyRun, ...]
    findings: tuple[Finding, ...] = ()
    answers: tuple[Answer, ...] = ()
    seed_offset: int = 0

    def conditions(self) -> list[Condition]:
        order: dict[str, list[StudyRun]] = {}
        for r in self.runs:
            order.setdefault(r.condition, []).append(r)
        out = []
        for name, rs in order.items():
            rs = sorted(rs, key=lambda r: r.seed)
            compared = tuple(r for r in rs if r.status != "diverged")
            diverged = tuple(r for r in rs if r.status == "diverged")
            out.append(Condition(name, rs[0].factors, compared, diverged))
        return out

    def condition(self, name: str) -> Condition | None:
        return next((c for c in self.conditions() if c.name == name), None)

    @property
    def dataset(self) -> str:
        if self.preset is not None:
            return self.preset.dataset
        return str(self.runs[0].config.get("data", "?")) if self.runs else "?"

    def analysis(self, name: str) -> Any:
        path = self.root / "analysis" / f"{name}.json"
        return read_json(path) if path.is_file() else None


@dataclass(frozen=True)
class RecordedSettings:
    """What a study directory was made with, from its study.json: the study, the preset as it ran (``--set``
    values applied, ``seeds`` the count that ran), the seeds' offset and the ``--set`` values themselves."""

    study: Study
    preset: Recipe
    seeds: int
    seed_offset: int
    overrides: tuple[str, ...]


def recorded_settings(directory: str | Path, study: Study | None = None) -> RecordedSettings | None:
    """``directory``'s study.json read back (``None`` without one): what reading a study directory needs,
    never the command line's settings. With ``study``, a directory holding another study is a
    :class:`StudyError`; so is a study.json that cannot be read."""
    path = Path(directory) / "study.json"
    if not path.is_file():
        return None
    try:
        record = read_json(path)
        name = str(record.get("study", "degradation"))  # directories from before other studies existed
        seeds, offset = int(record["seeds"]), int(record.get("seed_offset", 0))
        overrides = tuple(str(o) for o in record.get("overrides", ()))
        values = record["preset"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StudyError(f"{path}: not a readable study.json ({type(exc).__name__}: {exc})") from None
    if study is not None and name != study.name:
        raise StudyError(f"{Path(directory)} holds a {name!r} study, not {study.name!r}; use another --out")
    from depthlab.studies import get_study  # the registry imports this module

    found = study if study is not None else get_study(name)
    kind = type(next(iter(found.presets.values())))
    # The preset's own count is a default; what describe() prints is the count that was run.
    preset = dataclasses.replace(preset_from_dict(kind, values), seeds=seeds)
    return RecordedSettings(found, preset, seeds, offset, overrides)


def read_study(directory: str | Path) -> StudyResult:
    """A study (or any directory of runs) read back from disk; findings are recomputed from the runs."""
    root = Path(directory)
    study = preset = None
    seeds, overrides, offset = 0, (), 0
    specs: dict[str, RunSpec] = {}
    recorded = recorded_settings(root)
    if recorded is not None:
        study, preset, seeds = recorded.study, recorded.preset, recorded.seeds
        overrides, offset = recorded.overrides, recorded.seed_offset
        specs = {s.name: s for s in study.grid(preset, seed_list(seeds, offset), "auto", None)}
    dirs = find_run_dirs(root)
    runs = tuple(read_run(p, specs.get(p.name)) for p in dirs)
    if not runs:
        raise StudyError(f"{root} holds no run directories (looked for config.json in it, runs/*, */)")
    if specs:
        order = {name: i for i, name in enumerate(specs)}
        runs = tuple(sorted(runs, key=lambda r: order.get(r.name, len(order))))
    seeds = seeds or len({r.seed for r in runs})
    result = StudyResult(study, preset, seeds, overrides, root, runs, seed_offset=offset)
    if study is None:
        return result
    findings = tuple(study.findings(result))
    answers = tuple(study.answers(result, findings)) if study.answers is not None else ()
    return dataclasses.replace(result, findings=findings, answers=answers)


def seed_list(seeds: int, offset: int = 0) -> range:
    """The seeds of a study: ``seeds`` consecutive integers from ``offset`` (a replication on fresh seeds
    uses an offset past the seeds of the run it replicates)."""
    return range(offset, offset + seeds)


def results_json(result: StudyResult) -> dict[str, Any]:
    """``results.json``: the study, preset, every run's final errors, each condition's estimates and the
    questions and findings (``answers``: each question with its verdict; ``findings``: the sentences;
    ``evidence``: each finding with its key, question, numbers, time and outcome)."""
    conditions = []
    for c in result.conditions():
        errors = {}
        for split in ("train", "train_eval", "val", "test"):
            e = c.error(split)
            if e is not None:
                errors[split] = {"mean": e.mean, "std": e.std, "values": list(e.values), "images": e.images}
        conditions.append(
            {"condition": c.name, "factors": dict(c.factors), "seeds": c.seeds,
             "diverged": [r.seed for r in c.diverged], "error": errors}
        )  # fmt: skip
    return {
        "study": result.study.name if result.study else None,
        "preset": result.preset.name if result.preset else None,
        "dataset": result.dataset,
        "seeds": result.seeds,
        "seed_list": sorted({r.seed for r in result.runs}),
        "overrides": list(result.overrides),
        "runs": [
            {
                "name": r.name,
                "model": r.model,
                "condition": r.condition,
                "factors": dict(r.factors),
                "seed": r.seed,
                "status": r.status,
                "step": r.step,
                "final_error": dict(r.final),
                "wall_seconds": r.wall_seconds,
                "diverged": dict(r.diverged) if r.diverged is not None else None,
            }
            for r in result.runs
        ],
        "conditions": conditions,
        "answers": [a.to_dict() for a in result.answers],
        "findings": [f.text for f in result.findings],
        "evidence": [f.to_dict() for f in result.findings],
    }


def status_findings(result: StudyResult) -> list[Finding]:
    """What every study says first about its runs: those that have not completed (their numbers are from
    where they stopped) and, per condition, the seeds that diverged — left out of every comparison, each
    named with the step it stopped at and its non-finite value (issue 22)."""
    out: list[Finding] = []
    unfinished = [r for r in result.runs if r.status not in FINISHED]
    if unfinished:
        names = ", ".join(f"{r.condition} (seed {r.seed}, {r.status}, step {r.step})" for r in unfinished)
        out.append(Finding(f"Not every run has completed: {names}; their numbers are from where they stopped.",
                           "status", "end", key="status"))  # fmt: skip
    for c in result.conditions():
        if not c.diverged:
            continue
        total = len(c.runs) + len(c.diverged)
        where = "; ".join(f"seed {r.seed} {_divergence_text(r)}" for r in c.diverged)
        compared = f"on its {c.seeds} other seed{'s' if c.seeds != 1 else ''}" if c.runs else "on no seed"
        fewer = " — fewer than two, so no comparison with it has an interval" if c.seeds < 2 else ""
        out.append(Finding(
            f"{c.name} diverged in {len(c.diverged)} of {total} seeds ({where}). A diverged run stopped where its "
            f"loss or weights became non-finite (its last finite checkpoint is kept), so its numbers are left out "
            f"of every comparison: {c.name} is compared {compared}{fewer}.",
            "status", "during",
            {"condition": c.name, "seeds": total, "compared": c.seeds,
             "diverged": [{"seed": r.seed, **dict(r.diverged or {"step": r.step})} for r in c.diverged]},
            key=f"diverged:{c.name}",
        ))  # fmt: skip
    return out


def _divergence_text(run: StudyRun) -> str:
    """ "at step 7 (training loss inf)" from the run's summary record (older runs: the step it stopped at)."""
    record = dict(run.diverged or {})
    step = record.get("step", run.step)
    if record.get("cause") == "loss" and record.get("value"):
        return f"at step {step} (training loss {record['value']})"
    if record.get("cause") == "parameters":
        return f"at step {step} (non-finite weights: {', '.join(record.get('tensors') or ()) or 'unnamed'})"
    return f"at step {step}"


# ------------------------------------------------------------------------------------------- commands
def reproduce_commands(result: StudyResult, directory: str | Path) -> list[str]:
    """Shell commands that recreate the study directory (or each run of a directory of runs) and its report."""
    d = shlex.quote(str(directory))
    if result.preset is None or result.study is None:
        return [train_command(r.config, r.run_dir) for r in result.runs] + [f"depthlab report {d}"]
    sets = "".join(f" --set {shlex.quote(o)}" for o in result.overrides)
    offset = f" --seed-offset {result.seed_offset}" if result.seed_offset else ""
    return [
        f"depthlab experiment {result.study.name} --preset {result.preset.name} --seeds {result.seeds}{offset}"
        f"{sets} --out {d}",
        f"depthlab report {d}",
    ]


def train_command(config: Mapping[str, Any], run_dir: str | Path) -> str:
    """``depthlab train MODEL --set key=value … --out RUN_DIR`` for every field that differs from the
    :class:`~depthlab.train.TrainConfig` defaults."""
    from depthlab.train import TrainConfig, config_to_dict

    defaults = config_to_dict(TrainConfig())
    parts = ["depthlab", "train", str(config["model"])]

    def text(value: Any) -> str:
        if value is None:
            return "none"
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (list, tuple)):
            return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        return str(value)

    for key, value in config.items():
        if key == "model" or defaults.get(key) == value:
            continue
        if key == "model_kwargs":
            parts += [f"--set=model_kwargs.{k}={json.dumps(v)}" for k, v in dict(value).items()]
        else:
            parts.append(f"--set={key}={text(value)}")
    parts += ["--out", str(run_dir)]
    return " ".join(shlex.quote(p) for p in parts)


# ------------------------------------------------------------------------------------------------ running
Progress = Callable[[str], None]


def _check_study_file(
    root: Path,
    study: Study,
    preset: Recipe,
    seeds: int,
    overrides: Sequence[str],
    seed_offset: int = 0,
    write: bool = True,
) -> None:
    path = root / "study.json"
    record = {
        "study": study.name,
        "preset": preset_to_dict(preset),
        "seeds": seeds,
        "seed_offset": seed_offset,
        "overrides": list(overrides),
    }
    if path.is_file():
        old = read_json(path)
        if old.get("study", "degradation") != study.name:
            raise StudyError(
                f"{root} holds a {old.get('study')!r} study, not {study.name!r}; use another --out"
            )
        # A key an older depthlab did not write takes its default, so an old study directory stays usable.
        stored = preset_to_dict(preset_from_dict(type(preset), old.get("preset", {})))
        # The note documents a preset; it is not a setting, so rewording it keeps old directories valid.
        diff = sorted(k for k in record["preset"] if k != "note" and stored.get(k) != record["preset"][k])
        if int(old.get("seed_offset", 0)) != seed_offset:
            diff.append("seed_offset")
        if diff:
            raise StudyError(
                f"{root} already holds a study with different settings ({', '.join(diff)}); "
                f"use another --out, or the same preset and --set values"
            )
    if write:
        write_json(path, record)


def _status(run_dir: Path) -> str:
    path = run_dir / "summary.json"
    return str(read_json(path).get("status", "missing")) if path.is_file() else "missing"


def initial_model(config: Any, bundle: Any) -> Any:
    """The model a run starts from: seeded and built exactly as :func:`depthlab.train.train` does, so its
    weights equal the run's step-0 weights, warm start included (a test checks this against the trainer)."""
    from depthlab.train.setup import build_model, warm_start

    seed_everything(config.seed)
    model = build_model(config, bundle)
    if config.init_from is not None:
        warm_start(model, config)
    return model


def diagnostics_batch(preset: Recipe, bundle: Any, device: Any) -> tuple[Any, Any]:
    """The first ``diag_batch`` held-out images (validation split, else test): the same for every run."""
    from depthlab.data import make_loader

    held = bundle.val if bundle.val is not None else bundle.test
    if held is None:
        raise StudyError(f"{preset.dataset} has neither a validation nor a test split for the diagnostics")
    loader = make_loader(bundle, held, batch_size=min(preset.diag_batch, len(held)), device=device)
    return next(iter(loader.epoch()))


def run_one(
    study: Study,
    preset: Recipe,
    spec: RunSpec,
    root: Path,
    *,
    device: str = "auto",
    say: Progress | None = None,
    tag: str = "",
    wait: bool = True,
    threads: Any = None,
) -> str:
    """Train (or resume, or skip) one run of the grid with its probes, holding the run's lock
    (:mod:`depthlab.train.runlock`); returns its final status.

    ``wait``: when another live process holds the run, wait for it (``True``; a holder that dies is taken
    over) or return :data:`HELD` at once (``False``). ``threads``: a
    :class:`~depthlab.train.runlock.ThreadShare`; once the run's lock is held, torch takes this process's
    share of the machine's cores. An error of the environment (full disk, ...) is raised as an
    :class:`~depthlab.errors.EnvironmentFault` naming the file and the run's last good checkpoint.
    """
    from depthlab.train.runlock import acquire_run, environment_errors, took_over_message, try_acquire_run

    say = say or (lambda line: None)
    tag = tag or spec.name
    run_dir = root / "runs" / spec.name
    held = acquire_run(run_dir, wait=True) if wait else try_acquire_run(run_dir)
    if held is None:
        return HELD
    with held, environment_errors(run_dir, held):
        if held.took_over is not None:
            say(f"{tag}: warning: {took_over_message(run_dir, held.took_over)}")
        if threads is not None:
            import torch

            before = torch.get_num_threads()
            count, trainers, cores = threads.apply()
            if count != before:
                say(
                    f"{tag}: {count} torch thread(s), a share of {cores} cores among {trainers} training processes"
                )
        return _train_one(study, preset, spec, root, device=device, say=say, tag=tag)


def _in_study(spec: RunSpec, root: Path) -> RunSpec:
    """``spec`` with a relative warm-start source (``config.init_from``) resolved inside the study directory:
    a grid names another run of its study as ``runs/NAME`` (it does not know where the directory is)."""
    source = getattr(spec.config, "init_from", None)
    if source is None or Path(source).is_absolute():
        return spec
    return dataclasses.replace(spec, config=dataclasses.replace(spec.config, init_from=str(root / source)))


def _train_one(
    study: Study, preset: Recipe, spec: RunSpec, root: Path, *, device: str, say: Progress, tag: str
) -> str:
    """The body of :func:`run_one`, under the run's lock."""
    import torch

    from depthlab.train import TrainingDivergedError, load_run_model, train
    from depthlab.train.setup import prepare_bundle

    spec = _in_study(spec, root)

    say = say or (lambda line: None)
    tag = tag or spec.name
    run_dir = root / "runs" / spec.name
    diag_path = run_dir / "diagnostics.json"
    diags: dict[str, Any] = read_json(diag_path) if diag_path.is_file() else {}
    status = _status(run_dir)
    dev = select_device(device)
    bundle = images = labels = None

    def batch() -> tuple[Any, Any, Any]:
        nonlocal bundle, images, labels
        if bundle is None:
            bundle = prepare_bundle(spec.config)
            images, labels = diagnostics_batch(preset, bundle, dev)
        return bundle, images, labels

    study_probe = study.probe

    def probe(model: Any, moment: str, step: int) -> dict[str, Any]:
        # Only called when study_probe is set; the RNG is forked so probing never changes the run.
        b, x, y = batch()
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            return study_probe(ProbeContext(model, x, y, moment, step, spec, b))  # type: ignore[misc]

    if status in FINISHED:
        say(f"{tag}: already {status}, skipped")
    else:
        if study_probe is not None and "init" not in diags:
            b, _, _ = batch()
            diags["init"] = probe(initial_model(spec.config, b).to(dev), "init", 0)
            write_json(diag_path, diags)
        resume = (run_dir / "checkpoints" / "last.json").is_file()
        if not resume:
            _clear_unstarted(run_dir)

        def monitor(model: Any, step: int) -> None:
            diags.setdefault("steps", {})[str(step)] = probe(model, "step", step)
            write_json(diag_path, diags)

        say(f"{tag}: {'resuming' if resume else 'training'} for {spec.config.steps} iterations")
        try:
            summary = train(
                spec.config,
                run_dir,
                resume=resume,
                callback=_reporter(say, tag, spec.config),
                monitor=monitor if study_probe is not None else None,
            )
        except TrainingDivergedError as exc:
            say(f"{tag}: {exc}")
            return "diverged"
        say(f"{tag}: {summary.status} at step {summary.step} after {summary.wall_time_s:.0f} s")
        if summary.status == "interrupted":
            return "interrupted"
    if study_probe is not None and _status(run_dir) == "completed" and "end" not in diags:
        trained = load_run_model(run_dir, "last").to(dev)
        diags["end"] = probe(trained, "end", int(spec.config.steps))
        write_json(diag_path, diags)
    return _status(run_dir)


def _clear_unstarted(run_dir: Path) -> None:
    """A run directory without a checkpoint (killed in its first interval) is started again: remove the
    files the trainer wrote (and only those), keep diagnostics.json."""
    for name in ("config.json", "environment.json", "metrics.jsonl", "summary.json"):
        (run_dir / name).unlink(missing_ok=True)


def _reporter(say: Progress, tag: str, config: Any) -> Callable[[Any], None]:
    from depthlab.present.format import pct

    every = max(config.log_every, config.steps // 4 // config.log_every * config.log_every)

    def on_event(event: Any) -> None:
        if event.kind == "train" and (event.step % every == 0 or event.step == event.total_steps):
            say(
                f"{tag}: step {event.step}/{event.total_steps}, running training error {pct(event.values['error'])}"
            )
        elif event.kind == "eval" and event.step == event.total_steps:
            say(f"{tag}: step {event.step}, {event.values['split']} error {pct(event.values['error'])}")

    return on_event


def run_study(
    study: Study,
    preset: Recipe,
    out_dir: str | Path,
    *,
    seeds: int | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    overrides: Sequence[str] = (),
    progress: Progress | None = None,
    executor: str = "local",
    address: str | None = None,
    analyses: Sequence[str] = (),
    seed_offset: int = 0,
) -> StudyResult:
    """Run (or resume, or skip) every run of ``study``'s grid, its study-level analyses, write results.json.

    ``seeds`` runs seeds ``seed_offset`` … ``seed_offset + seeds − 1`` (default the preset's count from 0): a
    replication on fresh seeds is the same command with an offset past the original's seeds.
    ``executor``: ``local`` (one run after another) or ``ray`` (each run a Ray task; ``address`` of a
    running cluster, default a local instance). ``analyses``: names from ``study.analyses`` run after
    training (each idempotent and resumable).
    """
    seeds = preset.seeds if seeds is None else seeds
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise StudyError(f"seeds must be a positive integer, got {seeds!r}")
    if not isinstance(seed_offset, int) or isinstance(seed_offset, bool) or seed_offset < 0:
        raise StudyError(f"seed offset must be a non-negative integer, got {seed_offset!r}")
    if executor not in EXECUTORS:
        raise StudyError(f"unknown executor {executor!r}; choose from: {', '.join(EXECUTORS)}")
    if executor == "ray":  # fail before anything is written when Ray is not installed
        from depthlab.studies.executors import check_ray

        check_ray()
    unknown = [a for a in analyses if a not in study.analyses]
    if unknown:
        raise StudyError(
            f"unknown analysis {unknown[0]!r} for the {study.name} study; choose from: "
            f"{', '.join(study.analyses) or 'none'}"
        )
    say = progress or (lambda line: None)
    root = Path(out_dir)
    specs = study.grid(preset, seed_list(seeds, seed_offset), device, data_dir)
    from depthlab.registry import list_models

    missing = sorted({s.config.model for s in specs} - set(list_models()))
    if missing:
        raise StudyError(f"the {study.name} study needs models that are not registered: {', '.join(missing)}")
    from depthlab.train.runlock import study_lock

    # Several workers may share the directory: study-level steps run one worker at a time (the first
    # computes, the others find the result in place), runs are split by their locks.
    with study_lock(root):
        _check_study_file(root, study, preset, seeds, overrides, seed_offset)
        if study.prepare is not None:
            from depthlab.train.setup import prepare_bundle

            bundle = prepare_bundle(specs[0].config)
            images, labels = diagnostics_batch(preset, bundle, select_device(device))
            say("study-level analyses at initialisation")
            study.prepare(preset, root, bundle, images, labels, seed_list(seeds, seed_offset))

    if executor == "local":
        if _run_local(study, preset, specs, root, device=device, say=say) == "interrupted":
            return _write_results(root)
    else:
        from depthlab.studies.executors import run_on_ray

        run_on_ray(study, preset, specs, root, seeds=seeds, overrides=overrides, device=device,
                   data_dir=data_dir, address=address, say=say, seed_offset=seed_offset)  # fmt: skip

    with study_lock(root):
        result = _write_results(root)
        for name in analyses:
            say(f"analysis: {name}")
            study.analyses[name](result, select_device(device))
        return _write_results(root) if analyses else result


WAIT_POLL_S = 1.0  # how often a worker whose remaining runs are all held tries them again


def _run_local(study: Study, preset: Recipe, specs: Sequence[RunSpec], root: Path, *, device: str,
               say: Progress) -> str:  # fmt: skip
    """The local executor, safe to run as several workers on one directory: train, in grid order, every run
    nobody holds, skipping held ones; then come back for those, polling until each is finished — by its
    holder, or by this worker when the holder died (its lock is taken over and the run resumes). Each run
    takes this process's share of the machine's cores. Returns ``"interrupted"`` (Ctrl-C) or ``"done"``."""
    import torch

    from depthlab.train.runlock import ThreadShare

    threads = torch.get_num_threads()
    share = ThreadShare(threads)
    try:
        return _work_through(study, preset, specs, root, device=device, say=say, share=share)
    finally:
        torch.set_num_threads(threads)  # the caller's setting, whatever the shares were


def _work_through(study: Study, preset: Recipe, specs: Sequence[RunSpec], root: Path, *, device: str,
                  say: Progress, share: Any) -> str:  # fmt: skip
    import time

    from depthlab.train.runlock import lock_status

    tags = {s.name: f"[{k}/{len(specs)}] {s.name}" for k, s in enumerate(specs, start=1)}
    pending, told = list(specs), False
    while True:
        held = []
        for spec in pending:
            status = run_one(study, preset, spec, root, device=device, say=say, tag=tags[spec.name],
                             wait=False, threads=share)  # fmt: skip
            if status == "interrupted":
                say("interrupted: run the same command again to resume")
                return "interrupted"
            if status == HELD:
                held.append(spec)
                if not told:
                    holder = lock_status(root / "runs" / spec.name).holder
                    who = holder.describe() if holder is not None else "another process"
                    say(f"{tags[spec.name]}: being trained by {who}; skipped for now")
        if not held:
            return "done"
        if not told:
            say(
                f"waiting for {len(held)} run(s) that other workers are training: {', '.join(s.name for s in held)}"
            )
            told = True
        time.sleep(WAIT_POLL_S)
        pending = held


def _write_results(root: Path) -> StudyResult:
    """Read the study back and write results.json, under the study lock: with several workers, each
    writes it when it finishes, one at a time, so the last one to finish leaves it complete."""
    from depthlab.train.runlock import study_lock

    with study_lock(root):
        result = read_study(root)
        write_json(root / "results.json", results_json(result))
    return result


# --------------------------------------------------------------------------------------- status and plan
@dataclass(frozen=True)
class RunState:
    """Where one run of a study stands (:func:`study_status`).

    ``state``: ``done`` (finished: completed or diverged), ``running`` (a live process holds its lock;
    ``holder`` names it, ``None`` for a holder that left no record) or ``waiting`` (nobody holds it: a worker
    will take it). ``status``: its summary.json status (``missing`` before it starts). ``step``: the step of
    its last metrics row; ``checkpoint``: the step of its last good checkpoint (``None``: none).
    """

    name: str
    state: str
    status: str
    step: int
    total_steps: int
    checkpoint: int | None
    holder: Any = None  # depthlab.train.runlock.Holder


def study_status(
    study: Study,
    preset: Recipe,
    out_dir: str | Path,
    *,
    seeds: int | None = None,
    seed_offset: int = 0,
    data_dir: str | None = None,
) -> list[RunState]:
    """Every run of the grid as done, running (by whom) or waiting, read from ``out_dir`` without writing
    to it. The grid is the one the directory was made with, read from its study.json (the preset, ``--set``
    values and seeds); ``preset``, ``seeds`` and ``seed_offset`` only describe a directory that has none yet
    (nothing started). Asking needs no settings: only a command that trains compares them with the
    directory's. A directory holding another study is a :class:`StudyError`."""
    from depthlab.train.rundir import last_good_step
    from depthlab.train.runlock import lock_status

    root = Path(out_dir)
    recorded = recorded_settings(root, study)
    if recorded is not None:
        preset, seeds, seed_offset = recorded.preset, recorded.seeds, recorded.seed_offset
    seeds = preset.seeds if seeds is None else seeds
    states = []
    for spec in study.grid(preset, seed_list(seeds, seed_offset), "auto", data_dir):
        run_dir = root / "runs" / spec.name
        status = _status(run_dir)
        holder, state = None, "done"
        if status not in FINISHED:
            lock = lock_status(run_dir)
            state, holder = ("running", lock.holder) if lock.held else ("waiting", None)
        states.append(RunState(spec.name, state, status, _last_step(run_dir), int(spec.config.steps),
                               last_good_step(run_dir), holder))  # fmt: skip
    return states


def _last_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return 0
    for line in reversed(path.read_text().splitlines()):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):  # a line torn by a kill mid-write
            continue
    return 0


@dataclass(frozen=True)
class PlannedRun:
    """One run of a dry run: ``variant`` names its model and options (what a step's cost depends on)."""

    name: str
    model: str
    variant: str
    steps: int
    batch_size: int

    @property
    def images(self) -> int:
        """Images the run trains on: steps × batch (an image seen twice counts twice)."""
        return self.steps * self.batch_size


@dataclass(frozen=True)
class StepTiming:
    """A variant's training step as measured on this machine: ``timed`` steps after ``warmup``."""

    variant: str
    batch_size: int
    seconds_per_step: float
    device: str
    precision: str
    threads: int
    timed: int
    warmup: int


@dataclass(frozen=True)
class StudyPlan:
    """What ``depthlab experiment … --dry-run`` reports: the grid, the images it trains on and an
    estimate of the time its training steps take here (evaluations, probes and checkpoints not included)."""

    runs: tuple[PlannedRun, ...]
    timings: Mapping[str, StepTiming]  # by variant

    @property
    def total_images(self) -> int:
        return sum(r.images for r in self.runs)

    @property
    def total_steps(self) -> int:
        return sum(r.steps for r in self.runs)

    def estimated_seconds(self) -> float:
        """Σ over runs of steps × the measured seconds per step of the run's variant."""
        return sum(r.steps * self.timings[r.variant].seconds_per_step for r in self.runs)


def _variant(config: Any) -> str:
    kwargs = dict(config.model_kwargs)
    return config.model + (f" {json.dumps(kwargs, sort_keys=True)}" if kwargs else "")


def plan_study(
    study: Study,
    preset: Recipe,
    *,
    seeds: int | None = None,
    seed_offset: int = 0,
    device: str = "auto",
    data_dir: str | None = None,
    timed: int = 3,
    warmup: int = 1,
) -> StudyPlan:
    """The grid of ``study`` under ``preset`` and, for each distinct model variant, ``timed`` training
    steps measured after ``warmup`` untimed ones on this machine (its device, the run's precision, this
    process's torch threads). Nothing is written; the dataset is loaded to build the batches."""
    from depthlab.train.setup import prepare_bundle

    if timed < 1 or warmup < 0:
        raise StudyError(f"timed must be ≥ 1 and warmup ≥ 0, got timed={timed}, warmup={warmup}")
    seeds = preset.seeds if seeds is None else seeds
    specs = study.grid(preset, seed_list(seeds, seed_offset), device, data_dir)
    runs = tuple(
        PlannedRun(s.name, s.config.model, _variant(s.config), int(s.config.steps), int(s.config.batch_size))
        for s in specs
    )
    dev = select_device(device)
    bundles: dict[str, Any] = {}
    timings: dict[str, StepTiming] = {}
    for spec in specs:
        variant = _variant(spec.config)
        if variant in timings:
            continue
        c = spec.config
        data_key = json.dumps([c.data, c.data_dir, c.image_size, c.val_size, c.train_subset, c.normalize])
        if data_key not in bundles:
            bundles[data_key] = prepare_bundle(c)
        timings[variant] = _time_steps(c, bundles[data_key], dev, variant, timed, warmup)
    return StudyPlan(runs, timings)


def _time_steps(config: Any, bundle: Any, dev: Any, variant: str, timed: int, warmup: int) -> StepTiming:
    """Seconds per training step of ``config``'s model: the trainer's own step
    (:class:`depthlab.train.step.TrainStep`: forward, loss with auxiliary heads, backward, update; replayed
    from a CUDA graph where the trainer would, after its eager warm-up steps) on one training batch."""
    import time

    import torch

    from depthlab.data import make_loader
    from depthlab.train.setup import build_model
    from depthlab.train.optim import build_optimizer
    from depthlab.train.precision import resolve_precision
    from depthlab.train.step import GRAPH_WARMUP, TrainStep

    precision = resolve_precision(config.precision, dev).used
    graph = dev.type == "cuda" and bool(config.cuda_graph) and not bundle.streamed
    if graph:  # time replays, not the eager warm-up and the capture
        warmup = max(warmup, GRAPH_WARMUP + 1)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(config.seed)
        model = build_model(config, bundle).to(device=dev, memory_format=torch.channels_last).train()
        optimizer = build_optimizer(model, config)
        loader = make_loader(bundle, bundle.train, batch_size=config.batch_size, device=dev, train=True,
                             seed=config.seed)  # fmt: skip
        x, y = next(iter(loader.epoch(0)))
        step = TrainStep(model, model, optimizer, precision=precision, device=dev, aux_weight=config.aux_weight,
                         label_smoothing=config.label_smoothing, clip_grad=config.clip_grad, graph=graph)  # fmt: skip
        for _ in range(warmup):
            step(x, y)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        for _ in range(timed):
            step(x, y)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = (time.perf_counter() - start) / timed
    return StepTiming(variant, int(config.batch_size), seconds, str(dev), precision, torch.get_num_threads(),
                      timed, warmup)  # fmt: skip
