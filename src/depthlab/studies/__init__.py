"""Declared studies, run by one engine (:mod:`depthlab.studies.engine`), and the registry of them.

Each study is one package ``depthlab.studies.<name>`` (its presets, grid, probe, findings and figures) that
registers a :class:`~depthlab.studies.declare.Study` in :mod:`depthlab.studies.registry` when imported; this
package imports the built-in ones, so they are registered before any of its modules is used:

* ``degradation`` — plain vs residual networks at several depths (He et al. 2015, Fig. 6/7), with gradient
  diagnostics and shattered gradients;
* ``inception-aux`` — GoogLeNet with and without its auxiliary classifiers (Szegedy et al. 2014/2015);
* ``vgg-depth`` — VGG configurations A–E (Simonyan & Zisserman 2014, Table 3).

The statistics every study uses live in :mod:`depthlab.stats`; what it hands to the report (sections, tables,
figures, number formats) in :mod:`depthlab.present`.
"""

from __future__ import annotations

# The built-in studies, imported for their registration (each calls register_study).
from depthlab.studies import degradation, inception_aux, vgg_depth  # noqa: F401
from depthlab.studies.declare import Finding, Recipe, RunSpec, Study, StudyError, apply_preset_overrides
from depthlab.studies.registry import get_study, list_studies, register_study
from depthlab.studies.results import StudyResult, StudyRun, read_study, results_json
from depthlab.studies.run import run_study

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
