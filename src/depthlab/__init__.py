"""depthlab: build, measure, train and explain the CNN architectures that made depth work."""

from depthlab.models.torchvision_compat import load_torchvision_weights
from depthlab.registry import create_model, list_models, model_info, register_model

__version__ = "0.1.0"
__all__ = [
    "create_model",
    "list_models",
    "load_torchvision_weights",
    "model_info",
    "register_model",
    "__version__",
]
