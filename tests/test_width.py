"""The ``width`` multiplier of VGG and GoogLeNet: width 1 is the net as it was, every channel at width w is
the rounded formula applied to the papers' tables, narrow nets train, and counts and MACs stay right.

Expected channels are computed here from the config tables with exact decimal arithmetic (round half up),
independently of :func:`depthlab.layers.scale_channels`, and spot-checked against hand-worked values.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import depthlab
from depthlab.analysis import summarize
from depthlab.analysis.narrow import describe_widths
from depthlab.errors import UsageError, UsageTypeError
from depthlab.layers import ConvNormAct, scale_channels
from depthlab.models import count_params
from depthlab.models.base import GoogLeNetOutputs
from depthlab.models.googlenet import INCEPTION, GoogLeNet
from depthlab.models.vgg import CONFIGS, VGG

pytestmark = pytest.mark.usefixtures("one_thread")

WIDTH1 = json.loads((Path(__file__).parent / "expected" / "width1_state_dicts.json").read_text())
VGG_BUILDERS = depthlab.list_models("vgg*")  # A, A-LRN, B, C, D, E; all but A-LRN also with BN


def expected_channels(c: int, w: float) -> int:
    """The documented rule, max(8, nearest multiple of 8 to c·w, halves up), in exact decimals."""
    eighths = (Decimal(c) * Decimal(str(w)) / 8).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return 8 * max(1, int(eighths))


def meta_model(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return depthlab.create_model(name, **kwargs)


def conv_widths(module: nn.Module) -> list[tuple[int, int, int]]:
    """(in, out, kernel) of every Conv2d, in module order."""
    return [
        (m.in_channels, m.out_channels, m.kernel_size[0])
        for m in module.modules()
        if isinstance(m, nn.Conv2d)
    ]


# ------------------------------------------------------------------------------------------ width 1
@pytest.mark.parametrize(
    "case", WIDTH1["cases"], ids=lambda c: f"{c['model']}-{'-'.join(map(str, c['kwargs'].values()))}"
)
@pytest.mark.parametrize("width", [None, 1.0, 1])
def test_width_1_state_dict_shapes_equal_those_before_width_existed(case: dict, width: float | None) -> None:
    # The stored digests were taken at commit d801f4e, before `width` existed (see the JSON's note).
    kwargs = dict(case["kwargs"]) | ({} if width is None else {"width": width})
    state = meta_model(case["model"], **kwargs).state_dict()
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in state.items())
    assert len(state) == case["tensors"]
    assert hashlib.sha256(lines.encode()).hexdigest() == case["sha256"]


# --------------------------------------------------------------------------------------- the rule
@pytest.mark.parametrize(
    ("channels", "width", "out"),
    [
        (64, 0.25, 16),
        (4096, 0.25, 1024),  # VGG's hidden FC width
        (24, 0.25, 8),  # 6 -> nearest multiple of 8
        (16, 0.25, 8),  # 4 = half of 8: rounds up
        (208, 0.25, 56),  # 52 = 6.5 eighths: up to 56 (round-half-even would give 48)
        (144, 0.25, 40),  # 36 = 4.5 eighths: up to 40 (half-even: 32)
        (16, 0.125, 8),  # 2 -> 0 eighths: the floor of 8
        (100, 1.0, 104),  # 12.5 eighths (not a table width; width 1 keeps multiples of 8 only)
        (64, 2.0, 128),
        (192, 0.3, 56),  # 57.6
    ],
)
def test_scale_channels_rounds_to_the_nearest_multiple_of_8_halves_up(
    channels: int, width: float, out: int
) -> None:
    assert scale_channels(channels, width) == out == expected_channels(channels, width)


# --------------------------------------------------------------------------------- VGG channels
def vgg_expected_convs(config: str, w: float, in_channels: int) -> list[tuple[int, int, int]]:
    convs, cin = [], in_channels
    for v in CONFIGS[config]:
        if v in ("M", "LRN"):
            continue
        c, k = v if isinstance(v, tuple) else (v, 3)
        convs.append((cin, expected_channels(c, w), k))
        cin = expected_channels(c, w)
    return convs


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("width", [0.25, 0.5])
@pytest.mark.parametrize("head", ["imagenet", "small"])
def test_vgg_every_channel_is_the_rounded_table_width(config: str, width: float, head: str) -> None:
    with torch.device("meta"):
        model = VGG(config, num_classes=10, in_channels=1, head=head, width=width)
    assert conv_widths(model) == vgg_expected_convs(config, width, in_channels=1)
    fcs = [(m.in_features, m.out_features) for m in model.head.modules() if isinstance(m, nn.Linear)]
    last = expected_channels(512, width)
    if head == "imagenet":  # fc6 sees conv5's channels on a 7×7 grid; 4096 scales like a channel count
        hidden = expected_channels(4096, width)
        assert fcs == [(last * 49, hidden), (hidden, hidden), (hidden, 10)]
    else:  # the small head's hidden width stays equal to conv5's, as at width 1 (512 = 512)
        assert fcs == [(last, last), (last, 10)]
    assert model.num_features == last and model.feature_info[-1].channels == last


def test_vgg_quarter_width_by_hand() -> None:
    model = meta_model("vgg16", width=0.25)
    assert [out for _, out, _ in conv_widths(model)] == [16, 16, 32, 32] + [64] * 3 + [128] * 6
    assert model.head.fc7.weight.shape == (1024, 1024)


# --------------------------------------------------------------------------- GoogLeNet channels
def inception_convs(block: nn.Module) -> tuple[int, ...]:
    """Table 1's six columns read off a built module: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj."""
    return tuple(
        unit.conv.out_channels
        for unit in (
            block.branch1,
            block.branch2[0],
            block.branch2[1],
            block.branch3[0],
            block.branch3[1],
            block.branch4[1],
        )
    )


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
@pytest.mark.parametrize("width", [0.25, 0.5])
def test_googlenet_every_channel_is_the_rounded_table_width(variant: str, width: float) -> None:
    with torch.device("meta"):
        model = GoogLeNet(num_classes=10, in_channels=1, variant=variant, width=width)
    stem = [u.conv for u in model.stem if isinstance(u, ConvNormAct)]
    assert [(c.in_channels, c.out_channels) for c in stem] == [
        (1, expected_channels(64, width)),
        (expected_channels(64, width), expected_channels(64, width)),
        (expected_channels(64, width), expected_channels(192, width)),
    ]
    blocks = {
        name[len("inception") :]: m
        for stage in model.stages
        for name, m in stage.named_children()
        if name.startswith("inception")
    }
    assert list(blocks) == list(INCEPTION)
    cin = expected_channels(192, width)
    for name, table in INCEPTION.items():
        expected = tuple(expected_channels(c, width) for c in table)
        assert inception_convs(blocks[name]) == expected, name
        assert blocks[name].branch1.conv.in_channels == cin, name  # the previous module's concatenation
        cin = expected[0] + expected[2] + expected[4] + expected[5]
    assert model.head.fc.in_features == cin == model.num_features
    for aux, tap in ((model.aux1, "4a"), (model.aux2, "4d")):
        assert aux is not None
        tap_out = sum(expected_channels(INCEPTION[tap][i], width) for i in (0, 2, 4, 5))
        assert (aux.conv.conv.in_channels, aux.conv.conv.out_channels) == (
            tap_out,
            expected_channels(128, width),
        )
        assert (aux.fc1.in_features, aux.fc1.out_features) == (
            expected_channels(128, width) * 16,
            expected_channels(1024, width),
        )
        assert aux.fc2.in_features == expected_channels(1024, width)


def test_googlenet_quarter_width_by_hand() -> None:
    model = meta_model("googlenet", width=0.25)
    assert inception_convs(model.stages[0].inception3a) == (16, 24, 32, 8, 8, 8)
    assert inception_convs(model.stages[1].inception4a) == (48, 24, 56, 8, 16, 16)  # 52 -> 56, 12 -> 16
    assert inception_convs(model.stages[1].inception4d) == (32, 40, 72, 8, 16, 16)  # 28 -> 32, 36 -> 40
    assert model.aux1.fc1.weight.shape == (256, 32 * 16)


# ------------------------------------------------------------------- narrow nets train at 32 px
@pytest.mark.parametrize(
    ("name", "kwargs"), [(n, {}) for n in VGG_BUILDERS] + [("vgg11_lrn", {"norm": "batch"})]
)
def test_narrow_vgg_forward_backward(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = depthlab.create_model(name, num_classes=10, in_channels=1, head="small", width=0.25, **kwargs)
    check_forward_backward(model, lambda out: out)


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_narrow_googlenet_forward_backward_with_aux_heads(variant: str) -> None:
    torch.manual_seed(0)
    model = depthlab.create_model("googlenet", num_classes=10, in_channels=1, variant=variant, width=0.25)

    def logits(out: object) -> torch.Tensor:
        assert isinstance(out, GoogLeNetOutputs)  # training mode: main and both aux heads
        return torch.cat([out.logits, out.aux1, out.aux2])

    check_forward_backward(model, logits)


def check_forward_backward(model: nn.Module, logits_of: object) -> None:
    model.train()
    x, y = torch.randn(4, 1, 32, 32), torch.tensor([0, 3, 7, 9])
    logits = logits_of(model(x))  # type: ignore[operator]
    assert logits.shape[1] == 10 and torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, y.repeat(logits.shape[0] // 4)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing}"
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (4, 10)


# --------------------------------------------------------------------------------------- counts
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        (n, {"head": h})
        for n in ("vgg11", "vgg13", "vgg16c", "vgg16", "vgg19_bn")
        for h in ("imagenet", "small")
    ]
    + [("googlenet", {}), ("googlenet", {"variant": "torchvision"})],
)
@pytest.mark.parametrize("width", [0.5, 0.25])
def test_params_fall_about_as_width_squared(name: str, kwargs: dict, width: float) -> None:
    # Not exactly w²: the first conv's input and the classifiers' outputs do not scale, rounding moves each
    # channel by < 4, and biases and BN scale as w. At 10 classes the ratio is 1.00-1.04 × w²
    # (at 1000, GoogLeNet's three 1024→1000 classifiers, scaling as w, lift it to 1.7 × w² at width 0.25).
    kwargs = {"num_classes": 10, **kwargs}
    ratio = count_params(meta_model(name, width=width, **kwargs)) / count_params(meta_model(name, **kwargs))
    assert 0.95 * width**2 <= ratio <= 1.1 * width**2, ratio


def flop_counter_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *shape, device="meta"))
    return counter.get_total_flops()


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("vgg16_bn", {"head": "small", "num_classes": 10, "in_channels": 1}, (1, 32, 32)),
        ("vgg16c", {}, (3, 224, 224)),
        ("googlenet", {"num_classes": 10, "in_channels": 1}, (1, 32, 32)),
        ("googlenet", {"variant": "torchvision"}, (3, 224, 224)),
    ],
)
def test_macs_equal_flop_counter_at_width_half(name: str, kwargs: dict, shape: tuple[int, int, int]) -> None:
    model = meta_model(name, width=0.5, **kwargs)
    macs = summarize(model, shape).macs
    assert 2 * macs == flop_counter_flops(model, shape)
    assert macs < summarize(meta_model(name, **kwargs), shape).macs / 3  # it did see the narrow net


def test_describe_widths_counts_a_real_model() -> None:
    # The README's narrow table: meta-built counts equal those of an ordinary CPU model at study scale.
    (row,) = describe_widths([0.25], "googlenet")
    real = depthlab.create_model("googlenet", num_classes=10, in_channels=1, width=0.25)
    assert (row.params, row.inference_params) == (count_params(real), count_params(real, inference=True))
    assert row.input_shape == (1, 32, 32) and row.num_classes == 10
    vgg = describe_widths([0.5, 1.0], "vgg16")
    assert [r.width for r in vgg] == [0.5, 1.0] and all(r.settings == (("head", "small"),) for r in vgg)
    assert vgg[1].params == count_params(
        depthlab.create_model("vgg16", num_classes=10, in_channels=1, head="small")
    )


# ------------------------------------------------------------------------------ bad width, registry
@pytest.mark.parametrize("bad", [0, 0.0, -0.5, math.nan, math.inf])
@pytest.mark.parametrize("cls", [VGG, GoogLeNet])
def test_a_width_out_of_range_raises_naming_it(cls: type[nn.Module], bad: float) -> None:
    with pytest.raises(UsageError, match=rf"width must be .*got {bad!r}$"):
        cls(width=bad)
    with pytest.raises(UsageError, match=rf"got {bad!r}"):
        meta_model("vgg16" if cls is VGG else "googlenet", width=bad)


@pytest.mark.parametrize("bad", ["0.5", None, True, [0.5]])
@pytest.mark.parametrize("cls", [VGG, GoogLeNet])
def test_a_width_that_is_not_a_number_raises_naming_it(cls: type[nn.Module], bad: object) -> None:
    with pytest.raises(UsageTypeError, match=rf"width must be .*got {re.escape(repr(bad))}$"):
        cls(width=bad)  # type: ignore[arg-type]
    with pytest.raises(UsageTypeError, match=rf"width must be .*got {re.escape(repr(bad))}"):
        meta_model("vgg16" if cls is VGG else "googlenet", width=bad)


def test_describe_widths_rejects_models_without_width_and_bad_widths() -> None:
    with pytest.raises(UsageError, match=r"no model matching 'alexnet\*'.*googlenet, plain, .*resnet, vgg"):
        describe_widths([0.5], "alexnet*")
    with pytest.raises(UsageError, match="got -1"):
        describe_widths([-1], "vgg11")


def test_create_model_width_overrides_only_width() -> None:
    model = meta_model("vgg16_bn", width=0.25)
    assert isinstance(model, VGG) and model.width == 0.25 and model.config == "D"
    assert isinstance(model.stages[0].conv1_1.norm, nn.BatchNorm2d)  # the builder's norm is kept
    assert model.stages[0].conv1_1.conv.out_channels == 16
    assert meta_model("googlenet", width=0.5).width == 0.5


# ------------------------------------------------------------------------------------------ ResNet
# The CIFAR nets' stage widths (He et al. 2015, §4.2) and the ImageNet nets' (Table 1), from the papers.
CIFAR_STAGES, IMAGENET_STAGES = (16, 32, 64), (64, 128, 256, 512)


def cifar_resnet_params(depth: int, stages: tuple[int, int, int], in_channels: int, classes: int) -> int:
    """Parameters of a CIFAR ResNet (6n+2, basic blocks, BN, option-A shortcuts: no shortcut parameters), by
    the closed form: the stem conv and BN, two 3×3 convs and two BNs per block, the FC layer."""
    n = (depth - 2) // 6
    total, cin = 9 * in_channels * stages[0] + 2 * stages[0], stages[0]
    for c in stages:
        for _ in range(n):
            total += 9 * cin * c + 2 * c + 9 * c * c + 2 * c
            cin = c
    return total + cin * classes + classes


def test_the_closed_form_gives_the_papers_cifar_resnet_counts() -> None:
    # 0.27M / 0.46M / 0.66M / 0.85M / 1.7M (He et al. 2015, Table 6; exact counts of the option-A nets).
    published = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}
    assert {d: cifar_resnet_params(d, CIFAR_STAGES, 3, 10) for d in published} == published


@pytest.mark.parametrize("name", ["resnet20", "plain20", "resnet56", "plain56", "resnet110"])
@pytest.mark.parametrize("width", [None, 1, 1.0, 0.5, 0.25])
def test_cifar_resnet_params_at_every_width_equal_the_closed_form(name: str, width: float | None) -> None:
    kwargs = {} if width is None else {"width": width}
    stages = tuple(expected_channels(c, width or 1) for c in CIFAR_STAGES)
    depth = int(name.removeprefix("resnet").removeprefix("plain"))
    model = meta_model(name, num_classes=10, in_channels=1, **kwargs)
    assert count_params(model) == cifar_resnet_params(depth, stages, 1, 10)  # type: ignore[arg-type]
    if width == 0.5:
        assert stages == (8, 16, 32)


@pytest.mark.parametrize(
    ("name", "stages", "expansion"),
    [
        ("resnet20", CIFAR_STAGES, 1),
        ("plain56", CIFAR_STAGES, 1),
        ("preact_resnet20", CIFAR_STAGES, 1),
        ("resnet18", IMAGENET_STAGES, 1),
        ("resnet50", IMAGENET_STAGES, 4),
    ],
)
@pytest.mark.parametrize("width", [0.5, 0.25])
def test_resnet_every_stage_is_the_rounded_table_width(
    name: str, stages: tuple[int, ...], expansion: int, width: float
) -> None:
    model = meta_model(name, width=width)
    assert model.width == width
    first = [m for m in model.stem.modules() if isinstance(m, nn.Conv2d)][0]
    assert first.out_channels == expected_channels(stages[0] if stages is CIFAR_STAGES else 64, width)
    for stage, c in zip(model.stages, stages, strict=True):
        # Every 3×3 conv of a stage is the stage width (a bottleneck's output, the width × expansion).
        convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        assert {m.out_channels for m in convs} == {expected_channels(c, width)}, (name, c)
    assert model.num_features == expected_channels(stages[-1], width) * expansion


def test_narrow_resnet_macs_are_a_quarter_at_width_half_and_equal_the_flop_counter() -> None:
    # Every conv's channels halve on both sides, except the stem's input (1 channel): MACs fall to ~w².
    wide, narrow = (
        meta_model("resnet56", num_classes=10, in_channels=1),
        meta_model("resnet56", num_classes=10, in_channels=1, width=0.5),
    )
    macs = summarize(narrow, (1, 32, 32)).macs
    assert 2 * macs == flop_counter_flops(narrow, (1, 32, 32))
    assert 0.24 <= macs / summarize(wide, (1, 32, 32)).macs <= 0.26


@pytest.mark.parametrize("name", ["resnet56", "plain56", "preact_resnet20"])
def test_narrow_resnet_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    check_forward_backward(
        depthlab.create_model(name, num_classes=10, in_channels=1, width=0.5), lambda out: out
    )


@pytest.mark.parametrize("bad", [0, -0.5, math.nan])
def test_a_resnet_width_out_of_range_raises_naming_it(bad: float) -> None:
    with pytest.raises(UsageError, match=rf"width must be .*got {bad!r}$"):
        meta_model("resnet20", width=bad)
    with pytest.raises(UsageTypeError, match="width must be .*got '0.5'$"):
        meta_model("plain56", width="0.5")
