"""Post-training analyses of a study's runs (``depthlab study STUDY --analyses lesion,landscape,…``).

Each study analysis name maps to the run-level analyses of :mod:`depthlab.studies.why`:
``lesion`` → lesion study and path lengths (Veit et al. 2016), ``landscape`` → loss landscape (Li et al.
2018), ``attribute`` → attributions and their randomisation check (Adebayo et al. 2018). They run on the
first seed of every condition whose run completed, on the study's device, write ``RUN/analysis/*.json`` + PNG,
and are idempotent and resumable (a finished result is reused; a killed one continues), like the training
runs.
"""

from __future__ import annotations

from typing import Any

from depthlab.studies.results import StudyResult
from depthlab.studies.why import run_analyses

__all__ = ["STUDY_ANALYSES", "run_for_study", "analysed_runs"]

STUDY_ANALYSES: dict[str, tuple[str, ...]] = {
    "lesion": ("lesion", "paths"),
    "landscape": ("landscape",),
    "attribute": ("attribution",),
}


def analysed_runs(result: StudyResult) -> list[Any]:
    """The first completed seed of every condition, in the study's order."""
    out, seen = [], set()
    for r in result.runs:
        if r.completed and r.condition not in seen:
            seen.add(r.condition)
            out.append(r)
    return out


def run_for_study(name: str, result: StudyResult, device: Any = "cpu") -> None:
    """Run the analyses behind study analysis ``name`` on :func:`analysed_runs` of ``result``, each run's
    model and images on ``device`` (a torch.device or ``cpu``/``cuda``/``auto``)."""

    for run in analysed_runs(result):
        run_analyses(run.run_dir, STUDY_ANALYSES[name], device=device)
