"""AlexNet, in torchvision's single-tower form (default) and the paper's two-tower form.

Paper: Krizhevsky, Sutskever, Hinton. *ImageNet Classification with Deep Convolutional Neural Networks*.
NeurIPS 2012. https://papers.nips.cc/paper/4824 . The default follows torchvision, whose layout is that of
Krizhevsky's *One weird trick for parallelizing convolutional neural networks* (2014, arXiv:1404.5997).

Layers (names follow the paper): conv1 11×11/4 → ReLU → max-pool 3×3/2 (overlapping) → conv2 5×5 → ReLU →
max-pool → conv3, conv4, conv5 3×3 → ReLU → max-pool → fc6 4096 → fc7 4096 → fc8, with dropout 0.5 (see
below). ``stem`` is conv1 + pool1, ``stages`` are (conv2 + pool2) and (conv3–conv5 + pool5), ``head`` is
the adaptive pool and fc6–fc8; the last child of ``head`` is the classifier.

Deviations of the default (``variant="torchvision"``) from the 2012 paper; ``variant="paper"`` selects the
paper's choice for the first four:
* Single tower: the paper split conv2, conv4, conv5 into two groups, one per GPU (``groups=2``); here every
  conv sees all input channels.
* Channel counts 64-192-384-256-256 (the 2014 paper's); the 2012 paper had 96-256-384-384-256.
* No local response normalisation; the paper applied LRN (k=2, n=5, α=1e-4, β=0.75, after the ReLUs of
  conv1 and conv2, before pooling). PyTorch's ``LocalResponseNorm`` divides α by n, so the paper's α is
  passed as 5e-4.
* Dropout placement: torchvision drops the *inputs* of fc6 and fc7 (``drop6`` → fc6, ``drop7`` → fc7, so
  pool5's features are dropped and fc7's output is not). The paper (§4.2: "We use dropout in the first two
  fully-connected layers", "setting to zero the output of each hidden neuron with probability 0.5") drops
  the *outputs* of fc6 and fc7: fc6 → ReLU → ``drop6`` → fc7 → ReLU → ``drop7`` → fc8. Dropping after or
  before the ReLU is the same (ReLU(0) = 0 and the 1/(1-p) rescaling is positive).
* Both variants: an adaptive 6×6 average pool before fc6 (the identity at 224×224, where pool5 is already
  6×6; it lets other input sizes reach the fixed-size fc6), and conv1 padding 2 (the paper's 224-pixel
  input does not give its stated 55×55 without it; many ports use 227 pixels and no padding instead).
* ``norm="batch"`` adds BatchNorm after every conv (not in either paper; convs then lose their biases).
* Initialisation: the paper's N(0, 0.01) weights with biases 1 in conv2, conv4, conv5, fc6, fc7 for
  ``variant="paper"``; PyTorch's default initialisation (as torchvision) otherwise.

Smallest input: 63×63. Sizes go s → ⌊(s−7)/4⌋+1 (conv1) → ⌊(·−3)/2⌋+1 (each of the three pools), and
pool5 needs a 3×3 map: 63 → 15 → 7 → 3 → 1, whereas 62 → 14 → 6 → 2 fails at pool5.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from depthlab.layers import ConvNormAct, check_norm, krizhevsky_lrn
from depthlab.models.base import FeatureInfo, ZooModel
from depthlab.registry import register_model

__all__ = ["AlexNet", "VARIANTS"]

PAPER = "Krizhevsky et al. 2012 (NeurIPS); torchvision layout from arXiv:1404.5997"
VARIANTS: tuple[str, ...] = ("torchvision", "paper")
# conv1..conv5 output channels per variant.
WIDTHS: dict[str, tuple[int, int, int, int, int]] = {
    "torchvision": (64, 192, 384, 256, 256),
    "paper": (96, 256, 384, 384, 256),
}
# The paper's two GPUs: conv2, conv4 and conv5 only see the half of their input on the same GPU.
TOWER_GROUPS: dict[str, tuple[int, int, int, int, int]] = {
    "torchvision": (1, 1, 1, 1, 1),
    "paper": (1, 2, 1, 2, 2),
}
POOL_OUT = 6  # pool5 is 6×6 at 224×224; fc6 sees 256·6·6 = 9216 features
MIN_INPUT = 63  # see the module docstring


class AlexNet(ZooModel):
    """Five convs with three overlapping max-pools, then three fully connected layers."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        variant: str = "torchvision",
        norm: str | None = None,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        check_norm(norm)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.num_classes, self.in_channels, self.variant = num_classes, in_channels, variant
        self.min_input_size = MIN_INPUT
        c1, c2, c3, c4, c5 = WIDTHS[variant]
        g1, g2, g3, g4, g5 = TOWER_GROUPS[variant]
        paper = variant == "paper"

        def lrn() -> dict[str, nn.Module]:
            return {"lrn": krizhevsky_lrn()} if paper else {}

        # (N, C, 224, 224) -> conv1 (N, c1, 55, 55) -> pool1 (N, c1, 27, 27)
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=ConvNormAct(in_channels, c1, 11, 4, 2, norm=norm, groups=g1),
                **lrn(),
                pool1=nn.MaxPool2d(3, 2),
            )
        )
        self.stages = nn.Sequential(
            # -> conv2 (N, c2, 27, 27) -> pool2 (N, c2, 13, 13)
            nn.Sequential(
                OrderedDict(
                    conv2=ConvNormAct(c1, c2, 5, 1, 2, norm=norm, groups=g2),
                    **lrn(),
                    pool2=nn.MaxPool2d(3, 2),
                )
            ),
            # -> conv3..conv5 (N, ·, 13, 13) -> pool5 (N, c5, 6, 6)
            nn.Sequential(
                OrderedDict(
                    conv3=ConvNormAct(c2, c3, 3, 1, 1, norm=norm, groups=g3),
                    conv4=ConvNormAct(c3, c4, 3, 1, 1, norm=norm, groups=g4),
                    conv5=ConvNormAct(c4, c5, 3, 1, 1, norm=norm, groups=g5),
                    pool5=nn.MaxPool2d(3, 2),
                )
            ),
        )
        self.feature_info = [FeatureInfo("stages.0", c2, 16), FeatureInfo("stages.1", c5, 32)]
        head: OrderedDict[str, nn.Module] = OrderedDict(
            pool=nn.AdaptiveAvgPool2d(POOL_OUT),
            flatten=nn.Flatten(1),  # (N, c5 · 6 · 6)
        )
        fc6 = nn.Linear(c5 * POOL_OUT * POOL_OUT, 4096)
        fc7 = nn.Linear(4096, 4096)
        if paper:  # §4.2: dropout on the outputs of fc6 and fc7
            head.update(fc6=fc6, act6=nn.ReLU(), drop6=nn.Dropout(dropout))
            head.update(fc7=fc7, act7=nn.ReLU(), drop7=nn.Dropout(dropout))
        else:  # torchvision: dropout on the inputs of fc6 and fc7
            head.update(drop6=nn.Dropout(dropout), fc6=fc6, act6=nn.ReLU())
            head.update(drop7=nn.Dropout(dropout), fc7=fc7, act7=nn.ReLU())
        head["fc8"] = nn.Linear(4096, num_classes)
        self.head = nn.Sequential(head)
        self.num_features = c5
        if paper:
            self._init_paper()

    def _init_paper(self) -> None:
        # Section 5 of the paper: weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7, else 0.
        ones = {"stages.0.conv2.conv", "stages.1.conv4.conv", "stages.1.conv5.conv", "head.fc6", "head.fc7"}
        for name, m in self.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 1.0 if name in ones else 0.0)


@register_model("alexnet", AlexNet, (3, 224, 224), PAPER)
def alexnet(**kwargs: object) -> AlexNet:
    return AlexNet(**kwargs)  # type: ignore[arg-type]
