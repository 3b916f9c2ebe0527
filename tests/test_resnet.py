"""ResNet / plain / pre-activation family: published counts, the plain-twin rule, block invariants."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import depthlab
from depthlab.errors import DepthlabError, OptionError
from depthlab.layers import ConvNormAct, Scale
from depthlab.models.resnet import (
    BasicBlock,
    Bottleneck,
    PlainBasicBlock,
    PlainBottleneck,
    PreActBlock,
    ResNet,
)

# Tiny models: one intra-op thread (the shared `one_thread` fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")

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


# ------------------------------------------------------------------- pre-activation: the first unit's split
def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    # Non-trivial running statistics and affine parameters, so BN in eval mode is not the identity.
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen))
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen))


def _bn_relu(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    # BN in eval mode written out: γ (x − μ) / sqrt(σ² + ε) + β, per channel; then ReLU.
    shape = (1, -1, 1, 1)
    y = (x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
    return F.relu(y * bn.weight.view(shape) + bn.bias.view(shape))


@pytest.mark.parametrize("name", ["preact_resnet20", "preact_resnet164"])
def test_preact_first_unit_of_every_stage_activates_before_the_split(name: str) -> None:
    """Identity Mappings: the first unit pre-activates right after conv1 and before splitting into two
    paths; the reference code (resnet-pre-act.lua, preresnet.lua) does the same in the first unit of each
    later stage. So that unit's shortcut and branch both read BN-ReLU(its input)."""
    model = depthlab.create_model(name, num_classes=10).eval()
    _randomise_bn(model)
    seen: dict[str, torch.Tensor] = {}

    def keep(key: str):  # noqa: ANN202 - a hook factory
        return lambda _m, args, *out: seen.__setitem__(key, out[0] if out else args[0])

    model.stem.register_forward_hook(keep("stem"))
    for i, stage in enumerate(model.stages):
        stage.register_forward_hook(keep(f"stage{i}"))
        first, second = stage[0], stage[1]
        first.shortcut.register_forward_pre_hook(keep(f"shortcut{i}"))
        first.branch.register_forward_pre_hook(keep(f"branch{i}"))
        second.shortcut.register_forward_pre_hook(keep(f"second_shortcut{i}"))
        first.register_forward_hook(keep(f"first_out{i}"))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    for i, stage in enumerate(model.stages):
        unit_input = seen["stem"] if i == 0 else seen[f"stage{i - 1}"]
        expected = _bn_relu(unit_input, stage[0].preact.norm)
        assert torch.allclose(seen[f"shortcut{i}"], expected, atol=1e-5), (name, i)
        assert seen[f"branch{i}"] is seen[f"shortcut{i}"]  # one activation, shared by both paths
        # Every later unit: the shortcut carries the un-activated sum (the identity path stays clean).
        assert seen[f"second_shortcut{i}"] is seen[f"first_out{i}"]
        assert isinstance(stage[0].branch[0].norm, nn.Identity)  # not normalised a second time
        assert isinstance(stage[1].branch[0].norm, nn.BatchNorm2d)


def _executed_leaves(model: nn.Module, shape: tuple[int, ...]) -> list[nn.Module]:
    order: list[nn.Module] = []
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(lambda m, _i, _o: order.append(m)) for m in leaves]
    with torch.no_grad():
        model.eval()(torch.empty(1, *shape, device="meta"))
    for h in handles:
        h.remove()
    return order


@pytest.mark.parametrize(
    "name", [n for n in depthlab.list_models() if n not in ("resnet1202", "plain1202", "preact_resnet1001")]
)
def test_no_batch_norm_is_applied_twice_in_a_row(name: str) -> None:
    """Between two BatchNorms in execution order there is always a convolution — e.g. the ImageNet
    pre-activation nets' stem (conv-BN-ReLU-maxpool) is not followed by a second BN-ReLU."""
    model = meta_model(name)
    shape = depthlab.model_info(name).default_input
    kinds = [type(m) for m in _executed_leaves(model, shape) if isinstance(m, (nn.BatchNorm2d, nn.Conv2d))]
    twice = [k for k, (a, b) in enumerate(itertools.pairwise(kinds)) if a is b is nn.BatchNorm2d]
    assert not twice, f"{name}: BN follows BN at positions {twice[:3]}"


@pytest.mark.parametrize("name", ["preact_resnet18", "preact_resnet50"])
def test_imagenet_preact_first_unit_reads_the_activated_stem(name: str) -> None:
    # fb.resnet.torch preresnet.lua: conv-BN-ReLU-maxpool, then a first unit of type 'no_preact'.
    model = meta_model(name)
    stem_types = [type(m) for m in _executed_leaves(model.stem, (3, 64, 64))]
    assert stem_types == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    first = model.stages[0][0]
    assert isinstance(first.preact, nn.Identity)
    assert isinstance(first.branch[0].norm, nn.Identity) and isinstance(first.branch[0].act, nn.Identity)
    # The first unit of every later stage pre-activates before its projection shortcut.
    for stage in list(model.stages)[1:]:
        assert isinstance(stage[0].preact.norm, nn.BatchNorm2d)
        assert isinstance(stage[0].shortcut.conv, nn.Conv2d)


def _reference_preact_cifar_bottleneck(depth: int, num_classes: int) -> int:
    """Parameters of KaimingHe/resnet-1k-layers resnet-pre-act.lua, counted from its layer list: a bias-free
    3×3 stem conv (cudnn ≥ 4 drops conv biases), stages 16→64, 64→128, 128→256 of n bottleneck units; the
    first unit of a stage has its 'common BN, ReLU' and a 1×1 projection; final BN, FC."""
    n = (depth - 2) // 9
    total = 3 * 16 * 9
    for cin, cout in ((16, 64), (64, 128), (128, 256)):
        w = cout // 4
        for j in range(n):
            c = cin if j == 0 else cout
            total += 2 * c + c * w + 2 * w + w * w * 9 + 2 * w + w * cout  # BN, 1×1, BN, 3×3, BN, 1×1
            total += c * cout if j == 0 else 0  # projection shortcut, no BN
    return total + 2 * 256 + 256 * num_classes + num_classes


def _reference_preresnet_imagenet(depth: int) -> int:
    """Parameters of fb.resnet.torch models/preresnet.lua (ImageNet, shortcut type B): a 7×7 stem conv with
    BN; stage 1's first unit 'no_preact' (no BN), every other unit one BN on its input; 1×1 projections
    without BN where the width changes; final BN; FC 1000."""
    block, layers = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottle", (3, 4, 6, 3))}[
        depth
    ]
    total, c = 3 * 64 * 49 + 2 * 64, 64
    for i, (count, n) in enumerate(zip(layers, (64, 128, 256, 512), strict=True)):
        out = n if block == "basic" else 4 * n
        for j in range(count):
            total += 0 if (i == 0 and j == 0) else 2 * c  # the unit's first BN
            if block == "basic":
                total += c * n * 9 + 2 * n + n * n * 9
            else:
                total += c * n + 2 * n + n * n * 9 + 2 * n + n * out
            total += c * out if c != out else 0
            c = out
    return total + 2 * c + c * 1000 + 1000


@pytest.mark.parametrize("depth", [164, 1001])
def test_preact_cifar_counts_equal_the_reference_code(depth: int) -> None:
    model = meta_model(f"preact_resnet{depth}", num_classes=10)
    assert n_params(model) == _reference_preact_cifar_bottleneck(depth, 10)
    # The paper's table: ResNet-164 1.7M, ResNet-1001 10.2M. 1001 with BN is 10.33M; its conv and FC
    # weights alone are 10.18M — the paper's figure leaves the 149k BN parameters out.
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert round(weights / 1e6, 1) == {164: 1.7, 1001: 10.2}[depth]
    assert round(n_params(model) / 1e6, 1) == {164: 1.7, 1001: 10.3}[depth]


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_preact_imagenet_counts_equal_the_reference_code(depth: int) -> None:
    assert n_params(meta_model(f"preact_resnet{depth}")) == _reference_preresnet_imagenet(depth)


def test_preact_mode_is_validated() -> None:
    with pytest.raises(ValueError, match="'branch', 'both', 'none'"):
        PreActBlock(8, 8, 1, preact="after")


# ------------------------------------------------------------------------------------------------ SkipInit
def _block_outputs(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    outs: list[torch.Tensor] = []
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    handles = [b.register_forward_hook(lambda _m, _i, o: outs.append(o)) for b in blocks]
    logits = model(x)
    for h in handles:
        h.remove()
    return logits, outs


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "preact_resnet20", "preact_resnet164"])
def test_skipinit_block_is_its_shortcut_at_init(name: str) -> None:
    model = depthlab.create_model(name, num_classes=4, skipinit=True).eval()
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert blocks and all(
        isinstance(b.branch[-1], Scale) and float(b.branch[-1].scale.detach()) == 0.0 for b in blocks
    )
    block = blocks[0]
    x = torch.randn(2, block.branch[0].conv.in_channels, 8, 8)
    with torch.no_grad():
        pre = block.preact(x) if isinstance(block, PreActBlock) else x
        assert torch.equal(block(x), block.act(block.shortcut(pre)))
        assert torch.count_nonzero(block.branch(pre)) == 0  # .branch's output is the (zero) added term
    assert n_params(model) == n_params(depthlab.create_model(name, num_classes=4)) + len(blocks)


def test_skipinit_keeps_a_bn_free_resnet56_bounded_at_init() -> None:
    """Without BN each residual addition adds the branch's variance, so block outputs grow with depth
    (measured: last/first block std 2.5e3-5.8e4 over 8 inits); SkipInit starts every block as its
    shortcut, and the std stays put (measured 0.54-0.57)."""
    torch.manual_seed(0)
    x = torch.randn(8, 1, 28, 28)
    ratios = {}
    for skipinit in (True, False):
        torch.manual_seed(1)
        model = depthlab.create_model("resnet56", num_classes=10, in_channels=1, norm=None, skipinit=skipinit)
        with torch.no_grad():
            _, outs = _block_outputs(model.train(), x)
        assert len(outs) == 27
        ratios[skipinit] = float(outs[-1].std() / outs[0].std())
    assert 0.1 < ratios[True] < 10.0
    assert ratios[False] > 100.0


def test_bn_free_plain_net_gradient_shrinks_toward_the_input() -> None:
    """The unchanged twin: BN-free plain nets pass a smaller gradient to their first block than to their
    last, the more so the deeper. The size of the effect depends on the initialisation (plain56 at 28×28,
    20 inits: first/last 0.04-0.35, median 0.14), so compare geometric means over several inits."""

    def ratio(name: str, seed: int) -> float:
        torch.manual_seed(seed)
        model = depthlab.create_model(name, num_classes=10, in_channels=1, norm=None).train()
        logits, outs = _block_outputs(model, torch.randn(16, 1, 28, 28))
        loss = F.cross_entropy(logits, torch.randint(0, 10, (16,)))
        grads = torch.autograd.grad(loss, [outs[0], outs[-1]])
        return float(grads[0].norm() / grads[1].norm())

    geo = {}
    for name in ("plain20", "plain56"):
        rs = [ratio(name, seed) for seed in range(4)]
        assert all(r < 0.6 for r in rs), (name, rs)
        geo[name] = math.exp(sum(math.log(r) for r in rs) / len(rs))
    assert geo["plain56"] < 0.25 and geo["plain56"] < geo["plain20"], geo


def test_skipinit_scale_gets_a_gradient() -> None:
    torch.manual_seed(0)
    model = depthlab.create_model("resnet20", num_classes=10, in_channels=1, norm=None, skipinit=True)
    loss = F.cross_entropy(model(torch.randn(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    scales = [m.scale for m in model.modules() if isinstance(m, Scale)]
    assert len(scales) == 9
    # dL/dα = <dL/d(out), F(x)>: nonzero although α = 0 (the branch weights' gradients are then 0).
    assert all(s.grad is not None and s.grad.abs() > 0 for s in scales)


@pytest.mark.parametrize("name", ["plain20", "plain50"])
def test_skipinit_on_a_plain_net_is_a_one_line_error(name: str) -> None:
    with pytest.raises(OptionError, match="no identity path") as err:
        depthlab.create_model(name, skipinit=True)
    assert isinstance(err.value, ValueError) and isinstance(err.value, DepthlabError)
    assert "\n" not in str(err.value)
    with pytest.raises(OptionError, match="no identity path"):
        PlainBasicBlock(8, 8, skipinit=True)


def test_zero_init_residual_still_works_with_skipinit() -> None:
    for skipinit in (False, True):
        m = depthlab.create_model("resnet50", zero_init_residual=True, skipinit=skipinit)
        lasts = [
            [u for u in b.branch if isinstance(u, ConvNormAct)][-1]
            for b in m.modules()
            if isinstance(b, Bottleneck)
        ]
        assert len(lasts) == 16 and all(torch.all(u.norm.weight == 0) for u in lasts)
