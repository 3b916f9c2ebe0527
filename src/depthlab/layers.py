"""Small shared pieces: conv-norm-act units, residual shortcuts, the SkipInit scale, AlexNet's LRN.

Every convolution in the zoo sits in a :class:`ConvNormAct` (children ``conv``, ``norm``, ``act``) or a
:class:`NormActConv` (pre-activation order), so analysis code can find "the response of a 3×3 layer after
BN and before the nonlinearity" as the output of ``.norm`` without knowing the family.

``norm`` is ``"batch"`` (BatchNorm2d) or ``None`` (no normalisation; convolutions then get a bias, since
nothing else would shift their output).
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict

import torch
from torch import nn

from depthlab.errors import UsageError, UsageTypeError

__all__ = [
    "NORMS",
    "SHORTCUTS",
    "check_norm",
    "check_width",
    "scale_channels",
    "make_norm",
    "ConvNormAct",
    "NormActConv",
    "Scale",
    "krizhevsky_lrn",
    "ZeroPadShortcut",
    "make_shortcut",
    "init_he",
]

NORMS: tuple[str | None, ...] = ("batch", None)
SHORTCUTS: tuple[str, ...] = ("A", "B", "C")


def check_norm(norm: str | None) -> str | None:
    if norm not in NORMS:
        raise UsageError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


def check_width(width: object) -> float:
    """A channel-width multiplier: a finite number > 0 (not a bool), returned as a float."""
    if isinstance(width, bool) or not isinstance(width, numbers.Real):
        raise UsageTypeError(
            f"width must be a number > 0 (a channel multiplier, 1 = the paper's), got {width!r}"
        )
    if not (math.isfinite(width) and width > 0):
        raise UsageError(
            f"width must be a finite number > 0 (a channel multiplier, 1 = the paper's), got {width!r}"
        )
    return float(width)


def scale_channels(channels: int, width: float, divisor: int = 8) -> int:
    """``channels`` × ``width`` rounded to the nearest multiple of ``divisor``, halves up, at least
    ``divisor``: max(8, ⌊c·w/8 + ½⌋·8). Multiples of 8 are unchanged at width 1, so width 1 is the paper's
    net; multiples of 8 keep channels-last and bf16 kernels on their fast paths."""
    return max(divisor, math.floor(channels * width / divisor + 0.5) * divisor)


def make_norm(norm: str | None, channels: int, eps: float = 1e-5) -> nn.Module:
    """BatchNorm2d for ``"batch"``, Identity for ``None``."""
    return nn.BatchNorm2d(channels, eps=eps) if check_norm(norm) == "batch" else nn.Identity()


class ConvNormAct(nn.Sequential):
    """conv → norm → ReLU (``act=False`` leaves the ReLU out, e.g. before a residual addition)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | None = None,
        *,
        norm: str | None = "batch",
        act: bool = True,
        bias: bool | None = None,
        norm_eps: float = 1e-5,
        groups: int = 1,
    ) -> None:
        padding = kernel_size // 2 if padding is None else padding
        bias = check_norm(norm) is None if bias is None else bias
        super().__init__(
            OrderedDict(
                conv=nn.Conv2d(
                    in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias
                ),
                norm=make_norm(norm, out_channels, norm_eps),
                # Not in-place: analysis hooks read the norm output after this layer has run.
                act=nn.ReLU() if act else nn.Identity(),
            )
        )


class NormActConv(nn.Sequential):
    """norm → ReLU → conv: the pre-activation unit of He et al. (2016, Identity Mappings).

    ``preact=False`` leaves norm and ReLU out (both ``nn.Identity``): the unit then convolves an input that
    was activated before it — the first unit of a pre-activation branch whose block pre-activates before
    splitting into branch and shortcut. The conv's bias still follows ``norm`` (the next unit normalises).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        norm: str | None = "batch",
        preact: bool = True,
    ) -> None:
        super().__init__(
            OrderedDict(
                norm=make_norm(norm, in_channels) if preact else nn.Identity(),
                act=nn.ReLU() if preact else nn.Identity(),
                conv=nn.Conv2d(
                    in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=norm is None
                ),
            )
        )


class Scale(nn.Module):
    """Multiply by one learnable scalar, the parameter ``scale`` (initialised to ``init``).

    SkipInit (De & Smith 2020, "Batch normalization biases residual blocks towards the identity function in
    deep networks", arXiv:2002.10444) puts it, initialised to 0, at the end of every residual branch, so each
    block starts as its shortcut and a net without batch norm does not blow up with depth.
    """

    def __init__(self, init: float = 0.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return "scalar"


def krizhevsky_lrn() -> nn.LocalResponseNorm:
    """AlexNet's local response normalisation: k=2, n=5, α=1e-4, β=0.75 (Krizhevsky et al. 2012, §3.3).

    The paper's b = a / (k + α Σ a²)^β sums over n = 5 adjacent channels; PyTorch divides α by n, hence
    alpha = 5 × 1e-4. VGG's configuration A-LRN uses the same constants (Simonyan & Zisserman 2015, §2.1).
    """
    return nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)


class ZeroPadShortcut(nn.Module):
    """Option A of the ResNet paper: identity, subsampled by ``stride``, with zero channels appended.

    Parameter-free, so a ResNet with option A has exactly the parameters of its plain twin.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise UsageError(
                f"option A shortcut cannot shrink channels ({in_channels} -> {out_channels}); use 'B' or 'C'"
            )
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        if extra:
            # (N, C_in, H, W) -> (N, C_out, H, W): the new channels carry zeros.
            x = torch.cat([x, x.new_zeros(x.shape[0], extra, x.shape[2], x.shape[3])], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def make_shortcut(
    option: str,
    in_channels: int,
    out_channels: int,
    stride: int,
    norm: str | None,
    *,
    project_with_norm: bool = True,
) -> nn.Module:
    """The shortcut of a residual block, by the ResNet paper's options.

    A: zero-padding identity (parameter-free). B: 1×1 projection only where the shape changes, identity
    elsewhere. C: a projection on every shortcut.
    """
    if option not in SHORTCUTS:
        raise UsageError(f"shortcut must be one of {SHORTCUTS}, got {option!r}")
    same_shape = stride == 1 and in_channels == out_channels
    if option == "A" or (option == "B" and same_shape):
        return nn.Identity() if same_shape else ZeroPadShortcut(in_channels, out_channels, stride)
    return ConvNormAct(
        in_channels,
        out_channels,
        1,
        stride,
        0,
        norm=norm if project_with_norm else None,
        act=False,
        bias=None if project_with_norm else norm is None,
    )


def init_he(module: nn.Module, linear_std: float | None = None) -> None:
    """He (Kaiming) normal fan-out init for every conv, BN to identity, zero conv biases.

    Linear layers get N(0, ``linear_std``) weights and zero biases when ``linear_std`` is given (VGG,
    GoogLeNet); otherwise they keep PyTorch's default (ResNet, as in torchvision).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)
