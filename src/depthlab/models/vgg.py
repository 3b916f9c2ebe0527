"""VGG: very deep networks of stacked 3×3 convolutions.

Paper: Simonyan, Zisserman. *Very Deep Convolutional Networks for Large-Scale Image Recognition*. ICLR 2015,
arXiv:1409.1556. ``vgg11/13/16/19`` are the paper's configurations A, B, D, E (Table 1); ``_bn`` variants
add batch norm after every conv (torchvision's ``vgg*_bn``; parameter counts equal torchvision's).
``vgg11_lrn`` is configuration A-LRN and ``vgg16c``/``vgg16c_bn`` configuration C, which torchvision lacks:

* A-LRN: configuration A with local response normalisation after the first conv's ReLU, before pool1
  (Table 1: conv3-64, LRN, maxpool), with AlexNet's constants (§2.1: "the parameters for the LRN layer are
  those of (Krizhevsky et al., 2012)": k=2, n=5, α=1e-4, β=0.75; :func:`depthlab.layers.krizhevsky_lrn`).
  LRN has no parameters: 132,863,336 like ``vgg11``.
* C: configuration D with the last conv of stages 3, 4 and 5 a 1×1 conv (padding 0): 16 weight layers like
  D, but those three see no spatial context. At 1000 classes with the ImageNet head: 133,638,952
  parameters (D's 138,357,544 minus 8·(256² + 2·512²) = 4,718,592 for the three 3×3 → 1×1 kernels; the
  paper's Table 2 rounds it to 134M).

The paper's Table 3 compares A, A-LRN, B, C, D, E (single-scale top-1 error 29.6 / 29.7 / 28.7 / 28.1 /
27.0 / 27.3): LRN does not help, and C's 1×1 convs are worse than D's 3×3 at equal depth.

Layout: ``stem`` is empty (VGG has no stem), ``stages`` are the five conv groups, each ending in its 2×2/2
max-pool (children ``conv{s}_{j}`` and ``pool{s}``, the paper's names), and ``head`` is the classifier; the
last child of ``head`` is always the final linear layer. A-LRN's stage 1 is ``conv1_1``, ``lrn``, ``pool1``.

Heads, selected by ``head``:
* ``"imagenet"`` (default, the paper's): adaptive 7×7 average pool → fc6 512·7·7→4096 → ReLU → dropout 0.5
  → fc7 4096→4096 → ReLU → dropout 0.5 → fc8 4096→classes, layer for layer as torchvision.
* ``"small"`` (not in the paper; for 28/32-pixel images, like the common CIFAR VGGs): pool5 is dropped and
  its role is taken by a global average pool, then fc1 512→512 → ReLU → dropout 0.5 → fc2 512→classes.
  Four poolings instead of five let 28×28 inputs through (28 → 14 → 7 → 3 → 1), and at 10 classes the
  head has 0.27M parameters instead of 120M.

Deviations from the paper, and how to select the paper's choice:
* The adaptive 7×7 pool before fc6 is the identity at 224×224 (pool5 is already 7×7); it lets other sizes
  reach the fixed-size fc6. The paper instead evaluated densely, turning the FC layers into convolutions.
* ``norm="batch"`` (the ``_bn`` builders) adds BatchNorm after every conv; the paper (2014) predates batch
  norm: ``norm=None``, the plain builders' default. The convs keep their biases under BN, as torchvision's
  do (redundant before BN, but part of its parameter counts and checkpoints).
* Initialisation as torchvision: He (Kaiming) normal fan-out for convs, N(0, 0.01) for linear layers, zero
  biases. The paper trained configuration A from N(0, 0.01) and initialised the deeper nets from it (later
  noting that Glorot initialisation works without pre-training).

Width (``width``, default 1; a depthlab addition, in neither paper): every channel count — each conv of
Table 1 and the head's hidden FC width (4096 for the ImageNet head, 512 for the small one) — is multiplied by
``width`` and rounded to the nearest multiple of 8, halves up, at least 8: max(8, ⌊c·w/8 + ½⌋·8)
(:func:`depthlab.layers.scale_channels`). Width 1 is the paper's net, count for count. The head narrows too:
VGG-16 at width 0.25 with a 4096-wide head would have 47.5M parameters, 98% of them in the head (a wide MLP
on narrow features); with a 1024-wide head it has 9.4M. The small head already ties its hidden width to
conv5's (512 = 512), and scaling both keeps that tie. Parameters fall about as width² (the first conv's input and
the last FC's output do not scale). ``depthlab models --width 0.5 0.25`` lists the narrow counts.

Smallest input: 32×32 with the ImageNet head (five 2×2/2 pools: 32 → 1), 16×16 with the small head (four).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from depthlab.errors import UsageError
from depthlab.layers import ConvNormAct, check_norm, check_width, init_he, krizhevsky_lrn, scale_channels
from depthlab.models.base import FeatureInfo, ZooModel
from depthlab.registry import register_model

__all__ = ["VGG", "CONFIGS", "HEADS"]

PAPER = "arXiv:1409.1556"
# The paper's Table 1 columns (torchvision's notation, extended): an int is a 3×3 conv of that width,
# (width, k) a k×k conv, "M" a 2×2/2 max-pool, "LRN" local response normalisation.
Layer = int | tuple[int, int] | str
# fmt: off
CONFIGS: dict[str, list[Layer]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M", 512, 512, (512, 1), "M", 512, 512, (512, 1), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
# fmt: on
HEADS: tuple[str, ...] = ("imagenet", "small")
POOL_OUT = 7  # pool5 is 7×7 at 224×224; fc6 sees 512·7·7 = 25088 features
HIDDEN = {"imagenet": 4096, "small": 512}


def _groups(config: list[Layer]) -> list[list[tuple[int, int] | str]]:
    """[64, "LRN", "M", (128, 1), "M", ...] -> [[(64, 3), "LRN"], [(128, 1)], ...]: each pool-terminated
    group as (width, kernel) convs and "LRN" markers."""
    groups: list[list[tuple[int, int] | str]] = [[]]
    for v in config:
        if v == "M":
            groups.append([])
        elif v == "LRN":
            groups[-1].append("LRN")
        elif isinstance(v, tuple):
            groups[-1].append((int(v[0]), int(v[1])))
        else:
            groups[-1].append((int(v), 3))
    return [g for g in groups if g]


class VGG(ZooModel):
    """Five groups of 3×3 convs (padding 1; C has three 1×1), each followed by a 2×2/2 max-pool, then a
    classifier head."""

    def __init__(
        self,
        config: str = "D",
        num_classes: int = 1000,
        in_channels: int = 3,
        norm: str | None = None,
        head: str = "imagenet",
        dropout: float = 0.5,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        width = check_width(width)
        if config not in CONFIGS:
            raise UsageError(f"config must be one of {tuple(CONFIGS)}, got {config!r}")
        if head not in HEADS:
            raise UsageError(f"head must be one of {HEADS}, got {head!r}")
        check_norm(norm)
        if not 0.0 <= dropout < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {dropout!r}")
        self.num_classes, self.in_channels = num_classes, in_channels
        self.config, self.head_kind, self.width = config, head, width
        groups = _groups(CONFIGS[config])

        self.stem = nn.Identity()
        stages: list[nn.Sequential] = []
        self.feature_info = []
        channels, reduction = in_channels, 1
        for s, group in enumerate(groups, start=1):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            j = 0
            for item in group:
                if item == "LRN":
                    layers["lrn"] = krizhevsky_lrn()  # after the ReLU of the conv before it
                    continue
                out, k = scale_channels(item[0], width), item[1]
                j += 1
                # Padding k // 2 keeps the size (1 for 3×3, 0 for C's 1×1). bias=True even before BN:
                # torchvision's vgg*_bn keep it (redundant, but counted).
                layers[f"conv{s}_{j}"] = ConvNormAct(channels, out, k, 1, k // 2, norm=norm, bias=True)
                channels = out
            # The small head's global pool replaces pool5.
            if not (head == "small" and s == len(groups)):
                layers[f"pool{s}"] = nn.MaxPool2d(2, 2)
                reduction *= 2
            stages.append(nn.Sequential(layers))
            self.feature_info.append(FeatureInfo(f"stages.{s - 1}", channels, reduction))
        self.stages = nn.Sequential(*stages)
        self.min_input_size = reduction  # each 2×2/2 pool halves (floor) the side: it must reach 1
        self.num_features = channels

        hidden = scale_channels(HIDDEN[head], width)  # the head narrows with the convs (module docstring)
        if head == "imagenet":
            self.head = nn.Sequential(
                OrderedDict(
                    pool=nn.AdaptiveAvgPool2d(POOL_OUT),
                    flatten=nn.Flatten(1),  # (N, 512w · 7 · 7)
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
                    flatten=nn.Flatten(1),  # (N, 512w)
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
def vgg11_lrn(**kwargs: object) -> VGG:
    return VGG(**{"config": "A-LRN", **kwargs})  # type: ignore[arg-type]


@register_model("vgg", VGG, _IMAGENET, PAPER)
def vgg13(**kwargs: object) -> VGG:
    return VGG(**{"config": "B", **kwargs})  # type: ignore[arg-type]


@register_model("vgg", VGG, _IMAGENET, PAPER)
def vgg13_bn(**kwargs: object) -> VGG:
    return VGG(**{"config": "B", "norm": "batch", **kwargs})  # type: ignore[arg-type]


@register_model("vgg", VGG, _IMAGENET, PAPER)
def vgg16c(**kwargs: object) -> VGG:
    return VGG(**{"config": "C", **kwargs})  # type: ignore[arg-type]


@register_model("vgg", VGG, _IMAGENET, PAPER)
def vgg16c_bn(**kwargs: object) -> VGG:
    return VGG(**{"config": "C", "norm": "batch", **kwargs})  # type: ignore[arg-type]


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
