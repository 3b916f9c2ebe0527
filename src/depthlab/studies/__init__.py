"""Declared studies, run by one engine (:mod:`depthlab.studies.engine`), and the registry of them.

Each study is one package ``depthlab.studies.<name>`` (its presets, grid, probe, findings and figures) that
registers a :class:`~depthlab.studies.engine.Study` here when imported:

* ``degradation`` — plain vs residual networks at several depths (He et al. 2015, Fig. 6/7), with gradient
  diagnostics and shattered gradients;
* ``inception-aux`` — GoogLeNet with and without its auxiliary classifiers (Szegedy et al. 2014/2015);
* ``vgg-depth`` — VGG configurations A–E (Simonyan & Zisserman 2014, Table 3).

The statistics every study uses live in :mod:`depthlab.stats`.
"""

from __future__ import annotations

from depthlab.studies.engine import (
    Finding,
    Recipe,
    RunSpec,
    Study,
    StudyError,
    StudyResult,
    StudyRun,
    apply_preset_overrides,
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
    "register_study",
    "results_json",
    "run_study",
]

_STUDIES: dict[str, Study] = {}


def register_study(study: Study) -> Study:
    """Make ``study`` available to :func:`get_study` (and ``depthlab experiment``) under its name."""
    _STUDIES[study.name] = study
    return study


def _load_builtin() -> None:
    """Import the built-in study packages, which register themselves."""
    import depthlab.studies.degradation  # noqa: F401
    import depthlab.studies.inception_aux  # noqa: F401
    import depthlab.studies.vgg_depth  # noqa: F401


def list_studies() -> list[str]:
    _load_builtin()
    return sorted(_STUDIES)


def get_study(name: str) -> Study:
    _load_builtin()
    if name not in _STUDIES:
        raise StudyError(f"unknown study {name!r}; choose from: {', '.join(sorted(_STUDIES))}")
    return _STUDIES[name]
