"""The degradation study (He et al. 2015, Fig. 6/7): plain vs residual networks across depth.

``presets`` (the recipes), ``grid`` (the runs, the BN-free twins), ``evidence`` (typed readings of the runs),
``findings`` (comparisons, then sentences), ``answers`` (the questions), ``figures`` (figures and report
sections) and ``study`` (the probe, the shattered-gradient preparation, the registration on import)."""

from depthlab.studies.degradation.study import *  # noqa: F403
from depthlab.studies.degradation.study import STUDY, __all__  # noqa: F401
