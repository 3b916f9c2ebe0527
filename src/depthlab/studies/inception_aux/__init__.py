"""The inception-aux study: GoogLeNet with and without its auxiliary losses (Szegedy et al. 2015).

Importing the package registers the study. ``presets`` (one base, each preset as its changes), ``grid``,
``probe`` (the gradients measured on the diagnostics batch), ``evidence`` (typed readings of the runs),
``findings``, ``answers``, ``figures``; ``study`` declares it."""

from depthlab.studies.inception_aux.grid import label
from depthlab.studies.inception_aux.presets import PRESETS, InceptionAuxPreset
from depthlab.studies.inception_aux.probe import LOWER_TAPS, TAPS
from depthlab.studies.inception_aux.study import STUDY

__all__ = ["STUDY", "PRESETS", "InceptionAuxPreset", "TAPS", "LOWER_TAPS", "label"]
