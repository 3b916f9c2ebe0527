"""Rescaled residual branches (``branch_scale``): x + α·F(x) with α = 1/√(blocks), Balduzzi et al. 2017.

The degradation study's BN-free ResNet twins use them; these tests check the two properties it relies on,
against controls that show each test can fail: at initialisation the branches are live (unlike SkipInit),
and the forward signal of a 56-layer BN-free net stays bounded (unlike the unscaled net)."""

from __future__ import annotations

import math

import pytest
import torch

from depthlab import create_model
from depthlab.analysis.gradients import diagnose
from depthlab.errors import OptionError, UsageTypeError
from depthlab.models.resnet import BranchScale, resolve_branch_scale


def _net(**kwargs: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("resnet56", num_classes=10, in_channels=1, norm=None, **kwargs)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)


def test_alpha_is_one_over_root_blocks_and_numbers_pass_through() -> None:
    net = _net(branch_scale="1/sqrt(blocks)")
    scales = [m for m in net.modules() if isinstance(m, BranchScale)]
    assert len(scales) == 27  # ResNet-56: 3 stages of 9 blocks, one factor per branch
    assert [m.alpha for m in scales] == pytest.approx([1 / math.sqrt(27)] * 27)
    # The factor is a constant: the parameters (and their count) are the unscaled net's.
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in _net().named_parameters()]
    assert resolve_branch_scale(0.5, 27) == 0.5 and resolve_branch_scale(None, 27) is None


def test_forward_signal_of_a_56_layer_bn_free_net_stays_bounded(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    x, y = batch
    scaled = diagnose(_net(branch_scale="1/sqrt(blocks)"), x, y).forward_growth()
    unscaled = diagnose(_net(), x, y).forward_growth()
    # RMS signal at the last block ÷ the first: bounded with α = 1/√27 …
    assert 0.1 < scaled < 10
    # … while the same net without the factor blows up (the control: this test can fail).
    assert unscaled > 100


def test_branches_are_live_at_init_unlike_skipinit(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    scaled = _net(branch_scale="1/sqrt(blocks)").eval()
    off = _net(skipinit=True).eval()  # same seed, every branch multiplied by 0
    ratios = [b.branch_ratio for b in diagnose(scaled, x, y).blocks]
    assert all(r is not None and r > 0.05 for r in ratios)  # ‖α·F(x)‖/‖x‖ of every block
    assert all(b.branch_ratio == 0.0 for b in diagnose(off, x, y).blocks)
    with torch.no_grad():
        assert not torch.allclose(scaled(x), off(x), atol=1e-3)


def test_branch_scale_is_validated() -> None:
    with pytest.raises(OptionError, match="choose one"):
        _net(branch_scale="1/sqrt(blocks)", skipinit=True)
    with pytest.raises(OptionError, match="residual blocks"):
        create_model("plain20", num_classes=10, branch_scale="1/sqrt(blocks)")
    with pytest.raises(OptionError, match="1/sqrt\\(blocks\\)"):
        _net(branch_scale="1/blocks")
    with pytest.raises(OptionError, match="positive finite"):
        _net(branch_scale=0.0)
    with pytest.raises(UsageTypeError, match="branch_scale must be a number"):
        _net(branch_scale=True)
