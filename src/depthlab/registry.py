"""The model registry: one name → one builder, and one way to build any model.

``create_model(name, num_classes=1000, in_channels=3, **kwargs)`` builds a registered model; keyword
arguments given by the user override the builder's defaults (as in timm). Unknown model names raise
``ValueError`` listing the closest names; unknown keyword arguments raise ``TypeError`` naming them and the
accepted ones.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = [
    "ModelInfo",
    "ModelRow",
    "register_model",
    "create_model",
    "list_models",
    "model_info",
    "describe_models",
]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model without building it."""

    name: str
    family: str
    builder: Callable[..., nn.Module]
    model_cls: type[nn.Module]
    default_input: tuple[int, int, int]  # (C, H, W) the architecture was designed for
    paper: str


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    family: str, model_cls: type[nn.Module], default_input: tuple[int, int, int], paper: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder`` under its function name."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, family, builder, model_cls, default_input, paper)
        return builder

    return decorate


def _ensure_loaded() -> None:
    # Importing the family modules runs their @register_model decorators.
    from depthlab import models  # noqa: F401


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the fnmatch ``pattern``, in registration order."""
    _ensure_loaded()
    return [name for name in _REGISTRY if fnmatch.fnmatchcase(name, pattern)]


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; ``ValueError`` naming the closest names if unknown."""
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ValueError(
            f"unknown model {name!r}{hint} (see `depthlab models` for all {len(_REGISTRY)} names)"
        )
    return _REGISTRY[name]


def accepted_kwargs(name: str) -> list[str]:
    """Keyword arguments ``create_model(name, ...)`` accepts (the model class's constructor)."""
    params = inspect.signature(model_info(name).model_cls.__init__).parameters
    return [p for p in params if p != "self" and params[p].kind is not inspect.Parameter.VAR_KEYWORD]


def create_model(name: str, num_classes: int = 1000, in_channels: int = 3, **kwargs: object) -> nn.Module:
    """Build the registered model ``name``; ``kwargs`` override the builder's defaults."""
    info = model_info(name)
    allowed = accepted_kwargs(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(
            f"{name}: unknown argument(s) {', '.join(unknown)}; accepted: {', '.join(sorted(allowed))}"
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
    return info.builder(num_classes=num_classes, in_channels=in_channels, **kwargs)


@dataclass(frozen=True)
class ModelRow:
    """One line of the model table: a registered model at its default settings."""

    name: str
    family: str
    params: int  # every parameter, as built by default (GoogLeNet: with its aux heads)
    default_input: tuple[int, int, int]
    inference_params: int  # without training-only heads (GoogLeNet's aux classifiers); else = params


def describe_models(pattern: str = "*") -> list[ModelRow]:
    """Parameter counts of every model matching ``pattern`` at default settings (1000 classes): all of them,
    and those used at inference (:func:`depthlab.models.count_params`).

    Models are built on the meta device, so even VGG-19 costs no memory or initialisation time.
    """
    import torch

    from depthlab.models.base import count_params

    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        with torch.device("meta"):
            model = create_model(name, in_channels=info.default_input[0])
        rows.append(
            ModelRow(
                name,
                info.family,
                count_params(model),
                info.default_input,
                count_params(model, inference=True),
            )
        )
    return rows
