"""The study engine: a study is declared data; the engine runs it, reads it back and aggregates it.

One module per job (this one only gathers their public names, for ``from depthlab.studies.engine import …``):

* :mod:`.declare` — what a study declares: :class:`Study`, its presets (:class:`Recipe`), its grid
  (:class:`RunSpec`), its probe (:class:`ProbeContext`), its :class:`Finding` and :class:`Answer` objects;
* :mod:`.results` — a study directory read back: :class:`StudyRun`, :class:`Condition`, :class:`StudyResult`,
  :func:`read_study`, :func:`results_json`, :func:`status_findings`, :func:`recorded_settings`;
* :mod:`.worker` — one run trained, resumed or skipped under its lock (:func:`run_one`), and the local
  executor's walk through the grid;
* :mod:`.executors` — the Ray executor: every run of the grid a Ray task;
* :mod:`.run` — :func:`run_study`: study.json, the study-level ``prepare``, an executor, results.json, the
  post-training analyses;
* :mod:`.plan` — :func:`study_status` (``--status``) and :func:`plan_study` (``--dry-run``).

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

from depthlab.present.types import ReportFigure, ReportTable, Section
from depthlab.studies.declare import (
    Answer,
    Finding,
    ProbeContext,
    Recipe,
    RunSpec,
    Study,
    StudyError,
    apply_preset_overrides,
    seed_list,
)
from depthlab.studies.plan import PlannedRun, RunState, StepTiming, StudyPlan, plan_study, study_status
from depthlab.studies.results import (
    Condition,
    RecordedSettings,
    StudyResult,
    StudyRun,
    find_run_dirs,
    read_run,
    read_study,
    recorded_settings,
    reproduce_commands,
    results_json,
    status_findings,
    train_command,
)
from depthlab.studies.run import EXECUTORS, run_study
from depthlab.studies.worker import HELD, initial_model, run_one

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
    "Answer",
    "Section",
    "ReportFigure",
    "ReportTable",
    "apply_preset_overrides",
    "seed_list",
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
