"""`depthlab summary`, `compare` and `explain`: output, the stable JSON schema, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depthlab.analysis import explain as ex
from depthlab.cli import main
from depthlab.cli.analysis import parse_input

# Tiny models: one intra-op thread (the shared `one_thread` fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")

MODEL_KEYS = {
    "name",
    "input_shape",
    "params",
    "macs",
    "flops",
    "depth",
    "receptive_field",
    "activation_bytes",
}
LAYER_KEYS = {"name", "type", "output_shape", "params", "macs", "receptive_field"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_parse_input() -> None:
    assert parse_input("3x224x224") == (3, 224, 224)
    assert parse_input("1×28×28") == (1, 28, 28)
    assert parse_input("64x48", default_channels=1) == (1, 64, 48)
    assert parse_input("32") == (3, 32, 32)
    for bad in ("3x224x", "axb", "3x224x224x1", "", "3x0x4", "-3x4x4"):
        with pytest.raises(ValueError, match="--input"):
            parse_input(bad)


def test_summary_table_states_conventions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "resnet18", "--depth", "2")
    assert code == 0
    assert "FLOPs = 2 × MACs" in out and "MACs count Conv2d and Linear" in out
    assert "11,689,512" in out and "1.81G" in out
    assert "(ConvNormAct)" in out and "(Conv2d)" not in out  # --depth 2 folds stem.0.conv into stem.0


def test_summary_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "resnet20", "--input", "3x32x32", "--num-classes", "10", "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"conventions", "models"} and "FLOPs = 2 × MACs" in data["conventions"]
    (model,) = data["models"]
    assert set(model) == MODEL_KEYS | {"layers"}
    assert model["name"] == "resnet20" and model["input_shape"] == [3, 32, 32]
    assert model["flops"] == 2 * model["macs"] and model["depth"] == 20
    assert all(set(layer) == LAYER_KEYS for layer in model["layers"])
    assert max(layer["name"].count(".") for layer in model["layers"]) == 2  # default --depth 3
    top = [layer for layer in model["layers"] if "." not in layer["name"]]
    assert sum(layer["params"] for layer in top) == model["params"]
    assert model["layers"][-1]["output_shape"] == [1, 10]


def test_summary_depth_one_shows_top_level_only(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "summary", "googlenet", "--depth", "1", "--json")
    names = [layer["name"] for layer in json.loads(out)["models"][0]["layers"]]
    assert names == ["stem", "stages", "head", "aux1", "aux2"]


def test_compare_json_schema_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plot = tmp_path / "params_vs_macs.png"
    code, out, _ = run(
        capsys, "compare", "resnet20", "plain20", "--input", "3x32x32", "--json", "--plot", str(plot)
    )
    assert code == 0
    data = json.loads(out)
    assert [m["name"] for m in data["models"]] == ["resnet20", "plain20"]
    assert all(set(m) == MODEL_KEYS for m in data["models"])
    res, plain = data["models"]
    assert res["params"] == plain["params"] and res["receptive_field"] == plain["receptive_field"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_default_is_the_classic_four(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compare")
    assert code == 0
    for name in ("alexnet", "vgg16", "googlenet", "resnet50", "138,357,544", "15.47G"):
        assert name in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("summary", "resnet5"), "unknown model 'resnet5'"),
        (("compare", "resnet18", "nosuchnet"), "unknown model 'nosuchnet'"),
        (("summary", "resnet18", "--input", "3x224"), None),  # HxW is fine: channels default
        (("summary", "resnet18", "--input", "3x22a"), "malformed --input '3x22a'"),
        (("compare", "--input", "224x224x3x1"), "malformed --input"),
        (("summary", "vgg16", "--input", "3x16x16"), "too small"),
        (("summary", "alexnet", "--input", "3x40x40"), "minimum size is 63x63"),
        (("summary", "resnet18", "--depth", "0"), "--depth expects a positive integer"),
        (("explain", "nope"), "choose from vgg-stack"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str | None
) -> None:
    code, out, err = run(capsys, *argv)
    if message is None:
        assert code == 0
        return
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("depthlab: error: ") and message in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("topic", list(ex.TOPICS))
def test_explain_prints_table_and_conclusion(capsys: pytest.CaptureFixture[str], topic: str) -> None:
    code, out, _ = run(capsys, "explain", topic, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["topic"] == topic and data["rows"] and len(data["columns"]) == len(data["rows"][0])
    assert data["conclusion"].endswith(".")


def test_explain_vgg_stack_numbers() -> None:
    e = ex.vgg_stack(channels=8, size=8)
    c2 = 64
    by_k = {r.k: r for r in e.rows}
    assert [by_k[k].receptive_field for k in (1, 2, 3, 4)] == [3, 5, 7, 9]
    assert (by_k[2].stack_weights, by_k[2].big_weights) == (18 * c2, 25 * c2)
    assert (by_k[3].stack_weights, by_k[3].big_weights) == (27 * c2, 49 * c2)
    assert by_k[3].stack_macs == 27 * c2 * 64 and by_k[3].stack_nonlinearities == 3
    assert f"{by_k[3].stack_weights:,}" in e.conclusion and "45% fewer" in e.conclusion


def test_explain_inception_bottleneck_numbers() -> None:
    e = ex.inception_bottleneck()
    total = e.rows[-1]
    assert total.module == "network" and total.params_with == 6_998_552  # the paper's net, no aux heads
    b3 = next(r for r in e.rows if r.module.endswith("inception3a") and r.branch.startswith("branch3"))
    # 5×5 on 192 channels at 28×28 → 32 outputs, vs 1×1 192→16 then 5×5 16→32.
    assert b3.macs_without == 28 * 28 * 32 * 192 * 25
    assert b3.macs_with == 28 * 28 * (16 * 192 + 32 * 16 * 25)
    modules = [r for r in e.rows if r.branch == "module"]
    assert len(modules) == 9 and all(r.macs_without > r.macs_with for r in modules)
    assert f"{b3.macs_without / 1e6:.1f}M" in e.conclusion


def test_explain_resnet_bottleneck_numbers() -> None:
    e = ex.resnet_bottleneck(size=8)
    first = e.rows[0]
    assert (first.basic_depth, first.bottleneck_depth, first.basic_rf, first.bottleneck_rf) == (2, 3, 5, 3)
    # Convs only (BN adds 2 per channel): 2·9·256² vs 256·64 + 9·64² + 64·256.
    assert first.basic_params - 2 * 2 * 256 == 2 * 9 * 256**2
    assert first.bottleneck_params - 2 * (64 + 64 + 256) == 256 * 64 + 9 * 64**2 + 64 * 256


def test_explain_skip_gradient_identity_path() -> None:
    e = ex.skip_gradient(channels=4, size=6, batch=4)
    zero = {r.block: r for r in e.rows if r.gamma == 0.0}
    assert zero["plain"].grad_in_norm == 0.0  # nothing passes a dead branch ...
    assert zero["residual"].grad_in_norm == pytest.approx(zero["residual"].identity_part)  # ... but the +x
    assert zero["residual"].grad_in_norm > 0.3 * zero["residual"].grad_out_norm
    init = {r.block: r for r in e.rows if r.gamma == 1.0}
    assert init["residual"].cosine > init["plain"].cosine + 0.2
    assert f"{zero['residual'].ratio:.2f}" in e.conclusion
