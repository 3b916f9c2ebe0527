"""Lesion study and path analysis (Veit et al. 2016) checked against invariants and second methods:
a zeroed branch changes nothing when lesioned; a lesion equals a network built without the block; a
hand-built 3-block linear residual net's path gradients equal the by-hand unrolling; path gradients sum to
the ordinary gradient."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import random

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn

from depthlab.analysis.evaluation import PartialResults, binomial_se, evaluate
from depthlab.analysis.lesion import (
    BARELY,
    KLesion,
    LesionResult,
    LesionUnit,
    NoResidualBlocksError,
    SingleLesion,
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
    # This untrained net sits at chance, so it gets no verdict; read as a net with 1/8 intact error (14 of 16
    # right against chance's 1 in 3), its sentences name their intervals.
    assert result.above_chance_p() > 0.05 and "did not train" in " ".join(result.findings("tiny"))
    trained = dataclasses.replace(result, intact_error=0.125)
    text = " ".join(trained.findings("tiny"))
    assert "binomial SE" in text and "Downsampling" in text and "95% CI" in text
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


def test_a_resumed_lesion_study_uses_its_stored_partial_results(tmp_path):
    # Tamper with a stored evaluation: a resume that recomputes instead of reading it cannot produce the mark.
    model = tiny()
    _perturb_bn(model)
    path = tmp_path / "lesion.partial.json"

    def stop(done, total):
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lesion_study(model, X, Y, draws=2, max_swaps=1, partial=PartialResults(path, {"a": 1}), progress=stop)
    stored = json.loads(path.read_text())
    assert set(stored["items"]) == {"single:1", "single:2", "single:3"}
    mark = {"error": 0.123456, "loss": 9.87, "to_wrong": 7, "to_right": 1}
    stored["items"]["single:2"] = mark
    path.write_text(json.dumps(stored))
    resumed = lesion_study(model, X, Y, draws=2, max_swaps=1, partial=PartialResults(path, {"a": 1}))
    second = resumed.single[1]
    assert (second.error, second.loss, second.to_wrong, second.to_right) == (0.123456, 9.87, 7, 1)
    assert resumed.deletions[0].errors[1] == 0.123456  # k = 1 is built from the single deletions
    fresh = lesion_study(model, X, Y, draws=2, max_swaps=1)
    assert fresh.single[1].error != 0.123456 and resumed.single[2] == fresh.single[2]


def _single(index: int, rise: float, downsampling: bool, intact: float, n: int) -> SingleLesion:
    # A rise of r on n images: r·n images flip from right to wrong.
    flips = round(rise * n)
    return SingleLesion(f"stages.0.{index}", index, 0, downsampling, intact + flips / n, 1.0, flips, 0)


def _result(mode: str, rises: list[float], down: list[float], intact: float = 0.1) -> LesionResult:
    n = 2000
    single = [_single(i + 1, r, False, intact, n) for i, r in enumerate(rises)]
    single += [_single(len(rises) + i + 1, r, True, intact, n) for i, r in enumerate(down)]
    units = tuple(LesionUnit(s.index, s.name, 0, s.downsampling, not s.downsampling) for s in single)
    k1 = KLesion(1, tuple(s.error for s in single), tuple((s.index,) for s in single))
    k2 = KLesion(2, (intact + 0.05, intact + 0.07), ((1, 2), (2, 3)))
    return LesionResult(mode, n, 10, intact, 0.5, units, tuple(single), (k1, k2), (), 2, 0, 0.0)


def test_the_lesion_verdict_follows_the_interval_of_the_mean_rise():
    small = [0.001, 0.002, 0.004, 0.003, 0.0005, 0.0025]
    barely = _result("residual", small, [0.12, 0.11, 0.115])
    text = " ".join(barely.findings("net"))
    assert "barely hurt the residual net" in text and "as Veit et al. found" in text
    assert "the downsampling blocks hurt more, as in the paper" in text
    # The interval in the sentence is Student's t over the blocks, computed here by scipy.
    rises = [s.error - barely.intact_error for s in barely.single if not s.downsampling]
    ci = scipy.stats.t.interval(0.95, len(rises) - 1, loc=np.mean(rises), scale=scipy.stats.sem(rises))
    assert f"95% CI [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}] points" in text
    assert ci[1] < BARELY

    large = _result("residual", [0.08, 0.10, 0.12, 0.09, 0.11, 0.10], [0.01, 0.02, 0.015])
    text = " ".join(large.findings("net"))
    assert "do hurt this residual net" in text and "unlike Veit et al." in text
    assert "barely hurt" not in text and "as Veit et al. found" not in text
    assert "the downsampling blocks hurt less, unlike the paper" in text

    straddling = _result("residual", [0.0, 0.04, 0.0, 0.05, 0.001, 0.03], [])
    text = " ".join(straddling.findings("net"))
    assert "is not resolved" in text and "Veit et al. found" not in text and "unlike" not in text


def test_the_plain_lesion_verdict_against_halfway_to_chance():
    # Intact 10%, chance 90%: halfway is 50%.
    collapsed = _result("plain", [0.80, 0.78, 0.79, 0.81], [], intact=0.1)
    assert "falls toward chance, as Veit et al. found" in " ".join(collapsed.findings("vgg"))
    mild = _result("plain", [0.05, 0.06, 0.04, 0.05], [], intact=0.1)
    text = " ".join(mild.findings("vgg"))
    assert "does not fall to near chance, unlike Veit et al." in text and "as Veit" not in text


def test_a_net_at_chance_gets_no_lesion_verdict():
    """A net that never trained (intact error at chance) has nothing to lose: neither mode's verdict may be
    drawn, whatever its lesions did; one image above chance's count on 2,000 is not resolved either."""
    for mode, rises in (("residual", [0.001, 0.002, 0.0, 0.001]), ("plain", [0.0, 0.001, 0.0, 0.002])):
        at_chance = _result(mode, rises, [], intact=0.9)
        text = " ".join(at_chance.findings("net"))
        assert "did not train, so no lesion verdict" in text
        assert "Veit et al." not in text and "barely hurt" not in text
    # Chance is 90% error; 88% error on 2,000 images is 40 images above chance's count: resolved.
    trained = _result("residual", [0.001, 0.002, 0.004, 0.003], [], intact=0.88)
    assert trained.above_chance_p() < 0.01
    assert "did not train" not in " ".join(trained.findings("net"))


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


def _orthogonal_net(scale: float, n: int = 4, d: int = 5) -> tuple[HandNet, torch.Tensor, torch.Tensor]:
    """Linear residual blocks whose branches are ``scale`` × an orthogonal matrix: every path through k
    branches carries a gradient of norm scale^k · ‖h‖ exactly, whichever branches it takes."""
    g = torch.Generator().manual_seed(0)
    weights = [
        scale * torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0] for _ in range(n)
    ]
    head = torch.randn(3, d, generator=g, dtype=torch.float64)
    x = torch.randn(6, d, generator=g, dtype=torch.float64)
    return HandNet(weights, head), x, torch.arange(6) % 3


def test_a_constant_per_path_gradient_gives_no_verdict_on_path_length():
    # Orthogonal branches: one path's gradient does not depend on its length, so the gradient mass follows
    # the binomial distribution and nothing may be called shorter (or longer) than the typical path.
    net, x, y = _orthogonal_net(1.0)
    result = path_study(net, x, y, samples=4, batch=6)
    assert max(result.gradient) == pytest.approx(min(result.gradient), rel=1e-12)
    c = result.comparison()
    assert c.weighted_mean == pytest.approx(2.0, abs=1e-12) and c.outcome == "not resolved"
    assert c.binomial == c.effective
    text = " ".join(result.findings("orthogonal"))
    assert "not resolved" in text
    assert "shorter" not in text and "longer" not in text and "Veit et al. found" not in text
    assert "falls" not in text and "rises" not in text


def test_a_gradient_that_decays_with_length_puts_the_effective_paths_below_the_mean():
    # Branches 0.3 × orthogonal: a path of length k carries 0.3^k, so T_k ∝ C(n, k)·0.3^k, i.e. the gradient
    # mass follows Binomial(n, 0.3/1.3), whose mean is n·0.3/1.3.
    net, x, y = _orthogonal_net(0.3)
    result = path_study(net, x, y, samples=4, batch=6)
    c = result.comparison()
    assert c.weighted_mean == pytest.approx(4 * 0.3 / 1.3, rel=1e-9)
    assert c.decay.slope == pytest.approx(math.log10(0.3), rel=1e-9)
    assert c.outcome == "shorter" and c.decay_outcome == "falls"
    text = " ".join(result.findings("decaying"))
    assert "shorter" in text and "as Veit et al. found" in text and "it falls with path length" in text


def test_the_path_length_interval_is_students_t_over_the_replicates():
    # Per-sample magnitudes with noise: replicate j is the j-th sample of every length.
    rng = np.random.default_rng(0)
    n, samples = 6, 5
    probability = path_length_distribution(n)
    rows = tuple(
        tuple(float(2.0**-k * (1 + 0.3 * rng.random())) for _ in range(samples)) for k in range(n + 1)
    )
    means = [float(np.mean(r)) for r in rows]
    total = tuple(p * g for p, g in zip(probability, means, strict=True))
    result = PathResult(
        n, tuple(range(n + 1)), probability, tuple(means), (0.0,) * (n + 1), (samples,) * (n + 1), total,
        effective_range(total), 0.9, 1.0, 8, 0, 0.0, sample_gradient=rows,
    )  # fmt: skip
    m = [
        sum(k * probability[k] * rows[k][j] for k in range(n + 1))
        / sum(probability[k] * rows[k][j] for k in range(n + 1))
        for j in range(samples)
    ]
    low, high = scipy.stats.t.interval(0.95, samples - 1, loc=np.mean(m), scale=scipy.stats.sem(m))
    c = result.comparison()
    assert (c.weighted_ci.low, c.weighted_ci.high) == pytest.approx((low, high), rel=1e-9)
    assert c.weighted_mean == pytest.approx(np.mean(m)) and high < n / 2 and c.outcome == "shorter"
    assert PathResult.from_dict(result.to_dict()) == result
    # Results stored before the samples were kept: no interval, so no verdict.
    old = {k: v for k, v in result.to_dict().items() if k not in ("sample_gradient", "comparison")}
    assert PathResult.from_dict(old).comparison().outcome == "not resolved"
