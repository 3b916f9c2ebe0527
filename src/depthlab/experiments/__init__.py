"""Declared studies run by one engine (:mod:`depthlab.experiments.engine`).

``degradation``: plain vs residual networks at several depths (He et al. 2015, Fig. 6/7), with gradient
diagnostics and shattered gradients. Each study is one file that registers a :class:`Study`.
"""

from depthlab.experiments.engine import (
    Finding,
    Recipe,
    RunSpec,
    Study,
    StudyError,
    StudyResult,
    StudyRun,
    apply_preset_overrides,
    get_study,
    list_studies,
    read_study,
    results_json,
    run_study,
)

__all__ = [
    "Finding",
    "Recipe",
    "RunSpec",
    "Study",
    "StudyError",
    "StudyResult",
    "StudyRun",
    "apply_preset_overrides",
    "get_study",
    "list_studies",
    "read_study",
    "results_json",
    "run_study",
]
