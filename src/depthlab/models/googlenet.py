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
Aux head: 5×5/3 average pool → 1×1 conv 128 (+ReLU) → fc 1024 → ReLU → dropout 0.7 → fc.

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
* Aux pooling: the paper's 5×5/3 average pool is applied when the 4a/4d map is at least 5×5, followed by
  an adaptive 4×4 average pool. At 224×224 the map is 14×14, the 5×5/3 pool gives exactly 4×4 and the
  adaptive pool is the identity: the paper's head. On smaller maps the 5×5 pool is skipped and the adaptive
  pool alone brings the map to 4×4, so the first aux FC always sees 128·4·4 = 2048 features. (An adaptive
  4×4 pool alone would *not* equal the paper at 224: on 14×14 it averages 4×4 windows at stride 10/3.)
* ``norm="batch"`` adds BatchNorm after every conv (not in the paper; with true 5×5 convs, no aux heads:
  7,005,832 parameters). ``lrn=False`` removes the stem's LRN layers (no parameters either way).
* ``aux_logits=False`` drops the aux heads (the paper drops them at inference; here they are skipped in
  eval mode anyway).
* All max-pools round up (``ceil_mode``, Caffe's rule): the paper's 112 → 56 → 28 → 14 → 7 needs it.
* Initialisation (not stated in the paper): He (Kaiming) normal fan-out for convs, N(0, 0.01) for linear
  layers, zero biases, in both variants.

Smallest input: 31×31 for the paper variant (pool4 3×3/2 needs a 2×2 map: 31 → 16 → 8 → 4 → 2 → 1), 15×15
for torchvision's (pool4 2×2/2 takes a 1×1 map: 15 → 8 → 4 → 2 → 1 → 1). So 28×28 inputs need
``variant="torchvision"`` or padding to 31.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.errors import UsageError, UsageTypeError
from depthlab.layers import NORMS, ConvNormAct, init_he
from depthlab.models.base import ClassifierHead, FeatureInfo, GoogLeNetOutputs, ZooModel
from depthlab.registry import register_model

__all__ = ["GoogLeNet", "Inception", "InceptionAux", "AuxPool", "VARIANTS", "INCEPTION", "AUX_TAPS"]

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
AUX_POOLS: tuple[str, ...] = ("paper", "adaptive")


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


class AuxPool(nn.Module):
    """The aux head's pooling to 4×4: ``"paper"`` = 5×5/3 average pool (maps ≥ 5×5) then adaptive 4×4;
    ``"adaptive"`` = adaptive 4×4 only (torchvision)."""

    def __init__(self, kind: str = "paper") -> None:
        super().__init__()
        if kind not in AUX_POOLS:
            raise UsageError(f"aux pool must be one of {AUX_POOLS}, got {kind!r}")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "paper" and min(x.shape[-2:]) >= 5:
            x = F.avg_pool2d(x, 5, 3)  # 14×14 -> 4×4 at 224×224 input
        return F.adaptive_avg_pool2d(x, 4)  # the identity on a 4×4 map

    def extra_repr(self) -> str:
        return repr(self.kind)


class InceptionAux(nn.Module):
    """Auxiliary classifier: pool to 4×4 → 1×1 conv 128 (+ReLU) → fc 1024 → ReLU → dropout → fc."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        pool: str = "paper",
        norm: str | None = None,
        norm_eps: float = 1e-5,
        dropout: float = 0.7,
    ) -> None:
        super().__init__()
        self.pool = AuxPool(pool)
        self.conv = ConvNormAct(in_channels, 128, 1, 1, 0, norm=norm, norm_eps=norm_eps)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x))  # (N, 128, 4, 4)
        return self.fc2(self.drop(self.act(self.fc1(self.flatten(x)))))  # (N, 2048) -> (N, num_classes)


# ----------------------------------------------------------------------------------------------- model
class GoogLeNet(ZooModel):
    """Stem, three groups of inception modules, a pool-dropout-FC head, and optional aux heads."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        variant: str = "paper",
        norm: str | None = VARIANT_DEFAULT,
        aux_logits: bool = True,
        lrn: bool | None = None,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise UsageError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
        if not isinstance(aux_logits, bool):
            raise UsageTypeError(f"aux_logits must be True or False, got {aux_logits!r}")
        if lrn is not None and not isinstance(lrn, bool):
            raise UsageTypeError(f"lrn must be True, False or None (the variant's choice), got {lrn!r}")
        if norm != VARIANT_DEFAULT and norm not in NORMS:
            raise UsageError(
                f"norm must be one of {NORMS} or {VARIANT_DEFAULT!r} (the variant's), got {norm!r}"
            )
        v = VARIANTS[variant]
        norm = v.norm if norm == VARIANT_DEFAULT else norm
        lrn = v.lrn if lrn is None else lrn
        self.num_classes, self.in_channels, self.variant = num_classes, in_channels, variant
        self.min_input_size = v.min_input

        def unit(cin: int, cout: int, k: int, stride: int = 1) -> ConvNormAct:
            return ConvNormAct(cin, cout, k, stride, k // 2, norm=norm, norm_eps=v.norm_eps)

        # (N, C, 224, 224) -> conv1 (N, 64, 112, 112) -> pool1 (N, 64, 56, 56) -> conv2, conv3
        # (N, 192, 56, 56) -> pool2 (N, 192, 28, 28)
        stem: OrderedDict[str, nn.Module] = OrderedDict(conv1=unit(in_channels, 64, 7, 2))
        stem["pool1"] = nn.MaxPool2d(3, 2, ceil_mode=True)
        if lrn:
            stem["lrn1"] = _lrn()
        stem["conv2"] = unit(64, 64, 1)
        stem["conv3"] = unit(64, 192, 3)
        if lrn:
            stem["lrn2"] = _lrn()
        stem["pool2"] = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.stem = nn.Sequential(stem)

        # stages.0 (N, 480, 28, 28); stages.1 pool3 -> (N, 480, 14, 14) -> (N, 832, 14, 14);
        # stages.2 pool4 -> (N, 832, 7, 7) -> (N, 1024, 7, 7).
        pools = {
            1: ("pool3", nn.MaxPool2d(3, 2, ceil_mode=True)),
            2: ("pool4", nn.MaxPool2d(v.pool4, 2, ceil_mode=True)),
        }
        stages: list[nn.Sequential] = []
        self.feature_info = []
        channels, reduction = 192, 8
        for i, names in enumerate(STAGES):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            if i in pools:
                pool_name, pool = pools[i]
                layers[pool_name] = pool
                reduction *= 2
            for name in names:
                block = Inception(
                    channels, *INCEPTION[name], kernel5=v.kernel5, norm=norm, norm_eps=v.norm_eps
                )
                layers[f"inception{name}"] = block
                channels = block.out_channels
            stages.append(nn.Sequential(layers))
            self.feature_info.append(FeatureInfo(f"stages.{i}", channels, reduction))
        self.stages = nn.Sequential(*stages)
        self.num_features = channels

        self.head = ClassifierHead(channels, num_classes, dropout=v.dropout)
        self.aux1: InceptionAux | None = None
        self.aux2: InceptionAux | None = None
        if aux_logits:
            c1, c2 = (getattr(self.stages[1], tap).out_channels for tap in AUX_TAPS)  # 512, 528
            self.aux1 = InceptionAux(c1, num_classes, pool=v.aux_pool, norm=norm, norm_eps=v.norm_eps)
            self.aux2 = InceptionAux(c2, num_classes, pool=v.aux_pool, norm=norm, norm_eps=v.norm_eps)
        self._init_weights()

    def _init_weights(self) -> None:
        init_he(self, linear_std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:  # type: ignore[override]
        self.check_input(x)
        x = self.stages[0](self.stem(x))
        with_aux = self.training and self.aux1 is not None and self.aux2 is not None
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
