"""A study directory read back: its runs (:class:`StudyRun`), each condition over its seeds (:class:`Condition`),
the whole with its findings and answers (:class:`StudyResult`, :func:`read_study`), ``results.json``
(:func:`results_json`), the findings every study states first (:func:`status_findings`) and the commands that
reproduce it (:func:`reproduce_commands`).

Layout of a study directory::

    DIR/study.json             {"study", "preset": {...}, "seeds", "overrides"}: a re-run must match it
    DIR/runs/NAME/             one ordinary training run directory per RunSpec (see depthlab.train.rundir),
                               plus diagnostics.json: {"init": {...}, "steps": {"STEP": {...}}, "end": {...}}
    DIR/analysis/*.json        study-level analyses (``prepare``) and post-training analyses (--analyses)
    DIR/results.json           see :func:`results_json`

Everything is read from the run directories; nothing is trained or evaluated. A directory describes itself:
:func:`recorded_settings` reads its study.json, which names the study (looked up in :mod:`.registry`).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthlab.i18n import language
from depthlab.io import read_json, read_number
from depthlab.stats import Estimate, estimate
from depthlab.studies.declare import (
    Answer,
    Finding,
    Recipe,
    RunSpec,
    Study,
    StudyError,
    apply_preset_overrides,
    preset_from_dict,
    seed_list,
)
from depthlab.studies.registry import get_study
from depthlab.train import TrainConfig, config_to_dict

__all__ = [
    "FINISHED",
    "Condition",
    "RecordedSettings",
    "StudyResult",
    "StudyRun",
    "find_run_dirs",
    "read_run",
    "read_study",
    "recorded_settings",
    "reproduce_commands",
    "results_json",
    "run_status",
    "status_findings",
    "train_command",
]

FINISHED = ("completed", "diverged")  # a re-run skips these (a diverged run would diverge again)


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
            return self.preset.data
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
    found = study if study is not None else get_study(name)
    kind = type(next(iter(found.presets.values())))
    # The preset's own count is a default; what describe() prints is the count that was run.
    preset = dataclasses.replace(preset_from_dict(kind, values), seeds=seeds)
    return RecordedSettings(found, judged_by_code(found, preset, overrides), seeds, offset, overrides)


def judged_by_code(study: Study, preset: Recipe, overrides: Sequence[str]) -> Recipe:
    """``preset`` (as a directory recorded it) with its judging fields (:attr:`Recipe.JUDGING`: the bounds
    its answers are judged by) taken from the study's preset of the same name as the code declares it now,
    then the recorded ``--set`` values that name one of them. A preset the code no longer has keeps its
    recorded values."""
    current = study.presets.get(preset.name)
    if current is None or type(current) is not type(preset):
        return preset
    mine = [o for o in overrides if o.partition("=")[0].strip() in type(preset).JUDGING]
    # A field a recorded --set names keeps its recorded value until the --set is applied again: the code's
    # value may not fit the recorded runs (inception-aux's early_step must lie below the recorded steps).
    named = {o.partition("=")[0].strip() for o in mine}
    judged = dataclasses.replace(
        preset, **{f: getattr(current, f) for f in type(preset).JUDGING if f not in named}
    )
    return apply_preset_overrides(judged, mine) if mine else judged


def read_study(directory: str | Path) -> StudyResult:
    """A study (or any directory of runs) read back from disk; findings are recomputed from the runs. The
    answers are written in the current language (:func:`depthlab.i18n.language`), the findings in English."""
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
    with language("en"):  # the findings' sentences stay English in every language (issue 25, first version)
        findings = tuple(study.findings(result))
    answers = tuple(study.answers(result, findings)) if study.answers is not None else ()
    return dataclasses.replace(result, findings=findings, answers=answers)


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
        # The bounds the answers were judged by (Recipe.JUDGING, as the code declares them, issue 23).
        "bounds": {f: getattr(result.preset, f) for f in type(result.preset).JUDGING if f != "note"}
        if result.preset
        else {},
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
        f"depthlab study {result.study.name} --preset {result.preset.name} --seeds {result.seeds}{offset}"
        f"{sets} --out {d}",
        f"depthlab report {d}",
    ]


def train_command(config: Mapping[str, Any], run_dir: str | Path) -> str:
    """``depthlab train MODEL --set key=value … --out RUN_DIR`` for every field that differs from the
    :class:`~depthlab.train.TrainConfig` defaults."""

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


def run_status(run_dir: Path) -> str:
    """The status of a run directory's summary.json (``missing`` before the run writes one)."""
    path = run_dir / "summary.json"
    return str(read_json(path).get("status", "missing")) if path.is_file() else "missing"
