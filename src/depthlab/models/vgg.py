"""VGG: very deep networks of stacked 3×3 convolutions.

Paper: Simonyan, Zisserman. *Very Deep Convolutional Networks for Large-Scale Image Recognition*. ICLR 2015,
arXiv:1409.1556. ``vgg11/13/16/19`` are the paper's configurations A, B, D, E; ``_bn`` variants add batch
norm after every conv (torchvision's ``vgg*_bn``; parameter counts equal torchvision's).

Layout: ``stem`` is empty (VGG has no stem), ``stages`` are the five conv groups, each ending in its 2×2/2
max-pool (children ``conv{s}_{j}`` and ``pool{s}``, the paper's names), and ``head`` is the classifier; the
last child of ``head`` is always the final linear layer.

Heads, selected by ``head``:
* ``"imagenet"`` (default, the paper's): adaptive 7×7 average pool → fc6 512·7·7→4096 → ReLU → dropout 0.5
  → fc7 4096→4096 → ReLU → dropout 0.5 → fc8 4096→classes, layer for layer as torchvision.
* ``"small"`` (not in the paper; for 28/32-pixel images, like the common CIFAR VGGs): pool5 is dropped and
  its role is taken by a global average pool, then fc1 512→512 → ReLU → dropout 0.5 → fc2 512→classes.
  Four poolings instead of five let 28×28 inputs through (28 → 14 → 7 → 3 → 1), and at 10 classes the
  head has 0.27M parameters instead of 120M.

Deviations from the paper, and how to select the paper's choice:
* Configurations A-LRN and C (with 1×1 convs) are not provided.
* The adaptive 7×7 pool before fc6 is the identity at 224×224 (pool5 is already 7×7); it lets other sizes
  reach the fixed-size fc6. The paper instead evaluated densely, turning the FC layers into convolutions.
* ``norm="batch"`` (the ``_bn`` builders) adds BatchNorm after every conv; the paper (2014) predates batch
  norm: ``norm=None``, the plain builders' default. The convs keep their biases under BN, as torchvision's
  do (redundant before BN, but part of its parameter counts and checkpoints).
* Initialisation as torchvision: He (Kaiming) normal fan-out for convs, N(0, 0.01) for linear layers, zero
  biases. The paper trained configuration A from N(0, 0.01) and initialised the deeper nets from it (later
  noting that Glorot initialisation works without pre-training).

Smallest input: 32×32 with the ImageNet head (five 2×2/2 pools: 32 → 1), 16×16 with the small head (four).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from depthlab.errors import UsageError
from depthlab.layers import ConvNormAct, check_norm, init_he
from depthlab.models.base import FeatureInfo, ZooModel
from depthlab.registry import register_model

__all__ = ["VGG", "CONFIGS", "HEADS"]

PAPER = "arXiv:1409.1556"
# The paper's Table 1 columns: conv widths, "M" for a 2×2/2 max-pool (torchvision's table).
# fmt: off
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
# fmt: on
HEADS: tuple[str, ...] = ("imagenet", "small")
POOL_OUT = 7  # pool5 is 7×7 at 224×224; fc6 sees 512·7·7 = 25088 features
HIDDEN = {"imagenet": 4096, "small": 512}


def _groups(config: list[int | str]) -> list[list[int]]:
    """[64, "M", 128, "M", ...] -> [[64], [128], ...]: the conv widths of each pool-terminated group."""
    groups: list[list[int]] = [[]]
    for v in config:
        if v == "M":
            groups.append([])
        else:
            groups[-1].append(int(v))
    return [g for g in groups if g]


class VGG(ZooModel):
    """Five groups of 3×3 convs (padding 1), each followed by a 2×2/2 max-pool, then a classifier head."""

    def __init__(
        self,
        config: str = "D",
        num_classes: int = 1000,
        in_channels: int = 3,
        norm: str | None = None,
        head: str = "imagenet",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if config not in CONFIGS:
            raise UsageError(f"config must be one of {tuple(CONFIGS)}, got {config!r}")
        if head not in HEADS:
            raise UsageError(f"head must be one of {HEADS}, got {head!r}")
        check_norm(norm)
        if not 0.0 <= dropout < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {dropout!r}")
        self.num_classes, self.in_channels = num_classes, in_channels
        self.config, self.head_kind = config, head
        groups = _groups(CONFIGS[config])

        self.stem = nn.Identity()
        stages: list[nn.Sequential] = []
        self.feature_info = []
        channels, reduction = in_channels, 1
        for s, widths in enumerate(groups, start=1):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            for j, width in enumerate(widths, start=1):
                # bias=True even before BN: torchvision's vgg*_bn keep it (redundant, but counted).
                layers[f"conv{s}_{j}"] = ConvNormAct(channels, width, 3, 1, 1, norm=norm, bias=True)
                channels = width
            # The small head's global pool replaces pool5.
            if not (head == "small" and s == len(groups)):
                layers[f"pool{s}"] = nn.MaxPool2d(2, 2)
                reduction *= 2
            stages.append(nn.Sequential(layers))
            self.feature_info.append(FeatureInfo(f"stages.{s - 1}", channels, reduction))
        self.stages = nn.Sequential(*stages)
        self.min_input_size = reduction  # each 2×2/2 pool halves (floor) the side: it must reach 1
        self.num_features = channels

        hidden = HIDDEN[head]
        if head == "imagenet":
            self.head = nn.Sequential(
                OrderedDict(
                    pool=nn.AdaptiveAvgPool2d(POOL_OUT),
                    flatten=nn.Flatten(1),  # (N, 512 · 7 · 7)
                    fc6=nn.Linear(channels * POOL_OUT * POOL_OUT, hidden),
                    act6=nn.ReLU(),
                    drop6=nn.Dropout(dropout),
                    fc7=nn.Linear(hidden, hidden),
                    act7=nn.ReLU(),
                    drop7=nn.Dropout(dropout),
                    fc8=nn.Linear(hidden, num_classes),
                )
            )
        else:
            self.head = nn.Sequential(
                OrderedDict(
                    pool=nn.AdaptiveAvgPool2d(1),
                    flatten=nn.Flatten(1),  # (N, 512)
                    fc1=nn.Linear(channels, hidden),
                    act1=nn.ReLU(),
                    drop1=nn.Dropout(dropout),
                    fc2=nn.Linear(hidden, num_classes),
                )
            )
        self._init_weights()

    def _init_weights(self) -> None:
        init_he(self, linear_std=0.01)


# -------------------------------------------------------------------------------------------- builders
_IMAGENET = (3, 224, 224)


@register_model("vgg", VGG, _IMAGENET, PAPER)
def vgg11(**kwargs: object) -> VGG:
    return VGG(**{"config": "A", **kwargs})  # type: ignore[arg-type]


@register_model("vgg", VGG, _IMAGENET, PAPER)
def vgg11_bn(**kwargs: object) -> VGG:
    return VGG(**{"config": "A", "norm": "batch", **kwargs})  # type: ignore[arg-type]


@register_model("vgg", VGG, _IMAGENET, PAPER)
def vgg13(**kwargs: object) -> VGG:
    return VGG(**{"config": "B", **kwargs})  # type: ignore[arg-type]


@register_model("vgg", VGG, _IMAGENET, PAPER)
def vgg13_bn(**kwargs: object) -> VGG:
    return VGG(**{"config": "B", "norm": "batch", **kwargs})  # type: ignore[arg-type]


@register_model("vgg", VGG, _IMAGENET, PAPER)
def vgg16(**kwargs: object) -> VGG:
    return VGG(**{"config": "D", **kwargs})  # type: ignore[arg-type]


@register_model("vgg", VGG, _IMAGENET, PAPER)
def vgg16_bn(**kwargs: object) -> VGG:
    return VGG(**{"config": "D", "norm": "batch", **kwargs})  # type: ignore[arg-type]


@register_model("vgg", VGG, _IMAGENET, PAPER)
def vgg19(**kwargs: object) -> VGG:
    return VGG(**{"config": "E", **kwargs})  # type: ignore[arg-type]


@register_model("vgg", VGG, _IMAGENET, PAPER)
def vgg19_bn(**kwargs: object) -> VGG:
    return VGG(**{"config": "E", "norm": "batch", **kwargs})  # type: ignore[arg-type]
