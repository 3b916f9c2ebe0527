"""The model zoo: importing this package registers every family's builders."""

from depthlab.models import alexnet, googlenet, resnet, vgg  # noqa: F401
from depthlab.models.base import (
    FeatureInfo,
    GoogLeNetOutputs,
    ZooModel,
    aux_logits,
    count_params,
    main_logits,
)

__all__ = ["FeatureInfo", "GoogLeNetOutputs", "ZooModel", "aux_logits", "count_params", "main_logits"]
