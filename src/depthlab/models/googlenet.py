"""GoogLeNet (Inception v1), paper-faithful by default, and torchvision's variant.

Paper: Szegedy et al. *Going Deeper with Convolutions*. CVPR 2015, arXiv:1409.4842 (Table 1, Figures 2–3).
Layer details the paper leaves open (LRN constants, pooling rounding) follow the authors' Caffe release,
``bvlc_googlenet``.

Layout: ``stem`` = conv1 7×7/2 → max-pool 3×3/2 → LRN → conv2 1×1 → conv3 3×3 → LRN → max-pool 3×3/2
(stride 8); ``stages`` are the inception groups 3, 4 and 5: ``stages.0`` = inception3a, 3b (stride 8),
``stages.1`` = pool3 → inception4a…4e (stride 16), ``stages.2`` = pool4 → inception5a, 5b (stride 32), so
every stage output is an inception output and each max-pool opens the group it feeds. ``head`` = global
average pool → dropout → fc. Each inception module has four parallel branches whose outputs are
concatenated along channels: ``branch1`` 1×1; ``branch2`` 1×1 → 3×3; ``branch3`` 1×1 → 5×5; ``branch4``
3×3/1 max-pool → 1×1.

Auxiliary classifiers (``aux_logits=True``, the default) sit on the outputs of inception 4a and 4d, which
:meth:`GoogLeNet.forward` takes while running ``stages.1`` child by child (``AUX_TAPS``). They run in
training mode only; the model then returns ``GoogLeNetOutputs(logits, aux1, aux2)`` (aux1 after 4a, aux2
after 4d — note torchvision's order is (logits, aux2, aux1)). In eval mode, or without aux heads, it returns
the logits tensor. The paper adds the aux losses with weight 0.3; that is the training loop's business.
Aux head: 5×5/3 average pool → 1×1 conv 128 (+ReLU) → fc 1024 → ReLU → dropout 0.7 → fc. The paper drops
the aux heads at inference: :func:`depthlab.models.count_params` with ``inference=True`` leaves them out
(``aux_head_names``), the figure to compare with AlexNet's 61M — 6,998,552 (paper variant) and 6,624,904
(torchvision's) against 13,378,280 and 13,004,888 with both heads.

Variants (``variant``); each sets the defaults of ``norm`` and ``lrn``, which can be overridden:
* ``"paper"`` (default): true 5×5 convs in branch3, no batch norm (convs have biases), LRN in the stem
  (size 5, α=1e-4, β=0.75, k=1 as in Caffe, which like PyTorch divides α by the size), pool4 3×3/2, main
  dropout 0.4. 6,998,552 parameters without aux heads at 1000 classes.
* ``"torchvision"``: torchvision's exact module structure so its checkpoints load
  (:func:`depthlab.load_torchvision_weights`): a 3×3 conv in the "5×5" branch (a known bug kept for weight
  compatibility, pytorch/vision#906), BatchNorm (eps 0.001) after every conv and no conv biases, no LRN,
  pool4 2×2/2, aux pooling adaptive 4×4, main dropout 0.2. 6,624,904 parameters without aux heads,
  13,004,888 with. torchvision's ``transform_input`` is not reproduced: it is off in torchvision unless its
  pretrained weights are requested, in which case it maps ImageNet-normalised input to the [-1, 1]
  normalisation the ported weights expect — with those weights here, normalise with mean = std = 0.5.

Deviations from the paper, and how to select the paper's choice:
* Aux pooling (``aux_pool``; the first aux FC always takes 128·4·4 = 2048 features, as in the paper):
  - ``"paper"`` (the paper variant's default): the paper's 5×5/3 average pool where the 4a/4d map is at
    least 5×5, then an adaptive 4×4 average pool. Where the 5×5/3 pool gives 4×4 the adaptive pool is the
    identity and the head is exactly the paper's; elsewhere the adaptive pool adapts (and on maps smaller
    than 4×4 repeats values to fill the 4×4 grid).
  - ``"fixed"``: the 5×5/3 pool alone, exactly the paper; inputs at which it does not give 4×4 are
    refused in training mode with an :class:`~depthlab.errors.InputSizeError` naming the range.
  - ``"adaptive"`` (torchvision's): an adaptive 4×4 average pool alone. Not the paper's even at 224: on
    14×14 it averages 4×4 windows at starts 0, 3, 7, 10 instead of 5×5 windows at stride 3.

  The 4a/4d map side m is that of pool3's output: conv1 gives ⌈s/2⌉ and each 3×3/2 ceil-mode max-pool
  halves it rounding down, so m = ⌊⌈s/2⌉/8⌋ (s/16 where 16 divides s); the 5×5/3 pool then gives
  ⌊(m − 5)/3⌋ + 1. :func:`aux_pool_output_size` computes both (a test checks it against forward passes):

  ======  ==========  ==========  ==========================================================
  input   4a/4d map   5×5/3 out   ``aux_pool="paper"``
  ======  ==========  ==========  ==========================================================
  32      2×2         —           5×5 pool skipped; adaptive pool repeats each value 2×2
  64      4×4         —           5×5 pool skipped; adaptive pool is the identity
  96      6×6         1×1         one average per channel, repeated to 4×4
  112     7×7         1×1         one average per channel, repeated to 4×4
  128     8×8         2×2         2×2 averages, each repeated 2×2
  160     10×10       2×2         2×2 averages, each repeated 2×2
  192     12×12       3×3         3×3 averages, re-averaged onto 4×4 by overlapping windows
  224     14×14       4×4         the paper's head exactly (the paper: 14×14 → 4×4)
  ======  ==========  ==========  ==========================================================

  The paper's pool gives exactly 4×4 for maps of 14–16, i.e. inputs 223–270 pixels: 223 is the smallest
  input at which the paper's aux head is exact, and no smaller (CPU-sized) input keeps its 4×4 grid. Below
  that, ``"adaptive"`` keeps a genuine 4×4 grid of distinct averages for maps of at least 4×4 (inputs ≥ 64;
  on a 6×6 map its windows are 2×2 at stride 1 or 2), while ``"paper"`` averages the map down to 1–3 cells.
* ``norm="batch"`` adds BatchNorm after every conv (not in the paper; with true 5×5 convs, no aux heads:
  7,005,832 parameters). ``lrn=False`` removes the stem's LRN layers (no parameters either way).
* ``aux_logits=False`` drops the aux heads (the paper drops them at inference; here they are skipped in
  eval mode anyway).
* All max-pools round up (``ceil_mode``, Caffe's rule): the paper's 112 → 56 → 28 → 14 → 7 needs it.
* Initialisation (not stated in the paper): He (Kaiming) normal fan-out for convs, N(0, 0.01) for linear
  layers, zero biases, in both variants.

Width (``width``, default 1; a depthlab addition, not in the paper): every channel count is multiplied by
``width`` and rounded to the nearest multiple of 8, halves up, at least 8: max(8, ⌊c·w/8 + ½⌋·8)
(:func:`depthlab.layers.scale_channels`) — the stem's 64/64/192, each of the six branch widths of every
inception module in Table 1 (so a module's output is the sum of its rounded branches), and the aux heads'
1×1 conv (128) and first FC (1024). The main FC has no hidden width; its input is inception 5b's output.
Width 1 is the paper's net, count for count. Parameters fall about as width². Rounding moves the narrowest
branches most: at width 0.25, 3a's 5×5 reduce (16 → 4) rounds up to 8, as wide as its 5×5 (32 → 8), so a
narrow module is not an exact scale model of the wide one. ``depthlab models --width 0.5 0.25`` lists the narrow counts.

Smallest input: 31×31 for the paper variant (pool4 3×3/2 needs a 2×2 map: 31 → 16 → 8 → 4 → 2 → 1), 15×15
for torchvision's (pool4 2×2/2 takes a 1×1 map: 15 → 8 → 4 → 2 → 1 → 1). So 28×28 inputs need
``variant="torchvision"`` or padding to 31.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from depthlab.errors import InputSizeError, UsageError, UsageTypeError
from depthlab.layers import NORMS, ConvNormAct, check_width, init_he, scale_channels
from depthlab.models.base import ClassifierHead, FeatureInfo, GoogLeNetOutputs, ZooModel
from depthlab.registry import register_model

__all__ = [
    "GoogLeNet",
    "Inception",
    "InceptionAux",
    "AuxPool",
    "AuxPoolSize",
    "aux_pool_output_size",
    "VARIANTS",
    "INCEPTION",
    "AUX_TAPS",
    "AUX_POOLS",
]

PAPER = "arXiv:1409.4842"
# Table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj. Output channels = 1×1 + 3×3 + 5×5 + proj.
INCEPTION: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),  # -> 256
    "3b": (128, 128, 192, 32, 96, 64),  # -> 480
    "4a": (192, 96, 208, 16, 48, 64),  # -> 512
    "4b": (160, 112, 224, 24, 64, 64),  # -> 512
    "4c": (128, 128, 256, 24, 64, 64),  # -> 512
    "4d": (112, 144, 288, 32, 64, 64),  # -> 528
    "4e": (256, 160, 320, 32, 128, 128),  # -> 832
    "5a": (256, 160, 320, 32, 128, 128),  # -> 832
    "5b": (384, 192, 384, 48, 128, 128),  # -> 1024
}
STAGES: tuple[tuple[str, ...], ...] = (("3a", "3b"), ("4a", "4b", "4c", "4d", "4e"), ("5a", "5b"))
AUX_TAPS: tuple[str, str] = ("inception4a", "inception4d")  # children of stages.1 feeding aux1, aux2
AUX_POOLS: tuple[str, ...] = ("paper", "fixed", "adaptive")
AUX_GRID = 4  # the aux head's pooled map is 4×4 (the paper: "resulting in an 4×4×512 output" for 4a)
STEM = (64, 64, 192)  # conv1 7×7/2, conv2 1×1, conv3 3×3 output channels
AUX_CONV, AUX_HIDDEN = 128, 1024  # the aux head's 1×1 conv channels and its first FC's width
# Input sides at which the paper's 5×5/3 pool alone gives that 4×4 grid (4a maps 14-16); a test derives it.
AUX_EXACT_INPUTS: tuple[int, int] = (223, 270)


@dataclass(frozen=True)
class Variant:
    norm: str | None  # default of the ``norm`` argument
    lrn: bool  # default of the ``lrn`` argument
    kernel5: int  # kernel of branch3's second conv
    pool4: int  # kernel of the 2nd-to-last max-pool (stride 2)
    aux_pool: str  # one of AUX_POOLS
    dropout: float  # before the main fc
    norm_eps: float
    min_input: int  # see the module docstring; brute-force checked in the tests


VARIANTS: dict[str, Variant] = {
    "paper": Variant(None, True, 5, 3, "paper", 0.4, 1e-5, 31),
    "torchvision": Variant("batch", False, 3, 2, "adaptive", 0.2, 1e-3, 15),
}
VARIANT_DEFAULT = "variant"  # the value of ``norm`` meaning "the variant's choice"


def _lrn() -> nn.LocalResponseNorm:
    # Caffe's bvlc_googlenet: local_size 5, alpha 1e-4, beta 0.75, k 1 (α divided by the size, as here).
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)


# ---------------------------------------------------------------------------------------------- blocks
class Inception(nn.Module):
    """Four parallel branches (1×1 | 1×1→3×3 | 1×1→k×k | max-pool→1×1), concatenated along channels."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3_reduce: int,
        ch3x3: int,
        ch5x5_reduce: int,
        ch5x5: int,
        pool_proj: int,
        *,
        kernel5: int = 5,
        norm: str | None = None,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()

        def unit(cin: int, cout: int, k: int) -> ConvNormAct:
            return ConvNormAct(cin, cout, k, 1, k // 2, norm=norm, norm_eps=norm_eps)

        self.branch1 = unit(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(unit(in_channels, ch3x3_reduce, 1), unit(ch3x3_reduce, ch3x3, 3))
        self.branch3 = nn.Sequential(unit(in_channels, ch5x5_reduce, 1), unit(ch5x5_reduce, ch5x5, kernel5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), unit(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Every branch keeps H×W: (N, C_in, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W).
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


def _pool_side(m: int, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> int:
    # PyTorch's pooling output size, including its rule that a ceil-mode window must start inside the input.
    span = m + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= m + padding:
        out -= 1
    return out


@dataclass(frozen=True)
class AuxPoolSize:
    """Where the aux heads read, for a square input of side ``input_size``."""

    input_size: int
    map_size: int  # side of the inception 4a/4d output the aux heads read
    paper_pool_size: int | None  # side after the paper's 5×5/3 average pool; None where the map is < 5
    exact: bool  # the paper's pool gives the 4×4 grid the aux FC expects: the head is the paper's


def aux_pool_output_size(input_size: int) -> AuxPoolSize:
    """The 4a/4d map side and the paper's 5×5/3 aux-pool output side at a square input (both variants).

    conv1 7×7/2 (padding 3), then pool1, pool2, pool3 (3×3/2, ceil mode); the convs between keep the size.
    """
    if not isinstance(input_size, int) or input_size < VARIANTS["torchvision"].min_input:
        raise UsageError(
            f"input_size must be an integer ≥ {VARIANTS['torchvision'].min_input} (GoogLeNet's smallest "
            f"input), got {input_size!r}"
        )
    m = _pool_side(input_size, 7, 2, 3)  # conv1: same arithmetic as a pool
    for _ in range(3):  # pool1, pool2, pool3
        m = _pool_side(m, 3, 2, ceil_mode=True)
    pooled = _pool_side(m, 5, 3) if m >= 5 else None
    return AuxPoolSize(input_size, m, pooled, pooled == AUX_GRID)


class AuxPool(nn.Module):
    """The aux head's pooling to 4×4 (see ``aux_pool`` in the module docstring): ``"paper"`` = 5×5/3
    average pool (maps ≥ 5×5) then adaptive 4×4; ``"fixed"`` = 5×5/3 alone (must give 4×4);
    ``"adaptive"`` = adaptive 4×4 alone (torchvision)."""

    def __init__(self, kind: str = "paper") -> None:
        super().__init__()
        if kind not in AUX_POOLS:
            raise UsageError(f"aux pool must be one of {AUX_POOLS}, got {kind!r}")
        self.kind = kind
        # Modules, not functional calls, so hooks and summaries see the pooled shapes.
        self.avg = nn.AvgPool2d(5, 3) if kind != "adaptive" else None  # 14×14 -> 4×4 at 224×224
        self.adapt = nn.AdaptiveAvgPool2d(AUX_GRID) if kind != "fixed" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.avg is not None and (self.kind == "fixed" or min(x.shape[-2:]) >= 5):
            x = self.avg(x)
        if self.adapt is not None:
            return self.adapt(x)  # the identity on a 4×4 map
        if tuple(x.shape[-2:]) != (AUX_GRID, AUX_GRID):
            raise InputSizeError(
                f"aux_pool='fixed': the 5×5/3 pool gave a {x.shape[-2]}×{x.shape[-1]} map, the aux FC needs "
                f"{AUX_GRID}×{AUX_GRID} (a 14-16 px 4a map: inputs {AUX_EXACT_INPUTS[0]}-{AUX_EXACT_INPUTS[1]} "
                "px); use aux_pool='paper' or 'adaptive'"
            )
        return x


class InceptionAux(nn.Module):
    """Auxiliary classifier: pool to 4×4 → 1×1 conv 128 (+ReLU) → fc 1024 → ReLU → dropout → fc (the
    128 and 1024 are ``conv_channels`` and ``hidden``, scaled by the model's width)."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        pool: str = "paper",
        norm: str | None = None,
        norm_eps: float = 1e-5,
        dropout: float = 0.7,
        conv_channels: int = AUX_CONV,
        hidden: int = AUX_HIDDEN,
    ) -> None:
        super().__init__()
        self.pool = AuxPool(pool)
        self.conv = ConvNormAct(in_channels, conv_channels, 1, 1, 0, norm=norm, norm_eps=norm_eps)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(conv_channels * AUX_GRID * AUX_GRID, hidden)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x))  # (N, 128, 4, 4)
        return self.fc2(self.drop(self.act(self.fc1(self.flatten(x)))))  # (N, 2048) -> (N, num_classes)


def _check_options(
    variant: str, norm: str | None, aux_logits: bool, lrn: bool | None, aux_pool: str | None
) -> None:
    """Validate :class:`GoogLeNet`'s arguments, naming the value and the choices."""
    if variant not in VARIANTS:
        raise UsageError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    if not isinstance(aux_logits, bool):
        raise UsageTypeError(f"aux_logits must be True or False, got {aux_logits!r}")
    if lrn is not None and not isinstance(lrn, bool):
        raise UsageTypeError(f"lrn must be True, False or None (the variant's choice), got {lrn!r}")
    if norm != VARIANT_DEFAULT and norm not in NORMS:
        raise UsageError(f"norm must be one of {NORMS} or {VARIANT_DEFAULT!r} (the variant's), got {norm!r}")
    if aux_pool is not None and aux_pool not in AUX_POOLS:
        raise UsageError(f"aux_pool must be one of {AUX_POOLS} or None (the variant's), got {aux_pool!r}")


def _make_stem(
    in_channels: int, channels: tuple[int, ...], lrn: bool, norm: str | None, norm_eps: float
) -> nn.Sequential:
    """conv1 7×7/2, pool1, (LRN), conv2 1×1, conv3 3×3, (LRN), pool2; ``channels``: conv1-3's outputs.

    (N, C, 224, 224) -> conv1 (N, 64, 112, 112) -> pool1 (N, 64, 56, 56) -> conv2, conv3 (N, 192, 56, 56)
    -> pool2 (N, 192, 28, 28); channels × width (module docstring).
    """
    c1, c2, c3 = channels

    def unit(cin: int, cout: int, k: int, stride: int = 1) -> ConvNormAct:
        return ConvNormAct(cin, cout, k, stride, k // 2, norm=norm, norm_eps=norm_eps)

    stem: OrderedDict[str, nn.Module] = OrderedDict(conv1=unit(in_channels, c1, 7, 2))
    stem["pool1"] = nn.MaxPool2d(3, 2, ceil_mode=True)
    if lrn:
        stem["lrn1"] = _lrn()
    stem["conv2"] = unit(c1, c2, 1)
    stem["conv3"] = unit(c2, c3, 3)
    if lrn:
        stem["lrn2"] = _lrn()
    stem["pool2"] = nn.MaxPool2d(3, 2, ceil_mode=True)
    return nn.Sequential(stem)


def _make_stages(
    channels: int, v: Variant, norm: str | None, width: float
) -> tuple[list[nn.Sequential], list[FeatureInfo]]:
    """The three inception groups after a stem of ``channels`` outputs (stride 8), and their feature info.

    stages.0 (N, 480, 28, 28); stages.1 pool3 -> (N, 480, 14, 14) -> (N, 832, 14, 14);
    stages.2 pool4 -> (N, 832, 7, 7) -> (N, 1024, 7, 7).
    """
    pools = {
        1: ("pool3", nn.MaxPool2d(3, 2, ceil_mode=True)),
        2: ("pool4", nn.MaxPool2d(v.pool4, 2, ceil_mode=True)),
    }
    stages: list[nn.Sequential] = []
    feature_info = []
    reduction = 8
    for i, names in enumerate(STAGES):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if i in pools:
            pool_name, pool = pools[i]
            layers[pool_name] = pool
            reduction *= 2
        for name in names:
            branches = (scale_channels(c, width) for c in INCEPTION[name])
            block = Inception(channels, *branches, kernel5=v.kernel5, norm=norm, norm_eps=v.norm_eps)
            layers[f"inception{name}"] = block
            channels = block.out_channels
        stages.append(nn.Sequential(layers))
        feature_info.append(FeatureInfo(f"stages.{i}", channels, reduction))
    return stages, feature_info


# ----------------------------------------------------------------------------------------------- model
class GoogLeNet(ZooModel):
    """Stem, three groups of inception modules, a pool-dropout-FC head, and optional aux heads."""

    aux_head_names: ClassVar[tuple[str, ...]] = ("aux1", "aux2")

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        variant: str = "paper",
        norm: str | None = VARIANT_DEFAULT,
        aux_logits: bool = True,
        lrn: bool | None = None,
        aux_pool: str | None = None,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        self.width = width = check_width(width)
        _check_options(variant, norm, aux_logits, lrn, aux_pool)
        v = VARIANTS[variant]
        self.aux_pool = v.aux_pool if aux_pool is None else aux_pool
        norm = v.norm if norm == VARIANT_DEFAULT else norm
        lrn = v.lrn if lrn is None else lrn
        self.num_classes, self.in_channels, self.variant = num_classes, in_channels, variant
        self.min_input_size = v.min_input

        stem_channels = tuple(scale_channels(c, width) for c in STEM)
        self.stem = _make_stem(in_channels, stem_channels, lrn, norm, v.norm_eps)
        stages, self.feature_info = _make_stages(stem_channels[-1], v, norm, width)
        self.stages = nn.Sequential(*stages)
        self.num_features = channels = self.feature_info[-1].channels

        self.head = ClassifierHead(channels, num_classes, dropout=v.dropout)
        self.aux1: InceptionAux | None = None
        self.aux2: InceptionAux | None = None
        if aux_logits:
            tap1, tap2 = (getattr(self.stages[1], tap).out_channels for tap in AUX_TAPS)  # 512, 528
            aux_conv, aux_hidden = (scale_channels(c, width) for c in (AUX_CONV, AUX_HIDDEN))
            self.aux1, self.aux2 = (
                InceptionAux(
                    c,
                    num_classes,
                    pool=self.aux_pool,
                    norm=norm,
                    norm_eps=v.norm_eps,
                    conv_channels=aux_conv,
                    hidden=aux_hidden,
                )
                for c in (tap1, tap2)
            )
        self._init_weights()

    def _init_weights(self) -> None:
        init_he(self, linear_std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:  # type: ignore[override]
        self.check_input(x)
        with_aux = self.training and self.aux1 is not None and self.aux2 is not None
        if with_aux and self.aux_pool == "fixed":
            for side in x.shape[-2:]:
                if not aux_pool_output_size(int(side)).exact:
                    raise InputSizeError(
                        f"aux_pool='fixed' (the paper's 5×5/3 pool alone) gives the 4×4 aux grid only for "
                        f"inputs {AUX_EXACT_INPUTS[0]}-{AUX_EXACT_INPUTS[1]} px, got {x.shape[-2]}x"
                        f"{x.shape[-1]}; use aux_pool='paper' or 'adaptive' (see the googlenet docstring)"
                    )
        x = self.stages[0](self.stem(x))
        taps: dict[str, torch.Tensor] = {}
        # stages.1 runs child by child so the aux heads can read the outputs of inception 4a and 4d.
        for name, module in self.stages[1].named_children():
            x = module(x)
            if with_aux and name in AUX_TAPS:
                taps[name] = x
        logits = self.forward_head(self.stages[2](x))
        if with_aux:
            return GoogLeNetOutputs(logits, self.aux1(taps[AUX_TAPS[0]]), self.aux2(taps[AUX_TAPS[1]]))
        return logits


@register_model("googlenet", GoogLeNet, (3, 224, 224), PAPER)
def googlenet(**kwargs: object) -> GoogLeNet:
    return GoogLeNet(**kwargs)  # type: ignore[arg-type]
