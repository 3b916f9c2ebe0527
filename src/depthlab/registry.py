"""The model registry: one name → one builder, and one way to build any model.

``create_model(name, num_classes=1000, in_channels=3, pretrained=False, **kwargs)`` builds a registered model;
keyword arguments given by the user override the builder's defaults (as in timm). ``pretrained=True`` loads
torchvision's ImageNet weights (see :mod:`depthlab.models.pretrained`). Unknown model names raise
``UsageError`` (a ``ValueError``) listing the closest names; unknown keyword arguments, and values whose type
does not fit the model class's annotation (``norm=5``, ``widths="16"``), raise ``UsageTypeError`` (a
``TypeError``) naming them and what is accepted — so ``--set model_kwargs.KEY=VALUE`` fails with one line.
"""

from __future__ import annotations

import collections.abc
import difflib
import fnmatch
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from depthlab.errors import UsageError, UsageTypeError

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
        raise UsageError(
            f"unknown model {name!r}{hint} (see `depthlab models` for all {len(_REGISTRY)} names)"
        )
    return _REGISTRY[name]


def accepted_kwargs(name: str) -> list[str]:
    """Keyword arguments ``create_model(name, ...)`` accepts (the model class's constructor)."""
    params = inspect.signature(model_info(name).model_cls.__init__).parameters
    return [p for p in params if p != "self" and params[p].kind is not inspect.Parameter.VAR_KEYWORD]


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type a constructor annotation ``hint`` asks for (bool is not an int; an
    int is a float; a sequence is a list or tuple). Annotations it does not model accept anything."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (types.UnionType, typing.Union):
        return any(_fits(value, a) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in args
    if origin is type:
        return isinstance(value, type) and (
            not args or not isinstance(args[0], type) or issubclass(value, args[0])
        )
    if origin in (collections.abc.Sequence, list, tuple):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args, strict=True))
        return not args or all(_fits(v, args[0]) for v in value)
    return True


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in args)
    if origin in (collections.abc.Sequence, list, tuple):
        plural = {int: "integers", float: "numbers", str: "strings"}
        return f"a list of {plural.get(args[0], 'values') if args else 'values'}"
    if origin is type:
        return "a block class"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "none"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _check_kwarg_types(name: str, model_cls: type[nn.Module], kwargs: dict[str, object]) -> None:
    hints = typing.get_type_hints(model_cls.__init__)
    for key, value in kwargs.items():
        if key in hints and not _fits(value, hints[key]):
            raise UsageTypeError(f"{name}: {key} must be {_describe(hints[key])}, got {value!r}")


def create_model(
    name: str, num_classes: int = 1000, in_channels: int = 3, pretrained: bool = False, **kwargs: object
) -> nn.Module:
    """Build the registered model ``name``; ``kwargs`` override the builder's defaults. ``pretrained``:
    with torchvision's ImageNet weights, downloaded once into torch hub's cache (1000 classes, 3 channels)."""
    info = model_info(name)
    allowed = accepted_kwargs(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise UsageTypeError(
            f"{name}: unknown argument(s) {', '.join(unknown)}; accepted: {', '.join(sorted(allowed))}"
        )
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise UsageError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels < 1:
        raise UsageError(f"in_channels must be a positive integer, got {in_channels!r}")
    _check_kwarg_types(name, info.model_cls, kwargs)
    if pretrained:
        from depthlab.models.pretrained import load_pretrained, pretrained_kwargs

        kwargs = pretrained_kwargs(name, num_classes, in_channels, kwargs)
        model = info.builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
        return load_pretrained(model, name)
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
