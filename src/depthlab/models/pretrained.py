"""ImageNet weights for the zoo models torchvision publishes them for, through torchvision's weights API.

``create_model(name, pretrained=True)`` builds the depthlab model and loads torchvision's ``DEFAULT`` weights
for ``name`` (``torchvision.models.get_model_weights(name).DEFAULT``) with
:func:`~depthlab.models.torchvision_compat.load_torchvision_weights`. Supported: ``alexnet``, ``vgg11``…
``vgg19`` and their ``_bn`` variants, ``googlenet`` (built as ``variant="torchvision"``, aux heads off unless
``aux_logits=True`` is asked for, as torchvision does), ``resnet18``…``resnet152``.

Cache: torch hub's, the file torchvision itself would use — ``torch.hub.get_dir()/checkpoints/`` + the last
component of ``weights.url`` (``$TORCH_HOME/hub/checkpoints/resnet50-11ad3fa6.pth``). A connected machine
downloads it once (the hash in the file name is checked, as ``load_state_dict_from_url(check_hash=True)``
does); an offline one gets a one-line error naming the file to place there.

Inputs (:func:`pretrained_preprocessing`): torchvision's own transform for the weights (resize, centre crop,
ImageNet mean/std) — except GoogLeNet, whose ported weights expect mean = std = 0.5 (torchvision applies that
through ``transform_input``, which the depthlab model does not contain).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from depthlab.errors import DepthlabError
from depthlab.models.torchvision_compat import load_torchvision_weights

__all__ = [
    "PRETRAINED",
    "PretrainedWeightsError",
    "Preprocessing",
    "pretrained_weights",
    "weights_path",
    "load_pretrained_state_dict",
    "pretrained_kwargs",
    "pretrained_preprocessing",
    "imagenet_categories",
]

# depthlab name → torchvision name (the same for every supported model).
PRETRAINED: tuple[str, ...] = (
    "alexnet",
    *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")),
    "googlenet",
    *(f"resnet{d}" for d in (18, 34, 50, 101, 152)),
)
_HALF = (0.5, 0.5, 0.5)


class PretrainedWeightsError(DepthlabError, FileNotFoundError):
    """Pretrained weights are unavailable (unsupported model, or offline without the cached file)."""


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to ``resize`` (bilinear, antialiased), centre-crop ``crop``×``crop``,
    scale to [0, 1], normalise with ``mean``/``std``."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _check(name: str) -> None:
    if name not in PRETRAINED:
        raise PretrainedWeightsError(
            f"no pretrained weights for {name!r}; torchvision publishes ImageNet weights for: {', '.join(PRETRAINED)}"
        )


def pretrained_weights(name: str) -> Any:
    """torchvision's ``DEFAULT`` weights enum entry for ``name`` (e.g. ``ResNet50_Weights.IMAGENET1K_V2``)."""
    _check(name)
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT


def weights_path(name: str) -> Path:
    """Where torch hub keeps (or would download) the weights file of ``name``."""
    url = pretrained_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def load_pretrained_state_dict(name: str, download: bool = True) -> dict[str, torch.Tensor]:
    """torchvision's state dict for ``name`` from the hub cache, downloading it first if absent and
    ``download``. ``PretrainedWeightsError`` naming the file to place when it cannot be had."""
    weights = pretrained_weights(name)
    path = weights_path(name)
    if not path.is_file():
        hint = f"place torchvision's {weights} file ({weights.url}) at {path}"
        if not download:
            raise PretrainedWeightsError(f"{name}: pretrained weights not in the cache; {hint}")
        path.parent.mkdir(parents=True, exist_ok=True)
        match = re.search(torch.hub.HASH_REGEX, path.name)
        try:
            torch.hub.download_url_to_file(
                weights.url, str(path), match.group(1) if match else None, progress=False
            )
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; a hash mismatch a RuntimeError
            reason = " ".join(str(getattr(exc, "reason", exc)).split())
            raise PretrainedWeightsError(
                f"{name}: cannot download the pretrained weights ({reason}); {hint}"
            ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which one
        raise PretrainedWeightsError(f"{name}: cannot read the weights file {path}: {exc}") from None
    if not isinstance(state, dict):
        raise PretrainedWeightsError(f"{name}: {path} does not hold a state dict")
    return state


def pretrained_kwargs(
    name: str, num_classes: int, in_channels: int, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The builder arguments for torchvision's architecture of ``name`` (user ``kwargs`` win)."""
    _check(name)
    if num_classes != 1000 or in_channels != 3:
        raise ValueError(
            f"pretrained {name} is an ImageNet model: num_classes must be 1000 and in_channels 3, got "
            f"{num_classes} and {in_channels}"
        )
    out = dict(kwargs)
    if name == "googlenet":
        out.setdefault("variant", "torchvision")
        out.setdefault("aux_logits", False)  # torchvision drops the (untrained) aux heads the same way
    return out


def load_pretrained(model: nn.Module, name: str, download: bool = True) -> nn.Module:
    """Load ``name``'s ImageNet weights into ``model`` (built by :func:`pretrained_kwargs`'s arguments)."""

    return load_torchvision_weights(model, load_pretrained_state_dict(name, download))


def pretrained_preprocessing(name: str) -> Preprocessing:
    """torchvision's preprocessing for ``name``'s weights (GoogLeNet: mean = std = 0.5, see module doc)."""
    t = pretrained_weights(name).transforms()
    mean, std = tuple(t.mean), tuple(t.std)
    if name == "googlenet":
        mean, std = _HALF, _HALF
    return Preprocessing(int(t.resize_size[0]), int(t.crop_size[0]), mean, std)  # type: ignore[arg-type]


def imagenet_categories(name: str) -> tuple[str, ...]:
    """The 1000 ImageNet class names, from the weights' metadata."""
    return tuple(pretrained_weights(name).meta["categories"])
