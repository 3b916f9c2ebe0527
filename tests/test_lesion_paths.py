"""Lesion study and path analysis (Veit et al. 2016) checked against invariants and second methods:
a zeroed branch changes nothing when lesioned; a lesion equals a network built without the block; a
hand-built 3-block linear residual net's path gradients equal the by-hand unrolling; path gradients sum to
the ordinary gradient."""

from __future__ import annotations

import copy
import itertools
import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from depthlab.analysis.evaluation import PartialResults, binomial_se, evaluate
from depthlab.analysis.lesion import (
    LesionResult,
    NoResidualBlocksError,
    lesion_study,
    lesion_units,
    lesioned,
    swapped,
)
from depthlab.analysis.paths import (
    PathResult,
    effective_range,
    path_gradient,
    path_length_distribution,
    path_study,
)
from depthlab.models.resnet import ResNet

# Tiny models: one intra-op thread (the shared `one_thread` fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(block: str = "basic") -> ResNet:
    # 5 blocks: stages (2, 2, 1) of widths 4/8/8; stages.1.0 and stages.2.0 downsample (option A).
    return ResNet(
        block, layers=(2, 2, 1), widths=(4, 8, 8), stem="cifar", num_classes=3, in_channels=1, shortcut="A"
    ).eval()


def _perturb_bn(model: nn.Module) -> None:
    # Fresh BN is the identity on N(0,1) data; random running stats make every block matter.
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.bias.data.copy_(0.2 * torch.randn(m.num_features, generator=g))


X = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
Y = torch.arange(16) % 3


# ------------------------------------------------------------------------------------------------ lesion
def test_a_block_whose_branch_is_zeroed_changes_nothing_when_lesioned():
    model = tiny()
    _perturb_bn(model)
    block = model.stages[0][1]
    intact = model(X)
    with lesioned(model, ["stages.0.1"], "residual"):
        lesioned_other = model(X)
    assert not torch.allclose(intact, lesioned_other)  # deleting a live branch does change the output
    with torch.no_grad():
        block.branch[-1].norm.weight.zero_()  # F(x) ≡ 0: the block is ReLU(x), which is x (x ≥ 0)
        block.branch[-1].norm.bias.zero_()
    zeroed = model(X)
    with lesioned(model, ["stages.0.1"], "residual"):
        assert torch.equal(model(X), zeroed)


def test_residual_lesion_keeps_the_option_a_shortcut():
    model = tiny()
    _perturb_bn(model)
    block = model.stages[1][0]  # 4 -> 8 channels, stride 2
    x = torch.relu(torch.randn(2, 4, 8, 8))
    with lesioned(model, ["stages.1.0"], "residual"):
        out = block(x)
    # By hand: subsample by 2, append 4 zero channels, ReLU.
    expected = torch.relu(torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 4, 4, 4)], dim=1))
    assert torch.equal(out, expected)
    assert not torch.equal(block(x), expected)  # restored on exit


def test_forward_is_restored_after_an_exception():
    model = tiny()
    before = model(X)
    with pytest.raises(RuntimeError), lesioned(model, ["stages.0.0", "stages.2.0"], "residual"):
        raise RuntimeError("boom")
    assert torch.equal(model(X), before)
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_units_mark_downsampling_and_plain_mode_keeps_shape_preserving_blocks():
    mode, units = lesion_units(tiny(), (1, 8, 8))
    assert mode == "residual"
    assert [u.name for u in units] == ["stages.0.0", "stages.0.1", "stages.1.0", "stages.1.1", "stages.2.0"]
    assert [u.name for u in units if u.downsampling] == ["stages.1.0", "stages.2.0"]
    mode, units = lesion_units(tiny("plain_basic"), (1, 8, 8))
    assert mode == "plain"
    assert [u.name for u in units] == ["stages.0.0", "stages.0.1", "stages.1.1"]


def test_residual_mode_on_a_plain_net_is_a_one_line_error():
    with pytest.raises(NoResidualBlocksError, match="no residual blocks") as info:
        lesion_units(tiny("plain_basic"), (1, 8, 8), "residual")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="lesion mode must be one of"):
        lesion_units(tiny(), (1, 8, 8), "both")


def test_plain_lesion_equals_the_net_built_without_the_block():
    model = tiny("plain_basic")
    _perturb_bn(model)
    result = lesion_study(model, X, Y, draws=2, max_swaps=2)
    # Second method: delete the module from its Sequential and evaluate that smaller network.
    for s in result.single:
        smaller = copy.deepcopy(model)
        stage, idx = (int(p) for p in s.name.split(".")[1:])
        del smaller.stages[stage][idx]
        r = evaluate(smaller, X, Y)
        assert s.error == pytest.approx(r.error, abs=0) and s.loss == pytest.approx(r.loss, rel=1e-6)
    # k = 1 of the k-deletion curve is exactly the single deletions; the last k deletes every block.
    assert result.deletions[0].errors == tuple(s.error for s in result.single)
    last = copy.deepcopy(model)
    for stage, idx in sorted(((0, 0), (0, 1), (1, 1)), reverse=True):
        del last.stages[stage][idx]
    assert result.deletions[-1].errors == (evaluate(last, X, Y).error,)


def test_swaps_equal_a_net_with_the_blocks_reordered():
    model = tiny()
    _perturb_bn(model)
    reordered = copy.deepcopy(model)
    stage = reordered.stages[0]
    reordered.stages[0] = nn.Sequential(stage[1], stage[0])
    with swapped(model, [("stages.0.0", "stages.0.1")]):
        assert torch.equal(model(X), reordered(X))
    with pytest.raises(ValueError, match="one nn.Sequential"):
        with swapped(model, [("stages.0.0", "stages.1.1")]):
            pass


def test_lesion_result_round_trips_and_names_its_margins():
    model = tiny()
    _perturb_bn(model)
    result = lesion_study(model, X, Y, draws=2, max_swaps=2, seed=3)
    again = LesionResult.from_dict(result.to_dict())
    assert again == result
    assert [d.k for d in result.deletions] == list(range(1, 6))
    assert all(len(d.errors) == min(2, math.comb(5, d.k)) for d in result.deletions[1:])
    assert [d.k for d in result.swaps] == [1, 2]
    text = " ".join(result.findings("tiny"))
    assert "binomial SE" in text and "downsampling" in text
    assert binomial_se(0.1, 100) == pytest.approx(0.03)


def test_lesion_study_resumes_from_partial_results(tmp_path):
    model = tiny()
    _perturb_bn(model)
    path = tmp_path / "lesion.partial.json"

    def stop_after(n):
        def progress(done, total):
            if done >= n:
                raise KeyboardInterrupt

        return progress

    with pytest.raises(KeyboardInterrupt):
        lesion_study(
            model, X, Y, draws=2, max_swaps=1, partial=PartialResults(path, {"a": 1}), progress=stop_after(4)
        )
    partial = PartialResults(path, {"a": 1})
    assert partial.resumed and len(partial.items) == 3  # 3 lesions evaluated before the stop
    resumed = lesion_study(model, X, Y, draws=2, max_swaps=1, partial=partial)
    fresh = lesion_study(model, X, Y, draws=2, max_swaps=1)
    assert (
        resumed.single == fresh.single
        and resumed.deletions == fresh.deletions
        and resumed.swaps == fresh.swaps
    )
    assert not PartialResults(path, {"a": 2}).resumed  # another fingerprint starts over


# ------------------------------------------------------------------------------------------------- paths
class LinearBlock(nn.Module):
    """x → W x + x: a residual block with a linear branch, identity shortcut, no nonlinearity."""

    residual = True

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.branch = nn.Linear(weight.shape[1], weight.shape[0], bias=False, dtype=weight.dtype)
        self.branch.weight.data.copy_(weight)
        self.shortcut = nn.Identity()
        self.act = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.branch(x) + self.shortcut(x))


class HandNet(nn.Module):
    def __init__(self, weights: list[torch.Tensor], head: torch.Tensor) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(LinearBlock(w) for w in weights))
        self.head = nn.Linear(head.shape[1], head.shape[0], bias=False, dtype=head.dtype)
        self.head.weight.data.copy_(head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))


def test_hand_built_three_block_net_matches_the_unrolling():
    g = torch.Generator().manual_seed(0)
    d, classes, n = 5, 3, 6
    W = [0.5 * torch.randn(d, d, generator=g, dtype=torch.float64) for _ in range(3)]
    head = torch.randn(classes, d, generator=g, dtype=torch.float64)
    net = HandNet(W, head)  # float64 throughout: the comparisons below are exact to 1e-12
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.arange(n) % classes
    # By hand: y3 = (I+W3)(I+W2)(I+W1) x; h = ∂L/∂y3 = (softmax − onehot) · head; a path S picks W_i for
    # i ∈ S (applied in order) and I elsewhere, so g_S = h · W_{s_m} ⋯ W_{s_1}.
    y3 = x.clone()
    for w in W:
        y3 = y3 + y3 @ w.T
    h = (F.softmax(y3 @ head.T, dim=1) - F.one_hot(y, classes).double()) @ head
    by_hand = {}
    for S in itertools.chain.from_iterable(itertools.combinations(range(3), k) for k in range(4)):
        J = torch.eye(d, dtype=torch.float64)
        for i in S:
            J = W[i] @ J
        by_hand[S] = h @ J
        assert torch.allclose(path_gradient(net, x, y, S), by_hand[S], rtol=1e-12, atol=1e-12)
    assert torch.allclose(sum(by_hand.values()), path_gradient(net, x, y, None), rtol=1e-12, atol=1e-12)
    assert path_length_distribution(3) == (1 / 8, 3 / 8, 3 / 8, 1 / 8)
    result = path_study(net, x, y, samples=3, batch=n)  # 3 ≥ C(3, k): every path is enumerated
    for k in range(4):
        paths = [S for S in by_hand if len(S) == k]
        expected = sum(float(by_hand[S].norm(dim=1).mean()) for S in paths) / len(paths)
        assert result.gradient[k] == pytest.approx(expected, rel=1e-9)
        assert result.total[k] == pytest.approx(result.probability[k] * expected, rel=1e-9)
    assert PathResult.from_dict(result.to_dict()) == result


def test_path_gradients_of_a_real_resnet_sum_to_its_gradient():
    # With ReLU masks and eval-mode BN fixed, the gradient is exactly the sum over all 2^n paths.
    model = tiny().double()
    _perturb_bn(model)
    x = X.double()
    total = sum(
        path_gradient(model, x, Y, S)
        for S in itertools.chain.from_iterable(itertools.combinations(range(5), k) for k in range(6))
    )
    full = path_gradient(model, x, Y, None)
    assert full.abs().max() > 0
    assert torch.allclose(total, full, rtol=1e-9, atol=1e-12)


def test_paths_refuse_a_plain_net():
    with pytest.raises(NoResidualBlocksError, match="single path"):
        path_gradient(tiny("plain_basic"), X, Y, [])


def test_effective_range_is_the_shortest_window_holding_the_mass():
    assert effective_range([0, 1, 8, 1, 0], 0.8) == (2, 2)
    assert effective_range([0, 1, 8, 1, 0], 0.9) == (1, 2)  # tie in width and sum: the earlier window
    rng = random.Random(0)
    for _ in range(50):
        values = [rng.random() ** 3 for _ in range(rng.randint(1, 12))]
        a, b = effective_range(values, 0.9)
        assert sum(values[a : b + 1]) >= 0.9 * sum(values) - 1e-12
        shorter = [
            (i, j) for i in range(len(values)) for j in range(i, len(values))
            if j - i < b - a and sum(values[i : j + 1]) >= 0.9 * sum(values)
        ]  # fmt: skip
        assert not shorter
