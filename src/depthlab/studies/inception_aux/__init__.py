"""The inception-aux study: GoogLeNet with and without its auxiliary classifiers.

``study`` declares and registers the study; ``figures`` draws its report figures."""

from depthlab.studies.inception_aux.study import *  # noqa: F403
from depthlab.studies.inception_aux.study import STUDY, __all__  # noqa: F401
