"""The vgg-depth study: VGG configurations A–E (Simonyan & Zisserman 2014, Table 3).

``study`` declares and registers the study; ``figures`` draws its report figures."""

from depthlab.studies.vgg_depth.study import *  # noqa: F403
from depthlab.studies.vgg_depth.study import STUDY, __all__  # noqa: F401
