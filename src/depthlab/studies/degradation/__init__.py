"""The degradation study (He et al. 2015, Fig. 6/7): plain vs residual networks across depth.

``study`` declares and registers the study; ``figures`` draws its report figures."""

from depthlab.studies.degradation.study import *  # noqa: F403
from depthlab.studies.degradation.study import STUDY, __all__  # noqa: F401
