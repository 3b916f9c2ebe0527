"""Declared studies. ``degradation``: plain vs residual networks at several depths (He et al. 2015, Fig. 6/7)."""

from depthlab.experiments.degradation import (
    PRESETS,
    STUDIES,
    DegradationPreset,
    DegradationResult,
    StudyRun,
    compute_findings,
    read_study,
    run_degradation,
)

__all__ = [
    "PRESETS",
    "STUDIES",
    "DegradationPreset",
    "DegradationResult",
    "StudyRun",
    "compute_findings",
    "read_study",
    "run_degradation",
]
