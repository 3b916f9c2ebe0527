"""ResNet, its plain twins, and pre-activation ResNet.

Papers:
* He, Zhang, Ren, Sun. *Deep Residual Learning for Image Recognition*. CVPR 2016, arXiv:1512.03385.
* He, Zhang, Ren, Sun. *Identity Mappings in Deep Residual Networks*. ECCV 2016, arXiv:1603.05027.

One class, :class:`ResNet`, builds all of them; the *block* decides what a network is. A plain network is
the ResNet with :class:`PlainBasicBlock` / :class:`PlainBottleneck`: the same convolutions, norms and ReLUs,
with the shortcut (and the addition) removed and nothing else changed.

ImageNet nets (``resnet18``…``resnet152``, ``plain18``…, ``preact_resnet18/34/50``): 7×7/2 stem conv +
3×3/2 max-pool, four stages of widths 64/128/256/512 (×4 for bottlenecks). CIFAR nets (``resnet20``…
``resnet1202``, 6n+2 layers; ``preact_resnet164/1001``, 9n+2 layers): 3×3 stem conv, three stages of widths
16/32/64, global average pool, one FC layer.

Deviations from the papers, and how to select the paper's choice:
* Bottleneck stride: the v1 paper strides the first 1×1 conv; torchvision ("v1.5") strides the 3×3 conv,
  which is the default here so torchvision checkpoints load. ``stride_on="1x1"`` gives the paper's v1.
* ImageNet shortcuts default to option B (projection where the shape changes) as in torchvision; the paper's
  Table 2 plain-vs-residual comparison used option A (``shortcut="A"``), under which ``plainN`` and
  ``resnetN`` have identical parameter counts. CIFAR nets default to option A, as in the paper.
* ``norm=None`` removes every BatchNorm (convs then get biases): not in the papers, used to study vanishing
  gradients. ``zero_init_residual=True`` zeroes the last BN scale of every residual branch (Goyal et al.
  2017), off by default as in the paper.
* ``skipinit=True`` (an option, not in the ResNet papers): SkipInit (De & Smith 2020, "Batch normalization
  biases residual blocks towards the identity function in deep networks", arXiv:2002.10444; related:
  Fixup, Zhang et al. 2019, arXiv:1901.09321) appends to every residual branch a learnable scalar
  (:class:`depthlab.layers.Scale`, parameter ``scale``) initialised to 0, as the *last* module of
  ``.branch`` — so ``.branch(x)`` is exactly the term added to the shortcut. Each block then starts as
  its shortcut (then ReLU; pre-activation blocks: the shortcut alone), which keeps a BN-free net
  (``norm=None``) from growing its activations with depth at initialisation. It adds one parameter per
  block. Plain nets refuse it (``OptionError``): a plain block has no identity path to fall back on.
* ``branch_scale`` (an option, not in the ResNet papers): every residual branch ends in a *fixed* factor α
  (:class:`BranchScale`, no parameter), so a block computes x + α·F(x) — the rescaled ResNets that
  Balduzzi et al. 2017 ("The shattered gradients problem", arXiv:1702.08591, §3) discuss. ``"1/sqrt(blocks)"``
  sets α = 1/√B for the net's B residual blocks (ResNet-56: 27 blocks, α ≈ 0.192); a number sets α itself.
  Unlike SkipInit's 0, the branches are live at initialisation, while the variance the B branches add to
  the signal stays bounded, so a BN-free net (``norm=None``) neither switches its branches off nor blows up
  forward with depth (tests/test_resnet.py measures both on ResNet-56). Default ``None``: no factor, as in
  the papers. It cannot be combined with ``skipinit`` (a branch has one end scale), and plain nets refuse it.
* ``width`` (an option, not in the ResNet papers, as for VGG and GoogLeNet): a channel multiplier applied to
  every stage width and the stem (:func:`depthlab.layers.scale_channels`: the nearest multiple of 8, halves
  up, at least 8). Width 1 is the paper's net, count for count; CIFAR nets at width 0.5 are 8/16/32 wide
  (a quarter of the MACs), which the degradation study's ``quick`` preset trains to fit a 2-core CPU.

Pre-activation nets (Identity Mappings paper, §4.1; reference code: KaimingHe/resnet-1k-layers
``resnet-pre-act.lua`` for ResNet-164/1001, facebook/fb.resnet.torch ``models/preresnet.lua`` for the rest):
* The unit is BN-ReLU-conv repeated; the addition is not followed by a ReLU, and the head starts with a
  final BN-ReLU. Projection shortcuts (option B, the default) are 1×1 convs without BN or bias.
* Where the first BN-ReLU of a unit goes (``PreActBlock(..., preact=...)``, set by :class:`ResNet`):
  inside the branch (``"branch"``, every unit but the first of a stage: the shortcut carries the
  un-activated sum x); before the split (``"both"``, the block's ``.preact``: branch *and* shortcut take
  BN-ReLU(x)) in the first unit of every stage — in the first unit of a CIFAR net that is BN-ReLU of the
  stem conv, the paper's "first activation right after conv1 and before splitting into two paths", and
  in the first unit of each later stage the projection shortcut reads the activated input, as in both
  reference codes; ``"none"`` in the first unit of an ImageNet net, whose stem is conv-BN-ReLU-maxpool as
  in fb.resnet.torch: its input is already activated, so BN-ReLU is not applied twice.
* Parameter counts: moving a BN from the branch to before the split changes nothing, so the CIFAR nets
  keep their counts (``preact_resnet164``: 1,703,258 at 10 classes, the paper's 1.7M; ``preact_resnet1001``:
  10,327,706, of which 10,178,490 are conv and FC weights — the paper's 10.2M matches the count without BN
  parameters). The ImageNet nets lose the first unit's redundant 64-channel BN (128 parameters).
* Stride: the bottleneck strides its 3×3 conv (fb.resnet.torch); resnet-1k-layers strides the first 1×1
  (``stride_on="1x1"``), the same parameters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from depthlab.errors import OptionError, UsageError, UsageTypeError
from depthlab.layers import (
    ConvNormAct,
    NormActConv,
    Scale,
    check_norm,
    check_width,
    init_he,
    make_norm,
    make_shortcut,
    scale_channels,
)
from depthlab.models.base import ClassifierHead, FeatureInfo, ZooModel
from depthlab.registry import register_model

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "PlainBasicBlock",
    "PlainBottleneck",
    "PreActBlock",
    "PreActBottleneck",
    "BLOCKS",
    "BRANCH_SCALES",
    "BranchScale",
    "ResNet",
    "resolve_branch_scale",
]

# name: (block, blocks per stage, stem) — block names index BLOCKS below.
IMAGENET_DEPTHS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_WIDTHS = (16, 32, 64)
STRIDE_PLACEMENTS = ("3x3", "1x1")
STEMS = ("imagenet", "cifar")
PREACT_MODES = ("branch", "both", "none")  # where a pre-activation unit's first BN-ReLU goes
PAPER_V1 = "arXiv:1512.03385"
PAPER_PREACT = "arXiv:1603.05027"


BRANCH_SCALES = ("1/sqrt(blocks)",)  # the named rules for ``branch_scale`` (a number is also accepted)


# ---------------------------------------------------------------------------------------------- blocks
class BranchScale(nn.Module):
    """Multiply by a fixed factor α (a constant, not a parameter): the end of a rescaled residual branch,
    x + α·F(x) (Balduzzi et al. 2017). Adds nothing to the state dict or the parameter count."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:.4g}"


def resolve_branch_scale(branch_scale: float | str | None, blocks: int) -> float | None:
    """The factor α of ``branch_scale`` for a net of ``blocks`` residual blocks (``None``: no factor)."""
    if branch_scale is None:
        return None
    if isinstance(branch_scale, str):
        if branch_scale not in BRANCH_SCALES:
            raise OptionError(
                f"branch_scale must be a positive number, one of {BRANCH_SCALES} or None, got {branch_scale!r}"
            )
        return 1.0 / blocks**0.5
    if isinstance(branch_scale, bool) or not isinstance(branch_scale, (int, float)):
        raise UsageTypeError(f"branch_scale must be a number, a string or None, got {branch_scale!r}")
    if not 0.0 < float(branch_scale) < float("inf"):
        raise OptionError(f"branch_scale must be a positive finite number, got {branch_scale!r}")
    return float(branch_scale)


def _skipinit(
    branch: list[nn.Module], skipinit: bool, residual: bool, name: str, branch_scale: float | None = None
) -> list[nn.Module]:
    """Append the branch's end scale as its last module (residual blocks only): SkipInit's learnable scalar
    initialised to 0, or the fixed factor α of a rescaled branch."""
    if not skipinit and branch_scale is None:
        return branch
    option = "skipinit=True" if skipinit else "branch_scale"
    if not residual:
        raise OptionError(
            f"{option} needs a residual block, got {name}: a plain block has no identity path to fall "
            "back on, so a scaled branch would scale the whole signal"
        )
    # Last, so that `.branch(x)` is exactly the term added to the shortcut (the diagnostics hook it).
    end: nn.Module = Scale(0.0) if branch_scale is None else BranchScale(branch_scale)
    return [*branch, end]


class BasicBlock(nn.Module):
    """Two 3×3 convs; out = ReLU(F(x) + shortcut(x)) (with SkipInit, F ends in a scalar initialised to 0)."""

    expansion: ClassVar[int] = 1
    residual: ClassVar[bool] = True

    def __init__(
        self,
        in_channels: int,
        inner_channels: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        norm: str | None = "batch",
        stride_on: str = "3x3",
        skipinit: bool = False,
        branch_scale: float | None = None,
    ) -> None:
        super().__init__()
        out_channels = inner_channels * self.expansion
        branch = [
            ConvNormAct(in_channels, inner_channels, 3, stride, norm=norm),
            ConvNormAct(inner_channels, out_channels, 3, norm=norm, act=False),
        ]
        self.branch = nn.Sequential(
            *_skipinit(branch, skipinit, self.residual, type(self).__name__, branch_scale)
        )
        self.shortcut = (
            make_shortcut(shortcut, in_channels, out_channels, stride, norm) if self.residual else None
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.shortcut is not None:
            # The +x term: dL/dx = dL/dH · (1 + dF/dx) — a gradient path that skips the branch.
            out = out + self.shortcut(x)
        return self.act(out)


class Bottleneck(BasicBlock):
    """1×1 reduce → 3×3 → 1×1 expand (×4); out = ReLU(F(x) + shortcut(x))."""

    expansion: ClassVar[int] = 4

    def __init__(
        self,
        in_channels: int,
        inner_channels: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        norm: str | None = "batch",
        stride_on: str = "3x3",
        skipinit: bool = False,
        branch_scale: float | None = None,
    ) -> None:
        nn.Module.__init__(self)
        if stride_on not in STRIDE_PLACEMENTS:
            raise UsageError(f"stride_on must be one of {STRIDE_PLACEMENTS}, got {stride_on!r}")
        out_channels = inner_channels * self.expansion
        s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        branch = [
            ConvNormAct(in_channels, inner_channels, 1, s1, norm=norm),
            ConvNormAct(inner_channels, inner_channels, 3, s3, norm=norm),
            ConvNormAct(inner_channels, out_channels, 1, norm=norm, act=False),
        ]
        self.branch = nn.Sequential(
            *_skipinit(branch, skipinit, self.residual, type(self).__name__, branch_scale)
        )
        self.shortcut = (
            make_shortcut(shortcut, in_channels, out_channels, stride, norm) if self.residual else None
        )
        self.act = nn.ReLU()


class PlainBasicBlock(BasicBlock):
    """:class:`BasicBlock` without the shortcut: out = ReLU(F(x))."""

    residual: ClassVar[bool] = False


class PlainBottleneck(Bottleneck):
    """:class:`Bottleneck` without the shortcut: out = ReLU(F(x))."""

    residual: ClassVar[bool] = False


def _preact(mode: str, in_channels: int, norm: str | None) -> nn.Module:
    """The block-level BN-ReLU taken before the split ("both"), or the identity."""
    if mode not in PREACT_MODES:
        raise UsageError(f"preact must be one of {PREACT_MODES}, got {mode!r}")
    if mode != "both":
        return nn.Identity()
    return nn.Sequential(OrderedDict(norm=make_norm(norm, in_channels), act=nn.ReLU()))


class PreActBlock(BasicBlock):
    """Pre-activation basic block: out = s(x) + conv(ReLU(BN(conv(ReLU(BN(x)))))); no ReLU after the add.

    ``preact`` says where the unit's first BN-ReLU goes (see the module docstring): ``"branch"`` (inside
    the branch; the shortcut sees x), ``"both"`` (``.preact``, before the split; branch and shortcut see
    BN-ReLU(x)), ``"none"`` (the input is already activated: no BN-ReLU at the unit's entry).
    """

    def __init__(
        self,
        in_channels: int,
        inner_channels: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        norm: str | None = "batch",
        stride_on: str = "3x3",
        skipinit: bool = False,
        branch_scale: float | None = None,
        preact: str = "branch",
    ) -> None:
        nn.Module.__init__(self)
        out_channels = inner_channels * self.expansion
        self.preact = _preact(preact, in_channels, norm)
        branch = [
            NormActConv(in_channels, inner_channels, 3, stride, norm=norm, preact=preact == "branch"),
            NormActConv(inner_channels, out_channels, 3, norm=norm),
        ]
        self.branch = nn.Sequential(
            *_skipinit(branch, skipinit, self.residual, type(self).__name__, branch_scale)
        )
        self.shortcut = make_shortcut(
            shortcut, in_channels, out_channels, stride, norm, project_with_norm=False
        )
        self.act = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preact(x)  # BN-ReLU(x) before the split, or x unchanged
        return self.branch(x) + self.shortcut(x)


class PreActBottleneck(PreActBlock):
    """Pre-activation bottleneck: BN-ReLU-1×1, BN-ReLU-3×3 (strided), BN-ReLU-1×1 (×4), plus s(x)."""

    expansion: ClassVar[int] = 4

    def __init__(
        self,
        in_channels: int,
        inner_channels: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        norm: str | None = "batch",
        stride_on: str = "3x3",
        skipinit: bool = False,
        branch_scale: float | None = None,
        preact: str = "branch",
    ) -> None:
        nn.Module.__init__(self)
        if stride_on not in STRIDE_PLACEMENTS:
            raise UsageError(f"stride_on must be one of {STRIDE_PLACEMENTS}, got {stride_on!r}")
        out_channels = inner_channels * self.expansion
        s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        self.preact = _preact(preact, in_channels, norm)
        branch = [
            NormActConv(in_channels, inner_channels, 1, s1, norm=norm, preact=preact == "branch"),
            NormActConv(inner_channels, inner_channels, 3, s3, norm=norm),
            NormActConv(inner_channels, out_channels, 1, norm=norm),
        ]
        self.branch = nn.Sequential(
            *_skipinit(branch, skipinit, self.residual, type(self).__name__, branch_scale)
        )
        self.shortcut = make_shortcut(
            shortcut, in_channels, out_channels, stride, norm, project_with_norm=False
        )
        self.act = nn.Identity()


BLOCKS: dict[str, type[BasicBlock]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "plain_basic": PlainBasicBlock,
    "plain_bottleneck": PlainBottleneck,
    "preact_basic": PreActBlock,
    "preact_bottleneck": PreActBottleneck,
}


def _check_options(
    block: str | type[BasicBlock],
    layers: Sequence[int],
    widths: Sequence[int],
    stem: str,
    stride_on: str,
    norm: str | None,
    skipinit: bool,
    branch_scale: float | str | None,
) -> type[BasicBlock]:
    """Validate :class:`ResNet`'s arguments once, for every block; returns the block class."""
    if isinstance(block, str):
        if block not in BLOCKS:
            raise UsageError(f"block must be one of {sorted(BLOCKS)}, got {block!r}")
        block = BLOCKS[block]
    if stem not in STEMS:
        raise UsageError(f"stem must be one of {STEMS}, got {stem!r}")
    if stride_on not in STRIDE_PLACEMENTS:
        raise UsageError(f"stride_on must be one of {STRIDE_PLACEMENTS}, got {stride_on!r}")
    if not layers or len(layers) != len(widths) or not all(n >= 1 for n in (*layers, *widths)):
        raise UsageError(
            f"layers {tuple(layers)} and widths {tuple(widths)} must pair up (at least one stage), "
            f"every number >= 1"
        )
    check_norm(norm)
    if not isinstance(skipinit, bool):
        raise UsageTypeError(f"skipinit must be True or False, got {skipinit!r}")
    if skipinit and not block.residual:
        raise OptionError(
            f"skipinit=True needs residual blocks, got {block.__name__}: a plain block has no identity "
            "path to fall back on, so a zero-scaled branch would output zeros"
        )
    if skipinit and branch_scale is not None:
        raise OptionError(
            f"skipinit=True and branch_scale={branch_scale!r} both set the end of every residual branch; "
            "choose one"
        )
    if branch_scale is not None and not block.residual:
        raise OptionError(
            f"branch_scale needs residual blocks, got {block.__name__}: a plain block has no identity path, "
            "so the factor would scale the whole signal"
        )
    return block


def _make_stem(
    stem: str, preact: bool, in_channels: int, width: int, norm: str | None
) -> tuple[nn.Sequential, int]:
    """The stem of ``width`` output channels and its reduction (output stride)."""
    if stem == "imagenet":
        # Pre-activation nets too: conv-BN-ReLU-maxpool, as fb.resnet.torch's preresnet.lua; their
        # first unit then takes no BN-ReLU of its own (entry "none", set in ResNet.__init__).
        return nn.Sequential(ConvNormAct(in_channels, width, 7, 2, 3, norm=norm), nn.MaxPool2d(3, 2, 1)), 4
    if preact:
        # A bare conv: the first unit's BN-ReLU (before its split) activates it.
        return nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=norm is None)), 1
    return nn.Sequential(ConvNormAct(in_channels, width, 3, norm=norm)), 1


def _make_stage(
    block: type[BasicBlock],
    n: int,
    in_channels: int,
    inner: int,
    stride: int,
    entry: str | None,
    **unit_options: Any,
) -> nn.Sequential:
    """``n`` blocks of inner width ``inner``, the first strided by ``stride``. ``entry``: where the first unit
    of a pre-activation stage takes its BN-ReLU (``PREACT_MODES``; ``None`` for other blocks)."""
    blocks = []
    channels = in_channels
    for j in range(n):
        extra: dict[str, str] = {}
        if entry is not None:
            extra["preact"] = entry if j == 0 else "branch"
        blocks.append(block(channels, inner, stride if j == 0 else 1, **unit_options, **extra))
        channels = inner * block.expansion
    return nn.Sequential(*blocks)


# ----------------------------------------------------------------------------------------------- model
class ResNet(ZooModel):
    """A stem, stages of blocks, and a pool-FC head; the block makes it residual, plain or pre-activation.

    ``layers`` gives the number of blocks per stage and ``widths`` each stage's inner width (its output
    has ``inner_channels × block.expansion`` channels; ``width`` is the multiplier of every stage). The first block of every stage after the first strides by 2.
    """

    def __init__(
        self,
        block: str | type[BasicBlock] = "basic",
        layers: Sequence[int] = (2, 2, 2, 2),
        widths: Sequence[int] = IMAGENET_WIDTHS,
        stem: str = "imagenet",
        num_classes: int = 1000,
        in_channels: int = 3,
        shortcut: str = "B",
        stride_on: str = "3x3",
        norm: str | None = "batch",
        zero_init_residual: bool = False,
        skipinit: bool = False,
        branch_scale: float | str | None = None,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        block = _check_options(block, layers, widths, stem, stride_on, norm, skipinit, branch_scale)
        alpha = resolve_branch_scale(branch_scale, sum(layers))
        self.num_classes, self.in_channels = num_classes, in_channels
        preact = issubclass(block, PreActBlock)
        self.width = width = check_width(width)
        # Width 1 leaves the table untouched (a custom width need not be a multiple of 8).
        scale = (lambda c: c) if width == 1 else (lambda c: scale_channels(c, width))
        widths = [scale(c) for c in widths]
        # The 7×7 stem is 64 wide in every ImageNet ResNet; a CIFAR stem is as wide as the first stage.
        stem_width = scale(64) if stem == "imagenet" else widths[0]
        self.stem, reduction = _make_stem(stem, preact, in_channels, stem_width, norm)

        unit_options: dict[str, Any] = dict(
            shortcut=shortcut, norm=norm, stride_on=stride_on, skipinit=skipinit, branch_scale=alpha
        )
        stages: list[nn.Sequential] = []
        self.feature_info = []
        channels = stem_width
        for i, (n, inner) in enumerate(zip(layers, widths, strict=True)):
            stride = 1 if i == 0 else 2
            # The Identity Mappings reference code: the first unit of every stage pre-activates before the
            # split, unless its input is the ImageNet stem's (already BN-ReLU'd).
            entry = ("none" if (i == 0 and stem == "imagenet") else "both") if preact else None
            stages.append(_make_stage(block, n, channels, inner, stride, entry, **unit_options))
            channels = inner * block.expansion
            reduction *= stride
            self.feature_info.append(FeatureInfo(f"stages.{i}", channels, reduction))
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(
            channels, num_classes, pre_norm=make_norm(norm, channels) if preact else None
        )
        self.num_features = channels
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        init_he(self)  # He et al. 2015 ("Delving deep"), as both ResNet papers use
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock) and m.residual:
                    # The last conv unit of the branch (a SkipInit scale may follow it).
                    last = [u for u in m.branch if isinstance(u, (ConvNormAct, NormActConv))][-1]
                    if isinstance(last.norm, nn.BatchNorm2d) and not isinstance(last, NormActConv):
                        nn.init.zeros_(last.norm.weight)


# -------------------------------------------------------------------------------------------- builders
def _imagenet(depth: int, kind: str, **kwargs: object) -> ResNet:
    block, layers = IMAGENET_DEPTHS[depth]
    cfg: dict[str, object] = {
        "block": block if kind == "" else f"{kind}_{block}",
        "layers": layers,
        "widths": IMAGENET_WIDTHS,
        "stem": "imagenet",
    }
    cfg.update(kwargs)
    return ResNet(**cfg)  # type: ignore[arg-type]


def _cifar(depth: int, kind: str, **kwargs: object) -> ResNet:
    # 6n+2 layers with basic blocks (2 convs each), 9n+2 with bottlenecks (3 convs each).
    bottleneck = kind == "preact" and depth in (164, 1001)
    n = (depth - 2) // (9 if bottleneck else 6)
    block = "bottleneck" if bottleneck else "basic"
    cfg: dict[str, object] = {
        "block": block if kind == "" else f"{kind}_{block}",
        "layers": (n, n, n),
        "widths": CIFAR_WIDTHS,
        "stem": "cifar",
        "shortcut": "B" if kind == "preact" else "A",
    }
    cfg.update(kwargs)
    return ResNet(**cfg)  # type: ignore[arg-type]


_IMAGENET = (3, 224, 224)
_CIFAR = (3, 32, 32)


@register_model("resnet", ResNet, _IMAGENET, PAPER_V1)
def resnet18(**kwargs: object) -> ResNet:
    return _imagenet(18, "", **kwargs)


@register_model("resnet", ResNet, _IMAGENET, PAPER_V1)
def resnet34(**kwargs: object) -> ResNet:
    return _imagenet(34, "", **kwargs)


@register_model("resnet", ResNet, _IMAGENET, PAPER_V1)
def resnet50(**kwargs: object) -> ResNet:
    return _imagenet(50, "", **kwargs)


@register_model("resnet", ResNet, _IMAGENET, PAPER_V1)
def resnet101(**kwargs: object) -> ResNet:
    return _imagenet(101, "", **kwargs)


@register_model("resnet", ResNet, _IMAGENET, PAPER_V1)
def resnet152(**kwargs: object) -> ResNet:
    return _imagenet(152, "", **kwargs)


@register_model("resnet", ResNet, _CIFAR, PAPER_V1)
def resnet20(**kwargs: object) -> ResNet:
    return _cifar(20, "", **kwargs)


@register_model("resnet", ResNet, _CIFAR, PAPER_V1)
def resnet32(**kwargs: object) -> ResNet:
    return _cifar(32, "", **kwargs)


@register_model("resnet", ResNet, _CIFAR, PAPER_V1)
def resnet44(**kwargs: object) -> ResNet:
    return _cifar(44, "", **kwargs)


@register_model("resnet", ResNet, _CIFAR, PAPER_V1)
def resnet56(**kwargs: object) -> ResNet:
    return _cifar(56, "", **kwargs)


@register_model("resnet", ResNet, _CIFAR, PAPER_V1)
def resnet110(**kwargs: object) -> ResNet:
    return _cifar(110, "", **kwargs)


@register_model("resnet", ResNet, _CIFAR, PAPER_V1)
def resnet1202(**kwargs: object) -> ResNet:
    return _cifar(1202, "", **kwargs)


@register_model("plain", ResNet, _IMAGENET, PAPER_V1)
def plain18(**kwargs: object) -> ResNet:
    return _imagenet(18, "plain", **kwargs)


@register_model("plain", ResNet, _IMAGENET, PAPER_V1)
def plain34(**kwargs: object) -> ResNet:
    return _imagenet(34, "plain", **kwargs)


@register_model("plain", ResNet, _IMAGENET, PAPER_V1)
def plain50(**kwargs: object) -> ResNet:
    return _imagenet(50, "plain", **kwargs)


@register_model("plain", ResNet, _IMAGENET, PAPER_V1)
def plain101(**kwargs: object) -> ResNet:
    return _imagenet(101, "plain", **kwargs)


@register_model("plain", ResNet, _IMAGENET, PAPER_V1)
def plain152(**kwargs: object) -> ResNet:
    return _imagenet(152, "plain", **kwargs)


@register_model("plain", ResNet, _CIFAR, PAPER_V1)
def plain20(**kwargs: object) -> ResNet:
    return _cifar(20, "plain", **kwargs)


@register_model("plain", ResNet, _CIFAR, PAPER_V1)
def plain32(**kwargs: object) -> ResNet:
    return _cifar(32, "plain", **kwargs)


@register_model("plain", ResNet, _CIFAR, PAPER_V1)
def plain44(**kwargs: object) -> ResNet:
    return _cifar(44, "plain", **kwargs)


@register_model("plain", ResNet, _CIFAR, PAPER_V1)
def plain56(**kwargs: object) -> ResNet:
    return _cifar(56, "plain", **kwargs)


@register_model("plain", ResNet, _CIFAR, PAPER_V1)
def plain110(**kwargs: object) -> ResNet:
    return _cifar(110, "plain", **kwargs)


@register_model("plain", ResNet, _CIFAR, PAPER_V1)
def plain1202(**kwargs: object) -> ResNet:
    return _cifar(1202, "plain", **kwargs)


@register_model("preact-resnet", ResNet, _CIFAR, PAPER_PREACT)
def preact_resnet20(**kwargs: object) -> ResNet:
    return _cifar(20, "preact", **kwargs)


@register_model("preact-resnet", ResNet, _CIFAR, PAPER_PREACT)
def preact_resnet56(**kwargs: object) -> ResNet:
    return _cifar(56, "preact", **kwargs)


@register_model("preact-resnet", ResNet, _CIFAR, PAPER_PREACT)
def preact_resnet110(**kwargs: object) -> ResNet:
    return _cifar(110, "preact", **kwargs)


@register_model("preact-resnet", ResNet, _CIFAR, PAPER_PREACT)
def preact_resnet164(**kwargs: object) -> ResNet:
    return _cifar(164, "preact", **kwargs)


@register_model("preact-resnet", ResNet, _CIFAR, PAPER_PREACT)
def preact_resnet1001(**kwargs: object) -> ResNet:
    return _cifar(1001, "preact", **kwargs)


@register_model("preact-resnet", ResNet, _IMAGENET, PAPER_PREACT)
def preact_resnet18(**kwargs: object) -> ResNet:
    return _imagenet(18, "preact", **kwargs)


@register_model("preact-resnet", ResNet, _IMAGENET, PAPER_PREACT)
def preact_resnet34(**kwargs: object) -> ResNet:
    return _imagenet(34, "preact", **kwargs)


@register_model("preact-resnet", ResNet, _IMAGENET, PAPER_PREACT)
def preact_resnet50(**kwargs: object) -> ResNet:
    return _imagenet(50, "preact", **kwargs)
