"""Load torchvision checkpoints into depthlab models.

``load_torchvision_weights(model, state_dict)`` loads a torchvision state dict into the depthlab model of
the same architecture: ``alexnet``; ``vgg11/13/16/19`` and their ``_bn`` twins (ImageNet head; not
configurations A-LRN and C, which torchvision lacks); ``resnet18``–``resnet152``
(the default v1.5 stride placement, option-B shortcuts, batch norm); ``googlenet(variant="torchvision")``.

The renaming is explicit: a table or a few regular expressions per family give, for each of the model's
state-dict keys, the torchvision key holding the same tensor (:func:`torchvision_key_map`). The map runs from
depthlab names to torchvision names so that every error can speak torchvision's names: the keys the
checkpoint lacks, the keys it has that the model does not, and tensors whose shapes differ are all named
in one ``ValueError``. Two tolerances, both torchvision's own: BatchNorm's ``num_batches_tracked`` may be
absent (older checkpoints predate it; the model keeps its own), and a GoogLeNet built with
``aux_logits=False`` ignores the checkpoint's ``aux1.*``/``aux2.*`` entries (torchvision's published
GoogLeNet file carries untrained aux heads, and torchvision drops them the same way).

Inputs: torchvision's ImageNet weights expect images normalised with mean (0.485, 0.456, 0.406) and std
(0.229, 0.224, 0.225) — except GoogLeNet's, which torchvision feeds through ``transform_input``; that
transform is not part of the depthlab model, so for those weights normalise with mean = std = 0.5.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import nn

from depthlab.layers import ConvNormAct, Scale
from depthlab.models.alexnet import AlexNet
from depthlab.models.googlenet import GoogLeNet
from depthlab.models.resnet import BasicBlock, Bottleneck, ResNet
from depthlab.models.vgg import VGG

__all__ = ["load_torchvision_weights", "torchvision_key_map"]

SUPPORTED = "AlexNet, VGG, ResNet, GoogLeNet"
TORCHVISION_VGG = ("A", "B", "D", "E")  # vgg11/13/16/19; torchvision has neither A-LRN nor C
_SHOWN = 8  # keys listed per kind of mismatch before "and N more"

# AlexNet: depthlab module -> torchvision module (``features`` / ``classifier`` are flat Sequentials).
ALEXNET: dict[str, str] = {
    "stem.conv1.conv": "features.0",
    "stages.0.conv2.conv": "features.3",
    "stages.1.conv3.conv": "features.6",
    "stages.1.conv4.conv": "features.8",
    "stages.1.conv5.conv": "features.10",
    "head.fc6": "classifier.1",
    "head.fc7": "classifier.4",
    "head.fc8": "classifier.6",
}
# VGG's classifier; its ``features`` indices are counted from the model (see _vgg_table).
VGG_HEAD: dict[str, str] = {
    "head.fc6": "classifier.0",
    "head.fc7": "classifier.3",
    "head.fc8": "classifier.6",
}

Rule = tuple[str, str | Callable[[re.Match[str]], str]]
# ResNet: torchvision's conv1/bn1, layer{i+1}.{j}.conv{k+1}/bn{k+1}, downsample.0/1, fc.
RESNET: list[Rule] = [
    (r"stem\.0\.conv", "conv1"),
    (r"stem\.0\.norm", "bn1"),
    (
        r"stages\.(\d+)\.(\d+)\.branch\.(\d+)\.(conv|norm)",
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.{'conv' if m[4] == 'conv' else 'bn'}{int(m[3]) + 1}",
    ),
    (
        r"stages\.(\d+)\.(\d+)\.shortcut\.(conv|norm)",
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.{0 if m[3] == 'conv' else 1}",
    ),
    (r"head\.fc", "fc"),
]
# GoogLeNet (torchvision variant): same module names without the stem/stages/head level, BN called ``bn``.
GOOGLENET: list[Rule] = [
    (r"stem\.(conv[123])\.(conv|norm)", lambda m: f"{m[1]}.{'conv' if m[2] == 'conv' else 'bn'}"),
    (
        r"stages\.\d+\.(inception\w+)\.(branch\d(?:\.\d)?)\.(conv|norm)",
        lambda m: f"{m[1]}.{m[2]}.{'conv' if m[3] == 'conv' else 'bn'}",
    ),
    (r"(aux[12])\.conv\.(conv|norm)", lambda m: f"{m[1]}.conv.{'conv' if m[2] == 'conv' else 'bn'}"),
    (r"(aux[12])\.(fc[12])", r"\1.\2"),
    (r"head\.fc", "fc"),
]


def _apply_rules(module: str, rules: list[Rule]) -> str | None:
    for pattern, replacement in rules:
        m = re.fullmatch(pattern, module)
        if m:
            return replacement(m) if callable(replacement) else m.expand(replacement)
    return None


def _vgg_table(model: VGG) -> dict[str, str]:
    # torchvision's ``features`` is one flat list: conv, [bn,] ReLU per conv and one entry per max-pool.
    table, index = dict(VGG_HEAD), 0
    for s, stage in enumerate(model.stages):
        for name, child in stage.named_children():
            if isinstance(child, ConvNormAct):
                table[f"stages.{s}.{name}.conv"] = f"features.{index}"
                has_bn = isinstance(child.norm, nn.BatchNorm2d)
                if has_bn:
                    table[f"stages.{s}.{name}.norm"] = f"features.{index + 1}"
                index += 3 if has_bn else 2
            elif isinstance(child, nn.MaxPool2d):
                index += 1
    return table


def _check_architecture(model: nn.Module) -> None:
    """Reject, with the argument that fixes it, the depthlab options torchvision has no checkpoint for."""
    if isinstance(model, AlexNet) and model.variant != "torchvision":
        raise ValueError(f"torchvision's AlexNet is variant='torchvision', got variant={model.variant!r}")
    if isinstance(model, VGG) and model.config not in TORCHVISION_VGG:
        raise ValueError(
            f"torchvision has no VGG configuration {model.config!r}: only {', '.join(TORCHVISION_VGG)} load"
        )
    if isinstance(model, VGG) and model.head_kind != "imagenet":
        raise ValueError(
            f"torchvision's VGG has the ImageNet head: build with head='imagenet', not {model.head_kind!r}"
        )
    if isinstance(model, GoogLeNet) and model.variant != "torchvision":
        raise ValueError(f"torchvision's GoogLeNet is variant='torchvision', got variant={model.variant!r}")
    if isinstance(model, ResNet):
        for name, block in model.named_modules():
            if isinstance(block, BasicBlock) and type(block) not in (BasicBlock, Bottleneck):
                raise ValueError(
                    f"torchvision has no checkpoint for {type(block).__name__} blocks ({name}); "
                    "only residual BasicBlock/Bottleneck ResNets load"
                )
            if type(block) is Bottleneck and block.branch[0].conv.stride != (1, 1):
                raise ValueError(
                    "torchvision's bottlenecks stride the 3×3 conv (v1.5): build with stride_on='3x3', "
                    f"not '1x1' ({name})"
                )
        if any(isinstance(m, Scale) for m in model.modules()):
            raise ValueError("torchvision's ResNets have no SkipInit scales: build with skipinit=False")
        stem_conv = model.stem[0].conv if isinstance(model.stem[0], ConvNormAct) else None
        if stem_conv is None or stem_conv.kernel_size != (7, 7):
            raise ValueError("torchvision's ResNets have the 7×7 ImageNet stem: build with stem='imagenet'")


def torchvision_key_map(model: nn.Module) -> dict[str, str]:
    """For each key of ``model.state_dict()``, the torchvision state-dict key of the same tensor.

    ``ValueError`` if the model was built with options torchvision has no checkpoint for, or has a key
    with no torchvision counterpart; ``TypeError`` if it is not one of the supported families.
    """
    if not isinstance(model, (AlexNet, VGG, ResNet, GoogLeNet)):
        raise TypeError(f"load_torchvision_weights supports {SUPPORTED} models, got {type(model).__name__}")
    _check_architecture(model)
    table: dict[str, str] = {}
    rules: list[Rule] = []
    if isinstance(model, AlexNet):
        table = ALEXNET
    elif isinstance(model, VGG):
        table = _vgg_table(model)
    elif isinstance(model, ResNet):
        rules = RESNET
    else:
        rules = GOOGLENET

    names: dict[str, str] = {}
    unmatched: list[str] = []
    for key in model.state_dict():
        module, _, leaf = key.rpartition(".")
        target = table.get(module) if table else _apply_rules(module, rules)
        if target is None:
            unmatched.append(key)
        else:
            names[key] = f"{target}.{leaf}"
    if unmatched:
        raise ValueError(
            f"{type(model).__name__}: {len(unmatched)} key(s) have no torchvision counterpart "
            f"(was it built with options torchvision lacks, e.g. norm?): {_listing(unmatched)}"
        )
    return names


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def load_torchvision_weights(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, assign: bool = False
) -> nn.Module:
    """Load torchvision's ``state_dict`` into the depthlab ``model`` in place; returns ``model``.

    ``assign=True`` hands the checkpoint's tensors to the model instead of copying them
    (``nn.Module.load_state_dict(assign=True)``): build the model on the meta device, then load, and a
    VGG's 130M parameters are never allocated twice.

    ``ValueError`` naming, in torchvision's names, the keys the state dict lacks, the keys it has that the
    model does not, and every shape mismatch (e.g. a 1000-class ``fc`` into a 10-class model).
    """
    if isinstance(state_dict, nn.Module) or not isinstance(state_dict, Mapping):
        raise TypeError(
            f"state_dict must be a mapping of torchvision keys to tensors (e.g. tv_model.state_dict()), "
            f"got {type(state_dict).__name__}"
        )
    names = torchvision_key_map(model)
    ours = model.state_dict()
    wanted = {tv: key for key, tv in names.items()}
    ignored: tuple[str, ...] = ()
    if isinstance(model, GoogLeNet) and model.aux1 is None:
        ignored = ("aux1.", "aux2.")

    missing = [tv for tv in wanted if tv not in state_dict and not tv.endswith(".num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in wanted and not k.startswith(ignored)]
    mismatched = [
        f"{tv} (checkpoint {tuple(state_dict[tv].shape)}, model {tuple(ours[key].shape)})"
        for tv, key in wanted.items()
        if tv in state_dict and tuple(state_dict[tv].shape) != tuple(ours[key].shape)
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing {len(missing)} key(s): {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected {len(unexpected)} key(s): {_listing(unexpected)}")
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatch(es): {_listing(mismatched)}")
        raise ValueError(
            f"the state dict does not fit this {type(model).__name__} (keys in torchvision's names): "
            + "; ".join(problems)
        )
    # Only num_batches_tracked may be absent here; 0 is what a fresh BatchNorm holds.
    absent = torch.zeros((), dtype=torch.long)
    model.load_state_dict({key: state_dict.get(tv, absent) for key, tv in names.items()}, assign=assign)
    return model
