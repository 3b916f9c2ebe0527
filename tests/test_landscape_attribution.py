"""Loss landscape (Li et al. 2018) and attributions (Captum; Adebayo et al. 2018 sanity check), against
invariants and second methods: filter norms of the direction, the loss at the origin, a grid point by
functional_call, resume after a kill, Grad-CAM of a zeroed stage, Grad-CAM by its formula, Spearman ρ by
its closed form."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from depthlab.analysis.attribution import (
    AttributionResult,
    attribution_maps,
    cascading_randomization,
    explain_images,
    randomization_groups,
    reinitialize,
    spearman,
)
from depthlab.analysis.evaluation import PartialResults, evaluate
from depthlab.analysis.landscape import (
    LandscapeConfig,
    LandscapeResult,
    _local_minima,
    coordinates,
    filter_normalized_direction,
    loss_landscape,
)
from depthlab.models.resnet import ResNet

# Tiny models: one intra-op thread (the shared `one_thread` fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(block: str = "basic", classes: int = 3) -> ResNet:
    return ResNet(
        block, layers=(1, 1), widths=(4, 8), stem="cifar", num_classes=classes, in_channels=1, shortcut="A"
    ).eval()


X = torch.randn(12, 1, 8, 8, generator=torch.Generator().manual_seed(0))
Y = torch.arange(12) % 3


# -------------------------------------------------------------------------------------------- landscape
def test_direction_has_filter_by_filter_the_norm_of_the_weights():
    model = tiny()
    d = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    checked = 0
    for name, p in model.named_parameters():
        if p.dim() <= 1:
            assert torch.count_nonzero(d[name]) == 0, name  # BN and biases are not moved
            continue
        for i in range(p.shape[0]):  # every conv filter / linear row
            assert float(d[name][i].norm()) == pytest.approx(float(p[i].detach().norm()), rel=1e-5), (name, i)
            checked += 1
        assert not torch.allclose(d[name], p)  # random, not the weights themselves
    assert checked == 4 + (4 + 4) + (8 + 8) + 3  # stem, block 1 (2 convs), block 2 (2 convs), fc rows


def test_landscape_at_the_origin_is_the_models_own_loss_and_points_match_a_second_method():
    model = tiny()
    config = LandscapeConfig(span=0.5, points=5, grid=3, radius=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = loss_landscape(model, X, Y, config)
    own = F.cross_entropy(model.eval()(X), Y).item()
    assert result.origin_loss == pytest.approx(own, rel=1e-6)
    assert result.grid_loss[1][1] == result.origin_loss == result.slice_loss[2]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # weights restored
    # Grid point (α, β) = (0.5, −0.5) is row j = 0 (β = −0.5), column i = 2 (α = 0.5); recompute it with
    # torch.func.functional_call from the same two directions.
    g = torch.Generator().manual_seed(config.seed)
    d1 = filter_normalized_direction(model, g)
    d2 = filter_normalized_direction(model, g)
    params = {n: p.detach() + 0.5 * d1[n] - 0.5 * d2[n] for n, p in model.named_parameters()}
    logits = torch.func.functional_call(model, {**params, **dict(model.named_buffers())}, (X,))
    assert result.grid_loss[0][2] == pytest.approx(F.cross_entropy(logits, Y).item(), rel=1e-5)
    assert LandscapeResult.from_dict(result.to_dict()) == result
    assert result.sharpness_2d == pytest.approx(
        np.mean(
            [result.grid_loss[j][i] - result.origin_loss for j, i in ((0, 1), (1, 0), (1, 1), (1, 2), (2, 1))]
        )
    )


def test_a_killed_landscape_resumes_to_the_uninterrupted_result(tmp_path):
    model = tiny()
    config = LandscapeConfig(span=1.0, points=5, grid=3)
    path = tmp_path / "landscape.partial.json"
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def kill_after_four(done, total):
        assert total == 5 + 9 - 3  # the β = 0 grid row reuses three slice points
        if done == 4:
            raise KeyboardInterrupt  # what Ctrl-C or a kill between two points leaves behind

    with pytest.raises(KeyboardInterrupt):
        loss_landscape(model, X, Y, config, partial=PartialResults(path, {"k": 1}), progress=kill_after_four)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # restored even then
    resumed = loss_landscape(model, X, Y, config, partial=PartialResults(path, {"k": 1}))
    fresh = loss_landscape(model, X, Y, config)
    assert resumed.evaluations == 11 - 4 and fresh.evaluations == 11
    assert resumed.slice_loss == fresh.slice_loss and resumed.grid_loss == fresh.grid_loss


def test_coordinates_share_values_and_bad_configs_are_refused():
    assert set(coordinates(1.0, 21)) <= set(coordinates(1.0, 41))
    assert coordinates(0.3, 5)[2] == 0.0
    for bad in (dict(points=4), dict(grid=2), dict(span=0), dict(radius=2.0)):
        with pytest.raises(ValueError):
            LandscapeConfig(**bad)


def test_local_minima_counts_bowls():
    bowl = [[(i - 2) ** 2 + (j - 2) ** 2 for i in range(5)] for j in range(5)]
    assert _local_minima(bowl) == 1
    bowl[0][0] = -1
    assert _local_minima(bowl) == 2


# ------------------------------------------------------------------------------------------ attribution
def test_gradcam_of_a_zeroed_last_stage_is_zero():
    model = tiny("plain_basic")
    with torch.no_grad():
        for p in model.stages[-1].parameters():
            p.zero_()  # conv and BN parameters: the stage outputs ReLU(0) = 0 everywhere
    maps = attribution_maps(model, X, Y, methods=["gradcam"])
    assert maps["gradcam"].shape == (12, 4, 4)
    assert torch.count_nonzero(maps["gradcam"]) == 0
    intact = attribution_maps(tiny("plain_basic"), X, Y, methods=["gradcam"])
    assert torch.count_nonzero(intact["gradcam"]) > 0


def test_gradcam_equals_its_formula_for_a_pooled_linear_head():
    # Global average pool → fc: ∂y_c/∂A_k(h, w) = W[c, k]/(H·W), so Grad-CAM = Σ_k W[c, k]/(H·W) · A_k.
    model = tiny()
    with torch.no_grad():
        A = model.stages(model.stem(X))  # (N, 8, 4, 4)
    w = model.head.fc.weight[Y]  # (N, 8): the row of each image's target class
    expected = (w[:, :, None, None] * A).sum(1) / (A.shape[2] * A.shape[3])
    maps = attribution_maps(model, X, Y, methods=["gradcam"])
    assert torch.allclose(maps["gradcam"], expected, atol=1e-6)


def test_spearman_against_its_closed_form_and_ties():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    ra, rb = a.argsort().argsort(), b.argsort().argsort()  # no ties: 1 − 6Σd²/(n(n²−1))
    closed = 1 - 6 * ((ra - rb) ** 2).sum() / (50 * (50**2 - 1))
    assert spearman(a, b) == pytest.approx(closed, abs=1e-12)
    assert spearman(a, np.exp(a)) == pytest.approx(1.0) and spearman(a, -a) == pytest.approx(-1.0)
    t = np.array([1.0, 2.0, 2.0, 3.0, 0.0])
    u = np.array([0.0, 1.0, 1.0, 1.0, 0.0])

    def avg_rank(v):  # 1 + (#smaller) + (#equal − 1)/2
        return np.array([1 + (v < x).sum() + ((v == x).sum() - 1) / 2 for x in v])

    assert spearman(t, u) == pytest.approx(np.corrcoef(avg_rank(t), avg_rank(u))[0, 1], abs=1e-12)
    assert np.isnan(spearman(np.ones(4), t[:4]))


def test_reinitialize_is_seeded_and_makes_bn_the_identity():
    a, b = tiny(), tiny()
    b.load_state_dict(a.state_dict())
    n = reinitialize(a.stages[1], torch.Generator().manual_seed(5))
    reinitialize(b.stages[1], torch.Generator().manual_seed(5))
    assert n == 2
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    bn = a.stages[1][0].branch[0].norm
    assert torch.equal(bn.running_var, torch.ones(8)) and torch.equal(bn.weight, torch.ones(8))
    assert [label for label, _ in randomization_groups(a)] == ["head", "stages.1", "stages.0", "stem"]
    assert [label for label, _ in randomization_groups(a, "block")] == [
        "head",
        "stages.1.0",
        "stages.0.0",
        "stem",
    ]


def _trained_tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny ResNet trained (40 Adam steps) to find which quadrant of an 8×8 image holds a bright 3×3 patch."""
    g = torch.Generator().manual_seed(0)
    n = 256
    labels = torch.arange(n) % 4
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    for i, c in enumerate(labels.tolist()):
        r, s = (
            (c // 2) * 4 + int(torch.randint(0, 2, (1,), generator=g)),
            (c % 2) * 4 + int(torch.randint(0, 2, (1,), generator=g)),
        )
        x[i, 0, r : r + 3, s : s + 3] += 3.0
    torch.manual_seed(0)
    model = ResNet(
        "basic", layers=(1, 1), widths=(4, 8), stem="cifar", num_classes=4, in_channels=1, shortcut="A"
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(40):
        idx = torch.randperm(n, generator=g)[:32]
        loss = F.cross_entropy(model(x[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), x[:8], labels[:8]


def test_randomisation_check_reports_a_large_change_for_gradcam():
    model, x, y = _trained_tiny()
    assert evaluate(model, x, y).error <= 0.25  # it did learn where the patch is
    result, maps = explain_images(model, x, labels=y.tolist(), methods=["gradcam", "saliency"], ig_steps=4)
    rows = {(r.cut, r.method): r for r in result.sanity}
    # Control: the same maps from an untouched copy correlate perfectly, so a low ρ is the weights' doing.
    again = attribution_maps(copy.deepcopy(model), x, result_targets(result), methods=["gradcam"])
    assert all(spearman(maps["gradcam"][i], again["gradcam"][i]) == pytest.approx(1.0) for i in range(8))
    assert rows[("head", "gradcam")].mean < 0.5  # re-initialising the head alone scrambles Grad-CAM
    assert rows[("stem", "gradcam")].mean < 0.5
    assert [r.cut for r in result.sanity if r.method == "gradcam"] == ["head", "stages.1", "stages.0", "stem"]
    assert AttributionResult.from_dict(result.to_dict()) == result
    assert "Grad-CAM" in " ".join(result.findings("tiny"))


def result_targets(result: AttributionResult) -> torch.Tensor:
    return torch.tensor([r.prediction for r in result.images])


def test_cascading_randomisation_leaves_the_model_alone_and_resumes(tmp_path):
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path / "a.partial.json"
    rows = cascading_randomization(
        model, X[:3], Y[:3], methods=["saliency"], partial=PartialResults(path, {})
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    cached = cascading_randomization(
        model, X[:3], Y[:3], methods=["saliency"], partial=PartialResults(path, {})
    )
    assert cached == rows


FAMILIES = [
    ("alexnet", {}, 63),
    ("vgg11_bn", {"head": "small"}, 16),
    ("googlenet", {"variant": "torchvision"}, 32),  # eval mode: the main head only
    ("resnet18", {}, 32),
    ("plain20", {}, 8),
    ("preact_resnet20", {}, 8),
]


@pytest.mark.parametrize(("name", "kwargs", "side"), FAMILIES)
def test_attributions_work_for_every_family(name, kwargs, side):
    import depthlab

    torch.manual_seed(0)
    model = depthlab.create_model(name, num_classes=5, **kwargs).eval()
    x = torch.randn(1, 3, side, side)
    maps = attribution_maps(model, x, torch.tensor([1]), ig_steps=2)
    assert maps["integrated_gradients"].shape == maps["saliency"].shape == (1, side, side)
    for m, v in maps.items():
        assert torch.isfinite(v).all() and v.abs().max() > 0, m
    labels = [label for label, _ in randomization_groups(model)]
    assert labels[0] == "head" and {f"stages.{i}" for i in range(len(model.stages))} <= set(labels)


def test_attributions_of_a_model_with_torchvision_weights():
    import torchvision

    import depthlab

    tv = torchvision.models.resnet18(weights=None, num_classes=5).eval()
    ours = depthlab.load_torchvision_weights(
        depthlab.create_model("resnet18", num_classes=5), tv.state_dict()
    ).eval()
    x = torch.randn(2, 3, 32, 32)
    targets = tv(x).argmax(1)
    ours_maps = attribution_maps(ours, x, targets, methods=["gradcam", "saliency"])
    # Second method: the same Captum calls on torchvision's own model and its last stage (layer4).
    from captum.attr import LayerGradCam, Saliency

    cam = LayerGradCam(tv, tv.layer4).attribute(x, target=targets).squeeze(1)
    sal = Saliency(tv).attribute(x.clone().requires_grad_(True), target=targets).amax(1)
    assert torch.allclose(ours_maps["gradcam"], cam, atol=1e-5)
    assert torch.allclose(ours_maps["saliency"], sal, atol=1e-5)
