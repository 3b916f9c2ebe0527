"""The vgg-depth study: VGG configurations A–E (Simonyan & Zisserman 2015, Table 3).

Importing the package registers the study. ``presets`` (one base, each preset as its changes), ``grid``,
``evidence`` (typed readings of the runs), ``findings``, ``answers``, ``figures``; ``study`` declares it."""

from depthlab.studies.vgg_depth.grid import label
from depthlab.studies.vgg_depth.presets import DEPTH, MODELS, PRESETS, TABLE3, VGGDepthPreset
from depthlab.studies.vgg_depth.study import STUDY

__all__ = ["STUDY", "PRESETS", "VGGDepthPreset", "TABLE3", "MODELS", "DEPTH", "label"]
