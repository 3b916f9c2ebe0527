"""The registry of studies: one name → one :class:`~depthlab.studies.declare.Study`.

A study registers itself when its package is imported (:func:`register_study`); the built-in ones —
``degradation``, ``inception-aux`` and ``vgg-depth`` — are imported by :mod:`depthlab.studies` itself, which
Python runs before any of its modules, this one included, so :func:`get_study` and :func:`list_studies`
always see them. This module imports no study, so the studies and the readers of a study directory
(:mod:`.results`) can both import it.
"""

from __future__ import annotations

from depthlab.studies.declare import Study, StudyError

__all__ = ["get_study", "list_studies", "register_study"]

_STUDIES: dict[str, Study] = {}


def register_study(study: Study) -> Study:
    """Make ``study`` available to :func:`get_study` (and ``depthlab study``) under its name."""
    _STUDIES[study.name] = study
    return study


def list_studies() -> list[str]:
    return sorted(_STUDIES)


def get_study(name: str) -> Study:
    if name not in _STUDIES:
        raise StudyError(f"unknown study {name!r}; choose from: {', '.join(sorted(_STUDIES))}")
    return _STUDIES[name]
