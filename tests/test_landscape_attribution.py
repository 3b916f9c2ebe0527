"""Loss landscape (Li et al. 2018) and attributions (Captum; Adebayo et al. 2018 sanity check), against
invariants and second methods: filter norms of the direction, the loss at the origin, a grid point by
functional_call, resume after a kill, Grad-CAM of a zeroed stage, Grad-CAM by its formula, Spearman ρ by
its closed form."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn

from depthlab.analysis.attribution import (
    AttributionResult,
    ImageRecord,
    SanityRow,
    attribute_images,
    attribution_maps,
    cascading_randomization,
    map_variants,
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
    config = LandscapeConfig(span=0.5, points=5, grid=3, radius=0.5, pairs=2)
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
    assert result.pair_sharpness_2d[0] == pytest.approx(
        np.mean(
            [result.grid_loss[j][i] - result.origin_loss for j, i in ((0, 1), (1, 0), (1, 1), (1, 2), (2, 1))]
        )
    )
    # Pair 1 is the next two directions of the same generator; its sharpness needs the five grid points
    # within the radius (the origin and (±0.5, 0), (0, ±0.5)), recomputed here by functional_call.
    e1 = filter_normalized_direction(model, g)
    e2 = filter_normalized_direction(model, g)

    def loss_at(a: float, b: float) -> float:
        moved = {n: p.detach() + a * e1[n] + b * e2[n] for n, p in model.named_parameters()}
        out = torch.func.functional_call(model, {**moved, **dict(model.named_buffers())}, (X,))
        return F.cross_entropy(out, Y).item()

    disc = [loss_at(a, b) - result.origin_loss for a, b in ((0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5))]
    assert result.pair_sharpness_2d[1] == pytest.approx(sum(disc) / 5, rel=1e-4)
    assert result.pair_slice_loss[1][4] == pytest.approx(loss_at(0.5, 0), rel=1e-5)
    assert result.sharpness == pytest.approx(np.mean(result.pair_sharpness_2d))
    assert result.pairs == 2 and result.evaluations == 5 + 9 - 3 + 5 + 2  # pair 1: slice + (0, ±0.5)


def test_sharpness_includes_the_points_on_the_radius():
    # span 1, 5 points: t = −1, −0.5, 0, 0.5, 1. With radius 0.5 the 1-D mean is over t = −0.5, 0, 0.5 — the
    # boundary points carry all of the rise (the origin adds 0), so dropping them would give 0.
    model = tiny()
    config = LandscapeConfig(span=1.0, points=5, grid=5, radius=0.5, pairs=1)
    result = loss_landscape(model, X, Y, config)
    g = torch.Generator().manual_seed(config.seed)
    d1 = filter_normalized_direction(model, g)
    d2 = filter_normalized_direction(model, g)

    def loss_at(a: float, b: float) -> float:
        moved = {n: p.detach() + a * d1[n] + b * d2[n] for n, p in model.named_parameters()}
        out = torch.func.functional_call(model, {**moved, **dict(model.named_buffers())}, (X,))
        return F.cross_entropy(out, Y).item()

    origin = loss_at(0, 0)
    rise_1d = (loss_at(-0.5, 0) - origin + loss_at(0.5, 0) - origin) / 3
    assert abs(rise_1d) > 1e-4  # the boundary matters in this check
    assert result.sharpness_1d == pytest.approx(rise_1d, rel=1e-4)
    # 2-D: the grid spacing is 0.5, so the disc of radius 0.5 is the origin and its four neighbours.
    rise_2d = sum(loss_at(a, b) - origin for a, b in ((0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5))) / 5
    assert result.sharpness_2d == pytest.approx(rise_2d, rel=1e-4)


def test_a_killed_landscape_resumes_to_the_uninterrupted_result(tmp_path):
    model = tiny()
    config = LandscapeConfig(span=1.0, points=5, grid=3, pairs=1)
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


def test_a_resumed_landscape_uses_its_stored_points(tmp_path):
    model = tiny()
    config = LandscapeConfig(span=1.0, points=5, grid=3, pairs=2)
    path = tmp_path / "landscape.partial.json"

    def kill(done, total):
        if done == 13:  # pair 0 (11 points) and two points of pair 1's slice
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loss_landscape(model, X, Y, config, partial=PartialResults(path, {"k": 1}), progress=kill)
    stored = json.loads(path.read_text())
    stored["items"]["p1s1"] = [12.345, 0.5]  # pair 1, t = −0.5: a value no evaluation gives
    path.write_text(json.dumps(stored))
    resumed = loss_landscape(model, X, Y, config, partial=PartialResults(path, {"k": 1}))
    assert resumed.pair_slice_loss[1][1] == 12.345 and resumed.evaluations == 3
    assert resumed.pair_sharpness_1d[1] == pytest.approx(
        (12.345 + resumed.pair_slice_loss[1][3] - 2 * resumed.origin_loss) / 3
    )


def test_coordinates_share_values_and_bad_configs_are_refused():
    assert set(coordinates(1.0, 21)) <= set(coordinates(1.0, 41))
    assert coordinates(0.3, 5)[2] == 0.0
    for bad in (dict(points=4), dict(grid=2), dict(span=0), dict(radius=2.0), dict(pairs=0)):
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
    result, maps = attribute_images(model, x, labels=y.tolist(), methods=["gradcam", "saliency"], ig_steps=4)
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


def test_randomisation_is_cumulative_from_the_head_down(monkeypatch):
    # Record the weights each cut's maps are computed from; after cut j, groups 0…j must hold their
    # re-initialised weights (the same as re-initialising them in order by hand) and the rest the original.
    from depthlab.analysis import attribution

    model = tiny()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[dict[str, torch.Tensor]] = []
    real = attribution.map_variants

    def recording(m, *args, **kwargs):
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return real(m, *args, **kwargs)

    monkeypatch.setattr(attribution, "map_variants", recording)
    cascading_randomization(model, X[:2], Y[:2], methods=["saliency"], seed=4)
    groups = randomization_groups(model)
    assert len(seen) == 1 + len(groups)  # the original maps, then one call per cut
    by_hand = copy.deepcopy(model)
    modules = dict(by_hand.named_modules())
    generator = torch.Generator().manual_seed(4)
    for j, (label, names) in enumerate(groups):
        for n in names:
            reinitialize(modules[n], generator)
        expected = by_hand.state_dict()
        state = seen[1 + j]
        for k, v in state.items():
            group = next(i for i, (_, ns) in enumerate(groups) if any(k.startswith(n + ".") for n in ns))
            assert torch.equal(v, expected[k]), (label, k)
            if group > j and v.is_floating_point():
                assert torch.equal(v, original[k]), (label, k)  # below the cut: untouched
        # Every group above and at the cut has changed (a fresh copy per cut would restore group 0).
        for i in range(j + 1):
            keys = [
                k for k in state if any(k.startswith(n + ".") for n in groups[i][1]) and k.endswith("weight")
            ]
            assert any(not torch.equal(state[k], original[k]) for k in keys), (label, groups[i][0])


def test_a_resumed_sanity_check_uses_its_stored_correlations(tmp_path):
    model = tiny()
    path = tmp_path / "a.partial.json"

    def stop(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cascading_randomization(
            model, X[:3], Y[:3], methods=["saliency"], partial=PartialResults(path, {}), progress=stop
        )
    stored = json.loads(path.read_text())
    assert set(stored["items"]) == {"cut0", "cut1"}
    stored["items"]["cut1"]["saliency/signed"] = [0.4242, -0.4242, 0.0]
    path.write_text(json.dumps(stored))
    rows = cascading_randomization(
        model, X[:3], Y[:3], methods=["saliency"], partial=PartialResults(path, {})
    )
    marked = [r for r in rows if r.cut == "stages.1" and r.variant == "signed"]
    assert [r.spearman for r in marked] == [(0.4242, -0.4242, 0.0)]
    fresh = cascading_randomization(model, X[:3], Y[:3], methods=["saliency"])
    assert [r for r in rows if r.cut == "stem"] == [r for r in fresh if r.cut == "stem"]


def test_signed_and_absolute_maps_of_a_linear_model():
    # logit c = w_c · x: the gradient is w_c, and integrated gradients from 0 are x ⊙ w_c exactly.
    g = torch.Generator().manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3, bias=False)).eval()
    x = torch.randn(2, 2, 4, 4, generator=g)
    targets = torch.tensor([0, 2])
    w = linear[1].weight.detach()[targets].view(2, 2, 4, 4)
    maps = map_variants(linear, x, targets, methods=["integrated_gradients", "saliency"], ig_steps=4)
    assert torch.allclose(maps[("saliency", "signed")], w.sum(1), atol=1e-6)
    assert torch.allclose(maps[("saliency", "absolute")], w.abs().amax(1), atol=1e-6)
    assert torch.allclose(maps[("integrated_gradients", "signed")], (x * w).sum(1), atol=1e-5)
    assert torch.allclose(maps[("integrated_gradients", "absolute")], (x * w).sum(1).abs(), atol=1e-5)
    # Flipping the sign of the weights flips the signed maps only: ρ −1 signed, +1 absolute.
    flipped = copy.deepcopy(linear)
    with torch.no_grad():
        flipped[1].weight.neg_()
    other = map_variants(flipped, x, targets, methods=["saliency"])
    assert spearman(maps[("saliency", "signed")][0], other[("saliency", "signed")][0]) == pytest.approx(-1.0)
    assert spearman(maps[("saliency", "absolute")][0], other[("saliency", "absolute")][0]) == pytest.approx(
        1.0
    )


def _sanity_result(values: dict[tuple[str, str], list[float]]) -> AttributionResult:
    rows = []
    for cut in ("head", "stem"):
        for (m, v), rho in values.items():
            rows.append(SanityRow(cut, 1, m, tuple(rho if cut == "stem" else [0.9] * len(rho)), v))
    images = tuple(ImageRecord(f"test[{i}]", 0, "a", 0, "a", 0.9, (("a", 0.9),)) for i in range(8))
    return AttributionResult(("gradcam", "saliency"), "stages.1", 4, "stage", 0, images, tuple(rows), 0.0)


def test_sanity_findings_give_intervals_over_images_and_verdicts():
    kept = [0.62, 0.70, 0.55, 0.66, 0.71, 0.58, 0.64, 0.69]
    gone = [0.05, -0.08, 0.02, -0.03, 0.07, -0.06, 0.01, 0.04]
    result = _sanity_result({
        ("gradcam", "signed"): gone, ("saliency", "absolute"): kept, ("saliency", "signed"): gone[::-1],
    })  # fmt: skip
    text = " ".join(result.findings("tiny"))
    ci = scipy.stats.t.interval(0.95, 7, loc=np.mean(kept), scale=scipy.stats.sem(kept))
    assert f"saliency (absolute) {np.mean(kept):+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]" in text
    assert "still correlated with the original map (interval above 0) — these reflect the image more than " \
        "the weights: saliency (absolute)" in text  # fmt: skip
    assert "correlation not resolved from 0: Grad-CAM, saliency (signed)" in text
    assert (
        "Unlike Adebayo et al." in text and "a resolved correlation remains for saliency (absolute)" in text
    )
    paired_ci = scipy.stats.ttest_rel(kept, gone).confidence_interval(0.95)
    assert f"95% CI [{paired_ci.low:+.2f}, {paired_ci.high:+.2f}], paired t over 8 images" in text
    assert AttributionResult.from_dict(result.to_dict()) == result
    # Every map decorrelated: no claim against the paper.
    calm = _sanity_result({("gradcam", "signed"): gone, ("saliency", "absolute"): gone[::-1]})
    assert "Unlike" not in " ".join(calm.findings("tiny"))


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


def test_one_net_per_side_draws_no_agreement_with_li_et_al() -> None:
    """Review: with one run per side the interval is over random directions of two nets, which says nothing
    about plain against residual nets across seeds; only seeds on each side can agree with the paper."""
    from types import SimpleNamespace

    from depthlab.studies.why import landscape_comparison

    def run(model: str, residual: bool, pairs: tuple[float, ...]) -> SimpleNamespace:
        return SimpleNamespace(source={"model": model, "residual": residual}, pair_sharpness=pairs,
                               sharpness=sum(pairs) / len(pairs))  # fmt: skip

    sharp, flat = (2.0, 2.1, 1.9, 2.05), (1.0, 1.1, 0.9, 1.05)
    (one,) = landscape_comparison(
        [("plain56", run("plain56", False, sharp)), ("resnet56", run("resnet56", True, flat))]
    )
    assert "Li et al." not in one and "not resolved across seeds" in one and "shortcut-free" in one
    seeds = [(f"p{s}", run("plain56", False, (2.0 + s / 10,) * 2)) for s in range(3)]
    seeds += [(f"r{s}", run("resnet56", True, (1.0 + s / 10,) * 2)) for s in range(3)]
    (many,) = landscape_comparison(seeds)
    assert "as Li et al. found" in many and "3 vs 3 runs" in many
