"""ResNet / plain / pre-activation family: published counts, the plain-twin rule, block invariants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import depthlab
from depthlab.models.resnet import (
    BasicBlock,
    Bottleneck,
    PlainBasicBlock,
    PlainBottleneck,
    PreActBlock,
    ResNet,
)

EXPECTED = json.loads((Path(__file__).parent / "expected" / "resnet_params.json").read_text())


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return depthlab.create_model(name, **kwargs)


@pytest.mark.parametrize("name", sorted(EXPECTED["imagenet_1000"]))
def test_imagenet_counts_equal_torchvision(name: str) -> None:
    assert n_params(meta_model(name)) == EXPECTED["imagenet_1000"][name]


@pytest.mark.parametrize("name", sorted(EXPECTED["cifar_10"]))
def test_cifar_counts_equal_the_paper_option_a(name: str) -> None:
    assert n_params(meta_model(name, num_classes=10)) == EXPECTED["cifar_10"][name]


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110, 1202, 18, 34, 50, 101, 152])
def test_plain_twin_has_the_resnet_parameters_under_option_a(depth: int) -> None:
    plain = meta_model(f"plain{depth}", num_classes=10, shortcut="A")
    res = meta_model(f"resnet{depth}", num_classes=10, shortcut="A")
    assert n_params(plain) == n_params(res)
    # ...and the same layers: identical parameter names and shapes.
    assert [(n, p.shape) for n, p in plain.named_parameters()] == [
        (n, p.shape) for n, p in res.named_parameters()
    ]


def test_plain_and_resnet_differ_only_by_block() -> None:
    plain, res = meta_model("plain56", num_classes=10), meta_model("resnet56", num_classes=10)
    blocks_p = [m for m in plain.modules() if isinstance(m, BasicBlock)]
    blocks_r = [m for m in res.modules() if isinstance(m, BasicBlock)]
    assert len(blocks_p) == len(blocks_r) == 27
    assert all(type(b) is PlainBasicBlock and b.shortcut is None for b in blocks_p)
    assert all(type(b) is BasicBlock and b.shortcut is not None for b in blocks_r)


def test_cifar_depth_is_6n_plus_2() -> None:
    for depth in (20, 56, 110):
        m = meta_model(f"resnet{depth}", num_classes=10)
        convs = [x for x in m.modules() if isinstance(x, nn.Conv2d) and x.kernel_size == (3, 3)]
        linears = [x for x in m.modules() if isinstance(x, nn.Linear)]
        assert len(convs) + len(linears) == depth


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "preact_resnet164", "plain34", "vgg16"])
def test_feature_info_matches_real_strides(name: str) -> None:
    assert name in depthlab.list_models(), f"{name} is not registered"  # a missing model fails, never skips
    model = depthlab.create_model(name, num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        h = model.stem(x)
        for info, stage in zip(model.feature_info, model.stages, strict=True):
            h = stage(h)
            assert h.shape[1] == info.channels
            assert 64 // h.shape[-1] == info.reduction


def test_bottleneck_stride_placement() -> None:
    v15 = Bottleneck(64, 32, 2, stride_on="3x3")
    v1 = Bottleneck(64, 32, 2, stride_on="1x1")
    assert v15.branch[0].conv.stride == (1, 1) and v15.branch[1].conv.stride == (2, 2)
    assert v1.branch[0].conv.stride == (2, 2) and v1.branch[1].conv.stride == (1, 1)
    x = torch.randn(2, 64, 8, 8)
    assert v15(x).shape == v1(x).shape == (2, 128, 4, 4)
    # Same parameters either way: only where the stride is applied changes (and the MACs).
    assert n_params(v15) == n_params(v1)
    with pytest.raises(ValueError, match="stride_on"):
        Bottleneck(64, 32, 2, stride_on="middle")


def test_bad_choices_name_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="'A', 'B', 'C'"):
        depthlab.create_model("resnet20", shortcut="D")
    with pytest.raises(ValueError, match="norm"):
        depthlab.create_model("resnet20", norm="layer")
    with pytest.raises(ValueError, match="block must be one of"):
        ResNet(block="weird")


def test_zero_init_residual_makes_each_block_identity_like() -> None:
    m = depthlab.create_model("resnet50", zero_init_residual=True)
    lasts = [b.branch[-1].norm.weight for b in m.modules() if isinstance(b, Bottleneck)]
    assert len(lasts) == 16 and all(torch.all(w == 0) for w in lasts)


# ------------------------------------------------------------------------------------- block invariants
def _zero_branch(block: nn.Module) -> None:
    # The last unit of the branch outputs BN(·) with gamma = beta = 0: F(x) = 0 exactly.
    last = block.branch[-1].norm
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


@pytest.mark.parametrize("option", ["A", "B"])
def test_residual_block_with_zero_branch_is_relu_identity(option: str) -> None:
    block = BasicBlock(16, 16, 1, shortcut=option).eval()
    _zero_branch(block)
    x = torch.randn(4, 16, 8, 8)
    assert torch.equal(block(x), F.relu(x))


def test_option_a_downsampling_block_with_zero_branch() -> None:
    block = BasicBlock(16, 32, 2, shortcut="A").eval()
    _zero_branch(block)
    x = torch.randn(2, 16, 8, 8)
    expected = F.relu(torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 16, 4, 4)], dim=1))
    assert torch.equal(block(x), expected)


def test_option_b_downsampling_block_with_zero_branch_is_relu_projection() -> None:
    block = BasicBlock(16, 32, 2, shortcut="B").eval()
    _zero_branch(block)
    x = torch.randn(2, 16, 8, 8)
    assert torch.allclose(block(x), F.relu(block.shortcut(x)))


@pytest.mark.parametrize("cls", [PlainBasicBlock, PlainBottleneck])
def test_plain_block_with_zero_weights_outputs_zeros(cls: type[nn.Module]) -> None:
    block = cls(16, 16 // cls.expansion if cls is PlainBottleneck else 16, 1)
    for p in block.parameters():
        nn.init.zeros_(p)
    for mode in (block.train(), block.eval()):
        out = mode(torch.randn(3, 16, 6, 6))
        assert torch.count_nonzero(out) == 0


def test_skip_connection_gradient_statement() -> None:
    """dL/dx = dL/dH · (1 + dF/dx): with F ≡ 0 the residual block passes dL/dH (ReLU-masked); plain passes 0."""
    res = BasicBlock(8, 8, 1).eval()
    plain = PlainBasicBlock(8, 8, 1).eval()
    plain.load_state_dict(res.state_dict())  # same layers, same weights
    for block in (res, plain):
        _zero_branch(block)
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    upstream = torch.randn(2, 8, 5, 5)  # dL/dH
    (g_res,) = torch.autograd.grad(res(x), x, upstream)
    (g_plain,) = torch.autograd.grad(plain(x), x, upstream)
    assert torch.equal(g_res, upstream * (x > 0))
    assert torch.count_nonzero(g_plain) == 0


def test_preact_block_has_no_final_relu() -> None:
    block = PreActBlock(8, 8, 1).eval()
    nn.init.zeros_(block.branch[-1].conv.weight)
    nn.init.zeros_(block.branch[-1].conv.bias) if block.branch[-1].conv.bias is not None else None
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(block(x), x)  # pure identity: negative values survive
