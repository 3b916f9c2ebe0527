"""AlexNet, VGG and GoogLeNet: published counts, input sizes, structure, and the aux heads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import depthlab
from depthlab.analysis import measure_receptive_field, summarize
from depthlab.errors import InputSizeError, InputTooSmallError
from depthlab.models import GoogLeNetOutputs, aux_logits, count_params, main_logits
from depthlab.models.googlenet import (
    AUX_EXACT_INPUTS,
    AuxPool,
    GoogLeNet,
    Inception,
    aux_pool_output_size,
)
from depthlab.registry import describe_models

# Tiny models: one intra-op thread (the shared `one_thread` fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


EXPECTED = json.loads((Path(__file__).parent / "expected" / "torchvision_params.json").read_text())
REFERENCE_RF = json.loads((Path(__file__).parent / "expected" / "reference.json").read_text())[
    "receptive_field"
]
CLASSIC = [n for n in depthlab.list_models() if n.startswith(("alexnet", "vgg", "googlenet"))]
# GoogLeNet configurations of the reference numbers.
GOOGLENET_KW: dict[str, dict[str, object]] = {
    "torchvision_no_aux": {"variant": "torchvision", "aux_logits": False},
    "torchvision_aux": {"variant": "torchvision", "aux_logits": True},
    "paper_no_aux": {"aux_logits": False},
    "paper_bn_no_aux": {"norm": "batch", "aux_logits": False},
}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return depthlab.create_model(name, **kwargs)


# ------------------------------------------------------------------------------------- parameter counts
def test_every_classic_model_is_registered() -> None:
    expected = (
        set(EXPECTED["torchvision_1000"]) | set(EXPECTED["vgg_paper_1000"]) | {"googlenet", "vgg16c_bn"}
    )
    assert set(CLASSIC) == expected


@pytest.mark.parametrize("name", sorted(EXPECTED["torchvision_1000"]))
def test_counts_equal_torchvision(name: str) -> None:
    ours = n_params(meta_model(name))
    assert ours == EXPECTED["torchvision_1000"][name]
    with torch.device("meta"):  # ...and the installed torchvision agrees with its published number
        assert n_params(getattr(torchvision.models, name)()) == ours


@pytest.mark.parametrize("config", sorted(GOOGLENET_KW))
def test_googlenet_counts(config: str) -> None:
    assert n_params(meta_model("googlenet", **GOOGLENET_KW[config])) == EXPECTED["googlenet_1000"][config]


def test_googlenet_torchvision_counts_equal_installed_torchvision() -> None:
    for aux in (False, True):
        with torch.device("meta"):
            tv = torchvision.models.googlenet(aux_logits=aux, init_weights=False)
        assert n_params(meta_model("googlenet", variant="torchvision", aux_logits=aux)) == n_params(tv)


def test_alexnet_paper_variant_count() -> None:
    model = meta_model("alexnet", variant="paper")
    assert n_params(model) == EXPECTED["alexnet_paper_1000"]
    grouped = {n: m.groups for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert grouped == {
        "stem.conv1.conv": 1,
        "stages.0.conv2.conv": 2,
        "stages.1.conv3.conv": 1,
        "stages.1.conv4.conv": 2,
        "stages.1.conv5.conv": 2,
    }
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.modules()) == 2


def test_alexnet_paper_variant_drops_the_outputs_of_fc6_and_fc7() -> None:
    """Krizhevsky et al. 2012 §4.2: dropout in the first two fully-connected layers, zeroing each hidden
    neuron's output with probability 0.5. torchvision instead drops the inputs of fc6 and fc7."""
    names = {
        v: [n for n, _ in meta_model("alexnet", variant=v).head.named_children()]
        for v in ("paper", "torchvision")
    }
    assert names["paper"] == ["pool", "flatten", "fc6", "act6", "drop6", "fc7", "act7", "drop7", "fc8"]
    assert names["torchvision"] == ["pool", "flatten", "drop6", "fc6", "act6", "drop7", "fc7", "act7", "fc8"]

    torch.manual_seed(0)
    model = depthlab.create_model("alexnet", variant="paper", num_classes=5)
    seen: dict[str, torch.Tensor] = {}
    for fc in ("fc6", "fc7", "fc8"):
        layer = getattr(model.head, fc)
        layer.register_forward_pre_hook(lambda _m, args, fc=fc: seen.__setitem__(f"{fc}_in", args[0]))
        layer.register_forward_hook(lambda _m, _a, out, fc=fc: seen.__setitem__(f"{fc}_out", out))
    model.head.flatten.register_forward_hook(lambda _m, _a, out: seen.__setitem__("features", out))
    x = torch.randn(2, 3, 63, 63)
    with torch.no_grad():
        for mode in ("eval", "train"):
            getattr(model, mode)()
            model(x)
            assert torch.equal(seen["fc6_in"], seen["features"])  # pool5's features are not dropped
            for fc, nxt in (("fc6", "fc7_in"), ("fc7", "fc8_in")):
                hidden = F.relu(seen[f"{fc}_out"])
                if mode == "eval":
                    assert torch.equal(seen[nxt], hidden)
                    continue
                # Train: each unit is either dropped (0) or kept and scaled by 1/(1 - 0.5).
                kept = seen[nxt] != 0
                assert torch.allclose(seen[nxt][kept], 2 * hidden[kept])
                dropped = (hidden > 0) & ~kept
                assert 0.35 < dropped.sum() / (hidden > 0).sum() < 0.65, fc


# ------------------------------------------------------------------------------------------ input sizes
# Smallest sides worked out by hand for the classic geometries (e.g. AlexNet: 11×11/4 conv, three 3×3/2
# pools, and a 5×5/1 and three 3×3/1 convs without shrinking, need 63).
KNOWN_MIN_SIZES = {
    ("alexnet", ()): 63,
    ("vgg11", ()): 32,
    ("vgg19_bn", (("head", "small"),)): 16,
    ("googlenet", ()): 31,
    ("googlenet", (("variant", "torchvision"),)): 15,
}
GIANTS = {"resnet1202", "plain1202", "preact_resnet1001"}  # the same geometry as their smaller twins
# Every registered model and every keyword that changes the geometry; one model per family and stem runs
# in the default suite, the deeper twins (same stem, same strides) with the slow tests.
VARIANTS = [(n, ()) for n in depthlab.list_models() if n not in GIANTS] + [
    ("vgg11", (("head", "small"),)),
    ("vgg19_bn", (("head", "small"),)),
    ("googlenet", (("variant", "torchvision"),)),
    ("googlenet", (("aux_logits", False),)),
    ("alexnet", (("variant", "paper"),)),
    ("resnet18", (("stem", "cifar"),)),
    ("preact_resnet18", (("stem", "cifar"),)),
]
FAST = {"alexnet", "googlenet", "vgg11", "vgg11_bn", "vgg19_bn", "resnet18", "resnet50", "resnet20", "plain18",
        "plain20", "preact_resnet18", "preact_resnet20", "preact_resnet50"}  # fmt: skip


def smallest_side_that_runs(model: nn.Module, channels: int, limit: int = 256) -> int:
    """Brute force: try sides 1, 2, ... with the model's own size check switched off, so the layers decide
    (a map shrunk to nothing raises); on the meta device shapes propagate exactly as on the CPU, for free."""
    model.min_input_size = 1
    for side in range(1, limit + 1):
        try:
            model(torch.empty(1, channels, side, side, device="meta"))
        except RuntimeError:
            continue
        return side
    raise AssertionError(f"nothing up to {limit}x{limit} runs")


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [pytest.param(n, kw, marks=[] if n in FAST else [pytest.mark.slow]) for n, kw in VARIANTS],
    ids=[n + "".join(f"-{k}={v}" for k, v in kw) for n, kw in VARIANTS],
)
def test_min_input_size_is_the_smallest_side_that_runs(name: str, kwargs: tuple) -> None:
    model = meta_model(name, num_classes=10, in_channels=1, **dict(kwargs)).eval()
    declared = model.min_input_size
    side = smallest_side_that_runs(model, channels=1)
    assert declared == side, (name, kwargs)
    if (name, kwargs) in KNOWN_MIN_SIZES:
        assert side == KNOWN_MIN_SIZES[name, kwargs]
    for bigger in (side + 1, side + 2, side + 7):  # and everything above it runs too
        model(torch.empty(1, 1, bigger, bigger, device="meta"))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("alexnet", ()),
        ("vgg19_bn", (("head", "small"),)),
        ("googlenet", ()),
        ("googlenet", (("variant", "torchvision"),)),
    ],
)
def test_min_input_works_and_one_less_names_it(name: str, kwargs: tuple) -> None:
    model = depthlab.create_model(name, num_classes=4, **dict(kwargs)).eval()
    side = model.min_input_size
    with torch.no_grad():
        assert model(torch.randn(1, 3, side, side)).shape == (1, 4)
        with pytest.raises(InputTooSmallError, match=f"minimum size is {side}x{side}"):
            model(torch.randn(1, 3, side - 1, side - 1))


SMALL_INPUT_MODELS = [
    ("vgg11_bn", {"head": "small"}),
    ("vgg11_lrn", {"head": "small"}),
    ("vgg16c_bn", {"head": "small"}),
    ("vgg16", {"head": "small"}),
    ("googlenet", {}),
    ("googlenet", {"variant": "torchvision"}),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    # VGG's ImageNet head (120M weights) is built once, at 32×32; at 28×28 it is too small (meta test below).
    [("vgg11", {}, (3, 32, 32))]
    + [(n, kw, shape) for n, kw in SMALL_INPUT_MODELS for shape in [(1, 28, 28), (3, 32, 32)]],
)
def test_standard_small_inputs(name: str, kwargs: dict[str, object], shape: tuple[int, int, int]) -> None:
    model = depthlab.create_model(name, num_classes=10, in_channels=shape[0], **kwargs).eval()
    x = torch.randn(2, *shape)
    if shape[1] < model.min_input_size:
        with pytest.raises(ValueError, match=f"minimum size is {model.min_input_size}x"):
            model(x)
    else:
        with torch.no_grad():
            out = model(x)
        assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_too_small_errors_name_the_minimum() -> None:
    for name, kwargs, side in [("alexnet", {}, 63), ("vgg13", {}, 32), ("googlenet", {}, 31)]:
        model = meta_model(name, in_channels=1, **kwargs)
        with pytest.raises(ValueError, match=f"minimum size is {side}x{side}"):
            model(torch.empty(1, 1, 28, 28, device="meta"))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("alexnet", {}),
        ("vgg11", {"head": "small"}),
        ("googlenet", {}),
        ("googlenet", {"variant": "torchvision"}),
    ],
)
def test_feature_info_matches_real_strides(name: str, kwargs: dict[str, object]) -> None:
    model = meta_model(name, num_classes=10, **kwargs)

    def stride(module: nn.Module) -> int:
        # Product of the strides of every conv and pool in it (AlexNet's 224 -> 55 -> 27 -> 13 -> 6 is
        # not a clean division, so count strides rather than dividing sizes).
        layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]
        return math.prod(m.stride[0] if isinstance(m.stride, tuple) else m.stride for m in layers)

    h = model.stem(torch.empty(1, 3, 224, 224, device="meta"))
    reduction = stride(model.stem)
    for info, stage in zip(model.feature_info, model.stages, strict=True):
        h = stage(h)
        reduction *= stride(stage)
        assert (h.shape[1], reduction) == (info.channels, info.reduction), info


# ------------------------------------------------------------------------------------------------- VGG
def test_vgg_stages_follow_the_config_table() -> None:
    model = meta_model("vgg16")
    names = [[n for n, _ in stage.named_children()] for stage in model.stages]
    assert names[0] == ["conv1_1", "conv1_2", "pool1"]
    assert names[4] == ["conv5_1", "conv5_2", "conv5_3", "pool5"]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    linears = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [
        (25088, 4096),
        (4096, 4096),
        (4096, 1000),
    ]
    assert [m.p for m in model.head.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]


def test_vgg_small_head_replaces_pool5_with_a_global_pool() -> None:
    model = meta_model("vgg16_bn", head="small", num_classes=10)
    assert "pool5" not in dict(model.stages[4].named_children())
    assert model.feature_info[-1].reduction == 16
    linears = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(512, 512), (512, 10)]
    assert model.head[-1] is linears[-1]  # the last child of the head is the classifier


def test_vgg16c_is_d_with_three_1x1_convs() -> None:
    """VGG Table 1, configuration C: D's stages 3, 4, 5 end in a 1×1 conv instead of a 3×3."""
    model = meta_model("vgg16c")
    assert n_params(model) == EXPECTED["vgg_paper_1000"]["vgg16c"]
    kernels = {n: m.kernel_size for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    ones = {n for n, k in kernels.items() if k == (1, 1)}
    assert ones == {"stages.2.conv3_3.conv", "stages.3.conv4_3.conv", "stages.4.conv5_3.conv"}
    assert all(model.get_submodule(n).padding == (0, 0) for n in ones)
    assert len(kernels) == 13 and sum(isinstance(m, nn.Linear) for m in model.modules()) == 3  # 16 layers
    # The BN twin adds γ and β per conv channel, exactly what BN adds to D (torchvision's published counts).
    bn_extra = EXPECTED["torchvision_1000"]["vgg16_bn"] - EXPECTED["torchvision_1000"]["vgg16"]
    assert n_params(meta_model("vgg16c_bn")) == EXPECTED["vgg_paper_1000"]["vgg16c"] + bn_extra


def test_vgg11_lrn_is_a_with_alexnets_lrn_after_the_first_conv() -> None:
    model = depthlab.create_model("vgg11_lrn", head="small", num_classes=10)
    assert n_params(meta_model("vgg11_lrn")) == EXPECTED["vgg_paper_1000"]["vgg11_lrn"]
    assert [n for n, _ in model.stages[0].named_children()] == ["conv1_1", "lrn", "pool1"]
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.modules()) == 1
    # Krizhevsky et al. §3.3, which VGG §2.1 adopts: b = a / (k + α Σ_{5 adjacent channels} a²)^β with
    # k=2, n=5, α=1e-4, β=0.75 — written out here, against PyTorch's layer (which divides α by n).
    a = torch.rand(1, 8, 3, 3) * 50
    sq = F.pad(a.square(), (0, 0, 0, 0, 2, 2))  # channels padded by n // 2 = 2 on each side
    window = sum(sq[:, i : i + 8] for i in range(5))
    assert torch.allclose(model.stages[0].lrn(a), a / (2 + 1e-4 * window) ** 0.75)


def test_vgg_c_and_lrn_receptive_fields() -> None:
    # A 1×1 conv adds nothing; a 3×3 at jump j adds 2j. C loses 2·(4 + 8 + 16) = 56 of D's 212 at pool5.
    d = REFERENCE_RF["vgg16_pool5"]
    c = summarize(meta_model("vgg16c"), (3, 224, 224))
    assert c.receptive_field == d - 56 == 156
    # LRN mixes channels at one position: no change to the field, and no MACs counted.
    a, lrn = (summarize(meta_model(n), (3, 224, 224)) for n in ("vgg11", "vgg11_lrn"))
    assert (lrn.receptive_field, lrn.macs, lrn.depth) == (a.receptive_field, a.macs, a.depth)
    # ...and measured from the input gradient, against fields counted by hand. C: conv1_1 3, conv1_2 5,
    # pool1 6 (jump 2), conv2_1 10, conv2_2 14, pool2 16 (jump 4), conv3_1 24, conv3_2 32, and the 1×1
    # conv3_3 still 32. A-LRN: conv1_1 3, LRN 3, pool1 4 (jump 2), conv2_1 8.
    model = depthlab.create_model("vgg16c", head="small", num_classes=2)
    measured = measure_receptive_field(model, (3, 64, 64), "stages.2.conv3_3")
    assert measured.size == (32, 32) and not measured.clipped
    measured = measure_receptive_field(
        depthlab.create_model("vgg11_lrn", head="small", num_classes=2), (3, 48, 48), "stages.1.conv2_1"
    )
    assert measured.size == (8, 8) and not measured.clipped


def test_vgg_bn_builders_set_batch_norm_and_norm_none_removes_it() -> None:
    bn = meta_model("vgg11_bn")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == 8
    plain = meta_model("vgg11_bn", norm=None)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert n_params(plain) == EXPECTED["torchvision_1000"]["vgg11"]


# ------------------------------------------------------------------------------------------- GoogLeNet
def test_googlenet_paper_defaults() -> None:
    model = meta_model("googlenet")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None for c in convs)
    inceptions = [m for m in model.modules() if isinstance(m, Inception)]
    assert len(inceptions) == 9
    assert all(m.branch3[1].conv.kernel_size == (5, 5) for m in inceptions)
    assert [n for n, _ in model.stem.named_children()] == [
        "conv1",
        "pool1",
        "lrn1",
        "conv2",
        "conv3",
        "lrn2",
        "pool2",
    ]
    assert model.aux1 is not None and model.aux2 is not None and model.aux1.drop.p == 0.7
    assert [[n for n, _ in s.named_children()] for s in model.stages] == [
        ["inception3a", "inception3b"],
        ["pool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e"],
        ["pool4", "inception5a", "inception5b"],
    ]


def test_googlenet_torchvision_variant_structure() -> None:
    model = meta_model("googlenet", variant="torchvision")
    inceptions = [m for m in model.modules() if isinstance(m, Inception)]
    assert all(m.branch3[1].conv.kernel_size == (3, 3) for m in inceptions)  # torchvision's "5×5"
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 for m in bns)
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in model.modules())
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_inception_branches_concatenate() -> None:
    block = Inception(192, 64, 96, 128, 16, 32, 32)
    assert [n for n, _ in block.named_children()] == ["branch1", "branch2", "branch3", "branch4"]
    x = torch.randn(2, 192, 7, 7)
    out = block(x)
    assert out.shape == (2, 256, 7, 7)
    parts = [block.branch1(x), block.branch2(x), block.branch3(x), block.branch4(x)]
    assert [p.shape[1] for p in parts] == [64, 128, 32, 32]
    assert torch.equal(out, torch.cat(parts, dim=1))


def test_aux_pool_is_the_papers_5x5_stride_3_at_224() -> None:
    x = torch.randn(2, 512, 14, 14)  # inception 4a's output at 224×224
    assert torch.equal(AuxPool("paper")(x), F.avg_pool2d(x, 5, 3))
    assert not torch.allclose(
        AuxPool("adaptive")(x), F.avg_pool2d(x, 5, 3)
    )  # why "adaptive" is not the paper
    assert AuxPool("paper")(torch.randn(1, 8, 2, 2)).shape == (1, 8, 4, 4)  # small maps still reach 4×4


def test_googlenet_inference_count_leaves_the_aux_heads_out() -> None:
    """The paper's ~7M (against AlexNet's 61M) is the net without its aux heads, which it drops at
    inference: the README's "inference params" column counts exactly that."""
    published = EXPECTED["googlenet_1000"]
    for variant, key in (("torchvision", "torchvision_no_aux"), ("paper", "paper_no_aux")):
        model = meta_model("googlenet", variant=variant)  # with aux heads, as built by default
        assert count_params(model, inference=True) == published[key]
        assert count_params(model, inference=True) == n_params(
            meta_model("googlenet", variant=variant, aux_logits=False)
        )
    tv = meta_model("googlenet", variant="torchvision")
    assert count_params(tv) == n_params(tv) == published["torchvision_aux"]
    (row,) = describe_models("googlenet")  # the README table's row: built with aux heads
    assert (row.params, row.inference_params) == (
        n_params(meta_model("googlenet")),
        published["paper_no_aux"],
    )
    (row,) = describe_models("alexnet")  # no training-only heads: both counts are the same
    assert row.params == row.inference_params == EXPECTED["torchvision_1000"]["alexnet"]


# Side of the input -> (4a map side, 5×5/3 pool output side or None): the paper's 224 -> 14 -> 4, and sizes
# around each rounding boundary.
AUX_SIZES = [15, 28, 31, 32, 64, 79, 80, 96, 112, 127, 128, 160, 192, 222, 223, 224, 270, 271]


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_aux_pool_output_size_matches_a_forward_pass(variant: str) -> None:
    # The 4a map does not depend on the variant; aux_pool="paper" makes the 5×5/3 pool observable.
    model = meta_model("googlenet", variant=variant, num_classes=3, aux_pool="paper").train()
    seen: dict[str, tuple[int, ...]] = {}
    model.stages[1].inception4a.register_forward_hook(
        lambda _m, _i, o: seen.__setitem__("map", tuple(o.shape))
    )
    model.aux1.pool.avg.register_forward_hook(lambda _m, _i, o: seen.__setitem__("pooled", tuple(o.shape)))
    model.aux1.pool.register_forward_hook(lambda _m, _i, o: seen.__setitem__("grid", tuple(o.shape)))
    for side in AUX_SIZES if variant == "paper" else [15, 28, 224]:  # torchvision's: the small end
        if side < model.min_input_size:
            continue
        seen.clear()
        model(torch.empty(2, 3, side, side, device="meta"))  # 2: BN batch statistics on 1×1 maps
        size = aux_pool_output_size(side)
        assert seen["map"][-2:] == (size.map_size, size.map_size), side
        assert seen.get("pooled", (None,))[-1] == size.paper_pool_size, side
        assert seen["grid"][-2:] == (4, 4)  # "paper" always hands the aux FC a 4×4 grid
    assert aux_pool_output_size(224) == type(aux_pool_output_size(224))(224, 14, 4, True)  # the paper's


def test_paper_aux_pool_is_exact_only_for_inputs_223_to_270() -> None:
    exact = [s for s in range(15, 513) if aux_pool_output_size(s).exact]
    assert exact == list(range(AUX_EXACT_INPUTS[0], AUX_EXACT_INPUTS[1] + 1)) == list(range(223, 271))
    with pytest.raises(ValueError, match="input_size"):
        aux_pool_output_size(14)


def test_aux_pool_is_selectable() -> None:
    kinds = {k: meta_model("googlenet", aux_pool=k).aux1.pool for k in ("paper", "fixed", "adaptive")}
    assert {k: p.kind for k, p in kinds.items()} == {
        "paper": "paper",
        "fixed": "fixed",
        "adaptive": "adaptive",
    }
    assert meta_model("googlenet", variant="torchvision").aux_pool == "adaptive"
    x = torch.randn(2, 8, 14, 14)  # 4a at 224: the paper's pool, fixed or not
    assert torch.equal(kinds["fixed"].to("cpu")(x), F.avg_pool2d(x, 5, 3))
    fixed = meta_model("googlenet", aux_pool="fixed", num_classes=3).train()
    out = fixed(torch.empty(1, 3, 224, 224, device="meta"))
    assert out.aux1.shape == (1, 3)
    with pytest.raises(InputSizeError, match="223-270"):
        fixed(torch.empty(1, 3, 96, 96, device="meta"))
    fixed.eval()(torch.empty(1, 3, 96, 96, device="meta"))  # no aux heads at inference: any size
    with pytest.raises(InputSizeError, match="4×4"):
        AuxPool("fixed")(torch.randn(1, 4, 6, 6))


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_aux_logits_only_in_training_mode(variant: str) -> None:
    model = depthlab.create_model("googlenet", num_classes=6, variant=variant)
    x = torch.randn(2, 3, 32, 32)
    no_aux = depthlab.create_model("googlenet", num_classes=6, variant=variant, aux_logits=False)
    with torch.no_grad():  # training *mode*, no autograd needed
        out = model.train()(x)
        assert isinstance(out, GoogLeNetOutputs)
        assert out.logits.shape == out.aux1.shape == out.aux2.shape == (2, 6)
        assert len(aux_logits(out)) == 2 and main_logits(out) is out.logits
        assert isinstance(model.eval()(x), torch.Tensor)
        assert no_aux.aux1 is None and isinstance(no_aux.train()(x), torch.Tensor)


def test_aux_heads_read_inception_4a_and_4d() -> None:
    model = depthlab.create_model("googlenet", num_classes=5).train()
    seen: dict[str, torch.Tensor] = {}
    for tap in ("inception4a", "inception4d"):
        getattr(model.stages[1], tap).register_forward_hook(
            lambda _m, _i, out, tap=tap: seen.__setitem__(tap, out)
        )
    for aux in ("aux1", "aux2"):
        getattr(model, aux).register_forward_pre_hook(
            lambda _m, args, aux=aux: seen.__setitem__(aux, args[0])
        )
    model(torch.randn(2, 3, 40, 40))
    assert seen["aux1"] is seen["inception4a"] and seen["aux2"] is seen["inception4d"]


def test_googlenet_options_combine() -> None:
    model = meta_model("googlenet", variant="torchvision", norm=None, lrn=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.modules()) == 2
    assert isinstance(model, GoogLeNet) and model.variant == "torchvision"


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("vgg16", {"config": "F"}, "'A', 'A-LRN', 'B', 'C', 'D', 'E'"),
        ("vgg16", {"head": "tiny"}, "'imagenet', 'small'"),
        ("vgg16", {"norm": "layer"}, "'batch', None"),
        ("alexnet", {"variant": "caffe"}, "'torchvision', 'paper'"),
        ("googlenet", {"variant": "v3"}, "'paper', 'torchvision'"),
        ("googlenet", {"norm": "group"}, "'batch', None"),
        ("googlenet", {"aux_pool": "max"}, "'paper', 'fixed', 'adaptive'"),
        ("alexnet", {"dropout": 1.5}, "dropout"),
    ],
)
def test_bad_choices_name_the_allowed_values(name: str, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        meta_model(name, **kwargs)


def test_googlenet_type_errors() -> None:
    with pytest.raises(TypeError, match="aux_logits"):
        meta_model("googlenet", aux_logits="yes")
    with pytest.raises(TypeError, match="lrn"):
        meta_model("googlenet", lrn=1)
