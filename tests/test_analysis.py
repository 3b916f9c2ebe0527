"""Architecture analysis: counts vs published numbers, MACs vs torch.utils.flop_counter, receptive fields
analytic vs measured, activation memory by hand and against a real training step.

Models are built on the meta device wherever only shapes matter, so even VGG-19 costs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import depthlab
from depthlab.analysis import (
    activation_memory,
    measure_receptive_field,
    stacked_receptive_field,
    summarize,
)
from depthlab.analysis.complexity import ModelSummary
from depthlab.models.base import main_logits
from depthlab.models.googlenet import Inception

# Tiny models: one intra-op thread (the shared `one_thread` fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")

REFERENCE = json.loads((Path(__file__).parent / "expected" / "reference.json").read_text())


def meta_model(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return depthlab.create_model(name, **kwargs)


def flop_counter_flops(model: nn.Module, shape: tuple[int, ...], device: str = "meta") -> int:
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *shape, device=device))
    return counter.get_total_flops()


# ----------------------------------------------------------------------------------- published counts
@pytest.mark.parametrize("name", sorted(REFERENCE["torchvision"]["models"]))
def test_counts_match_torchvision_table(name: str) -> None:
    ref = REFERENCE["torchvision"]["models"][name]
    s = summarize(meta_model(name, **ref["kwargs"]), REFERENCE["torchvision"]["input_shape"])
    assert s.params == ref["params"]
    assert round(s.macs / 1e9, 3) == pytest.approx(ref["gmacs"])


@pytest.mark.parametrize("name", sorted(REFERENCE["resnet_paper_table1"]["models"]))
def test_counts_match_resnet_paper_table1(name: str) -> None:
    ref = REFERENCE["resnet_paper_table1"]["models"][name]
    s = summarize(meta_model(name, **ref["kwargs"]), REFERENCE["resnet_paper_table1"]["input_shape"])
    assert round(s.macs / 1e9, 1) == pytest.approx(ref["gmacs"])


def test_resnet50_table1_macs_against_the_published_3_8() -> None:
    """Table 1 prints 3.8 G for ResNet-50; every conv and the FC counted in the paper's settings (stride on
    the first 1×1, projection shortcuts where the shape changes) give 3.858 G, which rounds to 3.9. The
    paper's other entries are our counts rounded to the nearest 0.1 (1.795 → 1.8, 3.644 → 3.6, 7.570 →
    7.6, 11.282 → 11.3), so this is no rounding convention: the paper counts ResNet-50 slightly
    differently (it does not say how). State the measured value and hold it within 2% of the published."""
    ref = REFERENCE["resnet_paper_table1"]["resnet50"]
    gmacs = summarize(meta_model("resnet50", **ref["kwargs"]), (3, 224, 224)).macs / 1e9
    assert round(gmacs, 2) == 3.86 and round(gmacs, 1) == 3.9  # the figure the README states
    assert abs(gmacs - ref["gmacs"]) / ref["gmacs"] < 0.02


def test_googlenet_paper_params_exclude_idle_aux_heads() -> None:
    s = summarize(meta_model("googlenet", aux_logits=False), (3, 224, 224))
    assert s.params == REFERENCE["googlenet_paper"]["params"]
    with_aux = summarize(meta_model("googlenet"), (3, 224, 224))
    assert with_aux.macs == s.macs  # aux heads do not run in eval mode
    idle = [r for r in with_aux.layers if r.name.startswith("aux") and r.is_leaf]
    assert all(r.output_shape is None for r in idle)


# ------------------------------------------------------------------------- MACs == flop_counter / 2
def _one_per_family() -> list[str]:
    seen: dict[str, str] = {}
    for name in depthlab.list_models():
        seen.setdefault(depthlab.model_info(name).family, name)
    return sorted(seen.values())


@pytest.mark.parametrize("name", _one_per_family() + ["googlenet-torchvision", "vgg16_bn", "resnet50"])
def test_macs_equal_flop_counter(name: str) -> None:
    kwargs = {"variant": "torchvision"} if name == "googlenet-torchvision" else {}
    model = meta_model(name.split("-")[0], **kwargs)
    shape = depthlab.model_info(model_name := name.split("-")[0]).default_input
    s = summarize(model, shape)
    assert s.flops == 2 * s.macs
    assert s.flops == flop_counter_flops(model, shape), model_name


def test_macs_equal_flop_counter_on_real_weights() -> None:
    # The meta-device trace must not differ from an actual CPU forward pass.
    model = depthlab.create_model("resnet20", num_classes=10)
    assert 2 * summarize(model, (3, 32, 32)).macs == flop_counter_flops(model, (3, 32, 32), device="cpu")


def test_summarize_any_module_and_leaves_model_untouched() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 5)
    )
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = summarize(model, (3, 4, 4))
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert s.macs == 16 * 8 * 27 + 128 * 5  # conv: H·W·Cout·Cin·k²; linear: in·out
    assert s.params == sum(p.numel() for p in model.parameters())
    assert s.depth == 2
    assert s.output_shape == (1, 5)


def test_collapsed_rows_cover_the_model_once() -> None:
    s = summarize(meta_model("resnet18"), (3, 224, 224))
    for depth in (1, 2, 3):
        shown = s.rows(depth)
        top = [r for r in shown if r.level == 0]
        assert sum(r.params for r in top) == s.params
        assert sum(r.macs for r in top) == s.macs
        assert max(r.level for r in shown) == depth - 1
    assert s.rows(None) == s.layers
    with pytest.raises(ValueError, match="depth"):
        s.rows(0)


def test_bypassed_container_gets_its_childrens_totals() -> None:
    # GoogLeNet's forward calls the children of stages.1 directly; the stage row must still add up.
    s = summarize(meta_model("googlenet"), (3, 224, 224))
    children = [r for r in s.layers if r.name.startswith("stages.1.") and r.level == 2]
    assert s.row("stages.1").macs == sum(r.macs for r in children) > 0
    assert s.row("stages").output_shape == (1, 1024, 7, 7)


def test_depth_counts_weighted_layers_on_the_longest_path() -> None:
    depths = {
        n: summarize(meta_model(n), (3, 224, 224)).depth
        for n in ("alexnet", "vgg16", "googlenet", "resnet50")
    }
    assert depths == {"alexnet": 8, "vgg16": 16, "googlenet": 22, "resnet50": 50}


def test_input_errors_name_the_input() -> None:
    with pytest.raises(ValueError, match="minimum size is 32x32"):
        summarize(meta_model("vgg16"), (3, 16, 16))
    with pytest.raises(ValueError, match="input_shape"):
        summarize(meta_model("vgg16"), (224, 224))
    tiny = nn.Sequential(nn.Conv2d(3, 4, 7))
    with pytest.raises(ValueError, match="3x4x4"):
        summarize(tiny, (3, 4, 4))


# ---------------------------------------------------------------------------------- receptive field
def test_stacked_3x3_formula() -> None:
    rf = REFERENCE["receptive_field"]
    assert stacked_receptive_field([(3, 1)] * 2) == (rf["two_3x3"], 1)
    assert stacked_receptive_field([(3, 1)] * 3) == (rf["three_3x3"], 1)
    assert stacked_receptive_field([(7, 2), (3, 2)]) == (11, 4)  # the ResNet stem


def test_two_stacked_3x3_see_5x5_analytic_and_measured() -> None:
    stack = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    assert summarize(stack, (2, 15, 15)).receptive_field == REFERENCE["receptive_field"]["two_3x3"]
    measured = measure_receptive_field(stack, (2, 15, 15), "2")
    assert measured.size == (5, 5) and not measured.clipped


def test_vgg16_receptive_fields_analytic() -> None:
    rf = REFERENCE["receptive_field"]
    s = summarize(meta_model("vgg16"), (3, 224, 224))
    assert s.row("stages.4.conv5_3").receptive_field == rf["vgg16_conv5_3"]
    assert s.row("stages.4.pool5").receptive_field == rf["vgg16_pool5"]
    assert s.receptive_field == rf["vgg16_pool5"] and s.rf_jump == 32


@pytest.mark.slow
def test_vgg16_receptive_fields_measured() -> None:
    rf = REFERENCE["receptive_field"]
    model = depthlab.create_model("vgg16")
    conv = measure_receptive_field(model, (3, 224, 224), "stages.4.conv5_3")
    pool = measure_receptive_field(model, (3, 224, 224), "stages.4.pool5")
    assert conv.size == (rf["vgg16_conv5_3"],) * 2 and not conv.clipped
    assert pool.size == (rf["vgg16_pool5"],) * 2 and not pool.clipped


def test_resnet_and_plain_twin_have_the_same_receptive_field() -> None:
    res, plain = (summarize(meta_model(n), (3, 224, 224)) for n in ("resnet34", "plain34"))
    assert res.receptive_field == plain.receptive_field
    for i in range(4):
        assert res.row(f"stages.{i}").receptive_field == plain.row(f"stages.{i}").receptive_field


def test_resnet_and_plain_twin_measured_match_analytic() -> None:
    # Width does not change a receptive field: thin twins (4/8/16 channels) keep the test cheap.
    for name in ("resnet20", "plain20"):
        model = depthlab.create_model(name, num_classes=10, widths=(4, 8, 16))
        analytic = summarize(model, (3, 88, 88)).receptive_field
        measured = measure_receptive_field(model, (3, 88, 88))
        assert not measured.clipped and measured.size == (analytic, analytic), name


def test_inception_module_field_is_its_largest_branch() -> None:
    # branch1 1×1 (1), branch2 1×1→3×3 (3), branch3 1×1→5×5 (5), branch4 pool 3×3→1×1 (3).
    block = Inception(8, 4, 4, 4, 2, 2, 2, kernel5=5)
    assert summarize(block, (8, 16, 16)).receptive_field == 5
    assert measure_receptive_field(block, (8, 16, 16), "").size == (5, 5)
    block3 = Inception(8, 4, 4, 4, 2, 2, 2, kernel5=3)  # torchvision's "5×5" branch is a 3×3
    assert summarize(block3, (8, 16, 16)).receptive_field == 3


def test_googlenet_stage_measured_matches_analytic() -> None:
    model = depthlab.create_model("googlenet", aux_logits=False)
    s = summarize(model, (3, 128, 128))
    measured = measure_receptive_field(model, (3, 128, 128), "stages.0")
    assert not measured.clipped and measured.side == s.row("stages.0").receptive_field == 91


def test_measured_field_is_clipped_by_a_small_image() -> None:
    model = depthlab.create_model("resnet20", num_classes=10, widths=(4, 8, 16))
    measured = measure_receptive_field(model, (3, 32, 32))
    assert measured.clipped and measured.side <= 32


def test_measure_names_unknown_module() -> None:
    model = depthlab.create_model("resnet20", num_classes=10)
    with pytest.raises(ValueError, match="closest"):
        measure_receptive_field(model, (3, 32, 32), "stages.9")


# ------------------------------------------------------------------------------------------ memory
def test_activation_memory_by_hand() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    m = activation_memory(net, (3, 8, 8))
    out = 8 * 8 * 8 * 4  # float32 conv output
    assert m.forward_bytes == 2 * out  # conv output + ReLU output
    assert m.saved_bytes == 3 * 8 * 8 * 4 + out  # conv saves its input, ReLU its output
    assert {layer.name: layer.saved_bytes for layer in m.layers} == {"0": 3 * 8 * 8 * 4, "1": out}
    assert m.param_bytes == (8 * 3 * 9 + 8) * 4
    inplace = activation_memory(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True)), (3, 8, 8)
    )
    assert inplace.forward_bytes == out  # an in-place ReLU allocates nothing
    assert activation_memory(net, (3, 8, 8), batch_size=4).saved_bytes == 4 * m.saved_bytes


def _saved_on_a_real_step(model: nn.Module, shape: tuple[int, int, int], batch: int) -> int:
    """Bytes autograd keeps for the backward pass of one real CPU step, seen by a second method: a
    ``saved_tensors_hooks`` pack hook on the model's forward, counting each storage once, weights and
    buffers excluded (the activation_memory convention: eval mode)."""
    model.eval()
    weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}
    kept: list[torch.Tensor] = []  # keep every packed tensor alive so no address is reused

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            saved.setdefault(storage.data_ptr(), storage.nbytes())
        kept.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(torch.randn(batch, *shape))
    main_logits(out).square().mean().backward()  # the step's backward uses exactly what was packed
    return sum(saved.values())


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("resnet20", {}, (3, 32, 32)),
        ("alexnet", {}, (3, 63, 63)),
        ("vgg11_bn", {"head": "small"}, (3, 32, 32)),
        ("googlenet", {"variant": "torchvision"}, (3, 32, 32)),
        ("resnet50", {}, (3, 64, 64)),
    ],
)
def test_saved_bytes_equal_a_real_training_step(name: str, kwargs: dict, shape: tuple[int, int, int]) -> None:
    model = depthlab.create_model(name, num_classes=10, **kwargs)
    traced = activation_memory(model, shape, batch_size=2)  # meta device, dispatch-level trace
    assert traced.saved_bytes == _saved_on_a_real_step(model, shape, batch=2)
    s: ModelSummary = summarize(meta_model(name, num_classes=10, **kwargs), shape)
    assert 0 < s.saved_bytes < s.activation_bytes  # batch 1: the summary reports the same quantity
    assert sum(layer.saved_bytes for layer in traced.layers) <= traced.saved_bytes
